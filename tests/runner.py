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
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from mirror.registry.auth import Credentials
from tests.world.dockerd import DockerEngine
from tests.world.world import World

# --- the JSON report's documented shape -----------------------------------------------------

REPORT_SCHEMA: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "docs" / "report.schema.json").read_text()
)
REPORT_VALIDATOR = Draft202012Validator(REPORT_SCHEMA)
ACTIONS: tuple[str, ...] = tuple(REPORT_SCHEMA["$defs"]["image"]["properties"]["action"]["enum"])
TOTALS_FIELDS: tuple[str, ...] = tuple(REPORT_SCHEMA["$defs"]["totals"]["required"])


def _where(path: Sequence[str | int]) -> str:
    """`images[0].bytes` from a JSON path."""
    text = "report"
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else f".{step}"
    return text


def check_report_shape(report: Any) -> None:
    """The report is valid by docs/report.schema.json (every key, type, action, digest), and
    its numbers agree with each other (what a schema cannot say)."""
    errors = sorted(REPORT_VALIDATOR.iter_errors(report), key=lambda e: list(e.absolute_path))
    assert not errors, "; ".join(f"{_where(e.absolute_path)}: {e.message}" for e in errors)
    totals = report["totals"]
    counted = Counter(e["action"] for e in report["images"])
    for action in ACTIONS:
        assert totals[action.replace("-", "_")] == counted[action], f"totals.{action}"
    assert totals["bytes"] == sum(e["bytes"] for e in report["images"]), "totals.bytes"
    assert totals["pulls"] == sum(e["pulls"] for e in report["images"]), "totals.pulls"
    assert totals["minimum_pulls"] <= totals["pulls"], "totals.minimum_pulls"
    assert totals["estimated_pulls"] == sum(
        e["estimated_pulls"] for e in report["images"] if e["action"] == "would-copy"
    ), "totals.estimated_pulls"
    if report["error"] is not None:  # the run stopped before it could report on images
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
