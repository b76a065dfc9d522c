"""Registry authentication: the challenge, HTTP Basic, and Bearer tokens cached per scope.

A registry says how it wants to be asked in the `WWW-Authenticate` header of a 401:
`Basic realm=...` (ECR, the distribution registry with htpasswd) or `Bearer realm=...,
service=...,scope=...` (Docker Hub). `Authenticator` learns the scheme once (`ping`), then
gives the header for a scope: Basic from the current credentials, or a token fetched from
the realm for that scope, cached until shortly before it expires. Headers are computed before
a request is sent so that a streamed upload, which cannot be replayed, never meets a 401 for
a token it could have renewed.

Credentials come from a provider (`CredentialsProvider`) so that ECR's 12-hour passwords can
be renewed during a long sync; secrets never appear in reprs or error messages.

Credentials stay home. A registry names URLs (a token realm, a next page, an upload session,
a redirect); `may_authenticate` decides for every one of them whether it gets the
registry's Authorization (only on the registry's own origin) and refuses a step down from
https to plain http; `check_realm` decides where the user and password for a token may go.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from mirror.errors import CredentialsError
from mirror.reference import DOCKER_HUB_ALIASES
from mirror.registry.errors import (
    UntrustedAnswerError,
    discard,
    public_url,
    read_capped,
    registry_error,
)

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')
_TOKEN = re.compile(r"[\x21-\x7e]{1,16384}")  # printable ASCII: a header value, never a line break
DEFAULT_TOKEN_SECONDS = 60.0
MAX_TOKEN_SECONDS = 24 * 3600.0
MAX_TOKEN_ANSWER_BYTES = 1024 * 1024
DOCKER_HUB_AUTH = "auth.docker.io"


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address a host is, None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def may_authenticate(url: httpx.URL, origin: httpx.URL) -> bool:
    """Whether a request to `url`, which a registry at `origin` named, may carry that
    registry's credentials: only on the same scheme, host and port. Elsewhere the request
    goes without them. Raises UntrustedAnswerError for what no request may follow: a step
    down from https to http, or a scheme other than http(s)."""
    if url.scheme not in ("http", "https") or (origin.scheme == "https" and url.scheme != "https"):
        raise UntrustedAnswerError(
            f"{public_url(origin)} pointed to {public_url(url)}: refused, it would leave https"
            if url.scheme == "http"
            else f"{public_url(origin)} pointed to a URL that is not http(s): refused"
        )
    return (url.scheme, url.host, url.port) == (origin.scheme, origin.host, origin.port)


def check_realm(realm: str, registry: httpx.URL) -> httpx.URL:
    """The token service URL a registry's challenge names, if the user and password may go
    there: https (plain http only from a plain-http registry on a loopback address), and on
    the registry's own host or a parent domain of it (`registry.gitlab.com` -> `gitlab.com`);
    Docker Hub's only at `auth.docker.io`. Anything else is refused: a registry cannot send
    the credentials somewhere else."""
    try:
        url = httpx.URL(realm)
    except httpx.InvalidURL:
        url = httpx.URL()
    host = url.host
    if registry.host in DOCKER_HUB_ALIASES:
        home = host == DOCKER_HUB_AUTH
    else:
        named = "." in host and _address(host) is None
        parent = named and registry.host.endswith(f".{host}")
        home = host == registry.host or parent
    address = _address(host)
    loopback = host == "localhost" or (address is not None and address.is_loopback)
    plain_ok = url.scheme == "http" and registry.scheme == "http" and loopback
    if not home or not (url.scheme == "https" or plain_ok):
        where = public_url(url) if url.host else "an invalid URL"
        raise UntrustedAnswerError(
            f"{public_url(registry)} asks for credentials to be sent to {where}: refused,"
            " they go only to the registry's own host over https"
        )
    return url


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def basic(self) -> httpx.BasicAuth:
        return httpx.BasicAuth(self.username, self.password)


class CredentialsProvider(Protocol):
    """Gives the current credentials (None: anonymous); `renew()` after a 401."""

    def get(self) -> Credentials | None: ...

    def renew(self) -> None: ...


@dataclass
class StaticCredentials:
    """Credentials that never change (Docker Hub user and token, or none at all)."""

    credentials: Credentials | None = None

    def get(self) -> Credentials | None:
        return self.credentials

    def renew(self) -> None:
        """Nothing to renew: a 401 with fixed credentials is final."""


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer", lowercased
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge:
    """Parse `Bearer realm="...",service="...",scope="..."` (or `Basic realm="..."`)."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): m.group(2) or m.group(3) or "" for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)


def scope_for(repository: str, actions: str) -> str:
    """The token scope for repository actions, e.g. `repository:library/python:pull`."""
    return f"repository:{repository}:{actions}"


