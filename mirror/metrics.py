"""A run's numbers as CloudWatch metrics (`mirror sync --metrics cloudwatch`).

One datapoint per metric per run, in the `mirror` namespace, with one dimension `Stack` (the
config's stack.name), so that the scheduled job's alarms can watch a failed run, deferred work
and a run that did not happen. The metric names are a contract with those alarms.

A publish that fails (no permission, throttled, no network) is a warning, never the run's
failure: the images are mirrored either way, and the exit code keeps saying how the sync went.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from mirror import aws
from mirror.errors import MirrorError
from mirror.plan import Action
from mirror.sync import SyncReport
from mirror.text import ERROR_LIMIT, known_secrets, printable, redact

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch.literals import StandardUnitType
    from mypy_boto3_cloudwatch.type_defs import MetricDatumTypeDef

log = logging.getLogger("mirror")

NAMESPACE = "mirror"
DIMENSION = "Stack"


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    unit: StandardUnitType


def run_metrics(report: SyncReport, seconds: float) -> list[Metric]:
    """The run's metrics; PullsRemaining only when Docker Hub said what is left."""
    metrics = [
        Metric("PullsSpent", sum(r.pulls for r in report.results), "Count"),
        Metric("Copied", report.count(Action.COPIED), "Count"),
        Metric("UpToDate", report.count(Action.UP_TO_DATE), "Count"),
        Metric("Deferred", report.count(Action.DEFERRED), "Count"),
        # a tag the source does not have is a failure of the config, and alarmed as one
        Metric("Failed", report.count(Action.FAILED) + report.count(Action.MISSING), "Count"),
        Metric("Bytes", sum(r.bytes for r in report.results), "Bytes"),
        Metric("Seconds", round(seconds, 3), "Seconds"),
    ]
    if report.ratelimit is not None:
        metrics.insert(1, Metric("PullsRemaining", report.ratelimit.remaining, "Count"))
    return metrics


def metric_data(metrics: list[Metric], stack: str, when: datetime) -> list[MetricDatumTypeDef]:
    """PutMetricData's MetricData: every metric with the `Stack` dimension, at `when`."""
    return [
        {
            "MetricName": m.name,
            "Dimensions": [{"Name": DIMENSION, "Value": stack}],
            "Timestamp": when,
            "Value": m.value,
            "Unit": m.unit,
        }
        for m in metrics
    ]


def publish(report: SyncReport, seconds: float, *, stack: str, region: str | None) -> bool:
    """Publish the run's metrics in one PutMetricData call; False (and a warning) when that
    fails. Under the 1000-datum limit of one call by far."""
    data = metric_data(run_metrics(report, seconds), stack, datetime.now(UTC))
    try:
        cloudwatch: Any = aws.client("cloudwatch", region)
        cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data)
    except (BotoCoreError, ClientError, MirrorError) as exc:  # no credentials/region/network
        reason = printable(redact(str(exc), known_secrets(os.environ)), ERROR_LIMIT)
        log.warning("mirror: warning: run metrics not published to CloudWatch: %s", reason)
        return False
    log.info("run metrics published to CloudWatch: namespace %s, Stack=%s", NAMESPACE, stack)
    return True
