"""The config file: what it accepts, how defaults merge, and one clear line for each bad input."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirror.config import TagSelector, load_config, parse_config
from mirror.errors import ConfigError
from mirror.reference import Platform
from tests.config_documents import PROPERTIES, loads_or_one_line

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
    assert config.source.url == "https://registry-1.docker.io"
    assert config.reserve_pulls == 10
    assert config.target_url is None


def test_minimal_file_takes_every_default() -> None:
    config = parse_config("version: 1\nimages: [{image: alpine, tags: [latest]}]\n")
    assert config.source.written == "docker.io"
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
    assert parse_config(text).source.url == url


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


# --- properties: any document loads or is one ConfigError line, in bounded time -------------

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


@pytest.mark.parametrize(
    ("registry", "name", "host", "hub"),
    [
        ("docker.io", "docker.io", "registry-1.docker.io", True),
        ("index.docker.io", "index.docker.io", "registry-1.docker.io", True),
        ("https://Registry-1.Docker.io", "registry-1.docker.io", "registry-1.docker.io", True),
        ("http://127.0.0.1:5000", "127.0.0.1:5000", "127.0.0.1:5000", False),
        ("quay.io", "quay.io", "quay.io", False),
    ],
)
def test_the_source_registry_is_resolved_once(
    registry: str, name: str, host: str, hub: bool
) -> None:
    """What every module reads about the source: how references name it, the host Docker's
    config.json keys name it by, whether it is Docker Hub (and so gets its credentials)."""
    text = f"version: 1\nsource: {{registry: '{registry}'}}\nimages: [{{image: a, tags: [b]}}]\n"
    source = parse_config(text).source
    assert (source.written, source.name, source.host) == (registry, name, host)
    assert source.is_docker_hub is hub and source.hub_credentials is hub
