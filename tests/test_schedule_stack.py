"""The scheduled job's stack deployed against moto_server: create, nothing to change, update
through a shown change set, dry runs that change nothing, the command line, and the template in
cfn/ deployed by hand.

Whether the build role allows every AWS call `mirror` makes in the job is checked on moto's
request recording (moto itself cannot judge a resource-scoped policy: it authorizes every
request other than S3's against Resource `*`).

What moto deploys for real: the two IAM roles with their inline policies (read back here with
the ARNs resolved), the log group and its retention, the SNS topic and its email subscription.
What it does not implement, and skips with a warning while the stack still completes:
AWS::CodeBuild::Project, AWS::Scheduler::Schedule, AWS::CloudWatch::Alarm. Those are asserted
on the rendered template and linted in test_schedule_template.py. States moto cannot reach (a
stack rolled back, busy) share their refusals with the repository stack
(`mirror.stack.plan.blocked_refusal`); the wording for this stack is checked at the end.
"""

from __future__ import annotations

import ast
import base64
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from botocore.exceptions import ClientError

from mirror.config import Config, load_config, parse_config
from mirror.errors import ConfigError
from mirror.schedule_policy import build_policy, stack_name
from mirror.schedule_template import render_yaml
from mirror.stack import AwsClients, Polling
from mirror.stack.plan import blocked_refusal
from mirror.stack.schedule import deploy_schedule
from mirror.template import load_template
from tests.world.moto import Moto, start_moto
from tests.world.procs import http_probe, start_process

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FAST = Polling(interval=0.01, timeout=30)
NAME = "ecr-mirror-schedule"
ACCOUNT_REGION = "us-east-1:123456789012"


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    moto = start_moto(tmp_path_factory.mktemp("moto-schedule"))
    try:
        moto.client("cloudformation").list_stacks()  # the first call imports every backend
        yield moto
    finally:
        moto.stop()


@pytest.fixture
def aws(moto_server: Moto) -> Moto:
    moto_server.reset()
    return moto_server


def clients(moto: Moto) -> AwsClients:
    return AwsClients(moto.client("cloudformation"), moto.client("ecr"))


def config_text(schedule: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {
            "version": 1,
            "source": {"credentials_secret": "dockerhub/mirror"},
            "stack": {"name": "ecr-mirror"},
            "schedule": schedule,
            "images": [{"image": "python", "tags": ["3.12-slim"]}],
        },
        sort_keys=False,
    )


def deploy(moto: Moto, schedule: dict[str, Any], **options: Any) -> tuple[Any, list[str]]:
    text = config_text(schedule)
    lines: list[str] = []
    outcome = deploy_schedule(
        parse_config(text, "images.yaml"),
        text,
        progress=lines.append,
        polling=FAST,
        aws=clients(moto),
        **options,
    )
    return outcome, lines


def physical(moto: Moto, logical_id: str) -> str:
    resources = moto.client("cloudformation").list_stack_resources(StackName=NAME)
    (found,) = [
        r["PhysicalResourceId"]
        for r in resources["StackResourceSummaries"]
        if r["LogicalResourceId"] == logical_id
    ]
    return str(found)


def role_policy(moto: Moto, role: str, name: str) -> dict[str, Any]:
    document = moto.client("iam").get_role_policy(RoleName=physical(moto, role), PolicyName=name)[
        "PolicyDocument"
    ]
    # moto hands back the document as Python's repr of the dict, where AWS sends JSON
    return document if isinstance(document, dict) else ast.literal_eval(document)


