"""Run background server processes for the test world.

Each server runs in its own process group (new session), logs to a file and is stopped with
SIGTERM to the whole group, then SIGKILL after a grace period. Three safety nets keep stray
processes from outliving the test run:

* ``stop()`` (called by fixtures / ``World.down()``, also on test failure and Ctrl-C);
* an ``atexit`` hook that stops every server still running when the interpreter exits;
* ``PR_SET_PDEATHSIG``: a direct child gets SIGTERM when the thread that started it dies
  (e.g. pytest killed with SIGKILL); set only for servers started from the main thread.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

__all__ = [
    "ServerProcess",
    "ServerStartError",
    "descendants",
    "free_port",
    "http_probe",
    "pid_alive",
    "port_probe",
    "start_process",
    "stop_all",
    "wait_ready",
]

_PR_SET_PDEATHSIG = 1
_LIVE: set[ServerProcess] = set()
_LIVE_LOCK = threading.Lock()


class ServerStartError(RuntimeError):
    """A server did not become ready; the message carries the tail of its log."""


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Probe = Callable[[int | None], bool]
"""Readiness probe: called with the server's port (None when it has none)."""


def http_probe(path: str = "/", host: str = "127.0.0.1") -> Probe:
    """Ready when ``http://host:PORT/path`` gives any HTTP answer (even 401/404)."""

    def probe(port: int | None) -> bool:
        try:
            httpx.get(f"http://{host}:{port}{path}", timeout=1.0)
        except httpx.HTTPError:
            return False
        return True

    return probe


def port_probe(host: str = "127.0.0.1") -> Probe:
    """Ready when a TCP connect to ``host:PORT`` succeeds."""

    def probe(port: int | None) -> bool:
        try:
            with socket.create_connection((host, port or 0), timeout=0.5):
                return True
        except OSError:
            return False

    return probe


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def pid_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    # state is the field after the ")" closing the command name
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] not in (b"Z", b"X")


def _proc_table() -> list[tuple[int, int, int]]:
    """(pid, ppid, pgid) of every live process."""
    rows = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rindex(b")") + 2 :].split()
        if rest[0] in (b"Z", b"X"):
            continue
        rows.append((int(entry), int(rest[1]), int(rest[2])))
    return rows


def descendants(pid: int) -> list[int]:
    """Live descendants of ``pid`` (not including ``pid``), from /proc."""
    children: dict[int, list[int]] = {}
    for p, ppid, _ in _proc_table():
        children.setdefault(ppid, []).append(p)
    out: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _group_members(pgid: int) -> list[int]:
    return [p for p, _, g in _proc_table() if g == pgid]


class ServerProcess:
    """A running server: its Popen, log file, address and a clean ``stop()``."""

    def __init__(
        self,
        name: str,
        proc: subprocess.Popen[bytes],
        log_path: Path,
        port: int | None,
        probe: Probe | None = None,
    ) -> None:
        self.name = name
        self.proc = proc
        self.log_path = log_path
        self.port = port
        self.probe = probe
        self._stopped = False
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return not self._stopped and self.proc.returncode is None and pid_alive(self.pid)

    def pids(self) -> list[int]:
        """The server's pid and all its live descendants."""
        if not pid_alive(self.pid):
            return []
        return [self.pid, *descendants(self.pid)]

    def log_tail(self, lines: int = 40) -> str:
        try:
            data = self.log_path.read_bytes()[-16384:]
        except OSError:
            return "(no log)"
        return "\n".join(data.decode(errors="replace").splitlines()[-lines:])

    def _leader_exited(self) -> bool:
        """Leader finished (zombie or reaped) — without reaping, so its pid (= pgid) stays
        reserved while we clean up the rest of the group."""
        if self.proc.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM the process group, wait up to ``grace`` seconds, then SIGKILL it.

        Idempotent. Returns the leader's exit code."""
        with self._lock:
            if self._stopped:
                return self.proc.returncode
            self._stopped = True
            pgid = self.pid  # new session: pgid == leader pid
            extra = descendants(self.pid)  # children that left the group (setsid), if any
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if (
                    self._leader_exited()
                    and not _group_members(pgid)
                    and not any(pid_alive(p) for p in extra)
                ):
                    break
                time.sleep(0.02)
            # leader not reaped yet, so the pgid cannot have been reused
            if _group_members(pgid) or not self._leader_exited():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
            for pid in extra:
                if pid_alive(pid):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5.0  # SIGKILL is delivered asynchronously
            while time.monotonic() < deadline and (
                _group_members(pgid) or any(pid_alive(p) for p in extra)
            ):
                time.sleep(0.01)
            with contextlib.suppress(subprocess.TimeoutExpired):  # unkillable (D state)
                self.proc.wait(timeout=10)
            with _LIVE_LOCK:
                _LIVE.discard(self)
            return self.proc.returncode

    def __repr__(self) -> str:
        return f"<ServerProcess {self.name} pid={self.pid} port={self.port}>"


def start_process(
    name: str,
    argv: Sequence[str] | Callable[[int], Sequence[str]],
    *,
    log_dir: Path,
    ready: Probe | None = None,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    attempts: int = 3,
    wait: bool = True,
) -> ServerProcess:
    """Start a server in its own process group and wait until it is ready.

    ``argv`` is a list, or a function of a free loopback port (chosen here) returning the
    list. ``ready`` is called with that port (None for a plain list) until it returns True.
    When the server dies before it is ready because its port was taken meanwhile, it is
    retried on a new port. Raises ``ServerStartError`` with the log tail when the server
    exits early or is not ready within ``timeout`` seconds. With ``wait=False`` it returns
    at once: call ``wait_ready(server)`` later (to start several servers in parallel).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    last_error: ServerStartError | None = None
    for attempt in range(attempts):
        chosen: int | None = None
        if callable(argv):
            chosen = free_port()
            args = list(argv(chosen))
        else:
            args = list(argv)
        suffix = f".{attempt}" if attempt else ""
        log_path = log_dir / f"{name}{suffix}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                # PDEATHSIG fires when the starting *thread* exits: main thread only
                preexec_fn=_set_pdeathsig if _in_main_thread() else None,
            )
        server = ServerProcess(name, proc, log_path, chosen, ready)
        with _LIVE_LOCK:
            _LIVE.add(server)
        if not wait:
            return server
        try:
            wait_ready(server, timeout)
        except ServerStartError as e:
            if chosen is not None and "address already in use" in str(e).lower():
                last_error = e
                continue
            raise
        return server
    assert last_error is not None
    raise last_error


def wait_ready(server: ServerProcess, timeout: float = 30.0) -> None:
    """Poll the server's probe until it answers; stop the server and raise on failure."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        code = server.proc.poll()
        if code is not None:
            server.stop()
            raise ServerStartError(
                f"{server.name} exited with code {code} before it was ready "
                f"(log {server.log_path}):\n{server.log_tail()}"
            )
        if server.probe is None or server.probe(server.port):
            return
        if time.monotonic() > deadline:
            server.stop()
            raise ServerStartError(
                f"{server.name} not ready after {timeout:.0f}s "
                f"(log {server.log_path}):\n{server.log_tail()}"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)


def stop_all() -> None:
    """Stop every server still running (atexit safety net)."""
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop(grace=3.0)


atexit.register(stop_all)
