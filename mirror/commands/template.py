"""`mirror template`: print the CloudFormation template `ensure-repo` deploys."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from mirror.config import load_config


def run_template(config_path: Path, out: TextIO = sys.stdout) -> int:
    from mirror.template import render_yaml  # only this command and the stack need it

    out.write(render_yaml(load_config(config_path)))
    return 0
