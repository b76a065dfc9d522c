"""Parallel shards and the ledger, through the test world: a shard merges its records into the
ledger as it is right before its write and checks them after it, so another shard's write in
between loses nobody's records; `mirror sync --shard K/N` runs share one repository's ledger.

The interleavings are injected (a shard's whole settle run inside another's tag deletion, a
stale ledger PUT right after a shard's own), never raced."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from mirror.config import MirroredImage, parse_config
from mirror.ledger import LEDGER_ANNOTATION, LEDGER_TAG, Ledger, Written, ledger_manifest
from mirror.manifests import Manifest
from mirror.over_time import Backup, OverTime, Pruned
from mirror.pins import backup_tag
from mirror.plan import Shard
from mirror.registry.auth import Credentials, StaticCredentials
from mirror.registry.client import RegistryClient, new_http_client
from mirror.registry.retry import RetryPolicy
from mirror.untag import RegistryUntag, Untag
from tests.runner import Mirror, target_repository
from tests.test_over_time import ecr_tags, entries, push_versions, tag_of
from tests.world.corpus import ImageSpec, LayerSpec, linux, push_corpus
from tests.world.world import World

IMAGE = "overtime/shards"
REPOSITORY = target_repository(IMAGE)
EARLIER = datetime(2026, 12, 1, 4, 0, 0, tzinfo=UTC)
A_CLOCK = datetime(2026, 12, 2, 4, 0, 0, 100, tzinfo=UTC)
B_CLOCK = datetime(2026, 12, 2, 4, 0, 0, 200, tzinfo=UTC)


def owned_by(k: int, count: int, tags: Sequence[str], repository: str = REPOSITORY) -> list[str]:
    return [tag for tag in tags if Shard(k, 2).owns(repository, tag)][:count]


def shard_owns(k: int) -> Callable[[MirroredImage, str], bool]:
    return lambda image, tag: Shard(k, 2).owns(image.target_repository, tag)


def pruning_entry(tags: Sequence[str], keys: str = "prune: true") -> MirroredImage:
    listed = ", ".join(tags)
    text = f"version: 1\nimages:\n  - image: {IMAGE}\n    tags: [{listed}]\n    {keys}\n"
    image = parse_config(text, "f.yaml").images[0]
    assert image.target_repository == REPOSITORY
    return image


def ledger_of(world: World, repository: str) -> Ledger:
    """The ledger in the ECR stand-in, read with plain HTTP (not the code under test)."""
    response = httpx.get(
        f"{world.ecr_upstream_url}/v2/{repository}/manifests/{LEDGER_TAG}",
        auth=world.ecr_auth,
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert response.status_code == 200, response.text
    records = json.loads(response.json()["annotations"][LEDGER_ANNOTATION])
    return {
        tag: Written(digest, datetime.fromisoformat(at)) for tag, (digest, at) in records.items()
    }


class LedgerPuts(RegistryClient):
    """The ECR stand-in, counting this run's ledger PUTs; after each of the first `clobbers`
    of them, another shard's write lands: a PUT of the ledger that shard read before."""

    def __init__(self, world: World, http: httpx.Client, stale: Manifest, clobbers: int) -> None:
        super().__init__(world.ecr_url, StaticCredentials(Credentials(*world.ecr_auth)), http)
        self.stale, self.clobbers, self.puts = stale, clobbers, 0

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> None:
        super().put_manifest(repository, reference, manifest)
        if reference == LEDGER_TAG:
            self.puts += 1
            if self.clobbers > 0:
                self.clobbers -= 1
                super().put_manifest(repository, LEDGER_TAG, self.stale)


class AfterListing(RegistryClient):
    """The ECR stand-in, where `hook` runs once right after this run's tag list is answered."""

    def __init__(self, world: World, http: httpx.Client, hook: Callable[[], None]) -> None:
        super().__init__(world.ecr_url, StaticCredentials(Credentials(*world.ecr_auth)), http)
        self.hook: Callable[[], None] | None = hook

    def list_tags(self, repository: str, page_size: int = 1000) -> list[str]:
        tags = super().list_tags(repository, page_size)
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        return tags


def any_tag(image: MirroredImage, tag: str) -> bool:
    return True


