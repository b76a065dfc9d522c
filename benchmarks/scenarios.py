"""Each row of the benchmark, run once against the world: the bound, mirror, skopeo, the
planner, the big layer (the Docker engine's rows: ``benchmarks/engine_rows.py``).

Every run writes into repositories nobody wrote before (a new prefix), so a "full" run has
nothing to skip; the target registry's storage is emptied before each full run, so that no
tool can mount a blob from an earlier run's repository (skopeo keeps a blob-location cache
across runs; mirror does not). What a run spent at Docker Hub is read from the hub front's
own counters, so every tool is counted the same way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from tests.world.corpus import ACCEPT
from tests.world.world import World

from .corpus import BIG_REPOSITORY, MANY_REPOSITORY, blob_jobs
from .measure import MIRROR, Measured, run_measured

LOOPBACK = "loopback"
FAR = "hub +40 ms"
LATENCY_MS = 40.0

BOUND = "bound (8 streams)"
MIRROR_FULL = "mirror full"
SKOPEO_FULL = "skopeo full"
MIRROR_NOOP = "mirror no-op"
MIRROR_NOOP_STACK = "mirror no-op + stack check"
SKOPEO_NOOP = "skopeo no-op"
PLAN = "mirror --dry-run (planning)"
BIG = "mirror, one big layer"
DOCKER_MIRROR = "mirror --engine docker"
DOCKER_LOOP = "docker pull/tag/push loop"


@dataclass
class Run:
    """One timed command (or, for the docker loop, one timed series of commands)."""

    scenario: str
    row: str
    round: int
    seconds: float
    cpu: float  # user + system CPU of the tool's own process(es)
    rss_mb: float  # peak RSS of the tool's own process (largest, for a series)
    pulls: int  # manifest GETs Docker Hub answered 200 (the hub front's count)
    cdn_bytes: int  # blob bytes Docker Hub's CDN served
    bytes: int | None  # bytes the tool says it moved (mirror's report; the bound's sum)
    ok: bool
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Bench:
    """The world, the tools' environment, and one method per kind of run."""

    def __init__(
        self,
        world: World,
        workdir: Path,
        *,
        repositories: Sequence[str],
        tags: dict[str, list[str]],
        docker_tags: dict[str, list[str]],
        transfers: int,
        ecr_mounting: bool,
    ) -> None:
        self.world = world
        self.workdir = workdir
        self.repositories = list(repositories)
        self.tags = tags
        self.docker_tags = docker_tags
        self.transfers = transfers
        self.ecr_mounting = ecr_mounting
        self.hub_host = urlsplit(world.hub_url).netloc
        self.ecr_host = urlsplit(world.ecr_url).netloc
        self.counter = 0
        self.http = httpx.Client(timeout=60)
        # anonymous at the source whatever this machine's Docker or skopeo login says
        docker_config = workdir / "docker-config"
        docker_config.mkdir(exist_ok=True)
        auth_file = workdir / "registry-auth.json"
        auth_file.write_text('{"auths": {}}\n')
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKERHUB_")}
        self.env.update(world.env())
        self.env["DOCKER_CONFIG"] = str(docker_config)
        self.env["REGISTRY_AUTH_FILE"] = str(auth_file)

    # -- helpers -------------------------------------------------------------------------

    def prefix(self, tool: str) -> str:
        self.counter += 1
        return f"bench-{tool}-{self.counter}"

    def create(self, names: Sequence[str]) -> None:
        for name in names:
            self.world.create_repository(name)

    def empty_target(self) -> None:
        """Empty the ECR registry's storage (the registry keeps running): disk stays bounded,
        and no run can mount what an earlier run left there."""
        assert self.world.ecr_registry is not None
        self.world.ecr_registry.wipe()

    def counted(self, fn: Callable[[], Run]) -> Run:
        """Run ``fn`` and fill in what the hub front saw meanwhile: pulls and CDN bytes."""
        counters = self.world.hub_front.counters
        sizes = self.world.corpus.blob_sizes
        pulls0 = counters["pulls"]
        heads0 = counters["manifest_head"]
        cdn0 = counters.by_ref("cdn_get")
        run = fn()
        run.pulls = counters["pulls"] - pulls0
        run.extra["hub_manifest_heads"] = counters["manifest_head"] - heads0
        cdn = counters.by_ref("cdn_get")
        run.cdn_bytes = sum((n - cdn0.get(key, 0)) * sizes.get(key[1], 0) for key, n in cdn.items())
        return run

    def digests_ok(self, prefix: str, tags: dict[str, list[str]]) -> str | None:
        """None when every tag in the target has its source digest; else what differs."""
        wrong: list[str] = []
        for repository, names in tags.items():
            for tag in names:
                r = self.http.head(
                    f"{self.world.ecr_url}/v2/{prefix}/{repository}/manifests/{tag}",
                    headers={"Accept": ACCEPT},
                    auth=self.world.ecr_auth,
                )
                want = self.world.corpus.get(f"{repository}:{tag}").digest
                if r.headers.get("docker-content-digest") != want:
                    wrong.append(f"{repository}:{tag} ({r.status_code})")
        return f"digest differs or tag missing: {', '.join(wrong[:5])}" if wrong else None

    def mirror_config(
        self, prefix: str, tags: dict[str, list[str]], *, stack: bool = False
    ) -> Path:
        images = [{"image": repository, "tags": names} for repository, names in tags.items()]
        return self.world.write_config(
            self.workdir / f"{prefix}.yaml",
            images=images,
            target={"prefix": prefix},
            stack={"name": prefix} if stack else {},
        )

    def mirror_argv(self, config: Path, *args: str) -> list[str]:
        return [str(MIRROR), "sync", "-c", str(config), "-o", "json", *args]

    @staticmethod
    def _mirror_run(
        scenario: str,
        row: str,
        round_: int,
        m: Measured,
        check: Callable[[dict[str, Any]], str | None],
    ) -> Run:
        """A Run from a ``mirror sync -o json`` command: its report says what it moved, and
        ``check`` whether it did what the row means."""
        error: str | None = None
        report: dict[str, Any] = {}
        try:
            report = json.loads(m.stdout)
            error = check(report["totals"])
        except (ValueError, KeyError, TypeError):
            error = f"no JSON report: {m.stderr.strip()[-500:]}"
        if m.returncode != 0 and error is None:
            error = f"exit code {m.returncode}: {report.get('error') or m.stderr.strip()[-500:]}"
        totals = report.get("totals") or {}
        return Run(
            scenario,
            row,
            round_,
            m.seconds,
            m.cpu,
            m.rss_mb,
            0,
            0,
            totals.get("bytes"),
            ok=error is None,
            error=error,
            extra={"totals": totals},
        )

    # -- the bound -----------------------------------------------------------------------

    def bound(self, scenario: str, round_: int) -> Run:
        """Every blob piped hub -> ECR by ``benchmarks.bound`` with ``transfers`` streams."""
        prefix = self.prefix("bound")
        jobs = blob_jobs(self.world.corpus, self.repositories, per_repository=not self.ecr_mounting)
        self.create([f"{prefix}/{r}" for r in sorted({j[0] for j in jobs})])
        job_file = self.workdir / f"{prefix}.json"
        job_file.write_text(
            json.dumps(
                {
                    "hub_url": self.world.hub_url,
                    "ecr_url": self.world.ecr_url,
                    "ecr_user": self.world.ecr_user,
                    "ecr_password": self.world.ecr_password,
                    "prefix": prefix,
                    "streams": self.transfers,
                    "blobs": jobs,
                }
            )
        )
        self.empty_target()

        def go() -> Run:
            m = run_measured(
                [str(MIRROR.parent / "python"), "-m", "benchmarks.bound", str(job_file)], self.env
            )
            try:
                result = json.loads(m.stdout)
            except ValueError:
                return Run(
                    scenario,
                    BOUND,
                    round_,
                    m.seconds,
                    m.cpu,
                    m.rss_mb,
                    0,
                    0,
                    None,
                    ok=False,
                    error=f"no result: {m.stderr.strip()[-500:]}",
                )
            errors = result["errors"]
            return Run(
                scenario,
                BOUND,
                round_,
                result["seconds"],
                m.cpu,
                m.rss_mb,
                0,
                0,
                result["bytes"],
                ok=not errors and m.returncode == 0,
                error="; ".join(errors[:3]) or None,
                extra={"blobs": result["blobs"], "process_seconds": m.seconds},
            )

        return self.counted(go)

    # -- mirror --------------------------------------------------------------------------

    def mirror(self, scenario: str, round_: int) -> list[Run]:
        """Full sync into a new stack's repositories, then the same sync twice: without the
        stack check (``--no-ensure-repo``) and with it (plain ``mirror sync``)."""
        prefix = self.prefix("mirror")
        config = self.mirror_config(prefix, self.tags, stack=True)
        # the repositories come from the stack, as they would for a user: the stack check of
        # the last run below then finds a stack that matches and changes nothing
        ensure = run_measured([str(MIRROR), "ensure-repo", "-c", str(config)], self.env)
        if ensure.returncode != 0:
            error = f"ensure-repo failed: {ensure.stderr.strip()[-500:]}"
            return [
                Run(scenario, row, round_, 0.0, 0.0, 0.0, 0, 0, None, ok=False, error=error)
                for row in (MIRROR_FULL, MIRROR_NOOP, MIRROR_NOOP_STACK)
            ]
        self.empty_target()
        ntags = sum(len(t) for t in self.tags.values())

        def full_check(totals: dict[str, Any]) -> str | None:
            bad = {k: totals.get(k) for k in ("failed", "deferred", "missing") if totals.get(k)}
            return f"not all copied: {bad}" if bad else None

        def noop_check(totals: dict[str, Any]) -> str | None:
            if totals.get("up_to_date") != ntags:
                return f"up to date {totals.get('up_to_date')} of {ntags} tags: {totals}"
            return None

        full = self.counted(
            lambda: self._mirror_run(
                scenario,
                MIRROR_FULL,
                round_,
                run_measured(self.mirror_argv(config, "--no-ensure-repo"), self.env),
                full_check,
            )
        )
        if full.ok:
            full.error = self.digests_ok(prefix, self.tags)
            full.ok = full.error is None
        noop = self.counted(
            lambda: self._mirror_run(
                scenario,
                MIRROR_NOOP,
                round_,
                run_measured(self.mirror_argv(config, "--no-ensure-repo"), self.env),
                noop_check,
            )
        )
        stack = self.counted(
            lambda: self._mirror_run(
                scenario,
                MIRROR_NOOP_STACK,
                round_,
                run_measured(self.mirror_argv(config), self.env),
                noop_check,
            )
        )
        return [full, noop, stack]

    # -- skopeo --------------------------------------------------------------------------

    def skopeo(self, scenario: str, round_: int) -> list[Run]:
        """``skopeo sync --all`` from a YAML list of the same tags, then the same again.

        skopeo names a destination repository by the source's last path component
        (``bench/python`` -> ``<dest>/python``), so the destination is ``<prefix>/bench``
        and the repositories land where mirror's do: ``<prefix>/bench/python``."""
        prefix = self.prefix("skopeo")
        source = self.workdir / f"{prefix}.yaml"
        source.write_text(
            yaml.safe_dump({self.hub_host: {"tls-verify": False, "images": self.tags}})
        )
        parents = {r.rpartition("/")[0] for r in self.tags}
        if len(parents) != 1:
            raise ValueError("skopeo sync needs every repository under one namespace")
        namespace = parents.pop()
        self.create([f"{prefix}/{r}" for r in self.tags])
        argv = [
            "skopeo",
            "sync",
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--all",
            "--dest-tls-verify=false",
            "--dest-creds",
            f"{self.world.ecr_user}:{self.world.ecr_password}",
            str(source),
            f"{self.ecr_host}/{prefix}/{namespace}",
        ]
        self.empty_target()

        def go(row: str) -> Run:
            m = run_measured(argv, self.env)
            error = None if m.returncode == 0 else f"exit {m.returncode}: {m.stderr.strip()[-500:]}"
            return Run(
                scenario,
                row,
                round_,
                m.seconds,
                m.cpu,
                m.rss_mb,
                0,
                0,
                None,
                ok=error is None,
                error=error,
            )

        full = self.counted(lambda: go(SKOPEO_FULL))
        if full.ok:
            full.error = self.digests_ok(prefix, self.tags)
            full.ok = full.error is None
        noop = self.counted(lambda: go(SKOPEO_NOOP))
        return [full, noop]

    # -- planning and memory -------------------------------------------------------------

    def plan(self, round_: int, many: list[str]) -> Run:
        """``mirror sync --dry-run`` of a repository of many tags, ECR's repository empty:
        a HEAD per tag at Docker Hub, the ECR repository's tag list, nothing else."""
        prefix = self.prefix("plan")
        self.create([f"{prefix}/{MANY_REPOSITORY}"])
        config = self.mirror_config(prefix, {MANY_REPOSITORY: many})

        def check(totals: dict[str, Any]) -> str | None:
            if totals.get("would_copy") != len(many):
                return f"would copy {totals.get('would_copy')} of {len(many)} tags"
            return None

        run = self.counted(
            lambda: self._mirror_run(
                FAR,
                PLAN,
                round_,
                run_measured(self.mirror_argv(config, "--dry-run"), self.env),
                check,
            )
        )
        run.extra["tags"] = len(many)
        return run

    def big(self) -> Run:
        """mirror copying one image of one big layer: its peak RSS is the figure."""
        prefix = self.prefix("big")
        repository, tag = BIG_REPOSITORY
        self.create([f"{prefix}/{repository}"])
        config = self.mirror_config(prefix, {repository: [tag]})
        self.empty_target()

        def check(totals: dict[str, Any]) -> str | None:
            return None if totals.get("copied") == 1 else f"copied {totals.get('copied')}"

        run = self.counted(
            lambda: self._mirror_run(
                LOOPBACK,
                BIG,
                1,
                run_measured(self.mirror_argv(config, "--no-ensure-repo"), self.env),
                check,
            )
        )
        self.empty_target()
        return run
