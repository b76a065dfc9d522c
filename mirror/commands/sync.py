"""`mirror sync`: ensure the stack, find the credentials, open both registries, sync, report,
and publish the run's metrics when asked (`--metrics cloudwatch`)."""

from __future__ import annotations

import logging
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mirror.config import Config, load_config
from mirror.copy import Copier
from mirror.credentials import FoundCredentials, find_source_credentials
from mirror.ecr import EcrCredentials
from mirror.engine import EngineFactory
from mirror.plan import SyncOptions
from mirror.registries import open_registries
from mirror.registry.auth import StaticCredentials
from mirror.registry.retry import RetryPolicy
from mirror.report import StderrProgress, write_json, write_table
from mirror.sync import sync

if TYPE_CHECKING:
    from mirror.engine_docker import DockerOptions

log = logging.getLogger("mirror")


@dataclass(frozen=True)
class Target:
    credentials: EcrCredentials
    url: str


def ecr_target(config: Config) -> Target:
    """ECR's credentials, and the registry URL: `target.registry`, else ECR's proxyEndpoint."""
    credentials = EcrCredentials(config.region)
    credentials.get()  # no AWS credentials: one clear error now, not one per image later
    return Target(credentials, config.target_url or credentials.endpoint)


def run_sync(
    config_path: Path,
    options: SyncOptions,
    *,
    output: str,
    ensure_repo: bool,
    out: TextIO = sys.stdout,
    docker: DockerOptions | None = None,
    metrics: str = "none",
) -> int:
    """`mirror sync`; `docker` set: copy through the Docker engine (`--engine docker`);
    `metrics` `cloudwatch`: publish the run's numbers (a dry run publishes none)."""
    started = time.monotonic()
    config = load_config(config_path)
    if ensure_repo and not options.dry_run:
        from mirror.stack import ensure_stack

        ensure_stack(config, dry_run=False, progress=lambda line: log.info("%s", line))
    found = find_source_credentials(config)
    log.info("%s", found.describe())
    target = ecr_target(config)
    with (
        _engine(config, docker, found, target) as engine,
        open_registries(
            config,
            StaticCredentials(found.credentials),
            target.credentials,
            target.url,
            options.connections,
        ) as registries,
        StderrProgress() as progress,
    ):
        if found.credentials is not None:
            registries.source.check_access(config.images[0].repository)
        report = sync(
            config,
            registries,
            options,
            retry=RetryPolicy(),
            progress=progress,
            on_result=progress.result,
            engine=engine,
        )
    if metrics == "cloudwatch" and not options.dry_run:
        from mirror.metrics import publish

        publish(report, time.monotonic() - started, stack=config.stack.name, region=config.region)
    if output == "json":
        write_json(report, out)
    else:
        write_table(report, out)
    return report.exit_code


def _engine(
    config: Config, docker: DockerOptions | None, found: FoundCredentials, target: Target
) -> AbstractContextManager[EngineFactory]:
    """The copy engine: registry to registry, or through the Docker engine."""
    if docker is None:
        registry: EngineFactory = Copier
        return nullcontext(registry)
    from mirror.engine_docker import open_docker_engine

    return open_docker_engine(
        config,
        docker,
        source_credentials=found.credentials,
        target_credentials=target.credentials,
    )