def resolved(policy: dict[str, Any]) -> dict[str, Any]:
    """A rendered policy with its `Fn::Sub` ARNs as moto resolves them."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict) and set(node) == {"Fn::Sub"}:
            return (
                node["Fn::Sub"]
                .replace("${AWS::Partition}", "aws")
                .replace("${AWS::Region}:${AWS::AccountId}", ACCOUNT_REGION)
            )
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        return node

    return dict(walk(policy))


def subscriptions(moto: Moto) -> list[tuple[str, str]]:
    answer = moto.client("sns").list_subscriptions()["Subscriptions"]
    return sorted((s["Protocol"], s["Endpoint"]) for s in answer)


def stack_state(moto: Moto) -> tuple[Any, ...]:
    cf = moto.client("cloudformation")
    stack = cf.describe_stacks(StackName=NAME)["Stacks"][0]
    events = [e["EventId"] for e in cf.describe_stack_events(StackName=NAME)["StackEvents"]]
    change_sets = cf.list_change_sets(StackName=NAME)["Summaries"]
    return stack["StackStatus"], stack.get("LastUpdatedTime"), events, change_sets


def stack_exists(moto: Moto) -> bool:
    stacks = moto.client("cloudformation").list_stacks()["StackSummaries"]
    return any(s["StackName"] == NAME and s["StackStatus"] != "DELETE_COMPLETE" for s in stacks)


def test_create_nothing_to_change_then_update(aws: Moto) -> None:
    nightly = {"shards": 2, "alarms": {"email": "ops@example.com"}}

    planned, lines = deploy(aws, nightly, dry_run=True)
    assert planned.result == "would-create"
    assert not stack_exists(aws)
    assert "  + Project (AWS::CodeBuild::Project)" in lines

    created, lines = deploy(aws, nightly)
    assert created.result == "created"
    assert (
        created.summary()
        == f"stack {NAME} created in us-east-1: mirror sync runs on cron(0 3 * * ? *)"
    )
    config = parse_config(config_text(nightly), "images.yaml")
    # The roles as IAM holds them: the rendered least-privilege policy, ARNs resolved.
    assert role_policy(aws, "BuildRole", "mirror-sync") == resolved(build_policy(config))
    shards = role_policy(aws, "BuildRole", "mirror-sync")["Statement"][-1]
    assert shards["Resource"] == [f"arn:aws:codebuild:{ACCOUNT_REGION}:project/{NAME}"]
    start = role_policy(aws, "ScheduleRole", "start-mirror-sync")["Statement"]
    assert [s["Action"] for s in start] == [["codebuild:StartBuildBatch"]]
    (group,) = aws.client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/codebuild/{NAME}")[
        "logGroups"
    ]
    assert group["retentionInDays"] == 30
    assert subscriptions(aws) == [("email", "ops@example.com")]

    # Nothing changed: no change set is computed, nothing is executed.
    before = stack_state(aws)
    same, lines = deploy(aws, nightly)
    assert same.result == "up-to-date"
    assert stack_state(aws) == before
    assert lines == [f"stack {NAME} matches the config: nothing to change"]

    # Another time, no email: the change set is shown; a dry run executes nothing.
    changed = {"shards": 2, "expression": "cron(30 1 * * ? *)"}
    dry, lines = deploy(aws, changed, dry_run=True)
    assert dry.result == "would-update"
    assert stack_state(aws)[:3] == before[:3]
    assert aws.client("cloudformation").list_change_sets(StackName=NAME)["Summaries"] == []
    assert subscriptions(aws) == [("email", "ops@example.com")]
    assert "  ~ Schedule (AWS::Scheduler::Schedule)" in lines
    assert "  - AlarmTopic (AWS::SNS::Topic)" in lines

    updated, lines = deploy(aws, changed)
    assert updated.result == "updated"
    assert {(c.action, c.logical_id) for c in updated.changes} >= {
        ("modify", "Schedule"),
        ("remove", "AlarmTopic"),
    }
    assert any(line.startswith("executing change set mirror-") for line in lines)
    assert subscriptions(aws) == []
    assert ("AlarmTopic", "AWS::SNS::Topic", "removed") in updated.rows()[1]
    assert deploy(aws, changed)[0].result == "up-to-date"


def mirror(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "mirror"), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_cli_deploys_and_reports(aws: Moto, tmp_path: Path) -> None:
    path = tmp_path / "images.yaml"
    path.write_text(config_text({"pip": "mirror==0.1.0"}))

    dry = mirror("deploy-schedule", "-c", str(path), "--dry-run", env=aws.env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith(f"dry run: stack {NAME} does not exist in us-east-1;")
    assert not stack_exists(aws)

    result = mirror("deploy-schedule", "-c", str(path), env=aws.env)
    assert result.returncode == 0, result.stderr
    summary, *rows = result.stdout.splitlines()
    assert summary == f"stack {NAME} created in us-east-1: mirror sync runs on cron(0 3 * * ? *)"
    assert rows[0].split() == ["LogGroup", "AWS::Logs::LogGroup", "added"]
    assert f"creating stack {NAME}" in result.stderr
    assert "ToolImage" not in str(role_policy(aws, "BuildRole", "mirror-sync"))  # pip: no image


def test_the_cli_prints_the_template_it_deploys(tmp_path: Path) -> None:
    path = tmp_path / "images.yaml"
    text = config_text({"shards": 3})
    path.write_text(text)
    result = mirror("schedule-template", "-c", str(path), env={})
    assert result.returncode == 0, result.stderr
    assert result.stdout == render_yaml(parse_config(text, str(path)), text)
    assert '--shard "$MIRROR_SHARD"' in result.stdout


def deployed_schedule(moto: Moto) -> dict[str, Any]:
    """The Schedule resource's properties in the template CloudFormation holds."""
    body = moto.client("cloudformation").get_template(StackName=NAME)["TemplateBody"]
    return dict(load_template(body)["Resources"]["Schedule"]["Properties"])


