"""The Docker engine's rows: ``mirror sync --engine docker`` beside a plain docker loop.

Apart from the other rows because they need more than the world: a docker CLI, root, and
the world's private dockerd; and because the engine, not the client, does their work, so
its CPU and memory are measured beside the client's.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from typing import Any

from tests.world.dockerd import DockerdUnavailable, DockerEngine

from .measure import proc_cpu, run_measured, sampled_rss
from .scenarios import DOCKER_LOOP, DOCKER_MIRROR, LOOPBACK, Bench, Run


class EngineBench(Bench):
    """``Bench`` and the two Docker engine rows."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.docker_error: str | None = None
        self._docker_ready = False
        self.docker = ""
        self.engine: DockerEngine | None = None
        self.loop_env: dict[str, str] = {}

    @property
    def running(self) -> DockerEngine:
        """The world's dockerd, once ``docker_ready()`` said yes."""
        assert self.engine is not None, "docker_ready() first"
        return self.engine

    def docker_ready(self) -> bool:
        """Start the world's dockerd and log the docker CLI into the ECR front (once)."""
        if self._docker_ready:
            return True
        if self.docker_error is not None:
            return False
        docker = shutil.which("docker")
        if docker is None:
            self.docker_error = "no docker CLI on PATH (Debian package docker.io)"
            return False
        try:
            engine = self.world.docker_engine()
        except DockerdUnavailable as e:
            self.docker_error = str(e)
            return False
        self.docker = docker
        self.engine = engine
        self.env["DOCKER_HOST"] = engine.host
        loop_config = self.workdir / "docker-loop-config"
        loop_config.mkdir(exist_ok=True)
        self.loop_env = {**self.env, "DOCKER_CONFIG": str(loop_config)}
        login = run_measured(
            [docker, "login", "-u", self.world.ecr_user, "--password-stdin", self.ecr_host],
            self.loop_env,
            stdin=self.world.ecr_password.encode(),
        )
        if login.returncode != 0:
            self.docker_error = f"docker login failed: {login.stderr.strip()[-300:]}"
            return False
        self._docker_ready = True
        return True

    def _engine_images_removed(self) -> None:
        """Leave the engine empty, outside the timing: each run pulls everything again."""
        client = self.running.client()
        for image in client.images.list(all=True):
            with contextlib.suppress(Exception):
                client.images.remove(image.id, force=True)
        with contextlib.suppress(Exception):
            client.images.prune(filters={"dangling": False})

    def _engine_measured(self, fn: Callable[[], Run]) -> Run:
        """``fn`` with dockerd's (and containerd's) CPU and peak RSS: the engine does the
        work of both docker rows, so its cost is reported beside the client's."""
        pids = self.running.pids()
        cpu0 = sum(proc_cpu(p) for p in pids)
        with sampled_rss(self.running.pids) as rss:
            run = self.counted(fn)
        run.extra["dockerd_cpu"] = (
            sum(proc_cpu(p) for p in set(pids) | set(self.running.pids())) - cpu0
        )
        run.extra["dockerd_peak_rss_mb"] = rss["peak_mb"]
        self._engine_images_removed()
        self.empty_target()
        return run

    def docker_mirror(self, round_: int) -> Run:
        prefix = self.prefix("mirrordocker")
        self.create([f"{prefix}/{r}" for r in self.docker_tags])
        config = self.mirror_config(prefix, self.docker_tags)

        def check(totals: dict[str, Any]) -> str | None:
            bad = {k: totals.get(k) for k in ("failed", "deferred", "missing") if totals.get(k)}
            return f"not all copied: {bad}" if bad else None

        return self._engine_measured(
            lambda: self._mirror_run(
                LOOPBACK,
                DOCKER_MIRROR,
                round_,
                run_measured(
                    self.mirror_argv(config, "--no-ensure-repo", "--engine", "docker"), self.env
                ),
                check,
            )
        )

    def docker_loop(self, round_: int) -> Run:
        """What a team without mirror writes: for each tag, ``docker pull``, ``docker tag``,
        ``docker push``; then ``docker rmi`` of what it pulled (mirror's engine cleans up
        too). One process per command, as in a shell loop; wall time is the whole loop."""
        prefix = self.prefix("dockerloop")
        self.create([f"{prefix}/{r}" for r in self.docker_tags])
        steps: list[list[str]] = []
        refs: list[str] = []
        for repository, names in self.docker_tags.items():
            for tag in names:
                src = f"{self.hub_host}/{repository}:{tag}"
                dst = f"{self.ecr_host}/{prefix}/{repository}:{tag}"
                steps += [["pull", "-q", src], ["tag", src, dst], ["push", "-q", dst]]
                refs += [src, dst]
        steps.append(["rmi", *refs])

        def go() -> Run:
            cpu = rss = 0.0
            error = None
            started = time.perf_counter()
            for step in steps:
                m = run_measured([self.docker, *step], self.loop_env)
                cpu += m.cpu
                rss = max(rss, m.rss_mb)
                if m.returncode != 0:
                    error = f"docker {' '.join(step[:2])}: {m.stderr.strip()[-300:]}"
                    break
            seconds = time.perf_counter() - started
            return Run(
                LOOPBACK,
                DOCKER_LOOP,
                round_,
                seconds,
                cpu,
                rss,
                0,
                0,
                None,
                ok=error is None,
                error=error,
                extra={"commands": len(steps)},
            )

        return self._engine_measured(go)
