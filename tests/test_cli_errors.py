"""What the CLI prints when something goes wrong, and what it prints of a registry's words.

An unexpected exception (a bug) outside the per-image path is one line, `mirror: internal
error: <Type>: <message> (please report)`, exit 1, the JSON report still printed, and no
traceback unless --verbose; ^C is one line and exit 130. The faults are injected by running
the real CLI behind a two-line wrapper (`python -c`) that replaces one function of
`mirror.commands.*` before calling `mirror.cli.main`: no code path in `mirror` itself is
changed, and the exception is a real one (a real httpx request with an illegal header).

Text from a registry (a message with ANSI escapes and rich markup) reaches the terminal
without control characters, capped, and with its markup shown as written.
"""

from __future__ import annotations

import os
import pty
import socket
import subprocess
import sys
from typing import Any

import pytest

from mirror.text import ERROR_LIMIT, FIELD_LIMIT, REDACTED, known_secrets, printable, redact
from tests.runner import Mirror, Run
from tests.world.httpfront import errors_body

TOKEN = "dckr_pat_cli-errors-TOKEN-x1y2z3"
REALM_TOKEN = "eyJhbGciOiJSUzI1NiJ9.realm-token-Q7w8e9"
ALPINE = {"image": "alpine", "tags": ["3.19"]}

# A fault in `mirror.commands.sync.ecr_target`, which `run_sync` calls after the config, the
# stack and the Docker Hub credentials, before any image: outside the per-image path.
_WRAPPER = """
import sys, mirror.cli, mirror.commands.sync
{fault}
mirror.commands.sync.ecr_target = fault
sys.argv[0] = "mirror"
mirror.cli.main()
"""
# httpx refuses a header value with a newline and quotes the value in its message.
ILLEGAL_HEADER = f"""
import httpx, os
def fault(config):
    token = "Bearer {REALM_TOKEN} " + os.environ["DOCKERHUB_TOKEN"] + "\\n"
    httpx.get(config.source.url + "/v2/", headers={{"Authorization": token}})
"""
INTERRUPT = """
def fault(config):
    raise KeyboardInterrupt
"""


