"""`mirror ensure-repo` and `mirror delete-repo`: the stack of ECR repositories; the
confirmation and report every delete command shares.

Progress lines go to stderr, the report (a table on a terminal, plain lines otherwise) to
stdout. Both quote CloudFormation's words, so every cell is made printable and shown as
plain text, never as markup.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mirror.config import load_config
from mirror.errors import ConfigError
from mirror.text import ERROR_LIMIT, FIELD_LIMIT, printable

if TYPE_CHECKING:
    from mirror.stack import DeleteOutcome, DeletePlan


def say(line: str) -> None:
    """A progress line; stack events quote CloudFormation's reasons: made printable."""
    print(printable(line, ERROR_LIMIT), file=sys.stderr, flush=True)


def write_report(
    summary: str, headers: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO
) -> None:
    """A rich table on a terminal; aligned plain lines otherwise (logs, scripts)."""
    summary = printable(summary, ERROR_LIMIT)
    rows = [[printable(cell, FIELD_LIMIT) for cell in row] for row in rows]
    if out.isatty() and rows:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(title=Text(summary), title_justify="left")
        for header in headers:
            table.add_column(header, overflow="fold")  # URIs whole, wrapped if need be
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        Console(file=out).print(table)
        return
    out.write(summary + "\n")
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(len(headers))]
    for row in rows:
        cells = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
        out.write(("  " + cells).rstrip() + "\n")


def run_ensure_repo(config_path: Path, *, dry_run: bool, out: TextIO = sys.stdout) -> int:
    from mirror.stack import ensure_stack

    outcome = ensure_stack(load_config(config_path), dry_run=dry_run, progress=say)
    write_report(outcome.summary(), *outcome.rows(), out=out)
    return 0


def confirmation(
    command: str,
    *,
    yes: bool,
    interactive: bool,
    ask: Callable[[str], bool],
    shown: Callable[[DeletePlan], Sequence[str]],
) -> Callable[[DeletePlan], bool]:
    """A delete command's `confirm`: says the lines `shown(plan)`, then asks `ask(question)`
    unless `yes`. Without `yes`, stdin must be a terminal: refused before any AWS call."""
    if not yes and not interactive:
        raise ConfigError(f"{command} asks before deleting, and stdin is no terminal: pass --yes")

    def confirm(plan: DeletePlan) -> bool:
        for line in shown(plan):
            say(line)
        return yes or ask(f"Delete stack {plan.stack_name}?")

    return confirm


def report_deletions(outcomes: Sequence[DeleteOutcome], out: TextIO) -> int:
    """One report per stack; exit 1 when a deletion was declined, 0 otherwise."""
    for outcome in outcomes:
        write_report(outcome.summary(), *outcome.rows(), out=out)
    return 1 if any(outcome.result == "cancelled" for outcome in outcomes) else 0


def run_delete_repo(
    config_path: Path,
    *,
    yes: bool,
    interactive: bool,
    ask: Callable[[str], bool],
    out: TextIO = sys.stdout,
) -> int:
    """`ask(question)` is asked unless `yes`; without `yes`, stdin must be a terminal."""
    from mirror.stack import delete_set

    def shown(plan: DeletePlan) -> list[str]:
        return [
            f"stack {plan.stack_name} ({plan.status}) in {plan.region} holds:",
            *(f"  {name}" for name in plan.repositories),
            "Deleting the stack leaves these repositories in ECR with their images.",
        ]

    confirm = confirmation("delete-repo", yes=yes, interactive=interactive, ask=ask, shown=shown)
    return report_deletions(
        delete_set(load_config(config_path), confirm=confirm, progress=say), out
    )
