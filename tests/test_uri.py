"""`mirror uri`: the ECR reference that mirrors a source reference. The mapping is a table
test; the command runs against the world (`--digest` asks the ECR front)."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from mirror.commands.uri import run_uri
from mirror.config import parse_config
from mirror.errors import ConfigError
from mirror.uri import mirror_uri
from tests.runner import Mirror
from tests.world.world import World

DIGEST = "sha256:" + "ab" * 32
ALPINE = {"image": "alpine", "tags": ["3.19"]}


def _config(images: Sequence[Mapping[str, Any]], prefix: str = "dockerhub") -> Any:
    document = {
        "version": 1,
        "target": {"registry": "ecr.example:5000", "prefix": prefix},
        "images": list(images),
    }
    return parse_config(json.dumps(document), "images.yaml")


URI_IMAGES = [
    {"image": "alpine", "tags": ["3.19", "latest"]},
    {"image": "bitnami/redis", "tags": {"match": r"^7\.4\.\d+$"}},
    {"image": "node", "tags": {"semver": ">=20,<22"}},
]


@pytest.mark.parametrize(
    ("text", "repository", "tag"),
    [
        ("alpine:3.19", "dockerhub/library/alpine", "3.19"),
        ("alpine", "dockerhub/library/alpine", "latest"),
        ("library/alpine:3.19", "dockerhub/library/alpine", "3.19"),
        ("docker.io/library/alpine:3.19", "dockerhub/library/alpine", "3.19"),
        ("index.docker.io/alpine:latest", "dockerhub/library/alpine", "latest"),
        ("bitnami/redis:7.4.1", "dockerhub/bitnami/redis", "7.4.1"),
        ("node:20.12.2", "dockerhub/library/node", "20.12.2"),
    ],
)
def test_uri_maps_a_docker_hub_reference(text: str, repository: str, tag: str) -> None:
    image, found = mirror_uri(_config(URI_IMAGES), text)
    assert (image.target_repository, found) == (repository, tag)


def test_uri_follows_the_prefix() -> None:
    image, _ = mirror_uri(_config(URI_IMAGES, prefix="mirror/hub"), "alpine:3.19")
    assert image.target_repository == "mirror/hub/library/alpine"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nginx:1.27", "library/nginx is not in images.yaml; nothing mirrors it"),
        ("alpine:3.18", "tag 3.18 is not mirrored for alpine (its tags: 3.19, latest)"),
        ("bitnami/redis:7.2.5", "does not match the tag selector of bitnami/redis"),
        ("node:18", "does not match the tag selector of node"),
        ("quay.io/org/app:1", "not from the source registry (docker.io)"),
        ("alpine@" + DIGEST, "--digest prints the digest reference"),
        ("Alpine:3.19", "invalid repository name"),
    ],
)
def test_uri_refuses_what_nothing_mirrors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        mirror_uri(_config(URI_IMAGES), text)
    assert message in str(caught.value)
    assert str(caught.value).startswith(text)


def _ecr_host(world: World) -> str:
    return world.ecr_url.split("://", 1)[1]


def test_uri_prints_the_reference_and_the_digest(mirror: Mirror) -> None:
    world = mirror.world
    mirror.config([ALPINE], create=["dockerhub/library/alpine"])
    config = str(mirror.config_path)
    plain = mirror.run("uri", "alpine:3.19", "-c", config)
    assert plain.code == 0, plain
    assert plain.stdout == f"{_ecr_host(world)}/dockerhub/library/alpine:3.19\n"

    absent = mirror.run("uri", "alpine:3.19", "-c", config, "--digest")
    assert absent.code == 1 and "is not in ECR yet" in absent.stderr

    assert mirror.sync().code == 0  # the registry engine keeps the digest
    pinned = mirror.run("uri", "alpine:3.19", "-c", config, "--digest")
    assert pinned.code == 0, pinned
    digest = world.corpus.get("library/alpine:3.19").digest
    assert pinned.stdout == f"{_ecr_host(world)}/dockerhub/library/alpine@{digest}\n"

    unknown = mirror.run("uri", "nginx", "-c", config)
    assert unknown.code == 2
    assert (
        unknown.stderr
        == f"mirror: error: nginx: library/nginx is not in {config}; nothing mirrors it\n"
    )


def test_run_uri_writes_to_the_given_stream(mirror: Mirror, aws_env: dict[str, str]) -> None:
    mirror.config([ALPINE], create=False)
    out = io.StringIO()
    assert run_uri(mirror.config_path, "alpine:3.19", digest=False, out=out) == 0
    assert out.getvalue() == f"{_ecr_host(mirror.world)}/dockerhub/library/alpine:3.19\n"
