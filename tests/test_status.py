"""`mirror status` (issue 13): the scheduled job on one screen, through the real CLI against the
world's moto_server.

What moto fakes, and how the gaps are covered:
- its CloudFormation skips the CodeBuild project and the alarms (tests/test_schedule_stack.py),
  so after `mirror deploy-schedule` they are created in moto directly, with the names and
  properties of the rendered template (never hard-coded);
- its CodeBuild records builds (StartBuild) but reports every build SUCCEEDED, with an end
  time a random 1 to 5 minutes after its start, drawn again at each BatchGetBuilds, and lists
  a project's builds oldest first whatever the sort order asked; it does not implement build
  batches (ListBuildBatchesForProject answers 500). A failed last build is therefore checked
  on `attention` itself, and the batch calls of a sharded job with botocore's Stubber;
- its CloudWatch stores metrics and alarm states (PutMetricData, GetMetricData,
  PutMetricAlarm, SetAlarmState) but never evaluates an alarm.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest
import yaml
from botocore.stub import Stubber

from mirror.config import parse_config
from mirror.metrics import DIMENSION, NAMESPACE, run_metrics
from mirror.registry.answers import RateLimit
from mirror.schedule_template import render
from mirror.status import read_builds
from mirror.status_report import RUN_METRICS, Build, JobStatus, attention
from mirror.sync import SyncReport
from tests.runner import Mirror

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO / "docs" / "status.schema.json").read_text())
STACK = "nightly-mirror"
JOB = f"{STACK}-schedule"
IMAGES = [{"image": "alpine", "tags": ["3.19", "3.20"]}]
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def configure(mirror: Mirror) -> Path:
    mirror.config(IMAGES)  # the repositories, in moto
    return mirror.world.write_config(mirror.config_path, IMAGES, stack={"name": STACK})


def status(mirror: Mirror, *args: str) -> tuple[int, str, str]:
    run = mirror.run("status", "-c", str(mirror.config_path), *args)
    return run.code, run.stdout, run.stderr


def create_what_moto_skips(mirror: Mirror) -> dict[str, str]:
    """The CodeBuild project and the alarms, named as the deployed template names them;
    alarm logical ID -> alarm name."""
    assert mirror.world.moto is not None
    text = mirror.config_path.read_text()
    resources = render(parse_config(text, "images.yaml"), text)["Resources"]
    iam = mirror.world.moto.client("iam")
    role = iam.create_role(RoleName="build", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    mirror.world.moto.client("codebuild").create_project(
        name=resources["Project"]["Properties"]["Name"],
        source={"type": "S3", "location": "moto-needs/a-location.zip"},  # moto: NO_SOURCE too
        artifacts={"type": "NO_ARTIFACTS"},
        environment={
            "type": "LINUX_CONTAINER",
            "image": "aws/codebuild/standard:7.0",
            "computeType": "BUILD_GENERAL1_SMALL",
        },
        serviceRole=role,
    )
    cloudwatch = mirror.world.moto.client("cloudwatch")
    names = {}
    for key, resource in resources.items():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            cloudwatch.put_metric_alarm(**resource["Properties"])  # the template's own keys
            names[key] = resource["Properties"]["AlarmName"]
    return names


def test_nothing_deployed_is_one_line_saying_how_to_deploy(mirror: Mirror) -> None:
    path = configure(mirror)
    code, out, err = status(mirror)
    assert code == 1, err
    assert out == (
        f"no schedule stack {JOB} in us-east-1: deploy the job with"
        f" `mirror deploy-schedule -c {path}`\n"
    )
    code, out, err = status(mirror, "-o", "json")
    assert code == 1, err
    answer = json.loads(out)
    jsonschema.validate(answer, SCHEMA)
    assert answer["stack"]["status"] is None and answer["exit_code"] == 1


def test_a_project_and_alarms_cloudwatch_lacks_are_named(mirror: Mirror) -> None:
    """As moto's CloudFormation leaves the stack: no CodeBuild project, no alarms."""
    configure(mirror)
    assert mirror.run("deploy-schedule", "-c", str(mirror.config_path)).code == 0
    text = mirror.config_path.read_text()
    resources = render(parse_config(text, "images.yaml"), text)["Resources"]
    alarms = [r["Properties"]["AlarmName"] for r in resources.values() if "AlarmName" in str(r)]
    code, out, err = status(mirror, "-o", "json")
    assert code == 1, err
    answer = json.loads(out)
    assert answer["project_found"] is False and answer["builds"] == []
    assert answer["attention"] == [
        f"CodeBuild has no project {JOB}",
        "no run reported its metrics in the last 25 hours",
        *(f"CloudWatch has no alarm {name}" for name in alarms),
    ]


