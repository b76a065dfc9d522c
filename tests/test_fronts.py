"""Tests of the test world's HTTP fronts, through real distribution registries.

The registries are started here by a small private helper (not tests/world/registry.py) so
that this file depends on nothing else of the world.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
import yaml

from tests.world.fronts import (
    MANIFEST_TYPES,
    SERVICE,
    TOOMANYREQUESTS_MESSAGE,
    EcrFront,
    HubFront,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ECR_PASSWORD = "ecr-test-password"
ECR_AUTH = ("AWS", ECR_PASSWORD)


# -- a private distribution registry --------------------------------------------------------
@dataclass
class Registry:
    url: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_registry(root: Path, htpasswd: Path | None = None) -> Registry:
    """`docker-registry serve` on a free port with filesystem storage under ``root``."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry (Debian package docker-registry) is not installed")
    root.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        port = _free_port()
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(root / "data")},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": f"127.0.0.1:{port}", "secret": "test-world-secret"},
        }
        if htpasswd is not None:
            config["auth"] = {"htpasswd": {"realm": "test-registry", "path": str(htpasswd)}}
        cfg = root / "config.yml"
        cfg.write_text(yaml.safe_dump(config))
        with (root / "registry.log").open("ab") as logf:
            proc = subprocess.Popen(
                [binary, "serve", str(cfg)], stdout=logf, stderr=subprocess.STDOUT
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{url}/v2/", timeout=1).status_code in (200, 401):
                    return Registry(url, proc)
            except httpx.TransportError:
                time.sleep(0.05)
        proc.kill()
        proc.wait(10)
    pytest.fail(f"docker-registry did not start; see {root / 'registry.log'}")


def write_htpasswd(path: Path, user: str, password: str) -> Path:
    """An htpasswd file with a low-cost bcrypt hash (cost 4: ~1 ms per check)."""
    tool = shutil.which("htpasswd")
    if tool is None:
        pytest.fail("htpasswd (Debian package apache2-utils) is not installed")
    line = subprocess.run(
        [tool, "-nbB", "-C", "4", user, password], check=True, capture_output=True, text=True
    ).stdout.strip()
    path.write_text(line + "\n")
    return path


# -- pushing a small image with plain httpx calls --------------------------------------------
@dataclass
class Image:
    name: str
    manifest: bytes
    digest: str
    config: bytes
    layer: bytes
    locations: list[str] = field(default_factory=list)

    @property
    def layer_digest(self) -> str:
        return sha256(self.layer)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_image(name: str, seed: int = 0, size: int = 300_000) -> Image:
    raw = random.Random(seed).randbytes(size)
    layer = gzip.compress(raw, compresslevel=1, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [sha256(raw)]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    return Image(name, manifest, sha256(manifest), config, layer)


def push_blob(client: httpx.Client, base: str, name: str, blob: bytes) -> list[str]:
    """POST then one PUT ?digest=; returns the Location headers seen."""
    r = client.post(f"{base}/v2/{name}/blobs/uploads/")
    assert r.status_code == 202, r.text
    loc = r.headers["Location"]
    url = urljoin(str(r.url), loc)
    sep = "&" if "?" in url else "?"
    r = client.put(f"{url}{sep}digest={sha256(blob)}", content=blob)
    assert r.status_code == 201, r.text
    return [loc]


def push_image(client: httpx.Client, base: str, image: Image, *tags: str) -> Image:
    for blob in (image.config, image.layer):
        image.locations += push_blob(client, base, image.name, blob)
    for tag in tags:
        r = client.put(
            f"{base}/v2/{image.name}/manifests/{tag}",
            content=image.manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert r.status_code == 201, r.text
        assert r.headers["Docker-Content-Digest"] == image.digest
    return image


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hub_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("hub-registry"))
    yield reg
    reg.stop()


PAGED_TAGS = [f"t{i:02d}" for i in range(7)]


@pytest.fixture(scope="module")
def hub_images(hub_upstream: Registry) -> dict[str, Image]:
    with httpx.Client(timeout=10) as c:
        x = push_image(c, hub_upstream.url, make_image("library/x", seed=1), "1.0")
        paged = push_image(c, hub_upstream.url, make_image("library/paged", 2), *PAGED_TAGS)
    return {"x": x, "paged": paged}


def _assert_clean(front: HubFront | EcrFront) -> None:
    assert front.errors == []
    assert front.live_threads() == []


@pytest.fixture
def hub(hub_upstream: Registry, hub_images: dict[str, Image]) -> Iterator[HubFront]:
    front = HubFront(hub_upstream.url, users={"alice": "alice-token"})
    with front:
        yield front
    _assert_clean(front)


@pytest.fixture(scope="module")
def ecr_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    root = tmp_path_factory.mktemp("ecr-registry")
    reg = start_registry(root, write_htpasswd(root / "htpasswd", *ECR_AUTH))
    yield reg
    reg.stop()


@pytest.fixture
def ecr_repos() -> set[str]:
    return set()


@pytest.fixture
def ecr(ecr_upstream: Registry, ecr_repos: set[str]) -> Iterator[EcrFront]:
    front = EcrFront(ecr_upstream.url, ecr_repos.__contains__)
    with front:
        yield front
    _assert_clean(front)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


def get_token(
    c: httpx.Client, hub: HubFront, *repos: str, auth: tuple[str, str] | None = None
) -> str:
    params: list[tuple[str, str | int | float | bool | None]] = [("service", SERVICE)]
    params += [("scope", f"repository:{r}:pull") for r in repos]
    r = c.get(f"{hub.url}/token", params=params, auth=auth)
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": MANIFEST_TYPES}


# -- Docker Hub front: auth ------------------------------------------------------------------
def test_v2_challenges_and_token_document(hub: HubFront, client: httpx.Client) -> None:
    r = client.get(f"{hub.url}/v2/")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == (
        f'Bearer realm="{hub.url}/token",service="registry.docker.io"'
    )
    r = client.get(
        f"{hub.url}/token",
        params=[
            ("service", "registry.docker.io"),
            ("scope", "repository:library/x:pull"),
            ("scope", "repository:library/paged:pull"),
        ],
    )
    assert r.status_code == 200
    doc = r.json()
    assert doc["access_token"] == doc["token"]
    assert doc["expires_in"] == 300
    assert datetime.fromisoformat(doc["issued_at"]).tzinfo is not None
    headers = bearer(doc["token"])
    assert client.get(f"{hub.url}/v2/", headers=headers).status_code == 200
    for repo in ("library/x", "library/paged"):
        r = client.head(f"{hub.url}/v2/{repo}/manifests/{'1.0' if repo == 'library/x' else 't00'}")
        assert r.status_code == 401
        r = client.head(
            f"{hub.url}/v2/{repo}/manifests/{'1.0' if repo == 'library/x' else 't00'}",
            headers=headers,
        )
        assert r.status_code == 200
    r = client.get(f"{hub.url}/token", params={"service": "elsewhere"})
    assert r.status_code == 400
    assert hub.counters["token"] == 2
    assert hub.counters["token_denied"] == 1


def test_scope_is_enforced_and_front_is_read_only(hub: HubFront, client: httpx.Client) -> None:
    url = f"{hub.url}/v2/library/x/manifests/1.0"
    r = client.get(url)
    assert r.status_code == 401
    challenge = r.headers["WWW-Authenticate"]
    assert challenge.startswith(f'Bearer realm="{hub.url}/token",service="registry.docker.io"')
    assert 'scope="repository:library/x:pull"' in challenge
    assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"

    other = bearer(get_token(client, hub, "library/other"))
    r = client.get(url, headers=other)
    assert r.status_code == 401
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    r = client.get(url, headers={"Authorization": "Bearer forged"})
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]

    good = bearer(get_token(client, hub, "library/x"))
    assert client.get(url, headers=good).status_code == 200
    r = client.put(url, headers=good, content=b"{}")
    assert r.status_code == 401
    assert 'scope="repository:library/x:pull,push"' in r.headers["WWW-Authenticate"]
    r = client.post(f"{hub.url}/v2/library/x/blobs/uploads/", headers=good)
    assert r.status_code == 401
    r = client.delete(url, headers=good)
    assert r.status_code == 401
    assert hub.counters.get("push_denied", "library/x") == 3
    assert client.options(url, headers=good).status_code == 405
    # Push scope is never granted, even when asked for.
    token = client.get(
        f"{hub.url}/token",
        params={"service": "registry.docker.io", "scope": "repository:library/y:pull,push"},
        auth=("alice", "alice-token"),
    ).json()["token"]
    r = client.post(f"{hub.url}/v2/library/y/blobs/uploads/", headers=bearer(token))
    assert r.status_code == 401


def test_bad_credentials_get_401(hub: HubFront, client: httpx.Client) -> None:
    params = {"service": "registry.docker.io", "scope": "repository:library/x:pull"}
    for auth in (("alice", "wrong"), ("mallory", "alice-token")):
        r = client.get(f"{hub.url}/token", params=params, auth=auth)
        assert r.status_code == 401
        assert "details" in r.json()
    r = client.get(f"{hub.url}/token", params=params, headers={"Authorization": "Basic !!"})
    assert r.status_code == 401
    assert hub.counters["token_denied"] == 3


def test_expired_token_answers_401_with_challenge(hub: HubFront, client: httpx.Client) -> None:
    url = f"{hub.url}/v2/library/x/manifests/1.0"
    hub.token_ttl = 2
    issued = time.time()
    r = client.get(
        f"{hub.url}/token",
        params={"service": "registry.docker.io", "scope": "repository:library/x:pull"},
    )
    assert r.json()["expires_in"] == 2
    headers = bearer(r.json()["token"])
    assert client.head(url, headers=headers).status_code == 200
    time.sleep(max(0.0, issued + 2.05 - time.time()))
    r = client.head(url, headers=headers)
    assert r.status_code == 401
    assert 'scope="repository:library/x:pull"' in r.headers["WWW-Authenticate"]
    assert hub.counters["expired_token"] == 1
    # expire_tokens() expires long-lived tokens at once.
    hub.token_ttl = 300
    headers = bearer(get_token(client, hub, "library/x"))
    assert client.head(url, headers=headers).status_code == 200
    hub.expire_tokens()
    assert client.head(url, headers=headers).status_code == 401


# -- Docker Hub front: pull quota ------------------------------------------------------------
def test_manifest_get_spends_a_pull_and_head_does_not(
    hub: HubFront, hub_images: dict[str, Image], client: httpx.Client
) -> None:
    image = hub_images["x"]
    url = f"{hub.url}/v2/library/x/manifests/1.0"
    headers = bearer(get_token(client, hub, "library/x"))
    r = client.head(url, headers=headers)
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["Content-Length"] == str(len(image.manifest))
    assert r.headers["Docker-Content-Digest"] == image.digest
    assert r.headers["ratelimit-limit"] == "100;w=21600"
    assert r.headers["ratelimit-remaining"] == "100;w=21600"
    assert r.headers["docker-ratelimit-source"] == "127.0.0.1"
    r = client.get(url, headers=headers)
    assert r.status_code == 200
    assert r.content == image.manifest
    assert r.headers["Content-Type"] == OCI_MANIFEST
    assert sha256(r.content) == r.headers["Docker-Content-Digest"] == image.digest
    assert r.headers["ratelimit-remaining"] == "99;w=21600"
    assert client.get(
        f"{hub.url}/v2/library/x/manifests/{image.digest}", headers=headers
    ).is_success
    assert hub.remaining("127.0.0.1") == 98
    # An unknown manifest costs nothing.
    r = client.get(f"{hub.url}/v2/library/x/manifests/nope", headers=headers)
    assert r.status_code == 404
    assert r.headers["ratelimit-remaining"] == "98;w=21600"
    assert hub.counters["manifest_get"] == 3
    assert hub.counters["manifest_head"] == 1
    assert hub.counters["pulls"] == 2
    assert hub.counters.get("manifest_get", "library/x", "1.0") == 1
    assert hub.counters.get("manifest_head", "library/x", "1.0") == 1
    assert hub.counters.get("pulls", "library/x", image.digest) == 1
    assert hub.counters.by_ref("manifest_get")[("library/x", "nope")] == 1


def test_spent_quota_answers_toomanyrequests(hub: HubFront, client: httpx.Client) -> None:
    url = f"{hub.url}/v2/library/x/manifests/1.0"
    headers = bearer(get_token(client, hub, "library/x"))
    hub.set_remaining("127.0.0.1", 1)
    r = client.get(url, headers=headers)
    assert r.status_code == 200
    assert r.headers["ratelimit-remaining"] == "0;w=21600"
    r = client.get(url, headers=headers)
    assert r.status_code == 429
    assert r.json() == {"errors": [{"code": "TOOMANYREQUESTS", "message": TOOMANYREQUESTS_MESSAGE}]}
    assert "Retry-After" not in r.headers
    assert r.headers["ratelimit-remaining"] == "0;w=21600"
    head = client.head(url, headers=headers)  # HEAD is free, even now
    assert head.status_code == 200
    assert head.headers["ratelimit-remaining"] == "0;w=21600"
    assert hub.counters["rate_limited"] == 1
    assert hub.counters["pulls"] == 1
    hub.reset_quota()
    r = client.get(url, headers=headers)
    assert r.status_code == 200
    assert r.headers["ratelimit-remaining"] == "99;w=21600"
    hub.set_limits(anonymous=2, window=60)
    hub.reset_quota("127.0.0.1")
    codes = [client.get(url, headers=headers).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert client.head(url, headers=headers).headers["ratelimit-limit"] == "2;w=60"


def test_user_token_has_user_limit_and_source(hub: HubFront, client: httpx.Client) -> None:
    url = f"{hub.url}/v2/library/x/manifests/1.0"
    alice = bearer(get_token(client, hub, "library/x", auth=("alice", "alice-token")))
    anon = bearer(get_token(client, hub, "library/x"))
    r = client.get(url, headers=alice)
    assert r.headers["ratelimit-limit"] == "200;w=21600"
    assert r.headers["ratelimit-remaining"] == "199;w=21600"
    assert r.headers["docker-ratelimit-source"] == "alice"
    r = client.head(url, headers=anon)
    assert r.headers["ratelimit-limit"] == "100;w=21600"
    assert r.headers["ratelimit-remaining"] == "100;w=21600"
    assert r.headers["docker-ratelimit-source"] == "127.0.0.1"
    hub.set_remaining("alice", 0)
    assert client.get(url, headers=alice).status_code == 429
    assert client.get(url, headers=anon).status_code == 200


def test_unlimited_sources_get_no_headers(hub: HubFront, client: httpx.Client) -> None:
    url = f"{hub.url}/v2/library/x/manifests/1.0"
    alice = bearer(get_token(client, hub, "library/x", auth=("alice", "alice-token")))
    anon = bearer(get_token(client, hub, "library/x"))
    hub.unlimited_users.add("alice")
    hub.set_remaining("alice", 0)
    r = client.get(url, headers=alice)
    assert r.status_code == 200
    assert not any(k.startswith(("ratelimit-", "docker-ratelimit")) for k in r.headers)
    assert "ratelimit-limit" in client.head(url, headers=anon).headers
    hub.unlimited = True
    hub.set_remaining("127.0.0.1", 0)
    for method in ("HEAD", "GET"):
        r = client.request(method, url, headers=anon)
        assert r.status_code == 200
        assert "ratelimit-limit" not in r.headers
    assert hub.remaining("127.0.0.1") is None


# -- Docker Hub front: blobs, CDN, tags ------------------------------------------------------
def test_blob_get_redirects_to_cdn_which_streams(
    hub: HubFront, hub_images: dict[str, Image], client: httpx.Client
) -> None:
    image = hub_images["x"]
    digest = image.layer_digest
    headers = bearer(get_token(client, hub, "library/x"))
    url = f"{hub.url}/v2/library/x/blobs/{digest}"
    r = client.head(url, headers=headers)
    assert r.status_code == 200
    assert "Location" not in r.headers
    assert r.headers["Content-Length"] == str(len(image.layer))
    assert r.headers["Docker-Content-Digest"] == digest

    r = client.get(url, headers=headers)
    assert r.status_code == 307
    location = r.headers["Location"]
    assert location.startswith(f"{hub.cdn_url}/cdn/library/x/{digest}?")
    assert urlsplit(location).netloc != urlsplit(hub.url).netloc
    h = hashlib.sha256()
    size = 0
    with client.stream("GET", location) as cdn:
        assert cdn.status_code == 200
        assert cdn.headers["Content-Length"] == str(len(image.layer))
        for chunk in cdn.iter_bytes():
            h.update(chunk)
            size += len(chunk)
    assert "sha256:" + h.hexdigest() == digest
    assert size == len(image.layer)
    assert hub.counters["cdn_with_auth"] == 0

    # A client that keeps its Authorization on the redirect is caught.
    r = client.get(location, headers={"Authorization": headers["Authorization"]})
    assert r.status_code == 200
    assert hub.counters["cdn_with_auth"] == 1
    # httpx drops Authorization on a cross-origin redirect.
    with httpx.Client(headers=headers, follow_redirects=True) as follower:
        assert sha256(follower.get(url).content) == digest
    assert hub.counters["cdn_with_auth"] == 1
    assert hub.counters["blob_get"] == 2
    assert hub.counters.get("cdn_get", "library/x", digest) == 3
    assert hub.counters.get("blob_head", "library/x", digest) == 1

    tampered = location.replace("sig=", "sig=00")
    assert client.get(tampered).status_code == 403
    assert hub.counters["cdn_denied"] == 1
    r = client.get(f"{hub.url}/v2/library/x/blobs/sha256:{'0' * 64}", headers=headers)
    assert r.status_code == 404
    assert r.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    # A byte range is passed through to the registry.
    r = client.get(location, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206
    assert r.content == image.layer[10:20]


def test_tags_list_is_paginated_with_link(hub: HubFront, client: httpx.Client) -> None:
    headers = bearer(get_token(client, hub, "library/paged"))
    hub.page_size = 3
    url: str | None = "/v2/library/paged/tags/list"
    pages: list[list[str]] = []
    links: list[str] = []
    while url is not None:
        r = client.get(hub.url + url, headers=headers)
        assert r.status_code == 200
        assert r.json()["name"] == "library/paged"
        pages.append(r.json()["tags"])
        link = r.headers.get("Link")
        if link:
            links.append(link)
        url = link[1 : link.index(">")] if link else None
    assert pages == [PAGED_TAGS[0:3], PAGED_TAGS[3:6], PAGED_TAGS[6:]]
    assert links[0] == '</v2/library/paged/tags/list?last=t02&n=3>; rel="next"'
    # a smaller `n` is honoured; a larger one is capped at the page size, as Docker Hub does
    r = client.get(f"{hub.url}/v2/library/paged/tags/list?n=2", headers=headers)
    assert r.json()["tags"] == PAGED_TAGS[:2]
    assert r.headers["Link"] == '</v2/library/paged/tags/list?last=t01&n=2>; rel="next"'
    r = client.get(f"{hub.url}/v2/library/paged/tags/list?n=1000", headers=headers)
    assert r.json()["tags"] == PAGED_TAGS[:3]
    hub.page_size = 100
    r = client.get(f"{hub.url}/v2/library/paged/tags/list?n=5&last=t04", headers=headers)
    assert r.json()["tags"] == PAGED_TAGS[5:]
    assert "Link" not in r.headers
    r = client.get(f"{hub.url}/v2/library/paged/tags/list?n=x", headers=headers)
    assert r.status_code == 400
    assert hub.counters.get("tags_list", "library/paged") == 7


# -- Docker Hub front: faults ----------------------------------------------------------------
def _fault_blob_503(hub: HubFront, c: httpx.Client, headers: dict[str, str], img: Image) -> bool:
    r = c.get(f"{hub.url}/v2/library/x/blobs/{img.layer_digest}", headers=headers)
    assert r.status_code in (307, 503)
    return r.status_code == 503


def _cdn_location(hub: HubFront, c: httpx.Client, headers: dict[str, str], img: Image) -> str:
    r = c.get(f"{hub.url}/v2/library/x/blobs/{img.layer_digest}", headers=headers)
    assert r.status_code == 307
    return r.headers["Location"]


def _fault_cdn_503(hub: HubFront, c: httpx.Client, headers: dict[str, str], img: Image) -> bool:
    r = c.get(_cdn_location(hub, c, headers, img))
    assert r.status_code in (200, 503)
    return r.status_code == 503


def _fault_blob_reset(hub: HubFront, c: httpx.Client, headers: dict[str, str], img: Image) -> bool:
    received = bytearray()
    try:
        with c.stream("GET", _cdn_location(hub, c, headers, img)) as r:
            assert r.status_code == 200
            assert r.headers["Content-Length"] == str(len(img.layer))
            for chunk in r.iter_raw():
                received += chunk
    except (httpx.ReadError, httpx.RemoteProtocolError):
        assert 0 < len(received) < len(img.layer)
        assert img.layer.startswith(received)
        return True
    assert bytes(received) == img.layer
    return False


def _fault_manifest_502(hub: HubFront, c: httpx.Client, headers: dict[str, str], _: Image) -> bool:
    before = hub.remaining("127.0.0.1")
    r = c.get(f"{hub.url}/v2/library/x/manifests/1.0", headers=headers)
    assert r.status_code in (200, 502)
    if r.status_code == 502:
        assert hub.remaining("127.0.0.1") == before
    return r.status_code == 502


def _fault_abuse_429(hub: HubFront, c: httpx.Client, headers: dict[str, str], _: Image) -> bool:
    before = hub.remaining("127.0.0.1")
    r = c.get(f"{hub.url}/v2/library/x/manifests/1.0", headers=headers)
    assert r.status_code in (200, 429)
    if r.status_code == 429:
        assert r.content == b""
        assert "ratelimit-remaining" not in r.headers
        assert hub.remaining("127.0.0.1") == before
    return r.status_code == 429


def _fault_latency(hub: HubFront, c: httpx.Client, headers: dict[str, str], _: Image) -> bool:
    before = hub.counters["fault_latency"]
    t0 = time.monotonic()
    assert c.get(f"{hub.url}/v2/", headers=headers).status_code == 200
    delayed = hub.counters["fault_latency"] > before
    if delayed:
        assert time.monotonic() - t0 >= 0.25
    return delayed


HUB_FAULTS = {
    "blob_503": _fault_blob_503,
    "cdn_503": _fault_cdn_503,
    "blob_reset": _fault_blob_reset,
    "manifest_502": _fault_manifest_502,
    "abuse_429": _fault_abuse_429,
    "latency_ms": _fault_latency,
}


@pytest.mark.parametrize("kind", sorted(HUB_FAULTS))
def test_hub_fault_fires_at_one_and_never_at_zero(
    kind: str, hub: HubFront, hub_images: dict[str, Image], client: httpx.Client
) -> None:
    probe = HUB_FAULTS[kind]
    headers = bearer(get_token(client, hub, "library/x"))
    image = hub_images["x"]
    assert [probe(hub, client, headers, image) for _ in range(3)] == [False] * 3
    switch: dict[str, Any] = {kind: 250.0 if kind == "latency_ms" else 1.0}
    hub.set_faults(**switch)
    assert [probe(hub, client, headers, image) for _ in range(3)] == [True] * 3
    assert hub.counters[f"fault_{kind.removesuffix('_ms')}"] == 3
    hub.set_faults()
    assert probe(hub, client, headers, image) is False


def test_hub_faults_are_seeded(hub: HubFront, client: httpx.Client) -> None:
    headers = bearer(get_token(client, hub, "library/x"))
    url = f"{hub.url}/v2/library/x/manifests/1.0"

    def run() -> list[int]:
        hub.set_faults(seed=7, manifest_502=0.5)
        return [client.get(url, headers=headers).status_code for _ in range(16)]

    first = run()
    assert set(first) == {200, 502}
    assert run() == first
    assert hub.counters["pulls"] == 2 * first.count(200)


# -- Docker Hub front: connections and lifecycle ---------------------------------------------
def test_reset_restores_both_fronts(hub: HubFront, ecr: EcrFront, client: httpx.Client) -> None:
    headers = bearer(get_token(client, hub, "library/x"))
    url = f"{hub.url}/v2/library/x/manifests/1.0"
    hub.page_size, hub.unlimited = 1, True
    hub.users["bob"] = "bob-token"
    hub.set_limits(anonymous=5)
    hub.set_faults(manifest_502=1.0)
    assert client.get(url, headers=headers).status_code == 502
    hub.reset()
    assert (hub.page_size, hub.unlimited, hub.anonymous_limit) == (100, False, 100)
    assert hub.users == {"alice": "alice-token"}
    assert hub.counters.snapshot() == {}
    r = client.get(url, headers=headers)
    assert r.status_code == 200
    assert r.headers["ratelimit-remaining"] == "99;w=21600"

    ecr.immutable_tags, ecr.blob_mounting = True, False
    ecr.set_faults(throttle_429=1.0)
    assert client.get(f"{ecr.url}/v2/", auth=ECR_AUTH).status_code == 429
    ecr.reset()
    assert (ecr.immutable_tags, ecr.blob_mounting) == (False, True)
    assert ecr.counters.snapshot() == {}
    assert client.get(f"{ecr.url}/v2/", auth=ECR_AUTH).status_code == 200


def test_hub_keeps_connections_alive(hub: HubFront, client: httpx.Client) -> None:
    headers = bearer(get_token(client, hub, "library/x"))
    url = f"{hub.url}/v2/library/x/manifests/1.0"
    statuses = [
        client.head(url, headers=headers).status_code,
        client.get(url).status_code,
        client.get(url, headers=headers).status_code,
        client.get(f"{hub.url}/v2/library/x/manifests/none", headers=headers).status_code,
        client.get(f"{hub.url}/v2/library/x/tags/list", headers=headers).status_code,
        client.put(url, headers=headers, content=b"x" * 100_000).status_code,
    ]
    assert statuses == [200, 401, 200, 404, 200, 401]
    assert hub.counters["hub_connections"] == 1


def test_stop_closes_listeners_connections_and_threads(hub_upstream: Registry) -> None:
    front = HubFront(hub_upstream.url)
    url = front.start()
    cdn = front.cdn_url
    idle = httpx.Client()
    assert idle.get(f"{url}/v2/").status_code == 401  # leaves a keep-alive connection open
    assert any(name.endswith("-conn") for name in front.live_threads())
    t0 = time.monotonic()
    front.stop()
    assert time.monotonic() - t0 < 2
    idle.close()
    assert front.live_threads() == []
    for base in (url, cdn):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/v2/", timeout=2)
    assert front.errors == []


# -- ECR front -------------------------------------------------------------------------------
def test_missing_repository_is_name_unknown(
    ecr: EcrFront, ecr_repos: set[str], client: httpx.Client
) -> None:
    url = f"{ecr.url}/v2/mirror/missing/manifests/1.0"
    r = client.get(url, auth=ECR_AUTH)
    assert r.status_code == 404
    assert r.json() == {
        "errors": [
            {
                "code": "NAME_UNKNOWN",
                "message": "The repository with name 'mirror/missing' does not exist in the "
                "registry with id '123456789012'",
            }
        ]
    }
    r = client.post(f"{ecr.url}/v2/mirror/missing/blobs/uploads/", auth=ECR_AUTH)
    assert r.status_code == 404
    assert client.get(url).status_code == 401  # credentials are checked first
    assert client.get(url, auth=("AWS", "wrong")).status_code == 401
    assert ecr.counters.get("name_unknown", "mirror/missing") == 2
    ecr_repos.add("mirror/missing")  # nothing is cached
    r = client.get(url, auth=ECR_AUTH)
    assert r.status_code == 404
    assert r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_push_through_front_with_basic_auth(
    ecr: EcrFront, ecr_repos: set[str], client: httpx.Client
) -> None:
    ecr_repos.add("mirror/library/x")
    image = make_image("mirror/library/x", seed=3)
    with httpx.Client(timeout=10, auth=ECR_AUTH) as authed:
        push_image(authed, ecr.url, image, "1.0")
        assert image.locations
        assert all(
            loc.startswith(f"{ecr.url}/v2/mirror/library/x/blobs/uploads/")
            for loc in image.locations
        )
        r = authed.get(
            f"{ecr.url}/v2/mirror/library/x/manifests/1.0", headers={"Accept": MANIFEST_TYPES}
        )
        assert r.content == image.manifest
        assert r.headers["Docker-Content-Digest"] == image.digest
        r = authed.get(f"{ecr.url}/v2/mirror/library/x/blobs/{image.layer_digest}")
        assert sha256(r.content) == image.layer_digest
        r = authed.head(f"{ecr.url}/v2/mirror/library/x/blobs/{image.layer_digest}")
        assert r.headers["Content-Length"] == str(len(image.layer))
        assert authed.get(f"{ecr.url}/v2/mirror/library/x/tags/list").json()["tags"] == ["1.0"]
    r = client.post(f"{ecr.url}/v2/mirror/library/x/blobs/uploads/")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Basic ")
    assert ecr.counters.get("blob_uploads", "mirror/library/x") == 3
    assert ecr.counters.get("upload_completed", "mirror/library/x") == 2
    assert ecr.counters.get("manifest_put", "mirror/library/x", "1.0") == 1
    assert ecr.counters["PUT upload"] == 2
    assert ecr.counters["POST upload"] == 3
    assert ecr.counters["GET manifest"] == 1
    assert ecr.counters["ecr_connections"] >= 1


def test_immutable_tags_answer_tag_invalid(
    ecr: EcrFront, ecr_repos: set[str], client: httpx.Client
) -> None:
    ecr_repos.add("mirror/immutable")
    ecr.immutable_tags = lambda name, tag: name == "mirror/immutable"
    image = make_image("mirror/immutable", seed=4)
    client.auth = ECR_AUTH
    push_image(client, ecr.url, image, "1.0")
    r = client.put(
        f"{ecr.url}/v2/mirror/immutable/manifests/1.0",
        content=image.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 400
    assert r.json() == {
        "errors": [
            {
                "code": "TAG_INVALID",
                "message": "The image tag '1.0' already exists in the 'mirror/immutable' "
                "repository and cannot be overwritten because the repository is immutable.",
            }
        ]
    }
    for ref in (image.digest, "2.0"):
        r = client.put(
            f"{ecr.url}/v2/mirror/immutable/manifests/{ref}",
            content=image.manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert r.status_code == 201, ref
    assert ecr.counters.get("tag_invalid", "mirror/immutable", "1.0") == 1
    ecr.immutable_tags = False
    r = client.put(
        f"{ecr.url}/v2/mirror/immutable/manifests/1.0",
        content=image.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 201


def test_ecr_throttling_and_upload_faults(
    ecr: EcrFront, ecr_repos: set[str], client: httpx.Client
) -> None:
    ecr_repos.add("mirror/faults")
    client.auth = ECR_AUTH
    uploads = f"{ecr.url}/v2/mirror/faults/blobs/uploads/"
    assert client.get(f"{ecr.url}/v2/").status_code == 200
    assert client.post(uploads).status_code == 202
    ecr.set_faults(throttle_429=1.0)
    for r in (client.get(f"{ecr.url}/v2/"), client.put(uploads, content=b"x" * 70_000)):
        assert r.status_code == 429
        assert r.json() == {"errors": [{"code": "TOOMANYREQUESTS", "message": "Rate exceeded"}]}
    assert ecr.counters["throttled"] == 2
    for status in (500, 503):
        switch: dict[str, Any] = {f"upload_{status}": 1.0}
        ecr.set_faults(**switch)
        assert client.post(uploads).status_code == status
        assert client.get(f"{ecr.url}/v2/").status_code == 200  # not an upload
        assert ecr.counters[f"fault_upload_{status}"] == 1
    ecr.set_faults(latency_ms=200)
    t0 = time.monotonic()
    assert client.get(f"{ecr.url}/v2/").status_code == 200
    assert time.monotonic() - t0 >= 0.2
    ecr.set_faults()
    assert client.post(uploads).status_code == 202
    assert ecr.counters["ecr_connections"] == 1  # faults keep the connection usable


def test_second_patch_is_counted_and_discarded(
    ecr: EcrFront, ecr_repos: set[str], client: httpx.Client
) -> None:
    ecr_repos.add("mirror/chunks")
    client.auth = ECR_AUTH
    blob = random.Random(5).randbytes(200_000)
    uploads = f"{ecr.url}/v2/mirror/chunks/blobs/uploads/"

    def upload_in_two_patches() -> httpx.Response:
        loc = client.post(uploads).headers["Location"]
        for part in (blob[:100_000], blob[100_000:]):
            r = client.patch(loc, content=part)
            assert r.status_code == 201  # as ECR answers a PATCH
            loc = r.headers["Location"]
            assert loc.startswith(f"{ecr.url}/v2/mirror/chunks/blobs/uploads/")
        return client.put(f"{loc}&digest={sha256(blob)}")

    r = upload_in_two_patches()
    assert r.status_code == 400  # the second part never arrived, as on ECR
    assert ecr.counters.get("multi_patch_uploads", "mirror/chunks") == 1
    ecr.discard_second_patch = False
    assert upload_in_two_patches().status_code == 201
    assert ecr.counters["multi_patch_uploads"] == 2

    # One streaming PATCH with chunked transfer encoding, then an empty PUT: fine.
    def pieces() -> Iterator[bytes]:
        for i in range(0, len(blob), 30_000):
            yield blob[i : i + 30_000]

    loc = client.post(uploads).headers["Location"]
    r = client.patch(loc, content=pieces())
    assert r.status_code == 201
    assert r.headers["Range"] == f"0-{len(blob) - 1}"
    r = client.put(f"{r.headers['Location']}&digest={sha256(blob)}")
    assert r.status_code == 201
    assert ecr.counters["multi_patch_uploads"] == 2
    assert ecr.counters["patches"] == 5


def test_cross_repository_mount(ecr: EcrFront, ecr_repos: set[str], client: httpx.Client) -> None:
    ecr_repos.update({"mirror/a", "mirror/b", "mirror/c"})
    client.auth = ECR_AUTH
    blob = b"mount me"
    push_blob(client, ecr.url, "mirror/a", blob)
    r = client.post(f"{ecr.url}/v2/mirror/b/blobs/uploads/?mount={sha256(blob)}&from=mirror/a")
    assert r.status_code == 201
    ecr.blob_mounting = False
    r = client.post(f"{ecr.url}/v2/mirror/c/blobs/uploads/?mount={sha256(blob)}&from=mirror/a")
    assert r.status_code == 202
    assert r.headers["Location"].startswith(f"{ecr.url}/v2/mirror/c/blobs/uploads/")
    assert ecr.counters["mounts"] == 2
    assert ecr.counters.get("mounted", "mirror/b") == 1
    assert ecr.counters["mounted"] == 1


# -- standard clients ------------------------------------------------------------------------
def _skopeo(*args: str) -> str:
    tool = shutil.which("skopeo")
    if tool is None:
        pytest.fail("skopeo is not installed")
    proc = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_skopeo_through_both_fronts(
    hub: HubFront,
    ecr: EcrFront,
    ecr_repos: set[str],
    hub_images: dict[str, Image],
    tmp_path: Path,
) -> None:
    hub.page_size = 2  # skopeo has to follow the Link headers
    src = f"docker://{urlsplit(hub.url).netloc}/library/paged:t03"
    info = json.loads(_skopeo("inspect", "--tls-verify=false", src))
    assert info["Digest"] == hub_images["paged"].digest
    assert info["RepoTags"] == PAGED_TAGS
    assert hub.counters["token"] >= 1
    assert hub.counters["cdn_get"] >= 1  # the config blob came from the CDN
    assert hub.counters["tags_list"] == 4

    ecr_repos.add("mirror/library/paged")
    dest = f"docker://{urlsplit(ecr.url).netloc}/mirror/library/paged:t03"
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    _skopeo(
        "copy",
        "--policy",
        str(policy),
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"{ECR_AUTH[0]}:{ECR_AUTH[1]}",
        src,
        dest,
    )
    info = json.loads(
        _skopeo("inspect", "--tls-verify=false", "--creds", f"{ECR_AUTH[0]}:{ECR_AUTH[1]}", dest)
    )
    assert info["Digest"] == hub_images["paged"].digest
    assert info["RepoTags"] == ["t03"]
    assert hub.counters["cdn_with_auth"] == 0
    assert ecr.counters["multi_patch_uploads"] == 0
    assert ecr.counters["manifest_put"] == 1
