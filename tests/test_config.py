"""The config file: what it accepts, how defaults merge, and one clear line for each bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mirror.config as config_module
from mirror.config import (
    MAX_CONFIG_BYTES,
    MAX_DEPTH,
    MAX_VALUES,
    Config,
    TagSelector,
    load_config,
    parse_config,
)
from mirror.errors import ConfigError
from mirror.reference import Platform

REPO = Path(__file__).resolve().parent.parent

GOOD = """\
version: 1
source:
  registry: docker.io
  reserve_pulls: 10
target:
  region: null
  registry: null
  prefix: dockerhub
stack:
  name: ecr-mirror
  iam_user: null
defaults:
  platforms: all
images:
  - image: python
    tags: ["3.12-slim"]
  - image: bitnami/redis
    tags: {match: '^7\\.4\\.\\d+$', latest: 3}
    platforms: [linux/amd64]
"""


def test_the_issue_example_loads_with_defaults_merged() -> None:
    config = parse_config(GOOD, "images.yaml")
    python, redis = config.images
    assert python.repository == "library/python"
    assert python.target_repository == "dockerhub/library/python"
    assert python.tags == ("3.12-slim",)
    assert python.platforms is None  # defaults.platforms: all
    assert redis.repository == "bitnami/redis"
    assert redis.tags == TagSelector(match=r"^7\.4\.\d+$", semver=None, latest=3, exclude=None)
    assert redis.platforms == (Platform("linux", "amd64"),)
    assert config.source_url == "https://registry-1.docker.io"
    assert config.reserve_pulls == 10
    assert config.target_url is None


def test_minimal_file_takes_every_default() -> None:
    config = parse_config("version: 1\nimages: [{image: alpine, tags: [latest]}]\n")
    assert config.source_registry == "docker.io"
    assert config.prefix == "dockerhub"
    assert config.stack.name == "ecr-mirror"
    assert config.stack.iam_user is None
    assert config.images[0].target_repository == "dockerhub/library/alpine"


def test_defaults_platforms_apply_where_an_entry_names_none() -> None:
    config = parse_config(
        textwrap.dedent("""\
        version: 1
        defaults: {platforms: [linux/amd64, linux/arm64/v8]}
        images:
          - {image: python, tags: [a]}
          - {image: node, tags: [b], platforms: all}
        """)
    )
    assert config.images[0].platforms == (
        Platform("linux", "amd64"),
        Platform("linux", "arm64", "v8"),
    )
    assert config.images[1].platforms is None


@pytest.mark.parametrize(
    ("registry", "url"),
    [
        ("docker.io", "https://registry-1.docker.io"),
        ("index.docker.io", "https://registry-1.docker.io"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("https://mirror.example.com/", "https://mirror.example.com"),
        ("quay.io", "https://quay.io"),
    ],
)
def test_source_registry_forms(registry: str, url: str) -> None:
    text = f"version: 1\nsource: {{registry: '{registry}'}}\nimages: [{{image: a/b, tags: [x]}}]\n"
    assert parse_config(text).source_url == url


BAD_CASES = [
    # (id, document, expected fragment of the one-line error)
    ("malformed-yaml", "version: 1\nimages: [\n", "f.yaml (line 3, column 1): malformed YAML"),
    ("not-a-mapping", "- a\n- b\n", "f.yaml: expected a mapping"),
    (
        "unknown-version",
        "version: 2\nimages: [{image: a, tags: [x]}]\n",
        "f.yaml: version (line 1): unknown config version 2",
    ),
    (
        "missing-version",
        "images: [{image: a, tags: [x]}]\n",
        "f.yaml: version (line 1): required key is missing",
    ),
    (
        "unknown-top-key",
        "version: 1\nimage: []\nimages: [{image: a, tags: [x]}]\n",
        "f.yaml: image (line 2): unknown key",
    ),
    (
        "unknown-nested-key",
        "version: 1\nsource: {registy: x}\nimages: [{image: a, tags: [x]}]\n",
        "f.yaml: source.registy (line 2): unknown key",
    ),
    (
        "unknown-entry-key",
        "version: 1\nimages:\n  - image: a\n    tag: [x]\n",
        "f.yaml: images[0].tag (line 4): unknown key",
    ),
    (
        "wrong-type-reserve",
        "version: 1\nsource: {reserve_pulls: many}\nimages: [{image: a, tags: [x]}]\n",
        "f.yaml: source.reserve_pulls (line 2): Input should be a valid integer",
    ),
    (
        "negative-reserve",
        "version: 1\nsource: {reserve_pulls: -1}\nimages: [{image: a, tags: [x]}]\n",
        "f.yaml: source.reserve_pulls (line 2): Input should be greater than or equal to 0",
    ),
    (
        "wrong-type-images",
        "version: 1\nimages: python\n",
        "f.yaml: images (line 2): Input should be a valid list",
    ),
    (
        "no-images",
        "version: 1\nimages: []\n",
        "f.yaml: images (line 2): List should have at least 1 item",
    ),
    (
        "invalid-image-name",
        "version: 1\nimages:\n  - image: Python\n    tags: [x]\n",
        "f.yaml: images[0].image (line 3): invalid repository name 'library/Python'",
    ),
    (
        "image-with-tag",
        "version: 1\nimages:\n  - image: python:3.12\n    tags: [x]\n",
        "f.yaml: images[0].image (line 3): 'python:3.12': give the repository only",
    ),
    (
        "image-with-host",
        "version: 1\nimages:\n  - image: quay.io/a/b\n    tags: [x]\n",
        "f.yaml: images[0].image (line 3): 'quay.io/a/b': images come from source.registry",
    ),
    (
        "empty-tag-list",
        "version: 1\nimages:\n  - image: a\n    tags: []\n",
        "f.yaml: images[0].tags (line 4): the tag list is empty",
    ),
    (
        "invalid-tag",
        "version: 1\nimages:\n  - image: a\n    tags: ['-bad']\n",
        "f.yaml: images[0].tags (line 4): invalid tag '-bad'",
    ),
    (
        "tag-twice",
        "version: 1\nimages:\n  - image: a\n    tags: [x, x]\n",
        "f.yaml: images[0].tags (line 4): the tag list names a tag twice",
    ),
    (
        "tags-missing",
        "version: 1\nimages:\n  - image: a\n",
        "f.yaml: images[0].tags (line 3): required key is missing",
    ),
    (
        "invalid-regex",
        "version: 1\nimages:\n  - image: a\n    tags: {match: '^7\\.(4'}\n",
        "f.yaml: images[0].tags.match (line 4): invalid regular expression",
    ),
    (
        "regex-repeat-too-large",
        "version: 1\nimages:\n  - image: a\n    tags: {match: 'a{99999999999}'}\n",
        "f.yaml: images[0].tags.match (line 4): invalid regular expression 'a{99999999999}'",
    ),
    (
        "invalid-exclude-regex",
        "version: 1\nimages:\n  - image: a\n    tags: {match: x, exclude: '['}\n",
        "f.yaml: images[0].tags.exclude (line 4): invalid regular expression",
    ),
    (
        "invalid-semver",
        "version: 1\nimages:\n  - image: a\n    tags: {semver: 'about 3'}\n",
        "f.yaml: images[0].tags.semver (line 4): invalid version range 'about 3'",
    ),
    (
        "empty-selector",
        "version: 1\nimages:\n  - image: a\n    tags: {}\n",
        "f.yaml: images[0].tags (line 4): a tag selector needs at least one of",
    ),
    (
        "latest-zero",
        "version: 1\nimages:\n  - image: a\n    tags: {latest: 0}\n",
        "f.yaml: images[0].tags.latest (line 4): Input should be greater than or equal to 1",
    ),
    (
        "unknown-selector-key",
        "version: 1\nimages:\n  - image: a\n    tags: {newest: 2}\n",
        "f.yaml: images[0].tags.newest (line 4): unknown key",
    ),
    (
        "same-ecr-repository",
        "version: 1\nimages:\n  - {image: python, tags: [a]}\n"
        "  - {image: library/python, tags: [b]}\n",
        "f.yaml: images[1].image (line 4): 'library/python' maps to ECR repository"
        " 'dockerhub/library/python', as images[0] ('python') does",
    ),
    (
        "invalid-platform",
        "version: 1\nimages:\n  - {image: a, tags: [x], platforms: [linux]}\n",
        "f.yaml: images[0].platforms (line 3): invalid platform 'linux'",
    ),
    (
        "unknown-arch",
        "version: 1\nimages:\n  - {image: a, tags: [x], platforms: [linux/amd46]}\n",
        "f.yaml: images[0].platforms (line 3): unknown architecture 'amd46'",
    ),
    (
        "unknown-os",
        "version: 1\nimages:\n  - {image: a, tags: [x], platforms: [linus/amd64]}\n",
        "f.yaml: images[0].platforms (line 3): unknown operating system 'linus'",
    ),
    (
        "platforms-word",
        "version: 1\nimages:\n  - {image: a, tags: [x], platforms: some}\n",
        "f.yaml: images[0].platforms (line 3): Input should be 'all'",
    ),
    (
        "empty-platforms",
        "version: 1\ndefaults: {platforms: []}\nimages: [{image: a, tags: [x]}]\n",
        "f.yaml: defaults.platforms (line 2): an empty platform list selects nothing",
    ),
    (
        "bad-prefix",
        "version: 1\ntarget: {prefix: Docker Hub}\nimages: [{image: a, tags: [x]}]\n",
        "f.yaml: target.prefix (line 2): 'Docker Hub' cannot start an ECR repository name",
    ),
    (
        "bad-source-url",
        "version: 1\nsource: {registry: 'ftp://x'}\nimages: [{image: a, tags: [x]}]\n",
        "f.yaml: source.registry (line 2): 'ftp://x': expected a host or an http(s):// URL",
    ),
    (
        "bad-iam-user",
        "version: 1\nstack: {iam_user: 'a b'}\nimages: [{image: a, tags: [x]}]\n",
        "f.yaml: stack.iam_user (line 2): String should match pattern",
    ),
    (
        "bad-stack-name",
        "version: 1\nstack: {name: 1stack}\nimages: [{image: a, tags: [x]}]\n",
        "f.yaml: stack.name (line 2): String should match pattern",
    ),
    (
        "duplicate-key",
        "version: 1\nversion: 1\nimages: [{image: a, tags: [x]}]\n",
        "f.yaml: version (line 2): key given twice",
    ),
]


@pytest.fixture(params=["libyaml", "python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each YAML parser the loader may stand on: libyaml's when PyYAML has it, PyYAML's own."""
    if request.param == "python":
        monkeypatch.setattr(config_module, "_new_loader", config_module._PythonLoader)
    elif not yaml.__with_libyaml__:
        pytest.skip("this PyYAML has no libyaml")
    return str(request.param)