def run_with_fault(mirror: Mirror, fault: str, *args: str) -> Run:
    done = subprocess.run(
        [sys.executable, "-c", _WRAPPER.format(fault=fault), *args],
        env={**mirror.env, "DOCKERHUB_USERNAME": "alice", "DOCKERHUB_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return mirror.record(Run(args, done.returncode, done.stdout, done.stderr))


def _no_secret(run: Run) -> None:
    for secret in (TOKEN, REALM_TOKEN):
        assert secret not in run.stdout + run.stderr, run


@pytest.mark.parametrize("verbose", [False, True])
def test_an_internal_error_is_one_redacted_line_and_the_json_report_still_prints(
    mirror: Mirror, verbose: bool
) -> None:
    mirror.world.hub_front.users = {"alice": TOKEN}
    mirror.config([ALPINE])
    args = mirror.sync_args(*(["--verbose"] if verbose else []))
    run = run_with_fault(mirror, ILLEGAL_HEADER, *args)
    assert run.code == 1, run
    line = (
        f"mirror: internal error: httpx.LocalProtocolError: Illegal header value {REDACTED}"
        " (please report)"
    )
    assert run.stderr.splitlines()[-1] == line
    assert run.report["error"] == line.removeprefix("mirror: ")
    assert run.report["exit_code"] == 1 and run.report["images"] == []
    if verbose:  # the traceback, redacted like the line
        assert "Traceback (most recent call last):" in run.stderr
        assert "httpx.LocalProtocolError" in run.stderr
    else:
        assert "Traceback" not in run.stderr
        assert [x for x in run.stderr.splitlines() if x.startswith("mirror:")] == [line]
    _no_secret(run)


def test_an_internal_error_in_table_mode_is_one_line(mirror: Mirror) -> None:
    mirror.config([ALPINE])
    args = ("sync", "--no-ensure-repo", "-c", str(mirror.config_path))
    run = run_with_fault(mirror, ILLEGAL_HEADER, *args)
    assert run.code == 1, run
    assert run.stdout == ""
    assert run.stderr.splitlines()[-1].startswith("mirror: internal error: httpx.")
    assert "Traceback" not in run.stderr
    _no_secret(run)


def test_interrupted_is_exit_130_with_one_line_and_a_report(mirror: Mirror) -> None:
    mirror.config([ALPINE])
    run = run_with_fault(mirror, INTERRUPT, *mirror.sync_args())
    assert run.code == 130, run
    assert run.stderr.splitlines()[-1] == "mirror: interrupted"
    assert "Traceback" not in run.stderr
    assert run.report["error"] == "interrupted" and run.report["exit_code"] == 130


def test_an_internal_error_in_another_command_is_one_line(mirror: Mirror) -> None:
    """`quota` through a fault in the module it runs: the same handler serves every command."""
    mirror.config([ALPINE])
    wrapper = """
import sys, mirror.cli, mirror.commands.quota
def fault(*args, **kwargs):
    raise TypeError("'NoneType' object is not subscriptable")
mirror.commands.quota.quota = fault
sys.argv[0] = "mirror"
mirror.cli.main()
"""
    done = subprocess.run(
        [sys.executable, "-c", wrapper, "quota", "-c", str(mirror.config_path)],
        env=mirror.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[1:] == [
        "mirror: internal error: TypeError: 'NoneType' object is not subscriptable (please report)"
    ]


# --- text from outside ----------------------------------------------------------------------

HOSTILE = (
    "\x1b[31m[red]denied[/red]\x1b[0m [link=http://evil.example]click[/link]"
    " \x1b]8;;http://evil.example\x07here\x1b]8;;\x07\r\n\x9b2J\x07" + "x" * 2000
)


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("\x1b[31mred\x1b[0m", FIELD_LIMIT, "red"),
        ("a\r\nb\tc\x00d\x7f", FIELD_LIMIT, "a b cd"),
        ("\x1b]0;title\x07after", FIELD_LIMIT, "after"),
        ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", FIELD_LIMIT, "link"),
        ("\x9b31mc1\x85 next", FIELD_LIMIT, "c1 next"),
        ("rtl\u202eevil\u2066", FIELD_LIMIT, "rtlevil"),
        ("[red]markup[/red]", FIELD_LIMIT, "[red]markup[/red]"),  # rich prints it as Text
        ("abcdefgh", 5, "abcd…"),
        ("  + indented\t line ", FIELD_LIMIT, "  + indented line"),
    ],
)
def test_printable(text: str, limit: int, expected: str) -> None:
    assert printable(text, limit) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Illegal header value b'Bearer abc.def\\n'", f"Illegal header value {REDACTED}"),
        ('header value b"Basic QVdTOnB3\\r"', f"header value {REDACTED}"),
        ("sent Authorization: Basic QVdTOnB3, then", f"sent Authorization: {REDACTED}"),
        ("{'authorization': 'Bearer t0k3n'}", f"{{'authorization': {REDACTED}"),
        ("token Bearer eyJ0eXAi.x-y_z", f"token Bearer {REDACTED}"),
        ('Bearer realm="https://auth.example/token"', 'Bearer realm="https://auth.example/token"'),
        ("HTTP Basic authentication required", "HTTP Basic authentication required"),
        (
            "the DOCKERHUB_TOKEN value s3cr3t-xyz leaked",
            f"the DOCKERHUB_TOKEN value {REDACTED} leaked",
        ),
        ("base64 YWxpY2U6czNjcjN0LXh5eg== too", f"base64 {REDACTED} too"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    env = {"DOCKERHUB_USERNAME": "alice", "DOCKERHUB_TOKEN": "s3cr3t-xyz"}
    assert redact(text, known_secrets(env)) == expected


def _hostile_tag_list(mirror: Mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Docker Hub front refuses alpine's tag list with a hostile message."""
    front = mirror.world.hub_front

    def tags(h: Any, name: str) -> None:
        h.send_json(403, errors_body("DENIED", HOSTILE))

    monkeypatch.setattr(front, "_tags", tags)
    mirror.config([{"image": "alpine", "tags": {"match": r"^3\.19$"}}])


def _check_shown(output: str) -> None:
    assert "\x1b[31m" not in output and "\x1b]8;" not in output and "\x9b" not in output
    assert "\r" not in output and "\x07" not in output
    assert "[red]denied[/red]" in output  # markup shown as written, not interpreted
    assert "x" * (ERROR_LIMIT + 1) not in output  # capped


def test_a_registry_message_reaches_the_log_without_escapes(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hostile_tag_list(mirror, monkeypatch)
    run = mirror.run("sync", "--no-ensure-repo", "-c", str(mirror.config_path))
    assert run.code == 1, run
    assert "denied" in run.stdout and "denied" in run.stderr
    for output in (run.stdout, run.stderr):
        _check_shown(output)
        assert "\x1b" not in output  # not a terminal: no escape at all


def test_a_registry_message_in_the_terminal_table_has_no_markup_or_escapes(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal (stdout a pty), the report is a rich table: the message's markup and
    escapes do not take effect (rich's own styling may)."""
    _hostile_tag_list(mirror, monkeypatch)
    args = ["sync", "--no-ensure-repo", "-c", str(mirror.config_path)]
    main, child = pty.openpty()
    env = {**mirror.env, "TERM": "xterm-256color", "COLUMNS": "200"}
    env.pop("NO_COLOR", None)
    with subprocess.Popen(
        mirror.command(*args), stdout=child, stderr=subprocess.PIPE, env=env
    ) as process:
        os.close(child)
        chunks = []
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.stderr is not None
        stderr = process.stderr.read().decode()
        code = process.wait(timeout=120)
    os.close(main)
    output = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    assert code == 1, output + stderr
    assert "mirror sync" in output and "┃" in output  # a rich table: the terminal path
    assert "\x1b[" in output  # rich styles its table on this terminal
    _check_shown(output)


def test_an_unreachable_registry_is_one_line_naming_it(mirror: Mirror) -> None:
    """A refused connection (a real one: a loopback port nothing listens on) is the user's
    `error: cannot reach HOST`, exit 1, for every command: not an internal error."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    host = f"127.0.0.1:{closed.getsockname()[1]}"
    try:
        mirror.config([ALPINE])
        source = {"registry": f"http://{host}", "allow_insecure_http": True}
        mirror.world.write_config(mirror.config_path, [ALPINE], source=source)
        quota = mirror.run("quota", "-c", str(mirror.config_path))
        sync = mirror.run(*mirror.sync_args())
    finally:
        closed.close()
    assert quota.code == 1, quota
    assert quota.stderr.splitlines()[-1].startswith(f"mirror: error: cannot reach {host}: ")
    assert "internal error" not in quota.stderr + sync.stderr
    assert sync.code == 1, sync
    [image] = sync.report["images"]
    assert image["action"] == "failed"
    assert image["error"].startswith(f"cannot reach {host}: ")
