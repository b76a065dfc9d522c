"""The sync plan's pure decisions (mirror/plan.py): shards, --only, grouping, the forecast."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from mirror.budget import Estimate, TopInTarget, estimate
from mirror.config import MirroredImage, TagSelector
from mirror.errors import ConfigError
from mirror.plan import (
    Action,
    PlannedTag,
    Shard,
    forecast,
    group_copies,
    may_select,
    selected,
)
from mirror.reference import parse_platform
from mirror.registry.client import ManifestHead

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def image(name: str, platforms: tuple[str, ...] | None = None) -> MirroredImage:
    repository = name if "/" in name else f"library/{name}"
    return MirroredImage(
        name=name,
        repository=repository,
        target_repository=f"dockerhub/{repository}",
        tags=TagSelector(match=None, semver=None, latest=3, exclude=None),
        platforms=tuple(parse_platform(p) for p in platforms) if platforms else None,
    )


def planned(
    media_type: str | None,
    platforms: tuple[str, ...] | None = None,
    action: Action = Action.WOULD_COPY,
    name: str = "python",
    digest: str = "a",
) -> PlannedTag:
    head = (
        None
        if media_type is None
        else ManifestHead("sha256:" + digest * 64, media_type, 1234, None)
    )
    return PlannedTag(image(name, platforms), "3.12", action, source=head)


# --- Shard --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shard"), [("1/1", Shard(1, 1)), ("2/3", Shard(2, 3)), ("16/16", Shard(16, 16))]
)
def test_shard_parses(text: str, shard: Shard) -> None:
    assert Shard.parse(text) == shard


@pytest.mark.parametrize(
    "text", ["0/3", "4/3", "1/0", "0/0", "-1/3", "3", "1/2/3", "a/b", "1/x", "", "/", "1-3"]
)
def test_shard_refuses_anything_but_k_of_n(text: str) -> None:
    with pytest.raises(ConfigError, match="--shard"):
        Shard.parse(text)


def _keys() -> list[tuple[str, str]]:
    repositories = [f"dockerhub/library/image{i}" for i in range(40)] + ["dockerhub/bitnami/redis"]
    tags = ["latest", "*", "1", "1.2", "1.2.3", "3.12-slim", "22-alpine", "v2", "stable"]
    return list(itertools.product(repositories, tags))


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 16])
def test_shards_partition_every_key_exactly_once_and_evenly(count: int) -> None:
    keys = _keys()
    shards = [Shard(k, count) for k in range(1, count + 1)]
    owners = Counter()
    for repository, tag in keys:
        owning = [s.index for s in shards if s.owns(repository, tag)]
        assert len(owning) == 1, f"{repository}:{tag} owned by {owning}"
        owners[owning[0]] += 1
    expected = len(keys) / count
    assert set(owners) == {s.index for s in shards}
    assert all(0.6 * expected <= n <= 1.4 * expected for n in owners.values()), owners


def test_shard_ownership_is_a_stable_hash_not_an_order() -> None:
    """The same key goes to the same shard on every machine and run (a sha256 of the target
    reference): parallel CI jobs agree without talking to each other."""
    assert Shard(3, 3).owns("dockerhub/library/alpine", "3.19")
    assert Shard(1, 3).owns("dockerhub/library/alpine", "3.20")
    assert Shard(2, 4).owns("dockerhub/library/python", "3.12-slim")
    assert Shard(4, 4).owns("dockerhub/bitnami/redis", "7.4.2")
    # not the order of the plan: the same key in another list is owned the same way
    keys = _keys()
    first = [Shard(2, 5).owns(r, t) for r, t in keys]
    assert [Shard(2, 5).owns(r, t) for r, t in reversed(keys)] == first[::-1]


# --- --only ---------------------------------------------------------------------------------

SELECTED_CASES = [
    # (image name, tag, patterns, selected)
    ("alpine", "3.19", (), True),
    ("alpine", "3.19", ("alpine",), True),
    ("alpine", "3.19", ("library/alpine",), True),
    ("alpine", "3.19", ("alpine:3.19",), True),
    ("alpine", "3.20", ("alpine:3.19",), False),
    ("alpine", "3.19", ("alpine:3.*",), True),
    ("alpine", "3.19", ("library/*:3.19",), True),
    ("alpine", "3.19", ("*:3.19",), True),
    ("alpine", "3.19", ("alp*19",), True),  # a pattern without `:` may span name and tag
    ("alpine", "3.19", ("python", "alpine"), True),
    ("alpine", "3.19", ("python",), False),
    ("alpine", "3.19", ("Alpine",), False),  # case matters, as in registries
    ("alpine", "3.19", ("alpine:3.1",), False),
    ("bitnami/redis", "7.4.2", ("bitnami/*",), True),
    ("bitnami/redis", "7.4.2", ("redis",), False),
    ("bitnami/redis", "7.4.2", ("bitnami/redis:7.4.[12]",), True),
    ("bitnami/redis", "7.4.3", ("bitnami/redis:7.4.[12]",), False),
]


@pytest.mark.parametrize(("name", "tag", "patterns", "expected"), SELECTED_CASES)
def test_selected(name: str, tag: str, patterns: tuple[str, ...], expected: bool) -> None:
    assert selected(image(name), tag, patterns) is expected


@pytest.mark.parametrize(
    ("name", "patterns", "expected"),
    [
        ("alpine", (), True),
        ("alpine", ("alpine",), True),
        ("alpine", ("alpine:3.19",), True),
        ("alpine", ("library/alpine:*",), True),
        ("alpine", ("alp*",), True),
        ("alpine", ("alp*19",), True),
        ("alpine", ("*19",), True),  # may span the colon: cannot rule it out
        ("alpine", ("*:latest",), True),
        ("alpine", ("python",), False),
        ("alpine", ("python:3.12-slim", "node*"), False),
        ("alpine", ("py*19",), False),
        ("alpine", ("alpine-extra",), False),
        ("bitnami/redis", ("bitnami/*",), True),
        ("bitnami/redis", ("bitnami/redis:7.*",), True),
        ("bitnami/redis", ("redis:7.*",), False),
    ],
)
def test_may_select(name: str, patterns: tuple[str, ...], expected: bool) -> None:
    assert may_select(image(name), patterns) is expected


def test_may_select_never_rules_out_an_image_selected_would_keep() -> None:
    """`may_select` is what saves listing the tags of an image: it must never say no to an
    image of which `selected` would keep a tag."""
    names = ["alpine", "python", "bitnami/redis", "node"]
    tags = ["3.19", "3.12-slim", "7.4.2", "latest", "22-alpine", "lts"]
    patterns = [
        "alpine", "alp*", "a*", "*", "*e", "*:latest", "*-slim", "py*slim", "library/*",
        "bitnami/*", "?ode", "node:2?-*", "n*e:lts", "*4.2", "[ab]*", "python:3.1[0-9]-*",
        "*/redis", "redis", "nope", "library/python:*",
    ]  # fmt: skip
    for name, tag, pattern in itertools.product(names, tags, patterns):
        if selected(image(name), tag, (pattern,)):
            assert may_select(image(name), (pattern,)), f"{pattern!r} rules out {name}:{tag}"


# --- the dry run's forecast ---------------------------------------------------------------------


def test_tags_sharing_a_digest_in_a_repository_are_one_copy() -> None:
    first, same, other_digest, other_repo = (
        planned(DOCKER_LIST),
        planned(DOCKER_LIST),
        planned(DOCKER_LIST, digest="b"),
        planned(DOCKER_LIST, name="pypy"),  # the same digest in another repository
    )
    up_to_date = planned(DOCKER_LIST, action=Action.UP_TO_DATE)
    plan = [up_to_date, first, same, other_digest, other_repo]
    group_copies(plan)
    assert [p.same_as for p in plan] == [None, None, first, None, None]


def _plan() -> list[PlannedTag]:
    return [
        planned(DOCKER_MANIFEST, name="alpine"),  # 1
        planned(DOCKER_LIST, action=Action.UP_TO_DATE, name="debian"),  # 0
        planned(OCI_INDEX, ("linux/amd64",), name="bitnami/redis"),  # at most 3
        planned(DOCKER_LIST, name="python"),  # a guess: 3
        planned(DOCKER_LIST, name="python"),  # the same image: 0
        planned(DOCKER_MANIFEST, name="busybox"),  # 1
        planned(DOCKER_LIST, action=Action.MISSING, name="node"),  # 0
    ]


def _actions(plan: list[PlannedTag]) -> list[str]:
    return [p.action.value for p in plan]


def test_forecast_without_a_limit_defers_nothing_and_estimates_everything() -> None:
    plan = _plan()
    before = _actions(plan)
    group_copies(plan)
    forecast(plan, None)
    assert _actions(plan) == before
    assert [p.estimate.pulls if p.estimate else None for p in plan] == [1, None, 3, 3, 0, 1, None]
    assert [p.estimate.basis if p.estimate else None for p in plan] == [
        "exact", None, "at most", "guess", "exact", "exact", None
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("available", "copied"),
    [
        (100, ["alpine", "redis", "python", "python", "busybox"]),
        (8, ["alpine", "redis", "python", "python", "busybox"]),
        (7, ["alpine", "redis", "python", "python"]),
        # python's index takes the last pull, its platforms do not fit: both tags and
        # busybox wait (a real run admits the top-level GET when one pull is left)
        (5, ["alpine", "redis"]),
        (4, ["alpine", "redis"]),
        (3, ["alpine"]),  # redis's index takes 1 of the 2 left, python's the other
        (1, ["alpine"]),
        (0, []),
    ],
)
def test_forecast_keeps_in_config_order_what_fits(available: int, copied: list[str]) -> None:
    plan = _plan()
    group_copies(plan)
    forecast(plan, available)
    kept = [p.image.name.split("/")[-1] for p in plan if p.action is Action.WOULD_COPY]
    assert kept == copied
    estimates = [p.estimate for p in plan if p.action is Action.WOULD_COPY]
    assert sum(e.pulls for e in estimates if e) <= available
    deferred = [p for p in plan if p.action is Action.DEFERRED]
    assert len(deferred) == 5 - len(copied)
    for p in deferred:
        assert p.estimate is not None and p.error is not None
        if p.same_as is None:
            assert f"~{p.estimate.pulls} pulls ({p.estimate.basis})" in p.error
        else:  # a tag written from another's copy goes where that copy goes
            assert p.same_as.action is Action.DEFERRED
            assert p.error == f"same image as {p.same_as.label}"
    # what was not work stays as it was
    assert [p.action for p in plan if p.image.name in ("debian", "node")] == [
        Action.UP_TO_DATE,
        Action.MISSING,
    ]


@pytest.mark.parametrize(
    ("media_type", "platforms", "in_target", "previous", "expected"),
    [
        (DOCKER_MANIFEST, None, None, None, Estimate(1, "exact")),
        (OCI_MANIFEST, 1, None, None, Estimate(1, "exact")),  # one GET, whatever the filter
        (DOCKER_LIST, 1, None, None, Estimate(2, "at most")),
        (DOCKER_LIST, 2, None, None, Estimate(3, "at most")),
        (OCI_INDEX, 1, None, None, Estimate(3, "at most")),  # and the attestation
        (OCI_INDEX, 3, None, None, Estimate(7, "at most")),
        (OCI_INDEX, 3, "kept", None, Estimate(6, "at most", "ECR holds the index already")),
        (
            DOCKER_LIST,
            None,
            "manifest",
            None,
            Estimate(2, "at most", "ECR holds the index already"),
        ),
        (DOCKER_LIST, None, "kept", 5, Estimate(5, "at most", "ECR holds the index already")),
        (DOCKER_MANIFEST, None, "manifest", None, Estimate(0, "exact")),  # the whole image
        (
            OCI_INDEX,
            None,
            None,
            16,
            Estimate(17, "guess", "the previous copy in ECR holds 16 manifests"),
        ),
        (
            DOCKER_LIST,
            None,
            None,
            None,
            Estimate(3, "guess", "assumes 2 platforms: only a GET of the index tells"),
        ),
        (
            OCI_INDEX,
            None,
            None,
            None,
            Estimate(5, "guess", "assumes 2 platforms: only a GET of the index tells"),
        ),
    ],
)
def test_estimate(
    media_type: str,
    platforms: int | None,
    in_target: TopInTarget,
    previous: int | None,
    expected: Estimate,
) -> None:
    assert (
        estimate(
            media_type,
            platform_count=platforms,
            top_in_target=in_target,
            previous_children=previous,
        )
        == expected
    )