@pytest.mark.parametrize(
    ("document", "expected"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES]
)
@pytest.mark.usefixtures("parser")
def test_bad_input_is_one_clear_line(document: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(document, "f.yaml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(expected), message
    assert caught.value.exit_code == 2


def test_an_overlong_repository_name_is_refused_with_the_prefix() -> None:
    name = "a/" + "b" * 250
    with pytest.raises(ConfigError, match="2 to 256 characters"):
        parse_config(
            f"version: 1\ntarget: {{prefix: mirror}}\nimages: [{{image: {name}, tags: [x]}}]\n"
        )


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read the config file"):
        load_config(tmp_path / "nope.yaml")


def test_the_shipped_config_is_valid() -> None:
    config = load_config(REPO / "config" / "images.yaml")
    assert config.images


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mirror", *args], capture_output=True, text=True, timeout=60
    )


def test_cli_reports_bad_config_in_one_line_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "images.yaml"
    bad.write_text("version: 1\nimages:\n  - image: a\n    tags: []\n")
    result = _run_cli("check", "--config", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"mirror: error: {bad}: images[0].tags (line 4): the tag list is empty:"
        " list tags or use a selector"
    ]
    assert "Traceback" not in result.stderr


def test_cli_help_and_version() -> None:
    help_text = _run_cli("--help")
    assert help_text.returncode == 0
    assert "check" in help_text.stdout
    version = _run_cli("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("mirror ")


# --- the document's bounds: size, values once aliases are expanded, depth, recursion ---------

VALID_TAIL = "images: [{image: a, tags: [x]}]\n"


def alias_bomb(fan_out: int, levels: int) -> str:
    """Billion laughs: each level a list of `fan_out` aliases to the level below."""
    text = "a: &a [" + ",".join(["lol"] * fan_out) + "]\n"
    for level in range(1, levels):
        this, below = chr(ord("a") + level), chr(ord("a") + level - 1)
        text += f"{this}: &{this} [" + ",".join([f"*{below}"] * fan_out) + "]\n"
    return text


def bomb_values(fan_out: int, levels: int) -> int:
    """The values the bomb's lists hold once its aliases are expanded (the lists included)."""
    sizes = [1 + fan_out]
    for _ in range(1, levels):
        sizes.append(1 + fan_out * sizes[-1])
    return sum(sizes)


def refused(document: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(document, "f.yaml")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("f.yaml"), message
    assert caught.value.exit_code == 2
    return message


@pytest.mark.usefixtures("parser")
def test_an_alias_bomb_of_300_bytes_is_refused_naming_where_it_grew() -> None:
    bomb = alias_bomb(9, 9)  # 9^9 = 387 million values once expanded
    assert len(bomb) < 400
    message = refused("version: 1\n" + bomb + VALID_TAIL)
    assert re.fullmatch(
        r"f\.yaml: [a-i](\[\d\])+ \(line \d+\): more than 20,000 values once aliases are"
        r" expanded, the most mirror reads",
        message,
    ), message


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ("version: 1\na: &x [1, *x]\n", "a[1] (line 2)"),
        ("version: 1\na: &x {b: [*x]}\n", "a.b[0] (line 2)"),
        ("version: 1\na: &x {<<: *x}\n", "a['<<'] (line 2)"),
        ("version: 1\na: &x [&y [*x]]\nb: *y\n", "a[0][0] (line 2)"),
    ],
)
@pytest.mark.usefixtures("parser")
def test_an_alias_inside_its_own_anchor_is_refused(document: str, where: str) -> None:
    assert refused(document + VALID_TAIL) == (
        f"f.yaml: {where}: an alias refers to a list or mapping that contains it"
    )


def nested(levels: int) -> str:
    return "[" * levels + "1" + "]" * levels


@pytest.mark.usefixtures("parser")
def test_nesting_is_read_to_the_limit_and_refused_beyond() -> None:
    # `x:`'s value is at depth 2 of the document, the scalar inside n lists at depth n + 2
    within = MAX_DEPTH - 2
    assert refused(f"version: 1\nx: {nested(within)}\n" + VALID_TAIL) == (
        "f.yaml: x (line 2): unknown key"  # read whole: the schema speaks, not the bound
    )
    deeper = refused(f"version: 1\nx: {nested(within + 1)}\n" + VALID_TAIL)
    assert deeper.endswith(
        f"(line 2): nested more than {MAX_DEPTH} levels deep, the most mirror reads"
    )
    assert deeper.startswith("f.yaml: x[0][0]")
    # far deeper than PyYAML's composer could recurse, or than libyaml's own bound (1,000)
    assert "nest" in refused(f"version: 1\nx: {nested(30_000)}\n" + VALID_TAIL)


@pytest.mark.usefixtures("parser")
def test_nesting_through_aliases_counts_as_deep() -> None:
    ten = nested(10).replace("1", "{}")
    document = f"a: &a {ten}\nb: &b {ten.replace('{}', '*a')}\nc: {ten.replace('{}', '*b')}\n"
    assert "nested more than 20 levels deep" in refused("version: 1\n" + document + VALID_TAIL)


@pytest.mark.usefixtures("parser")
def test_explicit_tags_are_refused_except_str() -> None:
    assert refused("version: !!int 1\n" + VALID_TAIL) == (
        "f.yaml: version (line 1): the YAML tag '!!int' is not accepted; write a plain value"
    )
    assert "the YAML tag '!!python/object:os.system'" in refused(
        "version: 1\nx: !!python/object:os.system {}\n" + VALID_TAIL
    )
    config = parse_config("version: 1\nimages: [{image: a, tags: [!!str 3.10]}]\n")
    assert config.images[0].tags == ("3.10",)


@pytest.mark.usefixtures("parser")
def test_a_date_that_is_no_date_is_one_line() -> None:
    assert refused("version: 1\nimages: [{image: a, tags: [2024-02-30]}]\n") == (
        "f.yaml (line 2, column 28): malformed YAML: '2024-02-30' is not a date;"
        " quote it to mean text"
    )


ANCHORS = """\
version: 1
defaults:
  platforms: &both [linux/amd64, linux/arm64]
images:
  - &python
    image: python
    tags: &slim {match: '-slim$', latest: 2}
    platforms: [linux/amd64]
  - <<: *python
    image: pypy
  - {image: node, tags: *slim, platforms: *both}
  - <<: [{tags: [a]}, {platforms: all}]
    image: ruby
"""


@pytest.mark.usefixtures("parser")
def test_anchors_aliases_and_merge_keys_work() -> None:
    python, pypy, node, ruby = parse_config(ANCHORS).images
    slim = TagSelector(match="-slim$", semver=None, latest=2, exclude=None)
    assert (python.name, python.tags, python.platforms) == (
        "python",
        slim,
        (Platform("linux", "amd64"),),
    )
    assert (pypy.name, pypy.tags, pypy.platforms) == ("pypy", slim, python.platforms)
    assert node.tags == slim and node.platforms == (
        Platform("linux", "amd64"),
        Platform("linux", "arm64"),
    )
    assert (ruby.name, ruby.tags, ruby.platforms) == ("ruby", ("a",), None)  # `<<: [a, b]`


def test_an_error_in_a_merged_value_names_the_entry() -> None:
    document = ANCHORS.replace("platforms: [linux/amd64]", "platforms: [linux/amd46]")
    assert refused(document).startswith(
        "f.yaml: images[0].platforms (line 8): unknown architecture 'amd46'"
    )


def test_a_file_larger_than_the_bound_is_refused_unread(tmp_path: Path) -> None:
    fits = tmp_path / "fits.yaml"
    padding = "# " + "x" * 98 + "\n"
    body = "version: 1\n" + VALID_TAIL
    fits.write_text(body + padding * ((MAX_CONFIG_BYTES - len(body)) // len(padding)))
    assert load_config(fits).images  # a file within the bound loads
    big = tmp_path / "big.yaml"
    big.write_text(body + padding * (MAX_CONFIG_BYTES // len(padding) + 1))
    with pytest.raises(ConfigError) as caught:
        load_config(big)
    assert str(caught.value) == f"{big}: the file is larger than 64 KiB, the most mirror reads"
    with pytest.raises(ConfigError, match=r"^f\.yaml: the file is larger than 64 KiB"):
        parse_config(big.read_text(), "f.yaml")


def test_a_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "images.yaml"
    before = f"version: 1\n{VALID_TAIL}# caf".encode()
    path.write_bytes(before + "\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path} (line 3): the file is not UTF-8 text (byte {len(before) + 1}); save it as UTF-8"
    )


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("a\nb", "['a\\nb']"),
        ("ab\n", "['ab\\n']"),  # a regex `$` would let the line break through
        ("k" * 100, "['" + "k" * 40 + "...']"),
        ("x y", "['x y']"),
    ],
)
@pytest.mark.usefixtures("parser")
def test_a_key_that_is_no_plain_name_is_quoted_on_one_line(key: str, shown: str) -> None:
    document = f"version: 1\nsource: {{{json.dumps(key)}: 1}}\n" + VALID_TAIL
    assert refused(document) == f"f.yaml: source{shown} (line 2): unknown key"


# --- registry URLs: no credentials, plain http only to this machine or by choice -------------


@pytest.mark.parametrize("section", ["source", "target"])
@pytest.mark.parametrize(
    "url", ["https://alice:PASSWORD@quay.io", "alice:PASSWORD@quay.io", "http://:PASSWORD@[::1]"]
)
def test_credentials_in_a_registry_url_are_refused_unshown(section: str, url: str) -> None:
    message = refused(f"version: 1\n{section}: {{registry: '{url}'}}\n" + VALID_TAIL)
    assert message == (
        f"f.yaml: {section}.registry (line 2): the registry URL carries credentials"
        " (user:password@); remove them, and see README.md for where credentials go"
    )
    assert "PASSWORD" not in message and "alice" not in message


@pytest.mark.parametrize("section", ["source", "target"])
def test_plain_http_to_another_host_needs_the_opt_in(section: str) -> None:
    url = "http://registry.example:5000"
    message = refused(f"version: 1\n{section}: {{registry: '{url}'}}\n" + VALID_TAIL)
    assert message == (
        f"f.yaml: {section}.registry (line 2): '{url}': plain http is accepted only for a"
        " loopback host (127.0.0.0/8, ::1, localhost); use https, or set"
        " `allow_insecure_http: true` next to it"
    )
    opted = f"version: 1\n{section}: {{registry: '{url}', allow_insecure_http: true}}\n"
    config = parse_config(opted + VALID_TAIL)
    assert (config.source_url if section == "source" else config.target_url) == url
    not_a_bool = opted.replace("true", "'true'")
    assert refused(not_a_bool + VALID_TAIL) == (
        f"f.yaml: {section}.allow_insecure_http (line 2): Input should be a valid boolean"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5000",
        "http://127.255.0.9",
        "http://[::1]:5000",
        "http://localhost:5000",
        "http://LOCALHOST",
    ],
)
def test_plain_http_to_loopback_is_accepted(url: str) -> None:
    text = f"version: 1\nsource: {{registry: '{url}'}}\ntarget: {{registry: '{url}'}}\n"
    config = parse_config(text + VALID_TAIL)
    assert config.source_url == url and config.target_url == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://quay.io/?x=1", "a registry URL has no query or fragment"),
        ("https://quay.io#x", "a registry URL has no query or fragment"),
        ("https://quay.io:0", "port 0 is no registry's port"),
        ("quay.io:99999", "Port out of range 0-65535"),
        ("quay.io:http", "Port could not be cast to integer value"),
        ("https://", "expected a host or an http(s):// URL"),
    ],
)
def test_a_registry_url_is_a_host_and_a_port(url: str, problem: str) -> None:
    assert problem in refused(f"version: 1\nsource: {{registry: '{url}'}}\n" + VALID_TAIL)


