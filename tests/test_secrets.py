"""No secret in any output or file: every command, with every credential set, on success and
failure paths, with and without --verbose.

The secrets: the Docker Hub token (plain, and as the base64 `user:token` of a Basic header),
the AWS secret key and session token, and ECR's password (plain and as base64 `AWS:password`).
They are looked for in stdout and stderr of every run, and in every file under the test's
directory (the docker config `mirror login` writes, the report a run redirects). The one
secret a file may hold is the ECR login that `mirror login` exists to write: the `auth` of
the ECR registry's entry in config.json; it is checked to be exactly that, and then removed
before the file is searched.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runner import Mirror, Run, target_repository
from tests.world.world import World

HUB_USER = "secret-test-user"
HUB_TOKEN = "dckr_pat_SECRETS-test-9f8e7d6c5b4a"
AWS_SECRET = "aws-secret-KEY-for-the-secrets-test-0a1b2c"
AWS_SESSION = "aws-session-TOKEN-for-the-secrets-test-3d4e5f"
ALPINE = {"image": "alpine", "tags": ["3.19"]}
BUSYBOX = {"image": "busybox", "tags": ["1.36"]}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Secrets:
    """The runs of one test, with every credential in their environment."""

    def __init__(self, mirror: Mirror, tmp_path: Path) -> None:
        self.mirror = mirror
        self.tmp_path = tmp_path
        world = mirror.world
        world.hub_front.users = {HUB_USER: HUB_TOKEN}
        mirror.env |= {
            "DOCKERHUB_USERNAME": HUB_USER,
            "DOCKERHUB_TOKEN": HUB_TOKEN,
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET,  # moto takes any key
            "AWS_SESSION_TOKEN": AWS_SESSION,
        }
        self.values = [
            HUB_TOKEN,
            b64(f"{HUB_USER}:{HUB_TOKEN}"),
            AWS_SECRET,
            AWS_SESSION,
            world.ecr_password,
            b64(f"AWS:{world.ecr_password}"),
        ]

    def run(self, *args: str, verbose: bool, env: dict[str, str] | None = None) -> Run:
        return self.mirror.run(*args, *(["--verbose"] if verbose else []), env=env)

    def check_outputs(self) -> None:
        assert self.mirror.runs, "nothing ran"
        for run in self.mirror.runs:
            for secret in self.values:
                assert secret not in run.stdout, f"{secret!r} on stdout of {run}"
                assert secret not in run.stderr, f"{secret!r} on stderr of {run}"

    def check_files(self, ecr_host: str | None = None) -> None:
        """Every file under the test's directory; config.json may hold the ECR login."""
        docker_config = self.mirror.docker_config / "config.json"
        files = [p for p in self.tmp_path.rglob("*") if p.is_file()]
        assert files, "no file to look at"
        for path in files:
            text = path.read_text(errors="replace")
            if path == docker_config and ecr_host is not None:
                document = json.loads(text)
                login = document["auths"].pop(ecr_host)
                assert login == {"auth": b64(f"AWS:{self.mirror.world.ecr_password}")}
                text = json.dumps(document)
            for secret in self.values:
                assert secret not in text, f"{secret!r} in {path}"


@pytest.fixture
def secrets(mirror: Mirror, tmp_path: Path) -> Iterator[Secrets]:
    s = Secrets(mirror, tmp_path)
    yield s
    s.check_outputs()


def _ecr_host(world: World) -> str:
    return world.ecr_url.split("://", 1)[1]


@pytest.mark.parametrize("verbose", [False, True])
def test_every_command_on_its_success_path_prints_no_secret(
    secrets: Secrets, verbose: bool
) -> None:
    mirror = secrets.mirror
    config = str(mirror.config([ALPINE, BUSYBOX], create=False, hub_credentials=True))
    report = secrets.tmp_path / "report.json"
    runs = [
        secrets.run("check", "-c", config, verbose=verbose),
        secrets.run("template", "-c", config, verbose=verbose),
        secrets.run("ensure-repo", "-c", config, verbose=verbose),
        secrets.run("quota", "-c", config, verbose=verbose),
        secrets.run("sync", "-c", config, "--dry-run", "-o", "json", verbose=verbose),
        secrets.run("sync", "-c", config, "-o", "json", verbose=verbose),
        secrets.run("sync", "-c", config, verbose=verbose),  # the table, all up to date
        secrets.run("login", "-c", config, "--config-only", verbose=verbose),
        secrets.run("uri", "alpine:3.19", "-c", config, verbose=verbose),
        secrets.run("uri", "alpine:3.19", "-c", config, "--digest", verbose=verbose),
        secrets.run("delete-repo", "-c", config, "--yes", verbose=verbose),
    ]
    assert [run.code for run in runs] == [0] * len(runs), "\n".join(map(str, runs))
    assert runs[5].report["totals"]["copied"] == 2  # the credentials were used, not skipped
    assert runs[3].stdout.splitlines()[-1] == f"source: {HUB_USER}"
    report.write_text(runs[5].stdout)  # what `sync -o json > report.json` leaves
    secrets.check_files(ecr_host=_ecr_host(mirror.world))


@pytest.mark.parametrize("verbose", [False, True])
def test_every_failure_path_prints_no_secret(secrets: Secrets, verbose: bool) -> None:
    mirror = secrets.mirror
    world = mirror.world
    # a missing repository: each image fails with ECR's NAME_UNKNOWN
    config = str(
        mirror.config([ALPINE, BUSYBOX], create=[target_repository("alpine")], hub_credentials=True)
    )
    missing = secrets.run(*mirror.sync_args(), verbose=verbose)
    assert missing.code == 1, missing
    assert {e["action"] for e in missing.report["images"]} == {"copied", "failed"}
    absent = secrets.run("uri", "busybox:1.36", "-c", config, "--digest", verbose=verbose)
    assert absent.code == 1, absent
    no_stack = secrets.run("delete-repo", "-c", config, "--yes", verbose=verbose)
    assert no_stack.code == 0, no_stack  # nothing to delete: still nothing printed

    # a refused Docker Hub token
    wrong = {"DOCKERHUB_TOKEN": HUB_TOKEN + "-revoked"}
    secrets.values.append(wrong["DOCKERHUB_TOKEN"])
    refused = secrets.run(*mirror.sync_args(), verbose=verbose, env=wrong)
    assert refused.code == 1 and "incorrect username or password" in refused.report["error"]
    quota = secrets.run("quota", "-c", config, verbose=verbose, env=wrong)
    assert quota.code == 1, quota

    # a bad config, for every command that reads one
    bad = secrets.tmp_path / "bad.yaml"
    bad.write_text(f"version: 1\nsource: {{registry: '{world.hub_url}'}}\nimages: [{{image: 7}}]\n")
    for args in (
        ["check"],
        ["template"],
        ["ensure-repo"],
        ["sync", "-o", "json"],
        ["sync", "--dry-run"],
        ["quota"],
        ["login", "--config-only"],
        ["uri", "alpine:3.19"],
        ["delete-repo", "--yes"],
    ):
        run = secrets.run(*args, "-c", str(bad), verbose=verbose)
        assert run.code == 2 and str(bad) in run.stderr, run

    # `mirror login` refusing a config.json that links out of its directory
    outside = secrets.tmp_path / "outside.json"
    outside.write_text("{}")
    (mirror.docker_config / "config.json").symlink_to(outside)
    login = secrets.run("login", "-c", config, "--config-only", verbose=verbose)
    assert login.code == 1 and "outside its directory" in login.stderr, login
    assert outside.read_text() == "{}"
    secrets.check_files()
