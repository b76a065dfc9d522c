"""The Docker engine path: `mirror sync --engine docker`.

What this engine cannot do, said plainly: it copies ONE platform per tag (the entry's one
listed platform, else `--platform`, else the engine's own), and the engine re-compresses
layers on push, so the digest in ECR differs from Docker Hub's. The registry engine
(`mirror.copy.Copier`) keeps digests and every platform; this one exists for teams whose
images must go through the Docker engine their builds already use.

One tag is copied in named steps, with the plan, budget and report of the registry engine:
  1. pay the pulls from the budget (an index: 2 manifest GETs, the index and one platform's
     manifest; a single manifest: 1), then pull `<source>/<repo>@<digest the plan saw>`;
  2. tag the image as a marker that records its source, then as the tag, in the ECR
     repository: `mirror-src-<40 hex of the source digest>[-<os>-<arch>[-<variant>]]` (the
     platform part only when the source is an index);
  3. push the marker, then the tag (written last, so it never points at an image whose
     source is unrecorded), reading every line of each push stream: an `errorDetail` line
     is a failure, though the SDK raises nothing for it;
  4. remove the references it made in the engine, once no other copy uses them (unless
     `keep_local`).

Up to date without a pull: since the pushed digest never equals Docker Hub's, the target is
up to date when its tag and the marker for the source digest (and platform) name the same
image: two HEADs on ECR, both free.

Engine failures become `EngineError`, `transient` when another attempt may cure them (the
engine unreachable, a 5xx, a throttle), and are retried by the `RetryPolicy`. Docker Hub's
`toomanyrequests` on a pull marks the budget exhausted and the image deferred.

The `docker` package is imported lazily: no other command pays for it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from mirror.budget import DeferredError, PullBudget
from mirror.config import Config
from mirror.copy import (
    CopyError,
    CopyOutcome,
    CopyRequest,
    NoProgress,
    Progress,
)
from mirror.errors import ConfigError, EngineError
from mirror.manifests import platforms_label
from mirror.reference import (
    DOCKER_HUB,
    DOCKER_HUB_ALIASES,
    InvalidReference,
    Platform,
    parse_platform,
)
from mirror.registry.auth import Credentials, CredentialsProvider
from mirror.registry.client import ManifestHead, RegistryClient
from mirror.registry.retry import RetryPolicy

__all__ = [
    "MARKER_PREFIX",
    "DockerEngineCopier",
    "DockerEngineFactory",
    "DockerOptions",
    "connect",
    "engine_login",
    "engine_notes",
    "entry_platform",
    "is_transient_message",
    "marker_tag",
    "open_docker_engine",
]

log = logging.getLogger("mirror.engine_docker")

MARKER_PREFIX = "mirror-src-"
ENGINE_TIMEOUT = 600  # seconds the SDK waits for one read from the engine
_INDEX_TYPES = ("list.v2+json", "index.v1+json")
_NAMES_SHOWN = 5

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


# --- pure decisions ---------------------------------------------------------------------


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


def entry_platform(platforms: tuple[Platform, ...] | None, default: Platform) -> Platform:
    """The one platform the engine copies for an entry: its only listed platform, else the
    default (`--platform`, else the engine's own). Several listed platforms are refused."""
    if platforms is None:
        return default
    if len(platforms) > 1:
        raise CopyError(
            f"the docker engine copies one platform per tag, and this entry lists"
            f" {len(platforms)} ({platforms_label(platforms)}): list one platform, or use"
            " --engine registry"
        )
    return platforms[0]


def _is_index(head: ManifestHead) -> bool:
    return head.media_type.endswith(_INDEX_TYPES)


def marker_tag(source_digest: str, platform: Platform | None) -> str:
    """The tag that records which source an image in ECR was pushed from.

    `mirror-src-<first 40 hex of the source digest>`, plus `-<os>-<arch>[-<variant>]` when
    the source is an index (the engine picked one platform of it). At most 11 + 40 + 1 +
    the platform's length characters, all valid in a tag."""
    hex_digits = source_digest.partition(":")[2][:40]
    tag = MARKER_PREFIX + hex_digits
    if platform is not None:
        parts = (platform.os, platform.architecture, platform.variant)
        tag += "-" + "-".join(part for part in parts if part)
    return tag


def engine_notes(config: Config, platform: Platform) -> list[str]:
    """What the docker engine will do differently from the config, as warning lines.

    One line for the entries left at `platforms: all` (they get `platform` only), one for
    entries that list several platforms (refused: their tags are reported failed)."""
    notes: list[str] = []
    at_all = [image.name for image in config.images if image.platforms is None]
    several = [
        image.name
        for image in config.images
        if image.platforms is not None and len(image.platforms) > 1
    ]
    if at_all:
        notes.append(
            f"warning: the docker engine copies one platform, {platform}, for the entries at"
            f" `platforms: all` ({_names(at_all)}); use --platform to choose another"
        )
    if several:
        notes.append(
            f"warning: the docker engine refuses the entries that list several platforms"
            f" ({_names(several)}): their tags will be reported failed"
        )
    return notes


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMES_SHOWN])
    more = len(names) - _NAMES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def pull_host(source: RegistryClient) -> str:
    """How the engine names the source registry: `docker.io` for Docker Hub, else host[:port]."""
    return DOCKER_HUB if source.host.lower() in DOCKER_HUB_ALIASES else source.host


