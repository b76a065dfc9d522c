"""The config's `schedule:` section: what EventBridge accepts is accepted, anything else is one
line naming the field, with exit code 2 from the command line before any AWS call."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mirror.config import parse_config
from mirror.config_schedule import check_expression
from mirror.errors import ConfigError

BIN = Path(sys.executable).parent

VALID = [
    "cron(0 3 * * ? *)",
    "cron(15 10 ? * 6L 2022-2023)",
    "cron(0/15 * * * ? *)",
    "cron(0 8 1 * ? *)",
    "cron(0 18 ? * MON-FRI *)",
    "cron(0 9 ? * 2#1 *)",
    "cron(5,35 14 * * ? *)",
    "cron(0 12 L * ? *)",
    "cron(0 12 15W JAN,JUL ? *)",
    "rate(1 day)",
    "rate(12 hours)",
    "rate(5 minutes)",
]
INVALID = {
    "0 3 * * *": "expected cron(",
    "cron(0 3 * * *)": "has 6 fields",
    "cron(0 3 * * * *)": "exactly one of day-of-month and day-of-week",
    "cron(0 3 ? * ? *)": "exactly one of day-of-month and day-of-week",
    "cron(60 3 * * ? *)": "minutes 60 is outside 0-59",
    "cron(0 24 * * ? *)": "hours 24 is outside 0-23",
    "cron(0 3 32 * ? *)": "day-of-month 32 is outside 1-31",
    "cron(0 3 * 13 ? *)": "month 13 is outside 1-12",
    "cron(0 3 ? * 8 *)": "day-of-week 8 is outside 1-7",
    "cron(0 3 * * ? 1969)": "year 1969 is outside 1970-2199",
    "cron(0 3 * FOO ? *)": "invalid month field",
    "rate(1 days)": "singular for 1",
    "rate(2 hour)": "singular for 1",
    "rate(0 minutes)": "at least 1",
    "rate(1 week)": "expected cron(",
    "at(2026-12-24T03:00:00)": "expected cron(",
}


@pytest.mark.parametrize("expression", VALID)
def test_eventbridge_expressions_are_accepted(expression: str) -> None:
    assert check_expression(expression) == expression


@pytest.mark.parametrize("expression", INVALID, ids=list(INVALID))
def test_invalid_expressions_are_named(expression: str) -> None:
    with pytest.raises(ValueError) as raised:
        check_expression(expression)
    assert INVALID[expression] in str(raised.value)
    assert repr(expression) in str(raised.value)


def _document(schedule: object) -> str:
    return yaml.safe_dump(
        {"version": 1, "schedule": schedule, "images": [{"image": "python", "tags": ["3"]}]},
        sort_keys=False,
    )


BAD_SECTIONS = {
    "expression": ({"expression": "cron(0 3 * * *)"}, "schedule.expression (line 3): "),
    "shards-zero": ({"shards": 0}, "schedule.shards (line 3): Input should be greater than"),
    "shards-many": ({"shards": 101}, "schedule.shards (line 3): Input should be less than"),
    "shards-text": ({"shards": "two"}, "schedule.shards (line 3): Input should be a valid int"),
    "deferred-nights": (
        {"alarms": {"deferred_nights": 8}},
        "schedule.alarms.deferred_nights (line 4): Input should be less than or equal to 7",
    ),
    "missed-hours": (
        {"alarms": {"missed_run_hours": 1}},
        "schedule.alarms.missed_run_hours (line 4): Input should be greater than or equal to 2",
    ),
    "email": ({"alarms": {"email": "not an address"}}, "schedule.alarms.email (line 4): "),
    "unknown-alarm": ({"alarms": {"deffered_nights": 2}}, "schedule.alarms.deffered_nights"),
    "image-and-pip": ({"image": "mirror:1", "pip": "mirror"}, "give `image`"),
    "pip-shell": ({"pip": "mirror; rm -rf /"}, "schedule.pip (line 3): "),
    "timeout": ({"timeout_minutes": 3}, "schedule.timeout_minutes (line 3): "),
    "stack-name": ({"stack_name": "1-starts-with-a-digit"}, "schedule.stack_name (line 3): "),
    "timezone-misspelt": (
        {"timezone": "Europe/Pariss"},
        "schedule.timezone (line 3): 'Europe/Pariss' is not a time zone of the tz database"
        " (did you mean Europe/Paris?): give its name, such as Europe/Paris,",
    ),
    "timezone-city": ({"timezone": "sydney"}, "(did you mean Australia/Sydney?)"),
    "timezone-made-up": (
        {"timezone": "Mars/Olympus_Mons"},
        "schedule.timezone (line 3): 'Mars/Olympus_Mons' is not a time zone of the tz database:",
    ),
    # this machine's zone by another name, a file beside the zones on Debian; not an IANA name
    "timezone-localtime": ({"timezone": "localtime"}, "schedule.timezone (line 3): 'localtime'"),
    "timezone-path": ({"timezone": "../../etc/passwd"}, "schedule.timezone (line 3): '../../"),
    "timezone-with-rate": (
        {"expression": "rate(1 day)", "timezone": "Europe/Paris"},
        "schedule.timezone (line 4): rate(1 day) counts time from the schedule's start",
    ),
}


@pytest.mark.parametrize("case", BAD_SECTIONS, ids=list(BAD_SECTIONS))
def test_bad_schedule_settings_are_one_line_naming_the_field(case: str) -> None:
    section, said = BAD_SECTIONS[case]
    with pytest.raises(ConfigError) as raised:
        parse_config(_document(section), "images.yaml")
    message = str(raised.value)
    assert message.startswith("images.yaml: ")
    assert said in message
    assert "\n" not in message


def test_the_defaults_are_a_nightly_single_build_from_the_tool_image() -> None:
    schedule = parse_config(_document({}), "images.yaml").schedule
    assert schedule.expression == "cron(0 3 * * ? *)"
    assert (schedule.timezone, schedule.missed_run_hours) == (None, 25)  # UTC
    assert (schedule.shards, schedule.image, schedule.pip) == (1, None, None)
    assert (schedule.alarms.deferred_nights, schedule.alarms.email) == (3, None)


@pytest.mark.parametrize(
    "zone",
    ["Australia/Sydney", "America/Los_Angeles", "Europe/Paris", "Asia/Kolkata", "UTC", "Etc/UTC"],
)
def test_time_zones_of_the_tz_database_are_taken_as_named(zone: str) -> None:
    section = {"expression": "cron(0 3 * * ? *)", "timezone": zone}
    assert parse_config(_document(section), "images.yaml").schedule.timezone == zone


def test_a_time_zone_gives_the_missed_run_alarm_the_long_night_unless_it_is_set() -> None:
    """The night the clocks go back is 25 hours: 26 hours without a run by default in a
    zone (test_schedule_template.py shows the alarm then keeps quiet); a set value stays."""
    zoned = parse_config(_document({"timezone": "Europe/Paris"}), "images.yaml").schedule
    assert zoned.missed_run_hours == 26
    kept = {"timezone": "Europe/Paris", "alarms": {"missed_run_hours": 30}}
    assert parse_config(_document(kept), "images.yaml").schedule.missed_run_hours == 30
    utc = {"alarms": {"missed_run_hours": 30}}
    assert parse_config(_document(utc), "images.yaml").schedule.missed_run_hours == 30


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("command", ["deploy-schedule", "schedule-template"])
@pytest.mark.parametrize(
    ("section", "said"),
    [
        ({"expression": "rate(1 days)"}, "schedule.expression (line 3): 'rate(1 days)'"),
        ({"timezone": "Australia/Sidney"}, "(did you mean Australia/Sydney?)"),
        ({"shards": -1}, "schedule.shards (line 3): "),
        ({"alarms": {"deferred_nights": 0}}, "schedule.alarms.deferred_nights (line 4): "),
    ],
    ids=["expression", "timezone", "shards", "alarm"],
)
def test_the_cli_refuses_bad_settings_with_exit_2_before_any_aws_call(
    tmp_path: Path, command: str, section: dict[str, object], said: str
) -> None:
    """AWS is a closed port here: a call would be an error other than the config's."""
    path = tmp_path / "images.yaml"
    path.write_text(_document(section))
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_closed_port()}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
    }
    result = subprocess.run(
        [str(BIN / "mirror"), command, "-c", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"mirror: error: {path}: schedule.")
    assert said in line
