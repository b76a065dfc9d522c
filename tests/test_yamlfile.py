"""Reading the config file's YAML within bounds (mirror/yamlfile.py): size, values once
aliases are expanded, depth, recursion, explicit tags, anchors and merge keys, UTF-8, and
where a problem is. Documents go through parse_config, most of them with each YAML parser."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirror.config import TagSelector, load_config, parse_config
from mirror.errors import ConfigError
from mirror.reference import Platform
from mirror.yamlfile import MAX_CONFIG_BYTES, MAX_DEPTH, MAX_VALUES
from tests.config_documents import (
    PROPERTIES,
    VALID_TAIL,
    alias_bomb,
    loads_or_one_line,
    nested,
    refused,
)


def bomb_values(fan_out: int, levels: int) -> int:
    """The values the bomb's lists hold once its aliases are expanded (the lists included)."""
    sizes = [1 + fan_out]
    for _ in range(1, levels):
        sizes.append(1 + fan_out * sizes[-1])
    return sum(sizes)


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
