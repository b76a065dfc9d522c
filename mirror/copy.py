"""The registry-to-registry copy engine: digest-preserving, multi-platform, streaming.

One image is copied in named steps, in an order that keeps the target consistent whatever
moment the process dies at:
  1. GET the source manifest by the digest the plan saw (one Docker Hub pull);
  2. for an index: choose the children (all, or the configured platforms and their
     attestations); children already in the target cost nothing; the others are fetched;
  3. every blob a manifest names is put in the target (HEAD, else mount from another target
     repository, else stream source GET into one target PUT), before the manifest;
  4. child manifests are PUT by digest, then the top manifest by tag: the tag is written
     last, so it never points at an incomplete image.

Blobs stream through a bounded buffer (one chunk, held back until the digest is checked, so
a wrong or short body is never committed) and are shared: a blob that several images need is
copied once, then mounted. Pulls are taken from a `PullBudget` before each manifest GET.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Protocol, Self

from mirror.manifests import (
    SOURCE_DIGEST_ANNOTATION,
    SOURCE_PLATFORMS_ANNOTATION,
    Descriptor,
    Manifest,
    ManifestError,
    chosen_children,
    filtered_index,
    platforms_label,
)
from mirror.reference import Platform
from mirror.registry.client import ManifestHead, RateLimit, RegistryClient
from mirror.registry.errors import BlobIntegrityError, QuotaExhaustedError, RegistryError
from mirror.registry.retry import RetryPolicy

log = logging.getLogger("mirror.copy")
CHUNK = 64 * 1024  # httpx reads at most this much at a time; larger chunks only cost memory


class Progress(Protocol):
    """Told how many bytes an image needs and of bytes as they move, to draw progress."""

    def expect(self, image: str, size: int) -> None: ...

    def advance(self, image: str, size: int) -> None: ...


class NoProgress:
    def expect(self, image: str, size: int) -> None:
        """Nothing to draw."""

    def advance(self, image: str, size: int) -> None:
        """Nothing to draw."""


class DeferredError(Exception):
    """The pull budget cannot pay for this copy now; nothing was written to the target tag."""


class CopyError(Exception):
    """A copy that cannot succeed as configured (e.g. none of the chosen platforms exist)."""


class PullBudget:
    """How many Docker Hub pulls this run may still spend. None: unlimited.

    Thread-safe. `take()` pays from what the plan found available. While the quota is
    limited, manifest GETs also pass the `gate()` one at a time, and each answer restates the
    quota (`spend()`): a GET is not made when Docker Hub's latest word leaves no pull above the
    `reserve`, so pulls spent meanwhile by someone else on the same quota (a parallel shard on
    the same address) do not eat the reserve. `exhausted()` is called on Docker Hub's 429
    TOOMANYREQUESTS: from then on no pull is granted, and as GETs pass the gate one at a time,
    a run meets that answer once.
    """

    def __init__(
        self, available: int | None, *, reserve: int = 0, ratelimit: RateLimit | None = None
    ) -> None:
        self._available = available
        self._reserve = reserve
        self._lock = threading.Lock()
        self._gate = threading.Lock()
        self.quota_hit = False
        self.last_seen: RateLimit | None = ratelimit

    @property
    def available(self) -> int | None:
        return self._available

    def take(self, pulls: int) -> bool:
        with self._lock:
            if self.quota_hit:
                return False
            if self._available is not None:
                if pulls > self._available:
                    return False
                self._available -= pulls
            return True

    def give_back(self, pulls: int) -> None:
        """Return pulls taken for GETs that were not made (or not charged)."""
        with self._lock:
            if self._available is not None:
                self._available += pulls

    def spend(self, ratelimit: RateLimit | None) -> None:
        """One pull taken was spent; `ratelimit`: the quota its answer stated."""
        with self._lock:
            if ratelimit is not None:
                self.last_seen = ratelimit

    def exhausted(self) -> None:
        with self._lock:
            self.quota_hit = True
            self._available = 0
            if self.last_seen is not None:
                self.last_seen = replace(self.last_seen, remaining=0)

    @contextmanager
    def gate(self) -> Iterator[None]:
        """Held around a manifest GET and its `spend()`: one at a time while the quota is
        limited (GETs are small; blobs still move in parallel); none once the quota is spent
        or Docker Hub's latest answer leaves only the reserve."""
        if self._available is None and not self.quota_hit:
            yield
            return
        with self._gate:
            if self.quota_hit:
                raise DeferredError("Docker Hub answered 429: the pull quota is spent")
            seen = self.last_seen
            if seen is not None and seen.remaining <= self._reserve:
                raise DeferredError(
                    f"Docker Hub has {seen.remaining} pulls left, the reserve is {self._reserve}"
                )
            yield


