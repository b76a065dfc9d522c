"""What a copy engine is to `mirror.sync`: the request for one tag, its outcome, the two
engines' common surface (`Copier`, registry to registry; `DockerEngineCopier`, through a
Docker engine), and what an image's failure says in the report.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Protocol, Self

import httpx

from mirror.budget import PullBudget, TopInTarget
from mirror.errors import MirrorError, unreachable
from mirror.manifests import Manifest
from mirror.reference import Platform
from mirror.registry.client import ManifestHead, RegistryClient
from mirror.registry.retry import RetryPolicy
from mirror.text import known_secrets, redact

log = logging.getLogger("mirror.sync")


class Progress(Protocol):
    """Told how many bytes an image needs and of bytes as they move, to draw progress."""

    def expect(self, image: str, size: int) -> None: ...

    def advance(self, image: str, size: int) -> None: ...


class NoProgress:
    def expect(self, image: str, size: int) -> None:
        """Nothing to draw."""

    def advance(self, image: str, size: int) -> None:
        """Nothing to draw."""


class CopyError(MirrorError):
    """A copy that cannot succeed as configured (e.g. none of the chosen platforms exist)."""


@dataclass(frozen=True)
class CopyRequest:
    source_repository: str
    tag: str
    target_repository: str
    platforms: tuple[Platform, ...] | None
    source: ManifestHead  # what the plan's HEAD saw: the copy pins this digest
    top_in_target: TopInTarget = None  # what the plan's HEADs on ECR found
    position: int = 0  # in config order: the budget admits copies in this order

    @property
    def label(self) -> str:
        return f"{self.source_repository}:{self.tag}"


@dataclass
class CopyOutcome:
    digest: str = ""  # what the target tag points at now
    manifest: Manifest | None = None  # the bytes written under the tag, when the engine has them
    pulls: int = 0  # manifest GETs Docker Hub charged to this copy
    bytes: int = 0  # blob bytes this copy streamed (not the image's size)
    blobs_copied: int = 0
    blobs_present: int = 0
    blobs_mounted: int = 0


# What one image's failure may be: reported on that image, never stopping the run.
IMAGE_FAILURES = (MirrorError, httpx.HTTPError)


def failure_text(exc: Exception) -> str:
    """What an image's failure says: the error's own words, or, for an error nothing
    expected (a bug, or a registry answer of a shape nobody foresaw), its type too, with
    anything that looks like a credential redacted (httpx quotes header values)."""
    if isinstance(exc, IMAGE_FAILURES):
        return str(unreachable(exc) or exc)
    log.debug("unexpected error", exc_info=True)
    said = redact(str(exc), known_secrets(os.environ))
    return f"internal error: {type(exc).__name__}: {said} (please report)"


class CopyFailed(MirrorError):
    """A copy that did not finish: `cause` says why (deferred by the budget, or a failure),
    `outcome` what it had spent until then, for the report."""

    def __init__(self, outcome: CopyOutcome, cause: Exception) -> None:
        super().__init__(str(cause))
        self.outcome = outcome
        self.cause = cause


class UpToDate(Protocol):
    """The plan's check of one tag: the digest the ECR tag points at when it already
    mirrors `source` (with the entry's platforms), else None. Free: HEADs and GETs on ECR."""

    def __call__(
        self,
        target_repository: str,
        tag: str,
        source: ManifestHead,
        platforms: tuple[Platform, ...] | None,
    ) -> str | None: ...


class CopyEngine(Protocol):
    """What `mirror.sync` needs from an engine once the plan is made."""

    def copy(self, request: CopyRequest) -> CopyOutcome: ...

    def manifests_fetched(self) -> int:
        """Distinct manifests fetched from Docker Hub so far: the least pulls the run's work
        could have cost."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class EngineFactory(Protocol):
    """Makes one sync's engine in two steps: first the check the plan classifies tags with,
    then, with the budget the plan read, the engine that copies."""

    def up_to_date_check(self, target: RegistryClient, retry: RetryPolicy) -> UpToDate: ...

    def __call__(
        self,
        source: RegistryClient,
        target: RegistryClient,
        *,
        concurrency: int,
        budget: PullBudget,
        retry: RetryPolicy,
        progress: Progress | None = None,
    ) -> CopyEngine: ...
