"""The scheduled job's template, rendered: least privilege, the buildspec run for real in `sh`,
the batch shards, the alarms on the metrics `mirror sync --metrics cloudwatch` publishes, and
cfn-lint on every variant.

moto's CloudFormation does not implement AWS::CodeBuild::Project, AWS::Scheduler::Schedule
or AWS::CloudWatch::Alarm (it skips them with a warning when it deploys the stack; see
test_schedule_stack.py), so their properties are asserted here, on the rendered template,
and checked against CloudFormation's resource schemas by cfn-lint.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from mirror.config import Config, load_config, parse_config
from mirror.errors import ConfigError
from mirror.metrics import DIMENSION, NAMESPACE, run_metrics
from mirror.registry.answers import RateLimit
from mirror.schedule_policy import METRICS_NAMESPACE, UNSCOPED_ACTIONS, stack_name
from mirror.schedule_template import (
    CONFIG_FILE,
    METRICS_DIMENSION,
    render,
    render_yaml,
    size_problem,
)
from mirror.sync import SyncReport
from mirror.template import load_template
from tests.test_template import _statements, overbroad

REPO = Path(__file__).resolve().parent.parent
# The metric names the publishing side (`mirror sync --metrics cloudwatch`) sends, one
# datapoint each per run, in namespace `mirror` with the one dimension `Stack`: taken from
# it, so that an alarm on a name it does not publish fails here.
_QUOTA = RateLimit(limit=100, remaining=10, window_seconds=21600, source=None)
METRIC_NAMES = {m.name for m in run_metrics(SyncReport(ratelimit=_QUOTA), 1.0)}


def config_text(schedule: dict[str, Any] | None = None, **top: Any) -> str:
    document: dict[str, Any] = {
        "version": 1,
        "target": {"prefix": "dockerhub"},
        "stack": {"name": "ecr-mirror"},
        "images": [{"image": "python", "tags": ["3.12-slim"]}],
        **top,
    }
    if schedule is not None:
        document["schedule"] = schedule
    return yaml.safe_dump(document, sort_keys=False)


def configured(schedule: dict[str, Any] | None = None, **top: Any) -> tuple[Config, str]:
    text = config_text(schedule, **top)
    return parse_config(text, "images.yaml"), text


def rendered(schedule: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    return render(*configured(schedule, **top))


def policy(template: dict[str, Any], role: str = "BuildRole") -> dict[str, dict[str, Any]]:
    """Sid -> statement of a role's inline policy."""
    (inline,) = template["Resources"][role]["Properties"]["Policies"]
    return {s["Sid"]: s for s in inline["PolicyDocument"]["Statement"]}


def buildspec(template: dict[str, Any]) -> dict[str, Any]:
    spec = template["Resources"]["Project"]["Properties"]["Source"]["BuildSpec"]
    return dict(yaml.safe_load(spec))


def sub(value: Any) -> str:
    assert isinstance(value, dict) and set(value) == {"Fn::Sub"}, value
    return str(value["Fn::Sub"])


VARIANTS = {
    "defaults": None,
    "shards-email-pip": {
        "shards": 4,
        "pip": "mirror==0.1.0",
        "expression": "rate(6 hours)",
        "alarms": {"email": "ops@example.com", "deferred_nights": 2, "missed_run_hours": 7},
    },
    "image-secret": {"image": "tools/mirror:1.2.3", "stack_name": "nightly-mirror"},
    "timezone": {"expression": "cron(30 22 ? * MON-FRI *)", "timezone": "America/Los_Angeles"},
}


# --- least privilege ----------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS, ids=list(VARIANTS))
def test_no_statement_grants_a_wildcard_where_a_narrower_one_exists(variant: str) -> None:
    template = rendered(VARIANTS[variant], source={"credentials_secret": "dockerhub/mirror"})
    assert len(_statements(template)) >= 8, "the check saw too few statements"
    assert overbroad(template) == []
    starred = {
        action
        for _, statement in _statements(template)
        if "*" in statement.get("Resource", [])
        for action in statement["Action"]
    }
    assert starred == UNSCOPED_ACTIONS


