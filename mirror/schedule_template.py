"""The CloudFormation template of the scheduled sync job, rendered from a Config and its text.

Pure: no I/O. `render(config, config_text)` builds the template as a dict (long-form
intrinsics), `render_yaml` writes it as `mirror.template` writes the repository stack (short
form, byte-stable, so `mirror deploy-schedule` can tell an up-to-date stack without a change
set). `cfn/schedule.yml` is the rendering of `config/images.yaml`.

What the stack holds:

- a CodeBuild project that runs `mirror sync --metrics cloudwatch` from the mirror's own
  container image in this account's ECR (`schedule.image`) or after `pip install`
  (`schedule.pip`) on CodeBuild's standard image; with `schedule.shards` N > 1 a batch build
  of N builds, each `--shard K/N`. Exit code 3 (work deferred by the pull budget) is a
  successful run: the next night picks the work up, and the Deferred alarm watches it;
- the config itself, inline in the buildspec (written to a file by a quoted here-document).
  Inline rather than S3 or CodeCommit: the stack then runs exactly the config it was deployed
  from, with no bucket or repository to create, secure and grant; editing the config and
  running `mirror deploy-schedule` again is the one way to change the job, and that shows
  the change first. The cost: the config must fit in CloudFormation's 51,200-byte template;
- a least-privilege role for the build and one for the schedule, which may only start this
  project (`mirror.schedule_policy`);
- an EventBridge Scheduler schedule (`schedule.expression`, nightly by default, in
  `schedule.timezone`, UTC when it is not set: then the template names no zone): Scheduler
  rather than an events rule because its universal target can start a batch build
  (`codebuild:startBuildBatch`), which a rule's CodeBuild target cannot;
- the build's own log group (30 days), alarms on the metrics each run publishes (namespace
  `mirror`, dimension `Stack` = `stack.name`) and on CodeBuild's FailedBuilds, and, with
  `schedule.alarms.email`, an SNS topic with that address subscribed.

ARNs are written with `Fn::Sub` from the names `mirror.schedule_policy` chooses, never
`Fn::GetAtt` of the CodeBuild project or the schedule: the policies are readable as they
stand, and moto, which does not implement those two resource types, can still deploy the rest.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from mirror import cfn_yaml
from mirror.config import Config
from mirror.errors import ConfigError
from mirror.schedule_policy import (
    METRICS_NAMESPACE,
    SCHEDULE_NAME_MAX,
    build_policy,
    log_group_name,
    role,
    schedule_policy,
    stack_name,
    tool_image,
)
from mirror.template import MAX_TEMPLATE_BODY_BYTES

METRICS_DIMENSION = "Stack"
CONFIG_FILE = "/tmp/mirror-images.yaml"  # where the build writes the inline config
HEREDOC_END = "MIRROR_CONFIG_END"
PIP_IMAGE = "aws/codebuild/standard:7.0"
LOG_RETENTION_DAYS = 30


def buildspec(config: Config, config_text: str) -> str:
    """The build's commands: write the config, then sync; exit code 3 (deferred) is success."""
    if any(line.strip() == HEREDOC_END for line in config_text.splitlines()):
        raise ConfigError(
            f"{config.path}: a line reads {HEREDOC_END}, which would end the config's"
            " here-document in the schedule's buildspec: remove it"
        )
    shards = config.schedule.shards
    sync = f"mirror sync -c {CONFIG_FILE} --metrics cloudwatch"
    if shards > 1:
        sync += ' --shard "$MIRROR_SHARD"'
    phases: dict[str, Any] = {}
    if config.schedule.pip is not None:
        phases["install"] = {
            "runtime-versions": {"python": "3.12"},
            "commands": [f"pip install --no-cache-dir '{config.schedule.pip}'"],
        }
    phases["build"] = {"commands": [config_command(config_text), f"{sync} || test $? -eq 3"]}
    spec: dict[str, Any] = {"version": 0.2}
    if shards > 1:
        spec["batch"] = {
            "fast-fail": False,
            "build-list": [
                {
                    "identifier": f"shard_{k}",
                    "env": {"variables": {"MIRROR_SHARD": f"{k}/{shards}"}},
                }
                for k in range(1, shards + 1)
            ],
        }
    spec["phases"] = phases
    return yaml.dump(spec, Dumper=_BuildspecDumper, sort_keys=False, width=10_000)


def config_command(config_text: str) -> str:
    """The buildspec's command that writes the config inline: a quoted here-document."""
    text = config_text if config_text.endswith("\n") else config_text + "\n"
    return f"cat > {CONFIG_FILE} <<'{HEREDOC_END}'\n{text}{HEREDOC_END}\n"