def test_a_night_that_worked_is_all_well_until_an_alarm_goes_off(mirror: Mirror) -> None:
    configure(mirror)
    assert mirror.run("deploy-schedule", "-c", str(mirror.config_path)).code == 0
    alarms = create_what_moto_skips(mirror)
    assert mirror.world.moto is not None
    mirror.world.moto.client("codebuild").start_build(projectName=JOB)
    sync = mirror.sync("--metrics", "cloudwatch")
    assert sync.code == 0, sync
    totals = sync.report["totals"]

    code, out, err = status(mirror)
    assert code == 0, out + err
    assert out.startswith(f"stack {JOB} in us-east-1: CREATE_COMPLETE\n")
    assert "  runs mirror sync on cron(0 3 * * ? *)\n" in out
    assert f"  deployed config as in {mirror.config_path}\n" in out
    build_header, build = out.split(f"builds of project {JOB}, newest first:\n")[1].splitlines()[:2]
    assert build_header.split() == ["started", "duration", "status", "id"]
    assert build.split()[-2:][0] == "SUCCEEDED" and build.split()[-1].startswith(f"{JOB}:")
    assert f"  Copied          {totals['copied']}\n" in out
    assert out.endswith("all well\n")

    code, out, err = status(mirror, "-o", "json")
    assert code == 0, err
    answer = json.loads(out)
    jsonschema.validate(answer, SCHEMA)
    metrics = answer["last_run"]["metrics"]
    assert (metrics["Copied"], metrics["PullsSpent"], metrics["Bytes"]) == (
        totals["copied"],
        totals["pulls"],
        totals["bytes"],
    )
    assert metrics["PullsRemaining"] == sync.report["ratelimit"]["remaining"]
    assert [b["status"] for b in answer["builds"]] == ["SUCCEEDED"]
    assert {a["name"] for a in answer["alarms"]} == set(alarms.values())
    assert answer["attention"] == [] and answer["exit_code"] == 0

    mirror.world.moto.client("cloudwatch").set_alarm_state(
        AlarmName=alarms["FailedBuildAlarm"], StateValue="ALARM", StateReason="a test"
    )
    code, out, err = status(mirror)
    assert code == 1, err
    assert out.endswith(f"needs a human:\n  - alarm {alarms['FailedBuildAlarm']} is in ALARM\n")


def test_a_config_edited_since_the_deploy_needs_a_human(mirror: Mirror) -> None:
    path = configure(mirror)
    assert mirror.run("deploy-schedule", "-c", str(path)).code == 0
    create_what_moto_skips(mirror)
    edited = yaml.safe_load(path.read_text())
    edited["images"][0]["tags"].append("3.21")
    path.write_text(yaml.safe_dump(edited, sort_keys=False))

    code, out, err = status(mirror, "-o", "json")
    assert code == 1, err
    answer = json.loads(out)
    assert answer["stack"]["config_matches"] is False
    assert answer["attention"] == [
        f"the deployed config is not {path}: run `mirror deploy-schedule -c {path}`",
        "no run reported its metrics in the last 25 hours",
    ]
    assert answer["project_found"] and answer["builds"] == []  # no build yet: not a failure


def test_a_weekly_run_inside_its_missed_run_window_is_found(mirror: Mirror) -> None:
    """A weekly job (`missed_run_hours: 168`) whose last run was four days ago: its metrics
    are looked for as far back as its window, not only the last three days."""
    mirror.config(IMAGES)
    schedule = {"expression": "cron(0 3 ? * SUN *)", "alarms": {"missed_run_hours": 168}}
    path = mirror.world.write_config(
        mirror.config_path, IMAGES, stack={"name": STACK}, schedule=schedule
    )
    assert mirror.run("deploy-schedule", "-c", str(path)).code == 0
    create_what_moto_skips(mirror)
    assert mirror.world.moto is not None
    four_days_ago = datetime.now(UTC) - timedelta(days=4)  # 68 hours inside the window
    mirror.world.moto.client("cloudwatch").put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {
                "MetricName": name,
                "Dimensions": [{"Name": DIMENSION, "Value": STACK}],
                "Timestamp": four_days_ago,
                "Value": 0.0 if name == "Failed" else 1.0,
            }
            for name, _ in RUN_METRICS
        ],
    )

    code, out, err = status(mirror, "-o", "json")
    answer = json.loads(out)
    assert answer["last_run"] is not None, answer
    assert answer["last_run"]["metrics"]["Copied"] == 1.0
    assert answer["attention"] == [] and code == 0, err


@pytest.mark.parametrize("builds", ["0", "101", "many"])
def test_a_bad_builds_count_is_a_usage_error_before_aws(mirror: Mirror, builds: str) -> None:
    configure(mirror)
    code, out, err = status(mirror, "--builds", builds)
    assert code == 2 and out == ""
    assert "--builds" in err