def test_a_time_zone_is_deployed_and_a_change_of_zone_is_shown_first(
    aws: Moto, tmp_path: Path
) -> None:
    planned, _ = deploy(aws, {"timezone": "Australia/Sydney"}, dry_run=True)
    assert planned.summary().endswith(
        "; mirror sync would run on cron(0 3 * * ? *) in Australia/Sydney"
    )
    created, _ = deploy(aws, {"timezone": "Australia/Sydney"})
    assert created.summary() == (
        f"stack {NAME} created in us-east-1: mirror sync runs on cron(0 3 * * ? *)"
        " in Australia/Sydney"
    )
    assert deployed_schedule(aws)["ScheduleExpressionTimezone"] == "Australia/Sydney"
    # moto's CloudFormation skips AWS::Scheduler::Schedule, so its Scheduler holds no
    # schedule to read ScheduleExpressionTimezone from (cfn-lint checks the property instead,
    # test_schedule_template.py); when moto creates it, read it here.
    with pytest.raises(ClientError) as raised:
        aws.client("scheduler").get_schedule(Name=NAME)
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"

    # Another zone, by the command line's dry run: the change set shows the schedule (and
    # the project, whose inline config changed), and nothing is executed.
    path = tmp_path / "images.yaml"
    path.write_text(config_text({"timezone": "America/Los_Angeles"}))
    before = stack_state(aws)
    dry = mirror("deploy-schedule", "-c", str(path), "--dry-run", env=aws.env)
    assert dry.returncode == 0, dry.stderr
    assert "  ~ Schedule (AWS::Scheduler::Schedule)" in dry.stderr.splitlines()
    assert dry.stdout.splitlines()[0] == (
        f"dry run: deploy-schedule would update stack {NAME} in us-east-1:"
        " 0 to add, 2 to change, 0 to remove;"
        " mirror sync would run on cron(0 3 * * ? *) in America/Los_Angeles"
    )
    assert stack_state(aws)[:3] == before[:3]
    assert deployed_schedule(aws)["ScheduleExpressionTimezone"] == "Australia/Sydney"

    # The key removed: UTC again, the deployed schedule names no zone, and the missed-run
    # alarm is back to 25 hours (26 in a zone: the night the clocks go back).
    updated, _ = deploy(aws, {})
    assert {(c.action, c.logical_id) for c in updated.changes} == {
        ("modify", "Project"),
        ("modify", "Schedule"),
        ("modify", "MissedRunAlarm"),
    }
    assert "ScheduleExpressionTimezone" not in deployed_schedule(aws)
    assert updated.summary().endswith("mirror sync runs on cron(0 3 * * ? *)")


