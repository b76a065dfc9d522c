"""An Amazon ECR look-alike in front of a distribution registry that has htpasswd auth.

``EcrFront(upstream, repository_exists).start()`` serves on ``http://127.0.0.1:<port>`` and
proxies every request (all methods, bodies streamed both ways, Content-Length or chunked) to
the upstream, passing ``Authorization`` through (the upstream checks HTTP Basic ``AWS:pw``)
and rewriting upstream ``Location`` headers to point at the front. On top it behaves as ECR:

* Repositories must exist (``repository_exists(name)``, asked on every request unless
  ``exists_cache_ttl`` < 1 s is set): otherwise 404 ``NAME_UNKNOWN`` with ECR's message (a
  request without valid credentials still gets the registry's 401 first).
* Chunked uploads are broken as on ECR: a PATCH answers ``patch_status`` (201, as ECR does)
  and a second PATCH to the same upload session is counted (``multi_patch_uploads``) and,
  with ``discard_second_patch`` (default), answered without storing its body, so the final
  PUT fails its digest check as it would on ECR.
* ``immutable_tags`` (bool, or a callable ``(name, tag) -> bool``, such as
  ``World.tag_is_immutable``, which reads the repository's mutability and exclusion filters
  from moto): a manifest PUT by an immutable tag over an existing tag answers 400
  ``TAG_INVALID`` (even for the same digest), with ECR's message.
* Deleting a tag (``DELETE /v2/<name>/manifests/<tag>``, OCI distribution 1.1) removes that
  tag only, as ECR's untag does (``BatchDeleteImage`` by tag): the registry beneath deletes by
  digest only, with every tag of that digest, so the front deletes the digest and puts the
  manifest back under its other tags (``tags_deleted``* counts them).
* ``blob_mounting=False`` turns ``POST ?mount=&from=`` into a plain upload session (202), as
  ECR does while the account has not enabled BLOB_MOUNTING.
* Lies about one repository (``front.lies``, an ``EcrLies``: see
  ``tests/world/liarfront.py``).
* Seeded faults (:meth:`EcrFront.set_faults`): 429 ``TOOMANYREQUESTS: Rate exceeded`` on any
  request, 500/503 on blob upload requests, added latency. A faulted request is not sent on.

Counters (``front.counters[name]``; starred ones also per repository through
``counters.get(name, repo)`` / per (repo, ref)): one per method and kind,
``"<METHOD> <kind>"``* with kind in base, catalog, manifest, blob, upload, tags, referrers,
other (e.g. ``"PATCH upload"``); ``blob_uploads``* (POST without mount), ``mounts``*
(POST with mount), ``mounted``* (mount answered 201), ``patches``, ``extra_patches``,
``multi_patch_uploads``* (sessions that got a second PATCH), ``upload_completed``* (PUT
answered 201), ``manifest_put``* (per repo, ref), ``tag_invalid``*, ``name_unknown``*,
``throttled`` (429s injected), ``fault_upload_500``, ``fault_upload_503``,
``fault_latency``, ``ecr_connections``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import parse_qsl, urlencode

from .httpfront import (
    HOP_BY_HOP,
    MANIFEST_TYPES,
    Dice,
    Front,
    FrontHandler,
    UpstreamPool,
    UpstreamResponse,
    errors_body,
    route,
)
from .liarfront import EcrLies, ecr_lie

REGISTRY_ID = "123456789012"


_SETTINGS = (
    "repository_exists",
    "immutable_tags",
    "exists_cache_ttl",
    "patch_status",
    "discard_second_patch",
    "blob_mounting",
)
"""Attributes a test may change at run time; :meth:`EcrFront.reset` restores them."""


@dataclass(frozen=True)
class EcrFaults:
    """Fault switches; probabilities in [0, 1]. All off by default."""

    seed: int = 0
    throttle_429: float = 0.0  # any request answers 429 TOOMANYREQUESTS "Rate exceeded"
    upload_500: float = 0.0  # POST/PATCH/PUT .../blobs/uploads/... answers 500
    upload_503: float = 0.0  # same, 503
    latency_ms: float = 0.0  # added to every request


@dataclass
class _Session:
    patches: int = 0
    location: str | None = None
    range: str | None = None


def _kind(path: str, r: tuple[str, str, str] | None) -> str:
    if path in ("/v2", "/v2/"):
        return "base"
    if path == "/v2/_catalog":
        return "catalog"
    if r is None:
        return "other"
    _, kind, rest = r
    if kind == "manifests":
        return "manifest"
    if kind == "blobs":
        return "upload" if rest.startswith("uploads") else "blob"
    return kind


class EcrFront(Front):
    """ECR behaviour (repositories, immutability, broken chunked uploads, throttling)."""

    def __init__(
        self,
        upstream: str,
        repository_exists: Callable[[str], bool],
        *,
        registry_id: str = REGISTRY_ID,
        immutable_tags: bool | Callable[[str, str], bool] = False,
        exists_cache_ttl: float = 0.0,
        patch_status: int = 201,
        discard_second_patch: bool = True,
        blob_mounting: bool = True,
    ) -> None:
        super().__init__()
        if not 0 <= exists_cache_ttl < 1:
            raise ValueError("exists_cache_ttl must be in [0, 1) seconds")
        self.upstream = upstream
        self.repository_exists = repository_exists
        self.registry_id = registry_id
        self.immutable_tags = immutable_tags
        self.exists_cache_ttl = exists_cache_ttl
        self.patch_status = patch_status
        self.discard_second_patch = discard_second_patch
        self.blob_mounting = blob_mounting
        self.faults = EcrFaults()
        self.lies = EcrLies()
        self._dice = Dice(0)
        self._pool = UpstreamPool(upstream)
        self._pools.append(self._pool)
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._tag_locks: dict[tuple[str, str], threading.Lock] = {}
        self._exists_cache: dict[str, tuple[bool, float]] = {}
        self._initial = {k: getattr(self, k) for k in _SETTINGS}

    def start(self) -> str:
        """Start the front; returns its base URL."""
        if self.url:
            raise RuntimeError("EcrFront already started")
        server = self._listen("127.0.0.1", _EcrHandler, "ecr")
        self.url = f"http://127.0.0.1:{server.port}"
        return self.url

    def reset(self) -> None:
        """Back to the state after start(): settings as constructed, faults and lies off,
        counters zero, upload sessions and the existence cache forgotten."""
        for k, v in self._initial.items():
            setattr(self, k, v)
        self.set_faults()
        self.lies = EcrLies()
        with self._lock:
            self._sessions.clear()
            self._exists_cache.clear()
        self.reset_counters()

    def set_faults(
        self,
        *,
        seed: int = 0,
        throttle_429: float = 0.0,
        upload_500: float = 0.0,
        upload_503: float = 0.0,
        latency_ms: float = 0.0,
    ) -> None:
        """Replace the fault settings (no argument: all off) and reseed the dice."""
        self.faults = EcrFaults(seed, throttle_429, upload_500, upload_503, latency_ms)
        self._dice = Dice(seed)
        self._latency_ms = latency_ms

    # -- helpers ----------------------------------------------------------------------------
    def _exists(self, name: str) -> bool:
        if self.exists_cache_ttl > 0:
            now = time.monotonic()
            with self._lock:
                hit = self._exists_cache.get(name)
            if hit is not None and now - hit[1] < self.exists_cache_ttl:
                return hit[0]
            found = bool(self.repository_exists(name))
            with self._lock:
                self._exists_cache[name] = (found, now)
            return found
        return bool(self.repository_exists(name))

    def _immutable(self, name: str, tag: str) -> bool:
        flag = self.immutable_tags
        return bool(flag(name, tag)) if callable(flag) else bool(flag)

    def _rewrite(self, location: str) -> str:
        if location.startswith(self._pool.base):
            return self.url + location[len(self._pool.base) :]
        return location

    def _tag_lock(self, name: str, tag: str) -> threading.Lock:
        with self._lock:
            return self._tag_locks.setdefault((name, tag), threading.Lock())

    def _forward(self, h: FrontHandler, target: str | None = None) -> UpstreamResponse:
        headers = [(k, v) for k, v in h.headers.items() if k.lower() not in HOP_BY_HOP]
        body = None
        if h.has_body():
            length = h.body_length()
            if length is not None:
                headers.append(("Content-Length", str(length)))
            body = h.iter_body()
        return self._pool.request(h.command, target or h.path, headers, body)

    def _relay(self, h: FrontHandler, up: UpstreamResponse, status: int | None = None) -> None:
        h.relay(up, status=status, rewrite_location=self._rewrite)

    def _credentials_refused(self, h: FrontHandler) -> bool:
        """Let the registry judge the credentials first; relay its 401 when it refuses."""
        auth = [("Authorization", v) for v in h.headers.get_all("Authorization", [])]
        up = self._pool.request("GET", "/v2/", auth)
        if up.status == 401:
            self._relay(h, up)
            return True
        up.read_all()
        return False

    # -- the front --------------------------------------------------------------------------
    def _handle(self, h: FrontHandler) -> None:
        method, path = h.command, h.path_only
        r = route(path)
        kind = _kind(path, r)
        name = r[0] if r else None
        self.counters.incr(f"{method} {kind}", name)
        if self._dice.roll(self.faults.throttle_429):
            h.drain_body()
            self.counters.incr("throttled")
            h.send_json(429, errors_body("TOOMANYREQUESTS", "Rate exceeded"))
            return
        if kind == "upload" and method in ("POST", "PATCH", "PUT"):
            for status, p, code in (
                (500, self.faults.upload_500, "UNKNOWN"),
                (503, self.faults.upload_503, "UNAVAILABLE"),
            ):
                if self._dice.roll(p):
                    h.drain_body()
                    self.counters.incr(f"fault_upload_{status}")
                    h.send_json(status, errors_body(code, "Service error"))
                    return
        if r is None or name is None:
            self._relay(h, self._forward(h))
            return
        if not self._exists(name):
            if self._credentials_refused(h):
                return
            h.drain_body()
            self.counters.incr("name_unknown", name)
            message = (
                f"The repository with name '{name}' does not exist in the registry "
                f"with id '{self.registry_id}'"
            )
            h.send_json(404, errors_body("NAME_UNKNOWN", message))
            return
        rest = r[2]
        if ecr_lie(self, h, name, kind, rest):
            return
        if kind == "upload":
            self._upload(h, name, rest.removeprefix("uploads").strip("/"))
        elif kind == "manifest" and method == "PUT":
            self._manifest_put(h, name, rest)
        elif kind == "manifest" and method == "DELETE" and ":" not in rest:
            self._untag(h, name, rest)
        elif kind == "tags":
            self._tags(h, name)
        else:
            self._relay(h, self._forward(h))

    def _tags(self, h: FrontHandler, name: str) -> None:
        """ECR lists an existing repository's tags even before its first push; the
        registry beneath only knows repositories that something was pushed to."""
        up = self._forward(h)
        if up.status != 404:
            self._relay(h, up)
            return
        up.read_all()
        h.send_json(200, {"name": name, "tags": []})

    def _upload(self, h: FrontHandler, name: str, uuid: str) -> None:
        method = h.command
        if method == "POST" and not uuid:
            query = parse_qsl(h.query, keep_blank_values=True)
            mount = any(k == "mount" for k, _ in query)
            target = None
            if mount:
                self.counters.incr("mounts", name)
                if not self.blob_mounting:
                    kept = [(k, v) for k, v in query if k not in ("mount", "from")]
                    target = h.path_only + (f"?{urlencode(kept)}" if kept else "")
            else:
                self.counters.incr("blob_uploads", name)
            up = self._forward(h, target)
            if mount and up.status == 201:
                self.counters.incr("mounted", name)
            self._relay(h, up)
            return
        if method == "PATCH" and uuid:
            self._patch(h, name, uuid)
            return
        up = self._forward(h)
        if method in ("PUT", "DELETE") and uuid:
            with self._lock:
                self._sessions.pop(uuid, None)
            if method == "PUT" and up.status == 201:
                self.counters.incr("upload_completed", name)
        self._relay(h, up)

    def _patch(self, h: FrontHandler, name: str, uuid: str) -> None:
        self.counters.incr("patches")
        with self._lock:
            s = self._sessions.setdefault(uuid, _Session())
            s.patches += 1
            n, location, rng = s.patches, s.location, s.range
        if n >= 2:
            self.counters.incr("extra_patches")
            if n == 2:
                self.counters.incr("multi_patch_uploads", name)
            if self.discard_second_patch and location is not None:
                h.drain_body()  # what ECR does with it
                headers = [("Location", location), ("Docker-Upload-UUID", uuid)]
                if rng is not None:
                    headers.append(("Range", rng))
                h.send_bytes(self.patch_status, b"", None, headers=headers)
                return
        up = self._forward(h)
        status = None
        if up.status == 202:
            status = self.patch_status
            with self._lock:
                loc = up.headers.get("Location")
                s.location = self._rewrite(loc) if loc else None
                s.range = up.headers.get("Range")
        self._relay(h, up, status)

    def _manifest_put(self, h: FrontHandler, name: str, ref: str) -> None:
        self.counters.incr("manifest_put", name, ref)
        if ":" in ref or not self._immutable(name, ref):
            self._relay(h, self._forward(h))
            return
        with self._tag_lock(name, ref):
            auth = [("Authorization", v) for v in h.headers.get_all("Authorization", [])]
            head = self._pool.request(
                "HEAD", f"/v2/{name}/manifests/{ref}", [*auth, ("Accept", MANIFEST_TYPES)]
            )
            head.release()
            if head.status == 200:
                h.drain_body()
                self.counters.incr("tag_invalid", name, ref)
                message = (
                    f"The image tag '{ref}' already exists in the '{name}' repository and "
                    "cannot be overwritten because the repository is immutable."
                )
                h.send_json(400, errors_body("TAG_INVALID", message))
                return
            self._relay(h, self._forward(h))

    def _untag(self, h: FrontHandler, name: str, tag: str) -> None:
        """Remove one tag, keeping the image and its other tags."""
        auth = [("Authorization", v) for v in h.headers.get_all("Authorization", [])]
        accept = [*auth, ("Accept", MANIFEST_TYPES)]
        with self._tag_lock(name, tag):
            got = self._pool.request("GET", f"/v2/{name}/manifests/{tag}", accept)
            raw = got.read_all()
            if got.status != 200:
                h.send_bytes(got.status, raw)
                return
            digest = got.headers["Docker-Content-Digest"]
            media_type = got.headers["Content-Type"]
            listing = self._pool.request("GET", f"/v2/{name}/tags/list", auth)
            others = []
            for other in json.loads(listing.read_all()).get("tags") or []:
                head = self._pool.request("HEAD", f"/v2/{name}/manifests/{other}", accept)
                head.release()
                if other != tag and head.headers.get("Docker-Content-Digest") == digest:
                    others.append(other)
            gone = self._pool.request("DELETE", f"/v2/{name}/manifests/{digest}", auth)
            gone.read_all()
            for other in others:
                put = self._pool.request(
                    "PUT",
                    f"/v2/{name}/manifests/{other}",
                    [*auth, ("Content-Type", media_type)],
                    raw,
                )
                put.read_all()
            self.counters.incr("tags_deleted", name)
            h.send_bytes(gone.status, b"")


class _EcrHandler(FrontHandler):
    def handle_request(self) -> None:
        cast(EcrFront, self.server.owner)._handle(self)


__all__ = ["REGISTRY_ID", "EcrFaults", "EcrFront"]
