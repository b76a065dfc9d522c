"""The Docker engine, through the Docker SDK (`docker` package), as the Docker engine copier
and `mirror login` use it.

- Reaching it: `connect` (from DOCKER_HOST and friends), `engine_platform`, `engine_login`.
- Calling it: `engine_call` turns what the SDK raises into an `EngineError`; `read_stream`
  reads a pull or push stream to its end, where an `errorDetail` line is a failure though the
  SDK raises nothing for it.
- Judging its messages: `transient` when another attempt may cure them (the engine
  unreachable, a 5xx, a throttle), by the words below; Docker Hub's `toomanyrequests`.
- Its local images (`LocalImages`) and a push's progress (`PushMeter`).

The `docker` package is imported lazily: no other command pays for it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from mirror.engine import Progress
from mirror.errors import EngineError
from mirror.reference import Platform
from mirror.registry.auth import Credentials

__all__ = [
    "ENGINE_TIMEOUT",
    "LocalImages",
    "PushMeter",
    "auth_config",
    "connect",
    "engine_call",
    "engine_login",
    "engine_platform",
    "image_platform",
    "is_quota_message",
    "is_transient_message",
    "read_stream",
]

log = logging.getLogger("mirror.docker_sdk")

ENGINE_TIMEOUT = 600  # seconds the SDK waits for one read from the engine

# Words in an engine's message that make a failure final, then those that make it worth
# another attempt; a message with neither is final (a bug should surface, not loop).
_FINAL_WORDS = (
    "unauthorized",
    "denied",
    "forbidden",
    "not found",
    "unknown",  # manifest unknown, name unknown, blob unknown
    "invalid",  # tag invalid, manifest invalid
    "no matching manifest",
    "does not exist",
    "immutable",
)
_TRANSIENT_WORDS = (
    "toomanyrequests",
    "too many requests",
    "rate exceeded",
    "internal server error",
    "bad gateway",
    "service unavailable",
    "gateway timeout",
    "status: 500",
    "status: 502",
    "status: 503",
    "status: 504",
    "connection reset",
    "connection refused",
    "broken pipe",
    "timeout",
    "timed out",
    "unexpected eof",
    "tls handshake",
)


# --- its messages: final, worth another attempt, or the pull quota -----------------------


def _is_final(message: str) -> bool:
    text = message.lower()
    return any(word in text for word in _FINAL_WORDS)


def is_transient_message(message: str) -> bool:
    """Does an engine's error message describe a failure another attempt may cure?"""
    text = message.lower()
    return not _is_final(text) and any(word in text for word in _TRANSIENT_WORDS)


def is_quota_message(message: str) -> bool:
    """Docker Hub's spent pull quota, as the engine relays it (`toomanyrequests: You have
    reached your pull rate limit...`)."""
    return "toomanyrequests" in message.lower()


# --- talking to the engine --------------------------------------------------------------


def connect(timeout: int = ENGINE_TIMEOUT) -> Any:
    """A `docker.DockerClient` from the environment (DOCKER_HOST, DOCKER_TLS_VERIFY, ...)."""
    try:
        import docker
    except ImportError:
        raise EngineError("the `docker` Python package is not installed") from None
    try:
        return docker.from_env(timeout=timeout)
    except docker.errors.DockerException as exc:
        where = os.environ.get("DOCKER_HOST") or "the default socket"
        raise EngineError(
            f"cannot reach the Docker engine at {where}: {_first_line(str(exc))}"
        ) from None


def engine_platform(client: Any) -> Platform:
    """The engine's own platform (`os/arch` from its version answer)."""
    version = engine_call("ask the Docker engine its version", client.version)
    return Platform(str(version.get("Os") or "linux"), str(version.get("Arch") or "amd64"))


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no message"


def _engine_error(action: str, exc: Exception) -> EngineError:
    """Turn what the SDK raised into an EngineError; `transient` when worth another try."""
    import docker.errors

    if isinstance(exc, docker.errors.APIError):
        message = _first_line(str(exc.explanation or exc))
        status = exc.status_code or 0
        transient = (status >= 500 and not _is_final(message)) or is_transient_message(message)
        return EngineError(f"{action}: {message}", transient=transient)
    if isinstance(exc, OSError):  # requests' ConnectionError and Timeout are OSErrors
        return EngineError(
            f"{action}: lost the Docker engine ({type(exc).__name__})", transient=True
        )
    return EngineError(f"{action}: {_first_line(str(exc))}")


def engine_call(action: str, call: Callable[[], Any]) -> Any:
    import docker.errors

    try:
        return call()
    except (docker.errors.DockerException, OSError) as exc:
        raise _engine_error(action, exc) from None


