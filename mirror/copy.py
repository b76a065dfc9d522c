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
entries refer to them (`mirror.singleflight`; blobs: `mirror.blobs`). Nothing fetched is
thrown away: when the budget stops an index part-way, the children it fetched are written
by digest and the index itself is kept in the repository as a blob, so the next run pays
for neither.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import Future
from functools import partial

import httpx

from mirror.blobs import BlobTransfer
from mirror.budget import DeferredError, PullBudget
from mirror.engine import (
    CopyError,
    CopyFailed,
    CopyOutcome,
    CopyRequest,
    NoProgress,
    Progress,
    UpToDate,
)
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
)
from mirror.registry.errors import QuotaExhaustedError, RegistryError, read_capped
from mirror.registry.retry import RetryPolicy
from mirror.singleflight import SingleFlight, fulfil

log = logging.getLogger("mirror.copy")


class Copier:
    """Copies images from `source` to `target`; blobs move on `BlobTransfer`'s pool."""

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
        self._source = source
        self._target = target
        self._budget = budget
        self.retry = retry
        self.progress = progress or NoProgress()
        self._blobs = BlobTransfer(
            source, target, concurrency=concurrency, retry=retry, progress=self.progress
        )
        self._fetched: SingleFlight[str, Manifest] = SingleFlight()  # from Docker Hub, by digest
        self._written: SingleFlight[tuple[str, str], None] = SingleFlight()  # PUT by digest
        self._hub_fetches = 0  # distinct manifests fetched from Docker Hub
        self._count_lock = threading.Lock()

    @staticmethod
    def up_to_date_check(target: RegistryClient, retry: RetryPolicy) -> UpToDate:
        """The plan's check for this engine (`EngineFactory`: the class itself is one)."""
        return partial(registry_up_to_date, target, retry)

    def close(self) -> None:
        self._blobs.close()

    def __enter__(self) -> Copier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def manifests_fetched(self) -> int:
        with self._count_lock:
            return self._hub_fetches

    # --- copying ----------------------------------------------------------------------

    def copy(self, request: CopyRequest) -> CopyOutcome:
        """Copy one tag. Raises CopyFailed with what was spent, and why: DeferredError when
        the budget cannot pay for it, else the failure."""
        outcome = CopyOutcome()
        try:
            with self._budget.turn(request.position):  # admission, in config order
                top = self._top_manifest(request, outcome)
                admitted = self._admit_children(request, top) if top.is_index else []
            if top.is_index:
                written = self._copy_index(request, top, admitted, outcome)
            else:
                if request.platforms is not None:
                    self._check_single_platform(request, top)
                self._blobs.copy_blobs(request, [top], outcome)
                written = top
            write_tag(self._target, self.retry, request.target_repository, request.tag, written)
        except Exception as exc:
            raise CopyFailed(outcome, exc) from exc
        outcome.digest, outcome.manifest = written.digest, written
        return outcome

    def _top_manifest(self, request: CopyRequest, outcome: CopyOutcome) -> Manifest:
        """The source manifest: from ECR when the plan found it there, else from Docker Hub."""
        digest = request.source.digest
        if request.top_in_target == "manifest":
            manifest, _ = self.retry.call(
                lambda: self._target.get_manifest(request.target_repository, digest)
            )
            return manifest
        if request.top_in_target == "kept":
            kept = self._read_kept(request)
            if kept is not None:
                return kept
        if not self._budget.take(1):
            raise DeferredError("needs 1 more pull; the pull budget is spent")
        future, mine = self._fetched.claim(digest)
        if not mine:  # another copy fetches it (another repository's): the pull goes back
            self._budget.settle(1, 0)
            return future.result()
        fetch = partial(self._get_from_hub, request.source_repository, digest, outcome)
        return fulfil(future, fetch)

    def _get_from_hub(self, repository: str, digest: str, outcome: CopyOutcome) -> Manifest:
        """One Docker Hub GET, for which the caller has taken a pull from the budget."""
        charges = 0

        def charged() -> None:
            nonlocal charges
            charges += 1

        ratelimit: RateLimit | None = None
        try:
            with self._budget.gate():
                manifest, ratelimit = self.retry.call(
                    lambda: self._source.get_manifest(repository, digest, charged=charged)
                )
        except QuotaExhaustedError:
            self._budget.exhausted()
            raise DeferredError("Docker Hub answered 429: the pull quota is spent") from None
        finally:
            self._budget.settle(1, charges, ratelimit)  # the next GET through the gate sees it
            outcome.pulls += charges
        with self._count_lock:
            self._hub_fetches += 1
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
        to_pay = 0

        def pay(count: int) -> bool:  # called with the table locked: no copy pays twice
            nonlocal to_pay
            to_pay = count
            return self._budget.take(count)

        claims = self._fetched.claim_all((c.digest for c in absent), pay)
        if claims is None:
            left = self._budget.available
            self._keep(request, index)
            raise DeferredError(
                f"needs {to_pay} more pulls for its platform manifests;"
                f" the pull budget has {left} left"
            )
        return [(c, future, mine) for c, (future, mine) in zip(absent, claims, strict=True)]

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
                        manifests.append(fulfil(future, fetch))
                    else:
                        manifests.append(future.result())
                except BaseException:  # the failed fetch settled its pull; the unmade go back
                    unmade = admitted[done + 1 :]
                    for _, other, ours in unmade:
                        if ours:  # a copy waiting for it learns it will not come
                            other.set_exception(DeferredError("not fetched: a fetch before failed"))
                    self._budget.settle(sum(ours for _, _, ours in unmade), 0)
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
        self._blobs.copy_blobs(request, manifests, outcome)
        for child in manifests:
            future, mine = self._written.claim((request.target_repository, child.digest))
            if not mine:
                future.result()
                continue
            fulfil(
                future,
                partial(
                    self.retry.call,
                    partial(
                        self._target.put_manifest, request.target_repository, child.digest, child
                    ),
                ),
            )

    def _keep(self, request: CopyRequest, index: Manifest) -> None:
        """Keep a fetched index in the target repository as a blob, so that the next run
        reads it from there instead of paying a pull for it again. Best effort: a registry
        that refuses or drops it only costs that pull again."""
        repository = request.target_repository

        def upload() -> None:
            if self._target.blob_exists(repository, index.digest):
                return
            url = self._target.start_upload(repository)
            self._target.finish_upload(repository, url, index.digest, len(index.raw), [index.raw])

        try:
            self.retry.call(upload)
        except (RegistryError, httpx.HTTPError) as exc:
            log.warning("%s: could not keep the index for the next run: %s", request.label, exc)

    def _read_kept(self, request: CopyRequest) -> Manifest | None:
        """The index an earlier run kept as a blob, if it is there and has the right bytes."""
        digest = request.source.digest
        try:
            with self._target.open_blob(request.target_repository, digest) as response:
                raw = read_capped(response, MAX_MANIFEST_BYTES, "kept index")
            manifest = Manifest.from_bytes(raw, request.source.media_type)
        except (MirrorError, httpx.HTTPError) as exc:
            log.info("%s: the kept index is unreadable (%s): fetching it", request.label, exc)
            return None
        if manifest.digest != digest:
            log.info("%s: the kept index has other bytes: fetching it", request.label)
            return None
        self._fetched.set(digest, manifest)  # other copies of this digest read it from here too
        return manifest

    def _target_has_manifest(self, request: CopyRequest, child: Descriptor) -> bool:
        head = self.retry.call(
            lambda: self._target.head_manifest(request.target_repository, child.digest)
        )
        return head is not None

    def _check_single_platform(self, request: CopyRequest, manifest: Manifest) -> None:
        config = manifest.blobs()[0]
        with self._source.open_blob(request.source_repository, config.digest) as response:
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


def registry_up_to_date(
    target: RegistryClient,
    retry: RetryPolicy,
    target_repository: str,
    tag: str,
    source: ManifestHead,
    platforms: tuple[Platform, ...] | None,
) -> str | None:
    """The ECR tag's digest when it already mirrors `source` (with the same platform
    filter), else None. HEADs, plus one ECR GET for a filtered index: no Docker Hub pull."""
    head = retry.call(lambda: target.head_manifest(target_repository, tag))
    if head is None:
        return None
    if head.digest == source.digest:
        return head.digest
    if platforms is None:
        return None
    manifest, _ = retry.call(lambda: target.get_manifest(target_repository, tag))
    recorded = (
        manifest.annotation(SOURCE_DIGEST_ANNOTATION),
        manifest.annotation(SOURCE_PLATFORMS_ANNOTATION),
    )
    return head.digest if recorded == (source.digest, platforms_label(platforms)) else None