@dataclass
class _Token:
    value: str = field(repr=False)
    renew_at: float  # time.monotonic() after which the token is renewed


class Authenticator:
    """Gives the Authorization header a request needs; learns the scheme from a 401."""

    def __init__(self, http: httpx.Client, base_url: str, credentials: CredentialsProvider):
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._origin = httpx.URL(self._base_url)
        self._credentials = credentials
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._lock = threading.Lock()
        self._scope_locks: dict[tuple[str, ...], threading.Lock] = {}

    @property
    def scheme(self) -> str | None:
        return self._challenge.scheme if self._challenge else None

    def ping(self) -> None:
        """GET /v2/ once to learn the scheme; an open registry needs no header at all."""
        if self._challenge is not None:
            return
        request = self._http.build_request("GET", f"{self._base_url}/v2/")
        response = self._http.send(request, stream=True)
        if response.status_code >= 400 and response.status_code != 401:
            raise registry_error(response)
        discard(response)
        if response.status_code == 401:
            self.learn(response)

    def learn(self, response: httpx.Response) -> None:
        """Take the challenge of a 401 answer; a token realm credentials may not go to is
        refused, and the challenge learnt before stays."""
        header = response.headers.get("www-authenticate", "")
        challenge = parse_challenge(header)
        if challenge.scheme not in ("basic", "bearer"):
            raise registry_error(response)
        if challenge.scheme == "bearer":
            check_realm(challenge.params.get("realm", ""), self._origin)
        with self._lock:
            self._challenge = challenge

    def headers(self, scopes: tuple[str, ...]) -> dict[str, str]:
        """The Authorization header for a request that needs `scopes` (may be empty)."""
        challenge = self._challenge
        if challenge is None:
            return {}
        if challenge.scheme == "basic":
            credentials = self._credentials.get()
            if credentials is None:
                raise CredentialsError(f"{self._base_url} asks for a password and none is set")
            request = httpx.Request("GET", self._base_url)
            signed = next(credentials.basic().auth_flow(request))
            return {"Authorization": signed.headers["Authorization"]}  # not its Host header
        return {"Authorization": f"Bearer {self._token(challenge, scopes)}"}

    def unauthorized(self, response: httpx.Response, scopes: tuple[str, ...]) -> bool:
        """After a 401: forget the token or renew credentials. True if a retry may succeed."""
        had_challenge = self._challenge is not None
        self.learn(response)
        if not had_challenge:
            return True
        with self._lock:
            dropped = self._tokens.pop(scopes, None) is not None
        if self.scheme == "basic":
            self._credentials.renew()
            return True
        return dropped

    def _token(self, challenge: Challenge, scopes: tuple[str, ...]) -> str:
        with self._lock:
            lock = self._scope_locks.setdefault(scopes, threading.Lock())
        with lock:  # one token request per scope, however many threads want it
            token = self._tokens.get(scopes)
            if token is None or time.monotonic() >= token.renew_at:
                token = self._fetch_token(challenge, scopes)
                with self._lock:
                    self._tokens[scopes] = token
            return token.value

    def _fetch_token(self, challenge: Challenge, scopes: tuple[str, ...]) -> _Token:
        realm = check_realm(challenge.params.get("realm", ""), self._origin)
        params: list[tuple[str, str | int | float | bool | None]] = []
        if "service" in challenge.params:
            params.append(("service", challenge.params["service"]))
        params.extend(("scope", scope) for scope in scopes)
        credentials = self._credentials.get()
        auth = credentials.basic() if credentials else None
        started = time.monotonic()
        request = self._http.build_request("GET", realm, params=params)
        response = self._http.send(request, auth=auth, stream=True)
        if response.status_code != 200:
            error = registry_error(response)
            raise CredentialsError(
                f"token request to {public_url(realm)} failed: {error.status} {error.message}"
            )
        body = read_capped(response, MAX_TOKEN_ANSWER_BYTES, "token answer")
        try:
            document = json.loads(body)
            value = document.get("token") or document.get("access_token")
            lifetime = float(document.get("expires_in") or DEFAULT_TOKEN_SECONDS)
        except (ValueError, AttributeError, TypeError):
            value, lifetime = None, 0.0
        if not isinstance(value, str) or not _TOKEN.fullmatch(value):
            raise CredentialsError(f"token request to {public_url(realm)} gave no usable token")
        if not math.isfinite(lifetime):
            lifetime = DEFAULT_TOKEN_SECONDS
        lifetime = min(max(lifetime, 0.0), MAX_TOKEN_SECONDS)
        margin = min(30.0, lifetime / 5)
        return _Token(value, started + lifetime - margin)
