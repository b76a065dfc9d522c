"""What `mirror sync` tells its user: a JSON document, a table, progress on stderr.

stdout carries only the report (so `mirror sync --output json > report.json` is always valid
JSON); progress and logs go to stderr: rich bars on a terminal, plain lines in CI.

Names, tags and messages come from registries and AWS: every one is shown through
`mirror.text.printable` (no control characters, capped), and rich prints it as `Text`, so
that markup in it (`[red]`, `[link=...]`) is shown as written, never interpreted.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from mirror.console import STDERR
from mirror.plan import Action
from mirror.sync import SyncReport, TagResult
from mirror.text import printable

REPORT_VERSION = 1


def report_document(report: SyncReport, error: str | None = None) -> dict[str, Any]:
    """The JSON report, as docs/report.md documents it and docs/report.schema.json states it.
    `error`: why the run stopped before it could report on images (the report is then empty,
    with the run's exit code)."""
    images = [
        {
            "source": r.source_ref,
            "target": r.target_ref,
            "action": r.action.value,
            "digest": r.digest,
            "bytes": r.bytes,
            "pulls": r.pulls,
            "estimated_pulls": r.planned.estimate.pulls if r.planned.estimate else None,
            "estimate": _basis(r),
            "seconds": r.seconds,
            "error": r.error,
            "note": r.note,
        }
        for r in report.results
    ]
    ratelimit = report.ratelimit
    return {
        "version": REPORT_VERSION,
        "dry_run": report.dry_run,
        "images": images,
        "totals": {
            "copied": report.count(Action.COPIED),
            "up_to_date": report.count(Action.UP_TO_DATE),
            "would_copy": report.count(Action.WOULD_COPY),
            "deferred": report.count(Action.DEFERRED),
            "missing": report.count(Action.MISSING),
            "failed": report.count(Action.FAILED),
            "backed_up": report.count(Action.BACKED_UP),
            "pruned": report.count(Action.PRUNED),
            "would_prune": report.count(Action.WOULD_PRUNE),
            "would_back_up": report.count(Action.WOULD_BACK_UP),
            "bytes": sum(r.bytes for r in report.results),
            "pulls": sum(r.pulls for r in report.results),
            "minimum_pulls": report.minimum_pulls,
            "estimated_pulls": sum(
                r.planned.estimate.pulls
                for r in report.results
                if r.action is Action.WOULD_COPY and r.planned.estimate
            ),
            "retries": report.retries,
        },
        "ratelimit": None
        if ratelimit is None
        else {
            "limit": ratelimit.limit,
            "remaining": ratelimit.remaining,
            "window_seconds": ratelimit.window_seconds,
            "source": ratelimit.source,
        },
        "exit_code": report.exit_code,
        "error": error,
    }


def _basis(result: TagResult) -> str | None:
    """How sure a dry run's estimate is: `exact`, `at most`, or `guess`, with why."""
    estimate = result.planned.estimate
    if estimate is None:
        return None
    return f"{estimate.basis}: {estimate.note}" if estimate.note else estimate.basis


def write_json(report: SyncReport, out: TextIO) -> None:
    json.dump(report_document(report), out, indent=2)
    out.write("\n")


def write_error_json(error: str, exit_code: int, *, dry_run: bool, out: TextIO) -> None:
    """A run that stopped early still leaves one JSON document on stdout, so that
    `mirror sync --output json > report.json` always yields valid JSON. `error` is the line
    printed on stderr (already made printable and redacted by the CLI)."""
    document = report_document(SyncReport(dry_run=dry_run), error=error)
    document["exit_code"] = exit_code
    json.dump(document, out, indent=2)
    out.write("\n")


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def write_table(report: SyncReport, out: TextIO) -> None:
    """A table on a terminal; aligned plain lines elsewhere (logs, pipes)."""
    document = report_document(report)
    totals = document["totals"]
    console = Console(file=out, soft_wrap=True, highlight=False)
    if out.isatty():
        table = Table(title="mirror sync" + (" (dry run)" if report.dry_run else ""))
        for column in ("image", "action", "pulls", "size", "digest / error"):
            table.add_column(column)
        for r in report.results:
            table.add_row(
                Text(printable(r.source_ref)),
                r.action.value,
                _pulls(r),
                _size(r.bytes),
                Text(printable(r.error or (r.digest or "")[:19]) + _note(r)),
            )
        console.print(table)
    else:
        for r in report.results:
            detail = printable(r.error or r.digest or "") + _note(r)
            out.write(
                f"{r.action.value:<10} {printable(r.source_ref)} -> {printable(r.target_ref)}"
                f"  pulls={_pulls(r)} bytes={r.bytes} {detail}\n"
            )
    summary = (
        f"copied {totals['copied']}, up to date {totals['up_to_date']}, "
        + (
            f"would copy {totals['would_copy']} (~{totals['estimated_pulls']} pulls"
            + (", some guessed" if _guessed(report) else "")
            + "), "
            if report.dry_run
            else ""
        )
        + f"deferred {totals['deferred']}, missing {totals['missing']}, failed {totals['failed']}"
        + _over_time(totals, dry_run=report.dry_run)
        + "; "
        + (
            ""
            if report.dry_run
            else f"pulls spent {totals['pulls']} (minimum {totals['minimum_pulls']}), "
        )
        + f"{_size(totals['bytes'])} copied"
    )
    ratelimit = document["ratelimit"]
    if ratelimit:
        summary += f"; Docker Hub quota {ratelimit['remaining']}/{ratelimit['limit']} left"
    out.write(summary + "\n")


def _note(result: TagResult) -> str:
    return f" ({printable(result.note)})" if result.note else ""


def _over_time(totals: dict[str, int], *, dry_run: bool) -> str:
    """The summary's words for backups and pruning, when there were any."""
    words = [f"backed up {totals['backed_up']}"] if totals["backed_up"] else []
    if dry_run and totals["would_back_up"]:
        words.append(f"would back up {totals['would_back_up']}")
    if dry_run and totals["would_prune"]:
        words.append(f"would prune {totals['would_prune']}")
    elif totals["pruned"]:
        words.append(f"pruned {totals['pruned']}")
    return "".join(f", {word}" for word in words)


def _guessed(report: SyncReport) -> bool:
    return any(
        r.planned.estimate.basis == "guess"
        for r in report.results
        if r.action is Action.WOULD_COPY and r.planned.estimate
    )


def _pulls(result: TagResult) -> str:
    """Pulls spent; in a dry run, `~N` estimated (`?` marks a guess)."""
    estimate = result.planned.estimate
    if result.action is not Action.WOULD_COPY or estimate is None:
        return str(result.pulls)
    return f"~{estimate.pulls}" + ("?" if estimate.basis == "guess" else "")


class StderrProgress:
    """Progress on stderr: rich bars on a terminal, a line per finished image otherwise."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = stream is None and STDERR.is_terminal
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskID] = {}
        self._expected: dict[TaskID, int] = {}  # bytes each bar will reach
        self._bars: Progress | None = None
        if self.live:
            self._bars = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeElapsedColumn(),
                console=STDERR,
                transient=False,
            )
            self._total = self._bars.add_task("all images", total=None)

    def __enter__(self) -> StderrProgress:
        if self._bars:
            self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bars:
            self._bars.stop()

    def _task(self, bars: Progress, image: str) -> TaskID:
        with self._lock:
            task = self._tasks.get(image)
            if task is None:
                task = self._tasks[image] = bars.add_task(printable(image), total=None)
            return task

    def expect(self, image: str, size: int) -> None:
        """`image` needs `size` more bytes (skipped blobs count too: they advance at once)."""
        if self._bars is None:
            return
        for task in (self._task(self._bars, image), self._total):
            with self._lock:
                self._expected[task] = self._expected.get(task, 0) + size
                self._bars.update(task, total=self._expected[task])

    def advance(self, image: str, size: int) -> None:
        if self._bars is None:
            return
        self._bars.advance(self._task(self._bars, image), size)
        self._bars.advance(self._total, size)

    def result(self, result: TagResult) -> None:
        """One line per finished image (in CI this is the whole progress display)."""
        if result.action in (Action.WOULD_COPY, Action.UP_TO_DATE):
            return  # nothing moved: the plan line counted them, the report lists them
        detail = (
            f" ({printable(result.error)})"
            if result.error
            else (
                f" ({_size(result.bytes)}, {result.pulls} pulls, {result.seconds:.1f}s)"
                if result.action is Action.COPIED
                else ""
            )
        )
        line = f"{result.action.value}: {printable(result.source_ref)}{detail}"
        if self._bars:
            self._bars.console.print(line, highlight=False, markup=False)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()
