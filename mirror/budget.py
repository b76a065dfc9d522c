"""The Docker Hub pull budget: what a run may spend, who may spend it first, and estimates.

Admission is by what is known, when it is known (nothing is reserved on a guess):

    a copy's turn comes (config order: `PullBudget.turn`)
      -> its top-level manifest GET is admitted when one pull is left;
      -> after reading an index, exactly the children still to fetch (chosen platforms and
         their attestations, less those ECR holds or this run already fetched) are admitted,
         all or none: a copy is deferred only when the pulls it still needs are not there;
      -> its turn ends, and the next copy's admission starts while this one's GETs run.
    pulls taken and not spent (a manifest another copy fetched meanwhile) go back at once.

While the quota is limited, every GET also passes `gate()`: one at a time, each reading the
`ratelimit-remaining` of the answer before it, so the reserve holds even when someone else
spends the same quota, and a run meets Docker Hub's 429 at most once.

`estimate()` is the free forecast `--dry-run` shows: exact where the HEADs tell, an upper
bound for an index at chosen platforms, a guess for an index at `platforms: all` (the child
count of the previous copy in ECR when there is one). It decides nothing in a real run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Literal

from mirror.errors import MirrorError
from mirror.manifests import INDEX_TYPES, OCI_INDEX
from mirror.registry.client import RateLimit

# An index at `platforms: all` holds this many platforms when nothing better is known
# (official images hold up to ~8; the shipped config chooses two).
GUESSED_PLATFORMS = 2


class DeferredError(MirrorError):
    """The pull budget cannot pay for this copy now; nothing was written to the target tag."""


def budget_available(remaining: int | None, reserve: int) -> int | None:
    """Pulls this run may spend: what Docker Hub says is left, less the reserve. None:
    no rate-limit headers, so no limit."""
    if remaining is None:
        return None
    return max(0, remaining - reserve)


class PullBudget:
    """How many Docker Hub pulls this run may still spend (None: unlimited). Thread-safe.

    `take(n)` pays n pulls, all or none; `settle()` squares what was taken with what Docker
    Hub charged and stated; `exhausted()` is Docker Hub's 429: no pull is granted after it.
    """

    def __init__(
        self,
        available: int | None,
        *,
        reserve: int = 0,
        ratelimit: RateLimit | None = None,
        order: Iterable[int] = (),
    ) -> None:
        self._available = available
        self._reserve = reserve
        self._held = 0  # taken, and neither spent nor given back yet
        self._lock = threading.Lock()
        self._gate = threading.Lock()
        self._turns = threading.Condition()
        self._waiting = set(order) if available is not None else set()
        self.quota_hit = False
        self.last_seen: RateLimit | None = ratelimit

    @property
    def available(self) -> int | None:
        return self._available

    def take(self, pulls: int) -> bool:
        with self._lock:
            if self.quota_hit and pulls:
                return False
            if self._available is not None:
                if pulls > self._available:
                    return False
                self._available -= pulls
            self._held += pulls
            return True

    def settle(self, taken: int, charged: int, ratelimit: RateLimit | None = None) -> None:
        """Settle `taken` pulls against the `charged` GETs Docker Hub answered (0: the GETs
        were not made, so the pulls go back at once). `ratelimit`: the quota the last answer
        stated; when it leaves less than this run counts (someone else spends the same
        quota), what is left here drops to match."""
        with self._lock:
            self._held -= taken
            if self._available is not None:
                self._available += taken - charged
            if ratelimit is None:
                return
            self.last_seen = ratelimit
            if self._available is not None:
                live = ratelimit.remaining - self._reserve - self._held
                self._available = max(0, min(self._available, live))

    def exhausted(self) -> None:
        with self._lock:
            self.quota_hit = True
            self._available = 0
            if self.last_seen is not None:
                self.last_seen = replace(self.last_seen, remaining=0)

    @contextmanager
    def gate(self) -> Iterator[None]:
        """Held around a manifest GET and its `settle()`: one at a time while the quota is
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

    @contextmanager
    def turn(self, position: int) -> Iterator[None]:
        """Admission in config order: wait until every copy before `position` has had its
        turn (or finished), then admit; `position`'s turn ends on leaving. No wait when the
        quota is unlimited."""
        with self._turns:
            while self._waiting and min(self._waiting) < position:
                self._turns.wait()
        try:
            yield
        finally:
            self.end_turn(position)

    def end_turn(self, position: int) -> None:
        """`position` will not ask for pulls before its turn again (idempotent)."""
        with self._turns:
            self._waiting.discard(position)
            self._turns.notify_all()


# --- the free forecast -------------------------------------------------------------------

Basis = Literal["exact", "at most", "guess"]
# Where ECR already holds a source manifest: as a manifest, or as a blob an earlier run kept
# when the budget stopped it between an index and its children. (A registry may serve such a
# blob as a manifest too: that an index is there never says that its children are.)
TopInTarget = Literal["manifest", "kept"] | None


@dataclass(frozen=True)
class Estimate:
    """Pulls a copy is expected to spend, and how sure that is."""

    pulls: int
    basis: Basis
    note: str = ""  # why, when it is not plain


def estimate(
    media_type: str,
    *,
    platform_count: int | None,
    top_in_target: TopInTarget,
    previous_children: int | None,
) -> Estimate:
    """The pulls a copy of a manifest of `media_type` will spend, from free facts only.

    `platform_count`: the entry's chosen platforms (None: all); `top_in_target`: where ECR
    holds the source manifest already (see `TopInTarget`); `previous_children`: how many
    manifests the index ECR's tag pointed at held.
    """
    top = 0 if top_in_target else 1
    if media_type not in INDEX_TYPES:
        return Estimate(top, "exact")
    per_platform = 2 if media_type == OCI_INDEX else 1  # an attestation beside each platform
    if top_in_target:  # its children may be there too (the copy HEADs each): at most
        count = platform_count or previous_children or GUESSED_PLATFORMS
        return Estimate(top + per_platform * count, "at most", "ECR holds the index already")
    if platform_count is not None:
        return Estimate(top + per_platform * platform_count, "at most")
    if previous_children is not None:
        return Estimate(
            top + previous_children,
            "guess",
            f"the previous copy in ECR holds {previous_children} manifests",
        )
    return Estimate(
        top + per_platform * GUESSED_PLATFORMS,
        "guess",
        f"assumes {GUESSED_PLATFORMS} platforms: only a GET of the index tells",
    )
