"""The test world: Docker Hub and ECR stand-ins, moto, an optional Docker engine, a corpus.

::

    with World() as w:
        w.write_config(tmp / "images.yaml", images=[{"image": "alpine", "tags": ["3.19"]}])
        env = {**os.environ, **w.moto_env}
        ...

Pieces:

* ``hub_registry``: distribution registry holding the corpus (no auth), behind ``hub_front``
  (``HubFront``: Docker Hub token auth, rate limits, CDN redirect). ``hub_url`` is the front.
* ``ecr_registry``: distribution registry with htpasswd user ``AWS`` and moto's ECR password,
  behind ``ecr_front`` (``EcrFront``: repositories must exist in moto). ``ecr_url`` is the
  front.
* ``elsewhere``: a listener on another host (``Elsewhere``, 127.0.0.3) that records every
  request it gets: where a lying registry points credentials, to show that none arrive.
* ``moto``: moto_server; ``moto_env`` is the environment boto3 needs.
* ``docker_engine()``: a private dockerd, started on first use.

When the fronts module is not there (yet), or with ``fronts=False``, ``hub_url`` and
``ecr_url`` are the registries themselves.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import yaml

from .corpus import Corpus, ImageSpec, push_corpus
from .dockerd import DockerEngine, start_dockerd
from .liarfront import Elsewhere
from .moto import Moto, moto_env, start_moto
from .registry import Registry, start_registry

__all__ = ["DEFAULT_IMAGES", "World", "load_fronts"]

DEFAULT_IMAGES: list[dict[str, Any]] = [
    {"image": "alpine", "tags": ["3.19", "3.20"]},
    {"image": "python", "tags": ["3.12-slim"]},
    {
        "image": "bitnami/redis",
        "tags": {"match": r"^7\.4\.\d+$", "latest": 3},
        "platforms": ["linux/amd64"],
    },
]


def load_fronts() -> tuple[type[Any] | None, type[Any] | None]:
    """(HubFront, EcrFront) classes, or None for each one not written yet.

    Looks in ``tests.world.fronts`` first, then ``tests.world.hubfront`` /
    ``tests.world.ecrfront``."""
    found: dict[str, type[Any] | None] = {"HubFront": None, "EcrFront": None}
    for module, names in (
        ("fronts", ("HubFront", "EcrFront")),
        ("hubfront", ("HubFront",)),
        ("ecrfront", ("EcrFront",)),
    ):
        try:
            mod = importlib.import_module(f"{__package__}.{module}")
        except ModuleNotFoundError as e:
            if e.name != f"{__package__}.{module}":
                raise
            continue
        for name in names:
            if found[name] is None:
                found[name] = getattr(mod, name, None)
    return found["HubFront"], found["EcrFront"]


class World:
    """Everything the mirror tool talks to, on loopback. ``up()``/``down()`` or ``with``."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        corpus: Sequence[ImageSpec] | None = None,
        scale: float = 1.0,
        fronts: bool = True,
        hub_front_options: Mapping[str, Any] | None = None,
        ecr_front_options: Mapping[str, Any] | None = None,
        warm_moto: bool = True,
    ) -> None:
        """``corpus``: image specs to push (default ``corpus.DEFAULT_CORPUS``; ``[]`` for
        none); ``scale`` multiplies layer sizes. ``workdir``: logs and registry storage
        (default: a temp dir, deleted by ``down()``). ``warm_moto``: load moto's
        CloudFormation backend in the background during ``up()``."""
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="mirror-world-"))
        self._specs = corpus
        self._scale = scale
        self._use_fronts = fronts
        self._warm = warm_moto
        self._hub_front_options = dict(hub_front_options or {})
        self._ecr_front_options = dict(ecr_front_options or {})
        self.hub_registry: Registry | None = None
        self.ecr_registry: Registry | None = None
        self.moto: Moto | None = None
        self.hub_front: Any = None
        self.ecr_front: Any = None
        self.elsewhere: Elsewhere | None = None
        self.corpus: Corpus = Corpus([])
        self.ecr_user = "AWS"
        self.ecr_password = ""
        self.timings: dict[str, float] = {}
        self._docker: DockerEngine | None = None
        self._docker_lock = threading.Lock()
        self._ecr_client: Any = None
        self._ecr_client_lock = threading.Lock()
        self._started = False
        self._warmup: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def up(self) -> Self:
        """Start moto and the hub registry, push the corpus (while moto boots), then the
        ECR registry (it needs moto's password) and the fronts."""
        if self._started:
            return self
        self._started = True
        t0 = time.monotonic()
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.moto = start_moto(self.workdir, wait=False)
            self.hub_registry = start_registry(self.workdir, name="hub")
            t = time.monotonic()
            self.corpus = push_corpus(
                self.hub_registry.url,
                self._specs,
                scale=self._scale,
                tmpdir=self.workdir / "corpus-tmp",
            )
            self.timings["corpus_push"] = time.monotonic() - t
            self.moto.wait()
            self.timings["moto_ready"] = time.monotonic() - t0
            self.ecr_user, self.ecr_password = self.moto.ecr_authorization()
            self.ecr_registry = start_registry(
                self.workdir, (self.ecr_user, self.ecr_password), name="ecr"
            )
            self._start_fronts()
            # moto's first CloudFormation call imports every backend (~1.6 s): do it now,
            # in the background, rather than in the first test that deploys a stack
            if self._warm:
                self._warmup = threading.Thread(target=self._warm_moto, name="moto-warmup")
                self._warmup.start()
        except BaseException:
            self.down()
            raise
        self.timings["up"] = time.monotonic() - t0
        return self

    def _warm_moto(self) -> None:
        with contextlib.suppress(Exception):
            assert self.moto is not None
            self.moto.client("cloudformation").list_stacks()

    def _start_fronts(self) -> None:
        # Hook points: the two registries get wrapped by the Docker Hub / ECR fronts.
        if not self._use_fronts:
            return
        self.elsewhere = Elsewhere()
        self.elsewhere.start()
        hub_cls, ecr_cls = load_fronts()
        assert self.hub_registry is not None and self.ecr_registry is not None
        if hub_cls is not None:
            self.hub_front = hub_cls(self.hub_registry.url, **self._hub_front_options)
            self.hub_front.start()
        if ecr_cls is not None:
            self.ecr_front = ecr_cls(
                self.ecr_registry.url,
                repository_exists=self.repository_exists,
                **self._ecr_front_options,
            )
            self.ecr_front.start()

    def down(self) -> None:
        """Stop everything (fronts, dockerd, registries, moto). Idempotent; never raises
        before every piece had its chance to stop."""
        errors: list[BaseException] = []

        def attempt(fn: Callable[[], Any]) -> None:
            try:
                fn()
            except BaseException as e:  # keep stopping the rest, raise at the end
                errors.append(e)

        if self._warmup is not None:
            self._warmup.join(30)
            self._warmup = None
        for front in (self.ecr_front, self.hub_front, self.elsewhere):
            if front is not None:
                attempt(front.stop)
        self.ecr_front = self.hub_front = self.elsewhere = None
        with self._docker_lock:
            servers = [self._docker, self.ecr_registry, self.hub_registry, self.moto]
            # in parallel: dockerd alone takes ~1 s to shut down
            threads = [
                threading.Thread(target=attempt, args=(s.stop,), name=f"stop-{i}")
                for i, s in enumerate(servers)
                if s is not None
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self._docker = None
        self._ecr_client = None
        self._started = False
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if errors:
            raise errors[0]

    def __enter__(self) -> Self:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # ------------------------------------------------------------------ addresses

    @property
    def hub_url(self) -> str:
        """Docker Hub as clients see it (the front; the registry itself without fronts)."""
        if self.hub_front is not None:
            return str(self.hub_front.url)
        return self.hub_upstream_url

    @property
    def hub_upstream_url(self) -> str:
        """The registry behind the hub front (no auth, no limits): for setup and checks."""
        assert self.hub_registry is not None, "world not up"
        return self.hub_registry.url

    @property
    def ecr_url(self) -> str:
        """ECR as clients see it (the front; the registry itself without fronts)."""
        if self.ecr_front is not None:
            return str(self.ecr_front.url)
        return self.ecr_upstream_url

    @property
    def ecr_upstream_url(self) -> str:
        """The registry behind the ECR front (Basic auth only): for setup and checks."""
        assert self.ecr_registry is not None, "world not up"
        return self.ecr_registry.url

    @property
    def ecr_auth(self) -> tuple[str, str]:
        """("AWS", password) for HTTP Basic against the ECR stand-in."""
        return self.ecr_user, self.ecr_password

    @property
    def moto_url(self) -> str:
        assert self.moto is not None, "world not up"
        return self.moto.url

    @property
    def moto_env(self) -> dict[str, str]:
        """AWS_ENDPOINT_URL, AWS keys and region for boto3 / aws CLI against moto."""
        return moto_env(self.moto_url)

    # ------------------------------------------------------------------ docker engine

    def docker_engine(self) -> DockerEngine:
        """The private dockerd, started on first call (raises ``DockerdUnavailable``)."""
        with self._docker_lock:
            if self._docker is None:
                t = time.monotonic()
                self._docker = start_dockerd(log_dir=self.workdir / "dockerd")
                self.timings["dockerd_start"] = time.monotonic() - t
            return self._docker

    @property
    def docker_host(self) -> str:
        """DOCKER_HOST of the private dockerd (starts it on first use)."""
        return self.docker_engine().host

    @property
    def docker_started(self) -> bool:
        return self._docker is not None

    def env(self) -> dict[str, str]:
        """moto env, plus DOCKER_HOST when the engine was started."""
        out = self.moto_env
        if self._docker is not None:
            out["DOCKER_HOST"] = self._docker.host
        return out

    # ------------------------------------------------------------------ state

    def _ecr(self) -> Any:
        with self._ecr_client_lock:
            if self._ecr_client is None:
                assert self.moto is not None
                self._ecr_client = self.moto.client("ecr")
            return self._ecr_client

    def repository_exists(self, name: str) -> bool:
        """Does moto know the ECR repository ``name``? (The ECR front asks this.)"""
        try:
            self._ecr().describe_repositories(repositoryNames=[name])
        except Exception as e:
            code = getattr(e, "response", {}).get("Error", {}).get("Code")
            if code in ("RepositoryNotFoundException", "InvalidParameterException"):
                return False
            raise
        return True

    def tag_is_immutable(self, name: str, tag: str) -> bool:
        """Does ECR refuse to move ``tag`` in repository ``name``, by the mutability and
        exclusion filters moto holds for it? ECR's filters have one wildcard, ``*``: fnmatch
        reads them the same (its ``?`` and ``[`` cannot occur in a filter). Give it to the
        ECR front as ``immutable_tags``."""
        (repository,) = self._ecr().describe_repositories(repositoryNames=[name])["repositories"]
        mutability = repository.get("imageTagMutability", "MUTABLE")
        filters = [f["filter"] for f in repository.get("imageTagMutabilityExclusionFilters", [])]
        excluded = any(fnmatch.fnmatchcase(tag, pattern) for pattern in filters)
        return mutability.startswith("IMMUTABLE") != excluded

    def create_repository(self, name: str) -> None:
        """Create an ECR repository in moto (shortcut for tests)."""
        self._ecr().create_repository(repositoryName=name)

    def reset_target(self) -> None:
        """Fresh AWS side: moto reset, ECR registry storage emptied, ECR front counters."""
        assert self.moto is not None and self.ecr_registry is not None, "world not up"
        self.moto.reset()
        self.ecr_registry.wipe()
        _reset_front(self.ecr_front)

    def reset_source(self) -> None:
        """Hub front back to its initial state (quota, counters, faults, lies), and the
        other host's record emptied. The corpus stays."""
        _reset_front(self.hub_front)
        _reset_front(self.elsewhere)

    def reset(self) -> None:
        self.reset_target()
        self.reset_source()

    def pids(self) -> list[int]:
        """Pids of every process the world runs (servers and their children)."""
        out: list[int] = []
        for server in (self.hub_registry, self.ecr_registry, self.moto, self._docker):
            if server is not None:
                out += server.pids()
        return out

    # ------------------------------------------------------------------ config

    def config(
        self, images: Sequence[Mapping[str, Any]] | None = None, **overrides: Any
    ) -> dict[str, Any]:
        """The mirror tool's config (version 1) pointed at this world.

        ``overrides``: per section; a dict is merged into the section
        (``source={"reserve_pulls": 0}``), anything else replaces it."""
        cfg: dict[str, Any] = {
            "version": 1,
            "source": {"registry": self.hub_url, "reserve_pulls": 10},
            "target": {"region": "us-east-1", "registry": self.ecr_url, "prefix": "dockerhub"},
            "stack": {"name": "ecr-mirror", "iam_user": None},
            "defaults": {"platforms": "all"},
            "images": [dict(i) for i in (DEFAULT_IMAGES if images is None else images)],
        }
        for key, value in overrides.items():
            if isinstance(value, Mapping) and isinstance(cfg.get(key), dict):
                cfg[key] = {**cfg[key], **value}
            else:
                cfg[key] = value
        return cfg

    def write_config(
        self, path: Path | str, images: Sequence[Mapping[str, Any]] | None = None, **overrides: Any
    ) -> Path:
        """Write ``config(images, **overrides)`` as YAML to ``path``; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.config(images, **overrides), sort_keys=False))
        return path


def _reset_front(front: Any) -> None:
    if front is None:
        return
    reset = getattr(front, "reset", None)
    if callable(reset):
        reset()
        return
    for name in ("reset_counters", "reset_quota", "set_faults"):
        fn = getattr(front, name, None)
        if callable(fn):
            with contextlib.suppress(TypeError):
                fn()