def over_time(target: RegistryClient, clock: datetime) -> OverTime:
    """One run's OverTime on `target`, deleting tags there, at `clock`."""
    return OverTime(
        target, RetryPolicy(), RegistryUntag(target, RetryPolicy()), clock=lambda: clock
    )


@contextmanager
def registry(world: World) -> Iterator[RegistryClient]:
    """The ECR stand-in (its front: the registry API's tag deletion)."""
    with new_http_client(connections=2) as http:
        yield RegistryClient(world.ecr_url, StaticCredentials(Credentials(*world.ecr_auth)), http)


def seed(world: World, tmp_path: Path, tags: Sequence[str]) -> dict[str, str]:
    """One small, distinct image per tag in the ECR repository, and a ledger that records
    them all as the tool's (an earlier run's); {tag: digest}."""
    world.create_repository(REPOSITORY)
    specs = [
        ImageSpec(REPOSITORY, (tag,), "docker", (linux("amd64", LayerSpec(512, seed=tag)),))
        for tag in tags
    ]
    corpus = push_corpus(world.ecr_upstream_url, specs, auth=world.ecr_auth, tmpdir=tmp_path)
    digests = {tag: corpus.get(f"{REPOSITORY}:{tag}").digest for tag in tags}
    with registry(world) as target:
        earlier = over_time(target, EARLIER)
        for tag, digest in digests.items():
            earlier.record(REPOSITORY, tag, digest)
        earlier.settle(
            [pruning_entry(tags)],
            {REPOSITORY: frozenset(tags)},
            prune=False,
            dry_run=False,
            owns=any_tag,
        )
    assert set(ledger_of(world, REPOSITORY)) == set(tags)
    return digests


def test_a_shard_writing_between_another_shards_read_and_write_keeps_its_records(
    fresh_world: World, tmp_path: Path
) -> None:
    """Shard B settles (prunes its old tag, writes its ledger) while shard A is deleting its
    own old tag, after A read the ledger and before A writes it: both shards' records stay."""
    world = fresh_world
    names = [f"v{n}" for n in range(40)]
    old_a, new_a = owned_by(1, 2, names)
    old_b, new_b = owned_by(2, 2, names)
    digests = seed(world, tmp_path, [old_a, new_a, old_b, new_b])
    image = pruning_entry([new_a, new_b])  # old_a and old_b are no longer selected
    selections = {REPOSITORY: frozenset({new_a, new_b})}
    b_ran: list[list[Pruned]] = []
    with registry(world) as target:
        retry = RetryPolicy()
        delete = RegistryUntag(target, retry)
        shard_b = OverTime(target, retry, delete, clock=lambda: B_CLOCK)
        shard_b.record(REPOSITORY, new_b, digests[new_b])

        def b_settles_first(repository: str, tags: Sequence[str]) -> dict[str, str]:
            b_ran.append(
                shard_b.settle([image], selections, prune=True, dry_run=False, owns=shard_owns(2))
            )
            return delete(repository, tags)

        interleaved: Untag = b_settles_first
        shard_a = OverTime(target, retry, interleaved, clock=lambda: A_CLOCK)
        shard_a.record(REPOSITORY, new_a, digests[new_a])
        a_pruned = shard_a.settle(
            [image], selections, prune=True, dry_run=False, owns=shard_owns(1)
        )

    assert [(p.tag, p.error) for p in a_pruned] == [(old_a, None)]
    assert [[(p.tag, p.error) for p in run] for run in b_ran] == [[(old_b, None)]]
    assert ledger_of(world, REPOSITORY) == {
        new_a: Written(digests[new_a], A_CLOCK),
        new_b: Written(digests[new_b], B_CLOCK),
    }
    assert ecr_tags(world, IMAGE) == {new_a, new_b, LEDGER_TAG}