def test_cfn_schedule_yml_deployed_by_hand_is_what_deploy_schedule_deploys(aws: Moto) -> None:
    """`aws cloudformation deploy` of the file in cfn/, as its header says; then
    `mirror deploy-schedule` with the config it was rendered from finds nothing to change."""
    config: Config = load_config(REPO / "config" / "images.yaml")
    deployed = subprocess.run(
        [
            str(BIN / "aws"),
            "cloudformation",
            "deploy",
            "--template-file",
            str(REPO / "cfn" / "schedule.yml"),
            "--stack-name",
            stack_name(config),
            "--capabilities",
            "CAPABILITY_IAM",
        ],
        env={**os.environ, **aws.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert deployed.returncode == 0, deployed.stderr
    result = mirror("deploy-schedule", "-c", str(REPO / "config" / "images.yaml"), env=aws.env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"stack {stack_name(config)} in us-east-1 is up to date")


def test_a_config_too_large_to_inline_is_refused_before_aws(tmp_path: Path) -> None:
    text = config_text({}) + "".join(f"# {i:05d} {'x' * 90}\n" for i in range(560))
    with pytest.raises(ConfigError) as raised:
        deploy_schedule(parse_config(text, "big.yaml"), text)
    assert str(raised.value).startswith("big.yaml: the schedule template is ")


def test_a_stack_no_update_can_start_from_names_this_stack_s_commands() -> None:
    refusal = blocked_refusal(
        NAME,
        "ROLLBACK_COMPLETE",
        ["  CREATE_FAILED Project: role not assumable"],
        rerun="mirror deploy-schedule",
        delete="mirror delete-schedule",
        delete_note="",
    )
    assert refusal is not None
    assert refusal.message == (
        f"stack {NAME} is ROLLBACK_COMPLETE: its creation failed and was rolled back, and"
        " CloudFormation cannot update it. Delete it with `mirror delete-schedule`, then run"
        " `mirror deploy-schedule` again"
    )
    assert refusal.details == ("  CREATE_FAILED Project: role not assumable",)


# --- every AWS call the job makes is one the build role grants -------------------------------


@pytest.fixture
def recording_moto(tmp_path: Path) -> Iterator[tuple[Moto, Path]]:
    """A moto_server that records every request it answers into a file."""
    recording = tmp_path / "recording.jsonl"
    process = start_process(
        "moto-recording",
        lambda port: [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        log_dir=tmp_path / "moto",
        ready=http_probe("/moto-api/data.json"),
        timeout=60,
        env={**os.environ, "MOTO_RECORDER_FILEPATH": str(recording)},
    )
    assert process.port is not None
    moto = Moto(url=f"http://127.0.0.1:{process.port}", port=process.port, process=process)
    try:
        yield moto, recording
    finally:
        moto.stop()


def recorded_actions(recording: Path) -> set[str]:
    """`service:Action` of every request moto recorded (JSON targets and query actions)."""
    actions = set()
    for line in recording.read_text().splitlines():
        entry = json.loads(line)
        headers = entry["headers"]
        service = re.search(r"/[^/]+/([a-z0-9-]+)/aws4_request", headers["Authorization"])
        assert service is not None, headers
        target = headers.get("X-Amz-Target")
        if target:
            action = target.rpartition(".")[2]
        else:
            body = entry["body"] or ""
            text = base64.b64decode(body).decode() if entry["body_encoded"] else body
            found = re.search(r"(?:^|&)Action=([A-Za-z]+)", text)
            assert found is not None, text
            action = found.group(1)
        actions.add(f"{service.group(1)}:{action}")
    return actions


def test_the_build_role_grants_every_aws_call_the_job_makes(
    recording_moto: tuple[Moto, Path], tmp_path: Path
) -> None:
    """ensure-repo (a stack created, then updated through a change set), the Docker Hub
    secret and ECR tokens of a sync, `mirror login`: each call must be one the rendered
    policy grants. (The sync's source is a closed port: it stops after reading its
    credentials; the registry API's ECR actions are listed from ECR's documentation.)"""
    moto, recording = recording_moto
    secret = json.dumps({"username": "mirror", "token": "dckr_pat_x"})
    moto.client("secretsmanager").create_secret(Name="dockerhub/mirror", SecretString=secret)
    path = tmp_path / "images.yaml"

    def write(images: list[str]) -> None:
        document = {
            "version": 1,
            "source": {
                "registry": "http://127.0.0.1:9",
                "credentials_secret": "dockerhub/mirror",
                "use_docker_hub_credentials": True,
            },
            "images": [{"image": image, "tags": ["1"]} for image in images],
        }
        path.write_text(yaml.safe_dump(document))

    httpx.post(f"{moto.url}/moto-api/recorder/start-recording", timeout=10).raise_for_status()
    write(["python"])
    assert mirror("ensure-repo", "-c", str(path), env=moto.env).returncode == 0
    write(["python", "node"])
    assert mirror("ensure-repo", "-c", str(path), env=moto.env).returncode == 0
    mirror("sync", "-c", str(path), "--no-ensure-repo", env=moto.env)
    assert (
        mirror(
            "login",
            "--config-only",
            "-c",
            str(path),
            env={**moto.env, "DOCKER_CONFIG": str(tmp_path)},
        ).returncode
        == 0
    )
    httpx.post(f"{moto.url}/moto-api/recorder/stop-recording", timeout=10).raise_for_status()

    made = recorded_actions(recording)
    assert {
        "cloudformation:CreateStack",
        "cloudformation:CreateChangeSet",
        "cloudformation:ExecuteChangeSet",
        "ecr:DescribeRepositories",
        "ecr:GetAuthorizationToken",
        "secretsmanager:GetSecretValue",
    } <= made, "the recording missed calls the job makes: the check would see nothing"
    policy = build_policy(load_config(path))
    granted = {action for statement in policy["Statement"] for action in statement["Action"]}
    assert made - granted == set()


def test_a_job_image_missing_from_ecr_is_a_warning_before_the_first_night(
    aws: Moto, tmp_path: Path
) -> None:
    """The stack deploys without its image, but every run would fail: say so now."""
    path = tmp_path / "images.yaml"
    path.write_text(config_text({"image": "tools/mirror:1.2"}))
    ecr = aws.client("ecr")

    def warnings() -> list[str]:
        result = mirror("deploy-schedule", "-c", str(path), "--dry-run", env=aws.env)
        assert result.returncode == 0, result.stderr
        return [line for line in result.stderr.splitlines() if "warning" in line]

    cure = "every run fails until it is pushed (docs/schedule.md), or set schedule.pip"
    assert warnings() == [
        "mirror: warning: schedule.image tools/mirror:1.2 is not in ECR in us-east-1"
        f" (no repository tools/mirror): {cure}"
    ]
    ecr.create_repository(repositoryName="tools/mirror")
    assert warnings() == [
        "mirror: warning: schedule.image tools/mirror:1.2 is not in ECR in us-east-1"
        f" (no tag tools/mirror:1.2): {cure}"
    ]
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "sha256:" + "0" * 64,
            "size": 2,
        },
        "layers": [],
    }
    ecr.put_image(repositoryName="tools/mirror", imageManifest=json.dumps(manifest), imageTag="1.2")
    assert warnings() == []
    path.write_text(config_text({"pip": "mirror==0.1.0"}))  # pip: no image to look for
    assert warnings() == []


def test_a_job_image_without_a_tag_is_looked_for_and_named_as_latest(
    aws: Moto, tmp_path: Path
) -> None:
    """`image: tools/untagged` is pulled as `:latest` by CodeBuild: the warning names what is
    missing, the tag `latest`, not the bare name."""
    path = tmp_path / "images.yaml"
    path.write_text(config_text({"image": "tools/untagged"}))
    aws.client("ecr").create_repository(repositoryName="tools/untagged")
    result = mirror("deploy-schedule", "-c", str(path), "--dry-run", env=aws.env)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if "warning" in line] == [
        "mirror: warning: schedule.image tools/untagged is not in ECR in us-east-1"
        " (no tag tools/untagged:latest): every run fails until it is pushed"
        " (docs/schedule.md), or set schedule.pip"
    ]


