"""`mirror delete-schedule` against moto_server: the schedule stack goes with its log group and
alarm topic, the stack of repositories stays; no --yes without a terminal is refused; a declined
confirmation deletes nothing; a missing stack is one line; a stack of repositories named as the
schedule's is refused.

moto lists only the resources it deploys (not CodeBuild::Project, Scheduler::Schedule,
CloudWatch::Alarm: it skips those types); the report is checked against what it lists.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mirror.config import parse_config
from mirror.errors import StackError
from mirror.schedule_template import render
from mirror.stack import DeletePlan, ensure_stack
from mirror.stack.delete import delete_schedule
from tests.test_schedule_stack import (
    BIN,
    FAST,
    NAME,
    clients,
    config_text,
    deploy,
    moto_server,
    stack_exists,
    subscriptions,
)
from tests.world.moto import Moto

__all__ = ["moto_server"]  # the module's own moto_server, from the same fixture

ALARMS = {"alarms": {"email": "ops@example.com"}}
REPOSITORY_STACK = "ecr-mirror"


@pytest.fixture
def aws(moto_server: Moto) -> Moto:
    moto_server.reset()
    return moto_server


def delete_schedule_cli(
    path: Path, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """`mirror delete-schedule`, stdin no terminal (as in CI)."""
    return subprocess.run(
        [str(BIN / "mirror"), "delete-schedule", "-c", str(path), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def both_stacks(moto: Moto, tmp_path: Path) -> Path:
    """The stack of repositories and the schedule's, deployed from one config file."""
    text = config_text(ALARMS)
    ensure_stack(parse_config(text, "images.yaml"), polling=FAST, aws=clients(moto))
    assert deploy(moto, ALARMS)[0].result == "created"
    path = tmp_path / "images.yaml"
    path.write_text(text)
    return path


def repository_stack(moto: Moto) -> tuple[str, list[str]]:
    cf = moto.client("cloudformation")
    status = cf.describe_stacks(StackName=REPOSITORY_STACK)["Stacks"][0]["StackStatus"]
    names = [
        r["repositoryName"] for r in moto.client("ecr").describe_repositories()["repositories"]
    ]
    return status, names


def template_resources() -> list[str]:
    text = config_text(ALARMS)
    return list(render(parse_config(text, "images.yaml"), text)["Resources"])


def log_groups(moto: Moto) -> list[str]:
    answer = moto.client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/codebuild/{NAME}")
    return [group["logGroupName"] for group in answer["logGroups"]]


def test_delete_schedule_yes_deletes_the_schedule_stack_only(aws: Moto, tmp_path: Path) -> None:
    path = both_stacks(aws, tmp_path)
    repositories_before = repository_stack(aws)
    assert log_groups(aws) and subscriptions(aws)

    result = delete_schedule_cli(path, "--yes", env=aws.env)
    assert result.returncode == 0, result.stderr
    summary, *rows = result.stdout.splitlines()
    assert summary == f"stack {NAME} deleted from us-east-1 with its {len(rows)} resources"
    table = [row.split(maxsplit=2) for row in rows]
    assert ["LogGroup", "AWS::Logs::LogGroup", "deleted with the stack"] in table
    assert ["AlarmTopic", "AWS::SNS::Topic", "deleted with the stack"] in table
    # every resource moto deploys (it skips Project, Schedule and the alarms: not implemented)
    deployed = {"LogGroup", "BuildRole", "ScheduleRole", "AlarmTopic"}
    assert deployed <= {row[0] for row in table} <= set(template_resources())
    assert f"deleting stack {NAME}" in result.stderr
    assert "the alarm topic with its subscriptions" in result.stderr
    assert f"in stack {REPOSITORY_STACK}, which stays" in result.stderr

    assert not stack_exists(aws)
    assert log_groups(aws) == []  # the job's logs went with the stack
    assert subscriptions(aws) == []  # and so did the alarm topic
    assert repository_stack(aws) == repositories_before  # untouched

    again = delete_schedule_cli(path, "--yes", env=aws.env)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"stack {NAME} does not exist in us-east-1: nothing to delete\n"


def test_without_yes_and_no_terminal_it_is_refused(aws: Moto, tmp_path: Path) -> None:
    path = both_stacks(aws, tmp_path)
    result = delete_schedule_cli(path, env=aws.env)
    assert result.returncode == 2
    assert result.stderr == (
        "mirror: error: delete-schedule asks before deleting, and stdin is no terminal:"
        " pass --yes\n"
    )
    assert result.stdout == ""
    assert stack_exists(aws)


def test_a_declined_confirmation_deletes_nothing(aws: Moto) -> None:
    deploy(aws, ALARMS)
    plans: list[DeletePlan] = []
    outcome = delete_schedule(
        parse_config(config_text(ALARMS), "images.yaml"),
        confirm=lambda plan: plans.append(plan) is not None,
        polling=FAST,
        aws=clients(aws),
    )
    assert outcome.result == "cancelled"
    assert outcome.summary() == f"stack {NAME} was not deleted"
    assert stack_exists(aws)
    (plan,) = plans
    assert plan.repositories == ()
    assert ("LogGroup", "AWS::Logs::LogGroup") in plan.resources
    assert ("AlarmTopic", "AWS::SNS::Topic") in plan.resources


def test_a_stack_of_repositories_named_as_the_schedule_s_is_refused(aws: Moto) -> None:
    config = parse_config(config_text({"stack_name": REPOSITORY_STACK}), "images.yaml")
    ensure_stack(config, polling=FAST, aws=clients(aws))
    asked: list[DeletePlan] = []
    with pytest.raises(StackError, match="holds ECR repositories: it is no schedule stack"):
        delete_schedule(
            config, confirm=lambda plan: asked.append(plan) is None, polling=FAST, aws=clients(aws)
        )
    assert asked == []
    assert repository_stack(aws)[0] == "CREATE_COMPLETE"
