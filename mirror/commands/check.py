"""`mirror check`: validate the config and list the ECR repository of each image."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from mirror.config import load_config


def run_check(config_path: Path, out: TextIO = sys.stdout) -> int:
    for image in load_config(config_path).images:
        out.write(f"{image.name} -> {image.target_repository}\n")
    return 0
