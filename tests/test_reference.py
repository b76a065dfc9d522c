"""Docker's reference rules and ECR names: a table of cases."""

from __future__ import annotations

import pytest

from mirror.reference import (
    ImageRef,
    InvalidReference,
    Platform,
    ecr_repository_name,
    parse_platform,
    parse_reference,
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
    ["", "Python", "python:", "python:-x", "python@sha256:12", "a//b", "a/-b", f"x@{DIGEST[:-1]}"],
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