# --- which source Docker Hub's credentials may go to --------------------------------------

HUB_CASES = [
    # (source section, source is Docker Hub, Docker Hub's credentials go to it)
    ("{registry: docker.io}", True, True),
    ("{registry: index.docker.io}", True, True),
    ("{registry: 'https://registry-1.docker.io'}", True, True),
    ("{registry: 'https://registry-1.docker.io:443'}", True, True),
    ("{registry: 'https://registry-1.docker.io:5000'}", False, False),
    ("{registry: 'http://registry-1.docker.io', allow_insecure_http: true}", False, False),
    ("{registry: 'http://127.0.0.1:5000'}", False, False),
    ("{registry: quay.io}", False, False),
    ("{registry: quay.io, use_docker_hub_credentials: true}", False, True),
    ("{registry: quay.io, use_docker_hub_credentials: false}", False, False),
]


@pytest.mark.parametrize(("source", "hub", "hub_credentials"), HUB_CASES)
def test_docker_hub_credentials_go_to_docker_hub_unless_the_file_says(
    source: str, hub: bool, hub_credentials: bool
) -> None:
    config = parse_config(f"version: 1\nsource: {source}\n" + VALID_TAIL)
    assert config.source_is_docker_hub is hub
    assert config.docker_hub_credentials is hub_credentials


