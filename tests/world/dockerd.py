"""A private Docker engine (dockerd 20.10) for tests, isolated from the machine's engine.

Everything lives in a short temp dir under /tmp (socket path < 100 chars): data root, exec
root, pid file, socket, daemon.json and the trust key (``deprecated-key-path``; otherwise
dockerd writes /etc/docker/key.json). It never uses /var/lib/docker or /var/run/docker.sock.
dockerd does create the empty plugin directory /run/docker/plugins (hard-coded path).
Loopback registries (127.0.0.0/8) are insecure by default, so plain-http pulls work.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .procs import ServerProcess, start_process

__all__ = ["DockerEngine", "DockerdUnavailable", "dockerd_unavailable_reason", "start_dockerd"]

SKIP_ENV = "MIRROR_TEST_SKIP_DOCKERD"


class DockerdUnavailable(RuntimeError):
    """dockerd cannot run here (not root, binary missing, or it failed to start)."""


def dockerd_unavailable_reason() -> str | None:
    """Why a private dockerd cannot start here, or None when it should."""
    if shutil.which("dockerd") is None:
        return "dockerd not found (Debian package docker.io)"
    if os.geteuid() != 0:
        return "dockerd needs root (run the tests as root)"
    return None


@dataclass
class DockerEngine:
    """A running private dockerd. ``host`` is the DOCKER_HOST value (``unix:///tmp/...``)."""

    host: str
    root: Path
    process: ServerProcess
    _clients: list[Any] = field(default_factory=list, repr=False)

    @property
    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.host}

    def client(self) -> Any:
        """A ``docker.DockerClient`` for this engine (closed on ``stop()``)."""
        import docker

        c = docker.DockerClient(base_url=self.host, timeout=120)
        self._clients.append(c)
        return c

    def pids(self) -> list[int]:
        return self.process.pids()

    def stop(self) -> None:
        for c in self._clients:
            with contextlib.suppress(Exception):
                c.close()
        self._clients.clear()
        self.process.stop(grace=15.0)
        shutil.rmtree(self.root, ignore_errors=True)


def _ping(host: str) -> bool:
    import docker

    try:
        c = docker.DockerClient(base_url=host, timeout=2)
    except Exception:
        return False
    try:
        return bool(c.ping())
    except Exception:
        return False
    finally:
        c.close()


def start_dockerd(
    *, log_dir: Path | None = None, timeout: float = 60.0, extra_args: list[str] | None = None
) -> DockerEngine:
    """Start a private dockerd (vfs storage, no iptables, no bridge) and wait for ``ping()``.

    Raises ``DockerdUnavailable`` when it cannot run here or does not start."""
    reason = dockerd_unavailable_reason()
    if reason is not None:
        raise DockerdUnavailable(reason)
    root = Path(tempfile.mkdtemp(prefix="mw-dk-", dir="/tmp"))
    sock = root / "d.sock"
    host = f"unix://{sock}"
    assert len(str(sock)) < 100
    config = root / "daemon.json"
    config.write_text(json.dumps({"deprecated-key-path": str(root / "key.json")}))
    argv = [
        "dockerd",
        f"--config-file={config}",
        "--storage-driver=vfs",
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        f"--data-root={root / 'data'}",
        f"--exec-root={root / 'exec'}",
        f"--pidfile={root / 'dockerd.pid'}",
        f"-H={host}",
        *(extra_args or []),
    ]
    try:
        process = start_process(
            "dockerd",
            argv,
            log_dir=log_dir or root,
            ready=lambda _port: sock.exists() and _ping(host),
            timeout=timeout,
        )
    except Exception as e:
        shutil.rmtree(root, ignore_errors=True)
        raise DockerdUnavailable(f"dockerd did not start: {e}") from e
    return DockerEngine(host=host, root=root, process=process)
