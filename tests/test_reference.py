"""Docker's reference rules and ECR names: a table of cases, then properties over any text."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirror.reference import (
    DOCKER_HUB,
    ImageRef,
    InvalidReference,
    Platform,
    ecr_repository_name,
    parse_platform,
    parse_reference,
    validate_digest,
    validate_repository,
    validate_tag,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("python", ImageRef("docker.io", "library/python")),
        ("python:3.12-slim", ImageRef("docker.io", "library/python", "3.12-slim")),
        ("docker.io/python", ImageRef("docker.io", "library/python")),
        ("index.docker.io/library/python:3", ImageRef("docker.io", "library/python", "3")),
        ("registry-1.docker.io/bitnami/redis:7.4", ImageRef("docker.io", "bitnami/redis", "7.4")),
        ("bitnami/redis", ImageRef("docker.io", "bitnami/redis")),
        (f"python@{DIGEST}", ImageRef("docker.io", "library/python", None, DIGEST)),
        (f"python:3@{DIGEST}", ImageRef("docker.io", "library/python", "3", DIGEST)),
        ("localhost/x", ImageRef("localhost", "x")),
        ("127.0.0.1:5000/a/b:c", ImageRef("127.0.0.1:5000", "a/b", "c")),
        ("quay.io/a/b_c.d-e", ImageRef("quay.io", "a/b_c.d-e")),
    ],
)
def test_parse_reference(text: str, expected: ImageRef) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Python",
        "python:",
        "python:-x",
        "python@sha256:12",
        "a//b",
        "a/-b",
        f"x@{DIGEST[:-1]}",
        "python:3\n:x",  # a line break is in no name
        "a\n/b",
    ],
)
def test_invalid_references(text: str) -> None:
    with pytest.raises(InvalidReference):
        parse_reference(text)


def test_reference_property_prefers_digest() -> None:
    assert ImageRef("docker.io", "library/python", "3", DIGEST).reference == DIGEST
    assert ImageRef("docker.io", "library/python").reference == "latest"
    assert str(ImageRef("docker.io", "library/python", "3")) == "docker.io/library/python:3"


@pytest.mark.parametrize(
    ("prefix", "repository", "expected"),
    [
        ("dockerhub", "library/python", "dockerhub/library/python"),
        ("mirror/hub/", "bitnami/redis", "mirror/hub/bitnami/redis"),
        ("", "library/python", "library/python"),
    ],
)
def test_ecr_repository_name(prefix: str, repository: str, expected: str) -> None:
    assert ecr_repository_name(prefix, repository) == expected


@pytest.mark.parametrize(
    ("prefix", "repository"), [("x", "a" * 300), ("", "a"), ("Bad Prefix", "a")]
)
def test_invalid_ecr_names(prefix: str, repository: str) -> None:
    with pytest.raises(InvalidReference):
        ecr_repository_name(prefix, repository)


def test_platforms() -> None:
    assert parse_platform("linux/arm64/v8") == Platform("linux", "arm64", "v8")
    assert str(Platform("linux", "amd64")) == "linux/amd64"
    assert Platform("linux", "arm64").matches(Platform("linux", "arm64", "v8"))
    assert not Platform("linux", "arm", "v7").matches(Platform("linux", "arm", "v6"))
    for bad in ("linux", "linux/amd64/v1/x", "LINUX/amd64"):
        with pytest.raises(InvalidReference):
            parse_platform(bad)


@pytest.mark.parametrize("name", ["x\n", "x\r", "x\n\n", "\nx"])
def test_a_line_break_is_in_no_tag_repository_or_ecr_name(name: str) -> None:
    """The grammar's `$` alone would let one trailing newline through."""
    for check in (validate_tag, validate_repository, lambda n: ecr_repository_name("p", n)):
        with pytest.raises(InvalidReference):
            check(name)


# --- properties: any text is a reference or one InvalidReference, never anything else ------

# Property tests: bounded examples, no example database (no files left behind), and a
# per-example deadline far above the few microseconds a parse takes: it catches a hang.
PROPERTIES = settings(max_examples=300, deadline=2000, database=None)

