"""What `mirror status` shows of the scheduled job, and what in it needs a human.

Pure: no I/O. `mirror.status` gathers the facts from AWS into a `JobStatus`; here they become
the reasons a human should look (`attention`: an alarm in ALARM or missing, the last build
failed, no run in the missed-run window, the last run failed images, the deployed config not
the local one), the table a person reads (`lines`) and the JSON a script reads (`document`,
docs/status.schema.json). Everything AWS said is printed through `printable` and bounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mirror.text import FIELD_LIMIT, printable

# The metrics each `mirror sync --metrics cloudwatch` publishes (mirror.metrics), in the order
# shown, with the statistic that reads one run's value from one minute's datapoints (the
# shards of a batch build that report in the same minute add up; what is left of the quota
# is the least any of them saw).
RUN_METRICS: tuple[tuple[str, str], ...] = (
    ("PullsSpent", "Sum"),
    ("PullsRemaining", "Minimum"),
    ("Copied", "Sum"),
    ("UpToDate", "Sum"),
    ("Deferred", "Sum"),
    ("Failed", "Sum"),
    ("Bytes", "Sum"),
    ("Seconds", "Maximum"),
)
# CodeBuild's statuses of a build (or batch) that ended without succeeding
FAILED_BUILD = frozenset({"FAILED", "FAULT", "TIMED_OUT", "STOPPED"})
HEALTHY_STACK = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE"})


@dataclass(frozen=True)
class Build:
    """One build of the project (or, for a sharded job, one batch build)."""

    id: str
    status: str  # CodeBuild's buildStatus / buildBatchStatus
    start: datetime | None
    end: datetime | None

    @property
    def seconds(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class Alarm:
    name: str
    state: str | None  # OK, ALARM, INSUFFICIENT_DATA; None: CloudWatch has no such alarm


@dataclass(frozen=True)
class JobStatus:
    """The scheduled job as AWS knows it, at `now`. `stack_status` None: no stack."""

    stack_name: str
    region: str
    config_path: str
    now: datetime
    missed_run_hours: int
    stack_status: str | None = None
    expression: str | None = None
    timezone: str | None = None  # None: UTC
    config_matches: bool | None = None  # None: the deployed template holds no config
    project_found: bool = False
    batches: bool = False  # builds are batch builds (a sharded job)
    builds: tuple[Build, ...] = ()  # newest first
    published: datetime | None = None  # when the last run's metrics were published
    metrics: tuple[tuple[str, float], ...] = ()  # that run's (name, value)
    alarms: tuple[Alarm, ...] = ()

    def metric(self, name: str) -> float | None:
        return dict(self.metrics).get(name)


def attention(status: JobStatus) -> list[str]:
    """Why a human should look, one line each; empty when all is well."""
    name, path = status.stack_name, status.config_path
    if status.stack_status is None:
        return [
            f"no schedule stack {name} in {status.region}: deploy the job with"
            f" `mirror deploy-schedule -c {path}`"
        ]
    reasons: list[str] = []
    if status.stack_status not in HEALTHY_STACK:
        reasons.append(f"stack {name} is {printable(status.stack_status)}")
    if status.config_matches is False:
        reasons.append(f"the deployed config is not {path}: run `mirror deploy-schedule -c {path}`")
    if not status.project_found:
        reasons.append(f"CodeBuild has no project {name}")
    if status.builds and status.builds[0].status in FAILED_BUILD:
        last = status.builds[0]
        reasons.append(f"the last build {printable(last.id)} ended {last.status}")
    window = timedelta(hours=status.missed_run_hours)
    if status.published is None or status.now - status.published > window:
        reasons.append(f"no run reported its metrics in the last {status.missed_run_hours} hours")
    failed = status.metric("Failed")
    if status.published is not None and failed:
        reasons.append(f"the last run failed {failed:g} images")
    for alarm in status.alarms:
        if alarm.state is None:
            reasons.append(f"CloudWatch has no alarm {printable(alarm.name)}")
        elif alarm.state == "ALARM":
            reasons.append(f"alarm {printable(alarm.name)} is in ALARM")
    return reasons


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m {rest:02d}s" if minutes else f"{rest}s"


def _number(value: float) -> str:
    """A count or a byte count whole (1051560, not 1.05156e+06); seconds as sent."""
    return str(int(value)) if value.is_integer() else f"{value:.3f}".rstrip("0")


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        ("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))).rstrip()
        for row in rows
    ]


def lines(status: JobStatus) -> list[str]:
    """The status as a person reads it: stack, builds, last run, alarms, verdict."""
    reasons = attention(status)
    if status.stack_status is None:
        return reasons
    when = status.expression or "-"
    if status.timezone is not None:
        when += f" in {status.timezone}"
    config = {True: "as in", False: "differs from", None: "not found in the template; local is"}
    out = [
        f"stack {status.stack_name} in {status.region}: {printable(status.stack_status)}",
        f"  runs mirror sync on {printable(when)}",
        f"  deployed config {config[status.config_matches]} {status.config_path}",
    ]
    kind = "batch builds" if status.batches else "builds"
    if not status.project_found:
        out.append(f"{kind}: no CodeBuild project {status.stack_name}")
    elif not status.builds:
        out.append(f"{kind} of project {status.stack_name}: none yet")
    else:
        out.append(f"{kind} of project {status.stack_name}, newest first:")
        rows: list[tuple[str, ...]] = [("started", "duration", "status", "id")]
        rows += [
            (_when(b.start), _duration(b.seconds), printable(b.status), printable(b.id))
            for b in status.builds
        ]
        out += _table(rows)
    if status.published is None:
        out.append("last run's metrics: none published")
    else:
        out.append(f"last run's metrics, published {_when(status.published)}:")
        out += _table([(name, _number(value)) for name, value in status.metrics])
    out.append("alarms:")
    alarms = [(printable(a.name), printable(a.state or "not found")) for a in status.alarms]
    out += _table(alarms or [("none",)])
    if reasons:
        out.append("needs a human:")
        out += [f"  - {reason}" for reason in reasons]
    else:
        out.append("all well")
    return out


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def document(status: JobStatus) -> dict[str, Any]:
    """The status as JSON (docs/status.schema.json); `exit_code` is the command's."""
    reasons = attention(status)
    return {
        "stack": {
            "name": status.stack_name,
            "region": status.region,
            "status": status.stack_status,
            "expression": status.expression,
            "timezone": status.timezone,
            "config_matches": status.config_matches,
        },
        "project_found": status.project_found,
        "builds": [
            {
                "id": printable(b.id, FIELD_LIMIT),
                "batch": status.batches,
                "status": printable(b.status, FIELD_LIMIT),
                "start": _iso(b.start),
                "end": _iso(b.end),
                "seconds": b.seconds,
            }
            for b in status.builds
        ],
        "last_run": None
        if status.published is None
        else {"published": _iso(status.published), "metrics": dict(status.metrics)},
        "alarms": [{"name": a.name, "state": a.state} for a in status.alarms],
        "attention": reasons,
        "exit_code": 1 if reasons else 0,
    }
