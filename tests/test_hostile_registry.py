"""What a lying registry cannot make `mirror sync` do (issue 10, items 1, 2 and 4).

Each test switches on one lie of the test world's fronts (`tests/world/liarfront.py`) about
one image, runs the real CLI with Docker Hub credentials set, and checks what must hold:

* the run ends (the pytest timeout bounds it) in bounded memory (peak RSS of the CLI, well
  under the 1 GiB a lying manifest offers);
* the lying image fails with one line naming it, and the honest image is still copied;
* nothing is written to ECR outside the configured repositories;
* the listener on the other host got no Authorization header and no credential.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.runner import Mirror, Run, actions, target_repository
from tests.world.liarfront import EcrLies, HubLies
from tests.world.world import World

pytestmark = pytest.mark.timeout(120)

USER, TOKEN = "alice", "dckr_pat_hostile-Zq8vK1-never-elsewhere"
CREDENTIALS = {"DOCKERHUB_USERNAME": USER, "DOCKERHUB_TOKEN": TOKEN}
HONEST = {"image": "alpine", "tags": ["3.19"]}  # copied in every test, whatever the lie
LIAR = {"image": "busybox", "tags": ["1.36"]}
GiB = 1024**3
MAX_RSS_MIB = 200  # a sync of two small images peaks at ~65 MiB; the 1 GiB lie at ~77 MiB

_MEASURE = (
    "import os, resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "with open(sys.argv[1], 'w') as out:\n"
    "    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)


@pytest.fixture
def hostile(mirror: Mirror) -> Mirror:
    mirror.world.hub_front.users = {USER: TOKEN}
    return mirror


def sync(mirror: Mirror, tmp_path: Path) -> tuple[Run, float]:
    """`mirror sync` with Docker Hub credentials; the run and the CLI's peak RSS in MiB."""
    rss = tmp_path / "maxrss"
    args = mirror.sync_args()
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(rss), *mirror.command(*args)],
        env={**mirror.env, **CREDENTIALS},
        capture_output=True,
        text=True,
        timeout=100,
    )
    run = mirror.record(Run(args, done.returncode, done.stdout, done.stderr))
    return run, int(rss.read_text()) / 1024


def ecr_catalog(world: World) -> set[str]:
    """Repositories the ECR registry holds anything in (blobs, manifests)."""
    answer = httpx.get(f"{world.ecr_upstream_url}/v2/_catalog", auth=world.ecr_auth)
    answer.raise_for_status()
    return set(answer.json().get("repositories") or [])


def check(
    run: Run,
    rss_mib: float,
    world: World,
    *,
    liar: str,
    error: str,
) -> None:
    """What every hostile run must show (see the module docstring)."""
    assert run.code == 1, run
    entries = [e for e in run.report["images"] if f"/{liar}:" in e["source"]]
    assert entries and all(e["action"] == "failed" for e in entries), run
    for entry in entries:
        assert error in entry["error"] and "\n" not in entry["error"], entry
        assert any(
            line.startswith("failed: ") and entry["source"] in line and error in line
            for line in run.stderr.splitlines()
        ), run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    copied = {ref for ref, action in actions(run.report).items() if action == "copied"}
    assert "library/alpine:3.19" in copied, run
    assert rss_mib < MAX_RSS_MIB, f"peak RSS {rss_mib:.0f} MiB"
    # the credentials were in play: Docker Hub counted the honest pulls against the user
    assert run.report["ratelimit"]["source"] == USER, run.report["ratelimit"]
    configured = {target_repository(image) for image in ("alpine", liar.split("/")[-1])}
    assert ecr_catalog(world) <= configured
    written = {repository for repository, _ in world.ecr_front.counters.by_ref("manifest_put")}
    assert written <= configured and target_repository(liar.split("/")[-1]) not in written
    assert world.elsewhere is not None
    assert world.elsewhere.credentials_seen(TOKEN, USER) == [], world.elsewhere.requests
    assert TOKEN not in run.stdout + run.stderr
    assert world.hub_front.errors == [] and world.ecr_front.errors == []


def lie(
    mirror: Mirror,
    tmp_path: Path,
    lies: HubLies | EcrLies,
    *,
    error: str,
    liar: Mapping[str, Any] = LIAR,
) -> None:
    """Sync HONEST and `liar` while a front tells `lies` about the liar; check the run."""
    world = mirror.world
    mirror.config([HONEST, liar], hub_credentials=True)
    if isinstance(lies, HubLies):
        world.hub_front.lies = lies
    else:
        world.ecr_front.lies = lies
    run, rss = sync(mirror, tmp_path)
    check(run, rss, world, liar=f"library/{liar['image']}", error=error)


BUSYBOX_SELECTED = {"image": "busybox", "tags": {"match": "^1\\."}}  # needs its tag list


# --- item 1: tags and digests ------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag",
    [
        "3.12-x/../../../../../prod/api/manifests/latest-slim",
        "3.12-x?n=1#-slim",
        "3.12#-slim",
        "3.12-x%2F..%2F..%2Fprod-slim",
        "..-slim",
    ],
)
def test_a_listed_tag_that_is_not_a_tag_fails_the_image_and_writes_nothing_elsewhere(
    hostile: Mirror, tmp_path: Path, tag: str
) -> None:
    """The registry lists a tag that would climb out of the repository in a URL path: the
    image fails whole, the ECR repository `prod/api` (which exists) gets nothing."""
    world = hostile.world
    world.create_repository("prod/api")
    python = {"image": "python", "tags": {"match": "-slim$"}}
    lies = HubLies(repository="library/python", extra_tags=(tag,))
    lie(hostile, tmp_path, lies, error="lists an invalid tag", liar=python)
    assert world.ecr_front.counters.get("PUT manifest", "prod/api") == 0
    assert world.hub_front.counters.get("manifest_get", "library/python") == 0