@pytest.mark.parametrize("taken", ["ecr-mirror", "ecr-mirror-2"])
def test_a_schedule_stack_named_as_a_repository_stack_is_refused_before_aws(
    aws: Moto, tmp_path: Path, taken: str
) -> None:
    """`schedule.stack_name` set to `stack.name` (or a name of its set) would have
    deploy-schedule update the stack of repositories with the job's template, taking every
    repository out of it: one line, exit 2, and the repository stack stays as it was."""
    path = tmp_path / "images.yaml"
    path.write_text(config_text({}))
    assert mirror("ensure-repo", "-c", str(path), env=aws.env).returncode == 0
    cf = aws.client("cloudformation")
    before = cf.get_template(StackName="ecr-mirror")["TemplateBody"]
    path.write_text(config_text({"stack_name": taken}))
    for args in (["deploy-schedule"], ["deploy-schedule", "--dry-run"]):
        result = mirror(*args, "-c", str(path), env=aws.env)
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [
            f"mirror: error: {path}: schedule.stack_name {taken!r} is a name of the stacks of"
            " repositories (stack.name 'ecr-mirror'): give the job's stack another name"
        ]
    assert cf.get_template(StackName="ecr-mirror")["TemplateBody"] == before
    assert [s["StackName"] for s in cf.list_stacks()["StackSummaries"]] == ["ecr-mirror"]


