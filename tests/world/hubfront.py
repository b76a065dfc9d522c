"""A Docker Hub look-alike in front of a plain (no auth) distribution registry.

``HubFront(upstream).start()`` serves on ``http://127.0.0.1:<port>``:

* ``/v2/`` and every ``/v2/<name>/...`` request need a Bearer token from ``<url>/token``
  (anonymous, or HTTP Basic ``user:token`` checked against ``users``) whose scope covers
  the repository (pull). Without one: 401 with Docker Hub's ``WWW-Authenticate`` challenge.
  Writes always answer 401 (the front is read-only, as Docker Hub is to a stranger).
* Pull quota per source (user name, else client IP): every manifest GET/HEAD answer carries
  ``ratelimit-limit``/``ratelimit-remaining``/``docker-ratelimit-source``; a successful
  manifest GET spends one pull; at 0 a GET answers 429 TOOMANYREQUESTS. Unlimited sources
  get no headers at all.
* Blob GETs answer 307 to a CDN listener on another address (127.0.0.2 when the machine
  allows it, so that even clients that strip Authorization only on a change of host name
  are tested) which streams the blob and counts requests that carried Authorization.
* Tags lists are paginated by the front (sorted, ``n``/``last``, ``Link: <...>; rel="next"``).
* Seeded faults (:meth:`HubFront.set_faults`) never spend quota.
* Lies about one repository (``front.lies``, a ``HubLies``: see ``tests/world/liarfront.py``).

Counters (``front.counters[name]``; the starred ones also per (repo, ref) through
``counters.get(name, repo, ref)``): ``manifest_get``*, ``manifest_head``*, ``pulls``*
(manifest GETs answered 200, i.e. quota spent), ``rate_limited`` (429 TOOMANYREQUESTS),
``blob_get``* (at the front), ``blob_head``*, ``cdn_requests``, ``cdn_get``*,
``cdn_with_auth``, ``cdn_denied`` (bad or expired signature), ``tags_list``*, ``token``
(token requests), ``token_denied``, ``unauthorized`` (401 challenges), ``expired_token``,
``push_denied``*, ``fault_blob_503``, ``fault_cdn_503``, ``fault_blob_reset``,
``fault_manifest_502``, ``fault_abuse_429``, ``fault_latency``, ``hub_connections``,
``cdn_connections``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast
from urllib.parse import parse_qs, quote

from .httpfront import (
    Dice,
    Front,
    FrontHandler,
    UpstreamPool,
    errors_body,
    route,
)
from .liarfront import HubLies, hub_lie

SERVICE = "registry.docker.io"
API_VERSION = ("Docker-Distribution-Api-Version", "registry/2.0")
TOOMANYREQUESTS_MESSAGE = (
    "You have reached your pull rate limit. You may increase the limit by authenticating "
    "and upgrading: https://www.docker.com/increase-rate-limit"
)
_PASS = frozenset(
    {
        "content-length",
        "content-type",
        "docker-content-digest",
        "etag",
        "content-range",
        "accept-ranges",
        "last-modified",
        "link",
    }
)


_SETTINGS = (
    "users",
    "token_ttl",
    "anonymous_limit",
    "user_limit",
    "window",
    "unlimited",
    "unlimited_users",
    "page_size",
    "cdn_url_ttl",
)
"""Attributes a test may change at run time; :meth:`HubFront.reset` restores them."""


@dataclass(frozen=True)
class HubFaults:
    """Fault switches; probabilities in [0, 1]. All off by default."""

    seed: int = 0
    blob_503: float = 0.0  # blob GET at the front answers 503
    cdn_503: float = 0.0  # blob GET at the CDN answers 503
    blob_reset: float = 0.0  # CDN sends headers and half the body, then resets the connection
    manifest_502: float = 0.0  # manifest GET answers 502
    abuse_429: float = 0.0  # any /v2/<name>/ request answers a bare 429 (abuse limit)
    latency_ms: float = 0.0  # added to every request, on both listeners


@dataclass
class _Token:
    user: str | None
    access: dict[str, frozenset[str]]
    expires_at: float


@dataclass
class _Quota:
    used: int = 0
    since: float = field(default_factory=time.monotonic)


class HubFront(Front):
    """Docker Hub behaviour (auth, quota, CDN redirect, pagination, faults) over a registry."""

    def __init__(
        self,
        upstream: str,
        *,
        users: Mapping[str, str] | None = None,
        token_ttl: int = 300,
        anonymous_limit: int = 100,
        user_limit: int = 200,
        window: int = 21600,
        unlimited: bool = False,
        unlimited_users: Iterable[str] = (),
        page_size: int = 100,
        service: str = SERVICE,
        cdn_host: str = "127.0.0.2",
        cdn_url_ttl: int = 1200,
    ) -> None:
        super().__init__()
        self.upstream = upstream
        self.users: dict[str, str] = dict(users or {})
        self.token_ttl = token_ttl
        self.anonymous_limit = anonymous_limit
        self.user_limit = user_limit
        self.window = window
        self.unlimited = unlimited
        self.unlimited_users: set[str] = set(unlimited_users)
        self.page_size = page_size
        self.service = service
        self.cdn_host = cdn_host
        self.cdn_url_ttl = cdn_url_ttl
        self.cdn_url = ""
        self.faults = HubFaults()
        self.lies = HubLies()
        self._dice = Dice(0)
        self._pool = UpstreamPool(upstream)
        self._pools.append(self._pool)
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        self._quota: dict[str, _Quota] = {}
        self._cdn_secret = secrets.token_bytes(32)
        self._initial = {k: copy.copy(getattr(self, k)) for k in _SETTINGS}

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> str:
        """Start the front and its CDN; returns the front's base URL."""
        if self.url:
            raise RuntimeError("HubFront already started")
        hub = self._listen("127.0.0.1", _HubHandler, "hub")
        try:
            cdn = self._listen(self.cdn_host, _CdnHandler, "cdn")
        except OSError:
            cdn = self._listen("127.0.0.1", _CdnHandler, "cdn")
        self.url = f"http://127.0.0.1:{hub.port}"
        self.cdn_url = f"http://{cdn.server_name}:{cdn.port}"
        return self.url

    # -- switches ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the state after start(): settings as constructed, quotas full, faults and
        lies off, counters zero. Tokens already issued stay valid."""
        for k, v in self._initial.items():
            setattr(self, k, copy.copy(v))
        self.set_faults()
        self.lies = HubLies()
        self.reset_quota()
        self.reset_counters()

    def set_faults(
        self,
        *,
        seed: int = 0,
        blob_503: float = 0.0,
        cdn_503: float = 0.0,
        blob_reset: float = 0.0,
        manifest_502: float = 0.0,
        abuse_429: float = 0.0,
        latency_ms: float = 0.0,
    ) -> None:
        """Replace the fault settings (no argument: all off) and reseed the dice."""
        self.faults = HubFaults(
            seed, blob_503, cdn_503, blob_reset, manifest_502, abuse_429, latency_ms
        )
        self._dice = Dice(seed)
        self._latency_ms = latency_ms

    def set_limits(
        self, *, anonymous: int | None = None, user: int | None = None, window: int | None = None
    ) -> None:
        """Change the quota limits at run time (pulls already spent stay spent)."""
        with self._lock:
            if anonymous is not None:
                self.anonymous_limit = anonymous
            if user is not None:
                self.user_limit = user
            if window is not None:
                self.window = window

    def reset_quota(self, source: str | None = None) -> None:
        """Refill one source's quota, or every source's."""
        with self._lock:
            if source is None:
                self._quota.clear()
            else:
                self._quota.pop(source, None)

    def set_remaining(self, source: str, n: int) -> None:
        """Make ``source`` (an IP such as 127.0.0.1, or a user name) have ``n`` pulls left."""
        with self._lock:
            q = self._roll(source)
            q.used = self._limit(source) - n

    def remaining(self, source: str) -> int | None:
        """Pulls left for ``source``; None when it is unlimited."""
        if self.is_unlimited(source):
            return None
        with self._lock:
            return max(0, self._limit(source) - self._roll(source).used)

    def is_unlimited(self, source: str) -> bool:
        return self.unlimited or source in self.unlimited_users

    def expire_tokens(self) -> None:
        """Make every token issued so far expired (clients must renew on the 401)."""
        with self._lock:
            for t in self._tokens.values():
                t.expires_at = 0.0

    # -- quota ------------------------------------------------------------------------------
    def _limit(self, source: str) -> int:
        return self.user_limit if source in self.users else self.anonymous_limit

    def _roll(self, source: str) -> _Quota:
        """The source's quota record, refilled when its window has passed (lock held)."""
        q = self._quota.get(source)
        now = time.monotonic()
        if q is None or now - q.since >= self.window:
            q = self._quota[source] = _Quota(0, now)
        return q

    def _reserve(self, source: str) -> bool:
        with self._lock:
            q = self._roll(source)
            if q.used >= self._limit(source):
                return False
            q.used += 1
            return True

    def _refund(self, source: str) -> None:
        with self._lock:
            q = self._quota.get(source)
            if q is not None:
                q.used -= 1

    def _ratelimit_headers(self, source: str) -> list[tuple[str, str]]:
        if self.is_unlimited(source):
            return []
        with self._lock:
            limit = self._limit(source)
            left = max(0, limit - self._roll(source).used)
            w = self.window
        return [
            ("ratelimit-limit", f"{limit};w={w}"),
            ("ratelimit-remaining", f"{left};w={w}"),
            ("docker-ratelimit-source", source),
        ]

    # -- auth -------------------------------------------------------------------------------
    def _challenge(
        self, h: FrontHandler, name: str | None, actions: str, error: str | None
    ) -> None:
        self.counters.incr("unauthorized")
        value = f'Bearer realm="{self.url}/token",service="{self.service}"'
        detail = None
        if name is not None:
            value += f',scope="repository:{name}:{actions}"'
            detail = [
                {"Type": "repository", "Class": "", "Name": name, "Action": a}
                for a in actions.split(",")
            ]
        if error:
            value += f',error="{error}"'
        h.send_json(
            401,
            errors_body("UNAUTHORIZED", "authentication required", detail),
            headers=[("WWW-Authenticate", value), API_VERSION],
        )

    def _bearer(self, h: FrontHandler) -> tuple[_Token | None, str | None]:
        """(token, None) when valid; (None, None) without one; (None, error) when bad."""
        auth = h.headers.get("Authorization")
        if not auth:
            return None, None
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer":
            return None, "invalid_token"
        with self._lock:
            tok = self._tokens.get(value.strip())
        if tok is None:
            return None, "invalid_token"
        if time.time() >= tok.expires_at:
            self.counters.incr("expired_token")
            return None, "invalid_token"
        return tok, None

    def _token(self, h: FrontHandler) -> None:
        self.counters.incr("token")
        if h.command != "GET":
            h.send_json(405, {"details": "method not allowed"})
            return
        q = parse_qs(h.query, keep_blank_values=True)
        if q.get("service", [""])[-1] != self.service:
            self.counters.incr("token_denied")
            h.send_json(400, {"details": "invalid service"})
            return
        user: str | None = None
        auth = h.headers.get("Authorization")
        if auth:
            user = self._basic_user(auth)
            if user is None:
                self.counters.incr("token_denied")
                h.send_json(
                    401,
                    {"details": "incorrect username or password"},
                    headers=[("WWW-Authenticate", 'Basic realm="Docker Hub"')],
                )
                return
        access: dict[str, frozenset[str]] = {}
        for param in q.get("scope", []):
            for scope in param.split():
                typ, _, rest = scope.partition(":")
                name, _, actions = rest.rpartition(":")
                if typ == "repository" and name and "pull" in actions.split(","):
                    access[name] = frozenset({"pull"})  # read-only: never push
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            self._tokens[token] = _Token(user, access, now + self.token_ttl)
        issued = datetime.fromtimestamp(now, UTC).isoformat(timespec="microseconds")
        h.send_json(
            200,
            {
                "token": token,
                "access_token": token,
                "expires_in": self.token_ttl,
                "issued_at": issued.replace("+00:00", "Z"),
            },
        )

    def _basic_user(self, auth: str) -> str | None:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        expected = self.users.get(user)
        if not sep or expected is None:
            return None
        if not hmac.compare_digest(expected.encode(), password.encode()):
            return None
        return user

    # -- the front --------------------------------------------------------------------------
    def _handle_front(self, h: FrontHandler) -> None:
        path = h.path_only
        if path == "/token":
            self._token(h)
            return
        if path in ("/v2", "/v2/"):
            tok, err = self._bearer(h)
            if h.command not in ("GET", "HEAD"):
                h.send_json(405, errors_body("UNSUPPORTED", "The operation is unsupported."))
            elif tok is None:
                self._challenge(h, None, "", err)
            else:
                h.send_json(200, {}, headers=[API_VERSION])
            return
        r = route(path)
        if r is None:
            h.send_json(404, errors_body("NOT_FOUND", "not found"), headers=[API_VERSION])
            return
        name, kind, rest = r
        if hub_lie(self, h, name, kind, rest):
            return
        if h.command in ("PUT", "POST", "PATCH", "DELETE"):
            h.drain_body()
            tok, err = self._bearer(h)
            self.counters.incr("push_denied", name)
            self._challenge(h, name, "pull,push", "insufficient_scope" if tok else err)
            return
        if h.command not in ("GET", "HEAD"):
            h.send_json(405, errors_body("UNSUPPORTED", "The operation is unsupported."))
            return
        tok, err = self._bearer(h)
        if tok is None:
            self._challenge(h, name, "pull", err)
            return
        if "pull" not in tok.access.get(name, frozenset()):
            self._challenge(h, name, "pull", "insufficient_scope")
            return
        source = tok.user or h.client_address[0]
        if self._dice.roll(self.faults.abuse_429):
            self.counters.incr("fault_abuse_429")
            h.send_bytes(429, b"", None)
            return
        if kind == "manifests" and rest:
            self._manifest(h, name, rest, source)
        elif kind == "blobs" and rest and not rest.startswith("uploads"):
            self._blob(h, name, rest)
        elif kind == "tags" and rest == "list":
            self._tags(h, name)
        else:
            up = self._pool.request(h.command, path, self._accept(h))
            h.relay(up, headers=[API_VERSION], pass_headers=_PASS)

    @staticmethod
    def _accept(h: FrontHandler) -> list[tuple[str, str]]:
        return [("Accept", a) for a in h.headers.get_all("Accept", [])]

    def _manifest(self, h: FrontHandler, name: str, ref: str, source: str) -> None:
        get = h.command == "GET"
        self.counters.incr("manifest_get" if get else "manifest_head", name, ref)
        if get and self._dice.roll(self.faults.manifest_502):
            self.counters.incr("fault_manifest_502")
            h.send_bytes(502, b"<html><body>502 Bad Gateway</body></html>", "text/html")
            return
        reserved = False
        if get and not self.is_unlimited(source):
            if not self._reserve(source):
                self.counters.incr("rate_limited", name, ref)
                h.send_json(
                    429,
                    errors_body("TOOMANYREQUESTS", TOOMANYREQUESTS_MESSAGE),
                    headers=[API_VERSION, *self._ratelimit_headers(source)],
                )
                return
            reserved = True
        try:
            up = self._pool.request(h.command, f"/v2/{name}/manifests/{ref}", self._accept(h))
        except BaseException:
            if reserved:
                self._refund(source)
            raise
        if reserved and up.status != 200:
            self._refund(source)
        if get and up.status == 200:
            self.counters.incr("pulls", name, ref)
        h.relay(up, headers=[API_VERSION, *self._ratelimit_headers(source)], pass_headers=_PASS)

    def _blob(self, h: FrontHandler, name: str, digest: str) -> None:
        target = f"/v2/{name}/blobs/{digest}"
        if h.command == "HEAD":
            self.counters.incr("blob_head", name, digest)
            h.relay(self._pool.request("HEAD", target), headers=[API_VERSION], pass_headers=_PASS)
            return
        self.counters.incr("blob_get", name, digest)
        if self._dice.roll(self.faults.blob_503):
            self.counters.incr("fault_blob_503")
            h.send_json(503, errors_body("UNAVAILABLE", "service unavailable"))
            return
        head = self._pool.request("HEAD", target)
        head.release()
        if head.status != 200:  # pass the registry's error document on
            h.relay(self._pool.request("GET", target), headers=[API_VERSION], pass_headers=_PASS)
            return
        expires = int(time.time()) + self.cdn_url_ttl
        location = (
            f"{self.cdn_url}/cdn/{name}/{digest}?expires={expires}"
            f"&sig={self._sign(name, digest, expires)}"
        )
        h.send_bytes(307, b"", None, headers=[("Location", location), API_VERSION])

    def _sign(self, name: str, digest: str, expires: int) -> str:
        msg = f"{name}\n{digest}\n{expires}".encode()
        return hmac.new(self._cdn_secret, msg, hashlib.sha256).hexdigest()

    def _tags(self, h: FrontHandler, name: str) -> None:
        self.counters.incr("tags_list", name)
        q = parse_qs(h.query)
        n = self.page_size
        if "n" in q:
            try:
                n = int(q["n"][-1])
            except ValueError:
                n = -1
            if n < 0:
                h.send_json(
                    400,
                    errors_body("PAGINATION_NUMBER_INVALID", "invalid number of results requested"),
                    headers=[API_VERSION],
                )
                return
        up = self._pool.request("GET", f"/v2/{name}/tags/list")
        if up.status != 200:
            h.relay(up, headers=[API_VERSION], pass_headers=_PASS)
            return
        tags = sorted(json.loads(up.read_all()).get("tags") or [])
        last = q.get("last", [""])[-1]
        if last:
            tags = [t for t in tags if t > last]
        page = tags[: min(n, self.page_size)]  # Docker Hub caps a page whatever `n` asks
        headers = [API_VERSION]
        if page and len(tags) > len(page):
            nxt = f"/v2/{name}/tags/list?last={quote(page[-1], safe='')}&n={len(page)}"
            headers.append(("Link", f'<{nxt}>; rel="next"'))
        h.send_json(200, {"name": name, "tags": page}, headers=headers)

    # -- the CDN ----------------------------------------------------------------------------
    def _handle_cdn(self, h: FrontHandler) -> None:
        self.counters.incr("cdn_requests")
        if h.headers.get("Authorization") is not None:
            self.counters.incr("cdn_with_auth")
        if h.command not in ("GET", "HEAD"):
            h.send_bytes(405, b"method not allowed\n", "text/plain")
            return
        name, _, digest = h.path_only.removeprefix("/cdn/").rpartition("/")
        q = parse_qs(h.query)
        try:
            expires = int(q["expires"][-1])
            sig = q["sig"][-1]
        except (KeyError, ValueError):
            expires, sig = 0, ""
        if (
            not h.path_only.startswith("/cdn/")
            or not name
            or not hmac.compare_digest(sig, self._sign(name, digest, expires))
            or time.time() > expires
        ):
            self.counters.incr("cdn_denied")
            h.send_bytes(403, b"<Error><Code>AccessDenied</Code></Error>", "application/xml")
            return
        if h.command == "GET":
            self.counters.incr("cdn_get", name, digest)
        if self._dice.roll(self.faults.cdn_503):
            self.counters.incr("fault_cdn_503")
            h.send_bytes(503, b"<html><body>503 Service Unavailable</body></html>", "text/html")
            return
        fwd = [
            (k, v)
            for k in ("Range", "If-Range", "If-None-Match", "If-Modified-Since")
            if (v := h.headers.get(k)) is not None
        ]
        up = self._pool.request(h.command, f"/v2/{name}/blobs/{digest}", fwd)
        abort_after = None
        reset = self.faults.blob_reset
        if h.command == "GET" and up.status in (200, 206) and self._dice.roll(reset):
            self.counters.incr("fault_blob_reset")
            abort_after = int(up.headers.get("Content-Length") or 0) // 2
        h.relay(up, pass_headers=_PASS, abort_after=abort_after)


class _HubHandler(FrontHandler):
    def handle_request(self) -> None:
        cast(HubFront, self.server.owner)._handle_front(self)


class _CdnHandler(FrontHandler):
    def handle_request(self) -> None:
        cast(HubFront, self.server.owner)._handle_cdn(self)


__all__ = ["SERVICE", "TOOMANYREQUESTS_MESSAGE", "HubFaults", "HubFront"]
