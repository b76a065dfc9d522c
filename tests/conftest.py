"""Shared fixtures: the test world (see tests/world/world.py).

* ``world`` (session): registries, fronts, moto and the corpus, started once.
* ``fresh_world`` (function): the same world with a fresh AWS side (moto reset, ECR
  registry storage emptied) and fronts reset (quota, counters, faults). Takes milliseconds.
* ``aws_env`` (function): moto's AWS_* variables set in ``os.environ`` for the test.
* ``docker_engine`` (session, lazy): the world's private dockerd; fails with a clear message
  when it cannot start, or skips when MIRROR_TEST_SKIP_DOCKERD=1.
* ``mirror`` / ``engine_mirror`` (function): the CLI against the fresh world (see
  tests/runner.py), the second with the private dockerd; after the test, no output of any
  run may carry the ECR token.
* ``parser`` (function): each YAML parser the config loader may stand on, in turn.
* ``machine`` (function): a fake machine for the credential lookups (tests/machine.py).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mirror import yamlfile
from tests.machine import Machine
from tests.runner import Mirror, QuotaThief
from tests.world.dockerd import SKIP_ENV, DockerdUnavailable, DockerEngine
from tests.world.world import World


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("world"))
    w.up()
    try:
        yield w
    finally:
        w.down()


@pytest.fixture
def fresh_world(world: World) -> World:
    world.reset()
    return world


@pytest.fixture
def aws_env(world: World, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = world.moto_env
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    return env


@pytest.fixture(scope="session")
def docker_engine(world: World) -> DockerEngine:
    try:
        return world.docker_engine()
    except DockerdUnavailable as e:
        if os.environ.get(SKIP_ENV) == "1":
            pytest.skip(f"private dockerd unavailable ({SKIP_ENV}=1): {e}")
        pytest.fail(
            f"private dockerd unavailable: {e}\n"
            f"Run the tests as root, or set {SKIP_ENV}=1 to skip the Docker engine tests.",
            pytrace=False,
        )


@pytest.fixture
def mirror(fresh_world: World, tmp_path: Path) -> Iterator[Mirror]:
    m = Mirror(fresh_world, tmp_path)
    yield m
    m.assert_no_token()


@pytest.fixture
def engine_mirror(
    fresh_world: World, docker_engine: DockerEngine, tmp_path: Path
) -> Iterator[Mirror]:
    m = Mirror(fresh_world, tmp_path, docker_engine)
    yield m
    m.assert_no_token()


@pytest.fixture
def thief(fresh_world: World, monkeypatch: pytest.MonkeyPatch) -> QuotaThief:
    front = fresh_world.hub_front
    original = front._manifest
    lock = threading.Lock()
    state = QuotaThief()

    def manifest(h: Any, name: str, ref: str, source: str) -> None:
        if h.command == "GET":
            with lock:
                state.gets += 1
                if state.gets == state.at:
                    front.set_remaining(source, state.leave)
        original(h, name, ref, source)

    monkeypatch.setattr(front, "_manifest", manifest)
    return state


@pytest.fixture(params=["libyaml", "python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each YAML parser the loader may stand on: libyaml's when PyYAML has it, PyYAML's own."""
    if request.param == "python":
        monkeypatch.setattr(yamlfile, "_new_loader", yamlfile._PythonLoader)
    elif not yaml.__with_libyaml__:
        pytest.skip("this PyYAML has no libyaml")
    return str(request.param)


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    """A fake machine of its own: environment, home, docker config, credential helpers."""
    return Machine.make(tmp_path)