def test_a_docker_hub_secret_for_another_registry_needs_the_opt_in() -> None:
    source = "source:\n  registry: quay.io\n  credentials_secret: mirror/hub\n"
    assert refused("version: 1\n" + source + VALID_TAIL) == (
        "f.yaml: source.credentials_secret (line 4): the secret holds Docker Hub credentials"
        " and source.registry 'quay.io' is not Docker Hub; set"
        " source.use_docker_hub_credentials: true to send them there"
    )
    opted = source + "  use_docker_hub_credentials: true\n"
    assert parse_config("version: 1\n" + opted + VALID_TAIL).credentials_secret == "mirror/hub"
    hub = "source: {registry: docker.io, credentials_secret: mirror/hub}\n"
    assert parse_config("version: 1\n" + hub + VALID_TAIL).credentials_secret == "mirror/hub"


# --- properties: any document loads or is one ConfigError line, in bounded time -------------

# Bounded examples, no example database (no files left behind), and a per-example deadline
# far above the milliseconds a document takes: it catches a hang, not a slow machine.
PROPERTIES = settings(
    max_examples=150,
    deadline=3000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def loads_or_one_line(document: str) -> Config | None:
    """parse_config's whole contract: a Config, or a ConfigError of one line naming the file.
    Any other exception fails the test with its traceback."""
    try:
        return parse_config(document, "f.yaml")
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith("f.yaml") and "\n" not in message and "\r" not in message
        return None


# pieces YAML is made of, the schema's words, and what has broken loaders before
TOKENS = [
    *("version: 1\n", "images:\n", "  - ", "image: a", "tags: [x]", "source:", "target:"),
    *("registry: ", "'http://h'", "allow_insecure_http: ", "true", "platforms: ", "all"),
    *("match: ", "latest: ", "semver: ", "defaults:", "stack:", "prefix: "),
    *("&a ", "&b ", "*a", "*b", "<<: ", "{", "}", "[", "]", ", ", ": ", "- ", "? ", "\n"),
    *("  ", "    ", "\t", "'", '"', "#", "|", ">", "!!int ", "!!str ", "!x ", "%YAML 1.1\n"),
    *("---\n", "...\n", "2024-02-30", "1e999", "0x1f", "~", "null", "yes", "\x00", "\ufeff"),
    *("\\", "@", "é", "a" * 50),
]
yamlish_text = st.lists(st.sampled_from(TOKENS), max_size=60).map("".join)


@PROPERTIES
@given(st.one_of(st.text(max_size=300), yamlish_text))
def test_any_text_loads_or_is_one_line(document: str) -> None:
    loads_or_one_line(document)


@PROPERTIES
@given(st.lists(st.tuples(st.integers(0, len(GOOD)), st.integers(0, 8), st.sampled_from(TOKENS))))
def test_any_edit_of_a_valid_config_loads_or_is_one_line(
    edits: list[tuple[int, int, str]],
) -> None:
    document = GOOD
    for at, cut, token in edits:  # replace `cut` characters at `at` by a token
        document = document[:at] + token + document[at + cut :]
    loads_or_one_line(document)


SCALARS = st.one_of(
    st.sampled_from(["a", "x", "1", "-1", "2024-02-30", "1:2:3", "~", "yes", "'a: b'", '"\\n"']),
    st.sampled_from(["python", "linux/amd64", "all", "docker.io", "'http://h.example'", "1e999"]),
    st.text("abcz019./:_-", min_size=1, max_size=12),
)
KEYS = st.sampled_from(
    [
        *("version", "images", "image", "tags", "platforms", "source", "target", "stack"),
        *("match", "registry", "latest", "defaults", "prefix", "x", "allow_insecure_http"),
    ]
)


@st.composite
def yaml_documents(draw: st.DrawFn) -> str:
    """Flow-style documents of random keys and values, with anchors, aliases (to earlier
    anchors, enclosing ones included: recursion) and merge keys."""
    anchors: list[str] = []

    def node(depth: int) -> str:
        kinds = ["scalar", "alias", "list", "map"] if depth < 6 else ["scalar", "alias"]
        kind = draw(st.sampled_from(kinds))
        if kind == "alias" and anchors:
            return "*" + draw(st.sampled_from(anchors))
        if kind in ("scalar", "alias"):
            return draw(SCALARS)
        anchor = ""
        if draw(st.booleans()):  # named before its content: the content may refer to it
            anchors.append(f"n{len(anchors)}")
            anchor = f"&{anchors[-1]} "
        if kind == "list":
            items = [node(depth + 1) for _ in range(draw(st.integers(0, 4)))]
            return anchor + "[" + ", ".join(items) + "]"
        keys = draw(st.lists(KEYS, max_size=4, unique=True))
        pairs = [f"{key}: {node(depth + 1)}" for key in keys]
        if anchors and draw(st.booleans()):
            pairs.append("<<: *" + draw(st.sampled_from(anchors)))
        return anchor + "{" + ", ".join(pairs) + "}"

    top = draw(st.lists(KEYS, min_size=1, max_size=6, unique=True))
    return "".join(f"{key}: {node(1)}\n" for key in top)


@PROPERTIES
@given(yaml_documents())
def test_any_document_of_anchors_aliases_and_merges_loads_or_is_one_line(document: str) -> None:
    loads_or_one_line(document)


@settings(PROPERTIES, max_examples=40)  # each bomb near the bound is 20,000 values to walk
@given(st.integers(1, 30), st.integers(1, 12))
def test_an_alias_bomb_is_refused_exactly_when_it_outgrows_the_bound(
    fan_out: int, levels: int
) -> None:
    message = refused("version: 1\n" + alias_bomb(fan_out, levels) + VALID_TAIL)
    # the document's other values: the top mapping, 1, and the list, entry, a, list, x of images
    if bomb_values(fan_out, levels) + 7 > MAX_VALUES:
        assert "once aliases are expanded" in message
    else:
        assert message == "f.yaml: a (line 2): unknown key"  # read whole: the schema speaks
