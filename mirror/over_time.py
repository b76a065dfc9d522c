"""The mirror over time, in ECR: a moved tag's previous image backed up, the ledger of the
tags this tool wrote kept, and the tags an entry no longer selects pruned.

    back up   (before a tag is re-pointed)  ECR HEAD, GET by digest, PUT `<tag>--prev-<time>`
                                             (a dry run: the HEAD alone -> would-back-up)
    record    (every tag the run writes)     -> this run's part of the ledger
    settle    (after every copy)             the ledger, ECR tag list, HEADs of the candidates
                                             -> pruned | would-prune; when the run changed the
                                             ledger: read it again, PUT the merge, read it back
    delete    (the tags pruning picked)      ECR's BatchDeleteImage, or a registry DELETE

Every request here goes to ECR (free); how a tag is deleted is `mirror.untag`'s choice. The
decisions are pure and live in `mirror.ledger`; why the ledger is kept in the repository, and
how, is said there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from mirror.config import MirroredImage
from mirror.copy import write_tag
from mirror.engine import failure_text
from mirror.errors import MirrorError
from mirror.ledger import (
    EMPTY_BLOB,
    EMPTY_DIGEST,
    LEDGER_TAG,
    Change,
    Ledger,
    Written,
    ledger_manifest,
    prune_candidates,
    read_ledger,
)
from mirror.manifests import ManifestError
from mirror.pins import backup_tag
from mirror.registry.client import RegistryClient
from mirror.registry.errors import RegistryError
from mirror.registry.retry import RetryPolicy
from mirror.untag import Untag

log = logging.getLogger("mirror.sync")

_NAME_TRIES = 10  # backups of one tag stamped in the same second before giving up
_MERGE_TRIES = 3  # ledger writes of one repository that another run's write may undo


@dataclass(frozen=True)
class Backup:
    tag: str  # the backup tag written
    digest: str  # the image it keeps: what the moved tag pointed at


@dataclass(frozen=True)
class Pruned:
    image: MirroredImage
    tag: str
    digest: str
    error: str | None = None  # the deletion failed


class OverTime:
    """One run's backups, ledger and pruning, on the ECR client `target`; tags are deleted
    with `untag` (see `mirror.untag`)."""

    def __init__(
        self,
        target: RegistryClient,
        retry: RetryPolicy,
        untag: Untag,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._target = target
        self._retry = retry
        self._untag = untag
        self._clock = clock
        self._lock = threading.Lock()
        self._written: dict[str, Ledger] = {}  # ECR repository -> tags this run wrote

    def record(self, repository: str, tag: str, digest: str) -> None:
        """The run wrote `tag` at `digest`: the ledger will say so (digests are not tags)."""
        if tag.startswith("sha256:"):
            return
        with self._lock:
            self._written.setdefault(repository, {})[tag] = Written(digest, self._clock())

    def would_back_up(self, repository: str, tag: str) -> Backup | None:
        """The backup `back_up` would make of `tag` now, from one HEAD, writing nothing
        (None: ECR has no such tag, nothing to keep)."""
        head = self._retry.call(lambda: self._target.head_manifest(repository, tag))
        return None if head is None else Backup(backup_tag(tag, self._clock()), head.digest)

    def back_up(self, repository: str, tag: str) -> Backup | None:
        """Before `tag` is re-pointed: tag the image it points at under its backup name
        (None: ECR has no such tag, nothing to keep)."""
        planned = self.would_back_up(repository, tag)
        if planned is None:
            return None
        planned = self._unused_name(repository, tag, planned)
        manifest, _ = self._retry.call(
            lambda: self._target.get_manifest(repository, planned.digest)
        )
        write_tag(self._target, self._retry, repository, planned.tag, manifest)
        self.record(repository, planned.tag, manifest.digest)
        return Backup(planned.tag, manifest.digest)

    def _unused_name(self, repository: str, tag: str, planned: Backup) -> Backup:
        """The backup name is stamped to the second, so a tag re-pointed twice within one
        second would name its second backup as its first and overwrite it: a taken name steps
        the stamp a second on (the names still sort by time), a bounded number of times."""
        when = self._clock()
        for _ in range(_NAME_TRIES):
            if self._digest(repository, planned.tag) in (None, planned.digest):
                return planned
            when += timedelta(seconds=1)
            planned = replace(planned, tag=backup_tag(tag, when))
        raise MirrorError(f"no free backup name for tag {tag!r} after {_NAME_TRIES} tries")

    def settle(
        self,
        images: list[MirroredImage],
        selections: dict[str, frozenset[str]],
        *,
        prune: bool,
        dry_run: bool,
        owns: Callable[[MirroredImage, str], bool],
    ) -> list[Pruned]:
        """After the copies: for each listed entry, delete (or, in a dry run, name) the tags
        `mirror.ledger.prune_candidates` picks among those this run `owns` (its --only and
        --shard part), when `prune` (the run had no failure and nothing deferred); then merge
        this run's records into the ledger of every repository whose record it changed: the
        tags it wrote, deleted, or `owns` and found gone (the other shards' records stay)."""
        gone: list[Pruned] = []
        for image in images:
            repository = image.target_repository
            wants_pruning = prune and image.over_time.keeps_ledger
            if repository not in selections or not (repository in self._written or wants_pruning):
                continue
            try:
                gone += self._settle_one(
                    image, selections[repository], wants_pruning, dry_run, owns
                )
            except Exception as exc:  # that repository's failure, reported on its ledger
                why = f"keeping the ledger: {failure_text(exc)}"
                gone.append(Pruned(image, LEDGER_TAG, "", why))
        return gone

    def _settle_one(
        self,
        image: MirroredImage,
        selected: frozenset[str],
        wants_pruning: bool,
        dry_run: bool,
        owns: Callable[[MirroredImage, str], bool],
    ) -> list[Pruned]:
        repository = image.target_repository
        # the ledger before the tag list: a record read names a tag written before the
        # listing, so a tag the listing lacks was deleted since, not yet to be written
        stored = self._read(repository)
        unreadable = stored is None
        if stored is None:  # unreadable: prune nothing by it, and start it afresh
            stored, wants_pruning = {}, False
        present = set(self._retry.call(lambda: self._target.list_tags(repository)))
        written = self._written.get(repository, {})
        ledger = {tag: w for tag, w in {**stored, **written}.items() if tag in present}
        doomed: list[Pruned] = []
        if wants_pruning:
            heads = {  # the tags that could go are asked for, no others
                tag: self._digest(repository, tag) for tag in ledger if tag not in selected
            }
            digests = {tag: digest for tag, digest in heads.items() if digest}
            candidates = prune_candidates(ledger, digests, selected, image.over_time, self._clock())
            doomed = [Pruned(image, t, ledger[t].digest) for t in candidates if owns(image, t)]
        if dry_run:
            return doomed
        failed = self._untag(repository, [pruned.tag for pruned in doomed]) if doomed else {}
        gone = [
            replace(pruned, error=f"deleting the tag: {failed[pruned.tag]}")
            if pruned.tag in failed
            else pruned
            for pruned in doomed
        ]
        deleted = {pruned.tag for pruned in gone if pruned.error is None}
        change = Change(  # this run decides about the tags it wrote, pruned or owns, no others
            sets={t: w for t, w in written.items() if t in present and t not in deleted},
            removes={
                t: w
                for t, w in stored.items()
                if t in deleted or (t not in present and owns(image, t))
            },
        )
        if unreadable or change.applied_to(stored) != stored:
            self._merge(repository, change)
        return gone

    def _merge(self, repository: str, change: Change) -> None:
        """Write `change` into the ledger as it is right before the PUT (other runs' records
        stay), then read it again: another run's write that landed in between without this
        run's records is merged into once more, a bounded number of times. An unreadable
        ledger is written anew, even by a change that sets and removes nothing."""
        current = self._read(repository, warn=False)
        for _ in range(_MERGE_TRIES):
            merged = change.applied_to(current or {})
            if merged == current:
                return
            self._write(repository, merged)
            current = self._read(repository, warn=False)
        if current is None or change.applied_to(current) != current:
            raise MirrorError(
                f"other runs overwrote the ledger {_MERGE_TRIES} times in a row; "
                "this run's records are not in it"
            )

    def _digest(self, repository: str, tag: str) -> str | None:
        head = self._retry.call(lambda: self._target.head_manifest(repository, tag))
        return head.digest if head else None

    def _read(self, repository: str, *, warn: bool = True) -> Ledger | None:
        """The repository's ledger: empty when it has none, None when it is unreadable (said
        once a run: the merge's own reads do not `warn` again)."""
        try:
            manifest, _ = self._retry.call(
                lambda: self._target.get_manifest(repository, LEDGER_TAG)
            )
            return read_ledger(manifest)
        except RegistryError as exc:
            if exc.status == 404:
                return {}
            raise
        except ManifestError as exc:
            if warn:
                log.warning("%s: %s; it is written anew, nothing is pruned by it", repository, exc)
            return None

    def _write(self, repository: str, ledger: Ledger) -> None:
        """PUT the ledger under its tag, after the empty config blob it names."""
        target = self._target

        def config() -> None:
            if not target.blob_exists(repository, EMPTY_DIGEST):
                url = target.start_upload(repository)
                target.finish_upload(repository, url, EMPTY_DIGEST, len(EMPTY_BLOB), [EMPTY_BLOB])

        self._retry.call(config)
        manifest = ledger_manifest(ledger)
        self._retry.call(lambda: target.put_manifest(repository, LEDGER_TAG, manifest))