def _platform_of(image: Any) -> Platform:
    """A local image's platform, from its inspect document."""
    attrs = image.attrs
    return Platform(
        str(attrs.get("Os") or ""),
        str(attrs.get("Architecture") or ""),
        str(attrs.get("Variant") or "") or None,
    )


def _auth_config(credentials: Credentials | None) -> dict[str, str] | None:
    if credentials is None:
        return None
    return {"username": credentials.username, "password": credentials.password}


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
    version = _engine_call("ask the Docker engine its version", client.version)
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


def _engine_call(action: str, call: Callable[[], Any]) -> Any:
    import docker.errors

    try:
        return call()
    except (docker.errors.DockerException, OSError) as exc:
        raise _engine_error(action, exc) from None


def _read_stream(
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


@dataclass(frozen=True)
class _Pushed:
    digest: str | None  # None: the tag exists in an immutable repository, nothing was written
    bytes: int


class _PushMeter:
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


class _LocalImages:
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


# --- the copier ---------------------------------------------------------------------------


class DockerEngineCopier:
    """Copies one platform per tag through a Docker engine: pull, tag, push.

    The same surface as `Copier` (`mirror.copy.CopyEngine`), so `mirror.sync` plans, budgets
    and reports the same way whichever engine copies."""

    def __init__(
        self,
        source: RegistryClient,
        target: RegistryClient,
        *,
        engine: DockerEngineFactory,
        budget: PullBudget,
        retry: RetryPolicy,
        progress: Progress | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.budget = budget
        self.retry = retry
        self.progress = progress or NoProgress()
        self._engine = engine
        self._source_host = pull_host(source)
        self._local = _LocalImages(engine.client, engine.keep_local)
        self._pulled = 0  # pulls made, for `manifests_fetched`
        self._pulled_lock = threading.Lock()

    def __enter__(self) -> DockerEngineCopier:
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to close: the engine's client belongs to the factory."""

    @property
    def platform(self) -> Platform:
        return self._engine.platform

    def manifests_fetched(self) -> int:
        """The engine fetches manifests itself, once per pull: the pulls it made."""
        with self._pulled_lock:
            return self._pulled

    # --- is the target up to date? (HEADs on ECR only: no pull) -------------------------

    def up_to_date(
        self,
        target_repository: str,
        tag: str,
        source: ManifestHead,
        platforms: tuple[Platform, ...] | None,
    ) -> str | None:
        """The tag's digest when it points at the image the marker for `source` names (or at
        the source digest itself: a digest-preserving copy by the registry engine), else None.

        Raises CopyError for an entry this engine refuses, so the plan reports it."""
        platform = entry_platform(platforms, self.platform)
        head = self.retry.call(lambda: self.target.head_manifest(target_repository, tag))
        if head is None:
            return None
        if head.digest == source.digest:
            return head.digest
        marker = marker_tag(source.digest, platform if _is_index(source) else None)
        recorded = self.retry.call(lambda: self.target.head_manifest(target_repository, marker))
        return head.digest if recorded is not None and recorded.digest == head.digest else None

    # --- copying ----------------------------------------------------------------------

    def copy(self, request: CopyRequest) -> CopyOutcome:
        """Pull, tag, push one tag. Raises DeferredError when the budget cannot pay for it."""
        platform = entry_platform(request.platforms, self.platform)
        index = _is_index(request.source)
        source_ref = f"{self._source_host}/{request.source_repository}@{request.source.digest}"
        repository = f"{self.target.host}/{request.target_repository}"
        marker = marker_tag(request.source.digest, platform if index else None)
        outcome = CopyOutcome()
        try:
            with self._local.hold(source_ref) as made:
                image = self._local_copy(source_ref, platform if index else None)
                if image is None:
                    made(source_ref)
                    image = self._pull(request, source_ref, platform if index else None, outcome)
                self._check_platform(request, image, platform)
                digests: list[str | None] = []
                for tag in (marker, request.tag):  # the tag last
                    made(f"{repository}:{tag}")
                    self._tag(image, repository, tag)
                    pushed = self._push(repository, tag, request.label)
                    outcome.bytes += pushed.bytes
                    digests.append(pushed.digest)
            outcome.digest = digests[1] or self._immutable_tag(request, marker)
        except Exception as exc:  # the report shows what a failed copy spent
            exc.mirror_outcome = outcome  # type: ignore[attr-defined]
            raise
        return outcome

    def _local_copy(self, source_ref: str, platform: Platform | None) -> Any:
        """The image the engine already holds for this source (and platform of an index):
        it is exactly what a pull would give, so no pull is spent. A reference to another
        platform of the same index is untagged: the engine cannot move a digest reference."""
        image = self._local.find(source_ref)
        if image is None or platform is None or platform.matches(_platform_of(image)):
            return image
        log.info(
            "untagging %s in the engine: it names %s, not %s",
            source_ref,
            _platform_of(image),
            platform,
        )
        self._local.untag(source_ref)
        return None

    def _pull(
        self, request: CopyRequest, source_ref: str, platform: Platform | None, outcome: CopyOutcome
    ) -> Any:
        """Pull by the digest the plan saw, paying the budget before every attempt (a
        retried pull GETs the manifests again). A failed attempt counts as spent in the
        budget: the engine may have made its GETs before failing."""
        pulls = 2 if platform is not None else 1
        repository, _, digest = source_ref.partition("@")
        action = f"pull {source_ref}" + (f" ({platform})" if platform else "")

        def attempt() -> Any:
            with self.budget.turn(request.position):  # admission in config order
                if not self.budget.take(pulls):
                    raise DeferredError(f"needs {pulls} pulls; the pull budget is spent")
            client = self._engine.client()
            try:
                with ExitStack() as gate:
                    # While the quota is limited, pulls fetch their manifests one at a time
                    # (as the registry engine's GETs do), so a run meets Docker Hub's 429 once;
                    # the gate opens when layers start, which the manifests came before.
                    gate.enter_context(self.budget.gate())

                    def on_line(line: dict[str, Any]) -> None:
                        if "id" in line or str(line.get("status", "")).startswith("Digest:"):
                            gate.close()

                    lines = _engine_call(
                        action,
                        lambda: client.api.pull(
                            repository,
                            tag=digest,
                            stream=True,
                            decode=True,
                            platform=str(platform) if platform else None,
                            auth_config=_auth_config(self._engine.source_credentials),
                        ),
                    )
                    _read_stream(action, lines, on_line)
            except EngineError as exc:
                self.budget.settle(pulls, pulls)  # the engine may have made its GETs
                if is_quota_message(str(exc)):
                    self.budget.exhausted()
                    raise DeferredError(
                        "Docker Hub answered toomanyrequests: the pull quota is spent"
                    ) from None
                raise
            self.budget.settle(pulls, pulls)
            with self._pulled_lock:
                self._pulled += pulls
            return _engine_call(f"inspect {source_ref}", lambda: client.images.get(source_ref))

        image = self.retry.call(attempt)
        outcome.pulls += pulls
        return image

    @staticmethod
    def _check_platform(request: CopyRequest, image: Any, platform: Platform) -> None:
        """An entry that names its platform gets that platform or a clear failure."""
        if request.platforms is None:
            return
        found = _platform_of(image)
        if not platform.matches(found):
            raise CopyError(f"the source is a single-platform image for {found}, not {platform}")

    def _tag(self, image: Any, repository: str, tag: str) -> None:
        ok = _engine_call(f"tag {repository}:{tag}", lambda: image.tag(repository, tag))
        if ok is False:
            raise EngineError(f"tag {repository}:{tag}: the engine refused the tag")

    def _push(self, repository: str, tag: str, label: str) -> _Pushed:
        """Push one tag with fresh ECR credentials; read the whole stream."""
        action = f"push {repository}:{tag}"

        def attempt() -> _Pushed:
            meter = _PushMeter(label, self.progress)
            credentials = self._engine.target_credentials.get()
            client = self._engine.client()
            lines = _engine_call(
                action,
                lambda: client.api.push(
                    repository,
                    tag=tag,
                    stream=True,
                    decode=True,
                    auth_config=_auth_config(credentials),
                ),
            )
            try:
                aux = _read_stream(action, lines, meter)
            except EngineError as exc:
                if "tag invalid" in str(exc).lower():  # ECR: an immutable tag exists already
                    return _Pushed(None, meter.bytes)
                raise
            digest = aux.get("Digest")
            if not isinstance(digest, str) or not digest:
                raise EngineError(f"{action}: the engine did not state the pushed digest")
            return _Pushed(digest, meter.bytes)

        pushed: _Pushed = self.retry.call(attempt)
        return pushed

    def _immutable_tag(self, request: CopyRequest, marker: str) -> str:
        """The tag exists and cannot be overwritten: success when it already names the image
        the marker records for this source."""
        repository = request.target_repository
        head = self.retry.call(lambda: self.target.head_manifest(repository, request.tag))
        recorded = self.retry.call(lambda: self.target.head_manifest(repository, marker))
        if head is not None and recorded is not None and head.digest == recorded.digest:
            return head.digest
        raise CopyError(
            f"{self.target.host}/{repository}:{request.tag} is immutable and points at"
            f" {head.digest if head else 'another image'}, not at the copy of"
            f" {request.source.digest}"
        )


# --- the engine, as `mirror.sync` receives it -----------------------------------------------


@dataclass(frozen=True)
class DockerOptions:
    """`mirror sync --engine docker` options."""

    platform: Platform | None = None  # for entries at `all`; None: the engine's own
    keep_local: bool = False

    @classmethod
    def parse(cls, platform: str | None, keep_local: bool) -> DockerOptions:
        try:
            parsed = parse_platform(platform) if platform else None
        except InvalidReference as exc:
            raise ConfigError(f"--platform: {exc}") from None
        return cls(parsed, keep_local)


class DockerEngineFactory:
    """One Docker engine for one sync: its client (connected on first use), the platform
    copied for entries at `all`, and the credentials passed to pulls and pushes. Called as
    an `EngineFactory`, it makes the `DockerEngineCopier` that `mirror.sync.sync` uses."""

    def __init__(
        self,
        *,
        platform: Platform,
        source_credentials: Credentials | None,
        target_credentials: CredentialsProvider,
        keep_local: bool = False,
        client: Any = None,
        connector: Callable[[], Any] = connect,
    ) -> None:
        self.platform = platform
        self.source_credentials = source_credentials
        self.target_credentials = target_credentials
        self.keep_local = keep_local
        self._client = client
        self._connector = connector
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DockerEngineFactory(platform={self.platform}, keep_local={self.keep_local})"

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._connector()
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __call__(
        self,
        source: RegistryClient,
        target: RegistryClient,
        *,
        concurrency: int,
        budget: PullBudget,
        retry: RetryPolicy,
        progress: Progress | None = None,
    ) -> DockerEngineCopier:
        return DockerEngineCopier(
            source, target, engine=self, budget=budget, retry=retry, progress=progress
        )


@contextmanager
def open_docker_engine(
    config: Config,
    options: DockerOptions,
    *,
    source_credentials: Credentials | None,
    target_credentials: CredentialsProvider,
    connector: Callable[[], Any] = connect,
) -> Iterator[DockerEngineFactory]:
    """The engine for `mirror sync --engine docker`, with its limits logged up front.

    The engine is asked its platform only when `--platform` is not given; otherwise it is
    reached on the first copy (a dry run or an up-to-date run needs no engine)."""
    factory = DockerEngineFactory(
        platform=options.platform or Platform("linux", "amd64"),
        source_credentials=source_credentials,
        target_credentials=target_credentials,
        keep_local=options.keep_local,
        connector=connector,
    )
    try:
        if options.platform is None:
            factory.platform = engine_platform(factory.client())
        log.info(
            "engine: docker (one platform per tag; layers are re-compressed on push, so ECR"
            " digests differ from Docker Hub's)"
        )
        for note in engine_notes(config, factory.platform):
            log.warning("%s", note)
        yield factory
    finally:
        factory.close()


def engine_login(client: Any, host: str, credentials: Credentials) -> None:
    """Have the engine check the login against the registry (`POST /auth`)."""
    _engine_call(
        f"log the Docker engine in to {host}",
        lambda: client.login(
            credentials.username, credentials.password, registry=host, reauth=True
        ),
    )
