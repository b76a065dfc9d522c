"""`mirror sync` and `mirror quota` (issue 4), run as the user runs them, against the world.

Every test runs the CLI in a subprocess (`python -m mirror sync --no-ensure-repo ...`)
against the Docker Hub front (token auth, pull quota, CDN, pagination) and the ECR front
(moto repositories, NAME_UNKNOWN), and checks what the report says against what the fronts
counted: pulls spent (manifest GETs answered 200), 429s, tag-list pages.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.runner import (
    TOTALS_FIELDS,
    Mirror,
    QuotaThief,
    Run,
    actions,
    check_report_shape,
    pulls,
    ref_of,
)

HUB_IP = "127.0.0.1"  # the quota source of anonymous pulls from this machine

ALPINE = {"image": "alpine", "tags": ["3.19", "3.20"]}
PYTHON = {"image": "python", "tags": ["3.12-slim"]}
BUSYBOX = {"image": "busybox", "tags": ["1.36"]}
REDIS_AMD64 = {
    "image": "bitnami/redis",
    "tags": {"match": r"^7\.4\.\d+$", "latest": 3},
    "platforms": ["linux/amd64"],
}
# plain versions in >=20,<22, newest two: 20.12.2 and 20.12 (one manifest list, two tags)
NODE_SEMVER = {"image": "node", "tags": {"semver": ">=20,<22", "latest": 2}}


def by_action(report: Mapping[str, Any], action: str) -> set[str]:
    return {ref for ref, a in actions(report).items() if a == action}


# --- the JSON report's schema, docs/report.schema.json (tests/runner.py checks every report)


@pytest.mark.parametrize(
    ("mutate", "complaint"),
    [
        (lambda r: r.pop("totals"), "'totals' is a required property"),
        (lambda r: r["images"][0].update(bytes="12"), "bytes"),
        (lambda r: r["images"][0].update(pulls=True), "pulls"),
        (lambda r: r["images"][0].update(action="skipped"), "action"),
        (lambda r: r["images"][0].update(digest="sha256:abc"), "digest"),
        (lambda r: r["totals"].update(copied=2), "totals.copied"),
        (lambda r: r["ratelimit"].pop("window_seconds"), "window_seconds"),
        (lambda r: r["images"][0].update(action="would-copy"), "images[0].action"),  # no dry run
        (lambda r: r["images"][0].update(extra=1), "'extra' was unexpected"),
        (lambda r: r.update(exit_code=3), "exit_code"),
        (lambda r: r.update(error="stopped early"), "images"),  # an error report has none
    ],
)
def test_the_shape_check_catches_a_bad_report(
    mutate: Callable[[dict[str, Any]], Any], complaint: str
) -> None:
    report: dict[str, Any] = {
        "version": 1,
        "dry_run": False,
        "images": [
            {
                "source": "docker.io/library/alpine:3.19",
                "target": "x.dkr.ecr.us-east-1.amazonaws.com/dockerhub/library/alpine:3.19",
                "action": "copied",
                "digest": "sha256:" + "0" * 64,
                "bytes": 12,
                "pulls": 1,
                "estimated_pulls": None,
                "estimate": None,
                "seconds": 0.5,
                "error": None,
                "note": None,
            }
        ],
        "totals": {
            **dict.fromkeys(TOTALS_FIELDS, 0),
            "copied": 1,
            "bytes": 12,
            "pulls": 1,
            "minimum_pulls": 1,
            "estimated_pulls": 0,
        },
        "ratelimit": {"limit": 100, "remaining": 99, "window_seconds": 21600, "source": "1.2.3.4"},
        "exit_code": 0,
        "error": None,
    }
    check_report_shape(json.loads(json.dumps(report)))  # the pristine report passes
    mutate(report)
    with pytest.raises(AssertionError, match=re.escape(complaint)):
        check_report_shape(report)


# --- 1. a sync where nothing changed spends no pull ---------------------------------------


def test_second_sync_is_all_up_to_date_and_spends_no_pull(mirror: Mirror) -> None:
    world = mirror.world
    mirror.config([ALPINE, PYTHON, REDIS_AMD64, NODE_SEMVER])
    first = mirror.sync()
    assert first.code == 0, first
    report = first.report
    expected = {
        "library/alpine:3.19",
        "library/alpine:3.20",
        "library/python:3.12-slim",
        "bitnami/redis:7.4.2",
        "bitnami/redis:7.4.1",
        "library/node:20.12.2",
        "library/node:20.12",
    }
    assert by_action(report, "copied") == expected, first
    # the report's pulls are what Docker Hub counted, and the quota headers say the same
    assert report["totals"]["pulls"] == pulls(world) > 0
    assert report["ratelimit"]["remaining"] == 100 - pulls(world)
    # the filtered OCI index pulled only linux/amd64 (and its attestation), never arm64
    redis = world.corpus.get("bitnami/redis:7.4.2")
    arm64 = redis.manifest_for("linux/arm64")
    assert world.hub_front.counters.get("pulls", "bitnami/redis", arm64.digest) == 0
    assert world.hub_front.counters.get("pulls", "bitnami/redis", redis.digest) == 1

    spent = pulls(world)
    heads = world.hub_front.counters["manifest_head"]
    second = mirror.sync()
    assert second.code == 0, second
    assert set(actions(second.report).values()) == {"up-to-date"}
    assert set(actions(second.report)) == expected
    assert pulls(world) == spent, "a sync with nothing to do spent Docker Hub pulls"
    assert world.hub_front.counters["manifest_get"] == spent
    assert second.report["totals"]["pulls"] == 0
    assert world.hub_front.counters["manifest_head"] == heads + len(expected)
    # an up-to-date entry names the digest the copy reported (filtered indexes: see below)
    digests = {ref_of(e): e["digest"] for e in report["images"] if "redis" not in e["source"]}
    assert {
        ref_of(e): e["digest"] for e in second.report["images"] if "redis" not in e["source"]
    } == digests


def test_tags_sharing_a_digest_pull_it_once(mirror: Mirror) -> None:
    world = mirror.world
    same = ["20", "20.12", "20.12.2", "iron", "lts"]  # one manifest list in the corpus
    assert len({world.corpus.get(f"node:{tag}").digest for tag in same}) == 1
    mirror.config([{"image": "node", "tags": same}])
    run = mirror.sync("--concurrency", "1")
    assert run.code == 0, run
    assert set(actions(run.report).values()) == {"copied"}
    # the index and its two platform manifests, fetched once for all five tags
    assert pulls(world) == run.report["totals"]["pulls"] == 3


def test_up_to_date_filtered_index_reports_the_ecr_digest(mirror: Mirror) -> None:
    mirror.config([{**REDIS_AMD64, "tags": ["7.4.2"]}])
    copied = mirror.sync().report["images"][0]
    again = mirror.sync().report["images"][0]
    assert (copied["action"], again["action"]) == ("copied", "up-to-date")
    assert again["digest"] == copied["digest"]


# --- 2. the pull budget ----------------------------------------------------------------------


def test_budget_admits_in_config_order_by_what_it_learns_and_wastes_nothing(
    mirror: Mirror,
) -> None:
    world = mirror.world
    # pulls: alpine 1 + 1, python 3 (a list of two platforms), busybox 1; 3 to spend
    mirror.config([ALPINE, PYTHON, BUSYBOX], reserve=5)
    world.hub_front.set_remaining(HUB_IP, 8)
    python = world.corpus.get("python:3.12-slim")
    forecast = mirror.sync("--dry-run")
    assert forecast.code == 3, forecast
    alpine = {"library/alpine:3.19", "library/alpine:3.20"}
    assert by_action(forecast.report, "would-copy") == alpine
    # the forecast follows the real run's rule, with estimates where only a GET would tell
    assert {
        ref_of(e): (e["estimated_pulls"], e["estimate"].split(":")[0])
        for e in forecast.report["images"]
    } == {
        "library/alpine:3.19": (1, "exact"),
        "library/alpine:3.20": (1, "exact"),
        "library/python:3.12-slim": (3, "guess"),
        "library/busybox:1.36": (1, "exact"),
    }

    first = mirror.sync()
    assert first.code == 3, first
    report = first.report
    assert by_action(report, "copied") == alpine
    # python's index took the last pull; its two platforms did not fit, so the index was kept
    # in ECR for the next run, and busybox found nothing left
    assert by_action(report, "deferred") == {"library/python:3.12-slim", "library/busybox:1.36"}
    assert "needs 2 more pulls" in first.by_tag()["library/python:3.12-slim"]["error"]
    assert world.hub_front.remaining(HUB_IP) == 5, "the reserve was spent"
    assert world.hub_front.counters.get("pulls", "library/python", python.digest) == 1
    assert world.hub_front.counters["rate_limited"] == 0
    assert report["totals"]["pulls"] == pulls(world) == report["totals"]["minimum_pulls"] == 3
    assert report["ratelimit"]["remaining"] == 5
    assert "deferred 2" in mirror.sync("-o", "table", "--dry-run").stdout

    world.hub_front.reset_quota()
    second = mirror.sync()
    assert second.code == 0, second
    assert actions(second.report) == {
        "library/alpine:3.19": "up-to-date",
        "library/alpine:3.20": "up-to-date",
        "library/python:3.12-slim": "copied",
        "library/busybox:1.36": "copied",
    }
    # the kept index cost nothing: 2 platform manifests and busybox; 6 in all, the minimum
    assert second.report["totals"]["pulls"] == 3
    assert world.hub_front.counters.get("pulls", "library/python", python.digest) == 1
    assert pulls(world) == 6


def test_no_pull_at_all_when_the_quota_is_within_the_reserve(mirror: Mirror) -> None:
    world = mirror.world
    mirror.config([ALPINE, BUSYBOX], reserve=10)
    world.hub_front.set_remaining(HUB_IP, 10)
    run = mirror.sync()
    assert run.code == 3, run
    assert set(actions(run.report).values()) == {"deferred"}
    assert pulls(world) == 0
    assert world.hub_front.counters["manifest_get"] == 0


def test_unlimited_source_has_no_budget(mirror: Mirror) -> None:
    world = mirror.world
    world.hub_front.unlimited = True  # no ratelimit headers at all
    mirror.config([ALPINE, PYTHON], reserve=1000)
    run = mirror.sync()
    assert run.code == 0, run
    assert set(actions(run.report).values()) == {"copied"}
    assert run.report["ratelimit"] is None
    assert pulls(world) == 5


def test_a_429_mid_run_defers_the_rest_and_is_met_once(mirror: Mirror, thief: QuotaThief) -> None:
    world = mirror.world
    thief.at = 2  # the plan saw 100 pulls left; the first GET passes, the second meets a 429
    images = [ALPINE, BUSYBOX, PYTHON, {"image": "debian", "tags": ["12-slim"]}]
    mirror.config(images, reserve=0)
    run = mirror.sync("--concurrency", "8")
    assert run.code == 3, run
    report = run.report
    assert world.hub_front.counters["rate_limited"] == 1, "more than one 429 in a run"
    assert pulls(world) == 1
    assert len(by_action(report, "copied")) <= 1
    deferred = [e for e in report["images"] if e["action"] == "deferred"]
    assert len(deferred) == 5 - len(by_action(report, "copied")) >= 4
    assert any("429" in e["error"] for e in deferred), deferred
    assert report["totals"]["pulls"] == pulls(world)
    assert report["ratelimit"]["remaining"] == 0, "the report shows a quota from before the 429"

    thief.at = None  # the quota is back
    world.hub_front.reset_quota()
    again = mirror.sync()
    assert again.code == 0, again
    assert set(actions(again.report).values()) <= {"copied", "up-to-date"}
    assert len(by_action(again.report, "copied")) == 5 - len(by_action(report, "copied"))


def test_the_budget_follows_the_quota_each_get_states(mirror: Mirror, thief: QuotaThief) -> None:
    """A parallel job on the same address spends the quota: the GET answers say so, and the
    sync stops at the reserve instead of spending it (and without meeting a 429)."""
    world = mirror.world
    thief.at, thief.leave = 1, 6  # the first GET leaves 5: the reserve
    mirror.config([ALPINE, BUSYBOX, PYTHON], reserve=5)
    run = mirror.sync()
    assert run.code == 3, run
    assert pulls(world) == 1
    assert world.hub_front.remaining(HUB_IP) == 5, "the reserve was spent"
    assert world.hub_front.counters["rate_limited"] == 0
    assert len(by_action(run.report, "deferred")) == 4 - len(by_action(run.report, "copied")) >= 3
    assert run.report["ratelimit"]["remaining"] == 5


# --- 3. tag selection through the paginated tags list ---------------------------------------


@pytest.fixture
def small_pages(mirror: Mirror) -> None:
    """Docker Hub caps a tags page whatever `n` asks for: pages of 5 here."""
    mirror.world.hub_front.page_size = 5  # the world's reset restores it


def planned(mirror: Mirror, entries: list[dict[str, Any]]) -> set[str]:
    """The tags a dry run of these entries would copy; a dry run spends no pull."""
    mirror.config(entries)
    run = mirror.sync("--dry-run")
    assert run.code == 0, run
    assert pulls(mirror.world) == 0
    return set(actions(run.report))


@pytest.mark.usefixtures("small_pages")
def test_selectors_read_every_page_of_the_tags_list(mirror: Mirror) -> None:
    entries = [
        {"image": "node", "tags": {"match": r"^2[02]\.\d+\.\d+$", "latest": 3}},
        {"image": "python", "tags": {"match": "-slim$", "semver": ">=3.13"}},
        REDIS_AMD64,
    ]
    assert planned(mirror, entries) == {
        "library/node:22.2.0",
        "library/node:22.1.0",
        "library/node:20.12.2",
        "library/python:3.13-slim",
        "bitnami/redis:7.4.2",
        "bitnami/redis:7.4.1",
    }
    # node's 27 tags came in pages of 5 (the last tag, `lts-alpine`, is on the sixth)
    assert mirror.world.hub_front.counters.get("tags_list", "library/node") == 6


def test_latest_keeps_every_tag_of_the_newest_versions(mirror: Mirror) -> None:
    """The README's node entry: `latest: 2` over Docker Hub's node tags is the two newest
    versions (22.2 and 22.1), each under both of its names, not two names of 22.2."""
    entries = [{"image": "node", "tags": {"semver": ">=20,<23", "latest": 2}}]
    assert planned(mirror, entries) == {
        "library/node:22.2",
        "library/node:22.2.0",
        "library/node:22.1",
        "library/node:22.1.0",
    }


def test_a_selector_that_matches_nothing_is_missing(mirror: Mirror) -> None:
    mirror.config([BUSYBOX, {"image": "node", "tags": {"semver": ">=99"}}])
    run = mirror.sync()
    assert run.code == 1, run
    assert actions(run.report) == {"library/busybox:1.36": "copied", "library/node:*": "missing"}


# --- 4. --dry-run ------------------------------------------------------------------------------


def test_dry_run_spends_nothing_but_heads(mirror: Mirror) -> None:
    world = mirror.world
    mirror.config([ALPINE, PYTHON, REDIS_AMD64])
    run = mirror.sync("--dry-run")
    assert run.code == 0, run
    report = run.report
    assert report["dry_run"] is True
    assert set(actions(report).values()) == {"would-copy"}
    assert len(report["images"]) == 5
    assert pulls(world) == 0 and world.hub_front.counters["manifest_get"] == 0
    assert world.hub_front.counters["blob_get"] == 0
    assert world.ecr_front.counters["manifest_put"] == 0
    assert world.ecr_front.counters["blob_uploads"] == 0
    # alpine 1 + 1, python 1 + 2 platforms, redis 2 x (1 + amd64 + its attestation)
    assert report["totals"]["estimated_pulls"] == 11
    assert report["totals"]["pulls"] == 0

    table = mirror.sync("--dry-run", "-o", "table")
    assert table.code == 0, table
    lines = {line.split()[1]: line for line in table.stdout.splitlines()[:-1]}
    assert len(lines) == 5
    assert all(line.startswith("would-copy") for line in lines.values())
    python = next(line for ref, line in lines.items() if "python:3.12-slim" in ref)
    assert "pulls=~3? " in python  # a guess: python is copied at every platform
    redis = next(line for ref, line in lines.items() if "redis:7.4.2" in ref)
    assert "pulls=~3 " in redis  # at most: amd64 and its attestation
    assert "would copy 5 (~11 pulls, some guessed)" in table.stdout.splitlines()[-1]
    assert pulls(world) == 0

    # what the dry run announced is what a real run spends
    real = mirror.sync()
    assert real.code == 0, real
    assert real.report["totals"]["pulls"] == pulls(world) == 11


def test_only_selects_images_and_tags(mirror: Mirror) -> None:
    mirror.config([ALPINE, PYTHON, {"image": "node", "tags": {"semver": ">=99"}}])
    run = mirror.sync("--only", "alpine:3.19", "--only", "library/python")
    assert run.code == 0, run
    assert actions(run.report) == {
        "library/alpine:3.19": "copied",
        "library/python:3.12-slim": "copied",
    }


# --- 5. --shard K/N -------------------------------------------------------------------------


def test_shards_partition_the_plan(mirror: Mirror) -> None:
    world = mirror.world
    images = [
        ALPINE,
        PYTHON,
        BUSYBOX,
        REDIS_AMD64,
        {"image": "node", "tags": {"match": r"^\d+\.\d+\.\d+$"}},
    ]
    mirror.config(images)
    whole = mirror.sync("--dry-run")
    assert whole.code == 0, whole
    planned = set(actions(whole.report))
    assert len(planned) == 13

    # the three shards run at once, as parallel CI jobs would
    procs = [
        subprocess.Popen(
            mirror.command(*mirror.sync_args("--shard", f"{k}/3")),
            env=mirror.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in (1, 2, 3)
    ]
    runs = []
    for k, proc in enumerate(procs, 1):
        out, err = proc.communicate(timeout=120)
        runs.append(mirror.record(Run(("sync", "--shard", f"{k}/3"), proc.returncode, out, err)))
    parts = []
    for run in runs:
        assert run.code == 0, run
        part = actions(run.report)
        assert set(part.values()) == {"copied"}, run
        parts.append(set(part))
    assert all(parts), "a shard got nothing: the partition is lopsided"
    assert sum(len(p) for p in parts) == len(planned), "an (image, tag) is in two shards"
    assert set().union(*parts) == planned
    # the same shard gets the same part on every run
    again = mirror.sync("--shard", "2/3", "--dry-run")
    assert set(actions(again.report)) == parts[1]
    assert set(actions(again.report).values()) == {"up-to-date"}
    assert world.hub_front.counters["rate_limited"] == 0


def test_bad_shard_is_a_usage_error(mirror: Mirror) -> None:
    mirror.config([ALPINE])
    for shard in ("0/3", "4/3", "1-3", "x/y"):
        run = mirror.sync("--shard", shard)
        assert run.code == 2, run
        assert "--shard" in run.report["error"]
        assert "--shard" in run.stderr


# --- 7. a failing image does not stop the others ------------------------------------------


def test_missing_tag_and_missing_repository_fail_alone(mirror: Mirror) -> None:
    world = mirror.world
    mirror.config([{"image": "alpine", "tags": ["3.19", "9.99"]}, BUSYBOX, PYTHON])
    # python's ECR repository is not there: ECR answers NAME_UNKNOWN
    world.moto.client("ecr").delete_repository(repositoryName="dockerhub/library/python")
    run = mirror.sync()
    assert run.code == 1, run
    report = run.report
    assert actions(report) == {
        "library/alpine:3.19": "copied",
        "library/alpine:9.99": "missing",
        "library/busybox:1.36": "copied",
        "library/python:3.12-slim": "failed",
    }
    entries = {ref_of(e): e for e in report["images"]}
    error = entries["library/python:3.12-slim"]["error"]
    assert "NAME_UNKNOWN" in error
    assert "The repository with name 'dockerhub/library/python' does not exist" in error
    # the plan found the repository missing (one free GET to ECR): no pull was spent on it
    assert entries["library/python:3.12-slim"]["pulls"] == 0
    assert world.hub_front.counters.get("pulls", "library/python") == 0
    assert report["totals"]["pulls"] == pulls(world)
    assert "no such tag" in entries["library/alpine:9.99"]["error"]
    # and the failures are on stderr for a human too
    assert "NAME_UNKNOWN" in run.stderr


def test_fail_fast_starts_no_copy_after_a_failure(mirror: Mirror) -> None:
    world = mirror.world
    mirror.config([{"image": "debian", "tags": ["12-slim"]}, ALPINE, BUSYBOX], create=False)
    world.create_repository("dockerhub/library/alpine")  # debian's repository is missing
    world.create_repository("dockerhub/library/busybox")
    run = mirror.sync("--fail-fast", "--concurrency", "1")
    assert run.code == 1, run
    report = run.report
    assert actions(report) == {
        "library/debian:12-slim": "failed",
        "library/alpine:3.19": "deferred",
        "library/alpine:3.20": "deferred",
        "library/busybox:1.36": "deferred",
    }
    assert all("fail-fast" in e["error"] for e in report["images"][1:])
    assert world.ecr_front.counters["manifest_put"] == 0

    without = mirror.sync("--concurrency", "1")
    assert without.code == 1
    assert by_action(without.report, "copied") == {
        "library/alpine:3.19",
        "library/alpine:3.20",
        "library/busybox:1.36",
    }


# --- 8. Docker Hub credentials ----------------------------------------------------------------

TOKEN = "dckr_pat_Zq8vK1-not-to-be-printed"
HUB_CREDENTIALS = {"use_docker_hub_credentials": True}  # the world's Docker Hub is on loopback


def test_credentials_from_the_environment_and_never_printed(mirror: Mirror) -> None:
    world = mirror.world
    world.hub_front.users = {"alice": TOKEN}
    mirror.config([BUSYBOX])
    world.write_config(mirror.config_path, [BUSYBOX], source=HUB_CREDENTIALS)
    env = {"DOCKERHUB_USERNAME": "alice", "DOCKERHUB_TOKEN": TOKEN}
    run = mirror.sync("--verbose", env=env)
    assert run.code == 0, run
    assert run.report["ratelimit"] == {
        "limit": 200,
        "remaining": 199,
        "window_seconds": 21600,
        "source": "alice",
    }
    assert world.hub_front.remaining("alice") == 199
    assert world.hub_front.remaining(HUB_IP) == 100, "pulled anonymously"
    assert TOKEN not in run.stdout + run.stderr
    assert "alice" in run.stderr  # where the credentials came from is said

    quota = mirror.run("quota", "-c", str(mirror.config_path), env=env)
    assert quota.code == 0, quota
    assert "limit: 200" in quota.stdout and "source: alice" in quota.stdout
    assert TOKEN not in quota.stdout + quota.stderr


def test_a_wrong_token_is_a_clear_failure_that_does_not_show_it(mirror: Mirror) -> None:
    world = mirror.world
    world.hub_front.users = {"alice": TOKEN}
    wrong = TOKEN + "-revoked"
    mirror.config([BUSYBOX, ALPINE])
    world.write_config(mirror.config_path, [BUSYBOX, ALPINE], source=HUB_CREDENTIALS)
    env = {"DOCKERHUB_USERNAME": "alice", "DOCKERHUB_TOKEN": wrong}
    run = mirror.sync("--verbose", env=env)
    assert run.code == 1, run
    # refused once, before any image: one error line, and still one JSON document on stdout
    assert run.report["images"] == [] and run.report["exit_code"] == 1
    assert "incorrect username or password" in run.report["error"]
    errors = [line for line in run.stderr.splitlines() if line.startswith("mirror: error:")]
    assert len(errors) == 1 and "incorrect username or password" in errors[0], run.stderr
    assert wrong not in run.stdout + run.stderr and TOKEN not in run.stdout + run.stderr
    assert pulls(world) == 0

    quota = mirror.run("quota", "-c", str(mirror.config_path), env=env)
    assert quota.code == 1, quota
    assert quota.stdout == ""
    assert "incorrect username or password" in quota.stderr
    assert wrong not in quota.stdout + quota.stderr


# --- 9. mirror quota --------------------------------------------------------------------------


def test_quota_prints_the_limit_without_spending_a_pull(mirror: Mirror) -> None:
    world = mirror.world
    world.hub_front.set_remaining(HUB_IP, 42)
    mirror.config([ALPINE], create=False)
    run = mirror.run("quota", "-c", str(mirror.config_path))
    assert run.code == 0, run
    assert run.stdout.splitlines() == [
        "limit: 100",
        "remaining: 42",
        "window: 21600s",
        f"source: {HUB_IP}",
    ]
    assert world.hub_front.remaining(HUB_IP) == 42
    assert pulls(world) == 0 and world.hub_front.counters["manifest_get"] == 0
    assert world.hub_front.counters.get("manifest_head", "ratelimitpreview/test") == 1

    world.hub_front.unlimited = True
    unlimited = mirror.run("quota", "-c", str(mirror.config_path))
    assert unlimited.code == 0, unlimited
    assert "unlimited" in unlimited.stdout


# --- 10. stdout carries only the report ---------------------------------------------------


def test_json_report_redirected_to_a_file_is_valid_with_logs_on_stderr(
    mirror: Mirror, tmp_path: Path
) -> None:
    mirror.config([ALPINE, {"image": "alpine-missing-repo", "tags": ["1"]}])
    out_path = tmp_path / "report.json"
    with out_path.open("w") as out:
        done = subprocess.run(
            mirror.command(*mirror.sync_args("-v")),
            env=mirror.env,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    run = mirror.record(Run(("sync",), done.returncode, out_path.read_text(), done.stderr))
    assert run.code == 1, run
    report = run.report  # the whole file is one JSON document
    assert by_action(report, "copied") == {"library/alpine:3.19", "library/alpine:3.20"}
    # progress and logs were printed, on stderr
    assert "copied: " in run.stderr and "plan:" in run.stderr
    assert "credentials: anonymous" in run.stderr


def test_table_report_and_exit_codes_on_stdout(mirror: Mirror) -> None:
    mirror.config([ALPINE])
    run = mirror.run("sync", "--no-ensure-repo", "-c", str(mirror.config_path))
    assert run.code == 0, run
    lines = run.stdout.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["copied", "copied"]
    assert lines[-1].startswith("copied 2, up to date 0,")
    assert "plan:" not in run.stdout and "credentials" not in run.stdout


def test_a_bad_config_is_exit_2_with_one_line(mirror: Mirror) -> None:
    mirror.config_path.write_text("version: 1\nimages: []\n")
    run = mirror.sync()  # --output json: stdout is still one JSON document
    assert run.code == 2, run
    assert run.report["exit_code"] == 2 and run.report["images"] == []
    assert "images (line 2): List should have at least 1 item" in run.report["error"]
    assert run.stderr.count("\n") == 1 and "images" in run.stderr
    table = mirror.run("sync", "--no-ensure-repo", "-c", str(mirror.config_path))
    assert table.code == 2 and table.stdout == ""  # the table format prints no report


def test_an_answer_of_a_shape_nobody_expected_fails_that_image_only(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    front = mirror.world.hub_front
    original = front._tags

    def tags(h: Any, name: str) -> None:
        if name == "library/busybox":  # a tag list that is not a JSON object
            h.send_json(200, ["1.36", "latest"])
            return
        original(h, name)

    monkeypatch.setattr(front, "_tags", tags)
    mirror.config([ALPINE, {"image": "busybox", "tags": {"match": "^1"}}])
    run = mirror.sync()
    assert run.code == 1, run
    assert "Traceback" not in run.stderr
    report = run.report
    assert by_action(report, "copied") == {"library/alpine:3.19", "library/alpine:3.20"}
    failed = run.by_tag()["library/busybox:*"]
    assert failed["action"] == "failed" and failed["error"].startswith("listing tags: ")
