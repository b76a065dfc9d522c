"""The ledger of written tags and the pruning decision (pure): which tags may go."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from mirror.config import OverTime
from mirror.ledger import (
    LEDGER_ANNOTATION,
    Change,
    Written,
    ledger_manifest,
    prune_candidates,
    read_ledger,
)
from mirror.manifests import OCI_MANIFEST, Manifest, ManifestError
from mirror.pins import Pin, backs_up, backup_of, backup_tag, parse_tag_entry

NOW = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)
A, B, C = ("sha256:" + c * 64 for c in "abc")


def written(days_ago: float, digest: str = A) -> Written:
    return Written(digest, NOW - timedelta(days=days_ago))


def test_the_ledger_reads_back_what_was_written() -> None:
    ledger = {"3.19": written(1), "3.19--prev-20261201-050000": written(2, B)}
    manifest = ledger_manifest(ledger)
    assert read_ledger(manifest) == ledger
    assert ledger_manifest(dict(reversed(ledger.items()))).digest == manifest.digest


@pytest.mark.parametrize(
    "entries",
    [
        '["not", "a", "mapping"]',
        '{"../x": ["' + A + '", "2026-12-01T00:00:00+00:00"]}',
        '{"ok": ["sha256:short", "2026-12-01T00:00:00+00:00"]}',
        '{"ok": ["' + A + '", "yesterday"]}',
        '{"ok": ["' + A + '"]}',
        "not json",
    ],
)
def test_a_ledger_that_is_not_one_prunes_nothing(entries: str) -> None:
    raw = (
        '{"schemaVersion":2,"mediaType":"' + OCI_MANIFEST + '","config":{},"layers":[],'
        '"annotations":{"' + LEDGER_ANNOTATION + '":' + json.dumps(entries) + "}}"
    ).encode()
    with pytest.raises(ManifestError):
        read_ledger(Manifest.from_bytes(raw, OCI_MANIFEST))


def test_a_change_sets_its_records_and_removes_only_the_records_it_read() -> None:
    read = {"gone": written(3), "pruned": written(2), "rewritten": written(2)}
    change = Change(
        sets={"new": written(0)},
        removes={"gone": written(3), "pruned": written(2), "rewritten": written(2)},
    )
    # meanwhile another run wrote `theirs`, and wrote `rewritten` again
    current = {**read, "theirs": written(1, B), "rewritten": written(1, C)}
    assert change.applied_to(current) == {
        "theirs": written(1, B),
        "rewritten": written(1, C),
        "new": written(0),
    }
    assert change.applied_to(change.applied_to(current)) == change.applied_to(current)
    assert Change({}, {}).applied_to(read) == read


def test_only_the_tools_tags_at_their_recorded_digest_are_candidates() -> None:
    ledger = {
        "old": written(5),
        "moved-by-hand": written(5),
        "gone": written(5),
        "kept": written(5),
    }
    present = {"old": A, "moved-by-hand": B, "kept": A, "hand-made": A}
    rules = OverTime(prune=True)
    assert prune_candidates(ledger, present, frozenset({"kept"}), rules, NOW) == ["old"]
    assert prune_candidates(ledger, present, frozenset(), OverTime(), NOW) == []  # prune off


def test_keep_and_keep_days_keep_the_recent_ones() -> None:
    ledger = {"a": written(1), "b": written(10), "c": written(20), "d": written(30)}
    present = dict.fromkeys(ledger, A)
    nothing = frozenset[str]()
    assert prune_candidates(ledger, present, nothing, OverTime(prune=True, keep=2), NOW) == [
        "c",
        "d",
    ]
    assert prune_candidates(ledger, present, nothing, OverTime(prune=True, keep_days=15), NOW) == [
        "c",
        "d",
    ]
    both = OverTime(prune=True, keep=3, keep_days=5)
    assert prune_candidates(ledger, present, nothing, both, NOW) == ["d"]


def test_backups_beyond_keep_previous_go_even_without_prune() -> None:
    times = [NOW - timedelta(days=d) for d in (1, 2, 3)]
    backups = [backup_tag("3.19", t) for t in times]
    ledger = {b: Written(A, t) for b, t in zip(backups, times, strict=True)}
    ledger["other--prev-20261101-000000"] = written(30)  # a backup of a tag no longer selected
    present = dict.fromkeys(ledger, A)
    selected = frozenset({"3.19"})
    assert prune_candidates(ledger, present, selected, OverTime(keep_previous=2), NOW) == [
        backups[2]
    ]
    # with prune, the backups of a tag no longer selected go too
    pruning = OverTime(prune=True, keep_previous=2)
    assert prune_candidates(ledger, present, selected, pruning, NOW) == sorted(
        [backups[2], "other--prev-20261101-000000"]
    )


def test_backup_names_stay_tags_and_sort_by_time() -> None:
    long = "x" * 128
    name = backup_tag(long, NOW)
    assert len(name) == 128 and backs_up(name, long) and parse_tag_entry(name) == name
    assert backup_of(backup_tag("3.19", NOW)) == "3.19" and backup_of("3.19") is None
    assert backup_tag("1", NOW) < backup_tag("1", NOW + timedelta(seconds=1))


def test_a_tag_entry_is_a_tag_a_pinned_tag_or_a_digest() -> None:
    assert parse_tag_entry("3.19") == "3.19"
    assert parse_tag_entry(f"3.19@{A}") == Pin(A, "3.19")
    assert parse_tag_entry(A) == Pin(A)
    for bad in ("sha256:abc", f"3.19@{A.upper()}", f"@{A}", f"a/b@{A}"):
        with pytest.raises(ValueError):
            parse_tag_entry(bad)
