"""The registry-to-registry copy engine: digest-preserving, multi-platform, streaming.

One image is copied in named steps, in an order that keeps the target consistent whatever
moment the process dies at:
  1. the source manifest, by the digest the plan saw: from ECR when it holds it already (as
     a manifest, or kept as a blob by an earlier run), else one Docker Hub GET;
  2. for an index: choose the children (all, or the configured platforms and their
     attestations); children already in the target cost nothing; the others are admitted by
     the budget (all or none) and fetched;
  3. every blob a manifest names is put in the target (HEAD, else mount from another target
     repository, else stream source GET into one target PUT), before the manifest;
  4. child manifests are PUT by digest, then the top manifest by tag: the tag is written
     last, so it never points at an incomplete image.

Nothing is done twice in a run: a manifest is fetched from Docker Hub once and PUT to a
repository once, and a blob is copied once and then mounted, whatever number of tags or
entries refer to them (single-flight futures in `_Shared`). Nothing fetched is thrown away:
when the budget stops an index part-way, the children it fetched are written by digest and
the index itself is kept in the repository as a blob, so the next run pays for neither.

Blobs stream through a bounded buffer (one chunk, held back until the digest is checked, so
a wrong or short body is never committed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, Self, TypeVar

import httpx

from mirror.budget import DeferredError, PullBudget, TopInTarget
from mirror.errors import MirrorError
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
from mirror.registry.client import (
    MAX_JSON_BYTES,
    MAX_MANIFEST_BYTES,
    ManifestHead,
    RateLimit,
    RegistryClient,
    content_length,
)
from mirror.registry.errors import (
    BlobIntegrityError,
    QuotaExhaustedError,
    RegistryError,
    read_capped,
)
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


class CopyError(Exception):
    """A copy that cannot succeed as configured (e.g. none of the chosen platforms exist)."""


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

    def manifests_fetched(self) -> int:
        """Distinct manifests fetched from Docker Hub so far: the least pulls the run's work
        could have cost."""
        ...

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
    by: str = ""  # the image whose copy placed it (its bytes and counts are that copy's)


K = TypeVar("K")
V = TypeVar("V")


@dataclass
class _Shared:
    """State shared by every copy of one run: what is in flight or done, so that nothing
    is fetched, copied or written twice."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    blobs: dict[tuple[str, str], Future[_Blob]] = field(default_factory=dict)
    present_in: dict[str, str] = field(default_factory=dict)  # digest -> a target repository
    fetched: dict[str, Future[Manifest]] = field(default_factory=dict)  # from Docker Hub
    written: dict[tuple[str, str], Future[None]] = field(default_factory=dict)  # PUT by digest
    hub_fetches: int = 0  # distinct manifests fetched from Docker Hub

    def claim(self, table: dict[K, Future[V]], key: K) -> tuple[Future[V], bool]:
        """The future for `key`, and whether the caller must fulfil it (nobody has, or the
        last attempt failed)."""
        with self.lock:
            return self.claim_locked(table, key)

    @staticmethod
    def claim_locked(table: dict[K, Future[V]], key: K) -> tuple[Future[V], bool]:
        """`claim`, with `lock` held by the caller."""
        future = table.get(key)
        if future is None or (future.done() and future.exception() is not None):
            future = table[key] = Future()
            return future, True
        return future, False

    def unclaimed(self, table: dict[K, Future[V]], key: K) -> bool:
        """Whether `claim_locked` would make the caller fulfil `key` (`lock` held)."""
        future = table.get(key)
        return future is None or (future.done() and future.exception() is not None)


