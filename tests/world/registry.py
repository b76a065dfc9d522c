"""A CNCF distribution registry (``docker-registry serve``) on a loopback port."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .procs import ServerProcess, http_probe, start_process, wait_ready

__all__ = ["Registry", "htpasswd_line", "start_registry"]

REGISTRY_BIN = "docker-registry"


def htpasswd_line(user: str, password: str, cost: int = 4) -> str:
    """A bcrypt htpasswd line. Cost 4: cost 10 costs ~50 ms per request in the registry."""
    out = subprocess.run(
        ["htpasswd", "-nbB", "-C", str(cost), user, password],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.strip() + "\n"


def _config(port: int, storage: Path, htpasswd: Path | None) -> str:
    lines = [
        "version: 0.1",
        "log:",
        "  level: warn",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {storage}",
        "  delete:",
        "    enabled: true",
        # no blob descriptor cache: wipe() can empty the storage under a running registry
        "  maintenance:",
        "    uploadpurging:",
        "      enabled: false",
        "  redirect:",
        "    disable: true",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        "  secret: mirror-test-world",
        "  headers:",
        "    X-Content-Type-Options: [nosniff]",
    ]
    if htpasswd is not None:
        lines += [
            "auth:",
            "  htpasswd:",
            "    realm: basic-realm",
            f"    path: {htpasswd}",
        ]
    return "\n".join(lines) + "\n"


@dataclass
class Registry:
    """A running registry. ``url`` is ``http://127.0.0.1:PORT``."""

    name: str
    url: str
    port: int
    storage: Path
    process: ServerProcess
    user: tuple[str, str] | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` (for image references like ``HOST/library/alpine:3.19``)."""
        return f"127.0.0.1:{self.port}"

    @property
    def auth(self) -> tuple[str, str] | None:
        """(user, password) for HTTP Basic, or None when the registry has no auth."""
        return self.user

    def wait(self, timeout: float = 30.0) -> None:
        wait_ready(self.process, timeout)

    def wipe(self) -> None:
        """Delete every repository, manifest and blob (the registry keeps running)."""
        for child in self.storage.iterdir() if self.storage.exists() else []:
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)

    def stop(self) -> None:
        self.process.stop()

    def pids(self) -> list[int]:
        return self.process.pids()


def start_registry(
    workdir: Path,
    htpasswd_user: tuple[str, str] | None = None,
    *,
    name: str = "registry",
    wait: bool = True,
    timeout: float = 30.0,
) -> Registry:
    """Start ``docker-registry serve`` with filesystem storage under ``workdir/name``.

    With ``htpasswd_user`` the registry demands HTTP Basic auth for that user. With
    ``wait=False`` it returns at once; call ``registry.wait()`` before using it.
    """
    if shutil.which(REGISTRY_BIN) is None:
        raise RuntimeError(f"{REGISTRY_BIN} not found (Debian package docker-registry)")
    base = Path(workdir) / name
    storage = base / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    htpasswd: Path | None = None
    if htpasswd_user is not None:
        htpasswd = base / "htpasswd"
        htpasswd.write_text(htpasswd_line(*htpasswd_user))

    def argv(port: int) -> list[str]:
        config = base / f"config-{port}.yml"
        config.write_text(_config(port, storage, htpasswd))
        return [REGISTRY_BIN, "serve", str(config)]

    process = start_process(
        name,
        argv,
        log_dir=base,
        ready=http_probe("/v2/"),
        timeout=timeout,
        wait=wait,
    )
    assert process.port is not None
    return Registry(
        name=name,
        url=f"http://127.0.0.1:{process.port}",
        port=process.port,
        storage=storage,
        process=process,
        user=htpasswd_user,
    )