def deployed_config_command(template: dict[str, Any]) -> str | None:
    """The command of a deployed template's buildspec that writes the config (compare it with
    `config_command` of a config's text); None when the template has no such command."""
    project = template.get("Resources", {}).get("Project", {})
    spec = project.get("Properties", {}).get("Source", {}).get("BuildSpec")
    if not isinstance(spec, str):
        return None
    try:
        commands = yaml.safe_load(spec)["phases"]["build"]["commands"]
    except (yaml.YAMLError, KeyError, TypeError):
        return None
    start = f"cat > {CONFIG_FILE} <<'{HEREDOC_END}'\n"
    found = [c for c in commands if isinstance(c, str) and c.startswith(start)]
    return found[0] if found else None


class _BuildspecDumper(yaml.SafeDumper):
    """Block style throughout; a multi-line string (the config's here-document) as a `|`
    block, when YAML allows one for it (else quoted, as safe_dump would)."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_BuildspecDumper.add_representer(str, _represent_str)


def _project(config: Config, config_text: str) -> dict[str, Any]:
    schedule = config.schedule
    image = tool_image(config)
    environment: dict[str, Any] = {
        "Type": "LINUX_CONTAINER",
        "ComputeType": "BUILD_GENERAL1_SMALL",
        "Image": PIP_IMAGE,
        "ImagePullCredentialsType": "CODEBUILD",
    }
    if image is not None:
        environment["Image"] = {
            "Fn::Sub": f"${{AWS::AccountId}}.dkr.ecr.${{AWS::Region}}.${{AWS::URLSuffix}}/{image}"
        }
        environment["ImagePullCredentialsType"] = "SERVICE_ROLE"
    properties: dict[str, Any] = {
        "Name": stack_name(config),
        "Description": f"mirror sync of stack {config.stack.name}, on a schedule",
        "ServiceRole": {"Fn::GetAtt": ["BuildRole", "Arn"]},
        "Artifacts": {"Type": "NO_ARTIFACTS"},
        "Source": {"Type": "NO_SOURCE", "BuildSpec": buildspec(config, config_text)},
        "Environment": environment,
        "TimeoutInMinutes": schedule.timeout_minutes,
        "LogsConfig": {"CloudWatchLogs": {"Status": "ENABLED", "GroupName": {"Ref": "LogGroup"}}},
    }
    if schedule.shards > 1:
        properties["BuildBatchConfig"] = {
            "ServiceRole": {"Fn::GetAtt": ["BuildRole", "Arn"]},
            "TimeoutInMins": schedule.timeout_minutes,
            "Restrictions": {"MaximumBuildsAllowed": schedule.shards},
        }
    return {"Type": "AWS::CodeBuild::Project", "Properties": properties}


def _schedule(config: Config) -> dict[str, Any]:
    action = "startBuildBatch" if config.schedule.shards > 1 else "startBuild"
    properties: dict[str, Any] = {
        "Name": stack_name(config)[:SCHEDULE_NAME_MAX],
        "Description": f"Runs mirror sync of stack {config.stack.name}",
        "ScheduleExpression": config.schedule.expression,
    }
    if config.schedule.timezone is not None:  # else UTC, Scheduler's default: nothing said
        properties["ScheduleExpressionTimezone"] = config.schedule.timezone
    properties["FlexibleTimeWindow"] = {"Mode": "OFF"}
    properties["Target"] = {
        "Arn": f"arn:aws:scheduler:::aws-sdk:codebuild:{action}",
        "RoleArn": {"Fn::GetAtt": ["ScheduleRole", "Arn"]},
        "Input": json.dumps({"ProjectName": stack_name(config)}),
    }
    return {"Type": "AWS::Scheduler::Schedule", "DependsOn": ["Project"], "Properties": properties}


def _alarm(
    config: Config,
    suffix: str,
    description: str,
    metric: dict[str, Any],
    *,
    threshold: int,
    comparison: str,
    periods: int,
    missing: str,
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "AlarmName": f"{stack_name(config)}-{suffix}",
        "AlarmDescription": description,
        **metric,
        "EvaluationPeriods": periods,
        "DatapointsToAlarm": periods,
        "Threshold": threshold,
        "ComparisonOperator": comparison,
        "TreatMissingData": missing,
    }
    if config.schedule.alarms.email is not None:
        properties["AlarmActions"] = [{"Ref": "AlarmTopic"}]
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": properties}


def _mirror_metric(config: Config, name: str, statistic: str, period: int) -> dict[str, Any]:
    return {
        "Namespace": METRICS_NAMESPACE,
        "MetricName": name,
        "Dimensions": [{"Name": METRICS_DIMENSION, "Value": config.stack.name}],
        "Statistic": statistic,
        "Period": period,
    }


def alarms(config: Config) -> dict[str, dict[str, Any]]:
    """Logical ID -> alarm: a failed run (images failed, or the build failed), deferred work
    several nights running, and no run at all for `missed_run_hours`."""
    settings = config.schedule.alarms
    codebuild_failures = {
        "Namespace": "AWS/CodeBuild",
        "MetricName": "FailedBuilds",
        "Dimensions": [{"Name": "ProjectName", "Value": stack_name(config)}],
        "Statistic": "Sum",
        "Period": 3600,
    }
    return {
        "FailedImagesAlarm": _alarm(
            config,
            "failed-images",
            "A scheduled mirror sync failed to copy images",
            _mirror_metric(config, "Failed", "Maximum", 3600),
            threshold=0,
            comparison="GreaterThanThreshold",
            periods=1,
            missing="notBreaching",
        ),
        "FailedBuildAlarm": _alarm(
            config,
            "failed-build",
            "The scheduled mirror sync build failed",
            codebuild_failures,
            threshold=0,
            comparison="GreaterThanThreshold",
            periods=1,
            missing="notBreaching",
        ),
        "DeferredAlarm": _alarm(
            config,
            "deferred",
            f"The pull budget deferred work {settings.deferred_nights} days running",
            _mirror_metric(config, "Deferred", "Maximum", 86400),
            threshold=0,
            comparison="GreaterThanThreshold",
            periods=settings.deferred_nights,
            missing="ignore",
        ),
        "MissedRunAlarm": _alarm(
            config,
            "missed-run",
            f"No mirror sync reported for {config.schedule.missed_run_hours} hours",
            _mirror_metric(config, "Seconds", "SampleCount", 3600),
            threshold=1,
            comparison="LessThanThreshold",
            periods=config.schedule.missed_run_hours,
            missing="breaching",
        ),
    }


def render(config: Config, config_text: str) -> dict[str, Any]:
    """The schedule stack's template as a dict, intrinsic functions in their long form."""
    email = config.schedule.alarms.email
    resources: dict[str, Any] = {
        "LogGroup": {
            "Type": "AWS::Logs::LogGroup",
            "DeletionPolicy": "Delete",
            "Properties": {
                "LogGroupName": log_group_name(config),
                "RetentionInDays": LOG_RETENTION_DAYS,
            },
        },
        "BuildRole": role("codebuild", "mirror-sync", build_policy(config)),
        "Project": _project(config, config_text),
        "ScheduleRole": role("scheduler", "start-mirror-sync", schedule_policy(config)),
        "Schedule": _schedule(config),
        **alarms(config),
    }
    outputs: dict[str, Any] = {
        "ProjectName": {"Value": stack_name(config)},
        "BuildRoleArn": {"Value": {"Fn::GetAtt": ["BuildRole", "Arn"]}},
        "LogGroupName": {"Value": log_group_name(config)},
    }
    if email is not None:
        resources["AlarmTopic"] = {
            "Type": "AWS::SNS::Topic",
            "Properties": {
                "DisplayName": "mirror alarms",
                "Subscription": [{"Endpoint": email, "Protocol": "email"}],
            },
        }
        outputs["AlarmTopicArn"] = {"Value": {"Ref": "AlarmTopic"}}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"Scheduled mirror sync of stack {config.stack.name}: CodeBuild,"
        " schedule, role, alarms",
        "Resources": resources,
        "Outputs": outputs,
    }


def render_yaml(config: Config, config_text: str) -> str:
    """The template as YAML, after a comment saying how to deploy it by hand."""
    header = (
        "# The scheduled `mirror sync` job: CodeBuild project, schedule, IAM roles, alarms.\n"
        "# Rendered by `mirror schedule-template` from the config file (which it holds inline):\n"
        "# regenerate it, do not edit it. `mirror deploy-schedule` deploys it; by hand:\n"
        f"#   aws cloudformation deploy --template-file schedule.yml --stack-name"
        f" {stack_name(config)} \\\n"
        "#     --capabilities CAPABILITY_IAM\n"
    )
    return header + cfn_yaml.dump(render(config, config_text))


def size_problem(body: str) -> str | None:
    """Why CloudFormation would refuse this template for its size, or None when it fits."""
    size = len(body.encode())
    if size <= MAX_TEMPLATE_BODY_BYTES:
        return None
    return (
        f"the schedule template is {size} bytes, the config inline; CloudFormation takes at"
        f" most {MAX_TEMPLATE_BODY_BYTES} bytes inline: shorten the config (comments count)"
        " or split it over config files with different stack.name"
    )
