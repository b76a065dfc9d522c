"""`mirror discover` and `mirror rewrite` as the user runs them: the CLI in a subprocess over
a copy of the fixture tree (tests/codebase), and the round trip through the test world:
discover -> write the config -> sync -> rewrite -> `rewrite --check` passes -> the Docker
engine builds the rewritten Dockerfile from the mirror (and the --build-arg one), and the
rewritten shell script's `docker pull` pulls from the mirror."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import docker.errors
import pytest
import yaml

from mirror.cfn_yaml import load as cfn_load
from tests.runner import Mirror, actions, pulls
from tests.world.dockerd import DockerEngine

CODEBASE = Path(__file__).parent / "codebase"
HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`mirror ARGS` in `cwd`, no AWS or Docker Hub variables (none of these runs needs them)."""
    return subprocess.run(
        [sys.executable, "-m", "mirror", *args],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the fixture tree, to run in and to change."""
    shutil.copytree(CODEBASE, tmp_path / "code")
    return tmp_path / "code"


def test_discover_table(tree: Path) -> None:
    done = run(tree, "discover", ".")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "FILE:LINE",
        "REFERENCE",
        "DOCKER",
        "HUB",
        "IMAGE",
        "TAG",
        "OR",
        "DIGEST",
    ]
    rows = [line.split() for line in lines]
    assert [
        "app/Dockerfile:10",
        "python:3.12-slim",
        "docker.io/library/python",
        "3.12-slim",
    ] in rows
    assert [
        "chart/values.yaml:2",
        "bitnami/redis:7.4.1",
        "docker.io/bitnami/redis",
        "7.4.1",
    ] in rows
    assert (
        "  worker/worker.Dockerfile:3  ${UNKNOWN_BASE}: a variable mirror cannot resolve" in lines
    )
    assert "  k8s/deployment.yaml:19  public.ecr.aws/docker/library/alpine:3.19" in lines
    assert ["scripts/ci.sh:6", "node:20", "docker.io/library/node", "20"] in rows
    assert ["Makefile:9", "postgres:16", "docker.io/library/postgres", "16"] in rows
    assert "  scripts/ci.sh:12  $IMAGE: a variable mirror cannot resolve" in lines
    assert "  Makefile:5  $(IMAGE): a variable mirror cannot resolve" in lines
    assert "  broken/Dockerfile: a binary file" in lines
    assert lines[-1] == (
        "44 references to 16 Docker Hub images in 14 of 15 files read; 7 to other registries,"
        " 15 unresolved; could not read 2 files"
    )


def test_discover_json(tree: Path) -> None:
    done = run(
        tree, "discover", "app", "chart", "app/Dockerfile", "broken", "missing", "-o", "json"
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["version"] == 1 and document["files"] == 2
    assert document["images"] == [
        {"repository": "library/node", "tags": ["20"]},
        {"repository": "library/golang", "tags": ["1.22"]},
        {"repository": "library/alpine", "tags": ["3.19"]},
        {"repository": "library/python", "tags": ["3.12-slim", "3.10"]},
        {"repository": "bitnami/redis", "tags": ["7.4.1"]},
        {"repository": "bitnami/redis-exporter", "tags": ["1.62.0"]},
    ]
    first = document["references"][0]
    assert first == {
        "file": "app/Dockerfile",
        "line": 6,
        "kind": "dockerfile",
        "reference": "node:20",
        "image": "docker.io/library/node",
        "tag": "20",
        "digest": None,
        "build_arg": False,
    }
    assert [u["file"] for u in document["unreadable"]] == [
        "broken/Dockerfile",
        "broken/compose.yaml",
        "missing",
    ]
    assert [e["reference"] for e in document["other_registries"]] == [
        "quay.io/prometheus/busybox:latest"
    ]


def test_discover_write_merges_into_the_config(tree: Path) -> None:
    config = tree / "images.yaml"
    config.write_text(
        "version: 1\n# ours\nimages:\n  - image: python  # kept\n    tags: ['3.12-slim']\n"
    )
    done = run(tree, "discover", "app", "--write", str(config))
    assert done.returncode == 0, done.stderr
    assert config.read_text() == (
        "version: 1\n# ours\nimages:\n  - image: python  # kept\n    tags: ['3.12-slim']\n"
        "  - image: node\n    tags: ['20']\n  - image: golang\n    tags: ['1.22']\n"
        "  - image: alpine\n    tags: ['3.19']\n"
    )
    assert done.stderr.endswith(f"{config}: added images: node, golang, alpine; added tags: none\n")


def test_discover_write_refuses_a_bad_config_before_reading(tree: Path) -> None:
    config = tree / "images.yaml"
    config.write_text("version: 1\nimages: {}\n")
    done = run(tree, "discover", ".", "--write", str(config))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"mirror: error: {config}: images (line 2)")
    assert len(done.stderr.splitlines()) == 1


def test_rewrite_dry_run_prints_a_diff_and_writes_nothing(tree: Path) -> None:
    config = tree / "images.yaml"
    config.write_text(
        f"version: 1\ntarget: {{registry: 'https://{HOST}'}}\n"
        "images:\n  - {image: postgres, tags: ['16']}\n"
    )
    before = (tree / "compose.yaml").read_text()
    done = run(tree, "rewrite", "compose.yaml", ".gitlab-ci.yml", "-c", str(config), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert (tree / "compose.yaml").read_text() == before
    assert done.stdout.splitlines() == [
        "--- a/compose.yaml",
        "+++ b/compose.yaml",
        "@@ -5,7 +5,7 @@",
        '     image: "redis:7.2"    # quoted',
        "   db:",
        "     # image: mysql:8 (commented out)",
        "-    image: postgres:16",
        f"+    image: {HOST}/dockerhub/library/postgres:16",
        "   tagged:",
        "     build: ./worker",
        "     image: example/worker:dev   # the name of the image built, not a pull",
        "--- a/.gitlab-ci.yml",
        "+++ b/.gitlab-ci.yml",
        "@@ -1,6 +1,6 @@",
        " image: ruby:3.3",
        " services:",
        "-  - postgres:16",
        f"+  - {HOST}/dockerhub/library/postgres:16",
        "   - name: redis:7.2",
        "     alias: cache",
        " test:",
    ]
    assert "compose.yaml:5: redis:7.2 left as it is: library/redis is not in" in done.stderr
    assert done.stderr.splitlines()[-1] == (
        "would rewrite 2 references in 2 of 2 files read; 4 left as they are;"
        " could not read 0 files"
    )


def test_rewrite_in_place_keeps_mode_and_line_endings(tree: Path) -> None:
    config = tree / "images.yaml"
    config.write_text(
        f"version: 1\ntarget: {{registry: 'https://{HOST}'}}\n"
        "images:\n  - {image: busybox, tags: ['1.36']}\n"
    )
    manifest = tree / "k8s" / "deployment.yaml"
    manifest.write_bytes(manifest.read_bytes().replace(b"\n", b"\r\n"))
    manifest.chmod(0o640)
    done = run(tree, "rewrite", "k8s", "-c", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "k8s/deployment.yaml:12: nginx left as it is: library/nginx is not in"
        f" {config}; nothing mirrors it",
        "k8s/deployment.yaml: rewrote 1 reference",
        "rewrote 1 reference in 1 of 2 files read; 1 left as they are; could not read 0 files",
    ]
    text = manifest.read_bytes()
    assert f"image: {HOST}/dockerhub/library/busybox:1.36\r\n".encode() in text
    assert text.count(b"\r\n") == text.count(b"\n") == 19
    assert manifest.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in manifest.parent.iterdir()) == ["deployment.yaml", "settings.yaml"]


def test_rewrite_check_lists_what_remains(tree: Path) -> None:
    done = run(tree, "rewrite", "--check", "k8s", "broken")
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "k8s/deployment.yaml:9: busybox:1.36 pulls from Docker Hub"
        " (docker.io/library/busybox:1.36)",
        "k8s/deployment.yaml:12: nginx pulls from Docker Hub (docker.io/library/nginx)",
        "2 Docker Hub references in 1 of 2 files read; could not read 2 files",
    ]
    assert "broken/Dockerfile: could not read: a binary file" in done.stderr
    clean = run(tree, "rewrite", "--check", "k8s/settings.yaml")
    assert clean.returncode == 0
    assert clean.stdout == "0 Docker Hub references in 0 of 1 file read; could not read 0 files\n"


def test_rewrite_and_check_scripts_and_makefiles(tree: Path) -> None:
    config = tree / "images.yaml"
    config.write_text(
        f"version: 1\ntarget: {{registry: 'https://{HOST}'}}\n"
        "images:\n  - {image: postgres, tags: ['16']}\n  - {image: node, tags: ['20']}\n"
    )
    before = run(tree, "rewrite", "--check", "Makefile", "scripts")
    assert before.returncode == 1
    assert "Makefile:9: postgres:16 pulls from Docker Hub (docker.io/library/postgres:16)" in (
        before.stdout.splitlines()
    )
    assert before.stdout.splitlines()[-1] == (
        "10 Docker Hub references in 3 of 3 files read; could not read 0 files"
    )
    done = run(tree, "rewrite", "Makefile", "scripts", "-c", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == (
        "rewrote 3 references in 2 of 3 files read; 7 left as they are; could not read 0 files"
    )
    makefile = (tree / "Makefile").read_text().splitlines()
    assert makefile[8:10] == [
        f"\t-docker pull {HOST}/dockerhub/library/postgres:16 && \\",
        f"\t  docker run -d --name db -p 5432:5432 {HOST}/dockerhub/library/postgres:16",
    ]
    assert (tree / "scripts" / "ci.sh").read_text().splitlines()[5] == (
        'docker run --rm -e CI=1 --name unit -v "$PWD:/src" -w /src'
        f" {HOST}/dockerhub/library/node:20 npm test"
    )
    after = run(tree, "rewrite", "--check", "Makefile", "scripts")
    assert after.stdout.splitlines()[-1] == (
        "7 Docker Hub references in 3 of 3 files read; could not read 0 files"
    )


def test_discover_rewrite_and_check_infrastructure_code(tree: Path) -> None:
    """CloudFormation (YAML with tags, JSON) and Terraform: discover's counts, --write, the
    rewrite, then `--check` passes and the templates still load and pass cfn-lint."""
    from cfnlint.api import lint

    found = run(tree, "discover", "infra", "-o", "json")
    assert found.returncode == 0, found.stderr
    document = json.loads(found.stdout)
    assert document["files"] == 3  # infra/package.json is no template: not read
    kinds = [(e["kind"], e["line"]) for e in document["references"]]
    assert kinds == [
        ("terraform", 14),
        ("terraform", 29),
        ("terraform", 39),
        ("terraform", 46),
        ("cloudformation", 17),
        ("cloudformation", 40),
        ("cloudformation", 53),
        ("cloudformation", 11),
        ("cloudformation", 13),
        ("cloudformation", 25),
    ]
    assert len(document["other_registries"]) == 2 and len(document["unresolved"]) == 7
    table = run(tree, "discover", "infra")
    assert "  infra/pipeline.yaml:43  !Ref AppImage: CloudFormation's Ref is resolved at" in (
        table.stdout
    )
    assert table.stdout.splitlines()[-1] == (
        "10 references to 7 Docker Hub images in 3 of 3 files read; 2 to other registries,"
        " 7 unresolved; could not read 0 files"
    )

    config = tree / "images.yaml"
    config.write_text(
        f"version: 1\ntarget: {{registry: 'https://{HOST}'}}\n"
        "images:\n  - {image: python, tags: ['3.12-slim']}\n"
    )
    assert run(tree, "discover", "infra", "--write", str(config)).returncode == 0
    assert run(tree, "rewrite", "--check", "infra").returncode == 1
    done = run(tree, "rewrite", "infra", "-c", str(config), "--build-arg")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "infra/main.tf: rewrote 4 references",
        "infra/pipeline.yaml: rewrote 3 references",
        "infra/task.json: rewrote 3 references",  # --build-arg is for Dockerfiles only
        "rewrote 10 references in 3 of 3 files read; 0 left as they are; could not read 0 files",
    ]
    check = run(tree, "rewrite", "--check", "infra")
    assert check.returncode == 0, check.stdout

    ecr = f"{HOST}/dockerhub/library"
    pipeline = (tree / "infra" / "pipeline.yaml").read_text()
    assert f'Image: !Sub "{ecr}/maven:3.9-eclipse-temurin-21"   # a !Sub with' in pipeline
    resources = cfn_load(pipeline)["Resources"]
    assert [c["Image"] for c in resources["Task"]["Properties"]["ContainerDefinitions"]][:2] == [
        f"{ecr}/nginx:1.25",
        {"Ref": "AppImage"},
    ]
    assert resources["Lint"]["Properties"]["Environment"]["Image"] == "aws/codebuild/standard:7.0"
    task = json.loads((tree / "infra" / "task.json").read_text())  # still JSON
    nodes = task["Resources"]["Nodes"]["Properties"]["NodeProperties"]["NodeRangeProperties"]
    assert nodes[0]["Container"]["Image"] == f"{ecr}/python:3.12-slim"
    for template in ("pipeline.yaml", "task.json"):
        assert [str(m) for m in lint((tree / "infra" / template).read_text())] == []
    terraform = (tree / "infra" / "main.tf").read_text()
    assert f'      {{"name": "worker", "image": "{ecr}/redis:7.2", "essential": true}},' in (
        terraform
    )
    assert 'image = "${var.registry}/app:1.0"' in terraform  # unresolved: left as written


def test_rewrite_check_takes_no_other_mode(tree: Path) -> None:
    done = run(tree, "rewrite", "--check", "--dry-run", ".")
    assert done.returncode == 2
    assert done.stderr == (
        "mirror: error: --check changes nothing; give it without --dry-run and --build-arg\n"
    )


# --- the round trip through the test world ---------------------------------------------------


def docker_build(
    mirror: Mirror, engine: DockerEngine, context: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """`docker build --pull` as a build step runs it, with the docker config `login` wrote."""
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is not installed")
    return subprocess.run(
        ["docker", "build", "--pull", "-q", *args, str(context)],
        env={**mirror.env, "DOCKER_HOST": engine.host, "DOCKER_BUILDKIT": "0"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.dockerd
def test_round_trip_discover_sync_rewrite_build(
    engine_mirror: Mirror, docker_engine: DockerEngine, tmp_path: Path
) -> None:
    m = engine_mirror
    world = m.world
    ecr = world.ecr_url.split("://", 1)[1]
    code = tmp_path / "code"
    (code / "arg").mkdir(parents=True)
    (code / "Dockerfile").write_text("# from the mirror\nFROM alpine:3.19\nCOPY hi.txt /hi.txt\n")
    (code / "hi.txt").write_text("hi\n")
    (code / "arg" / "Dockerfile").write_text("FROM alpine:3.20\nCOPY hi.txt /hi.txt\n")
    (code / "arg" / "hi.txt").write_text("hi\n")
    (code / "compose.yaml").write_text("services:\n  cache:\n    image: busybox:1.36  # ok\n")
    (code / "scripts").mkdir()
    script = code / "scripts" / "pull.sh"
    script.write_text("#!/bin/sh\nset -e\ndocker pull --quiet \\\n  busybox:1.36 # mirrored\n")
    config = m.config([{"image": "alpine", "tags": ["latest"]}], create=False)

    found = m.run("discover", str(code), "--write", str(config))
    assert found.code == 0, found
    rows = [line.split() for line in found.stdout.splitlines()]
    assert [f"{script}:4", "busybox:1.36", "docker.io/library/busybox", "1.36"] in rows
    images = yaml.safe_load(config.read_text())["images"]
    assert images == [
        {"image": "alpine", "tags": ["latest", "3.19", "3.20"]},
        {"image": "busybox", "tags": ["1.36"]},
    ]
    world.create_repository("dockerhub/library/alpine")
    world.create_repository("dockerhub/library/busybox")
    synced = m.sync()
    assert synced.code == 0, synced
    assert set(actions(synced.report).values()) == {"copied"} and len(actions(synced.report)) == 4

    assert m.run("rewrite", "--check", str(code)).code == 1
    done = m.run("rewrite", str(code / "arg"), "-c", str(config), "--build-arg")
    assert done.code == 0, done
    done = m.run("rewrite", str(code), "-c", str(config))
    assert done.code == 0, done
    assert (code / "Dockerfile").read_text() == (
        f"# from the mirror\nFROM {ecr}/dockerhub/library/alpine:3.19\nCOPY hi.txt /hi.txt\n"
    )
    assert (code / "arg" / "Dockerfile").read_text() == (
        "ARG MIRROR_REGISTRY=docker.io\nFROM ${MIRROR_REGISTRY}/library/alpine:3.20\n"
        "COPY hi.txt /hi.txt\n"
    )
    assert (code / "compose.yaml").read_text() == (
        f"services:\n  cache:\n    image: {ecr}/dockerhub/library/busybox:1.36  # ok\n"
    )
    assert script.read_text() == (
        f"#!/bin/sh\nset -e\ndocker pull --quiet \\\n  {ecr}/dockerhub/library/busybox:1.36"
        " # mirrored\n"
    )
    check = m.run("rewrite", "--check", str(code))
    assert check.code == 0, check

    assert m.run("login", "-c", str(config)).code == 0
    spent = pulls(world)
    built_images: list[str] = []
    try:
        built = docker_build(m, docker_engine, code)
        assert built.returncode == 0, built.stderr
        built_images.append(built.stdout.strip())
        built_arg = docker_build(
            m, docker_engine, code / "arg", "--build-arg", f"MIRROR_REGISTRY={ecr}/dockerhub"
        )
        assert built_arg.returncode == 0, built_arg.stderr
        built_images.append(built_arg.stdout.strip())
        ran = subprocess.run(
            ["sh", str(script)], env=m.env, capture_output=True, text=True, timeout=120
        )
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.strip() == f"{ecr}/dockerhub/library/busybox:1.36"
        pulled = docker_engine.client().images.get(f"{ecr}/dockerhub/library/busybox:1.36")
        assert pulled.attrs["RepoDigests"]
        assert pulls(world) == spent  # the builds and the script pulled nothing from Docker Hub
    finally:  # the engine is shared: later tests must not find these images already there
        client = docker_engine.client()
        for image in built_images:
            client.images.remove(image, force=True)
        for image in ("alpine:3.19", "alpine:3.20", "busybox:1.36"):
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(f"{ecr}/dockerhub/library/{image}", force=True)