def test_manifest_bytes_that_do_not_match_their_digest_are_not_pushed(
    hostile: Mirror, tmp_path: Path
) -> None:
    lies = HubLies(repository="library/busybox", wrong_manifest=True)
    lie(hostile, tmp_path, lies, error="manifest bytes hash to")


# --- item 4: bounded reads ---------------------------------------------------------------------


def test_a_manifest_of_1_gib_is_refused_after_4_mib_in_bounded_memory(
    hostile: Mirror, tmp_path: Path
) -> None:
    lies = HubLies(repository="library/busybox", manifest_bytes=GiB)
    lie(hostile, tmp_path, lies, error="manifest larger than 4 MiB")
    # the CLI hung up after 4 MiB: the front wrote that, plus what the socket buffers held
    sent = hostile.world.hub_front.counters["lie_bytes_sent"]
    assert 4 * 1024**2 < sent < 64 * 1024**2, sent


def test_an_endless_tag_list_ends(hostile: Mirror, tmp_path: Path) -> None:
    lies = HubLies(repository="library/busybox", endless_tags=True)
    lie(hostile, tmp_path, lies, error="the tag list has too many pages", liar=BUSYBOX_SELECTED)
    assert hostile.world.hub_front.counters["lie_tag_pages"] == 1000


def test_a_tag_list_that_links_to_itself_ends(hostile: Mirror, tmp_path: Path) -> None:
    lies = HubLies(repository="library/busybox", next_page="/v2/library/busybox/tags/list?n=1000")
    lie(hostile, tmp_path, lies, error="links back to a page it gave", liar=BUSYBOX_SELECTED)
    assert hostile.world.hub_front.counters["lie_tag_pages"] == 1  # the loop was seen, not followed


def test_a_redirect_loop_on_a_blob_ends(hostile: Mirror, tmp_path: Path) -> None:
    world = hostile.world
    lie(
        hostile,
        tmp_path,
        HubLies(repository="library/busybox", redirect_loop=True),
        error="more than 5 redirects",
    )
    blobs = len(world.corpus.get("busybox:1.36").blobs)
    assert world.hub_front.counters["lie_redirects"] == 6 * blobs  # 6 hops per blob, no retry


# --- item 2: credentials stay with their origin ------------------------------------------------


def test_a_token_realm_on_another_host_gets_no_credentials(hostile: Mirror, tmp_path: Path) -> None:
    elsewhere = hostile.world.elsewhere
    assert elsewhere is not None
    if elsewhere.url.startswith("http://127.0.0.1:"):
        pytest.skip("no 127.0.0.3 on this machine: the other host would be this one")
    lies = HubLies(repository="library/busybox", realm=elsewhere.url)
    lie(hostile, tmp_path, lies, error="asks for credentials to be sent to")
    assert elsewhere.requests == []


def test_a_next_page_on_another_host_gets_no_authorization(hostile: Mirror, tmp_path: Path) -> None:
    elsewhere = hostile.world.elsewhere
    assert elsewhere is not None
    page = f"{elsewhere.url}/v2/library/busybox/tags/list?last=1.36"
    lies = HubLies(repository="library/busybox", next_page=page)
    lie(hostile, tmp_path, lies, error="401", liar=BUSYBOX_SELECTED)
    # asked, without credentials; its 401 challenge was not learnt (no token request there)
    assert [(r.method, r.path) for r in elsewhere.requests] == [
        ("GET", "/v2/library/busybox/tags/list?last=1.36")
    ]


def test_an_upload_location_on_another_host_gets_no_ecr_credentials(
    hostile: Mirror, tmp_path: Path
) -> None:
    elsewhere = hostile.world.elsewhere
    assert elsewhere is not None
    lies = EcrLies(
        repository=target_repository("busybox"),
        upload_location=f"{elsewhere.url}/upload/here?_state=x",
    )
    lie(hostile, tmp_path, lies, error="401")
    assert {r.method for r in elsewhere.requests} == {"PUT"}
    secrets = (hostile.world.ecr_password, hostile.env["AWS_SECRET_ACCESS_KEY"])
    assert elsewhere.credentials_seen(*secrets) == []


def test_world_reset_turns_every_lie_off(fresh_world: World) -> None:
    """The lies are test state: the next test's `fresh_world` meets honest registries."""
    world = fresh_world
    assert world.elsewhere is not None and world.elsewhere.requests == []
    world.hub_front.lies = HubLies(repository="library/busybox", redirect_loop=True)
    world.ecr_front.lies = EcrLies(repository="x", upload_location=world.elsewhere.url)
    httpx.get(world.elsewhere.url)
    assert len(world.elsewhere.requests) == 1
    world.reset()
    assert world.hub_front.lies == HubLies() and world.ecr_front.lies == EcrLies()
    assert world.elsewhere.requests == []
