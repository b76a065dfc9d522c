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
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from mirror.errors import CredentialsError
from mirror.registry.errors import public_url, registry_error

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')
DEFAULT_TOKEN_SECONDS = 60.0


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
        response = self._http.get(f"{self._base_url}/v2/")
        if response.status_code == 401:
            self.learn(response)
        elif response.status_code >= 400:
            raise registry_error(response)

    def learn(self, response: httpx.Response) -> None:
        """Take the challenge of a 401 answer."""
        header = response.headers.get("www-authenticate", "")
        challenge = parse_challenge(header)
        if challenge.scheme not in ("basic", "bearer"):
            raise registry_error(response)
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
            return dict(next(credentials.basic().auth_flow(request)).headers)
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
        realm = challenge.params.get("realm")
        if not realm:
            raise CredentialsError(f"{self._base_url} sent a Bearer challenge without a realm")
        params: list[tuple[str, str | int | float | bool | None]] = []
        if "service" in challenge.params:
            params.append(("service", challenge.params["service"]))
        params.extend(("scope", scope) for scope in scopes)
        credentials = self._credentials.get()
        auth = credentials.basic() if credentials else None
        started = time.monotonic()
        response = self._http.get(realm, params=params, auth=auth)
        if response.status_code != 200:
            error = registry_error(response)
            raise CredentialsError(
                f"token request to {public_url(realm)} failed: {error.status} {error.message}"
            )
        try:
            body = response.json()
            value = body.get("token") or body.get("access_token")
            lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_SECONDS)
        except (ValueError, AttributeError, TypeError):
            value, lifetime = None, 0.0
        if not value:
            raise CredentialsError(f"token request to {public_url(realm)} gave no token")
        margin = min(30.0, lifetime / 5)
        return _Token(str(value), started + lifetime - margin)
