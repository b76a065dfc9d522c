"""Running the `mirror` CLI against the test world, and reading what it reports.

`Mirror` runs `python -m mirror ...` in a subprocess with the world's environment (nothing
from this machine: no DOCKERHUB_* variables, a private docker config directory) and keeps
every run, so that a fixture can check afterwards that no output carried the ECR token.
`Run.report` is the JSON report, checked against its documented shape.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mirror.registry.auth import Credentials
from tests.world.dockerd import DockerEngine
from tests.world.world import World

# --- the JSON report's documented shape -----------------------------------------------------

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
ACTIONS = {"copied", "up-to-date", "would-copy", "deferred", "missing", "failed"}
OVER_TIME_ACTIONS = {"backed-up", "pruned", "would-prune"}  # docs/over-time.md

Types = type | tuple[type | None, ...]
IMAGE_FIELDS: dict[str, Types] = {
    "source": str,
    "target": str,
    "action": str,
    "digest": (str, None),
    "bytes": int,
    "pulls": int,
    "estimated_pulls": (int, None),
    "estimate": (str, None),
    "seconds": (int, float),
    "error": (str, None),
    "note": (str, None),
}
TOTALS_FIELDS: dict[str, Types] = {
    "copied": int,
    "up_to_date": int,
    "deferred": int,
    "failed": int,
    "bytes": int,
    "pulls": int,
    # the implementation's additions
    "would_copy": int,
    "missing": int,
    "estimated_pulls": int,
    "minimum_pulls": int,
    "retries": int,
    "backed_up": int,
    "pruned": int,
    "would_prune": int,
}
RATELIMIT_FIELDS: dict[str, Types] = {
    "limit": int,
    "remaining": int,
    "window_seconds": (int, None),
    "source": (str, None),
}
REPORT_FIELDS: dict[str, Types] = {
    "version": int,
    "dry_run": bool,
    "images": list,
    "totals": dict,
    "ratelimit": (dict, None),
    "exit_code": int,
    "error": (str, None),
}


def _is(value: Any, types: Types) -> bool:
    options = types if isinstance(types, tuple) else (types,)
    for option in options:
        if option is None and value is None:
            return True
        if option is bool and isinstance(value, bool):
            return True
        if option in (int, float) and isinstance(value, bool):
            continue  # a bool is an int to Python, not to a JSON reader
        if option is not None and option is not bool and isinstance(value, option):
            return True
    return False


def check_fields(where: str, document: Any, fields: Mapping[str, Types]) -> None:
    assert isinstance(document, dict), f"{where}: not an object: {document!r}"
    assert set(document) == set(fields), f"{where}: keys {sorted(document)} != {sorted(fields)}"
    for key, types in fields.items():
        assert _is(document[key], types), f"{where}.{key}: {document[key]!r} is not {types}"


def check_report_shape(report: Any) -> None:
    """Every key and type of the documented report, and that its numbers agree."""
    check_fields("report", report, REPORT_FIELDS)
    assert report["version"] == 1
    for i, entry in enumerate(report["images"]):
        where = f"images[{i}]"
        check_fields(where, entry, IMAGE_FIELDS)
        assert entry["action"] in ACTIONS | OVER_TIME_ACTIONS, (
            f"{where}.action: {entry['action']!r}"
        )
        assert entry["bytes"] >= 0 and entry["pulls"] >= 0 and entry["seconds"] >= 0
        if entry["digest"] is not None:
            assert DIGEST.match(entry["digest"]), f"{where}.digest: {entry['digest']!r}"
        if entry["action"] in ("copied", "up-to-date", "backed-up", "pruned", "would-prune"):
            assert entry["digest"] is not None and entry["error"] is None, where
        if entry["action"] in ("failed", "missing", "deferred"):
            assert entry["error"], f"{where}: {entry['action']} without an error"
        if entry["action"] in ("would-copy", "would-prune"):
            assert report["dry_run"], f"{where}: {entry['action']} outside a dry run"
        if report["dry_run"] and entry["action"] in ("would-copy", "deferred"):
            assert entry["estimated_pulls"] is not None and entry["estimate"], where
        else:
            assert entry["estimated_pulls"] is None and entry["estimate"] is None, where
    totals = report["totals"]
    check_fields("totals", totals, TOTALS_FIELDS)
    counted = Counter(e["action"] for e in report["images"])
    for action in ACTIONS | OVER_TIME_ACTIONS:
        assert totals[action.replace("-", "_")] == counted[action], f"totals.{action}"
    assert totals["bytes"] == sum(e["bytes"] for e in report["images"]), "totals.bytes"
    assert totals["pulls"] == sum(e["pulls"] for e in report["images"]), "totals.pulls"
    assert totals["minimum_pulls"] <= totals["pulls"], "totals.minimum_pulls"
    assert totals["estimated_pulls"] == sum(
        e["estimated_pulls"] for e in report["images"] if e["action"] == "would-copy"
    ), "totals.estimated_pulls"
    if report["ratelimit"] is not None:
        check_fields("ratelimit", report["ratelimit"], RATELIMIT_FIELDS)
    if report["error"] is not None:  # the run stopped before it could report on images
        assert report["images"] == [] and report["exit_code"] in (1, 2, 130), report
        return
    expected_exit = (
        1 if counted["failed"] or counted["missing"] else 3 if counted["deferred"] else 0
    )
    assert report["exit_code"] == expected_exit, f"exit_code {report['exit_code']}"


# --- reading a report and the world ---------------------------------------------------------


def ref_of(entry: Mapping[str, Any]) -> str:
    """`library/alpine:3.19` from the report's `host:port/library/alpine:3.19`."""
    return str(entry["source"]).split("/", 1)[1]


