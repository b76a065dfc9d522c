"""`mirror login`: log the Docker engine and the docker config into ECR."""

from __future__ import annotations

from pathlib import Path


def run_login(config_path: Path, *, config_only: bool) -> int:
    from mirror.engine_docker import run_login as login

    return login(config_path, config_only=config_only)
