"""`mirror uri IMAGE[:TAG]`: the ECR reference that mirrors a Docker Hub reference.

`<ecr host>/<repo>:<tag>`, or with `digest` `<ecr host>/<repo>@sha256:...`, resolved with a
HEAD on ECR (free). A digest the config pins (`IMAGE@sha256:...`) is its own reference."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from mirror.config import load_config
from mirror.ecr import EcrCredentials
from mirror.errors import MirrorError
from mirror.registry.client import RegistryClient, new_http_client
from mirror.registry.retry import RetryPolicy
from mirror.uri import ecr_host, mirror_uri


def run_uri(config_path: Path, image: str, *, digest: bool, out: TextIO = sys.stdout) -> int:
    config = load_config(config_path)
    entry, tag = mirror_uri(config, image)
    ecr = EcrCredentials(config.region)
    host = ecr_host(config, lambda: ecr.endpoint)
    at = "@" if tag.startswith("sha256:") else ":"
    if not digest:
        out.write(f"{host}/{entry.target_repository}{at}{tag}\n")
        return 0
    url = config.target_url or ecr.endpoint
    with new_http_client(connections=2) as http:
        head = RetryPolicy().call(
            lambda: RegistryClient(url, ecr, http).head_manifest(entry.target_repository, tag)
        )
    if head is None:
        raise MirrorError(
            f"{host}/{entry.target_repository}{at}{tag} is not in ECR yet: run `mirror sync` first"
        )
    out.write(f"{host}/{entry.target_repository}@{head.digest}\n")
    return 0