def read_stream(
    action: str, lines: Iterable[Any], on_line: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Read a pull or push stream to its end. An `errorDetail` (or `error`) line is a
    failure: the engine answered 200 and the SDK raises nothing for it. Returns the merged
    `aux` objects (a push's `{"Tag", "Digest", "Size"}`)."""
    import docker.errors

    aux: dict[str, Any] = {}
    try:
        for line in lines:
            if not isinstance(line, dict):
                continue
            if "errorDetail" in line or "error" in line:
                detail = line.get("errorDetail")
                said = detail.get("message") if isinstance(detail, dict) else None
                message = _first_line(
                    str(said or line.get("error") or "the engine reported an error")
                )
                raise EngineError(f"{action}: {message}", transient=is_transient_message(message))
            if isinstance(line.get("aux"), dict):
                aux.update(line["aux"])
            on_line(line)
    except (docker.errors.DockerException, OSError) as exc:
        raise _engine_error(action, exc) from None
    return aux


def engine_login(client: Any, host: str, credentials: Credentials) -> None:
    """Have the engine check the login against the registry (`POST /auth`)."""
    engine_call(
        f"log the Docker engine in to {host}",
        lambda: client.login(
            credentials.username, credentials.password, registry=host, reauth=True
        ),
    )


def image_platform(image: Any) -> Platform:
    """A local image's platform, from its inspect document."""
    attrs = image.attrs
    return Platform(
        str(attrs.get("Os") or ""),
        str(attrs.get("Architecture") or ""),
        str(attrs.get("Variant") or "") or None,
    )


def auth_config(credentials: Credentials | None) -> dict[str, str] | None:
    """The SDK's `auth_config` of a pull or push; None: anonymous."""
    if credentials is None:
        return None
    return {"username": credentials.username, "password": credentials.password}


# --- its local images and a push's progress --------------------------------------------


class PushMeter:
    """Reads a push stream's progress: bytes per layer, fed to `Progress` as they move."""

    def __init__(self, label: str, progress: Progress) -> None:
        self._label = label
        self._progress = progress
        self._current: dict[str, int] = {}
        self._pushed: set[str] = set()

    def __call__(self, line: dict[str, Any]) -> None:
        layer = str(line.get("id") or "")
        status = str(line.get("status") or "")
        detail = line.get("progressDetail")
        if status == "Pushing" and isinstance(detail, dict) and layer:
            current = int(detail.get("current") or 0)
            moved = current - self._current.get(layer, 0)
            self._current[layer] = current
            if moved > 0:
                self._progress.advance(self._label, moved)
        elif status == "Pushed" and layer:
            self._pushed.add(layer)

    @property
    def bytes(self) -> int:
        return sum(self._current.get(layer, 0) for layer in self._pushed)


class LocalImages:
    """The engine's local images as a sync uses them: found, untagged, removed when done.

    Copies of tags with the same source digest share one pulled image, so the references a
    sync makes are held per source reference and removed when the last holder lets go
    (unless `keep`). A reference the sync did not make is never removed."""

    def __init__(self, client: Callable[[], Any], keep: bool) -> None:
        self._client = client
        self._keep = keep
        self._lock = threading.Lock()
        self._holders: dict[str, int] = {}
        self._refs: dict[str, set[str]] = {}

    @contextmanager
    def hold(self, source_ref: str) -> Iterator[Callable[[str], None]]:
        """Hold `source_ref` for one copy; yields `made(ref)` to note a reference made."""
        with self._lock:
            self._holders[source_ref] = self._holders.get(source_ref, 0) + 1
            refs = self._refs.setdefault(source_ref, set())

        def made(ref: str) -> None:
            with self._lock:
                refs.add(ref)

        try:
            yield made
        finally:
            with self._lock:  # held while removing: no other copy may pull meanwhile
                self._holders[source_ref] -= 1
                if self._holders[source_ref] == 0:
                    del self._holders[source_ref]
                    del self._refs[source_ref]
                    if not self._keep:
                        self._remove(refs, source_ref)

    def find(self, ref: str) -> Any:
        """The local image `ref` names, or None."""
        import docker.errors

        try:
            return self._client().images.get(ref)
        except docker.errors.ImageNotFound:
            return None
        except (docker.errors.DockerException, OSError) as exc:
            raise _engine_error(f"inspect {ref}", exc) from None

    def untag(self, ref: str) -> None:
        import docker.errors

        try:
            self._client().images.remove(ref)
        except docker.errors.ImageNotFound:
            return
        except (docker.errors.DockerException, OSError) as exc:
            raise _engine_error(f"remove {ref}", exc) from None

    def _remove(self, refs: set[str], source_ref: str) -> None:
        # the target references first; the image goes with its last reference
        for ref in sorted(refs, key=lambda r: r == source_ref):
            try:
                self.untag(ref)
            except EngineError as exc:
                log.warning("could not remove %s from the engine: %s", ref, exc)
