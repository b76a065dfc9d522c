"""`mirror status`'s reads: the scheduled job as CloudFormation, CodeBuild and CloudWatch see it.

Read only, and every call is one the console would make: DescribeStacks and GetTemplate (the
schedule stack, its expression and zone, the config it holds inline), BatchGetProjects,
ListBuildsForProject and BatchGetBuilds (ListBuildBatchesForProject and BatchGetBuildBatches
for a sharded job, whose runs are batch builds), GetMetricData (mirror's metrics, one minute
apart, newest first) and DescribeAlarms (the alarms the deployed template names). What the
answers mean is decided in `mirror.status_report`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from mirror.aws import client
from mirror.config import Config
from mirror.metrics import DIMENSION, NAMESPACE
from mirror.schedule_policy import stack_name
from mirror.schedule_template import config_command, deployed_config_command
from mirror.stack.calls import aws_errors, deployed_template, describe_stack
from mirror.status_report import RUN_METRICS, Alarm, Build, JobStatus
from mirror.template import load_template

# How far back the last run's metrics are looked for: three days, or the missed-run window when
# it is longer (a weekly job's 168 hours): a run inside the window is always found. At most
# 8 metrics x 10,080 minutes, within GetMetricData's 100,800 datapoints of one answer.
METRICS_LOOKBACK = timedelta(days=3)
MINUTE = 60


@dataclass(frozen=True)
class StatusClients:
    """boto3 clients for CloudFormation, CodeBuild and CloudWatch, in one region."""

    cloudformation: Any
    codebuild: Any
    cloudwatch: Any

    @classmethod
    def for_config(cls, config: Config) -> StatusClients:
        return cls(
            *(client(s, config.region) for s in ("cloudformation", "codebuild", "cloudwatch"))
        )


def read_status(
    config: Config,
    config_text: str,
    *,
    builds: int,
    now: datetime,
    aws: StatusClients | None = None,
) -> JobStatus:
    """The job's status at `now`: `builds` of the latest builds, the last run's metrics within
    METRICS_LOOKBACK or the missed-run window, the longer. Raises StackError or
    CredentialsError (one line) when AWS fails."""
    name = stack_name(config)
    with aws_errors(name):
        clients = aws or StatusClients.for_config(config)
        cf = clients.cloudformation
        empty = JobStatus(
            name,
            str(cf.meta.region_name),
            str(config.path),
            now,
            config.schedule.missed_run_hours,
        )
        stack = describe_stack(cf, name)
        if stack is None:
            return empty
        body = deployed_template(cf, stack.get("StackId", name))
        template = load_template(body) if isinstance(body, str) else body
        resources = template.get("Resources", {})
        schedule = resources.get("Schedule", {}).get("Properties", {})
        deployed_command = deployed_config_command(template)
        batches = "BuildBatchConfig" in resources.get("Project", {}).get("Properties", {})
        # found among `projects` (moto leaves `projectsNotFound` out)
        projects = clients.codebuild.batch_get_projects(names=[name]).get("projects", [])
        found = any(project.get("name") == name for project in projects)
        lookback = max(METRICS_LOOKBACK, timedelta(hours=config.schedule.missed_run_hours))
        published, metrics = _last_run(clients.cloudwatch, config.stack.name, now - lookback, now)
        alarm_names = [
            str(r["Properties"]["AlarmName"])
            for r in resources.values()
            if r.get("Type") == "AWS::CloudWatch::Alarm"
        ]
        return replace(
            empty,
            stack_status=stack["StackStatus"],
            expression=schedule.get("ScheduleExpression"),
            timezone=schedule.get("ScheduleExpressionTimezone"),
            config_matches=None
            if deployed_command is None
            else deployed_command == config_command(config_text),
            project_found=found,
            batches=batches,
            builds=read_builds(clients.codebuild, name, builds, batches=batches) if found else (),
            published=published,
            metrics=metrics,
            alarms=_alarms(clients.cloudwatch, alarm_names),
        )


def read_builds(codebuild: Any, project: str, count: int, *, batches: bool) -> tuple[Build, ...]:
    """The project's `count` latest builds (batch builds), newest first."""
    if batches:
        ids = codebuild.list_build_batches_for_project(
            projectName=project, sortOrder="DESCENDING", maxResults=count
        )["ids"][:count]
        found = codebuild.batch_get_build_batches(ids=ids)["buildBatches"] if ids else []
        status_key = "buildBatchStatus"
    else:
        # newest first by default; with a sortOrder, CodeBuild refuses a project of more than
        # 100 builds (its API reference), which a nightly job has after four months
        ids = codebuild.list_builds_for_project(projectName=project)["ids"][:count]
        found = codebuild.batch_get_builds(ids=ids)["builds"] if ids else []
        status_key = "buildStatus"
    builds = [
        Build(str(b["id"]), str(b.get(status_key, "UNKNOWN")), b.get("startTime"), b.get("endTime"))
        for b in found
    ]
    # newest first whatever order the service lists them in (moto lists the oldest first)
    return tuple(sorted(builds, key=lambda b: b.start.timestamp() if b.start else 0, reverse=True))


def _last_run(
    cloudwatch: Any, stack: str, since: datetime, now: datetime
) -> tuple[datetime | None, tuple[tuple[str, float], ...]]:
    """(when the newest run published, its metrics): the newest minute with a datapoint
    since `since`."""
    queries = [
        {
            "Id": f"m{index}",
            "MetricStat": {
                "Metric": {
                    "Namespace": NAMESPACE,
                    "MetricName": metric,
                    "Dimensions": [{"Name": DIMENSION, "Value": stack}],
                },
                "Period": MINUTE,
                "Stat": stat,
            },
        }
        for index, (metric, stat) in enumerate(RUN_METRICS)
    ]
    answer = cloudwatch.get_metric_data(
        MetricDataQueries=queries,
        StartTime=since,
        EndTime=now + timedelta(seconds=MINUTE),
        ScanBy="TimestampDescending",
    )
    series: dict[str, dict[datetime, float]] = {}
    for result in answer.get("MetricDataResults", []):
        index = int(str(result["Id"])[1:])
        points = zip(result.get("Timestamps", []), result.get("Values", []), strict=False)
        series[RUN_METRICS[index][0]] = {when: float(value) for when, value in points}
    moments = [when for points in series.values() for when in points]
    if not moments:
        return None, ()
    newest = max(moments)
    metrics = tuple(
        (metric, series[metric][newest])
        for metric, _ in RUN_METRICS
        if newest in series.get(metric, {})
    )
    return newest, metrics


def _alarms(cloudwatch: Any, names: list[str]) -> tuple[Alarm, ...]:
    """Each named alarm's state (the stack has four: under DescribeAlarms' 100 names); None
    for one CloudWatch does not have."""
    answer = cloudwatch.describe_alarms(AlarmNames=names) if names else {}
    found = {
        str(a["AlarmName"]): Alarm(str(a["AlarmName"]), str(a["StateValue"]))
        for a in answer.get("MetricAlarms", [])
    }
    return tuple(found.get(name, Alarm(name, None)) for name in names)