def test_a_tag_another_shard_writes_while_this_one_lists_keeps_its_record(
    fresh_world: World, tmp_path: Path
) -> None:
    """Shard B backs up its moved tag (a backup name shard A owns) and writes the ledger just
    after A's tag list: A read the ledger before listing, so it does not take B's new record
    for one of a tag gone from ECR, and the record stays."""
    world = fresh_world
    bases = [f"y{n}" for n in range(200)]
    base = next(  # B copies it; its backup's name is A's
        tag
        for tag in owned_by(2, 200, bases)
        if Shard(1, 2).owns(REPOSITORY, backup_tag(tag, B_CLOCK))
    )
    backup = backup_tag(base, B_CLOCK)
    digests = seed(world, tmp_path, [base])
    image = pruning_entry([base], "keep_previous: 1")
    selections = {REPOSITORY: frozenset({base})}
    with registry(world) as target:
        shard_b = over_time(target, B_CLOCK)

        def b_backs_up_and_settles() -> None:
            assert shard_b.back_up(REPOSITORY, base) == Backup(backup, digests[base])
            shard_b.settle([image], selections, prune=True, dry_run=False, owns=shard_owns(2))

        with new_http_client(connections=2) as http:
            listing = AfterListing(world, http, b_backs_up_and_settles)
            shard_a = over_time(listing, A_CLOCK)
            shard_a.settle([image], selections, prune=True, dry_run=False, owns=shard_owns(1))
    assert listing.hook is None  # B ran
    assert ledger_of(world, REPOSITORY) == {
        base: Written(digests[base], EARLIER),
        backup: Written(digests[base], B_CLOCK),
    }


def test_each_shard_drops_only_its_own_records_of_tags_gone_from_ecr(
    fresh_world: World, tmp_path: Path
) -> None:
    world = fresh_world
    names = [f"z{n}" for n in range(40)]
    [kept, mine] = owned_by(1, 2, names)
    [theirs] = owned_by(2, 1, names)
    digests = seed(world, tmp_path, [kept, mine, theirs])
    image = pruning_entry([kept], "keep_previous: 1")
    selections = {REPOSITORY: frozenset({kept})}
    with registry(world) as target:
        assert target.delete_tag(REPOSITORY, mine) and target.delete_tag(REPOSITORY, theirs)
        for k, left in ((1, {kept, theirs}), (2, {kept})):
            shard = over_time(target, A_CLOCK if k == 1 else B_CLOCK)
            shard.settle([image], selections, prune=True, dry_run=False, owns=shard_owns(k))
            assert set(ledger_of(world, REPOSITORY)) == left, f"after shard {k}/2"
    assert ledger_of(world, REPOSITORY)[kept] == Written(digests[kept], EARLIER)


def settle_keeping_new(run: OverTime) -> list[Pruned]:
    """`run` settles an entry that selects the tag `new`, with `prune` on."""
    return run.settle(
        [pruning_entry(["new"])],
        {REPOSITORY: frozenset({"new"})},
        prune=True,
        dry_run=False,
        owns=any_tag,
    )