LOWER = string.ascii_lowercase + string.digits
TAG_CHARS = string.ascii_letters + string.digits + "_.-"

# Built from the grammar's parts (a regex strategy would be slower by a hundred times).
components = st.builds(
    lambda words, seps: words[0] + "".join(s + w for s, w in zip(seps, words[1:], strict=False)),
    st.lists(st.text(LOWER, min_size=1, max_size=6), min_size=1, max_size=3),
    st.lists(st.sampled_from([".", "_", "__", "-", "--"]), min_size=2, max_size=2),
)
tags = st.builds(
    str.__add__,
    st.sampled_from(string.ascii_letters + string.digits + "_"),
    st.text(TAG_CHARS, max_size=127),
)
digests = st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: f"sha256:{h}")
hosts = st.sampled_from(["quay.io", "ghcr.io", "localhost", "127.0.0.1:5000", "r.example:443"])
# text near the grammar: its alphabet, its separators, and a few characters it refuses
near = st.text(LOWER + "ABZ/:@._-\n \t%?#", max_size=80)


def _refuses_only_with_invalid_reference(text: str) -> ImageRef | None:
    try:
        return parse_reference(text)
    except InvalidReference as exc:
        assert "\n" not in str(exc)  # one line, the input shown quoted
        return None


@PROPERTIES
@given(st.one_of(st.text(max_size=200), near))
def test_any_text_parses_or_is_an_invalid_reference(text: str) -> None:
    ref = _refuses_only_with_invalid_reference(text)
    if ref is not None:  # what parses is well formed, and reads back the same
        assert validate_repository(ref.repository) == ref.repository
        assert ref.tag is None or validate_tag(ref.tag) == ref.tag
        assert parse_reference(str(ref)) == ref


@PROPERTIES
@given(
    st.one_of(st.none(), hosts),
    st.lists(components, min_size=1, max_size=4),
    st.one_of(st.none(), tags),
    st.one_of(st.none(), digests),
)
def test_every_well_formed_reference_parses_to_its_parts(
    host: str | None, path: list[str], tag: str | None, digest: str | None
) -> None:
    repository = "/".join(path)
    registry = host or DOCKER_HUB
    # Docker Hub's name may be left out, unless the first component would then read as a host
    implied = host is None and "." not in path[0] and path[0] != "localhost"
    text = repository if implied else f"{registry}/{repository}"
    hub_official = registry == DOCKER_HUB and len(path) == 1
    expected_path = f"library/{repository}" if hub_official else repository
    text += (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    if len(expected_path) > 255:
        with pytest.raises(InvalidReference):
            parse_reference(text)
        return
    assert parse_reference(text) == ImageRef(registry, expected_path, tag, digest)


@PROPERTIES
@given(st.one_of(st.text(max_size=140), st.text(TAG_CHARS + "\n\r :/@", max_size=140)))
def test_a_tag_is_accepted_only_in_the_documented_alphabet(text: str) -> None:
    try:
        validate_tag(text)
    except InvalidReference:
        return
    assert 1 <= len(text) <= 128
    assert set(text) <= set(TAG_CHARS)
    assert text[0] not in ".-"


@PROPERTIES
@given(st.one_of(st.text(max_size=60), st.text(LOWER + "/._-A ", max_size=60)), near)
def test_ecr_names_and_platforms_refuse_only_with_invalid_reference(prefix: str, text: str) -> None:
    try:
        name = ecr_repository_name(prefix, text)
    except InvalidReference:
        pass
    else:
        assert 2 <= len(name) <= 256 and name == name.lower() and "\n" not in name
    try:
        platform = parse_platform(text)
    except InvalidReference:
        pass
    else:
        assert parse_platform(str(platform)) == platform


def test_tags_and_digests_do_not_end_in_a_newline() -> None:
    with pytest.raises(InvalidReference):
        validate_tag("latest\n")
    with pytest.raises(InvalidReference):
        validate_digest(DIGEST + "\n")
    assert validate_digest(DIGEST) == DIGEST
