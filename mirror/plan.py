"""The sync plan: which tags, what each needs, and what the pull budget allows.

Pure data and pure decisions; the I/O that feeds them (tag lists, HEADs) lives in
`mirror.sync`. Keeping the decisions here makes `--dry-run`, `--shard` and the budget rules
testable without a registry.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum

from mirror.budget import Estimate, TopInTarget, estimate
from mirror.config import MirroredImage, Pin
from mirror.errors import ConfigError
from mirror.reference import Platform
from mirror.registry.client import ManifestHead


class Action(StrEnum):
    """What happened (or would happen) to one tag; the values are the report's words."""

    COPIED = "copied"
    UP_TO_DATE = "up-to-date"
    WOULD_COPY = "would-copy"
    DEFERRED = "deferred"
    MISSING = "missing"
    FAILED = "failed"
    # the mirror over time (mirror.over_time): not copies, extra lines of the report
    BACKED_UP = "backed-up"  # a moved tag's previous image, kept under a backup tag
    PRUNED = "pruned"  # a tag the entry no longer selects, deleted
    WOULD_PRUNE = "would-prune"  # dry run
    WOULD_BACK_UP = "would-back-up"  # dry run: the backup a moved tag would get


@dataclass(frozen=True)
class Shard:
    """`K/N`: this job's part of a deterministic partition of the plan."""

    index: int  # 1-based
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            k, n = (int(part) for part in text.split("/"))
        except ValueError:
            raise ConfigError(f"--shard {text!r}: expected K/N, e.g. 1/4") from None
        if not (n >= 1 and 1 <= k <= n):
            raise ConfigError(f"--shard {text!r}: K must be between 1 and N")
        return cls(k, n)

    def owns(self, target_repository: str, tag: str) -> bool:
        """Stable across runs and machines: a hash of the target reference, not of order."""
        key = f"{target_repository}:{tag}".encode()
        return (
            int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % self.count == self.index - 1
        )


def selected(image: MirroredImage, tag: str, patterns: tuple[str, ...]) -> bool:
    """`--only` patterns (shell-style) match the name as written, the source repository,
    or either with `:tag`."""
    if not patterns:
        return True
    names = (image.name, image.repository, f"{image.name}:{tag}", f"{image.repository}:{tag}")
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns for name in names)


def may_select(image: MirroredImage, patterns: tuple[str, ...]) -> bool:
    """Whether `--only` may select some tag of `image` (False: its tags need not be listed,
    and its selector finding nothing is not this run's business).

    A pattern's part before its last `:` must match the name (a tag holds no `:`); a pattern
    without `:` may span `name:tag`, so only its text before the first wildcard must begin
    the name."""
    if not patterns:
        return True
    names = (image.name, image.repository)
    for pattern in patterns:
        head, colon, _ = pattern.rpartition(":")
        if colon:
            if any(fnmatch.fnmatchcase(name, head) for name in names):
                return True
            continue
        literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
        if any(name.startswith(literal) for name in names):
            return True
    return False


@dataclass(frozen=True)
class SyncOptions:
    """What a run is asked to do, and how much at once: `transfers` blobs moving (the
    large requests: bounded), `images` copies, `requests` of the plan's small ones (tag
    lists, HEADs: their time is the registry's distance, so many go at once)."""

    dry_run: bool = False
    only: tuple[str, ...] = ()
    shard: Shard | None = None
    transfers: int = 8
    images: int = 4
    requests: int = 32
    fail_fast: bool = False

    @property
    def connections(self) -> int:
        """The HTTP connections to keep: two per blob stream (source and target) and one
        more for a redirect on the way, one per small request, a few for manifests."""
        return self.transfers * 3 + self.requests + self.images


@dataclass
class PlannedTag:
    """One tag of one image, classified by HEADs alone."""

    image: MirroredImage
    tag: str
    action: Action
    source: ManifestHead | None = None
    error: str | None = None
    target_digest: str | None = None  # set when up to date: what the ECR tag points at
    top_in_target: TopInTarget = None  # where ECR holds the source manifest already
    previous_children: int | None = None  # dry run: manifests of the index the ECR tag names
    same_as: PlannedTag | None = None  # an earlier tag of the same image in the same repository
    estimate: Estimate | None = None  # dry run: what the copy should spend
    pin: Pin | None = None  # a pinned digest: `tag` is its tag, or the digest itself
    note: str | None = None  # what the report says besides (a pinned tag that moved on)

    @property
    def label(self) -> str:
        if self.pin is not None:
            return f"{self.image.repository}@{self.pin.digest}"
        return f"{self.image.repository}:{self.tag}"

    @property
    def platforms(self) -> tuple[Platform, ...] | None:
        """The platforms to copy: a bare pinned digest is copied whole, or it would not be
        that digest."""
        if self.pin is not None and self.pin.tag is None:
            return None
        return self.image.platforms


def group_copies(plan: list[PlannedTag]) -> None:
    """Mark each tag to copy whose source digest an earlier tag (in config order) of the
    same target repository copies already: it is written from that copy, for no pull."""
    first: dict[tuple[str, str, tuple[Platform, ...] | None], PlannedTag] = {}
    for planned in plan:
        if planned.action is not Action.WOULD_COPY or planned.source is None:
            continue
        key = (planned.image.target_repository, planned.source.digest, planned.platforms)
        leader = first.setdefault(key, planned)
        planned.same_as = leader if leader is not planned else None


def forecast(plan: list[PlannedTag], available: int | None) -> None:
    """`--dry-run`: estimate each copy (free facts only) and mark the ones the budget would
    not reach as `deferred`, by the rule a real run admits with (`mirror.budget`): in config
    order, the top-level GET when one pull is left, then the index's children, all or none
    (an index whose children do not fit has spent its GET, and is kept for the next run).
    The estimates can be wrong where they say so; a real run decides by what it learns."""
    left = available
    for planned in plan:
        if planned.action is not Action.WOULD_COPY or planned.source is None:
            continue
        leader = planned.same_as
        if leader is not None:  # config order: its copy was forecast already
            planned.estimate = Estimate(0, "exact", f"written from {leader.label}")
            if leader.action is Action.DEFERRED:
                planned.action, planned.error = Action.DEFERRED, f"same image as {leader.label}"
            continue
        platforms = planned.platforms
        planned.estimate = guess = estimate(
            planned.source.media_type,
            platform_count=None if platforms is None else len(platforms),
            top_in_target=planned.top_in_target,
            previous_children=planned.previous_children,
        )
        if left is None:
            continue
        top = min(guess.pulls, 0 if planned.top_in_target else 1)
        if guess.pulls > left:
            planned.action = Action.DEFERRED
            planned.error = f"needs ~{guess.pulls} pulls ({guess.basis}); the budget has {left}"
            left -= top if top <= left else 0  # the index is fetched and kept, if it can be
        else:
            left -= guess.pulls
