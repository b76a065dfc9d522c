"""`mirror schedule-template` and `mirror deploy-schedule`: the scheduled sync job's stack.

The config file is read once, as text: it is validated from that text and deployed inline
in the job's buildspec, so the job runs exactly the config that was checked.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from mirror.commands.stack import say, write_report
from mirror.config import Config, parse_config
from mirror.yamlfile import read_text


def _load(config_path: Path) -> tuple[Config, str]:
    text = read_text(config_path)
    return parse_config(text, str(config_path)), text


def run_schedule_template(config_path: Path, out: TextIO = sys.stdout) -> int:
    from mirror.schedule_template import render_yaml

    config, text = _load(config_path)
    out.write(render_yaml(config, text))
    return 0


def run_deploy_schedule(config_path: Path, *, dry_run: bool, out: TextIO = sys.stdout) -> int:
    from mirror.stack.schedule import deploy_schedule

    config, text = _load(config_path)
    outcome = deploy_schedule(config, text, dry_run=dry_run, progress=say)
    write_report(outcome.summary(), *outcome.rows(), out=out)
    return 0
