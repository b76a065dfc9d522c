"""The Docker engine copier: one tag copied through a Docker engine, pull, tag, push, with the
plan, budget and report of the registry engine (the same surface as `mirror.copy.Copier`).

One tag is copied in named steps:
  1. pay the pulls from the budget (an index: 2 manifest GETs, the index and one platform's
     manifest; a single manifest: 1), then pull `<source>/<repo>@<digest the plan saw>`;
  2. tag the image as a marker that records its source, then as the tag, in the ECR
     repository: `mirror-src-<40 hex of the source digest>[-<os>-<arch>[-<variant>]]` (the
     platform part only when the source is an index);
  3. push the marker, then the tag (written last, so it never points at an image whose
     source is unrecorded), reading every line of each push stream (`mirror.docker_sdk`);
  4. remove the references it made in the engine, once no other copy uses them (unless
     `keep_local`).

Up to date without a pull: since the pushed digest never equals Docker Hub's, the target is
up to date when its tag and the marker for the source digest (and platform) name the same
image: two HEADs on ECR, both free.

Engine failures are `EngineError`s (`mirror.docker_sdk`), retried by the `RetryPolicy` when
`transient`. Docker Hub's `toomanyrequests` on a pull marks the budget exhausted and the image
deferred.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from typing import Any

from mirror.budget import DeferredError, PullBudget
from mirror.docker_sdk import (
    LocalImages,
    PushMeter,
    auth_config,
    connect,
    engine_call,
    image_platform,
    is_quota_message,
    read_stream,
)
from mirror.engine import (
    CopyError,
    CopyFailed,
    CopyOutcome,
    CopyRequest,
    NoProgress,
    Progress,
    UpToDate,
)
from mirror.errors import EngineError
from mirror.manifests import platforms_label
from mirror.reference import Platform, normalize_registry
from mirror.registry.auth import Credentials, CredentialsProvider
from mirror.registry.client import ManifestHead, RegistryClient
from mirror.registry.retry import RetryPolicy

__all__ = [
    "MARKER_PREFIX",
    "DockerEngineCopier",
    "DockerEngineFactory",
    "entry_platform",
    "marker_tag",
]

log = logging.getLogger("mirror.docker_copier")

MARKER_PREFIX = "mirror-src-"
_INDEX_TYPES = ("list.v2+json", "index.v1+json")


# --- pure decisions ---------------------------------------------------------------------


def entry_platform(platforms: tuple[Platform, ...] | None, default: Platform) -> Platform:
    """The one platform the engine copies for an entry: its only listed platform, else the
    default (`--platform`, else the engine's own). Several listed platforms are refused."""
    if platforms is None:
        return default
    if len(platforms) > 1:
        raise CopyError(
            f"the docker engine copies one platform per tag, and this entry lists"
            f" {len(platforms)} ({platforms_label(platforms)}): list one platform, or use"
            " --engine registry"
        )
    return platforms[0]


def _is_index(head: ManifestHead) -> bool:
    return head.media_type.endswith(_INDEX_TYPES)


def marker_tag(source_digest: str, platform: Platform | None) -> str:
    """The tag that records which source an image in ECR was pushed from.

    `mirror-src-<first 40 hex of the source digest>`, plus `-<os>-<arch>[-<variant>]` when
    the source is an index (the engine picked one platform of it). At most 11 + 40 + 1 +
    the platform's length characters, all valid in a tag."""
    hex_digits = source_digest.partition(":")[2][:40]
    tag = MARKER_PREFIX + hex_digits
    if platform is not None:
        parts = (platform.os, platform.architecture, platform.variant)
        tag += "-" + "-".join(part for part in parts if part)
    return tag


def pull_host(source: RegistryClient) -> str:
    """How the engine names the source registry: `docker.io` for Docker Hub, else host[:port]."""
    return normalize_registry(source.host)


@dataclass(frozen=True)
class _Pushed:
    digest: str | None  # None: the tag exists in an immutable repository, nothing was written
    bytes: int


# --- the copier ---------------------------------------------------------------------------


class DockerEngineCopier:
    """Copies one platform per tag through a Docker engine: pull, tag, push.

    The same surface as `Copier` (`mirror.copy.CopyEngine`), so `mirror.sync` plans, budgets
    and reports the same way whichever engine copies."""

    def __init__(
        self,
        source: RegistryClient,
        target: RegistryClient,
        *,
        engine: DockerEngineFactory,
        budget: PullBudget,
        retry: RetryPolicy,
        progress: Progress | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.budget = budget
        self.retry = retry
        self.progress = progress or NoProgress()
        self._engine = engine
        self._source_host = pull_host(source)
        self._local = LocalImages(engine.client, engine.keep_local)
        self._pulled = 0  # pulls made, for `manifests_fetched`
        self._pulled_lock = threading.Lock()

    def __enter__(self) -> DockerEngineCopier:
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to close: the engine's client belongs to the factory."""

    @property
    def platform(self) -> Platform:
        return self._engine.platform

    def manifests_fetched(self) -> int:
        """The engine fetches manifests itself, once per pull: the pulls it made."""
        with self._pulled_lock:
            return self._pulled

    # --- copying ----------------------------------------------------------------------

    def copy(self, request: CopyRequest) -> CopyOutcome:
        """Pull, tag, push one tag. Raises CopyError for an entry this engine refuses (before
        anything is spent), else CopyFailed: deferred by the budget, or a failure."""
        if request.tag.startswith("sha256:"):
            raise CopyError(
                "a digest pinned with no tag needs --engine registry: the Docker engine"
                " re-compresses layers, so the digest would not be the one pinned"
            )
        platform = entry_platform(request.platforms, self.platform)
        index = _is_index(request.source)
        source_ref = f"{self._source_host}/{request.source_repository}@{request.source.digest}"
        repository = f"{self.target.host}/{request.target_repository}"
        marker = marker_tag(request.source.digest, platform if index else None)
        outcome = CopyOutcome()
        try:
            with self._local.hold(source_ref) as made:
                image = self._local_copy(source_ref, platform if index else None)
                if image is None:
                    made(source_ref)
                    image = self._pull(request, source_ref, platform if index else None, outcome)
                self._check_platform(request, image, platform)
                digests: list[str | None] = []
                for tag in (marker, request.tag):  # the tag last
                    made(f"{repository}:{tag}")
                    self._tag(image, repository, tag)
                    pushed = self._push(repository, tag, request.label)
                    outcome.bytes += pushed.bytes
                    digests.append(pushed.digest)
            outcome.digest = digests[1] or self._immutable_tag(request, marker)
        except Exception as exc:  # the report shows what a failed copy spent
            raise CopyFailed(outcome, exc) from exc
        return outcome

    def _local_copy(self, source_ref: str, platform: Platform | None) -> Any:
        """The image the engine already holds for this source (and platform of an index):
        it is exactly what a pull would give, so no pull is spent. A reference to another
        platform of the same index is untagged: the engine cannot move a digest reference."""
        image = self._local.find(source_ref)
        if image is None or platform is None or platform.matches(image_platform(image)):
            return image
        log.info(
            "untagging %s in the engine: it names %s, not %s",
            source_ref,
            image_platform(image),
            platform,
        )
        self._local.untag(source_ref)
        return None

    def _pull(
        self, request: CopyRequest, source_ref: str, platform: Platform | None, outcome: CopyOutcome
    ) -> Any:
        """Pull by the digest the plan saw, paying the budget before every attempt (a
        retried pull GETs the manifests again). A failed attempt counts as spent in the
        budget: the engine may have made its GETs before failing."""
        pulls = 2 if platform is not None else 1
        repository, _, digest = source_ref.partition("@")
        action = f"pull {source_ref}" + (f" ({platform})" if platform else "")

        def attempt() -> Any:
            with self.budget.turn(request.position):  # admission in config order
                if not self.budget.take(pulls):
                    raise DeferredError(f"needs {pulls} pulls; the pull budget is spent")
            client = self._engine.client()
            try:
                with ExitStack() as gate:
                    # While the quota is limited, pulls fetch their manifests one at a time
                    # (as the registry engine's GETs do), so a run meets Docker Hub's 429 once;
                    # the gate opens when layers start, which the manifests came before.
                    gate.enter_context(self.budget.gate())

                    def on_line(line: dict[str, Any]) -> None:
                        if "id" in line or str(line.get("status", "")).startswith("Digest:"):
                            gate.close()

                    lines = engine_call(
                        action,
                        lambda: client.api.pull(
                            repository,
                            tag=digest,
                            stream=True,
                            decode=True,
                            platform=str(platform) if platform else None,
                            auth_config=auth_config(self._engine.source_credentials),
                        ),
                    )
                    read_stream(action, lines, on_line)
            except EngineError as exc:
                self.budget.settle(pulls, pulls)  # the engine may have made its GETs
                if is_quota_message(str(exc)):
                    self.budget.exhausted()
                    raise DeferredError(
                        "Docker Hub answered toomanyrequests: the pull quota is spent"
                    ) from None
                raise
            self.budget.settle(pulls, pulls)
            with self._pulled_lock:
                self._pulled += pulls
            return engine_call(f"inspect {source_ref}", lambda: client.images.get(source_ref))

        image = self.retry.call(attempt)
        outcome.pulls += pulls
        return image

    @staticmethod
    def _check_platform(request: CopyRequest, image: Any, platform: Platform) -> None:
        """An entry that names its platform gets that platform or a clear failure."""
        if request.platforms is None:
            return
        found = image_platform(image)
        if not platform.matches(found):
            raise CopyError(f"the source is a single-platform image for {found}, not {platform}")

    def _tag(self, image: Any, repository: str, tag: str) -> None:
        ok = engine_call(f"tag {repository}:{tag}", lambda: image.tag(repository, tag))
        if ok is False:
            raise EngineError(f"tag {repository}:{tag}: the engine refused the tag")

    def _push(self, repository: str, tag: str, label: str) -> _Pushed:
        """Push one tag with fresh ECR credentials; read the whole stream."""
        action = f"push {repository}:{tag}"

        def attempt() -> _Pushed:
            meter = PushMeter(label, self.progress)
            credentials = self._engine.target_credentials.get()
            client = self._engine.client()
            lines = engine_call(
                action,
                lambda: client.api.push(
                    repository,
                    tag=tag,
                    stream=True,
                    decode=True,
                    auth_config=auth_config(credentials),
                ),
            )
            try:
                aux = read_stream(action, lines, meter)
            except EngineError as exc:
                if "tag invalid" in str(exc).lower():  # ECR: an immutable tag exists already
                    return _Pushed(None, meter.bytes)
                raise
            digest = aux.get("Digest")
            if not isinstance(digest, str) or not digest:
                raise EngineError(f"{action}: the engine did not state the pushed digest")
            return _Pushed(digest, meter.bytes)

        pushed: _Pushed = self.retry.call(attempt)
        return pushed

    def _immutable_tag(self, request: CopyRequest, marker: str) -> str:
        """The tag exists and cannot be overwritten: success when it already names the image
        the marker records for this source."""
        repository = request.target_repository
        head = self.retry.call(lambda: self.target.head_manifest(repository, request.tag))
        recorded = self.retry.call(lambda: self.target.head_manifest(repository, marker))
        if head is not None and recorded is not None and head.digest == recorded.digest:
            return head.digest
        raise CopyError(
            f"{self.target.host}/{repository}:{request.tag} is immutable and points at"
            f" {head.digest if head else 'another image'}, not at the copy of"
            f" {request.source.digest}"
        )


# --- the engine, as `mirror.sync` receives it -----------------------------------------------


class DockerEngineFactory:
    """One Docker engine for one sync: its client (connected on first use), the platform
    copied for entries at `all`, and the credentials passed to pulls and pushes. Called as
    an `EngineFactory`, it makes the `DockerEngineCopier` that `mirror.sync.sync` uses."""

    def __init__(
        self,
        *,
        platform: Platform,
        source_credentials: Credentials | None,
        target_credentials: CredentialsProvider,
        keep_local: bool = False,
        client: Any = None,
        connector: Callable[[], Any] = connect,
    ) -> None:
        self.platform = platform
        self.source_credentials = source_credentials
        self.target_credentials = target_credentials
        self.keep_local = keep_local
        self._client = client
        self._connector = connector
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DockerEngineFactory(platform={self.platform}, keep_local={self.keep_local})"

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._connector()
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def up_to_date_check(self, target: RegistryClient, retry: RetryPolicy) -> UpToDate:
        return partial(marker_up_to_date, target, retry, self.platform)

    def __call__(
        self,
        source: RegistryClient,
        target: RegistryClient,
        *,
        concurrency: int,
        budget: PullBudget,
        retry: RetryPolicy,
        progress: Progress | None = None,
    ) -> DockerEngineCopier:
        return DockerEngineCopier(
            source, target, engine=self, budget=budget, retry=retry, progress=progress
        )


def marker_up_to_date(
    target: RegistryClient,
    retry: RetryPolicy,
    engine_platform: Platform,
    target_repository: str,
    tag: str,
    source: ManifestHead,
    platforms: tuple[Platform, ...] | None,
) -> str | None:
    """The tag's digest when it points at the image the marker for `source` names (or at
    the source digest itself: a digest-preserving copy by the registry engine), else None.
    Two HEADs on ECR, free.

    Raises CopyError for an entry this engine refuses, so the plan reports it."""
    platform = entry_platform(platforms, engine_platform)
    head = retry.call(lambda: target.head_manifest(target_repository, tag))
    if head is None:
        return None
    if head.digest == source.digest:
        return head.digest
    marker = marker_tag(source.digest, platform if _is_index(source) else None)
    recorded = retry.call(lambda: target.head_manifest(target_repository, marker))
    return head.digest if recorded is not None and recorded.digest == head.digest else None
