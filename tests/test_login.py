"""`mirror login`: ECR's token checked by the engine and stored in the docker config, so
that a plain `docker pull` works; run as the user runs it, against the world. No output may
carry the ECR token."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess

import pytest

from mirror.registry.auth import Credentials
from tests.runner import Mirror, basic_auth
from tests.world.dockerd import DockerEngine
from tests.world.world import World

ALPINE = {"image": "alpine", "tags": ["3.19"]}


def _ecr_host(world: World) -> str:
    return world.ecr_url.split("://", 1)[1]


@pytest.mark.dockerd
def test_login_then_a_plain_docker_pull_works(
    engine_mirror: Mirror, docker_engine: DockerEngine
) -> None:
    world = engine_mirror.world
    engine_mirror.config([ALPINE], create=["dockerhub/library/alpine"])
    assert engine_mirror.sync().code == 0  # the registry engine: no engine needed
    reference = f"{_ecr_host(world)}/dockerhub/library/alpine:3.19"

    refused = _docker_pull(engine_mirror, docker_engine, reference)
    assert refused.returncode != 0  # no credentials yet: the ECR stand-in answers 401

    login = engine_mirror.run("login", "-c", str(engine_mirror.config_path))
    assert login.code == 0, login
    assert login.stdout == f"Logged in to {_ecr_host(world)}\n"
    path = engine_mirror.docker_config / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _ecr_host(world) in json.loads(path.read_text())["auths"]

    pulled = _docker_pull(engine_mirror, docker_engine, reference)
    assert pulled.returncode == 0, pulled.stderr
    docker_engine.client().images.remove(reference)
    for output in (refused.stdout, refused.stderr, pulled.stdout, pulled.stderr):
        assert world.ecr_password not in output


def _docker_pull(
    mirror: Mirror, engine: DockerEngine, reference: str
) -> subprocess.CompletedProcess[str]:
    """`docker pull` as a build step runs it: the CLI, with the docker config `login` wrote."""
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is not installed")
    return subprocess.run(
        ["docker", "pull", reference],
        env={**mirror.env, "DOCKER_HOST": engine.host},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_login_config_only_needs_no_engine(mirror: Mirror) -> None:
    mirror.config([ALPINE], create=False)
    run = mirror.run(
        "login",
        "-c",
        str(mirror.config_path),
        "--config-only",
        env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
    )
    assert run.code == 0, run
    assert run.stdout == f"Logged in to {_ecr_host(mirror.world)}\n"
    auths = json.loads((mirror.docker_config / "config.json").read_text())["auths"]
    assert auths[_ecr_host(mirror.world)] == {
        "auth": basic_auth(Credentials(*mirror.world.ecr_auth))
    }
