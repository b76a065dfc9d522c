"""The test world itself works: registries, corpus, moto, dockerd, clean shutdown."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import subprocess
from pathlib import Path

import boto3
import httpx
import pytest
import yaml

from tests.world.corpus import (
    ACCEPT,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    INTOTO,
    OCI_INDEX,
    OCI_MANIFEST,
    ImageSpec,
    KiB,
    LayerSpec,
    big_image,
    build_corpus,
    linux,
    push_corpus,
)
from tests.world.dockerd import SKIP_ENV, DockerdUnavailable, DockerEngine
from tests.world.procs import ServerStartError, pid_alive, start_process
from tests.world.world import World


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- registries


def test_registries_answer(world: World) -> None:
    assert httpx.get(f"{world.hub_upstream_url}/v2/").status_code == 200
    r = httpx.get(f"{world.ecr_upstream_url}/v2/")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Basic ")
    assert httpx.get(f"{world.ecr_upstream_url}/v2/", auth=world.ecr_auth).status_code == 200
    assert httpx.get(f"{world.ecr_upstream_url}/v2/", auth=("AWS", "wrong")).status_code == 401
    # the fronts (or the bare registries without fronts) answer too
    for url in (world.hub_url, world.ecr_url):
        assert httpx.get(f"{url}/v2/").status_code in (200, 401)


def test_ecr_password_is_motos_token(world: World) -> None:
    assert world.ecr_user == "AWS"
    assert world.ecr_password == "123456789012-auth-token"


# ---------------------------------------------------------------- corpus


def test_corpus_digests_match_skopeo_and_registry(world: World) -> None:
    corpus = world.corpus
    picks = [
        corpus.get("alpine:3.19"),
        corpus.get("library/debian:12-slim"),
        corpus.get("python:3.12-slim"),
        corpus.get("bitnami/redis:7.4.1"),
        corpus.get("node:lts"),
        corpus.get("ratelimitpreview/test:latest"),
    ]
    assert {e.media_type for e in picks} == {DOCKER_MANIFEST, OCI_MANIFEST, DOCKER_LIST, OCI_INDEX}
    procs = [
        subprocess.Popen(
            [
                "skopeo",
                "inspect",
                "--raw",
                "--tls-verify=false",
                f"docker://{world.hub_registry.host}/{e.ref}",  # type: ignore[union-attr]
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for e in picks
    ]
    with httpx.Client(base_url=world.hub_upstream_url, headers={"Accept": ACCEPT}) as client:
        for entry, proc in zip(picks, procs, strict=True):
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err.decode()
            assert sha256(out) == entry.digest, entry.ref
            assert out == entry.raw
            r = client.get(f"/v2/{entry.repository}/manifests/{entry.tag}")
            assert r.status_code == 200
            assert r.headers["docker-content-digest"] == entry.digest
            assert r.headers["content-type"] == entry.media_type
            assert sha256(r.content) == entry.digest


def test_corpus_blobs_and_children_present(world: World) -> None:
    seen: set[tuple[str, str]] = set()
    with httpx.Client(base_url=world.hub_upstream_url, headers={"Accept": ACCEPT}) as client:
        for entry in world.corpus:
            for m in entry.manifests if entry.is_index else ():
                r = client.head(f"/v2/{entry.repository}/manifests/{m.digest}")
                assert r.status_code == 200, (entry.ref, m.digest)
            for digest in entry.blobs:
                if (entry.repository, digest) in seen:
                    continue
                seen.add((entry.repository, digest))
                r = client.head(f"/v2/{entry.repository}/blobs/{digest}")
                assert r.status_code == 200, (entry.ref, digest)
                assert int(r.headers["content-length"]) == world.corpus.blob_sizes[digest]
        tags = client.get("/v2/library/node/tags/list").json()["tags"]
    assert sorted(tags) == sorted(world.corpus.tags("node"))
    assert len(tags) >= 25
    assert {"18.20.4", "20.11.0", "22.1.0", "22.1.0-alpine", "latest", "lts"} <= set(tags)


def test_corpus_shapes(world: World) -> None:
    c = world.corpus
    a19, a20 = c.get("alpine:3.19"), c.get("alpine:3.20")
    assert a19.manifests[0].layers[0] == a20.manifests[0].layers[0]  # shared base layer
    assert a19.manifests[0].layers[1] != a20.manifests[0].layers[1]
    assert c.get("alpine:latest").digest == a20.digest
    assert c.get("python:3.13-slim").platforms == ("linux/amd64", "linux/arm64/v8")
    assert c.get("python:3.12-slim").manifest_for("linux/arm64").platform == "linux/arm64/v8"
    assert c.get("ratelimitpreview/test:latest").media_type == DOCKER_MANIFEST

    redis = c.get("bitnami/redis:7.4.2")
    assert redis.platforms == ("linux/amd64", "linux/arm64")
    index = json.loads(redis.raw)
    real = {d["digest"] for d in index["manifests"] if d["platform"]["os"] != "unknown"}
    attestations = [d for d in index["manifests"] if d["platform"]["os"] == "unknown"]
    assert len(attestations) == 2
    for d in attestations:
        assert d["platform"] == {"architecture": "unknown", "os": "unknown"}
        assert d["annotations"]["vnd.docker.reference.type"] == "attestation-manifest"
        assert d["annotations"]["vnd.docker.reference.digest"] in real
    for m in redis.attestations:
        assert json.loads(m.raw)["layers"][0]["mediaType"] == INTOTO
    assert {m.attests for m in redis.attestations} == real


def test_layers_are_real_tars_matching_diff_ids(world: World) -> None:
    entry = world.corpus.get("python:3.12-slim")
    m = entry.manifest_for("linux/amd64")
    base = f"{world.hub_upstream_url}/v2/{entry.repository}/blobs"
    config = httpx.get(f"{base}/{m.config}").json()
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["config"]["Cmd"]
    assert config["rootfs"]["diff_ids"] == list(m.diff_ids)
    for layer, diff_id in zip(m.layers, m.diff_ids, strict=True):
        blob = httpx.get(f"{base}/{layer}").content
        assert sha256(blob) == layer
        tar = gzip.decompress(blob)
        assert sha256(tar) == diff_id
        assert tar[257:262] == b"ustar"


def test_corpus_is_deterministic() -> None:
    one, two = build_corpus().entries(), build_corpus().entries()
    assert [(e.ref, e.digest, e.blobs) for e in one] == [(e.ref, e.digest, e.blobs) for e in two]


def test_large_layer_streams_from_temp_file(fresh_world: World, tmp_path: Path) -> None:
    w = fresh_world
    spec = big_image("bench/big", "1", [300 * KiB])
    built = build_corpus([spec], tmpdir=tmp_path, memory_limit=64 * KiB)
    layer = built.images[0].children[0].info.layers[0]
    assert built.blobs[layer].path is not None and built.blobs[layer].data is None
    corpus = push_corpus(w.ecr_upstream_url, [spec], auth=w.ecr_auth, memory_limit=64 * KiB)
    assert corpus.get("bench/big:1").digest == built.images[0].digest
    r = httpx.get(f"{w.ecr_upstream_url}/v2/bench/big/blobs/{layer}", auth=w.ecr_auth)
    assert r.status_code == 200
    assert sha256(r.content) == layer
    assert len(r.content) == corpus.blob_sizes[layer] > 300 * KiB


# ---------------------------------------------------------------- moto, reset, config


def test_moto_answers_ecr_and_cloudformation(fresh_world: World, aws_env: dict[str, str]) -> None:
    assert os.environ["AWS_ENDPOINT_URL"] == fresh_world.moto_url
    ecr = boto3.client("ecr")
    ecr.create_repository(repositoryName="dockerhub/library/alpine")
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    assert base64.b64decode(token).decode() == f"AWS:{fresh_world.ecr_password}"
    assert fresh_world.repository_exists("dockerhub/library/alpine")
    assert not fresh_world.repository_exists("dockerhub/library/nope")

    cfn = boto3.client("cloudformation")
    template = {
        "Resources": {
            "Repo": {
                "Type": "AWS::ECR::Repository",
                "Properties": {"RepositoryName": "dockerhub/library/python"},
            }
        }
    }
    cfn.create_stack(StackName="ecr-mirror", TemplateBody=json.dumps(template))
    stack = cfn.describe_stacks(StackName="ecr-mirror")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    names = {r["repositoryName"] for r in ecr.describe_repositories()["repositories"]}
    assert names == {"dockerhub/library/alpine", "dockerhub/library/python"}


def test_reset_target_empties_moto_and_ecr_registry(fresh_world: World) -> None:
    w = fresh_world
    w.create_repository("dockerhub/library/busybox")
    push_corpus(w.ecr_upstream_url, [_tiny_spec()], auth=w.ecr_auth)
    url = f"{w.ecr_upstream_url}/v2/tiny/image/manifests/1"
    headers = {"Accept": ACCEPT}
    assert httpx.head(url, auth=w.ecr_auth, headers=headers).status_code == 200
    w.reset_target()
    assert httpx.head(url, auth=w.ecr_auth, headers=headers).status_code == 404
    assert not w.repository_exists("dockerhub/library/busybox")
    assert w.corpus.get("alpine:3.19")  # the source side is untouched
    hub = f"{w.hub_upstream_url}/v2/library/alpine/manifests/3.19"
    assert httpx.head(hub, headers=headers).status_code == 200


def test_write_config(world: World, tmp_path: Path) -> None:
    path = world.write_config(
        tmp_path / "config" / "images.yaml",
        images=[{"image": "python", "tags": ["3.12-slim"]}],
        source={"reserve_pulls": 0},
        stack={"name": "other"},
    )
    cfg = yaml.safe_load(path.read_text())
    assert cfg["version"] == 1
    assert cfg["source"] == {"registry": world.hub_url, "reserve_pulls": 0}
    assert cfg["target"] == {
        "region": "us-east-1",
        "registry": world.ecr_url,
        "prefix": "dockerhub",
    }
    assert cfg["stack"] == {"name": "other", "iam_user": None}
    assert cfg["defaults"] == {"platforms": "all"}
    assert cfg["images"] == [{"image": "python", "tags": ["3.12-slim"]}]
    assert yaml.safe_load(world.write_config(tmp_path / "d.yaml").read_text())["images"]


# ---------------------------------------------------------------- dockerd


@pytest.mark.dockerd
def test_dockerd_pulls_corpus_image(docker_engine: DockerEngine, world: World) -> None:
    assert docker_engine.host.startswith("unix:///tmp/") and len(docker_engine.host) < 100
    entry = world.corpus.get("alpine:3.19")
    repo = f"{world.hub_registry.host}/{entry.repository}"  # type: ignore[union-attr]
    client = docker_engine.client()
    image = client.images.pull(repo, tag=entry.tag)
    assert image.id == entry.manifests[0].config
    assert f"{repo}@{entry.digest}" in image.attrs["RepoDigests"]
    assert not Path("/var/lib/docker").exists() or docker_engine.root.exists()


# ---------------------------------------------------------------- processes


def test_server_that_does_not_start_reports_its_log(tmp_path: Path) -> None:
    with pytest.raises(ServerStartError, match="kaboom"):
        start_process(
            "boom", ["sh", "-c", "echo kaboom >&2; exit 3"], log_dir=tmp_path, ready=lambda p: False
        )
    with pytest.raises(ServerStartError, match="not ready after"):
        start_process("slow", ["sleep", "30"], log_dir=tmp_path, ready=lambda p: False, timeout=0.3)


def test_stop_kills_the_whole_group_even_when_sigterm_is_ignored(tmp_path: Path) -> None:
    server = start_process(
        "stubborn", ["sh", "-c", 'trap "" TERM; sleep 30 & sleep 30 & wait'], log_dir=tmp_path
    )
    for _ in range(100):
        if len(server.pids()) >= 3:
            break
        subprocess.run(["sleep", "0.01"])
    pids = server.pids()
    assert len(pids) >= 3
    server.stop(grace=0.3)
    assert not any(pid_alive(p) for p in pids)


def test_world_down_leaves_no_processes(tmp_path: Path) -> None:
    w = World(tmp_path / "w", corpus=[_tiny_spec()], warm_moto=False)
    try:
        w.up()
        try:
            w.docker_engine()
        except DockerdUnavailable:
            if os.environ.get(SKIP_ENV) != "1":
                raise
        pids = w.pids()
        assert len(pids) >= 3 + (2 if w.docker_started else 0)
        assert all(pid_alive(p) for p in pids)
    finally:
        w.down()
    assert not [p for p in pids if pid_alive(p)]


def _tiny_spec() -> ImageSpec:
    return ImageSpec("tiny/image", ("1",), "docker", (linux("amd64", LayerSpec(1024)),))