def _fulfil(future: Future[V], work: Callable[[], V]) -> V:
    try:
        value = work()
    except BaseException as exc:
        future.set_exception(exc)
        raise
    future.set_result(value)
    return value


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

    def manifests_fetched(self) -> int:
        with self._shared.lock:
            return self._shared.hub_fetches

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
            with self.budget.turn(request.position):  # admission, in config order
                top = self._top_manifest(request, outcome)
                admitted = self._admit_children(request, top) if top.is_index else []
            if top.is_index:
                written = self._copy_index(request, top, admitted, outcome)
            else:
                if request.platforms is not None:
                    self._check_single_platform(request, top)
                self._copy_blobs(request, top, outcome)
                written = top
            write_tag(self.target, self.retry, request.target_repository, request.tag, written)
        except Exception as exc:
            exc.mirror_outcome = outcome  # type: ignore[attr-defined]
            raise
        outcome.digest, outcome.manifest = written.digest, written
        return outcome

    def _top_manifest(self, request: CopyRequest, outcome: CopyOutcome) -> Manifest:
        """The source manifest: from ECR when the plan found it there, else from Docker Hub."""
        digest = request.source.digest
        if request.top_in_target == "manifest":
            manifest, _ = self.retry.call(
                lambda: self.target.get_manifest(request.target_repository, digest)
            )
            return manifest
        if request.top_in_target == "kept":
            kept = self._read_kept(request)
            if kept is not None:
                return kept
        if not self.budget.take(1):
            raise DeferredError("needs 1 more pull; the pull budget is spent")
        future, mine = self._shared.claim(self._shared.fetched, digest)
        if not mine:  # another copy fetches it (another repository's): the pull goes back
            self.budget.settle(1, 0)
            return future.result()
        fetch = partial(self._get_from_hub, request.source_repository, digest, outcome)
        return _fulfil(future, fetch)

    def _get_from_hub(self, repository: str, digest: str, outcome: CopyOutcome) -> Manifest:
        """One Docker Hub GET, for which the caller has taken a pull from the budget."""
        charges = 0

        def charged() -> None:
            nonlocal charges
            charges += 1

        ratelimit: RateLimit | None = None
        try:
            with self.budget.gate():
                manifest, ratelimit = self.retry.call(
                    lambda: self.source.get_manifest(repository, digest, charged=charged)
                )
        except QuotaExhaustedError:
            self.budget.exhausted()
            raise DeferredError("Docker Hub answered 429: the pull quota is spent") from None
        finally:
            self.budget.settle(1, charges, ratelimit)  # the next GET through the gate sees it
            outcome.pulls += charges
        with self._shared.lock:
            self._shared.hub_fetches += 1
        return manifest

    def _admit_children(
        self, request: CopyRequest, index: Manifest
    ) -> list[tuple[Descriptor, Future[Manifest], bool]]:
        """The children still to fetch: those ECR lacks, each with its fetch claim and
        whether the claim is this copy's (then its pull is paid here; other claims are some
        other copy's fetch of the same manifest, waited for). All are paid, or none and the
        copy is deferred, the index kept in ECR for the next run."""
        children = chosen_children(index, request.platforms)
        if request.platforms is not None and not any(not c.is_attestation for c in children):
            offered = sorted(
                {str(c.platform) for c in index.children() if c.platform and not c.is_attestation}
            )
            wanted = platforms_label(request.platforms)
            raise CopyError(
                f"none of the platforms {wanted} is in the source (it has {', '.join(offered)})"
            )
        absent = [c for c in children if not self._target_has_manifest(request, c)]
        shared = self._shared
        with shared.lock:  # what to pay for, and the claims, in one step: no copy pays twice
            to_pay = {c.digest for c in absent if shared.unclaimed(shared.fetched, c.digest)}
            admitted = self.budget.take(len(to_pay))
            claims = [
                (c, *shared.claim_locked(shared.fetched, c.digest)) for c in absent if admitted
            ]
        if not admitted:
            left = self.budget.available
            self._keep(request, index)
            raise DeferredError(
                f"needs {len(to_pay)} more pulls for its platform manifests;"
                f" the pull budget has {left} left"
            )
        return claims

    def _copy_index(
        self,
        request: CopyRequest,
        index: Manifest,
        admitted: list[tuple[Descriptor, Future[Manifest], bool]],
        outcome: CopyOutcome,
    ) -> Manifest:
        manifests: list[Manifest] = []
        try:
            repository = request.source_repository
            for done, (descriptor, future, mine) in enumerate(admitted):
                try:
                    if mine:
                        fetch = partial(self._get_from_hub, repository, descriptor.digest, outcome)
                        manifests.append(_fulfil(future, fetch))
                    else:
                        manifests.append(future.result())
                except BaseException:  # the failed fetch settled its pull; the unmade go back
                    unmade = admitted[done + 1 :]
                    for _, other, ours in unmade:
                        if ours:  # a copy waiting for it learns it will not come
                            other.set_exception(DeferredError("not fetched: a fetch before failed"))
                    self.budget.settle(sum(ours for _, _, ours in unmade), 0)
                    raise
        except DeferredError:  # the quota ran out part-way: keep what was fetched
            self._write_children(request, manifests, outcome)
            self._keep(request, index)
            raise
        self._write_children(request, manifests, outcome)
        if request.platforms is None:
            return index
        return filtered_index(index, chosen_children(index, request.platforms), request.platforms)

    def _write_children(
        self, request: CopyRequest, manifests: list[Manifest], outcome: CopyOutcome
    ) -> None:
        """Each child's blobs, then the child by digest (once per repository and run)."""
        for child in manifests:
            self._copy_blobs(request, child, outcome)
        for child in manifests:
            future, mine = self._shared.claim(
                self._shared.written, (request.target_repository, child.digest)
            )
            if not mine:
                future.result()
                continue
            _fulfil(
                future,
                partial(
                    self.retry.call,
                    partial(
                        self.target.put_manifest, request.target_repository, child.digest, child
                    ),
                ),
            )

    def _keep(self, request: CopyRequest, index: Manifest) -> None:
        """Keep a fetched index in the target repository as a blob, so that the next run
        reads it from there instead of paying a pull for it again. Best effort: a registry
        that refuses or drops it only costs that pull again."""
        repository = request.target_repository

        def upload() -> None:
            if self.target.blob_exists(repository, index.digest):
                return
            url = self.target.start_upload(repository)
            self.target.finish_upload(repository, url, index.digest, len(index.raw), [index.raw])

        try:
            self.retry.call(upload)
        except (RegistryError, httpx.HTTPError) as exc:
            log.warning("%s: could not keep the index for the next run: %s", request.label, exc)

    def _read_kept(self, request: CopyRequest) -> Manifest | None:
        """The index an earlier run kept as a blob, if it is there and has the right bytes."""
        digest = request.source.digest
        try:
            with self.target.open_blob(request.target_repository, digest) as response:
                raw = read_capped(response, MAX_MANIFEST_BYTES, "kept index")
            manifest = Manifest.from_bytes(raw, request.source.media_type)
        except (MirrorError, ManifestError, httpx.HTTPError) as exc:
            log.info("%s: the kept index is unreadable (%s): fetching it", request.label, exc)
            return None
        if manifest.digest != digest:
            log.info("%s: the kept index has other bytes: fetching it", request.label)
            return None
        with self._shared.lock:  # other copies of this digest read it from here too
            self._shared.fetched.setdefault(digest, _done(manifest))
        return manifest

    def _target_has_manifest(self, request: CopyRequest, child: Descriptor) -> bool:
        head = self.retry.call(
            lambda: self.target.head_manifest(request.target_repository, child.digest)
        )
        return head is not None

    def _check_single_platform(self, request: CopyRequest, manifest: Manifest) -> None:
        config = manifest.blobs()[0]
        with self.source.open_blob(request.source_repository, config.digest) as response:
            body = read_capped(response, MAX_JSON_BYTES, "image config")
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
            mine = blob.by == request.label
            if blob.outcome != "copied" or not mine:  # streamed bytes advanced the bar already
                self.progress.advance(request.label, blob.size)
            if mine and blob.outcome == "copied":
                outcome.blobs_copied += 1
                outcome.bytes += blob.size
            elif mine and blob.outcome == "mounted":
                outcome.blobs_mounted += 1
            else:  # there already, or placed by another image's copy
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
            return _Blob("present", blob.size, request.label)
        with self._shared.lock:
            mount_from = self._shared.present_in.get(blob.digest)
        if mount_from is not None and mount_from != target_repository:
            upload_url = self.target.mount_blob(target_repository, blob.digest, mount_from)
            if upload_url is None:
                self._remember(blob.digest, target_repository)
                return _Blob("mounted", blob.size, request.label)
        else:
            upload_url = self.target.start_upload(target_repository)
        with self.source.open_blob(request.source_repository, blob.digest) as response:
            stated = content_length(response)
            if stated is not None and stated != blob.size:
                raise BlobIntegrityError(
                    f"{request.label}: blob {blob.digest} is {stated} bytes at the source,"
                    f" the manifest says {blob.size}",
                    short=False,
                )
            body = verified_stream(response.iter_raw(CHUNK), blob, request.label, self.progress)
            self.target.finish_upload(target_repository, upload_url, blob.digest, blob.size, body)
        self._remember(blob.digest, target_repository)
        return _Blob("copied", blob.size, request.label)

    def _remember(self, digest: str, repository: str) -> None:
        with self._shared.lock:
            self._shared.present_in.setdefault(digest, repository)


def _done(value: V) -> Future[V]:
    future: Future[V] = Future()
    future.set_result(value)
    return future


def write_tag(
    target: RegistryClient, retry: RetryPolicy, repository: str, tag: str, manifest: Manifest
) -> None:
    """PUT `manifest` under `tag`. An immutable tag that names this manifest already is
    success; one that names another is a clear failure (ECR answers TAG_INVALID for both)."""
    try:
        retry.call(lambda: target.put_manifest(repository, tag, manifest))
    except RegistryError as exc:
        if exc.code != "TAG_INVALID":
            raise
        head = target.head_manifest(repository, tag)
        if head is None or head.digest != manifest.digest:
            raise CopyError(
                f"{target.host}/{repository}:{tag} is immutable and points at"
                f" {head.digest if head else 'another image'}, not {manifest.digest}"
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
