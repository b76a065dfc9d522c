"""A lying registry, and a listener on "another host" that records who called it.

``HubLies`` and ``EcrLies`` are switches the fronts read on every request (``front.lies``;
``reset()`` turns them off). Each lie is about one repository (``repository``); the others
are served honestly, so a test can show that one lying image fails alone:

* ``HubLies.extra_tags``: the tag list holds these beside the real tags (``..``, ``?``, ...).
* ``HubLies.realm``: every request on the repository answers 401 with a Bearer challenge
  whose realm is this URL (a token service on another host, or on plain http).
* ``HubLies.next_page``: the tag list's ``Link: rel="next"`` points at this URL.
* ``HubLies.endless_tags``: every tag page holds one new tag and links to a new page.
* ``HubLies.wrong_manifest``: a manifest GET answers other bytes than the digest's (the real
  document with one space more), under the real ``Docker-Content-Digest``.
* ``HubLies.manifest_bytes``: a manifest GET answers a body this long, written lazily in
  pieces until the client hangs up (the front never holds it).
* ``HubLies.redirect_loop``: a blob GET answers 307 to itself.
* ``EcrLies.upload_location``: a new upload session answers 202 with this ``Location``.

Counters on the lying front: ``lie_tag_pages`` (tag pages it made up), ``lie_bytes_sent``
(manifest bytes written before the client hung up), ``lie_redirects``.

``Elsewhere`` listens on 127.0.0.3 (another address than the fronts', so another origin
whatever the port) and records every request with its headers; it answers 401 with a
challenge of its own, the most tempting answer to a client that would learn from it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast
from urllib.parse import parse_qs

from .httpfront import CHUNK, Front, FrontHandler, errors_body

if TYPE_CHECKING:
    from .ecrfront import EcrFront
    from .hubfront import HubFront


@dataclass(frozen=True)
class HubLies:
    """What the Docker Hub front lies about (see the module docstring); all off by default."""

    repository: str = ""
    extra_tags: tuple[str, ...] = ()
    realm: str | None = None
    next_page: str | None = None
    endless_tags: bool = False
    wrong_manifest: bool = False
    manifest_bytes: int = 0
    redirect_loop: bool = False


@dataclass(frozen=True)
class EcrLies:
    """What the ECR front lies about; all off by default."""

    repository: str = ""
    upload_location: str | None = None


def hub_lie(front: HubFront, h: FrontHandler, name: str, kind: str, rest: str) -> bool:
    """Answer a request on the lied-about repository with its lie; False: no lie applies."""
    lies = front.lies
    if name != lies.repository:
        return False
    if lies.realm is not None:
        challenge = f'Bearer realm="{lies.realm}",service="{front.service}"'
        h.send_json(
            401,
            errors_body("UNAUTHORIZED", "authentication required"),
            headers=[("WWW-Authenticate", f'{challenge},scope="repository:{name}:pull"')],
        )
        return True
    if h.command != "GET":
        return False
    if kind == "tags" and rest == "list":
        return _tags(front, h, name)
    if kind == "manifests" and (lies.wrong_manifest or lies.manifest_bytes):
        _manifest(front, h, name, rest)
        return True
    if kind == "blobs" and lies.redirect_loop and not rest.startswith("uploads"):
        front.counters.incr("lie_redirects")
        h.send_bytes(307, b"", None, headers=[("Location", h.path)])
        return True
    return False


def _tags(front: HubFront, h: FrontHandler, name: str) -> bool:
    lies = front.lies
    if lies.endless_tags:
        page = int(parse_qs(h.query).get("page", ["0"])[-1])
        front.counters.incr("lie_tag_pages")
        link = f'</v2/{name}/tags/list?page={page + 1}>; rel="next"'
        h.send_json(200, {"name": name, "tags": [f"1.{page}"]}, headers=[("Link", link)])
        return True
    if not lies.extra_tags and lies.next_page is None:
        return False
    front.counters.incr("lie_tag_pages")
    up = front._pool.request("GET", f"/v2/{name}/tags/list")
    tags = [*(json.loads(up.read_all()).get("tags") or []), *lies.extra_tags]
    headers = [("Link", f'<{lies.next_page}>; rel="next"')] if lies.next_page else []
    h.send_json(200, {"name": name, "tags": tags}, headers=headers)
    return True


def _manifest(front: HubFront, h: FrontHandler, name: str, ref: str) -> None:
    accept = [("Accept", a) for a in h.headers.get_all("Accept", [])]
    up = front._pool.request("GET", f"/v2/{name}/manifests/{ref}", accept)
    real = up.read_all()
    kind = up.headers.get("Content-Type", "application/json")
    digest = up.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(real).hexdigest()
    headers = [("Content-Type", kind), ("Docker-Content-Digest", digest)]
    if front.lies.wrong_manifest:
        h.send_bytes(200, real + b" ", None, headers=headers)
        return
    size = front.lies.manifest_bytes
    h.start(200, [*headers, ("Content-Length", str(size))])
    piece = b" " * CHUNK
    sent = 0
    try:
        while sent < size:
            h.wfile.write(piece[: min(CHUNK, size - sent)])
            sent += min(CHUNK, size - sent)
    finally:
        front.counters.incr("lie_bytes_sent", n=sent)
        h.close_connection = True


def ecr_lie(front: EcrFront, h: FrontHandler, name: str, kind: str, rest: str) -> bool:
    """Answer a request on the lied-about ECR repository with its lie; False: none applies."""
    lies = front.lies
    if name != lies.repository or lies.upload_location is None:
        return False
    if kind == "upload" and h.command == "POST" and rest.strip("/") == "uploads":
        h.drain_body()
        h.send_bytes(202, b"", None, headers=[("Location", lies.upload_location)])
        return True
    return False


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str  # with the query
    headers: tuple[tuple[str, str], ...]  # names lowercased


@dataclass
class _Log:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[Recorded] = field(default_factory=list)


class Elsewhere(Front):
    """The other host: records every request (method, path, headers), answers 401."""

    def __init__(self, host: str = "127.0.0.3") -> None:
        super().__init__()
        self.host = host
        self._log = _Log()

    def start(self) -> str:
        if self.url:
            raise RuntimeError("Elsewhere already started")
        try:
            server = self._listen(self.host, _ElsewhereHandler, "elsewhere")
        except OSError:  # no 127.0.0.3 here: another port is still another origin
            server = self._listen("127.0.0.1", _ElsewhereHandler, "elsewhere")
        self.url = f"http://{server.server_name}:{server.port}"
        return self.url

    @property
    def requests(self) -> list[Recorded]:
        with self._log.lock:
            return list(self._log.requests)

    def credentials_seen(self, *secrets: str) -> list[Recorded]:
        """Requests that carried an Authorization header or any of `secrets` anywhere."""
        return [
            r
            for r in self.requests
            if any(k in ("authorization", "cookie") for k, _ in r.headers)
            or any(s in r.path or any(s in v for _, v in r.headers) for s in secrets)
        ]

    def reset(self) -> None:
        with self._log.lock:
            self._log.requests.clear()
        self.reset_counters()

    def _handle(self, h: FrontHandler) -> None:
        headers = tuple((k.lower(), v) for k, v in h.headers.items())
        with self._log.lock:
            self._log.requests.append(Recorded(h.command, h.path, headers))
        h.drain_body()
        challenge = f'Bearer realm="{self.url}/token",service="elsewhere"'
        h.send_json(
            401,
            errors_body("UNAUTHORIZED", "authentication required"),
            headers=[("WWW-Authenticate", challenge)],
        )


class _ElsewhereHandler(FrontHandler):
    def handle_request(self) -> None:
        cast(Elsewhere, self.server.owner)._handle(self)


__all__ = ["EcrLies", "Elsewhere", "HubLies", "Recorded", "ecr_lie", "hub_lie"]
