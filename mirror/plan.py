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

from mirror.config import MirroredImage
from mirror.errors import ConfigError
from mirror.registry.client import ManifestHead


class Action(StrEnum):
    """What happened (or would happen) to one tag; the values are the report's words."""

    COPIED = "copied"
    UP_TO_DATE = "up-to-date"
    WOULD_COPY = "would-copy"
    DEFERRED = "deferred"
    MISSING = "missing"
    FAILED = "failed"


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


@dataclass
class PlannedTag:
    """One tag of one image, classified by HEADs alone."""

    image: MirroredImage
    tag: str
    action: Action
    source: ManifestHead | None = None
    error: str | None = None
    target_digest: str | None = None  # set when up to date: what the ECR tag points at

    @property
    def estimated_pulls(self) -> int:
        """Manifest GETs a copy will spend: one for the manifest, plus one per platform
        manifest of an index (the configured platforms, else two: the count is only known
        after the GET), and for an OCI index one more per platform for the attestation
        manifest buildkit adds beside each. Children already in the target cost nothing, so
        this is an upper bound for an index whose platforms were mirrored under another tag."""
        if self.action not in (Action.WOULD_COPY, Action.COPIED, Action.DEFERRED):
            return 0
        if self.source is None or not self.source.media_type.endswith(
            ("list.v2+json", "index.v1+json")
        ):
            return 1
        per_platform = 2 if self.source.media_type.endswith("index.v1+json") else 1
        return 1 + per_platform * (len(self.image.platforms) if self.image.platforms else 2)


def admit(plan: list[PlannedTag], available: int | None) -> None:
    """Decide, in config order, which copies the budget pays for: each copy whose estimated
    pulls fit in what is left is kept (`would-copy`), the others become `deferred`. A big
    image that does not fit does not stop a smaller one after it."""
    if available is None:
        return
    left = available
    for planned in plan:
        if planned.action is not Action.WOULD_COPY:
            continue
        needed = planned.estimated_pulls
        if needed <= left:
            left -= needed
        else:
            planned.action = Action.DEFERRED
            planned.error = f"needs ~{needed} pulls; the pull budget has {left} left"


def budget_available(remaining: int | None, reserve: int) -> int | None:
    """Pulls this run may spend: what Docker Hub says is left, less the reserve. None:
    no rate-limit headers, so no limit."""
    if remaining is None:
        return None
    return max(0, remaining - reserve)
