"""The pull economy (issue 9), counted by the Docker Hub front: exact pull counts, no bounds.

The corpus (tests/world/corpus.py) has what makes pulls easy to waste: many tags per digest
(`ruby:3.3` = `3.3.6` = `3` = `latest`), two indexes sharing all their children
(`ruby:3.3` and `ruby:3.3-bookworm`), indexes with attestations, and platform filters.
What a run *must* spend is computed here from the corpus alone: one GET per distinct
manifest per repository, top-level and chosen children.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.runner import Mirror, QuotaThief, actions, pulls, target_repository
from tests.world.corpus import CorpusEntry, ManifestInfo
from tests.world.world import World

HUB_IP = "127.0.0.1"

RUBY = {"image": "ruby", "tags": ["3.3", "3.3.6", "3", "latest", "3.3-bookworm", "bookworm"]}
NODE = {
    "image": "node",
    "tags": ["18", "18.20", "18.20.4", "hydrogen", "20", "20.12", "20.12.2", "iron", "lts"],
}
REDIS = {"image": "bitnami/redis", "tags": ["7.4.1", "7.4.2"], "platforms": ["linux/amd64"]}
PYTHON = {"image": "python", "tags": ["3.12-slim", "3.13-slim"]}
DEBIAN = {"image": "debian", "tags": ["12-slim", "bookworm-slim"]}
ALPINE = {"image": "alpine", "tags": ["3.20", "latest"]}
RUBY_ALL = {**RUBY, "tags": [*RUBY["tags"], "3.2"]}
EVERYTHING = [RUBY_ALL, NODE, REDIS, PYTHON, DEBIAN, ALPINE]


def repository(entry: Mapping[str, Any]) -> str:
    image = str(entry["image"])
    return image if "/" in image else f"library/{image}"


def chosen(manifest: ManifestInfo, entry: CorpusEntry, platforms: Sequence[str] | None) -> bool:
    """Whether an exact copy at `platforms` (None: all) includes this child of `entry`."""
    if platforms is None:
        return True
    kept = {
        m.digest
        for m in entry.manifests
        if not m.is_attestation
        and any(m.platform == p or m.platform.startswith(p + "/") for p in platforms)
    }
    return manifest.digest in kept or manifest.attests in kept


def needed(world: World, entries: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], int]:
    """{(repository, digest): manifests an exact copy of that top-level digest needs}, for
    every distinct top-level manifest of the entries."""
    copies: dict[tuple[str, str], int] = {}
    for config in entries:
        repo = repository(config)
        for tag in config["tags"]:
            entry = world.corpus.get(f"{repo}:{tag}")
            children = [m for m in entry.manifests if chosen(m, entry, config.get("platforms"))]
            copies[(repo, entry.digest)] = 1 + (len(children) if entry.is_index else 0)
    return copies


def distinct_manifests(world: World, entries: Sequence[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """Every (repository, digest) an exact copy must GET once: the least pulls it can cost."""
    manifests: set[tuple[str, str]] = set()
    for config in entries:
        repo = repository(config)
        for tag in config["tags"]:
            entry = world.corpus.get(f"{repo}:{tag}")
            manifests.add((repo, entry.digest))
            if entry.is_index:
                manifests |= {
                    (repo, m.digest)
                    for m in entry.manifests
                    if chosen(m, entry, config.get("platforms"))
                }
    return manifests


def hub_pulls(world: World, manifests: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    return {m: world.hub_front.counters.get("pulls", *m) for m in manifests}


def ecr_has_manifest(world: World, repo: str, reference: str) -> bool:
    response = httpx.head(
        f"{world.ecr_upstream_url}/v2/{target_repository(repo)}/manifests/{reference}",
        auth=world.ecr_auth,
        headers={"Accept": "application/vnd.oci.image.index.v1+json, "
                 "application/vnd.oci.image.manifest.v1+json, "
                 "application/vnd.docker.distribution.manifest.list.v2+json, "
                 "application/vnd.docker.distribution.manifest.v2+json"},
    )  # fmt: skip
    return response.status_code == 200


# --- a quota that covers the need --------------------------------------------------------------


def test_first_sync_spends_one_pull_per_distinct_manifest(mirror: Mirror) -> None:
    world = mirror.world
    mirror.config(EVERYTHING)
    manifests = distinct_manifests(world, EVERYTHING)
    tags = sum(len(e["tags"]) for e in EVERYTHING)
    assert (tags, len(manifests)) == (24, 31)  # the corpus as this test counts on it

    run = mirror.sync()
    assert run.code == 0, run
    report = run.report
    assert set(actions(report).values()) == {"copied"} and len(report["images"]) == tags
    # the minimum, exactly: every needed manifest GET once, nothing else
    assert hub_pulls(world, manifests) == dict.fromkeys(manifests, 1)
    assert pulls(world) == report["totals"]["pulls"] == report["totals"]["minimum_pulls"] == 31
    assert world.hub_front.counters["rate_limited"] == 0
    # each manifest was PUT by digest at most once (children), each tag once
    for repo, digest in manifests:
        assert world.ecr_front.counters.get("manifest_put", target_repository(repo), digest) <= 1
    # the report gives pulls as spent: tags written from another tag's copy spent none
    by_tag = run.by_tag()
    assert [by_tag[f"library/ruby:{t}"]["pulls"] for t in RUBY["tags"]] == [5, 0, 0, 0, 1, 0]
    assert {by_tag[f"library/debian:{t}"]["pulls"] for t in DEBIAN["tags"]} == {0, 1}
    # every tag landed with the source digest (the platform-filtered redis excepted)
    for config in EVERYTHING:
        if "platforms" in config:
            continue
        for tag in config["tags"]:
            entry = world.corpus.get(f"{repository(config)}:{tag}")
            assert by_tag[entry.ref]["digest"] == entry.digest, entry.ref

    again = mirror.sync()
    assert again.code == 0, again
    assert set(actions(again.report).values()) == {"up-to-date"}
    assert again.report["totals"]["pulls"] == 0 and pulls(world) == 31


def test_bytes_are_what_the_run_moved(mirror: Mirror) -> None:
    world = mirror.world
    mirror.config([RUBY])
    run = mirror.sync()
    assert run.code == 0, run
    sizes = {
        descriptor["digest"]: descriptor["size"]
        for entry in (world.corpus.get("library/ruby:3.3"),)
        for manifest in entry.manifests
        for descriptor in _blobs(manifest.raw)
    }
    streamed = sum(
        world.hub_front.counters.get("blob_get", "library/ruby", digest) * size
        for digest, size in sizes.items()
    )
    assert run.report["totals"]["bytes"] == streamed == sum(sizes.values())
    # each blob counts once, for the copy that streamed it (3.3 and 3.3-bookworm copy the
    # same children at the same time: either may); tags written from a copy moved nothing
    by_tag = run.by_tag()
    moved = {tag: by_tag[f"library/ruby:{tag}"]["bytes"] for tag in RUBY["tags"]}
    assert moved["3.3"] + moved["3.3-bookworm"] == streamed
    assert [moved[tag] for tag in ("3.3.6", "3", "latest", "bookworm")] == [0, 0, 0, 0]


def _blobs(raw: bytes) -> list[dict[str, Any]]:
    document = json.loads(raw)
    return [document["config"], *document["layers"]]


# --- a quota short of the need ------------------------------------------------------------------


@pytest.mark.parametrize("budget", [1, 6, 13, 20])
def test_a_short_quota_is_spent_and_the_next_run_wastes_nothing(
    mirror: Mirror, budget: int
) -> None:
    world = mirror.world
    entries = [RUBY_ALL, NODE, REDIS]  # 11 + 6 + 6 = 23 distinct manifests
    reserve = 3
    mirror.config(entries, reserve=reserve)
    manifests = distinct_manifests(world, entries)
    largest = max(needed(world, entries).values())
    assert (len(manifests), largest) == (23, 5)
    world.hub_front.set_remaining(HUB_IP, budget + reserve)

    first = mirror.sync()
    assert first.code == 3, first
    spent = pulls(world)
    assert budget - largest <= spent <= budget
    assert first.report["totals"]["pulls"] == first.report["totals"]["minimum_pulls"] == spent
    assert world.hub_front.remaining(HUB_IP) >= reserve
    assert world.hub_front.counters["rate_limited"] == 0
    assert "deferred" in set(actions(first.report).values())

    world.hub_front.reset_quota()
    second = mirror.sync()
    assert second.code == 0, second
    assert "deferred" not in set(actions(second.report).values())
    # the two runs together spent the minimum: no manifest was fetched twice
    assert spent + second.report["totals"]["pulls"] == pulls(world) == len(manifests)
    assert hub_pulls(world, manifests) == dict.fromkeys(manifests, 1)


@pytest.mark.parametrize(
    ("reserve", "leave", "rate_limited"),
    [
        (2, 3, 0),  # the 3rd GET leaves just the reserve: the next GET is not made
        (0, 0, 1),  # someone else spent the whole quota: Docker Hub answers 429, once
    ],
)
def test_a_quota_that_runs_out_inside_an_index_keeps_what_was_fetched(
    mirror: Mirror, thief: QuotaThief, reserve: int, leave: int, rate_limited: int
) -> None:
    world = mirror.world
    entries = [{"image": "ruby", "tags": ["3.3", "3.3-bookworm", "3.2"]}]
    mirror.config(entries, reserve=reserve)
    manifests = distinct_manifests(world, entries)
    ruby = world.corpus.get("library/ruby:3.3")
    thief.at, thief.leave = 3, leave  # during ruby:3.3's children

    first = mirror.sync("--concurrency", "1")
    assert first.code == 3, first
    assert set(actions(first.report).values()) == {"deferred"}
    assert world.hub_front.counters["rate_limited"] == rate_limited
    spent = pulls(world)
    assert spent == 3 - rate_limited  # the index and the children fetched before the end
    assert first.report["totals"]["pulls"] == spent
    # nothing fetched is thrown away: the fetched children are in ECR by digest, and the
    # index is kept there (it cannot be a manifest before its children are all in)
    fetched = [m for m in ruby.manifests if world.hub_front.counters.get("pulls", *m_key(m))]
    assert len(fetched) == spent - 1
    for manifest in fetched:
        assert ecr_has_manifest(world, "library/ruby", manifest.digest), manifest.platform
    assert not ecr_has_manifest(world, "library/ruby", "3.3")

    world.hub_front.reset_quota()
    second = mirror.sync("--concurrency", "1")
    assert second.code == 0, second
    assert set(actions(second.report).values()) == {"copied"}
    assert spent + second.report["totals"]["pulls"] == pulls(world) == len(manifests) == 11
    assert hub_pulls(world, manifests) == dict.fromkeys(manifests, 1)
    assert world.hub_front.counters["rate_limited"] == rate_limited  # none in the second run


def m_key(manifest: ManifestInfo) -> tuple[str, str]:
    return ("library/ruby", manifest.digest)


# --- the dry run's estimate ---------------------------------------------------------------------


@contextmanager
def moved_ruby_tag(world: World) -> Iterator[CorpusEntry]:
    """`ruby:3.3` on the Docker Hub side re-pointed at the 3.2 index (a new release), and
    put back afterwards."""
    old, new = world.corpus.get("library/ruby:3.3"), world.corpus.get("library/ruby:3.2")

    def point_at(entry: CorpusEntry) -> None:
        response = httpx.put(
            f"{world.hub_upstream_url}/v2/library/ruby/manifests/3.3",
            content=entry.raw,
            headers={"Content-Type": entry.media_type},
        )
        assert response.status_code == 201, response.text

    point_at(new)
    try:
        yield new
    finally:
        point_at(old)


def test_dry_run_guesses_an_index_from_its_previous_copy(mirror: Mirror, world: World) -> None:
    mirror.config([{"image": "ruby", "tags": ["3.3"]}])
    assert mirror.sync().code == 0  # ECR's ruby:3.3 is an index of 4 manifests
    spent = pulls(world)
    with moved_ruby_tag(world):
        dry = mirror.sync("--dry-run")
        assert dry.code == 0, dry
        with_previous = dry.report["images"][0]
        real = mirror.sync()
        assert real.code == 0, real
        assert real.report["totals"]["pulls"] == pulls(world) - spent == 5
    assert (with_previous["action"], with_previous["estimated_pulls"]) == ("would-copy", 5)
    assert with_previous["estimate"] == "guess: the previous copy in ECR holds 4 manifests"
