"""The config's `schedule:` section: the scheduled sync job that `mirror deploy-schedule` deploys.

Pure: the pydantic model of the section (`ScheduleFile`), the check of a schedule expression
and of its time zone. A bad value is refused when the config is loaded, as one line naming the
field, before anything asks AWS. (The time zone check reads the names of the tz database that
the standard library's zoneinfo knows: the system's, and the `tzdata` package's.)

The expression check is written by hand: no kept library knows EventBridge's dialect (six cron
fields, `?` in one of the day fields, `L`, `W`, `#`, a year field, and `rate()` whose unit is
singular for 1 and plural otherwise); the croniter family reads Unix cron. It follows the
EventBridge Scheduler user guide ("Schedule types"); `at(...)` one-time schedules are refused,
since a nightly job is what this section describes.
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

DEFAULT_EXPRESSION = "cron(0 3 * * ? *)"  # every night at 03:00 UTC
DEFAULT_IMAGE = "mirror:latest"
# Hours without a run before "the run did not happen": a day and the run's own time; with a
# time zone one more, since the night its clocks go back is 25 hours long.
MISSED_RUN_HOURS = 25
MISSED_RUN_HOURS_IN_A_ZONE = 26

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


def check_timezone(name: str, expression: str | None) -> str:
    """`name` when it is a time zone of the tz database (`Europe/Paris`, `UTC`) and the
    expression is a cron(...), the one kind whose times a zone moves."""
    zones = _zones()
    if name not in zones:
        hint = _zone_like(name, zones)
        raise ValueError(
            f"{name!r} is not a time zone of the tz database"
            + (f" (did you mean {hint}?)" if hint else "")
            + ": give its name, such as Europe/Paris, America/Los_Angeles or UTC"
        )
    if expression is not None and expression.startswith("rate("):
        raise ValueError(
            f"{expression} counts time from the schedule's start, not clock times, so a time"
            " zone changes nothing: give a timezone only with a cron(...) expression"
        )
    return name


def _zones() -> set[str]:
    """The tz database's zone names zoneinfo finds, but `localtime`: that one is this
    machine's own zone, a file some systems keep beside the others."""
    return zoneinfo.available_timezones() - {"localtime"}


def _zone_like(name: str, zones: set[str]) -> str | None:
    """The zone a mistyped name most likely means: the same name or city in another case,
    else a close spelling."""
    wanted = name.casefold()
    for zone in sorted(zones):
        if wanted in (zone.casefold(), zone.rsplit("/", 1)[-1].casefold()):
            return zone
    close = difflib.get_close_matches(name, sorted(zones), n=1, cutoff=0.8)
    return close[0] if close else None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlarmsFile(_Strict):
    """When the job's alarms go off; `email` subscribes an address to their SNS topic."""

    # CloudWatch: Period x EvaluationPeriods is at most 7 days (604,800 s). One-day periods:
    deferred_nights: Annotated[int, Field(ge=1, le=7)] = 3
    # Hours without any run's metrics before "the run did not happen" (one-hour periods);
    # None: MISSED_RUN_HOURS, or MISSED_RUN_HOURS_IN_A_ZONE with a `timezone` (see
    # ScheduleFile.missed_run_hours).
    missed_run_hours: Annotated[int, Field(ge=2, le=168)] | None = None
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)] | None = (
        None
    )


class ScheduleFile(_Strict):
    """The scheduled sync: when (and in which time zone), in how many shards, from which
    image, and its alarms."""

    expression: str = DEFAULT_EXPRESSION
    # The tz database zone that the cron expression's times are in; None: UTC, and the
    # template says nothing (EventBridge Scheduler's default).
    timezone: Annotated[str, Field(max_length=50)] | None = None
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

    @field_validator("timezone")
    @classmethod
    def _timezone_is_known(cls, name: str | None, info: ValidationInfo) -> str | None:
        return None if name is None else check_timezone(name, info.data.get("expression"))

    @property
    def missed_run_hours(self) -> int:
        """Hours without a run before the missed-run alarm: as set, else a day and the run's
        own time, and an hour more in a time zone (the night its clocks go back)."""
        if self.alarms.missed_run_hours is not None:
            return self.alarms.missed_run_hours
        return MISSED_RUN_HOURS if self.timezone is None else MISSED_RUN_HOURS_IN_A_ZONE

    @model_validator(mode="after")
    def _one_runner(self) -> ScheduleFile:
        if self.image is not None and self.pip is not None:
            raise ValueError(
                "give `image` (the mirror's container image in ECR) or `pip`, not both"
            )
        return self