def test_the_build_role_reaches_only_the_mirror_s_own_resources() -> None:
    template = rendered(
        {"image": "tools/mirror:1.2.3"}, source={"credentials_secret": "dockerhub/mirror"}
    )
    statements = policy(template)
    (repositories,) = statements["MirrorRepositories"]["Resource"]
    assert sub(repositories).endswith(":repository/dockerhub/*")
    assert "ecr:PutImage" in statements["MirrorRepositories"]["Action"]
    stack, further = statements["RepositoryStack"]["Resource"]
    assert sub(stack).endswith(":stack/ecr-mirror/*")
    assert sub(further).endswith(":stack/ecr-mirror-*/*")  # `-2`, `-3`... of a split set
    assert not any(
        a.startswith("cloudformation:") and "Delete" in a and "ChangeSet" not in a
        for a in statements["RepositoryStack"]["Action"]
    )
    (secret,) = statements["DockerHubSecret"]["Resource"]
    assert sub(secret).endswith(":secret:dockerhub/mirror-??????")
    assert statements["DockerHubSecret"]["Action"] == ["secretsmanager:GetSecretValue"]
    (logs,) = statements["OwnLogGroup"]["Resource"]
    assert sub(logs).endswith(":log-group:/aws/codebuild/ecr-mirror-schedule:*")
    assert statements["Metrics"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}
    }
    (image,) = statements["ToolImage"]["Resource"]
    assert sub(image).endswith(":repository/tools/mirror")
    assert set(statements["ToolImage"]["Action"]) == {
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchCheckLayerAvailability",
    }


def test_optional_statements_appear_only_when_configured() -> None:
    statements = policy(rendered({"pip": "mirror"}))
    assert "DockerHubSecret" not in statements
    assert "ToolImage" not in statements  # pip: CodeBuild's own image
    assert "BatchShards" not in statements
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:hub-AbCdEf"
    assert policy(rendered(source={"credentials_secret": arn}))["DockerHubSecret"]["Resource"] == [
        arn
    ]


def test_untagging_is_granted_only_when_an_entry_prunes_or_keeps_backups() -> None:
    def repository_actions(**top: Any) -> list[str]:
        return list(policy(rendered(**top))["MirrorRepositories"]["Action"])

    assert "ecr:BatchDeleteImage" not in repository_actions()
    assert "ecr:BatchDeleteImage" in repository_actions(defaults={"prune": True})
    assert "ecr:BatchDeleteImage" in repository_actions(defaults={"keep_previous": 1})


def test_the_template_bucket_is_granted_only_when_the_repository_template_needs_it() -> None:
    assert not {"TemplateBucket", "Templates"} & set(policy(rendered()))
    many = [{"image": f"team/image-{n:03d}", "tags": ["1"]} for n in range(100)]
    statements = policy(rendered(images=many))
    bucket = "arn:${AWS::Partition}:s3:::mirror-templates-${AWS::AccountId}-${AWS::Region}"
    assert statements["TemplateBucket"]["Resource"] == [{"Fn::Sub": bucket}]
    assert statements["Templates"]["Resource"] == [{"Fn::Sub": f"{bucket}/*"}]
    named = policy(rendered(images=many, stack={"name": "m", "scale": {"template_bucket": "b-1"}}))
    assert named["Templates"]["Resource"] == [{"Fn::Sub": "arn:${AWS::Partition}:s3:::b-1/*"}]
    assert statements["RepositoryStack"]["Resource"][1] == {
        "Fn::Sub": "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}"
        ":stack/ecr-mirror-*/*"
    }


def test_the_alarms_read_where_sync_publishes() -> None:
    assert (METRICS_NAMESPACE, METRICS_DIMENSION) == (NAMESPACE, DIMENSION)
    assert {"Failed", "Deferred", "Seconds"} <= METRIC_NAMES


