"""The registry-to-registry copy engine, through the test world's real servers.

Docker Hub front (token auth, quota, CDN redirect, faults) -> ECR front (NAME_UNKNOWN,
broken multi-PATCH) over two distribution registries; ECR credentials from moto's
GetAuthorizationToken; skopeo and the Docker engine check what landed.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mirror.budget import DeferredError, PullBudget
from mirror.copy import Copier
from mirror.ecr import EcrCredentials
from mirror.engine import CopyError, CopyFailed, CopyRequest
from mirror.reference import Platform, parse_platform
from mirror.registry.auth import StaticCredentials
from mirror.registry.client import RegistryClient, new_http_client
from mirror.registry.retry import RetryPolicy
from tests.runner import check_report_shape
from tests.world.corpus import CorpusEntry
from tests.world.world import World

PREFIX = "dockerhub"
ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


class Ends:
    """The two registry clients of a copy, on one connection pool."""

    def __init__(self, world: World) -> None:
        self.http = new_http_client(32)
        self.ecr = EcrCredentials("us-east-1")
        self.source = RegistryClient(
            world.hub_url, StaticCredentials(None), self.http, counts_pulls=True
        )
        self.target = RegistryClient(world.ecr_url, self.ecr, self.http)

    def copier(self, budget: int | None = None, retry: RetryPolicy | None = None) -> Copier:
        return Copier(
            self.source,
            self.target,
            concurrency=8,
            budget=PullBudget(budget),
            retry=retry or RetryPolicy(initial_wait=0.05, max_wait=0.5),
        )


@pytest.fixture
def ends(fresh_world: World, aws_env: dict[str, str]) -> Iterator[Ends]:
    e = Ends(fresh_world)
    yield e
    e.http.close()


def request_for(
    ends: Ends, entry: CorpusEntry, platforms: tuple[Platform, ...] | None = None
) -> CopyRequest:
    head = ends.source.head_manifest(entry.repository, entry.tag)
    assert head is not None
    return CopyRequest(entry.repository, entry.tag, f"{PREFIX}/{entry.repository}", platforms, head)


def skopeo_raw(world: World, reference: str) -> bytes:
    host = world.ecr_url.removeprefix("http://")
    result = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            f"AWS:{world.ecr_password}",
            f"docker://{host}/{reference}",
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def complete_tags(world: World) -> dict[str, list[str]]:
    """Every tag in the ECR stand-in, checked to be complete: its manifest, every child and
    every blob present. Talks to the upstream registry directly (not through mirror)."""
    auth = (world.ecr_user, world.ecr_password)
    base = world.ecr_upstream_url
    with httpx.Client(auth=auth, timeout=30) as http:
        catalog = http.get(f"{base}/v2/_catalog").json().get("repositories") or []
        found: dict[str, list[str]] = {}
        for repository in catalog:
            tags = http.get(f"{base}/v2/{repository}/tags/list").json().get("tags") or []
            for tag in tags:
                check_complete(http, base, repository, tag)
            found[repository] = sorted(tags)
    return found


def check_complete(http: httpx.Client, base: str, repository: str, reference: str) -> None:
    answer = http.get(f"{base}/v2/{repository}/manifests/{reference}", headers={"Accept": ACCEPT})
    assert answer.status_code == 200, f"{repository}:{reference} has no manifest"
    document = json.loads(answer.content)
    for child in document.get("manifests") or []:
        check_complete(http, base, repository, child["digest"])
    for blob in [document.get("config"), *(document.get("layers") or [])]:
        if blob:
            head = http.head(f"{base}/v2/{repository}/blobs/{blob['digest']}")
            assert head.status_code == 200, f"{repository}:{reference} misses blob {blob['digest']}"


@pytest.mark.parametrize(
    "ref",
    ["alpine:3.19", "debian:12-slim", "python:3.12-slim", "bitnami/redis:7.4.1"],
    ids=["docker-schema2", "oci-manifest", "docker-manifest-list", "oci-index-attestations"],
)
def test_copy_keeps_digest_and_every_platform(ends: Ends, fresh_world: World, ref: str) -> None:
    entry = fresh_world.corpus.get(ref)
    target_repository = f"{PREFIX}/{entry.repository}"
    fresh_world.create_repository(target_repository)
    with ends.copier() as copier:
        outcome = copier.copy(request_for(ends, entry))
    assert outcome.digest == entry.digest
    raw = skopeo_raw(fresh_world, f"{target_repository}:{entry.tag}")
    assert digest(raw) == entry.digest  # the exact bytes: same digest as the source
    for manifest in entry.manifests:  # every platform, and attestations, by digest
        assert (
            digest(skopeo_raw(fresh_world, f"{target_repository}@{manifest.digest}"))
            == manifest.digest
        )
    assert complete_tags(fresh_world)[target_repository] == [entry.tag]
    # pulls: the top manifest, plus each child of an index
    assert outcome.pulls == (1 + len(entry.manifests) if entry.is_index else 1)
    assert fresh_world.hub_front.counters["cdn_with_auth"] == 0
    assert fresh_world.ecr_front.counters["extra_patches"] == 0


def test_platform_filter_copies_only_the_chosen_platforms(ends: Ends, fresh_world: World) -> None:
    entry = fresh_world.corpus.get("bitnami/redis:7.4.2")
    target_repository = f"{PREFIX}/{entry.repository}"
    fresh_world.create_repository(target_repository)
    amd64 = (parse_platform("linux/amd64"),)
    with ends.copier() as copier:
        outcome = copier.copy(request_for(ends, entry, amd64))
        index = json.loads(skopeo_raw(fresh_world, f"{target_repository}:{entry.tag}"))
        kept = {m["digest"] for m in index["manifests"]}
        wanted = entry.manifest_for("linux/amd64")
        attestation = next(m for m in entry.attestations if m.attests == wanted.digest)
        assert kept == {wanted.digest, attestation.digest}
        assert index["annotations"]["io.mirror.source.digest"] == entry.digest
        assert outcome.pulls == 3  # index, amd64, its attestation: arm64 never fetched
        pulls_before = fresh_world.hub_front.counters["pulls"]
        head = ends.source.head_manifest(entry.repository, entry.tag)
        assert head is not None
        up_to_date = Copier.up_to_date_check(ends.target, RetryPolicy())
        assert up_to_date(target_repository, entry.tag, head, amd64)
        assert not up_to_date(target_repository, entry.tag, head, None)
        assert fresh_world.hub_front.counters["pulls"] == pulls_before  # HEADs only
    complete_tags(fresh_world)


def test_a_platform_the_source_lacks_is_a_clear_error(ends: Ends, fresh_world: World) -> None:
    entry = fresh_world.corpus.get("python:3.12-slim")
    fresh_world.create_repository(f"{PREFIX}/{entry.repository}")
    with (
        ends.copier() as copier,
        pytest.raises(CopyFailed, match=r"linux/s390x.*linux/amd64") as caught,
    ):
        copier.copy(request_for(ends, entry, (parse_platform("linux/s390x"),)))
    assert isinstance(caught.value.cause, CopyError)
    assert complete_tags(fresh_world).get(f"{PREFIX}/{entry.repository}", []) == []


def test_shared_blobs_are_copied_once_then_mounted(ends: Ends, fresh_world: World) -> None:
    first, second = fresh_world.corpus.get("alpine:3.19"), fresh_world.corpus.get("alpine:3.20")
    shared = set(first.blobs) & set(second.blobs)
    assert shared, "the corpus gives alpine 3.19 and 3.20 a common base layer"
    for name in ("mirror-a/library/alpine", "mirror-b/library/alpine"):
        fresh_world.create_repository(name)
    with ends.copier() as copier:
        one = copier.copy(
            CopyRequest(
                first.repository,
                first.tag,
                "mirror-a/library/alpine",
                None,
                request_for(ends, first).source,
            )
        )
        two = copier.copy(
            CopyRequest(
                first.repository,
                first.tag,
                "mirror-b/library/alpine",
                None,
                request_for(ends, first).source,
            )
        )
    assert one.blobs_copied == len(first.blobs)
    assert two.blobs_copied == 0 and two.blobs_mounted == len(first.blobs)
    assert fresh_world.ecr_front.counters["mounted"] == len(first.blobs)


def test_blob_mount_refused_falls_back_to_upload(ends: Ends, fresh_world: World) -> None:
    fresh_world.ecr_front.blob_mounting = False  # ECR without BLOB_MOUNTING: 202
    entry = fresh_world.corpus.get("busybox:1.36")
    for name in ("m1/library/busybox", "m2/library/busybox"):
        fresh_world.create_repository(name)
    with ends.copier() as copier:
        for name in ("m1/library/busybox", "m2/library/busybox"):
            copier.copy(
                CopyRequest(
                    entry.repository, entry.tag, name, None, request_for(ends, entry).source
                )
            )
    found = complete_tags(fresh_world)
    assert found["m1/library/busybox"] == found["m2/library/busybox"] == ["1.36"]


def test_faults_are_retried_and_every_image_lands(ends: Ends, fresh_world: World) -> None:
    hub = fresh_world.hub_front
    hub.set_faults(seed=7, blob_503=0.10, blob_reset=0.05, manifest_502=0.05)
    fresh_world.ecr_front.set_faults(seed=3, throttle_429=0.05)
    refs = [
        "alpine:3.19",
        "busybox:1.36",
        "python:3.12-slim",
        "python:3.13-slim",
        "bitnami/redis:7.4.1",
        "bitnami/redis:7.2.5",
        "debian:12-slim",
    ]
    retry = RetryPolicy(attempts=8, initial_wait=0.02, max_wait=0.2)
    for repository in {fresh_world.corpus.get(ref).repository for ref in refs}:
        fresh_world.create_repository(f"{PREFIX}/{repository}")
    with ends.copier(retry=retry) as copier:
        for ref in refs:
            entry = fresh_world.corpus.get(ref)
            assert copier.copy(request_for(ends, entry)).digest == entry.digest
    injected = sum(
        hub.counters[k] for k in ("fault_blob_503", "fault_blob_reset", "fault_manifest_502")
    )
    injected += fresh_world.ecr_front.counters["throttled"]
    assert injected > 0, "the faults fired"
    assert 0 < retry.retries <= injected  # every fault cost at most one retry
    for ref in refs:
        entry = fresh_world.corpus.get(ref)
        assert (
            digest(skopeo_raw(fresh_world, f"{PREFIX}/{entry.repository}:{entry.tag}"))
            == entry.digest
        )
    complete_tags(fresh_world)


def test_expired_tokens_are_renewed(ends: Ends, fresh_world: World) -> None:
    entry = fresh_world.corpus.get("alpine:3.19")
    fresh_world.create_repository(f"{PREFIX}/{entry.repository}")
    request = request_for(ends, entry)
    tokens = fresh_world.hub_front.counters["token"]
    fresh_world.hub_front.expire_tokens()
    with ends.copier() as copier:
        assert copier.copy(request).digest == entry.digest
    assert fresh_world.hub_front.counters["expired_token"] >= 1
    assert fresh_world.hub_front.counters["token"] > tokens


def test_the_pull_budget_defers_before_spending(ends: Ends, fresh_world: World) -> None:

    entry = fresh_world.corpus.get("python:3.12-slim")
    fresh_world.create_repository(f"{PREFIX}/{entry.repository}")
    pulls = fresh_world.hub_front.counters["pulls"]
    with (
        ends.copier(budget=2) as copier,
        pytest.raises(CopyFailed, match="needs 2 more pulls") as caught,
    ):
        copier.copy(request_for(ends, entry))  # index (1) + 2 platforms > 2
    assert isinstance(caught.value.cause, DeferredError) and caught.value.outcome.pulls == 1
    assert fresh_world.hub_front.counters["pulls"] == pulls + 1  # only the index was fetched
    assert complete_tags(fresh_world).get(f"{PREFIX}/{entry.repository}", []) == []


def test_docker_engine_pulls_the_mirrored_image(
    ends: Ends, fresh_world: World, docker_engine: object
) -> None:
    entry = fresh_world.corpus.get("python:3.12-slim")
    fresh_world.create_repository(f"{PREFIX}/{entry.repository}")
    with ends.copier() as copier:
        copier.copy(request_for(ends, entry))
    client = fresh_world.docker_engine().client()
    host = fresh_world.ecr_url.removeprefix("http://")
    image = client.images.pull(
        f"{host}/{PREFIX}/{entry.repository}",
        tag=entry.tag,
        auth_config={"username": "AWS", "password": fresh_world.ecr_password},
    )
    assert f"{host}/{PREFIX}/{entry.repository}@{entry.digest}" in image.attrs["RepoDigests"]
    client.images.remove(image.id, force=True)


def sync_command(config: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mirror",
        "sync",
        "--no-ensure-repo",
        "-c",
        str(config),
        "-o",
        "json",
    ]


def test_sigkill_mid_copy_never_leaves_a_broken_tag(fresh_world: World, tmp_path: Path) -> None:
    """Kill `mirror sync` mid-copy, three times; after each kill every tag in the target is
    complete; a last run finishes the job."""
    hub = fresh_world.hub_front
    hub.set_faults(latency_ms=40)  # slow enough to be killed mid-way
    images = [
        {"image": "python", "tags": ["3.12-slim", "3.13-slim"]},
        {"image": "bitnami/redis", "tags": ["7.4.1", "7.4.2", "7.2.5"]},
        {"image": "alpine", "tags": ["3.19", "3.20"]},
    ]
    config = tmp_path / "images.yaml"
    fresh_world.write_config(config, images=images)
    for name in ("library/python", "bitnami/redis", "library/alpine"):
        fresh_world.create_repository(f"{PREFIX}/{name}")
    env = {**os.environ, **fresh_world.env()}
    command = sync_command(config)
    counters = fresh_world.ecr_front.counters
    for _ in range(3):  # each run is killed once it has committed two more blobs
        wanted = counters["upload_completed"] + 2
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while counters["upload_completed"] < wanted and time.monotonic() < deadline:
            assert process.poll() is None, "the copy ended before it could be killed"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        complete_tags(fresh_world)  # raises on a tag whose manifest or blobs are missing
    hub.set_faults()
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    report = json.loads(final.stdout)
    check_report_shape(report)
    actions = [i["action"] for i in report["images"]]
    assert set(actions) <= {"copied", "up-to-date"}
    assert "copied" in actions, "the kills came before the copy was done"
    found = complete_tags(fresh_world)
    assert found[f"{PREFIX}/library/python"] == ["3.12-slim", "3.13-slim"]
    assert found[f"{PREFIX}/bitnami/redis"] == ["7.2.5", "7.4.1", "7.4.2"]


def test_memory_stays_bounded_while_copying_a_large_layer(
    fresh_world: World, tmp_path: Path
) -> None:
    """A 256 MiB layer streams through: the mirror process's peak RSS stays under 120 MB
    (the benchmark runs the same check with a 1 GiB layer)."""
    from tests.world.corpus import MiB, big_image, push_corpus

    spec = big_image("bench/memory", "1", [256 * MiB], files_per_layer=1)
    pushed = push_corpus(fresh_world.hub_upstream_url, [spec], tmpdir=tmp_path)
    entry = pushed.get("bench/memory:1")
    fresh_world.create_repository(f"{PREFIX}/bench/memory")
    config = tmp_path / "images.yaml"
    fresh_world.write_config(config, images=[{"image": "bench/memory", "tags": ["1"]}])
    command = sync_command(config)
    process = subprocess.Popen(
        command,
        env={**os.environ, **fresh_world.env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    peak_kb = 0
    status = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    stdout, _ = process.communicate()
    assert process.returncode == 0
    report = json.loads(stdout)
    check_report_shape(report)
    assert report["images"][0]["bytes"] > 256 * MiB * 0.99
    assert digest(skopeo_raw(fresh_world, f"{PREFIX}/bench/memory:1")) == entry.digest
    assert 0 < peak_kb < 120 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"


def test_immutable_tags_accept_the_same_image_and_refuse_another(
    ends: Ends, fresh_world: World
) -> None:
    fresh_world.ecr_front.immutable_tags = True  # ECR answers TAG_INVALID over any existing tag
    first, other = fresh_world.corpus.get("alpine:3.19"), fresh_world.corpus.get("alpine:3.20")
    fresh_world.create_repository(f"{PREFIX}/library/alpine")
    with ends.copier() as copier:
        assert copier.copy(request_for(ends, first)).digest == first.digest
        assert copier.copy(request_for(ends, first)).digest == first.digest  # same digest: fine
        moved = CopyRequest(
            first.repository,
            first.tag,
            f"{PREFIX}/library/alpine",
            None,
            request_for(ends, other).source,
        )  # Docker Hub moved the tag
        with pytest.raises(
            CopyFailed, match=r"alpine:3\.19 is immutable and points at sha256:"
        ) as caught:
            copier.copy(moved)
        assert isinstance(caught.value.cause, CopyError)
    assert (
        fresh_world.ecr_front.counters.get("tag_invalid", f"{PREFIX}/library/alpine", "3.19") == 2
    )
    assert digest(skopeo_raw(fresh_world, f"{PREFIX}/library/alpine:3.19")) == first.digest


class RecordingProgress:
    def __init__(self) -> None:
        self.expected: dict[str, int] = {}
        self.advanced: dict[str, int] = {}

    def expect(self, image: str, size: int) -> None:
        self.expected[image] = self.expected.get(image, 0) + size

    def advance(self, image: str, size: int) -> None:
        self.advanced[image] = self.advanced.get(image, 0) + size


def test_progress_reaches_what_each_image_needs(ends: Ends, fresh_world: World) -> None:
    """Bytes streamed, blobs already there and blobs another image copied all count, so every
    image's bar ends full, and at the image's total size."""
    progress = RecordingProgress()
    refs = ["alpine:3.19", "alpine:3.20", "python:3.12-slim"]  # 3.20 shares 3.19's base layer
    for repository in ("library/alpine", "library/python"):
        fresh_world.create_repository(f"{PREFIX}/{repository}")
    copier = Copier(
        ends.source,
        ends.target,
        concurrency=4,
        budget=PullBudget(None),
        retry=RetryPolicy(initial_wait=0.05),
        progress=progress,
    )
    with copier:
        for ref in refs:
            copier.copy(request_for(ends, fresh_world.corpus.get(ref)))
    for ref in refs:
        entry = fresh_world.corpus.get(ref)
        size = sum(fresh_world.corpus.blob_sizes[d] for d in entry.blobs)
        assert progress.expected[entry.ref] == progress.advanced[entry.ref] == size
