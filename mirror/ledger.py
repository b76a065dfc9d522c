"""The ledger of the tags this tool wrote in an ECR repository, and what of them may go (pure).

Pruning must never touch a tag someone pushed by hand, so the tool records what it writes.
The record lives in the repository itself, as a small OCI artifact under the tag
`_mirror-ledger`: an image manifest (config: the OCI empty blob `{}`; no layers) whose
annotation `io.mirror.ledger` holds `{"<tag>": ["<digest>", "<written, ISO 8601 UTC>"]}`.
Why there: it needs no other store or permission (S3, DynamoDB, SSM), travels with the
repository, is read and written with the registry calls a sync makes anyway (free on ECR),
and a manifest's annotations cannot change the digests of the mirrored images (annotating
the images themselves would). A tag is the tool's only while it still points at the digest
recorded: a tag someone re-pushed by hand is not a candidate any more.

`prune_candidates` decides, from the ledger, ECR's tags and the entry's selection, which tags
go: those the entry no longer selects (with `prune`, less the `keep` newest and those younger
than `keep_days`), and backups of a tag beyond its `keep_previous` newest.

The registry API has no compare-and-swap, and the parallel shards of one scheduled job write
the ledgers of the same repositories, so a run does not write back the ledger it read: it
writes its `Change` (the records it sets, those it removes) applied to the ledger as it is
right before the PUT, and the other runs' records stay.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mirror.config import OverTime
from mirror.manifests import OCI_MANIFEST, Manifest, ManifestError, sha256_digest
from mirror.pins import backs_up, backup_of
from mirror.reference import InvalidReference, validate_digest, validate_tag

LEDGER_TAG = "_mirror-ledger"
LEDGER_ANNOTATION = "io.mirror.ledger"
LEDGER_TYPE = "application/vnd.mirror.ledger.v1+json"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB = b"{}"
EMPTY_DIGEST = sha256_digest(EMPTY_BLOB)


@dataclass(frozen=True)
class Written:
    """A tag the tool wrote: the digest it pointed it at, and when."""

    digest: str
    at: datetime


Ledger = dict[str, Written]


def ledger_manifest(ledger: Ledger) -> Manifest:
    """The ledger as the manifest stored under LEDGER_TAG (sorted: the same ledger, the same
    bytes, so an unchanged ledger is never rewritten)."""
    entries = {
        tag: [written.digest, written.at.astimezone(UTC).isoformat(timespec="microseconds")]
        for tag, written in sorted(ledger.items())
    }
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": LEDGER_TYPE,
        "config": {"mediaType": EMPTY_TYPE, "digest": EMPTY_DIGEST, "size": len(EMPTY_BLOB)},
        "layers": [],
        "annotations": {LEDGER_ANNOTATION: json.dumps(entries, separators=(",", ":"))},
    }
    return Manifest.from_bytes(json.dumps(document, separators=(",", ":")).encode(), OCI_MANIFEST)


def read_ledger(manifest: Manifest) -> Ledger:
    """The ledger a manifest holds. A registry is untrusted: a ledger that is not one, or
    names an invalid tag or digest, is a ManifestError (nothing is pruned by it)."""
    text = manifest.annotation(LEDGER_ANNOTATION)
    if text is None:
        raise ManifestError(f"the manifest under {LEDGER_TAG} holds no ledger")
    try:
        entries = json.loads(text)
        if not isinstance(entries, dict):
            raise ValueError("not a mapping")
        return {
            validate_tag(tag): Written(
                validate_digest(digest), datetime.fromisoformat(at).astimezone(UTC)
            )
            for tag, (digest, at) in entries.items()
        }
    except (ValueError, TypeError, InvalidReference) as exc:
        raise ManifestError(f"the ledger under {LEDGER_TAG} is unreadable: {exc}") from None


@dataclass(frozen=True)
class Change:
    """One run's part of a repository's ledger: the records of the tags it wrote (`sets`), and
    the records it removes (`removes`: the tags it deleted, or found gone from ECR, each with the
    record the run read). A removal takes a record only while it is still the one the run read:
    another run that wrote the tag again since keeps its newer record."""

    sets: Ledger
    removes: Ledger

    def applied_to(self, ledger: Ledger) -> Ledger:
        """`ledger` (whoever wrote it) with this run's records set and its removals made."""
        kept = {tag: w for tag, w in ledger.items() if self.removes.get(tag) != w}
        return {**kept, **self.sets}


def owned(ledger: Ledger, present: dict[str, str]) -> Ledger:
    """The ledger's tags that are still the tool's: in ECR, at the digest it wrote."""
    return {tag: w for tag, w in ledger.items() if present.get(tag) == w.digest}


def prune_candidates(
    ledger: Ledger,
    present: dict[str, str],
    selected: frozenset[str],
    rules: OverTime,
    now: datetime,
) -> list[str]:
    """The tags to delete (sorted), of those `ledger` records and ECR (`present`: tag ->
    digest) still has at the recorded digest:

    - a backup of a selected tag beyond that tag's `keep_previous` newest (when it keeps some);
    - with `prune`, every other tag the entry no longer selects (`selected`), but the `keep`
      most recently written of them, and those written less than `keep_days` ago."""
    mine = owned(ledger, present)
    trimmed: list[str] = []
    stale: list[str] = []
    backups: dict[str, list[str]] = {}
    for tag in mine:
        if tag in selected:
            continue
        base = next((s for s in selected if backup_of(tag) and backs_up(tag, s)), None)
        if base is not None and rules.keep_previous > 0:
            backups.setdefault(base, []).append(tag)
        else:
            stale.append(tag)
    for names in backups.values():
        trimmed += sorted(names, reverse=True)[rules.keep_previous :]  # the name sorts by time
    if not rules.prune:
        return sorted(trimmed)
    stale.sort(key=lambda tag: mine[tag].at, reverse=True)
    young = now - timedelta(days=rules.keep_days) if rules.keep_days is not None else None
    going = [
        tag
        for rank, tag in enumerate(stale)
        if rank >= rules.keep and (young is None or mine[tag].at < young)
    ]
    return sorted(trimmed + going)
