"""`mirror uri`: the ECR reference that mirrors a Docker Hub reference."""

from __future__ import annotations

from pathlib import Path


def run_uri(config_path: Path, image: str, *, digest: bool) -> int:
    from mirror.engine_docker import run_uri as uri

    return uri(config_path, image, digest=digest)
