"""The config's `schedule:` section: the scheduled sync job that `mirror deploy-schedule` deploys.

Pure: the pydantic model of the section (`ScheduleFile`) and the check of a schedule
expression. A bad value is refused when the config is loaded, as one line naming the field,
before anything asks AWS.

The expression check is written by hand: no kept library knows EventBridge's dialect (six cron
fields, `?` in one of the day fields, `L`, `W`, `#`, a year field, and `rate()` whose unit is
singular for 1 and plural otherwise); the croniter family reads Unix cron. It follows the
EventBridge Scheduler user guide ("Schedule types"); `at(...)` one-time schedules are refused,
since a nightly job is what this section describes.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_EXPRESSION = "cron(0 3 * * ? *)"  # every night at 03:00 UTC
DEFAULT_IMAGE = "mirror:latest"

_NUMBER = r"\d{1,4}"
_MONTHS = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC"
_DAYS = "SUN|MON|TUE|WED|THU|FRI|SAT"


def _field(value: str, extra: str = "") -> re.Pattern[str]:
    """A cron field: `*`, or a comma list of values, ranges `a-b` and steps `x/n`."""
    item = rf"(?:{value})(?:-(?:{value}))?(?:/\d{{1,3}})?|\*(?:/\d{{1,3}})?{extra}"
    return re.compile(rf"(?:{item})(?:,(?:{item}))*")


# (name, pattern, lowest, highest) of each of the six fields, in order.
_CRON_FIELDS = (
    ("minutes", _field(_NUMBER), 0, 59),
    ("hours", _field(_NUMBER), 0, 23),
    ("day-of-month", _field(rf"{_NUMBER}W?|L|LW"), 1, 31),
    ("month", _field(rf"{_NUMBER}|{_MONTHS}"), 1, 12),
    ("day-of-week", _field(rf"{_NUMBER}(?:#[1-5])?|{_NUMBER}L|{_DAYS}(?:#[1-5])?|L"), 1, 7),
    ("year", _field(_NUMBER), 1970, 2199),
)
_RATE = re.compile(r"rate\((\d{1,6}) (minute|minutes|hour|hours|day|days)\)")
_CRON = re.compile(r"cron\(([^()]*)\)")


def check_expression(expression: str) -> str:
    """`expression` when EventBridge Scheduler accepts it as cron(...) or rate(...)."""
    rate = _RATE.fullmatch(expression)
    if rate:
        value, unit = int(rate.group(1)), rate.group(2)
        if value < 1:
            raise ValueError(f"{expression!r}: a rate is at least 1")
        if (value == 1) == unit.endswith("s"):
            raise ValueError(
                f"{expression!r}: the unit is singular for 1 and plural otherwise"
                " (rate(1 day), rate(6 hours))"
            )
        return expression
    cron = _CRON.fullmatch(expression)
    if cron is None:
        raise ValueError(
            f"{expression!r}: expected cron(minutes hours day-of-month month day-of-week year)"
            " or rate(N minutes|hours|days), as EventBridge takes them"
        )
    fields = cron.group(1).split()
    if len(fields) != 6:
        raise ValueError(
            f"{expression!r}: a cron expression has 6 fields (minutes hours day-of-month month"
            f" day-of-week year), not {len(fields)}"
        )
    day_of_month, day_of_week = fields[2], fields[4]
    if (day_of_month == "?") == (day_of_week == "?"):
        raise ValueError(
            f"{expression!r}: exactly one of day-of-month and day-of-week must be `?`"
            " (cron(0 3 * * ? *) runs every night)"
        )
    for text, (name, pattern, low, high) in zip(fields, _CRON_FIELDS, strict=True):
        if text == "?" and name in ("day-of-month", "day-of-week"):
            continue
        if not pattern.fullmatch(text):
            raise ValueError(f"{expression!r}: invalid {name} field {text!r}")
        for number in re.findall(r"(?<![/#\d])\d+", text):
            if not low <= int(number) <= high:
                raise ValueError(f"{expression!r}: {name} {number} is outside {low}-{high}")
    return expression


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlarmsFile(_Strict):
    """When the job's alarms go off; `email` subscribes an address to their SNS topic."""

    # CloudWatch: Period x EvaluationPeriods is at most 7 days (604,800 s). One-day periods:
    deferred_nights: Annotated[int, Field(ge=1, le=7)] = 3
    # Hours without any run's metrics before "the run did not happen" (one-hour periods).
    missed_run_hours: Annotated[int, Field(ge=2, le=168)] = 25
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)] | None = (
        None
    )


class ScheduleFile(_Strict):
    """The scheduled sync: when, in how many shards, from which image, and its alarms."""

    expression: str = DEFAULT_EXPRESSION
    shards: Annotated[int, Field(ge=1, le=100)] = 1  # CodeBuild runs at most 100 in a batch
    # CloudFormation's stack name pattern, at least 2 characters as CodeBuild's project name
    # (the project is named as the stack); default `<stack.name>-schedule`.
    stack_name: Annotated[str, Field(pattern=r"^[A-Za-z][-A-Za-z0-9]{1,127}$")] | None = None
    # The mirror's own container image in this account's ECR (`repository[:tag]`), or a
    # `pip install` requirement run on CodeBuild's standard image: one of the two.
    image: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._/-]{1,255}(:[\w][\w.-]{0,127})?$")] | (
        None
    ) = None
    pip: Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[^\s'\"`$\\;&|<>]+$")] | (
        None
    ) = None
    timeout_minutes: Annotated[int, Field(ge=5, le=2160)] = 60  # CodeBuild's bounds
    alarms: AlarmsFile = AlarmsFile()

    _expression_is_valid = field_validator("expression")(check_expression)

    @model_validator(mode="after")
    def _one_runner(self) -> ScheduleFile:
        if self.image is not None and self.pip is not None:
            raise ValueError(
                "give `image` (the mirror's container image in ECR) or `pip`, not both"
            )
        return self
