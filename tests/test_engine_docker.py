"""The Docker engine path (`mirror sync --engine docker`): the copier and its engine.

Pure decisions (markers, platforms, error classes, the engine's notes) are table tests. The
rest runs as the user runs it, against the world: a real dockerd (the world's private one)
pulls from the Docker Hub front and pushes to the ECR front, and the fronts' counters say
what was spent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx
import pytest

from mirror.budget import DeferredError, PullBudget
from mirror.config import parse_config
from mirror.docker_copier import DockerEngineFactory, entry_platform, marker_tag
from mirror.docker_sdk import is_transient_message, read_stream
from mirror.engine import CopyError, CopyFailed, CopyRequest
from mirror.engine_docker import DockerOptions, engine_notes
from mirror.errors import ConfigError, EngineError
from mirror.manifests import ACCEPT
from mirror.reference import Platform, validate_tag
from mirror.registry.auth import Credentials, StaticCredentials
from mirror.registry.client import RegistryClient, new_http_client
from mirror.registry.retry import RetryPolicy
from tests.runner import Mirror, QuotaThief
from tests.world.dockerd import DockerEngine
from tests.world.world import World

DIGEST = "sha256:" + "ab" * 32
AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")
ALPINE = {"image": "alpine", "tags": ["3.19"]}
PYTHON = {"image": "python", "tags": ["3.12-slim"]}  # an index: amd64 and arm64/v8


# --- pure decisions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        (None, "mirror-src-" + "ab" * 20),
        (AMD64, "mirror-src-" + "ab" * 20 + "-linux-amd64"),
        (Platform("linux", "arm", "v7"), "mirror-src-" + "ab" * 20 + "-linux-arm-v7"),
    ],
)
def test_marker_tag_names_source_digest_and_platform(
    platform: Platform | None, expected: str
) -> None:
    tag = marker_tag(DIGEST, platform)
    assert tag == expected
    assert validate_tag(tag) == tag  # a valid tag, at most 128 characters


def test_marker_tag_of_the_longest_platform_is_a_valid_tag() -> None:
    tag = marker_tag(DIGEST, Platform("windows", "mips64le", "v8"))
    assert len(tag) <= 128 and validate_tag(tag) == tag


def test_entry_platform_one_per_tag() -> None:
    assert entry_platform(None, AMD64) == AMD64
    assert entry_platform((ARM64,), AMD64) == ARM64
    with pytest.raises(CopyError) as caught:
        entry_platform((AMD64, ARM64), AMD64)
    message = str(caught.value)
    assert "one platform per tag" in message and "lists 2" in message
    assert "linux/amd64,linux/arm64" in message and "--engine registry" in message


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        ("toomanyrequests: Rate exceeded", True),
        ("received unexpected HTTP status: 503 Service Unavailable", True),
        ("received unexpected HTTP status: 502 Bad Gateway", True),
        ("Get http://x/v2/: dial tcp: i/o timeout", True),
        ("read: connection reset by peer", True),
        ("unexpected EOF", True),
        ("name unknown: The repository with name 'x' does not exist", False),
        ("unauthorized: authentication required", False),
        ("denied: requested access to the resource is denied", False),
        ("manifest unknown: manifest unknown", False),
        ("tag invalid: The image tag '1' already exists", False),
        ("no matching manifest for linux/s390x in the manifest list entries", False),
        ("something nobody expected", False),
    ],
)
def test_engine_messages_transient_or_final(message: str, transient: bool) -> None:
    assert is_transient_message(message) is transient


def test_push_stream_error_line_is_a_failure() -> None:
    lines = [
        {"status": "The push refers to repository [h/x]"},
        {"status": "Preparing", "progressDetail": {}, "id": "abc"},
        {
            "errorDetail": {"message": "name unknown: The repository with name 'x' ..."},
            "error": "name unknown: The repository with name 'x' ...",
        },
    ]
    seen: list[dict[str, Any]] = []
    with pytest.raises(EngineError) as caught:
        read_stream("push h/x:1", lines, seen.append)
    assert str(caught.value) == "push h/x:1: name unknown: The repository with name 'x' ..."
    assert not caught.value.transient
    assert len(seen) == 2


def test_push_stream_gives_the_digest() -> None:
    lines = [
        {"status": "Pushed", "id": "abc"},
        {"aux": {"Tag": "1", "Digest": DIGEST, "Size": 735}},
    ]
    assert read_stream("push h/x:1", lines, lambda line: None)["Digest"] == DIGEST


def _config(images: Sequence[Mapping[str, Any]]) -> Any:
    document = {"version": 1, "target": {"registry": "ecr.example:5000"}, "images": list(images)}
    return parse_config(json.dumps(document), "images.yaml")


def test_engine_notes_name_the_platform_and_the_refused_entries() -> None:
    config = _config(
        [
            {"image": "alpine", "tags": ["3.19"]},
            {"image": "python", "tags": ["3.12"], "platforms": ["linux/arm64"]},
            {"image": "bitnami/redis", "tags": ["7"], "platforms": ["linux/amd64", "linux/arm64"]},
        ]
    )
    notes = engine_notes(config, ARM64)
    assert len(notes) == 2
    assert "one platform, linux/arm64" in notes[0] and "(alpine)" in notes[0]
    assert "python" not in notes[0]
    assert "refuses" in notes[1] and "(bitnami/redis)" in notes[1]
    assert (
        engine_notes(_config([{"image": "x", "tags": ["1"], "platforms": ["linux/amd64"]}]), AMD64)
        == []
    )


def test_docker_options_refuse_a_bad_platform() -> None:
    assert DockerOptions.parse("linux/arm64", True) == DockerOptions(ARM64, True)
    assert DockerOptions.parse(None, False) == DockerOptions(None, False)
    with pytest.raises(ConfigError, match="--platform"):
        DockerOptions.parse("linux", False)


# --- against the world: running the CLI --------------------------------------------------


def _head(world: World, repository: str, reference: str) -> str | None:
    """The digest the ECR stand-in holds for `repository:reference` (None: absent)."""
    response = httpx.head(
        f"{world.ecr_url}/v2/{repository}/manifests/{reference}",
        auth=world.ecr_auth,
        headers={"Accept": ACCEPT},
    )
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response
    return response.headers["docker-content-digest"]


def _hub_host(world: World) -> str:
    return world.hub_url.split("://", 1)[1]


def _ecr_host(world: World) -> str:
    return world.ecr_url.split("://", 1)[1]


def _local_refs(engine: DockerEngine, *hosts: str) -> list[str]:
    """References the engine holds under these registries (tags and digests)."""
    refs: list[str] = []
    for image in engine.client().images.list(all=True):
        for ref in (image.attrs.get("RepoTags") or []) + (image.attrs.get("RepoDigests") or []):
            if ref.startswith(hosts):
                refs.append(ref)
    return refs


def _engine_platform(engine: DockerEngine) -> Platform:
    version = engine.client().version()
    return Platform(version["Os"], version["Arch"])


@pytest.mark.dockerd
def test_docker_engine_mirrors_then_finds_it_up_to_date(
    engine_mirror: Mirror, docker_engine: DockerEngine
) -> None:
    world = engine_mirror.world
    engine_mirror.config(
        [ALPINE, PYTHON], create=["dockerhub/library/alpine", "dockerhub/library/python"]
    )
    first = engine_mirror.sync("--engine", "docker")
    assert first.code == 0, first
    entries = first.by_tag()
    assert {ref: e["action"] for ref, e in entries.items()} == {
        "library/alpine:3.19": "copied",
        "library/python:3.12-slim": "copied",
    }
    # one manifest GET for a single manifest; the index and one platform's for an index
    assert entries["library/alpine:3.19"]["pulls"] == 1
    assert entries["library/python:3.12-slim"]["pulls"] == 2
    assert world.hub_front.counters["pulls"] == 3
    platform = _engine_platform(docker_engine)
    assert f"copies one platform, {platform}, for the entries at `platforms: all`" in first.stderr
    assert "ECR digests differ from Docker Hub's" in first.stderr

    # the tags are in ECR, each with a marker naming its source, at the same image
    alpine = world.corpus.get("library/alpine:3.19")
    python = world.corpus.get("library/python:3.12-slim")
    tag = _head(world, "dockerhub/library/alpine", "3.19")
    assert tag == entries["library/alpine:3.19"]["digest"]
    assert tag == _head(world, "dockerhub/library/alpine", marker_tag(alpine.digest, None))
    marker = marker_tag(python.digest, platform)
    assert _head(world, "dockerhub/library/python", "3.12-slim") == _head(
        world, "dockerhub/library/python", marker
    )
    assert _head(world, "dockerhub/library/python", "3.12-slim") != python.digest
    # what the engine pulled is gone from it
    assert _local_refs(docker_engine, _hub_host(world), _ecr_host(world)) == []

    second = engine_mirror.sync("--engine", "docker")
    assert second.code == 0, second
    assert {e["action"] for e in second.report["images"]} == {"up-to-date"}
    assert world.hub_front.counters["pulls"] == 3  # nothing pulled


@pytest.mark.dockerd
def test_docker_engine_failures_are_reported_per_image(engine_mirror: Mirror) -> None:
    world = engine_mirror.world
    engine_mirror.config(
        [
            {"image": "busybox", "tags": ["1.36"]},  # its ECR repository goes away mid-run
            {"image": "alpine", "tags": ["3.20"]},
            {
                "image": "bitnami/redis",
                "tags": ["7.4.1"],
                "platforms": ["linux/amd64", "linux/arm64"],
            },
        ],
        create=["dockerhub/library/alpine", "dockerhub/bitnami/redis", "dockerhub/library/busybox"],
    )
    # The plan checks that each ECR repository exists; busybox's is deleted once the engine
    # has pulled it, so its push meets ECR's NAME_UNKNOWN inside the push stream.
    exists = world.ecr_front.repository_exists

    def deleted_after_the_pull(name: str) -> bool:
        if name == "dockerhub/library/busybox":
            return world.hub_front.counters.get("pulls", "library/busybox") == 0
        return bool(exists(name))

    world.ecr_front.repository_exists = deleted_after_the_pull
    run = engine_mirror.sync("--engine", "docker", "--platform", "linux/amd64")
    assert run.code == 1, run
    entries = run.by_tag()
    assert entries["library/alpine:3.20"]["action"] == "copied"
    busybox = entries["library/busybox:1.36"]
    assert busybox["action"] == "failed"
    assert busybox["pulls"] == 1  # pulled, then refused by ECR: the report says what it spent
    assert (
        "name unknown: The repository with name 'dockerhub/library/busybox' does not exist"
        in (busybox["error"])
    )
    redis = entries["bitnami/redis:7.4.1"]
    assert redis["action"] == "failed"
    assert (
        "the docker engine copies one platform per tag, and this entry lists 2" in (redis["error"])
    )
    assert "refuses the entries that list several platforms (bitnami/redis)" in run.stderr
    assert world.hub_front.counters.get("pulls", "bitnami/redis") == 0  # refused before a pull


def test_sync_says_plainly_when_the_engine_is_unreachable(mirror: Mirror) -> None:
    mirror.config([ALPINE], create=["dockerhub/library/alpine"])
    run = mirror.run(
        "sync",
        "--no-ensure-repo",
        "-c",
        str(mirror.config_path),
        "--engine",
        "docker",
        env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
    )
    assert run.code == 1, run
    assert "mirror: error: cannot reach the Docker engine at unix:///nonexistent/docker.sock" in (
        run.stderr
    )
    assert run.stdout == ""


def test_docker_options_need_the_docker_engine(mirror: Mirror) -> None:
    mirror.config([ALPINE], create=False)
    run = mirror.sync("--keep-local")
    assert run.code == 2 and "apply to --engine docker only" in run.stderr


# --- against the world: the copier itself (quota, retries) ---------------------------------


@pytest.fixture
def clients(fresh_world: World) -> Iterator[tuple[RegistryClient, RegistryClient]]:
    with new_http_client(connections=4) as http:
        source = RegistryClient(
            fresh_world.hub_url, StaticCredentials(None), http, counts_pulls=True
        )
        target = RegistryClient(
            fresh_world.ecr_url, StaticCredentials(Credentials(*fresh_world.ecr_auth)), http
        )
        yield source, target


def _request(source: RegistryClient, repository: str, tag: str) -> CopyRequest:
    head = source.head_manifest(repository, tag)
    assert head is not None
    return CopyRequest(repository, tag, f"dockerhub/{repository}", None, head)


def _factory(world: World, engine: DockerEngine) -> DockerEngineFactory:
    return DockerEngineFactory(
        platform=AMD64,
        source_credentials=None,
        target_credentials=StaticCredentials(Credentials(*world.ecr_auth)),
        client=engine.client(),
    )


@pytest.mark.dockerd
def test_docker_hub_quota_defers_and_stops_the_budget(
    fresh_world: World, docker_engine: DockerEngine, clients: tuple[RegistryClient, RegistryClient]
) -> None:
    source, target = clients
    request = _request(source, "library/busybox", "1.36")
    fresh_world.hub_front.set_remaining("127.0.0.1", 0)
    budget = PullBudget(None)
    copier = _factory(fresh_world, docker_engine)(
        source, target, concurrency=1, budget=budget, retry=RetryPolicy(initial_wait=0.01)
    )
    with pytest.raises(CopyFailed, match="toomanyrequests") as caught:
        copier.copy(request)
    assert isinstance(caught.value.cause, DeferredError)
    assert budget.quota_hit and not budget.take(1)
    assert fresh_world.hub_front.counters["rate_limited"] == 1  # not retried


class _HealingRetry(RetryPolicy):
    """Turns the ECR front's faults off before its first backoff."""

    world: World | None = None

    def _before_sleep(self, state: Any) -> None:
        super()._before_sleep(state)
        assert self.world is not None
        self.world.ecr_front.set_faults()