def test_the_default_job_name_of_a_128_character_stack_name_is_refused_as_taken() -> None:
    """`<stack.name>-schedule` is cut to CloudFormation's 128 characters: for a stack.name of
    128, that is stack.name itself. Refused before any AWS call (no clients are given)."""
    text = config_text({}).replace("name: ecr-mirror", "name: " + "m" * 128)
    config = parse_config(text, "images.yaml")
    assert stack_name(config) == config.stack.name
    with pytest.raises(ConfigError, match="is a name of the stacks of repositories"):
        deploy_schedule(config, text, aws=None)


class _NotAws(http.server.BaseHTTPRequestHandler):
    """A proxy's page where AWS was expected: 200, HTML."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        page = b"<!doctype html><html><title>sign in to the proxy</title></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(
    "command", [["status"], ["deploy-schedule", "--dry-run"], ["ensure-repo", "--dry-run"]]
)
def test_an_answer_that_is_not_aws_is_one_line_and_no_internal_error(
    tmp_path: Path, command: list[str]
) -> None:
    """An endpoint that answers what the SDK cannot parse (a proxy's page) is the AWS call's
    failure, said in one line, not a bug of mirror's ("internal error ... please report")."""
    path = tmp_path / "images.yaml"
    path.write_text(config_text({}))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotAws)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_address[1]}",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
        }
        result = mirror(*command, "-c", str(path), env=env)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 1, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("mirror: ")]
    assert line.startswith("mirror: error: stack ecr-mirror"), line
    assert "an answer that is not AWS's" in line and "internal error" not in line
