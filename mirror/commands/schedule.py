"""`mirror schedule-template`, `deploy-schedule` and `delete-schedule`: the scheduled sync
job's stack.

The config file is read once, as text: it is validated from that text and deployed inline
in the job's buildspec, so the job runs exactly the config that was checked.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mirror.commands.stack import confirmation, report_deletions, say, write_report
from mirror.config import Config, parse_config
from mirror.yamlfile import read_text

if TYPE_CHECKING:
    from mirror.stack import DeletePlan


def load_with_text(config_path: Path) -> tuple[Config, str]:
    """The config and its text, read once: validated from the text that is deployed."""
    text = read_text(config_path)
    return parse_config(text, str(config_path)), text


def run_schedule_template(config_path: Path, out: TextIO = sys.stdout) -> int:
    from mirror.schedule_template import render_yaml

    config, text = load_with_text(config_path)
    out.write(render_yaml(config, text))
    return 0


def run_deploy_schedule(config_path: Path, *, dry_run: bool, out: TextIO = sys.stdout) -> int:
    from mirror.stack.schedule import deploy_schedule

    config, text = load_with_text(config_path)
    outcome = deploy_schedule(config, text, dry_run=dry_run, progress=say)
    write_report(outcome.summary(), *outcome.rows(), out=out)
    return 0


def run_delete_schedule(
    config_path: Path,
    *,
    yes: bool,
    interactive: bool,
    ask: Callable[[str], bool],
    out: TextIO = sys.stdout,
) -> int:
    """`ask(question)` is asked unless `yes`; without `yes`, stdin must be a terminal."""
    from mirror.schedule_policy import log_group_name
    from mirror.stack.delete import delete_schedule

    config, _ = load_with_text(config_path)

    def shown(plan: DeletePlan) -> list[str]:
        topic = any(kind == "AWS::SNS::Topic" for _, kind in plan.resources)
        return [
            f"stack {plan.stack_name} ({plan.status}) in {plan.region} holds:",
            *(f"  {key} ({kind})" for key, kind in plan.resources),
            "Deleting the stack deletes all of these: the log group"
            f" {log_group_name(config)} with the job's build logs"
            + (" and the alarm topic with its subscriptions" if topic else "")
            + f". The repositories and their images are in stack {config.stack.name},"
            " which stays.",
        ]

    confirm = confirmation(
        "delete-schedule", yes=yes, interactive=interactive, ask=ask, shown=shown
    )
    return report_deletions([delete_schedule(config, confirm=confirm, progress=say)], out)
