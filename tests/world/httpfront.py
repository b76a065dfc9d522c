"""Shared plumbing of the test world's HTTP fronts (``HubFront``, ``EcrFront``).

Choices:

* Server side: :class:`http.server.ThreadingHTTPServer` speaking HTTP/1.1 with keep-alive
  (one daemon thread per client connection). Every answer carries a correct
  ``Content-Length`` (or chunked framing), so httpx and Go clients reuse connections. The
  server tracks its connections and handler threads so that :meth:`Front.stop` can close
  them and join every thread: no stray threads or sockets after a test.
* Upstream side: :mod:`http.client` through a small pool of keep-alive connections. A proxy
  has to pass bytes through untouched, and http.client does exactly that: no automatic
  redirects, retries, content decoding or header rewriting; request bodies are streamed from
  an iterator (with ``Content-Length`` or chunked), response bodies are read with
  ``read1`` in chunks of :data:`CHUNK` bytes. Nothing holds a whole blob in memory.
* Faults are drawn from a seeded :class:`random.Random`, so a single-threaded client sees
  the same faults on every run.

Nothing secret is logged: request lines go to the ``tests.world.fronts`` logger at DEBUG,
headers (Authorization) never.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import logging
import random
import re
import socket
import socketserver
import struct
import termios
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

log = logging.getLogger("tests.world.fronts")

CHUNK = 64 * 1024
"""Size of the pieces bodies are copied in."""

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "host",
        "content-length",
    }
)

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    )
)

# /v2/<name>/<kind>/<rest>; the name is the shortest prefix followed by a known kind.
_ROUTE = re.compile(r"^/v2/(?P<name>.+?)/(?P<kind>manifests|blobs|tags|referrers)/(?P<rest>.*)$")

_STALE_ERRORS = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)


class UpstreamError(Exception):
    """The upstream registry could not be reached or broke off (answered 502 if possible)."""


class ClientDisconnected(Exception):
    """The client went away while we were reading its request body."""


def route(path: str) -> tuple[str, str, str] | None:
    """Split a registry path into (name, kind, rest), or None when it has no repository."""
    m = _ROUTE.match(path)
    if m is None:
        return None
    return m["name"], m["kind"], m["rest"]


def errors_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    """The distribution-spec error document with one error."""
    err: dict[str, Any] = {"code": code, "message": message}
    if detail is not None:
        err["detail"] = detail
    return {"errors": [err]}


class Counters:
    """Thread-safe counters: totals by name, and optionally by (name, repository, reference).

    ``counters["manifest_get"]`` is the total (0 when never counted);
    ``counters.get("manifest_get", "library/x", "latest")`` is the count for one reference.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: Counter[str] = Counter()
        self._keyed: Counter[tuple[str, str, str]] = Counter()

    def incr(self, name: str, repo: str | None = None, ref: str | None = None, n: int = 1) -> None:
        with self._lock:
            self._totals[name] += n
            if repo is not None:
                self._keyed[(name, repo, ref or "")] += n

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._totals[name]

    def get(self, name: str, repo: str | None = None, ref: str | None = None) -> int:
        """Total for ``name``; for one repository (all references) or one (repo, ref)."""
        with self._lock:
            if repo is None:
                return self._totals[name]
            if ref is None:
                return sum(v for (k, r, _), v in self._keyed.items() if k == name and r == repo)
            return self._keyed[(name, repo, ref)]

    def by_ref(self, name: str) -> dict[tuple[str, str], int]:
        """{(repo, ref): count} for one counter name."""
        with self._lock:
            return {(r, f): v for (k, r, f), v in self._keyed.items() if k == name}

    def snapshot(self) -> dict[str, int]:
        """A copy of the totals."""
        with self._lock:
            return dict(self._totals)

    def reset(self) -> None:
        with self._lock:
            self._totals.clear()
            self._keyed.clear()


