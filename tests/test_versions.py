"""Tag selection: match, semver ranges, latest N, exclude."""

from __future__ import annotations

import pytest

from mirror.config import TagSelector
from mirror.versions import VersionRange, select_tags, tag_version

TAGS = [
    "latest",
    "lts",
    "18.20.4",
    "20.11.0",
    "20.11.1",
    "20.9.0",
    "22.1.0",
    "22.1.0-alpine",
    "22.1.0-slim",
    "22.10.0",
    "v23.0.0",
    "3.12-slim",
    "3.13-slim",
    "3.9-slim",
    "7.4.1",
    "7.4.2",
    "7.4.10",
    "7.2.5",
]


def sel(
    match: str | None = None,
    semver: str | None = None,
    latest: int | None = None,
    exclude: str | None = None,
) -> TagSelector:
    return TagSelector(match=match, semver=semver, latest=latest, exclude=exclude)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (sel(match=r"^7\.4\.\d+$"), ["7.4.10", "7.4.2", "7.4.1"]),
        (sel(match=r"^7\.4\.\d+$", latest=2), ["7.4.10", "7.4.2"]),
        (sel(semver=">=20,<23"), ["22.10.0", "22.1.0", "20.11.1", "20.11.0", "20.9.0"]),
        (sel(semver=">=20,<23", latest=2), ["22.10.0", "22.1.0"]),
        (sel(latest=2), ["v23.0.0", "22.10.0"]),
        (sel(match="-slim$", latest=2), ["22.1.0-slim", "3.13-slim"]),
        (sel(match="-slim$", semver=">=3.10"), ["22.1.0-slim", "3.13-slim", "3.12-slim"]),
        (sel(match="^22", exclude="alpine"), ["22.10.0", "22.1.0", "22.1.0-slim"]),
        (sel(match="^l"), ["latest", "lts"]),
        (sel(semver="~=7.4.0"), ["7.4.10", "7.4.2", "7.4.1"]),
        (sel(semver=">=99"), []),
    ],
)
def test_select_tags(selector: TagSelector, expected: list[str]) -> None:
    assert select_tags(TAGS, selector) == expected


def test_latest_counts_versions_not_tags() -> None:
    """Docker Hub names one release many ways (`22.2`, `22.2.0`): `latest: 2` keeps the two
    newest versions, with every tag of each, not two names of the newest."""
    tags = ["20", "22.1", "22.1.0", "22.2", "22.2.0", "22.2.0-slim"]
    assert select_tags(tags, sel(semver=">=20,<23", latest=2)) == [
        "22.2",
        "22.2.0",
        "22.1",
        "22.1.0",
    ]
    assert select_tags(tags, sel(match="^22", latest=1)) == ["22.2", "22.2.0", "22.2.0-slim"]


def test_tag_version() -> None:
    assert str(tag_version("3.12-slim", plain_only=False)) == "3.12"
    assert tag_version("3.12-slim", plain_only=True) is None
    assert str(tag_version("v2", plain_only=True)) == "2"
    assert tag_version("latest", plain_only=False) is None


def test_invalid_range() -> None:
    with pytest.raises(ValueError, match="invalid version range"):
        VersionRange.parse("newest")