def spent_before_failing(exc: BaseException) -> CopyOutcome:
    """What a copy that raised `exc` had spent (pulls, bytes), when its engine recorded it."""
    outcome = getattr(exc, "mirror_outcome", None)
    return outcome if isinstance(outcome, CopyOutcome) else CopyOutcome()


@dataclass(frozen=True)
class CopyRequest:
    source_repository: str
    tag: str
    target_repository: str
    platforms: tuple[Platform, ...] | None
    source: ManifestHead  # what the plan's HEAD saw: the copy pins this digest

    @property
    def label(self) -> str:
        return f"{self.source_repository}:{self.tag}"


@dataclass
class CopyOutcome:
    digest: str = ""  # what the target tag points at now
    pulls: int = 0
    bytes: int = 0
    blobs_copied: int = 0
    blobs_present: int = 0
    blobs_mounted: int = 0


class CopyEngine(Protocol):
    """What `mirror.sync` needs from an engine: `Copier` (registry to registry) or
    `mirror.engine_docker.DockerEngineCopier` (pull, tag, push through a Docker engine)."""

    source: RegistryClient  # the plan HEADs the source through it
    target: RegistryClient  # and checks the target's repositories
    budget: PullBudget  # replaced by the sync once the plan has read the quota

    def up_to_date(
        self,
        target_repository: str,
        tag: str,
        source: ManifestHead,
        platforms: tuple[Platform, ...] | None,
    ) -> str | None:
        """The digest the ECR tag points at when it already mirrors `source`, else None."""
        ...

    def copy(self, request: CopyRequest) -> CopyOutcome: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class EngineFactory(Protocol):
    """Makes the engine for one sync; `Copier` itself is one."""

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


@dataclass
class _Blob:
    outcome: str  # "copied", "present" or "mounted"
    size: int
    streamed_for: str = ""  # the image whose progress the copied bytes advanced