@pytest.mark.dockerd
def test_target_throttling_is_retried(
    fresh_world: World, docker_engine: DockerEngine, clients: tuple[RegistryClient, RegistryClient]
) -> None:
    source, target = clients
    fresh_world.create_repository("dockerhub/library/busybox")
    request = _request(source, "library/busybox", "1.36")
    retry = _HealingRetry(initial_wait=0.01)
    retry.world = fresh_world
    copier = _factory(fresh_world, docker_engine)(
        source, target, concurrency=1, budget=PullBudget(None), retry=retry
    )
    fresh_world.ecr_front.set_faults(throttle_429=1.0)
    outcome = copier.copy(request)
    assert retry.retries == 1
    assert fresh_world.ecr_front.counters["throttled"] >= 1
    assert outcome.digest == _head(fresh_world, "dockerhub/library/busybox", "1.36")
    assert outcome.pulls == 1


@pytest.mark.dockerd
def test_immutable_tags_already_mirrored_are_success_others_a_clear_failure(
    fresh_world: World, docker_engine: DockerEngine, clients: tuple[RegistryClient, RegistryClient]
) -> None:
    source, target = clients
    fresh_world.create_repository("dockerhub/library/busybox")
    fresh_world.ecr_front.immutable_tags = True
    request = _request(source, "library/busybox", "1.36")
    copier = _factory(fresh_world, docker_engine)(
        source, target, concurrency=1, budget=PullBudget(None), retry=RetryPolicy()
    )
    first = copier.copy(request)
    again = copier.copy(request)  # marker and tag exist, cannot be overwritten: same image
    assert again.digest == first.digest
    assert fresh_world.ecr_front.counters.get("tag_invalid", "dockerhub/library/busybox") == 2

    alpine = _request(source, "library/alpine", "3.19")
    other = CopyRequest("library/alpine", "1.36", "dockerhub/library/busybox", None, alpine.source)
    with pytest.raises(CopyFailed) as caught:
        copier.copy(other)
    assert isinstance(caught.value.cause, CopyError)
    assert "dockerhub/library/busybox:1.36 is immutable and points at" in str(caught.value)
    assert first.digest in str(caught.value)


@pytest.mark.dockerd
def test_docker_engine_meets_a_429_once_then_defers(
    engine_mirror: Mirror, thief: QuotaThief
) -> None:
    """Someone else spends the quota after the first manifest GET: the next pull meets
    Docker Hub's 429, and no pull after it is tried (manifests are fetched one pull at a
    time while the quota is limited)."""
    world = engine_mirror.world
    thief.at = 2
    images = [
        {"image": "alpine", "tags": ["3.19", "3.20"]},
        {"image": "busybox", "tags": ["1.36"]},
        {"image": "debian", "tags": ["12-slim"]},
    ]
    engine_mirror.config(images, reserve=0)
    run = engine_mirror.sync("--engine", "docker", "--platform", "linux/amd64")
    assert run.code == 3, run
    assert world.hub_front.counters["rate_limited"] == 1, "more than one 429 in a run"
    entries = run.by_tag()
    copied = [ref for ref, e in entries.items() if e["action"] == "copied"]
    deferred = [ref for ref, e in entries.items() if e["action"] == "deferred"]
    assert len(copied) == 1 and len(deferred) == 3, entries
