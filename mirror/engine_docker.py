"""The Docker engine path of `mirror sync --engine docker`: its options, its limits said up
front, and one engine opened for one sync (`mirror.docker_copier` copies through it).

What this engine cannot do, said plainly: it copies ONE platform per tag (the entry's one
listed platform, else `--platform`, else the engine's own), and the engine re-compresses
layers on push, so the digest in ECR differs from Docker Hub's. The registry engine
(`mirror.copy.Copier`) keeps digests and every platform; this one exists for teams whose
images must go through the Docker engine their builds already use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mirror.config import Config
from mirror.docker_copier import DockerEngineFactory
from mirror.docker_sdk import connect, engine_platform
from mirror.errors import ConfigError
from mirror.reference import InvalidReference, Platform, parse_platform
from mirror.registry.auth import Credentials, CredentialsProvider

__all__ = ["DockerOptions", "engine_notes", "open_docker_engine"]

log = logging.getLogger("mirror.engine_docker")

_NAMES_SHOWN = 5


@dataclass(frozen=True)
class DockerOptions:
    """`mirror sync --engine docker` options."""

    platform: Platform | None = None  # for entries at `all`; None: the engine's own
    keep_local: bool = False

    @classmethod
    def parse(cls, platform: str | None, keep_local: bool) -> DockerOptions:
        try:
            parsed = parse_platform(platform) if platform else None
        except InvalidReference as exc:
            raise ConfigError(f"--platform: {exc}") from None
        return cls(parsed, keep_local)


def engine_notes(config: Config, platform: Platform) -> list[str]:
    """What the docker engine will do differently from the config, as warning lines.

    One line for the entries left at `platforms: all` (they get `platform` only), one for
    entries that list several platforms (refused: their tags are reported failed)."""
    notes: list[str] = []
    at_all = [image.name for image in config.images if image.platforms is None]
    several = [
        image.name
        for image in config.images
        if image.platforms is not None and len(image.platforms) > 1
    ]
    if at_all:
        notes.append(
            f"warning: the docker engine copies one platform, {platform}, for the entries at"
            f" `platforms: all` ({_names(at_all)}); use --platform to choose another"
        )
    if several:
        notes.append(
            f"warning: the docker engine refuses the entries that list several platforms"
            f" ({_names(several)}): their tags will be reported failed"
        )
    return notes


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMES_SHOWN])
    more = len(names) - _NAMES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


@contextmanager
def open_docker_engine(
    config: Config,
    options: DockerOptions,
    *,
    source_credentials: Credentials | None,
    target_credentials: CredentialsProvider,
    connector: Callable[[], Any] = connect,
) -> Iterator[DockerEngineFactory]:
    """The engine for `mirror sync --engine docker`, with its limits logged up front.

    The engine is asked its platform only when `--platform` is not given; otherwise it is
    reached on the first copy (a dry run or an up-to-date run needs no engine)."""
    factory = DockerEngineFactory(
        platform=options.platform or Platform("linux", "amd64"),
        source_credentials=source_credentials,
        target_credentials=target_credentials,
        keep_local=options.keep_local,
        connector=connector,
    )
    try:
        if options.platform is None:
            factory.platform = engine_platform(factory.client())
        log.info(
            "engine: docker (one platform per tag; layers are re-compressed on push, so ECR"
            " digests differ from Docker Hub's)"
        )
        for note in engine_notes(config, factory.platform):
            log.warning("%s", note)
        yield factory
    finally:
        factory.close()
