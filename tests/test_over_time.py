"""The mirror over time, through the test world: digest pins, backups of a moved tag's
previous image (`keep_previous`), pruning what an entry no longer selects (`prune`), the
ledger of the tags the tool wrote, and the bad input of these keys."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from mirror.config import parse_config
from mirror.errors import ConfigError
from mirror.over_time import Backup, OverTime
from mirror.registry.auth import Credentials, StaticCredentials
from mirror.registry.client import RegistryClient, new_http_client
from mirror.registry.retry import RetryPolicy
from mirror.untag import RegistryUntag
from tests.runner import Mirror, pulls, target_repository
from tests.world.corpus import ImageSpec, LayerSpec, linux, push_corpus
from tests.world.dockerd import DockerEngine
from tests.world.world import World

ACCEPT = (
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json"
)


# --- the worlds' two ends, read and written directly ---------------------------------------


def push_versions(
    world: World, tmp_path: Path, repository: str, tags: Sequence[str]
) -> dict[str, str]:
    """Push one small, distinct image per tag to the Docker Hub stand-in; {tag: digest}."""
    specs = [
        ImageSpec(
            repository,
            (tag,),
            "docker",
            (linux("amd64", LayerSpec(2048, seed=f"{repository}:{tag}")),),
            created=f"2026-01-{index + 1:02d}T00:00:00Z",
        )
        for index, tag in enumerate(tags)
    ]
    corpus = push_corpus(world.hub_upstream_url, specs, tmpdir=tmp_path)
    return {tag: corpus.get(f"{repository}:{tag}").digest for tag in tags}


def rebuild(world: World, tmp_path: Path, image: str, tag: str, seed: str) -> str:
    """The source re-points `tag` (a rebuild): a new image under the same tag; its digest."""
    spec = ImageSpec(image, (tag,), "docker", (linux("amd64", LayerSpec(2048, seed=seed)),))
    return push_corpus(world.hub_upstream_url, [spec], tmpdir=tmp_path).get(f"{image}:{tag}").digest


def ecr_tags(world: World, image: str) -> set[str]:
    response = httpx.get(
        f"{world.ecr_upstream_url}/v2/{target_repository(image)}/tags/list", auth=world.ecr_auth
    )
    if response.status_code == 404:  # the registry knows no tag of it (ECR: an empty list)
        return set()
    assert response.status_code == 200, response.text
    return set(response.json()["tags"] or [])


def ecr_digest(world: World, image: str, reference: str) -> str | None:
    response = httpx.head(
        f"{world.ecr_upstream_url}/v2/{target_repository(image)}/manifests/{reference}",
        auth=world.ecr_auth,
        headers={"Accept": ACCEPT},
    )
    return response.headers["docker-content-digest"] if response.status_code == 200 else None


def hand_push(world: World, image: str, tag: str, digest: str) -> None:
    """Someone tags an image in the ECR repository by hand."""
    repository = target_repository(image)
    got = httpx.get(
        f"{world.ecr_upstream_url}/v2/{repository}/manifests/{digest}",
        auth=world.ecr_auth,
        headers={"Accept": ACCEPT},
    )
    put = httpx.put(
        f"{world.ecr_upstream_url}/v2/{repository}/manifests/{tag}",
        auth=world.ecr_auth,
        content=got.content,
        headers={"Content-Type": got.headers["content-type"]},
    )
    assert put.status_code == 201, put.text


def entries(report: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [e for e in report["images"] if e["action"] == action]


def tag_of(reference: str) -> str:
    return reference.rpartition(":")[2]


# --- a tag that moves: the previous image kept --------------------------------------------


def keeping_previous(mirror: Mirror, tmp_path: Path, image: str) -> str:
    """`image:1` at the source, and a config that keeps one previous image of it; its digest."""
    first = push_versions(mirror.world, tmp_path / "a", image, ["1"])["1"]
    mirror.config([{"image": image, "tags": ["1"], "keep_previous": 1}])
    return first


def test_a_moved_source_tag_keeps_its_previous_image_under_a_backup_tag(
    mirror: Mirror, tmp_path: Path
) -> None:
    world, image = mirror.world, "overtime/moves"
    first = keeping_previous(mirror, tmp_path, image)
    run = mirror.sync()
    assert run.code == 0, run
    assert [e["action"] for e in run.report["images"]] == ["copied"]  # nothing to back up yet

    moved = rebuild(world, tmp_path, image, "1", "rebuilt")
    assert moved != first
    run = mirror.sync()
    assert run.code == 0, run
    report = run.report
    assert [e["action"] for e in report["images"]] == ["copied", "backed-up"]
    backup = entries(report, "backed-up")[0]
    assert backup["digest"] == first
    assert backup["source"].endswith(f"{target_repository(image)}:1")
    backup_tag = tag_of(backup["target"])
    assert backup_tag.startswith("1--prev-")
    assert ecr_digest(world, image, "1") == moved
    assert ecr_digest(world, image, backup_tag) == first  # a build can roll back to it
    assert report["totals"]["backed_up"] == 1

    # the third image: a second backup, and keep_previous: 1 prunes the older one
    third = rebuild(world, tmp_path, image, "1", "again")
    run = mirror.sync()
    assert run.code == 0, run
    report = run.report
    assert sorted(e["action"] for e in report["images"]) == ["backed-up", "copied", "pruned"]
    newest = tag_of(entries(report, "backed-up")[0]["target"])
    assert tag_of(entries(report, "pruned")[0]["target"]) == backup_tag
    assert ecr_digest(world, image, newest) == moved
    assert ecr_digest(world, image, "1") == third
    assert ecr_tags(world, image) == {"1", newest, "_mirror-ledger"}

    # nothing moved: nothing written, no backup, no pull
    spent = pulls(world)
    run = mirror.sync()
    assert [e["action"] for e in run.report["images"]] == ["up-to-date"]
    assert pulls(world) == spent


def test_a_tag_moved_twice_within_one_second_keeps_both_previous_images(
    fresh_world: World, tmp_path: Path
) -> None:
    """Backup names are stamped to the second: the second backup in that second takes the
    next free second rather than overwrite the first (a fast CI once lost it that way)."""
    world, image = fresh_world, "overtime/quick"
    repository = target_repository(image)
    images = [
        ImageSpec(repository, (tag,), "docker", (linux("amd64", LayerSpec(512, seed=tag)),))
        for tag in ("a", "b")
    ]
    corpus = push_corpus(world.ecr_upstream_url, images, auth=world.ecr_auth, tmpdir=tmp_path)
    first, second = (corpus.get(f"{repository}:{tag}").digest for tag in ("a", "b"))
    hand_push(world, image, "1", first)
    frozen = datetime(2026, 12, 2, 5, 3, 12, tzinfo=UTC)
    with new_http_client(connections=2) as http:
        target = RegistryClient(  # the registry itself: the front wants the repository in moto
            world.ecr_upstream_url, StaticCredentials(Credentials(*world.ecr_auth)), http
        )
        over_time = OverTime(
            target, RetryPolicy(), RegistryUntag(target, RetryPolicy()), clock=lambda: frozen
        )
        kept_first = over_time.back_up(repository, "1")
        hand_push(world, image, "1", second)  # the tag moves again in the same second
        kept_second = over_time.back_up(repository, "1")
    assert kept_first == Backup("1--prev-20261202-050312", first)
    assert kept_second == Backup("1--prev-20261202-050313", second)
    assert ecr_digest(world, image, kept_first.tag) == first  # not overwritten
    assert ecr_digest(world, image, kept_second.tag) == second


def test_a_dry_run_names_the_backup_a_moved_tag_would_get_and_writes_nothing(
    mirror: Mirror, tmp_path: Path
) -> None:
    world, image = mirror.world, "overtime/preview"
    first = keeping_previous(mirror, tmp_path, image)
    dry = mirror.sync("--dry-run")  # ECR holds no `1` yet: nothing to back up
    assert [e["action"] for e in dry.report["images"]] == ["would-copy"], dry
    assert mirror.sync().code == 0

    moved = rebuild(world, tmp_path / "b", image, "1", "rebuilt")
    tags, ledger, spent = (
        ecr_tags(world, image),
        ecr_digest(world, image, "_mirror-ledger"),
        pulls(world),
    )
    dry = mirror.sync("--dry-run")
    assert dry.code == 0, dry
    assert sorted(e["action"] for e in dry.report["images"]) == ["would-back-up", "would-copy"]
    [preview] = entries(dry.report, "would-back-up")
    assert preview["source"].endswith(f"{target_repository(image)}:1")
    assert re.fullmatch(r"1--prev-\d{8}-\d{6}", tag_of(preview["target"])), preview
    assert preview["digest"] == first and preview["pulls"] == 0 and preview["bytes"] == 0
    assert dry.report["totals"]["would_back_up"] == 1 and dry.report["totals"]["backed_up"] == 0
    table = mirror.run(*mirror.sync_args()[:-2], "-o", "table", "--dry-run")
    assert "would back up 1;" in table.stdout and "would-back-up" in table.stdout, table
    # a dry run spends nothing and writes nothing: no pull, no tag, the ledger as it was
    assert pulls(world) == spent
    assert ecr_tags(world, image) == tags
    assert ecr_digest(world, image, "_mirror-ledger") == ledger
    assert ecr_digest(world, image, "1") == first

    run = mirror.sync()  # the real run makes the backup the dry run named, by the same rule
    assert run.code == 0, run
    [backup] = entries(run.report, "backed-up")
    assert re.fullmatch(r"1--prev-\d{8}-\d{6}", tag_of(backup["target"])), backup
    assert (backup["source"], backup["digest"]) == (preview["source"], preview["digest"])
    assert "would_back_up" in run.report["totals"] and run.report["totals"]["would_back_up"] == 0
    assert ecr_digest(world, image, tag_of(backup["target"])) == first
    assert ecr_digest(world, image, "1") == moved


# --- a selector whose set changes: the dropped tag pruned, only with prune ------------------


def test_a_dropped_tag_is_pruned_only_with_prune_and_never_a_hand_pushed_tag(
    mirror: Mirror, tmp_path: Path
) -> None:
    world = mirror.world
    image = "overtime/select"
    digests = push_versions(world, tmp_path / "a", image, ["1.0", "1.1", "1.2"])
    entry: dict[str, Any] = {"image": image, "tags": {"latest": 2}}
    mirror.config([{**entry, "prune": True}])  # the tags written are recorded from the start
    run = mirror.sync()
    assert run.code == 0, run
    assert ecr_tags(world, image) == {"1.1", "1.2", "_mirror-ledger"}
    hand_push(world, image, "hand-made", digests["1.1"])  # someone's own tag
    hand_push(world, image, "1.0", digests["1.1"])  # a tag the selector dropped long ago

    digests |= push_versions(world, tmp_path / "b", image, ["1.3"])  # 1.1 falls out
    mirror.config([entry], create=False)  # prune is off by default
    run = mirror.sync()
    assert run.code == 0, run
    assert {e["action"] for e in run.report["images"]} == {"copied", "up-to-date"}
    assert ecr_tags(world, image) == {"1.0", "1.1", "1.2", "1.3", "hand-made", "_mirror-ledger"}

    mirror.config([{**entry, "prune": True}], create=False)
    table = mirror.run(*mirror.sync_args()[:-2], "-o", "table", "--dry-run")
    assert "would prune 1;" in table.stdout and "would-prune" in table.stdout, table
    dry = mirror.sync("--dry-run")
    assert dry.code == 0, dry
    assert [tag_of(e["target"]) for e in entries(dry.report, "would-prune")] == ["1.1"]
    assert dry.report["totals"]["would_prune"] == 1
    assert "1.1" in ecr_tags(world, image)  # a dry run deletes nothing

    run = mirror.sync()
    assert run.code == 0, run
    pruned = entries(run.report, "pruned")
    assert [(tag_of(e["target"]), e["digest"]) for e in pruned] == [("1.1", digests["1.1"])]
    assert run.report["totals"]["pruned"] == 1
    # the tags the tool never wrote stay, and so does the image they name
    assert ecr_tags(world, image) == {"1.0", "1.2", "1.3", "hand-made", "_mirror-ledger"}
    assert ecr_digest(world, image, "hand-made") == digests["1.1"]


def test_keep_keeps_the_newest_written_and_a_hand_re_pushed_tag_stays(
    mirror: Mirror, tmp_path: Path
) -> None:
    world = mirror.world
    image = "overtime/keep"
    digests = push_versions(world, tmp_path / "a", image, ["2.0", "2.1", "2.2", "2.3"])
    mirror.config([{"image": image, "tags": ["2.0", "2.1", "2.3"], "keep_previous": 1}])
    assert mirror.sync().code == 0
    mirror.config([{"image": image, "tags": ["2.2", "2.3"], "keep_previous": 1}], create=False)
    assert mirror.sync().code == 0  # 2.2 written after 2.0
    hand_push(world, image, "2.1", digests["2.3"])  # re-pushed by hand: no longer the tool's
    mirror.config([{"image": image, "tags": ["2.3"], "prune": True, "keep": 1}], create=False)
    run = mirror.sync()
    assert run.code == 0, run
    assert [tag_of(e["target"]) for e in entries(run.report, "pruned")] == ["2.0"]
    assert ecr_tags(world, image) == {"2.1", "2.2", "2.3", "_mirror-ledger"}


# --- a run with failures or deferred work prunes nothing -----------------------------------


def test_a_failed_run_prunes_nothing(mirror: Mirror, tmp_path: Path) -> None:
    world = mirror.world
    image = "overtime/failing"
    push_versions(world, tmp_path, image, ["3.0", "3.1"])
    mirror.config([{"image": image, "tags": ["3.0", "3.1"], "prune": True}])
    assert mirror.sync().code == 0
    mirror.config(
        [
            {"image": image, "tags": ["3.1"], "prune": True},
            {"image": "alpine", "tags": ["9.99"]},  # missing at the source: the run fails
        ],
        create=["dockerhub/library/alpine"],
    )
    run = mirror.sync()
    assert run.code == 1, run
    assert entries(run.report, "pruned") == [] and run.report["totals"]["pruned"] == 0
    assert "3.0" in ecr_tags(world, image)
    # the same config, once the failure is gone, prunes
    mirror.config([{"image": image, "tags": ["3.1"], "prune": True}], create=False)
    run = mirror.sync()
    assert [tag_of(e["target"]) for e in entries(run.report, "pruned")] == ["3.0"]


def test_a_deferred_run_prunes_nothing(mirror: Mirror, tmp_path: Path) -> None:
    world = mirror.world
    image = "overtime/deferred"
    push_versions(world, tmp_path, image, ["4.0", "4.1"])
    mirror.config([{"image": image, "tags": ["4.0"], "prune": True}])
    assert mirror.sync().code == 0
    # 4.1 needs a pull and the reserve leaves none: deferred, and 4.0 stays
    mirror.config([{"image": image, "tags": ["4.1"], "prune": True}], reserve=1000, create=False)
    run = mirror.sync()
    assert run.code == 3, run
    assert entries(run.report, "pruned") == []
    assert "4.0" in ecr_tags(world, image)


# --- digest pins ---------------------------------------------------------------------------


@pytest.mark.dockerd
def test_a_pinned_digest_is_copied_with_no_tag_and_pulled_by_digest(
    engine_mirror: Mirror, docker_engine: DockerEngine
) -> None:
    world = engine_mirror.world
    digest = world.corpus.get("library/alpine:3.20").digest
    engine_mirror.config([{"image": "alpine", "tags": [digest]}])
    run = engine_mirror.sync()
    assert run.code == 0, run
    [entry] = run.report["images"]
    assert entry["action"] == "copied" and entry["digest"] == digest
    assert entry["target"].endswith(f"/dockerhub/library/alpine@{digest}")
    assert entry["source"].endswith(f"/library/alpine@{digest}")
    assert ecr_tags(world, "alpine") == set()  # no tag: the ledger records tags only
    assert ecr_digest(world, "alpine", digest) == digest

    # a rerun: no pull, no request to Docker Hub at all
    spent, heads = pulls(world), world.hub_front.counters["manifest_head"]
    again = engine_mirror.sync()
    assert [e["action"] for e in again.report["images"]] == ["up-to-date"]
    assert (pulls(world), world.hub_front.counters["manifest_head"]) == (spent, heads)

    uri = engine_mirror.run("uri", f"alpine@{digest}", "-c", str(engine_mirror.config_path))
    assert uri.code == 0, uri
    reference = uri.stdout.strip()
    assert reference.endswith(f"/dockerhub/library/alpine@{digest}")
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is not installed")
    login = engine_mirror.run("login", "-c", str(engine_mirror.config_path))
    assert login.code == 0, login
    pulled = subprocess.run(
        ["docker", "pull", reference],
        env={**engine_mirror.env, "DOCKER_HOST": docker_engine.host},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert pulled.returncode == 0, pulled.stderr
    docker_engine.client().images.remove(reference)


def test_a_pinned_tag_says_the_source_moved_on_and_a_vanished_digest_is_missing(
    mirror: Mirror,
) -> None:
    world = mirror.world
    old = world.corpus.get("library/alpine:3.20").digest
    now = world.corpus.get("library/alpine:3.19").digest
    gone = "sha256:" + "0" * 64
    mirror.config([{"image": "alpine", "tags": [f"3.19@{old}", f"stable@{gone}"]}])
    run = mirror.sync()
    assert run.code == 1, run
    pinned, vanished = run.report["images"]
    assert pinned["action"] == "copied" and pinned["digest"] == old
    assert pinned["note"] == f"the source tag 3.19 has moved on to {now}"
    assert ecr_digest(world, "alpine", "3.19") == old
    assert vanished["action"] == "missing"
    assert vanished["error"] == f"the pinned digest {gone} is no longer at the source"
    assert run.report["totals"]["retries"] == 0  # missing is an answer, not a fault

    uri = mirror.run("uri", "alpine:3.19", "--digest", "-c", str(mirror.config_path))
    assert uri.stdout.strip().endswith(f"/dockerhub/library/alpine@{old}"), uri
    again = mirror.sync()
    assert again.report["images"][0]["action"] == "up-to-date"
    assert again.report["images"][0]["note"] == pinned["note"]


# --- bad input -----------------------------------------------------------------------------

IMAGE = "version: 1\nimages:\n  - image: alpine\n    tags: {tags}\n{extra}"


@pytest.mark.parametrize(
    ("tags", "extra", "expected"),
    [
        ('["3.19@sha256:abc"]', "", "images[0].tags (line 4): invalid digest 'sha256:abc'"),
        ('["sha256:' + "A" * 64 + '"]', "", "images[0].tags (line 4): invalid digest"),
        (
            '["3.19"]',
            "    prune: sometimes\n",
            "images[0].prune (line 5): Input should be a valid boolean",
        ),
        (
            '["3.19"]',
            "    keep: -1\n",
            "images[0].keep (line 5): Input should be greater than or equal to 0",
        ),
        (
            '["3.19"]',
            "    keep_previous: -2\n",
            "images[0].keep_previous (line 5): Input should be greater",
        ),
        ('["3.19"]', "    prune: 1\n", "images[0].prune (line 5): Input should be a valid boolean"),
    ],
)
def test_bad_over_time_input_is_one_line(tags: str, extra: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(IMAGE.format(tags=tags, extra=extra), "f.yaml")
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"f.yaml: {expected}"), message


def test_bad_defaults_exit_2_before_any_request(mirror: Mirror) -> None:
    mirror.config([{"image": "alpine", "tags": ["3.19"]}], create=False)
    text = mirror.config_path.read_text()
    mirror.config_path.write_text(text.replace("defaults:\n", "defaults:\n  keep: -1\n", 1))
    run = mirror.sync()
    assert run.code == 2, run
    assert "defaults.keep" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert mirror.world.hub_front.counters["manifest_head"] == 0


def test_pins_and_keys_resolve_with_defaults() -> None:
    digest = "sha256:" + "a" * 64
    config = parse_config(
        "version: 1\ndefaults:\n  prune: true\n  keep: 2\nimages:\n"
        f"  - image: alpine\n    tags: ['3.19', '3.20@{digest}', '{digest}']\n    keep: 0\n"
        "  - image: busybox\n    tags: ['1']\n    prune: false\n    keep_previous: 3\n",
        "f.yaml",
    )
    alpine, busybox = config.images
    assert alpine.tags == ("3.19",)
    assert [(p.tag, p.digest) for p in alpine.pins] == [("3.20", digest), (None, digest)]
    assert (alpine.over_time.prune, alpine.over_time.keep) == (True, 0)
    assert (busybox.over_time.prune, busybox.over_time.keep, busybox.over_time.keep_previous) == (
        False,
        2,
        3,
    )
