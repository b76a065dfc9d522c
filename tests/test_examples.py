"""examples/ (issue 13): the CodeBuild buildspec and the GitHub Actions workflow parse, and
every `mirror` command line in them is one the CLI accepts: its command exists, and its
options and their values parse as `mirror` itself would parse them (the typer app, walked
generically: a new command or option needs no change here)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
import yaml

from mirror.cli import app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# `mirror ARGS` at the start of a shell line or after `$(`, `;`, `&&`, `|`, up to where the
# shell would end it (a separator, a redirection, a closing parenthesis, a comment)
_CALL = re.compile(r"(?:^|[\s(;&|])mirror((?:[ \t]+[^\s;&|()<>#]+)*)")


def mirror_calls(script: str) -> Iterator[list[str]]:
    """The arguments of every `mirror` call in a shell script."""
    for line in script.splitlines():
        for match in _CALL.finditer(line):
            yield shlex.split(match.group(1))


def rejection(args: list[str]) -> str | None:
    """Why `mirror ARGS` would be refused as usage (unknown command or option, a bad
    value, a missing argument), or None when the CLI accepts it."""
    group: Any = typer.main.get_command(app)
    try:
        context = group.make_context("mirror", list(args))
        name, command, rest = group.resolve_command(context, list(args))
        command.make_context(name, rest, parent=context)
    except typer.TyperException as exc:  # typer's click: UsageError, BadParameter, ...
        return str(exc.format_message())
    return None


def buildspec_commands(document: dict[str, Any]) -> Iterator[str]:
    for phase in document["phases"].values():
        yield from phase.get("commands", [])


def workflow_commands(document: dict[str, Any]) -> Iterator[str]:
    for job in document["jobs"].values():
        yield from (step["run"] for step in job["steps"] if "run" in step)


def load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((EXAMPLES / name).read_text())
    assert isinstance(document, dict), name
    return document


@pytest.mark.parametrize(
    ("name", "commands", "expected"),
    [
        ("buildspec.yml", buildspec_commands, {"login", "uri"}),
        ("github-actions.yml", workflow_commands, {"check", "sync"}),
    ],
)
def test_every_mirror_call_in_an_example_is_one_the_cli_accepts(
    name: str, commands: Any, expected: set[str]
) -> None:
    calls = [args for script in commands(load(name)) for args in mirror_calls(script)]
    assert {args[0] for args in calls} == expected, calls
    for args in calls:
        assert rejection(args) is None, f"{name}: mirror {shlex.join(args)}: {rejection(args)}"


def test_the_buildspec_logs_in_before_it_builds_from_a_mirrored_base() -> None:
    document = load("buildspec.yml")
    assert document["version"] == 0.2
    pre_build = " ".join(document["phases"]["pre_build"]["commands"])
    assert "mirror login" in pre_build and "$(mirror uri " in pre_build
    build = " ".join(document["phases"]["build"]["commands"])
    assert re.search(r"docker build .*--build-arg BASE=\"\$BASE\"", build), build


def test_the_workflow_is_scheduled_with_an_oidc_role_and_a_secret_token() -> None:
    document = load("github-actions.yml")
    triggers = document.get("on", document.get(True))  # YAML 1.1 reads `on` as true
    assert triggers["schedule"][0]["cron"].count(" ") == 4
    assert document["permissions"]["id-token"] == "write"
    steps = document["jobs"]["sync"]["steps"]
    aws = next(s for s in steps if s.get("uses", "").startswith("aws-actions/configure-aws"))
    assert "role-to-assume" in aws["with"] and "aws-access-key-id" not in aws["with"]
    sync = next(s for s in steps if "mirror sync" in s.get("run", ""))
    assert sync["env"]["DOCKERHUB_TOKEN"] == "${{ secrets.DOCKERHUB_TOKEN }}"


@pytest.mark.parametrize(
    ("script", "complaint"),
    [
        ("mirror synk --dry-run", "No such command 'synk'"),
        ("BASE=$(mirror uri python:3.12 --pin)", "No such option: --pin"),
        ("mirror sync --metrics prometheus > r.json", "'prometheus' is not one of"),
        ("x && mirror uri --digest; echo", "Missing argument 'IMAGE[:TAG]'"),
        ("mirror sync --shard", "requires an argument"),
    ],
)
def test_the_check_refuses_what_the_cli_would_refuse(script: str, complaint: str) -> None:
    (args,) = mirror_calls(script)
    said = rejection(args)
    assert said is not None and complaint in said, said


def test_the_check_finds_calls_where_the_shell_would_and_nowhere_else() -> None:
    script = 'echo "::warning::mirror sync deferred"\npip install ./tools/mirror\nmirror quota'
    assert list(mirror_calls(script)) == [["quota"]]
    assert list(mirror_calls("A=$(mirror uri alpine:3.19 -c c.yaml) && mirror login")) == [
        ["uri", "alpine:3.19", "-c", "c.yaml"],
        ["login"],
    ]