def test_a_bad_config_is_one_line_and_exit_2_before_aws(mirror: Mirror) -> None:
    configure(mirror)
    with mirror.config_path.open("a") as config:
        config.write("schedule:\n  shards: 0\n")
    # AWS unreachable: a call made before the config is checked would fail otherwise (exit 1)
    nowhere = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    run = mirror.run("status", "-c", str(mirror.config_path), env=nowhere)
    assert run.code == 2 and run.stdout == "", run
    assert run.stderr.startswith("mirror: error: ") and "schedule.shards" in run.stderr
    assert len(run.stderr.splitlines()) == 1


def test_status_reads_every_metric_a_sync_publishes() -> None:
    quota = RateLimit(limit=100, remaining=90, window_seconds=21600, source=None)
    published = [m.name for m in run_metrics(SyncReport(ratelimit=quota), 1.0)]
    assert published == [name for name, _ in RUN_METRICS]


def job(**facts: Any) -> JobStatus:
    """A deployed job, all well at NOW, with `facts` changed."""
    well: dict[str, Any] = {
        "stack_status": "UPDATE_COMPLETE",
        "expression": "cron(0 3 * * ? *)",
        "config_matches": True,
        "project_found": True,
        "builds": (Build("p:2", "SUCCEEDED", NOW - timedelta(hours=6), NOW),),
        "published": NOW - timedelta(hours=6),
        "metrics": (("Failed", 0.0), ("Seconds", 30.0)),
    }
    return JobStatus("p", "us-east-1", "images.yaml", NOW, 25, **{**well, **facts})


@pytest.mark.parametrize("status_value", ["FAILED", "FAULT", "TIMED_OUT", "STOPPED"])
def test_a_last_build_that_did_not_succeed_needs_a_human(status_value: str) -> None:
    assert attention(job()) == []
    older_failure = Build("p:1", status_value, NOW - timedelta(days=2), NOW - timedelta(days=2))
    assert attention(job(builds=(*job().builds, older_failure))) == []
    last = Build("p:3", status_value, NOW - timedelta(hours=1), NOW)
    assert attention(job(builds=(last, *job().builds))) == [
        f"the last build p:3 ended {status_value}"
    ]


def test_a_run_older_than_the_missed_run_window_needs_a_human() -> None:
    inside = job(published=NOW - timedelta(hours=25))
    assert attention(inside) == []
    outside = job(published=NOW - timedelta(hours=25, seconds=1))
    assert attention(outside) == ["no run reported its metrics in the last 25 hours"]


def test_a_run_that_failed_images_needs_a_human() -> None:
    failed = job(metrics=(("Failed", 2.0), ("Seconds", 30.0)))
    assert attention(failed) == ["the last run failed 2 images"]


def test_a_sharded_job_shows_its_batch_builds_newest_first() -> None:
    """moto does not implement build batches: the calls are checked with botocore's Stubber."""
    codebuild = boto3.client(
        "codebuild", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    older, newer = NOW - timedelta(days=1), NOW - timedelta(hours=1)
    with Stubber(codebuild) as stub:
        stub.add_response(
            "list_build_batches_for_project",
            {"ids": ["p:b2", "p:b1"]},
            {"projectName": "p", "sortOrder": "DESCENDING", "maxResults": 2},
        )
        stub.add_response(
            "batch_get_build_batches",
            {
                "buildBatches": [
                    {"id": "p:b1", "buildBatchStatus": "SUCCEEDED", "startTime": older},
                    {"id": "p:b2", "buildBatchStatus": "FAILED", "startTime": newer},
                ]
            },
            {"ids": ["p:b2", "p:b1"]},
        )
        builds = read_builds(codebuild, "p", 2, batches=True)
        stub.assert_no_pending_responses()
    assert [(b.id, b.status) for b in builds] == [("p:b2", "FAILED"), ("p:b1", "SUCCEEDED")]


def test_a_project_of_more_than_100_builds_is_listed_without_a_sort_order() -> None:
    """CodeBuild refuses ListBuildsForProject with a sortOrder once a project has more than
    100 builds (its API reference), about four months of nights; its default order is
    already newest first. moto does not refuse: the call is checked with botocore's Stubber,
    which fails on any parameter other than those expected."""
    codebuild = boto3.client(
        "codebuild", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    numbers = range(120, 20, -1)  # the first page of a project's 120 builds, newest first
    ids = [f"p:{n}" for n in numbers]
    started = {f"p:{n}": NOW - timedelta(days=120 - n) for n in numbers}
    with Stubber(codebuild) as stub:
        stub.add_response(
            "list_builds_for_project", {"ids": ids, "nextToken": "more"}, {"projectName": "p"}
        )
        stub.add_response(
            "batch_get_builds",
            {
                "builds": [
                    {"id": i, "buildStatus": "SUCCEEDED", "startTime": started[i]} for i in ids[:2]
                ]
            },
            {"ids": ids[:2]},
        )
        builds = read_builds(codebuild, "p", 2, batches=False)
        stub.assert_no_pending_responses()
    assert [b.id for b in builds] == ["p:120", "p:119"]
