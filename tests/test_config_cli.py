"""Bad config files through the real CLI, against the test world: exit 2, one line naming the
file and field, no traceback, and not one request to a registry; and Docker Hub's credentials
reach the world's Docker Hub stand-in (on loopback, so not Docker Hub) only by the opt-in."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from mirror.config import MAX_CONFIG_BYTES
from tests.config_documents import alias_bomb, nested
from tests.runner import Mirror

TOKEN = "dckr_pat_Zq8vK1-not-to-be-printed"
BUSYBOX = {"image": "busybox", "tags": ["1.36"]}
HUB_IP = "127.0.0.1"  # the quota source of anonymous pulls from this machine


def _append(text: str) -> Callable[[Mirror, Path], None]:
    def edit(mirror: Mirror, path: Path) -> None:
        path.write_text(path.read_text() + text)

    return edit


def _not_utf8(mirror: Mirror, path: Path) -> None:
    path.write_bytes(path.read_bytes() + "# caf\u00e9\n".encode("latin-1"))


def _too_large(mirror: Mirror, path: Path) -> None:
    path.write_text(path.read_text() + "#" * MAX_CONFIG_BYTES + "\n")


def _credentials_in_source_url(mirror: Mirror, path: Path) -> None:
    host = mirror.world.hub_url.removeprefix("http://")
    mirror.world.write_config(path, [BUSYBOX], source={"registry": f"http://alice:{TOKEN}@{host}"})


def _http_to_another_host(mirror: Mirror, path: Path) -> None:
    mirror.world.write_config(path, [BUSYBOX], target={"registry": "http://ecr.example:5000"})


# (id, how the world's valid config is spoiled, what the one line says after `<file>`)
BAD_CONFIGS: list[tuple[str, Callable[[Mirror, Path], None], str]] = [
    ("not UTF-8", _not_utf8, r" \(line \d+\): the file is not UTF-8 text \(byte \d+\)"),
    ("larger than the bound", _too_large, r": the file is larger than 64 KiB"),
    (
        "alias bomb",
        _append(alias_bomb(9, 9)),
        r": [a-i](\[\d\])+ \(line \d+\): more than 20,000 values once aliases are expanded",
    ),
    (
        "recursive anchor",
        _append("loop: &x [1, *x]\n"),
        r": loop\[1\] \(line \d+\): an alias refers to a list or mapping that contains it",
    ),
    ("deep nesting", _append(f"x: {nested(500)}\n"), r": x(\[0\])+ \(line \d+\): nested more"),
    (
        "credentials in source.registry",
        _credentials_in_source_url,
        r": source\.registry \(line \d+\): the registry URL carries credentials",
    ),
    (
        "http to a host that is not loopback",
        _http_to_another_host,
        r": target\.registry \(line \d+\): 'http://ecr\.example:5000': plain http is accepted"
        r" only for a loopback host",
    ),
]


@pytest.mark.parametrize(
    ("spoil", "expected"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS]
)
@pytest.mark.parametrize("command", ["sync", "quota", "check"])
def test_a_bad_config_is_one_line_exit_2_and_no_request(
    mirror: Mirror, command: str, spoil: Callable[[Mirror, Path], None], expected: str
) -> None:
    path = mirror.config([BUSYBOX], create=False)
    spoil(mirror, path)
    args = (
        ("sync", "-c", str(path), "-o", "json") if command == "sync" else (command, "-c", str(path))
    )
    run = mirror.run(*args, env={"DOCKERHUB_USERNAME": "alice", "DOCKERHUB_TOKEN": TOKEN})
    assert run.code == 2, run
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run
    assert re.match(f"mirror: error: {re.escape(str(path))}{expected}", lines[0]), lines[0]
    assert "Traceback" not in run.stdout + run.stderr
    assert TOKEN not in run.stdout + run.stderr
    if command == "sync":  # -o json: still one JSON document, with the same error
        assert lines[0].removeprefix("mirror: error: ") in run.report["error"]
    # Loading comes first: neither registry (nor ensure-repo's CloudFormation) was reached.
    assert mirror.world.hub_front.counters.snapshot() == {}
    assert mirror.world.ecr_front.counters.snapshot() == {}


def test_docker_hub_credentials_reach_another_registry_only_by_the_opt_in(
    mirror: Mirror,
) -> None:
    world = mirror.world
    world.hub_front.users = {"alice": TOKEN}
    env = {"DOCKERHUB_USERNAME": "alice", "DOCKERHUB_TOKEN": TOKEN}
    mirror.config([BUSYBOX])

    anonymous = mirror.run("quota", "-c", str(mirror.config_path), env=env)
    assert anonymous.code == 0, anonymous
    assert f"source: {HUB_IP}" in anonymous.stdout  # the token was asked for anonymously
    assert "anonymous (DOCKERHUB_USERNAME is for Docker Hub" in anonymous.stderr
    assert world.hub_front.counters["token"] >= 1 and world.hub_front.counters["token_denied"] == 0

    world.write_config(mirror.config_path, [BUSYBOX], source={"use_docker_hub_credentials": True})
    opted = mirror.run("quota", "-c", str(mirror.config_path), env=env)
    assert opted.code == 0, opted
    assert "source: alice" in opted.stdout
    assert TOKEN not in anonymous.stdout + anonymous.stderr + opted.stdout + opted.stderr