def test_the_schedule_role_may_only_start_this_project() -> None:
    for shards, action in ((1, "codebuild:StartBuild"), (3, "codebuild:StartBuildBatch")):
        template = rendered({"shards": shards})
        (statement,) = policy(template, "ScheduleRole").values()
        assert statement["Action"] == [action]
        (project,) = statement["Resource"]
        assert sub(project).endswith(":project/ecr-mirror-schedule")
        trust = template["Resources"]["ScheduleRole"]["Properties"]["AssumeRolePolicyDocument"]
        assert trust["Statement"][0]["Principal"] == {"Service": "scheduler.amazonaws.com"}


# --- the build: config inline, sync, exit code 3 --------------------------------------------


def _commands(template: dict[str, Any]) -> list[str]:
    return list(buildspec(template)["phases"]["build"]["commands"])


def test_the_buildspec_writes_exactly_the_deployed_config(tmp_path: Path) -> None:
    config, text = configured({"expression": "cron(15 1 ? * MON-FRI *)"})
    text += "# a comment with $HOME, `backticks`, \\backslashes and 'quotes' stays as written\n"
    config = parse_config(text, "images.yaml")
    write, _ = _commands(render(config, text))
    target = tmp_path / "images.yaml"
    subprocess.run(["sh", "-c", write.replace(CONFIG_FILE, str(target))], check=True)
    assert target.read_text() == text


def test_a_config_that_would_end_its_here_document_is_refused() -> None:
    text = config_text() + "# MIRROR_CONFIG_END\n"  # a comment: not the line itself
    render(parse_config(text, "images.yaml"), text)
    text = config_text() + "source:\n  credentials_secret: |\n    hub\n    MIRROR_CONFIG_END\n"
    with pytest.raises(ConfigError, match=r"images\.yaml: a line reads MIRROR_CONFIG_END"):
        render(parse_config(text, "images.yaml"), text)


