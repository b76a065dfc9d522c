"""Blob transfer: every blob a manifest names put in its target repository, once per run.

For each blob, cheapest first: HEAD the target (there already); else mount it from another
target repository this run placed it in (ECR answers 202 when mounting is off: upload
then); else stream a source GET into one target PUT. The stream passes a bounded buffer
(one chunk, held back until the digest is checked), so a wrong or short body is never
committed. Blobs several copies need are placed once: the others wait for that future.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from mirror.engine import CopyOutcome, CopyRequest, Progress
from mirror.manifests import Descriptor, Manifest
from mirror.registry.client import RegistryClient, content_length
from mirror.registry.errors import BlobIntegrityError
from mirror.registry.retry import RetryPolicy

log = logging.getLogger("mirror.copy")
CHUNK = 64 * 1024  # httpx reads at most this much at a time; larger chunks only cost memory


@dataclass
class _Blob:
    outcome: str  # "copied", "present" or "mounted"
    size: int
    by: str = ""  # the image whose copy placed it (its bytes and counts are that copy's)


class BlobTransfer:
    """Places blobs from `source` in `target` on one pool of `concurrency` threads."""

    def __init__(
        self,
        source: RegistryClient,
        target: RegistryClient,
        *,
        concurrency: int,
        retry: RetryPolicy,
        progress: Progress,
    ) -> None:
        self.source = source
        self.target = target
        self.retry = retry
        self.progress = progress
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="blob")
        self._lock = threading.Lock()
        self._blobs: dict[tuple[str, str], Future[_Blob]] = {}
        self._present_in: dict[str, str] = {}  # digest -> a target repository holding it

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def copy_blobs(
        self, request: CopyRequest, manifests: Iterable[Manifest], outcome: CopyOutcome
    ) -> None:
        """Every blob of `manifests` in the target; counted on `outcome` when this copy
        placed it (else it was there, or another copy's). All start at once, the largest
        first, so that a copy does not end waiting on one big layer started last."""
        blobs = {blob.digest: blob for manifest in manifests for blob in manifest.blobs()}
        ordered = sorted(blobs.values(), key=lambda blob: blob.size, reverse=True)
        self.progress.expect(request.label, sum(blob.size for blob in ordered))
        futures = [self._blob(request, blob) for blob in ordered]
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
        with self._lock:
            future = self._blobs.get(key)
            if future is None or (future.done() and future.exception() is not None):
                elsewhere = next(
                    (
                        f
                        for (repo, digest), f in self._blobs.items()
                        if digest == blob.digest and repo != key[0]
                    ),
                    None,
                )
                future = self._pool.submit(self._place, request, blob, elsewhere)
                self._blobs[key] = future
            return future

    def _place(
        self, request: CopyRequest, blob: Descriptor, elsewhere: Future[_Blob] | None
    ) -> _Blob:
        if elsewhere is not None:
            try:
                elsewhere.result()  # submitted earlier: running or done, never queued behind us
            except Exception:  # that copy's own caller reports its failure
                log.debug("an earlier copy of %s failed; copying anew", blob.digest)
        return self.retry.call(lambda: self._place_once(request, blob))

    def _place_once(self, request: CopyRequest, blob: Descriptor) -> _Blob:
        target_repository = request.target_repository
        if self.target.blob_exists(target_repository, blob.digest):
            self._remember(blob.digest, target_repository)
            return _Blob("present", blob.size, request.label)
        with self._lock:
            mount_from = self._present_in.get(blob.digest)
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
        with self._lock:
            self._present_in.setdefault(digest, repository)


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