class Dice:
    """Seeded, thread-safe fault dice. p <= 0 never fires, p >= 1 always does (no draw)."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def roll(self, p: float) -> bool:
        if p <= 0:
            return False
        if p >= 1:
            return True
        with self._lock:
            return self._rng.random() < p


class UpstreamResponse:
    """An upstream answer being streamed; :meth:`release` or :meth:`close` it when done."""

    def __init__(self, pool: UpstreamPool, conn: http.client.HTTPConnection, resp: Any) -> None:
        self._pool = pool
        self._conn = conn
        self._resp: http.client.HTTPResponse = resp
        self.status: int = resp.status
        self.headers = resp.headers
        self._done = False

    def read1(self, n: int = CHUNK) -> bytes:
        try:
            return self._resp.read1(n)
        except (OSError, http.client.HTTPException) as e:
            raise UpstreamError(f"upstream broke off: {e!r}") from e

    def read_all(self, limit: int = 16 * 1024 * 1024) -> bytes:
        """Whole body of a small answer (JSON); refuses more than ``limit`` bytes."""
        parts: list[bytes] = []
        size = 0
        while chunk := self.read1(CHUNK):
            size += len(chunk)
            if size > limit:
                self.close()
                raise ValueError("upstream body too large to buffer")
            parts.append(chunk)
        self.release()
        return b"".join(parts)

    def release(self) -> None:
        """Give the connection back for reuse if the answer was read to its end."""
        if self._done:
            return
        self._done = True
        if self._resp.isclosed() and not self._resp.will_close:
            self._pool._give_back(self._conn)
        else:
            self._pool._discard(self._conn)

    def close(self) -> None:
        """Drop the connection (answer not read to its end, or broken)."""
        if self._done:
            return
        self._done = True
        self._pool._discard(self._conn)


class UpstreamPool:
    """A small pool of keep-alive http.client connections to one upstream registry."""

    def __init__(self, base_url: str, *, timeout: float = 60.0, max_idle: int = 16) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be http://host:port, got {base_url!r}")
        self.host: str = parts.hostname
        self.port: int = parts.port
        self.base = f"http://{self.host}:{self.port}"
        self.netloc = f"{self.host}:{self.port}"
        self._timeout = timeout
        self._max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: list[http.client.HTTPConnection] = []
        self._busy: set[http.client.HTTPConnection] = set()
        self._closed = False

    def _new(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(
            self.host, self.port, timeout=self._timeout, blocksize=CHUNK
        )

    def _take(self, fresh: bool) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._closed:
                raise ConnectionAbortedError("front is stopping")
            conn = None if fresh or not self._idle else self._idle.pop()
            reused = conn is not None
            if conn is None:
                conn = self._new()
            self._busy.add(conn)
            return conn, reused

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._busy.discard(conn)
            if not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def _discard(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._busy.discard(conn)
        conn.close()

    def request(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes | Iterable[bytes] | None = None,
    ) -> UpstreamResponse:
        """Send a request; a streamed body (iterator) always gets a fresh connection.

        Give ``Content-Length`` in ``headers`` for a streamed body of known size; without it
        the body goes chunked. A request without a replayable body is retried once on a
        fresh connection when a pooled one turns out to be stale.
        """
        items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        replayable = body is None or isinstance(body, bytes)
        try:
            conn, reused = self._take(fresh=not replayable)
            try:
                resp = self._exchange(conn, method, target, items, body)
                return UpstreamResponse(self, conn, resp)
            except _STALE_ERRORS:
                self._discard(conn)
                if not (replayable and reused):
                    raise
            except BaseException:
                self._discard(conn)
                raise
            conn, _ = self._take(fresh=True)
            try:
                return UpstreamResponse(
                    self, conn, self._exchange(conn, method, target, items, body)
                )
            except BaseException:
                self._discard(conn)
                raise
        except (OSError, http.client.HTTPException) as e:
            raise UpstreamError(f"{method} {target}: {e!r}") from e

    @staticmethod
    def _exchange(
        conn: http.client.HTTPConnection,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | Iterable[bytes] | None,
    ) -> http.client.HTTPResponse:
        conn.putrequest(method, target, skip_accept_encoding=True)
        names = set()
        for k, v in headers:
            conn.putheader(k, v)
            names.add(k.lower())
        chunked = False
        if isinstance(body, bytes):
            if "content-length" not in names:
                conn.putheader("Content-Length", str(len(body)))
        elif body is not None and "content-length" not in names:
            chunked = True
            conn.putheader("Transfer-Encoding", "chunked")
        elif body is None and method in ("POST", "PUT", "PATCH") and "content-length" not in names:
            conn.putheader("Content-Length", "0")
        try:
            conn.endheaders(body, encode_chunked=chunked)
        except (BrokenPipeError, ConnectionResetError):
            # The upstream answered early (e.g. 401) and closed while we were still sending
            # the body: its answer may be waiting in the socket.
            return conn.getresponse()
        return conn.getresponse()

    def abort_all(self) -> None:
        """Close idle connections and shut down busy ones (wakes threads blocked on them)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            busy = list(self._busy)
        for conn in idle:
            conn.close()
        for conn in busy:
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class FrontServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its connections and threads, for a clean stop."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self, host: str, handler: type[BaseHTTPRequestHandler], owner: Front, name: str
    ) -> None:
        self.owner = owner
        self.name = name
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._conn_threads: set[threading.Thread] = set()
        self._closing = False
        super().__init__((host, 0), handler)
        self.label = f"{name}@{self.port}"
        """Prefix of this server's thread names."""

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), a reverse DNS lookup: skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        t = threading.Thread(
            target=self._process_request_thread,
            args=(request, client_address),
            name=f"{self.label}-conn",
            daemon=True,
        )
        with self._lock:
            if self._closing:
                self.shutdown_request(request)
                return
            self._conns.add(request)
            self._conn_threads.add(t)
        self.owner.counters.incr(f"{self.name}_connections")
        t.start()

    def _process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._lock:
                self._conns.discard(request)
                self._conn_threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("%s: connection error from %s", self.name, client_address, exc_info=True)

    def close_connections(self) -> list[threading.Thread]:
        """Refuse new connections, shut down open ones; return the threads to join."""
        with self._lock:
            self._closing = True
            conns = list(self._conns)
            threads = list(self._conn_threads)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        return threads