def _run_sync(
    command: str, tmp_path: Path, exit_code: int, shard: str | None = None
) -> tuple[int, str]:
    """The buildspec's sync command in `sh`, with a `mirror` that records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "mirror"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\nexit {exit_code}\n')
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    if shard is not None:
        env["MIRROR_SHARD"] = shard
    result = subprocess.run(["sh", "-c", command], env=env, check=False)
    return result.returncode, (tmp_path / "args").read_text().strip()


@pytest.mark.parametrize(("exit_code", "succeeds"), [(0, True), (3, True), (1, False), (2, False)])
def test_a_run_that_only_deferred_work_is_a_successful_build(
    tmp_path: Path, exit_code: int, succeeds: bool
) -> None:
    _, sync = _commands(rendered())
    code, args = _run_sync(sync, tmp_path, exit_code)
    assert (code == 0) is succeeds
    assert args == f"sync -c {CONFIG_FILE} --metrics cloudwatch"


def test_shards_run_as_one_batch_build_each_with_its_part(tmp_path: Path) -> None:
    template = rendered({"shards": 3})
    spec = buildspec(template)
    shards = [entry["env"]["variables"]["MIRROR_SHARD"] for entry in spec["batch"]["build-list"]]
    assert shards == ["1/3", "2/3", "3/3"]
    assert spec["batch"]["fast-fail"] is False  # one shard failing does not stop the others
    _, sync = _commands(template)
    _, args = _run_sync(sync, tmp_path, 0, shard="2/3")
    assert args.endswith("--metrics cloudwatch --shard 2/3")
    project = template["Resources"]["Project"]["Properties"]
    assert project["BuildBatchConfig"]["Restrictions"] == {"MaximumBuildsAllowed": 3}
    target = template["Resources"]["Schedule"]["Properties"]["Target"]
    assert target["Arn"] == "arn:aws:scheduler:::aws-sdk:codebuild:startBuildBatch"
    assert json.loads(target["Input"]) == {"ProjectName": "ecr-mirror-schedule"}
    assert "batch" not in buildspec(rendered())
    assert "BuildBatchConfig" not in rendered()["Resources"]["Project"]["Properties"]


def test_the_project_runs_the_tool_image_from_ecr_or_pip_installs_it() -> None:
    environment = rendered({"image": "tools/mirror:1.2.3"})["Resources"]["Project"]["Properties"][
        "Environment"
    ]
    assert sub(environment["Image"]).endswith(".${AWS::URLSuffix}/tools/mirror:1.2.3")
    assert environment["ImagePullCredentialsType"] == "SERVICE_ROLE"
    assert "install" not in buildspec(rendered({"image": "tools/mirror:1.2.3"}))["phases"]
    template = rendered({"pip": "git+https://example.com/mirror.git@v1"})
    environment = template["Resources"]["Project"]["Properties"]["Environment"]
    assert environment["Image"].startswith("aws/codebuild/standard:")
    install = buildspec(template)["phases"]["install"]["commands"]
    assert install == ["pip install --no-cache-dir 'git+https://example.com/mirror.git@v1'"]


# --- alarms and the schedule ----------------------------------------------------------------


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        key: value["Properties"]
        for key, value in template["Resources"].items()
        if value["Type"] == "AWS::CloudWatch::Alarm"
    }


def test_alarms_watch_the_published_metrics_of_this_stack() -> None:
    alarms = _alarms(rendered({"alarms": {"deferred_nights": 4, "missed_run_hours": 30}}))
    assert set(alarms) == {
        "FailedImagesAlarm",
        "FailedBuildAlarm",
        "DeferredAlarm",
        "MissedRunAlarm",
    }
    for key in ("FailedImagesAlarm", "DeferredAlarm", "MissedRunAlarm"):
        alarm = alarms[key]
        assert alarm["Namespace"] == METRICS_NAMESPACE
        assert alarm["MetricName"] in METRIC_NAMES
        assert alarm["Dimensions"] == [{"Name": METRICS_DIMENSION, "Value": "ecr-mirror"}]
    deferred = alarms["DeferredAlarm"]
    assert (deferred["MetricName"], deferred["Period"]) == ("Deferred", 86400)
    assert deferred["EvaluationPeriods"] == deferred["DatapointsToAlarm"] == 4
    missed = alarms["MissedRunAlarm"]
    assert missed["TreatMissingData"] == "breaching"  # no datapoint at all is the alarm
    assert missed["Period"] * missed["EvaluationPeriods"] == 30 * 3600
    assert (missed["Statistic"], missed["ComparisonOperator"]) == (
        "SampleCount",
        "LessThanThreshold",
    )
    failed = alarms["FailedImagesAlarm"]
    assert (failed["MetricName"], failed["ComparisonOperator"]) == (
        "Failed",
        "GreaterThanThreshold",
    )
    build = alarms["FailedBuildAlarm"]
    assert build["Dimensions"] == [{"Name": "ProjectName", "Value": "ecr-mirror-schedule"}]
    assert all("AlarmActions" not in alarm for alarm in alarms.values())
    assert "AlarmTopic" not in rendered()["Resources"]


def test_an_email_gets_a_topic_that_every_alarm_notifies() -> None:
    template = rendered({"alarms": {"email": "ops@example.com"}})
    topic = template["Resources"]["AlarmTopic"]["Properties"]
    assert topic["Subscription"] == [{"Endpoint": "ops@example.com", "Protocol": "email"}]
    for alarm in _alarms(template).values():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_schedule_runs_the_configured_expression_nightly_by_default() -> None:
    schedule = rendered()["Resources"]["Schedule"]["Properties"]
    assert schedule["ScheduleExpression"] == "cron(0 3 * * ? *)"
    assert schedule["Target"]["Arn"] == "arn:aws:scheduler:::aws-sdk:codebuild:startBuild"
    other = rendered({"expression": "rate(1 day)"})["Resources"]["Schedule"]["Properties"]
    assert other["ScheduleExpression"] == "rate(1 day)"


def test_the_schedule_runs_in_its_time_zone_and_names_none_for_utc() -> None:
    schedule = rendered({"timezone": "Australia/Sydney"})["Resources"]["Schedule"]["Properties"]
    assert schedule["ScheduleExpression"] == "cron(0 3 * * ? *)"
    assert schedule["ScheduleExpressionTimezone"] == "Australia/Sydney"
    # without the key, nothing: the templates deployed before it stay byte for byte the same
    assert "ScheduleExpressionTimezone" not in rendered()["Resources"]["Schedule"]["Properties"]
    assert "Timezone" not in render_yaml(*configured())


def _quiet_hours(published: list[datetime]) -> int:
    """The most one-hour periods in a row without a datapoint between these publications:
    CloudWatch's periods of the missed-run alarm, whole hours of UTC."""
    hours = sorted(int(moment.timestamp()) // 3600 for moment in published)
    return max(later - earlier - 1 for earlier, later in pairwise(hours))


@pytest.mark.parametrize(
    ("zone", "clocks_back"),
    [
        (None, date(2026, 10, 25)),  # UTC: no night is longer than 24 hours
        ("Europe/Paris", date(2026, 10, 25)),
        ("America/Los_Angeles", date(2026, 11, 1)),
        ("Australia/Sydney", date(2026, 4, 5)),
    ],
)
def test_the_night_the_clocks_go_back_raises_no_missed_run_alarm(
    zone: str | None, clocks_back: date
) -> None:
    """Nightly at 03:00 in the zone; the run before the change publishes its metrics after 50
    minutes, the one after it, a slower one, after 70: the night is 25 hours and 20 minutes
    (24 in UTC), and the alarm stays quiet. A night without a run still raises it."""
    missed = _alarms(rendered({} if zone is None else {"timezone": zone}))["MissedRunAlarm"]
    clock = ZoneInfo(zone or "UTC")
    before = datetime.combine(clocks_back - timedelta(days=1), time(3), clock)
    after = datetime.combine(clocks_back, time(3), clock)
    published = [before + timedelta(minutes=50), after + timedelta(minutes=70)]
    night = published[1].astimezone(UTC) - published[0].astimezone(UTC)
    assert night == timedelta(hours=24 if zone is None else 25, minutes=20)
    assert _quiet_hours(published) < missed["EvaluationPeriods"]
    next_night = after + timedelta(days=1, minutes=70)
    assert _quiet_hours([published[0], next_night]) >= missed["EvaluationPeriods"]


def test_the_stack_name_defaults_from_the_repository_stack() -> None:
    assert stack_name(configured()[0]) == "ecr-mirror-schedule"
    assert stack_name(configured({"stack_name": "nightly"})[0]) == "nightly"
    long_name = "a" * 120
    template = rendered(stack={"name": long_name})
    schedule = template["Resources"]["Schedule"]["Properties"]["Name"]
    assert schedule == f"{long_name}-schedule"[:64]  # EventBridge Scheduler takes 64 at most


# --- the rendering as a whole -----------------------------------------------------------------


def test_the_rendering_is_stable_and_reads_back_as_the_template() -> None:
    config, text = configured(VARIANTS["shards-email-pip"])
    body = render_yaml(config, text)
    assert render_yaml(config, text) == body
    assert load_template(body) == render(config, text)


def test_cfn_schedule_yml_is_the_rendering_of_the_repository_config() -> None:
    path = REPO / "config" / "images.yaml"
    assert (REPO / "cfn" / "schedule.yml").read_text() == render_yaml(
        load_config(path), path.read_text()
    ), "cfn/schedule.yml is stale: regenerate it with `mirror schedule-template > cfn/schedule.yml`"


@pytest.mark.parametrize("variant", VARIANTS, ids=list(VARIANTS))
def test_rendered_variants_are_cfn_lint_clean(variant: str) -> None:
    from cfnlint.api import lint

    config, text = configured(VARIANTS[variant], source={"credentials_secret": "hub"})
    assert [str(match) for match in lint(render_yaml(config, text))] == []


def test_a_config_too_large_to_deploy_inline_is_named() -> None:
    assert size_problem("x" * 51_200) is None
    problem = size_problem("x" * 51_201)
    assert problem is not None and "51201 bytes" in problem and "51200" in problem
