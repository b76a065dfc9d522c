"""What the config tests share: a valid `images:` tail to end a document with, documents that
test the bounds (an alias bomb, deep nesting), the checks of parse_config's contract (a Config,
or a ConfigError of one line naming the file) and the hypothesis settings of its properties."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from mirror.config import Config, parse_config
from mirror.errors import ConfigError

VALID_TAIL = "images: [{image: a, tags: [x]}]\n"


def alias_bomb(fan_out: int, levels: int) -> str:
    """Billion laughs: each level a list of `fan_out` aliases to the level below."""
    text = "a: &a [" + ",".join(["lol"] * fan_out) + "]\n"
    for level in range(1, levels):
        this, below = chr(ord("a") + level), chr(ord("a") + level - 1)
        text += f"{this}: &{this} [" + ",".join([f"*{below}"] * fan_out) + "]\n"
    return text


def nested(levels: int) -> str:
    """A scalar inside `levels` flow lists."""
    return "[" * levels + "1" + "]" * levels


# Bounded examples, no example database (no files left behind), and a per-example deadline
# far above the milliseconds a document takes: it catches a hang, not a slow machine.
PROPERTIES = settings(
    max_examples=150,
    deadline=3000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def refused(document: str) -> str:
    """The one-line ConfigError `document` (read as `f.yaml`) is refused with."""
    with pytest.raises(ConfigError) as caught:
        parse_config(document, "f.yaml")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("f.yaml"), message
    assert caught.value.exit_code == 2
    return message


def loads_or_one_line(document: str) -> Config | None:
    """parse_config's whole contract: a Config, or a ConfigError of one line naming the file.
    Any other exception fails the test with its traceback."""
    try:
        return parse_config(document, "f.yaml")
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith("f.yaml") and "\n" not in message and "\r" not in message
        return None