class FrontHandler(BaseHTTPRequestHandler):
    """Handler with the helpers both fronts use; subclasses define :meth:`handle_request`."""

    protocol_version = "HTTP/1.1"
    server_version = "world-front/1"
    sys_version = ""
    timeout = 120  # seconds an idle keep-alive connection is kept
    disable_nagle_algorithm = True  # headers and body go in separate writes
    server: FrontServer

    def setup(self) -> None:
        super().setup()
        self._started = False
        self._body_done = True
        self.path_only = ""
        self.query = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s - %s", self.server.name, self.address_string(), format % args)

    # -- dispatch ---------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._run()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def handle_request(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        self._started = False
        self._body_done = not self.has_body()
        parts = urlsplit(self.path)
        self.path_only = parts.path
        self.query = parts.query
        owner = self.server.owner
        try:
            latency = owner.latency_s()
            if latency > 0:
                owner.counters.incr("fault_latency")
                time.sleep(latency)
            self.handle_request()
        except (ClientDisconnected, BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True  # the client went away
            return
        except UpstreamError as e:
            owner.record_error(f"{self.command} {self.path_only}: {e}")
            if not self._started:
                with contextlib.suppress(OSError):
                    self.send_json(502, errors_body("UNAVAILABLE", "upstream unavailable"))
            self.close_connection = True
            return
        except Exception as e:
            owner.record_error(f"{self.command} {self.path_only}: {type(e).__name__}: {e}")
            log.exception("%s: error on %s %s", self.server.name, self.command, self.path_only)
            if not self._started:
                with contextlib.suppress(OSError):
                    self.send_json(500, errors_body("UNKNOWN", f"front error: {e}"))
            self.close_connection = True
            return
        if not self._body_done:
            try:
                self.drain_body()
            except ClientDisconnected:
                self.close_connection = True

    # -- request body -----------------------------------------------------------------------
    def has_body(self) -> bool:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return True
        return int(self.headers.get("Content-Length") or 0) > 0

    def body_length(self) -> int | None:
        """Content-Length of the request, or None when it is chunked."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return None
        return int(self.headers.get("Content-Length") or 0)

    def iter_body(self) -> Iterator[bytes]:
        """The request body in pieces of at most CHUNK bytes (Content-Length or chunked)."""
        self._body_done = True
        try:
            length = self.body_length()
            if length is None:
                yield from self._iter_chunked()
                return
            left = length
            while left > 0:
                data = self.rfile.read(min(CHUNK, left))
                if not data:
                    raise ClientDisconnected("client closed during the request body")
                left -= len(data)
                yield data
        except (OSError, ValueError) as e:
            self.close_connection = True
            raise ClientDisconnected(f"reading the request body: {e!r}") from e
        except ClientDisconnected:
            self.close_connection = True
            raise

    def _iter_chunked(self) -> Iterator[bytes]:
        while True:
            line = self.rfile.readline(1024)
            if not line:
                raise ClientDisconnected("client closed during a chunked body")
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            left = size
            while left > 0:
                data = self.rfile.read(min(CHUNK, left))
                if not data:
                    raise ClientDisconnected("client closed during a chunked body")
                left -= len(data)
                yield data
            self.rfile.readline(16)  # CRLF after the chunk

    def drain_body(self) -> int:
        """Read and drop the request body; returns its size."""
        if self._body_done:
            return 0
        return sum(len(d) for d in self.iter_body())

    # -- responses --------------------------------------------------------------------------
    def start(self, status: int, headers: Iterable[tuple[str, str]] = ()) -> None:
        """Send the status line and headers."""
        self._started = True
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()

    def send_bytes(
        self,
        status: int,
        body: bytes,
        content_type: str | None = "application/json; charset=utf-8",
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """A whole small answer; HEAD gets the headers only."""
        out = list(headers)
        if content_type is not None and body:
            out.append(("Content-Type", content_type))
        out.append(("Content-Length", str(len(body))))
        self.start(status, out)
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def send_json(self, status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        self.send_bytes(status, json.dumps(obj).encode(), headers=headers)

    def relay(
        self,
        up: UpstreamResponse,
        *,
        status: int | None = None,
        headers: Iterable[tuple[str, str]] = (),
        pass_headers: frozenset[str] | None = None,
        rewrite_location: Callable[[str], str] | None = None,
        abort_after: int | None = None,
    ) -> int:
        """Stream an upstream answer to the client; returns the body bytes sent.

        ``pass_headers`` (lower-case names) limits the upstream headers passed on; None passes
        all but hop-by-hop ones. ``abort_after`` resets the connection after that many body
        bytes (fault injection).
        """
        status = up.status if status is None else status
        out = list(headers)
        length = up.headers.get("Content-Length")
        for k, v in up.headers.items():
            lk = k.lower()
            if lk in HOP_BY_HOP or lk in ("date", "server"):
                continue
            if pass_headers is not None and lk not in pass_headers:
                continue
            if lk == "location" and rewrite_location is not None:
                v = rewrite_location(v)
            out.append((k, v))
        if self.command == "HEAD" or status in (204, 304) or status < 200:
            if length is not None:
                out.append(("Content-Length", length))
            elif self.command != "HEAD" and status != 204:
                out.append(("Content-Length", "0"))
            self.start(status, out)
            up.release()  # closes the connection if a body is left unread
            return 0
        chunked = length is None
        out.append(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", length))
        self.start(status, out)
        sent = 0
        complete = False
        try:
            while True:
                want = CHUNK
                if abort_after is not None:
                    if sent >= abort_after:
                        self.abort_connection()
                        return sent
                    want = min(CHUNK, abort_after - sent)
                data = up.read1(want)
                if not data:
                    break
                if chunked:
                    self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
                else:
                    self.wfile.write(data)
                sent += len(data)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            complete = chunked or sent == int(length or 0)
        finally:
            if complete:
                up.release()
            else:
                up.close()
                self.close_connection = True  # the client cannot get a whole body
        return sent

    def abort_connection(self) -> None:
        """Reset the client connection: what was written reaches the client, then an RST."""
        self.close_connection = True
        sock = self.connection
        with contextlib.suppress(OSError):
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                unsent = struct.unpack(
                    "i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
                )[0]
                if unsent == 0:
                    break
                time.sleep(0.002)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # really closed (RST) when the handler drops its files


class Front:
    """Lifecycle shared by the fronts: servers on 127.0.0.x, serve threads, clean stop."""

    def __init__(self) -> None:
        self.counters = Counters()
        self.errors: list[str] = []
        """Unexpected exceptions inside the front (a test world bug); tests assert it is empty."""
        self._errors_lock = threading.Lock()
        self._servers: list[FrontServer] = []
        self._serve_threads: list[threading.Thread] = []
        self._pools: list[UpstreamPool] = []
        self._labels: list[str] = []
        self._stopping = False
        self._latency_ms = 0.0
        self.url = ""

    def latency_s(self) -> float:
        return self._latency_ms / 1000.0

    def record_error(self, message: str) -> None:
        if self._stopping:
            return  # in-flight requests cut by stop() are not world bugs
        with self._errors_lock:
            self.errors.append(message)

    def reset_counters(self) -> None:
        self.counters.reset()

    def _listen(self, host: str, handler: type[BaseHTTPRequestHandler], name: str) -> FrontServer:
        server = FrontServer(host, handler, self, name)
        t = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"{server.label}-serve",
            daemon=True,
        )
        self._servers.append(server)
        self._labels.append(server.label)
        self._serve_threads.append(t)
        t.start()
        return server

    def start(self) -> str:
        raise NotImplementedError

    def live_threads(self) -> list[str]:
        """Names of this front's threads still running (empty after :meth:`stop`)."""
        prefixes = tuple(f"{label}-" for label in self._labels)
        return [t.name for t in threading.enumerate() if t.name.startswith(prefixes)]

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening, close every connection, join every thread."""
        self._stopping = True
        servers, self._servers = self._servers, []
        serve_threads, self._serve_threads = self._serve_threads, []
        for s in servers:
            s.shutdown()
        for s in servers:
            s.server_close()
        threads: list[threading.Thread] = []
        for s in servers:
            threads += s.close_connections()
        for p in self._pools:
            p.abort_all()
        deadline = time.monotonic() + timeout
        for t in serve_threads + threads:
            t.join(max(0.0, deadline - time.monotonic()))
        stray = [t.name for t in serve_threads + threads if t.is_alive()]
        if stray:
            raise RuntimeError(f"front threads still running after stop: {stray}")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