@dataclass
class _Shared:
    """State shared by every copy of one run: blobs in flight, where blobs already are, and
    the manifests already fetched."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    blobs: dict[tuple[str, str], Future[_Blob]] = field(default_factory=dict)
    present_in: dict[str, str] = field(default_factory=dict)  # digest -> a target repository
    # manifests fetched this run: tags that share a digest (node 20.12, 20.12.2) pull it once
    manifests: dict[tuple[str, str], Manifest] = field(default_factory=dict)


class Copier:
    """Copies images from `source` to `target`; blob work runs on one shared pool."""

    def __init__(
        self,
        source: RegistryClient,
        target: RegistryClient,
        *,
        concurrency: int,
        budget: PullBudget,
        retry: RetryPolicy,
        progress: Progress | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.budget = budget
        self.retry = retry
        self.progress = progress or NoProgress()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="blob")
        self._shared = _Shared()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Copier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- is the target up to date? (HEADs on the source only: no pull) -----------------

    def up_to_date(
        self,
        target_repository: str,
        tag: str,
        source: ManifestHead,
        platforms: tuple[Platform, ...] | None,
    ) -> str | None:
        """The ECR tag's digest when it already mirrors `source` (with the same platform
        filter), else None. HEADs, plus one ECR GET for a filtered index: no Docker Hub pull."""
        head = self.retry.call(lambda: self.target.head_manifest(target_repository, tag))
        if head is None:
            return None
        if head.digest == source.digest:
            return head.digest
        if platforms is None:
            return None
        manifest, _ = self.retry.call(lambda: self.target.get_manifest(target_repository, tag))
        recorded = (
            manifest.annotation(SOURCE_DIGEST_ANNOTATION),
            manifest.annotation(SOURCE_PLATFORMS_ANNOTATION),
        )
        return head.digest if recorded == (source.digest, platforms_label(platforms)) else None

    # --- copying ----------------------------------------------------------------------

    def copy(self, request: CopyRequest) -> CopyOutcome:
        """Copy one tag. Raises DeferredError when the budget cannot pay for it; whatever it
        raises carries what was spent until then (`spent_before_failing`)."""
        outcome = CopyOutcome()
        try:
            top = self._pull(request.source_repository, request.source.digest, outcome)
            if top.is_index:
                written = self._copy_index(request, top, outcome)
            else:
                if request.platforms is not None:
                    self._check_single_platform(request, top)
                self._copy_blobs(request, top, outcome)
                written = top
            self._put_tag(request, written)
        except Exception as exc:
            exc.mirror_outcome = outcome  # type: ignore[attr-defined]
            raise
        outcome.digest = written.digest
        return outcome

    def _pull(
        self, repository: str, digest: str, outcome: CopyOutcome, *, paid: bool = False
    ) -> Manifest:
        """GET a source manifest, paying one pull from the budget first (unless `paid`);
        a manifest this run already fetched costs nothing."""
        key = (repository, digest)
        with self._shared.lock:
            fetched = self._shared.manifests.get(key)
        if fetched is not None:
            if paid:
                self.budget.give_back(1)
            return fetched
        if not paid and not self.budget.take(1):
            raise DeferredError("the pull budget is spent")
        try:
            with self.budget.gate():
                manifest, ratelimit = self.retry.call(
                    lambda: self.source.get_manifest(repository, digest)
                )
                self.budget.spend(ratelimit)  # the next GET through the gate sees its word
        except QuotaExhaustedError:
            self.budget.exhausted()
            raise DeferredError("Docker Hub answered 429: the pull quota is spent") from None
        except BaseException:
            self.budget.give_back(1)
            raise
        outcome.pulls += 1
        with self._shared.lock:
            self._shared.manifests[key] = manifest
        return manifest

    def _copy_index(self, request: CopyRequest, index: Manifest, outcome: CopyOutcome) -> Manifest:
        children = chosen_children(index, request.platforms)
        if request.platforms is not None and not any(not c.is_attestation for c in children):
            offered = sorted(
                {str(c.platform) for c in index.children() if c.platform and not c.is_attestation}
            )
            wanted = platforms_label(request.platforms)
            raise CopyError(
                f"none of the platforms {wanted} is in the source (it has {', '.join(offered)})"
            )
        missing = [c for c in children if not self._target_has_manifest(request, c)]
        if not self.budget.take(len(missing)):  # all of its platforms, or none of them
            raise DeferredError(f"needs {len(missing)} more pulls for its platforms")
        manifests: list[Manifest] = []
        try:
            for descriptor in missing:
                manifests.append(
                    self._pull(request.source_repository, descriptor.digest, outcome, paid=True)
                )
        except BaseException:  # the failed GET gave its pull back; the unmade ones too
            self.budget.give_back(len(missing) - len(manifests) - 1)
            raise
        for child in manifests:
            self._copy_blobs(request, child, outcome)
        for child in manifests:
            self.retry.call(
                partial(self.target.put_manifest, request.target_repository, child.digest, child)
            )
        if request.platforms is None:
            return index
        return filtered_index(index, children, request.platforms)

    def _target_has_manifest(self, request: CopyRequest, child: Descriptor) -> bool:
        head = self.retry.call(
            lambda: self.target.head_manifest(request.target_repository, child.digest)
        )
        return head is not None

    def _check_single_platform(self, request: CopyRequest, manifest: Manifest) -> None:
        config = manifest.blobs()[0]
        with self.source.open_blob(request.source_repository, config.digest) as response:
            body = response.read()
        try:
            document = json.loads(body)
            platform = Platform(
                document.get("os", ""), document.get("architecture", ""), document.get("variant")
            )
        except (ValueError, AttributeError):
            raise ManifestError(f"{request.label}: unreadable image config") from None
        assert request.platforms is not None
        if not any(p.matches(platform) for p in request.platforms):
            wanted = platforms_label(request.platforms)
            raise CopyError(f"the source is a single-platform image for {platform}, not {wanted}")

    def _copy_blobs(self, request: CopyRequest, manifest: Manifest, outcome: CopyOutcome) -> None:
        blobs = manifest.blobs()
        self.progress.expect(request.label, sum(blob.size for blob in blobs))
        futures = [self._blob(request, blob) for blob in blobs]
        for future in futures:
            blob = future.result()
            if blob.streamed_for != request.label:  # skipped, mounted, or another image's copy
                self.progress.advance(request.label, blob.size)
            if blob.outcome == "copied":
                outcome.blobs_copied += 1
                outcome.bytes += blob.size
            elif blob.outcome == "mounted":
                outcome.blobs_mounted += 1
            else:
                outcome.blobs_present += 1

    def _blob(self, request: CopyRequest, blob: Descriptor) -> Future[_Blob]:
        key = (request.target_repository, blob.digest)
        shared = self._shared
        with shared.lock:
            future = shared.blobs.get(key)
            if future is None or (future.done() and future.exception() is not None):
                elsewhere = next(
                    (
                        f
                        for (repo, digest), f in shared.blobs.items()
                        if digest == blob.digest and repo != key[0]
                    ),
                    None,
                )
                future = self._pool.submit(self._place_blob, request, blob, elsewhere)
                shared.blobs[key] = future
            return future

    def _place_blob(
        self, request: CopyRequest, blob: Descriptor, elsewhere: Future[_Blob] | None
    ) -> _Blob:
        if elsewhere is not None:
            try:
                elsewhere.result()  # submitted earlier: running or done, never queued behind us
            except Exception:  # that copy's own caller reports its failure
                log.debug("an earlier copy of %s failed; copying anew", blob.digest)
        return self.retry.call(lambda: self._place_blob_once(request, blob))

    def _place_blob_once(self, request: CopyRequest, blob: Descriptor) -> _Blob:
        target_repository = request.target_repository
        if self.target.blob_exists(target_repository, blob.digest):
            self._remember(blob.digest, target_repository)
            return _Blob("present", blob.size)
        with self._shared.lock:
            mount_from = self._shared.present_in.get(blob.digest)
        if mount_from is not None and mount_from != target_repository:
            upload_url = self.target.mount_blob(target_repository, blob.digest, mount_from)
            if upload_url is None:
                self._remember(blob.digest, target_repository)
                return _Blob("mounted", blob.size)
        else:
            upload_url = self.target.start_upload(target_repository)
        with self.source.open_blob(request.source_repository, blob.digest) as response:
            stated = response.headers.get("content-length")
            if stated is not None and int(stated) != blob.size:
                raise BlobIntegrityError(
                    f"{request.label}: blob {blob.digest} is {stated} bytes at the source,"
                    f" the manifest says {blob.size}",
                    short=False,
                )
            body = verified_stream(response.iter_raw(CHUNK), blob, request.label, self.progress)
            self.target.finish_upload(target_repository, upload_url, blob.digest, blob.size, body)
        self._remember(blob.digest, target_repository)
        return _Blob("copied", blob.size, streamed_for=request.label)

    def _remember(self, digest: str, repository: str) -> None:
        with self._shared.lock:
            self._shared.present_in.setdefault(digest, repository)

    def _put_tag(self, request: CopyRequest, manifest: Manifest) -> None:
        try:
            self.retry.call(
                lambda: self.target.put_manifest(request.target_repository, request.tag, manifest)
            )
        except RegistryError as exc:
            if exc.code != "TAG_INVALID":
                raise
            head = self.target.head_manifest(request.target_repository, request.tag)
            if head is None or head.digest != manifest.digest:
                raise CopyError(
                    f"{self.target.host}/{request.target_repository}:{request.tag} is immutable and"
                    f" points at {head.digest if head else 'another image'}, not {manifest.digest}"
                ) from None


def verified_stream(
    chunks: Iterator[bytes], blob: Descriptor, label: str, progress: Progress
) -> Iterator[bytes]:
    """Pass chunks through, hashing them; hold the last one back until the digest checks out.

    Raising instead of yielding the last chunk aborts the upload before it is complete, so the
    registry never commits a wrong or short blob.
    """
    hasher = hashlib.sha256()
    seen = 0
    held: bytes | None = None
    for chunk in chunks:
        if not chunk:
            continue
        hasher.update(chunk)
        seen += len(chunk)
        if held is not None:
            yield held
            progress.advance(label, len(held))
        held = chunk
    if seen != blob.size:
        raise BlobIntegrityError(
            f"{label}: blob {blob.digest} ended after {seen} of {blob.size} bytes",
            short=seen < blob.size,
        )
    if "sha256:" + hasher.hexdigest() != blob.digest:
        raise BlobIntegrityError(
            f"{label}: blob {blob.digest} arrived with other bytes", short=False
        )
    if held is not None:
        yield held
        progress.advance(label, len(held))
