"""Version-like tags and the tag selector (`match:`, `semver:`, `latest:`, `exclude:`).

Pure functions. Docker tags are not semver: `3.12-slim`, `v1.2`, `7.4.1-debian-12-r3` all
occur. A tag's version is its leading dotted number (`3.12-slim` -> 3.12). Without `match:`
only plain version tags (`7.4.1`, `v2`) take part in `semver:` and `latest:`, so that
`latest: 3` does not mix `3.12` with `3.12-alpine`; with `match:` every matching tag with a
leading version does, which is how to pick a variant (`match: '-slim$'`). `latest: N` keeps
every tag of the N highest versions: `22.2` and `22.2.0` are one version.

Ranges use PEP 440 specifier syntax through `packaging` (`>=3.12,<3.14`, `~=7.4`, `==7.*`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

_VERSION_PREFIX = re.compile(r"^v?(\d+(?:\.\d+){0,3})(?=$|[-_+.]?[A-Za-z-_+])")
_PLAIN_VERSION = re.compile(r"^v?\d+(?:\.\d+){0,3}$")


@dataclass(frozen=True)
class VersionRange:
    specifiers: SpecifierSet

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        try:
            return cls(SpecifierSet(text.replace(" ", "")))
        except InvalidSpecifier:
            raise ValueError(
                f"invalid version range {text!r}: write it like '>=3.12,<3.14' or '~=7.4'"
            ) from None

    def __contains__(self, version: Version) -> bool:
        return self.specifiers.contains(version, prereleases=True)


def tag_version(tag: str, *, plain_only: bool) -> Version | None:
    """The version a tag names, or None. `plain_only` refuses suffixes like `-slim`."""
    if plain_only and not _PLAIN_VERSION.match(tag):
        return None
    found = _VERSION_PREFIX.match(tag)
    return Version(found.group(1)) if found else None


class Selector(Protocol):
    @property
    def match(self) -> str | None: ...
    @property
    def semver(self) -> str | None: ...
    @property
    def latest(self) -> int | None: ...
    @property
    def exclude(self) -> str | None: ...


def select_tags(tags: Iterable[str], selector: Selector) -> list[str]:
    """Apply a selector to a source's tag list: newest version first, then by name."""
    candidates = sorted(set(tags))
    if selector.match is not None:
        pattern = re.compile(selector.match)
        candidates = [t for t in candidates if pattern.search(t)]
    if selector.exclude is not None:
        excluded = re.compile(selector.exclude)
        candidates = [t for t in candidates if not excluded.search(t)]
    plain_only = selector.match is None
    versions = {t: tag_version(t, plain_only=plain_only) for t in candidates}
    if selector.semver is not None or selector.latest is not None:
        candidates = [t for t in candidates if versions[t] is not None]
    if selector.semver is not None:
        wanted = VersionRange.parse(selector.semver)
        candidates = [t for t in candidates if (v := versions[t]) is not None and v in wanted]

    # candidates are sorted by name; a stable sort by version keeps `22.1.0` before `22.1.0-slim`
    versioned = sorted(
        (t for t in candidates if versions[t] is not None),
        key=lambda t: versions[t] or Version("0"),
        reverse=True,
    )
    if selector.latest is not None:
        # N versions, not N tags: `22.2` and `22.2.0` name one version (and, on Docker Hub,
        # one image), so both are kept and count once
        newest = sorted({v for t in versioned if (v := versions[t]) is not None}, reverse=True)
        return [t for t in versioned if versions[t] in newest[: selector.latest]]
    return versioned + [t for t in candidates if versions[t] is None]
