"""Digest pins and backup tags: the names a mirror keeps over time (pure).

A `tags:` list entry is a tag (`3.12-slim`), a tag pinned to a digest
(`3.12-slim@sha256:...`: that digest is mirrored under that tag), or a bare digest
(`sha256:...`: mirrored with no tag, for `repo@sha256:...` pulls). A backup tag keeps the
image a tag pointed at before the tool re-pointed it: `<tag>--prev-<YYYYMMDD-HHMMSS>` (UTC,
so that backups of one tag sort by time as text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from mirror.reference import validate_digest, validate_tag

BACKUP_MARK = "--prev-"
_STAMP = "%Y%m%d-%H%M%S"
_STAMP_LENGTH = len("20261202-050312")
# what of the tag a backup name keeps, so that the name stays a tag (at most 128 characters)
_TAG_ROOM = 128 - len(BACKUP_MARK) - _STAMP_LENGTH
_BACKUP_RE = re.compile(rf"^(.+){re.escape(BACKUP_MARK)}(\d{{8}}-\d{{6}})$")


@dataclass(frozen=True)
class Pin:
    """A digest to mirror, under `tag`, or under no tag (`tag` None)."""

    digest: str
    tag: str | None = None

    @property
    def reference(self) -> str:
        """What the target is written under: the tag, else the digest itself."""
        return self.tag or self.digest

    def __str__(self) -> str:
        return f"{self.tag}@{self.digest}" if self.tag else self.digest


def parse_tag_entry(text: str) -> str | Pin:
    """A `tags:` list entry: a tag, or a Pin. Raises InvalidReference (a ValueError)."""
    if text.startswith("sha256:"):
        return Pin(validate_digest(text))
    if "@" in text:
        tag, _, digest = text.partition("@")
        return Pin(validate_digest(digest), validate_tag(tag))
    return validate_tag(text)


def backup_tag(tag: str, when: datetime) -> str:
    """The backup name of `tag`'s previous image, re-pointed at `when`."""
    return f"{tag[:_TAG_ROOM]}{BACKUP_MARK}{when.astimezone(UTC).strftime(_STAMP)}"


def backup_of(tag: str) -> str | None:
    """The (possibly shortened) tag a backup name keeps the previous image of, else None."""
    found = _BACKUP_RE.fullmatch(tag)
    return found.group(1) if found else None


def backs_up(backup: str, tag: str) -> bool:
    """Is `backup` a backup name of `tag`?"""
    return backup_of(backup) == tag[:_TAG_ROOM]