def test_an_unreadable_ledger_is_said_once_prunes_nothing_and_is_written_anew(
    fresh_world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world = fresh_world
    digests = seed(world, tmp_path, ["old", "new"])
    with registry(world) as target:
        image_manifest, _ = target.get_manifest(REPOSITORY, "old")
        target.put_manifest(REPOSITORY, LEDGER_TAG, image_manifest)  # not a ledger
        run = over_time(target, A_CLOCK)
        run.record(REPOSITORY, "new", digests["new"])
        with caplog.at_level(logging.WARNING, logger="mirror.sync"):
            pruned = settle_keeping_new(run)
    assert pruned == []
    assert [r.getMessage() for r in caplog.records if "written anew" in r.getMessage()] == [
        f"{REPOSITORY}: the manifest under {LEDGER_TAG} holds no ledger; "
        "it is written anew, nothing is pruned by it"
    ]
    assert ledger_of(world, REPOSITORY) == {"new": Written(digests["new"], A_CLOCK)}
    assert "old" in ecr_tags(world, IMAGE)


def test_an_unreadable_ledger_is_written_anew_by_a_run_that_wrote_no_tag(
    fresh_world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A nightly run where all is up to date writes no tag: the warning's "written anew"
    holds for it too, so the next run reads a ledger again (and may prune by it)."""
    world = fresh_world
    seed(world, tmp_path, ["old", "new"])
    with registry(world) as target:
        image_manifest, _ = target.get_manifest(REPOSITORY, "old")
        target.put_manifest(REPOSITORY, LEDGER_TAG, image_manifest)  # not a ledger
        for run in (over_time(target, A_CLOCK), over_time(target, B_CLOCK)):
            with caplog.at_level(logging.WARNING, logger="mirror.sync"):
                assert settle_keeping_new(run) == []
    warnings = [r.getMessage() for r in caplog.records if "written anew" in r.getMessage()]
    assert len(warnings) == 1, warnings  # the first run's; the second read a ledger
    assert ledger_of(world, REPOSITORY) == {}
    assert "old" in ecr_tags(world, IMAGE)  # recorded in no ledger: not the tool's to prune


def settle_while_undone(
    world: World, tmp_path: Path, clobbers: int
) -> tuple[list[Pruned], int, Ledger, Ledger, Ledger]:
    """Shard A writes its tag's record, and another shard's stale ledger lands right after
    each of A's first `clobbers` writes: (A's failures, A's ledger PUTs, the ledger then,
    the stale one, A's record)."""
    names = [f"w{n}" for n in range(40)]
    [theirs] = owned_by(2, 1, names)
    [new_a] = owned_by(1, 1, names)
    digests = seed(world, tmp_path, [theirs, new_a])
    stale = {theirs: Written(digests[theirs], B_CLOCK)}  # the other shard re-recorded its tag
    with new_http_client(connections=2) as http:
        target = LedgerPuts(world, http, ledger_manifest(stale), clobbers)
        shard_a = over_time(target, A_CLOCK)
        shard_a.record(REPOSITORY, new_a, digests[new_a])
        failures = shard_a.settle(
            [pruning_entry([theirs, new_a])],
            {REPOSITORY: frozenset({theirs, new_a})},
            prune=True,
            dry_run=False,
            owns=shard_owns(1),
        )
    assert target.clobbers == 0
    mine = {new_a: Written(digests[new_a], A_CLOCK)}
    return failures, target.puts, ledger_of(world, REPOSITORY), stale, mine


@pytest.mark.parametrize(("clobbers", "puts"), [(1, 2), (2, 3)])
def test_a_write_that_undoes_a_shards_records_is_merged_into_again(
    fresh_world: World, tmp_path: Path, clobbers: int, puts: int
) -> None:
    """Another shard's PUT of the ledger it read before lands right after this shard's: the
    read-back misses this shard's record, and it merges into that ledger once more."""
    failures, made, ledger, stale, mine = settle_while_undone(fresh_world, tmp_path, clobbers)
    assert failures == []
    assert made == puts
    assert ledger == stale | mine


def test_a_ledger_undone_after_each_of_three_writes_is_a_failed_entry(
    fresh_world: World, tmp_path: Path
) -> None:
    failures, made, ledger, stale, _ = settle_while_undone(fresh_world, tmp_path, 3)
    assert made == 3
    assert [(f.tag, f.error) for f in failures] == [
        (
            LEDGER_TAG,
            "keeping the ledger: other runs overwrote the ledger 3 times in a row; "
            "this run's records are not in it",
        )
    ]
    assert ledger == stale  # the record is lost, and the run says so


# --- `mirror sync --shard K/N`: the ledger of every shard's tags, pruned by each shard -------


def test_two_shards_record_every_tag_and_each_prunes_its_own(
    mirror: Mirror, tmp_path: Path
) -> None:
    world, image = mirror.world, "overtime/sharded"
    repository = target_repository(image)
    names = [f"2.{n}" for n in range(40)]
    dropped = owned_by(1, 2, names, repository) + owned_by(2, 2, names, repository)
    staying = owned_by(1, 3, names, repository)[2:] + owned_by(2, 3, names, repository)[2:]
    push_versions(world, tmp_path, image, dropped + staying)
    mirror.config([{"image": image, "tags": dropped + staying, "prune": True}])
    for shard in ("1/2", "2/2"):
        run = mirror.sync("--shard", shard)
        assert run.code == 0, run
        assert {e["action"] for e in run.report["images"]} == {"copied"}
    assert set(ledger_of(world, repository)) == set(dropped + staying)

    mirror.config([{"image": image, "tags": staying, "prune": True}], create=False)
    pruned = {}
    for k, shard in ((1, "1/2"), (2, "2/2")):
        run = mirror.sync("--shard", shard)
        assert run.code == 0, run
        pruned[k] = sorted(tag_of(e["target"]) for e in entries(run.report, "pruned"))
    assert pruned == {1: sorted(dropped[:2]), 2: sorted(dropped[2:])}
    assert ecr_tags(world, image) == set(staying) | {LEDGER_TAG}
    assert set(ledger_of(world, repository)) == set(staying)