def actions(report: Mapping[str, Any]) -> dict[str, str]:
    """{`library/alpine:3.19`: action} for every entry of a report."""
    refs = [ref_of(e) for e in report["images"]]
    assert len(refs) == len(set(refs)), f"an (image, tag) is reported twice: {refs}"
    return {ref_of(e): e["action"] for e in report["images"]}


def pulls(world: World) -> int:
    """The pulls Docker Hub counted (manifest GETs answered 200)."""
    return int(world.hub_front.counters["pulls"])


def target_repository(image: str) -> str:
    """The ECR repository an image of the config is mirrored to (prefix `dockerhub`)."""
    return "dockerhub/" + (image if "/" in image else f"library/{image}")


def basic_auth(credentials: Credentials) -> str:
    """`user:password` in base64, as a docker config's `auth` and a Basic header carry it."""
    return base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()


# --- running the CLI ------------------------------------------------------------------------


@dataclass
class Run:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict[str, Any]:
        """stdout as the JSON report, of the documented shape and with this run's exit code."""
        try:
            document: dict[str, Any] = json.loads(self.stdout)
        except ValueError:
            pytest.fail(f"stdout is not one JSON document:\n{self.stdout}\n{self.stderr}")
        check_report_shape(document)
        assert document["exit_code"] == self.code
        return document

    def by_tag(self) -> dict[str, dict[str, Any]]:
        """{`library/alpine:3.19`: report entry}."""
        return {ref_of(e): e for e in self.report["images"]}

    def __str__(self) -> str:
        return f"mirror {' '.join(self.args)} -> {self.code}\n{self.stdout}\n{self.stderr}"


class Mirror:
    """`mirror` in a subprocess, against the world (and its dockerd when given one), with a
    config of the test's images and a private docker config directory (nothing from this
    machine's). Every run is kept for `assert_no_token`."""

    def __init__(self, world: World, tmp_path: Path, engine: DockerEngine | None = None) -> None:
        self.world = world
        self.config_path = tmp_path / "images.yaml"
        self.docker_config = tmp_path / "docker-config"
        self.docker_config.mkdir()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DOCKERHUB_")},
            **world.env(),
            "DOCKER_CONFIG": str(self.docker_config),
        }
        if engine is not None:
            self.env["DOCKER_HOST"] = engine.host
        self.runs: list[Run] = []

    def config(
        self,
        images: Sequence[Mapping[str, Any]],
        *,
        reserve: int = 10,
        create: bool | Sequence[str] = True,
        hub_credentials: bool = False,
    ) -> Path:
        """Write the config; create ECR repositories in moto (ensure-repo is not under test):
        `True` the images' repositories, `False` none, a sequence exactly those.
        `hub_credentials`: send DOCKERHUB_* to the world's Docker Hub, which as a loopback
        registry is not Docker Hub and gets them only by the config's opt-in."""
        source: dict[str, Any] = {"reserve_pulls": reserve}
        if hub_credentials:
            source["use_docker_hub_credentials"] = True
        self.world.write_config(self.config_path, images, source=source)
        if isinstance(create, bool):
            names = [target_repository(image["image"]) for image in images] if create else []
        else:
            assert not isinstance(create, str), "create: a sequence of repository names"
            names = list(create)
        for name in names:
            self.world.create_repository(name)
        return self.config_path

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "mirror", *args]

    def sync_args(self, *args: str) -> tuple[str, ...]:
        """`sync --no-ensure-repo -c <config> -o json ARGS`."""
        return ("sync", "--no-ensure-repo", "-c", str(self.config_path), "-o", "json", *args)

    def record(self, run: Run) -> Run:
        """Keep a run made outside `run` (a redirected or parallel one) for the token check."""
        self.runs.append(run)
        return run

    def run(self, *args: str, env: Mapping[str, str] | None = None) -> Run:
        done = subprocess.run(
            self.command(*args),
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )
        return self.record(Run(args, done.returncode, done.stdout, done.stderr))

    def sync(self, *args: str, env: Mapping[str, str] | None = None) -> Run:
        """`mirror sync --no-ensure-repo -c <config> -o json ARGS`."""
        return self.run(*self.sync_args(*args), env=env)

    def assert_no_token(self) -> None:
        """The ECR password, plain or in a Basic auth string, is in no output."""
        secrets = (self.world.ecr_password, basic_auth(Credentials(*self.world.ecr_auth)))
        for run in self.runs:
            for secret in secrets:
                assert secret not in run.stdout and secret not in run.stderr, str(run)


@dataclass
class QuotaThief:
    """Someone else spends the quota while the sync copies: at the `at`th manifest GET the
    front's quota for that source drops to `leave` (None: never)."""

    at: int | None = None
    leave: int = 0
    gets: int = 0
