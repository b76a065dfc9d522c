"""`mirror login`: a fresh ECR token, checked by the local Docker engine (unless
`config_only`) and stored in the docker config, so that `docker build` / `docker pull` of
`<ecr>/...` work in a build step. Prints the registry, never the token."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from mirror.config import load_config
from mirror.docker_config import store_docker_login
from mirror.docker_sdk import connect, engine_login
from mirror.ecr import EcrCredentials
from mirror.uri import ecr_host

log = logging.getLogger("mirror")


def run_login(
    config_path: Path,
    *,
    config_only: bool,
    out: TextIO = sys.stdout,
    environ: Mapping[str, str] | None = None,
    connector: Callable[[], Any] = connect,
) -> int:
    config = load_config(config_path)
    ecr = EcrCredentials(config.region)
    host = ecr_host(config, lambda: ecr.endpoint)
    credentials = ecr.get()
    if not config_only:
        client = connector()
        try:
            engine_login(client, host, credentials)
        finally:
            client.close()
    where = store_docker_login(host, credentials, environ=environ)
    log.info("login stored in %s", where)
    out.write(f"Logged in to {host}\n")
    return 0
