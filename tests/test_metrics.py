"""`mirror sync --metrics cloudwatch` (issue 13): a real sync against the world publishes its
numbers to moto's CloudWatch, read back with GetMetricData as the scheduled job's alarms read
them (namespace `mirror`, dimension Stack)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mirror.metrics import DIMENSION, NAMESPACE, run_metrics
from mirror.sync import SyncReport
from tests.runner import Mirror

HUB_IP = "127.0.0.1"
STACK = "nightly-mirror"
# alpine's two tags copy (2 pulls); busybox finds only the reserve left; 0.0 is not in the hub
IMAGES = [
    {"image": "alpine", "tags": ["3.19", "3.20", "0.0"]},
    {"image": "busybox", "tags": ["1.36"]},
]
UNITS = {
    "PullsSpent": "Count",
    "PullsRemaining": "Count",
    "Copied": "Count",
    "UpToDate": "Count",
    "Deferred": "Count",
    "Failed": "Count",
    "Bytes": "Bytes",
    "Seconds": "Seconds",
}


def published(mirror: Mirror, stack: str = STACK) -> dict[str, list[float]]:
    """Every metric of the `mirror` namespace for `stack`, as GetMetricData sums it, in its
    documented unit (a datapoint in another unit is not counted)."""
    assert mirror.world.moto is not None
    cloudwatch: Any = mirror.world.moto.client("cloudwatch")
    now = datetime.now(UTC)
    answer = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": name.lower(),
                "MetricStat": {
                    "Metric": {
                        "Namespace": NAMESPACE,
                        "MetricName": name,
                        "Dimensions": [{"Name": DIMENSION, "Value": stack}],
                    },
                    "Period": 3600,
                    "Stat": "Sum",
                    "Unit": unit,
                },
            }
            for name, unit in UNITS.items()
        ],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5),
    )
    by_id = {name.lower(): name for name in UNITS}
    return {by_id[r["Id"]]: list(r["Values"]) for r in answer["MetricDataResults"]}


def configure(mirror: Mirror) -> None:
    mirror.config(IMAGES, reserve=5)
    mirror.world.write_config(
        mirror.config_path, IMAGES, source={"reserve_pulls": 5}, stack={"name": STACK}
    )
    mirror.world.hub_front.set_remaining(HUB_IP, 7)


def test_a_sync_publishes_each_number_of_its_report_once(mirror: Mirror) -> None:
    configure(mirror)
    run = mirror.sync("--metrics", "cloudwatch")
    assert run.code == 1, run  # the missing tag; the publish does not change the exit code
    totals = run.report["totals"]
    assert (totals["copied"], totals["deferred"], totals["missing"]) == (2, 1, 1), run
    assert "run metrics published to CloudWatch" in run.stderr
    values = published(mirror)
    seconds = values.pop("Seconds")
    assert values == {
        "PullsSpent": [totals["pulls"]],
        "PullsRemaining": [run.report["ratelimit"]["remaining"]],
        "Copied": [2],
        "UpToDate": [0],
        "Deferred": [1],
        "Failed": [1],
        "Bytes": [totals["bytes"]],
    }
    assert totals["pulls"] == 2 and totals["bytes"] > 0
    assert len(seconds) == 1 and seconds[0] > 0
    assert published(mirror, "another-stack") == {name: [] for name in UNITS}


def test_without_the_option_or_in_a_dry_run_nothing_is_published(mirror: Mirror) -> None:
    configure(mirror)
    dry = mirror.sync("--dry-run", "--metrics", "cloudwatch")
    assert dry.code == 1, dry
    plain = mirror.sync()
    assert plain.report["totals"]["copied"] == 2, plain
    assert published(mirror) == {name: [] for name in UNITS}


def test_a_failed_publish_is_one_warning_and_keeps_the_exit_code(mirror: Mirror) -> None:
    configure(mirror)
    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    run = mirror.sync(
        "--metrics",
        "cloudwatch",
        env={"AWS_ENDPOINT_URL_CLOUDWATCH": f"http://127.0.0.1:{port}", "AWS_MAX_ATTEMPTS": "1"},
    )
    assert run.code == 1, run  # as without metrics: the missing tag
    assert run.report["totals"]["copied"] == 2
    warnings = [line for line in run.stderr.splitlines() if "metrics" in line]
    assert len(warnings) == 1, run.stderr
    assert warnings[0].startswith("mirror: warning: run metrics not published to CloudWatch: ")
    assert str(port) in warnings[0] and "Traceback" not in run.stderr
    assert published(mirror) == {name: [] for name in UNITS}


def test_pulls_remaining_is_left_out_when_docker_hub_did_not_say() -> None:
    names = [m.name for m in run_metrics(SyncReport(), 1.5)]
    assert names == [n for n in UNITS if n != "PullsRemaining"]


@pytest.mark.parametrize("choice", ["CloudWatch", "statsd", ""])
def test_an_unknown_metrics_choice_is_a_usage_error(mirror: Mirror, choice: str) -> None:
    configure(mirror)
    run = mirror.sync("--metrics", choice)
    assert run.code == 2, run
    assert "--metrics" in run.stderr and mirror.world.hub_front.counters["manifest_get"] == 0
