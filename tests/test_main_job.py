"""The main job end to end, as scheduled CI runs it: `mirror sync` ensures the stack (moto's
CloudFormation creates the ECR repositories the ECR front then accepts), copies, and a second
run finds the stack and every tag up to date and spends no Docker Hub pull."""

from __future__ import annotations

from tests.runner import Mirror, actions, pulls
from tests.world.world import World

PYTHON = {"image": "python", "tags": ["3.12-slim"]}
REDIS = {"image": "bitnami/redis", "tags": {"match": r"^7\.4\.\d+$"}, "platforms": ["linux/amd64"]}
ALPINE = {"image": "alpine", "tags": ["3.19"]}


def sync(mirror: Mirror) -> tuple[int, dict[str, str], str]:
    run = mirror.run("sync", "-c", str(mirror.config_path), "-o", "json")
    return run.code, actions(run.report), run.stderr


def test_ensure_repo_then_sync_then_a_sync_that_spends_nothing(
    fresh_world: World, mirror: Mirror
) -> None:
    mirror.config([PYTHON, REDIS], create=False)  # no repository yet: ensure-repo makes them
    assert not fresh_world.repository_exists("dockerhub/library/python")

    code, first, log = sync(mirror)
    assert code == 0, log
    assert "created" in log
    assert first == {
        "library/python:3.12-slim": "copied",
        "bitnami/redis:7.4.2": "copied",
        "bitnami/redis:7.4.1": "copied",
    }
    assert fresh_world.repository_exists("dockerhub/bitnami/redis")
    spent = pulls(fresh_world)

    code, second, log = sync(mirror)
    assert code == 0, log
    assert "nothing to change" in log
    assert set(second.values()) == {"up-to-date"}
    assert pulls(fresh_world) == spent

    # a new image in the config: the stack grows by one repository, only it is copied
    mirror.config([PYTHON, REDIS, ALPINE], create=False)
    code, third, log = sync(mirror)
    assert code == 0, log
    assert "+ dockerhub/library/alpine" in log
    assert third["library/alpine:3.19"] == "copied"
    assert {k: v for k, v in third.items() if k != "library/alpine:3.19"} == second
    assert pulls(fresh_world) == spent + 1
