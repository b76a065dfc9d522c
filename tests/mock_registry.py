"""A registry on httpx's MockTransport, for the registry tests: it answers from a table of
handlers and records every request it was sent."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx

from mirror.registry.auth import Credentials, StaticCredentials
from mirror.registry.client import RegistryClient

SECRET_TOKEN = "dckr_pat_unit-secret"
DIGEST = "sha256:" + "a" * 64


def answer(
    status: int, url: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> httpx.Response:
    """An answer to a GET of `url`, as the client would have received it."""
    return httpx.Response(status, content=body, headers=headers, request=httpx.Request("GET", url))


class Registry:
    """A registry on httpx's MockTransport: `routes` maps a path to a handler; every request
    is recorded with its headers."""

    def __init__(self, base: str = "https://r.example", *, challenge: str | None = None) -> None:
        self.base = base
        self.routes: dict[str, Callable[[httpx.Request], httpx.Response]] = {}
        self.seen: list[httpx.Request] = []
        self.challenge = challenge
        self.http = httpx.Client(transport=httpx.MockTransport(self._answer))
        credentials = StaticCredentials(Credentials("alice", SECRET_TOKEN))
        self.client = RegistryClient(base, credentials, self.http)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if request.url.path == "/v2/":
            challenge = self.challenge or 'Basic realm="r"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        handler = self.routes.get(request.url.path)
        return handler(request) if handler else httpx.Response(404)

    def with_credentials(self) -> list[str]:
        return [str(r.url) for r in self.seen if "authorization" in r.headers]


class Pulled:
    """An endless body that counts what the client pulled from it."""

    def __init__(self) -> None:
        self.bytes = 0

    def endless(self) -> Iterator[bytes]:
        while True:
            self.bytes += 65536
            yield b" " * 65536
