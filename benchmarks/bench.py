"""Benchmark: `mirror` beside skopeo and the Docker engine, on one test world, in one run.

    .venv/bin/python -m benchmarks.bench [--size-mb 210] [--layers 8] [--repeat 3]
        [--big-layer-gib 1] [--skip-docker] [--json out.json]

Every tool copies the same images from the Docker Hub front (anonymous token auth, CDN
redirect) into a new repository of the ECR front (Basic auth ``AWS:<password>``):

* a single-platform Docker schema 2 image of about ``--size-mb`` MiB in ``--layers`` layers;
* a 2-platform OCI index of about the same total size;
* (``--big-layer-gib``) one image of a single layer of that many GiB: mirror and skopeo once
  each, for their peak memory.

Each copy is timed (wall clock); its process's CPU seconds come from ``os.wait4`` and its
peak RSS from ``VmHWM`` in ``/proc/<pid>/status`` (polled). For the Docker engine the work
happens in dockerd: its CPU delta (from ``/proc/<pid>/stat``, containerd included) and its
sampled peak VmRSS are reported instead.
After each copy the target manifest is HEADed and its digest compared with the source's.

The result to compare is the ratio of each tool's median time to mirror's: the world's
servers share the machine with the tools, so absolute times say little. This is not a test:
it never fails on a timing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.world.corpus import MiB, big_image
from tests.world.dockerd import DockerdUnavailable
from tests.world.world import World

ROOT = Path(__file__).resolve().parent.parent
MIRROR = ROOT / ".venv" / "bin" / "mirror"
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
RUN_TIMEOUT = 900.0  # seconds; a copy that takes longer is killed and reported as failed
SAMPLE_EVERY = 0.02  # seconds between VmRSS samples of dockerd
HWM_EVERY = 0.01  # seconds between VmHWM readings of a tool process
CLK_TCK = os.sysconf("SC_CLK_TCK")

SINGLE = ("bench/single", "1")
INDEX = ("bench/index", "1")
BIG = ("bench/big", "1")
TOOLS = ("mirror", "skopeo", "docker")


# --------------------------------------------------------------------------- measurements


@dataclass
class Run:
    """One copy by one tool."""

    tool: str
    image: str
    target: str  # repository:tag in the ECR front
    seconds: float
    cpu: float  # CPU seconds of the tool (dockerd and containerd for the Docker engine)
    rss_mb: float  # peak RSS of the tool process (sampled VmRSS peak of dockerd)
    ok: bool
    digest: str | None = None  # what the target tag points at
    digest_preserved: bool | None = None
    world_cpu: float = 0.0  # CPU of the world meanwhile: fronts (this process), registries
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Measured:
    returncode: int
    seconds: float
    cpu: float
    rss_mb: float
    stdout: str
    stderr: str


def run_measured(
    argv: Sequence[str], env: dict[str, str], timeout: float = RUN_TIMEOUT
) -> Measured:
    """Run a command: wall time, CPU seconds (wait4) and peak RSS (VmHWM, polled).

    Not ``ru_maxrss``: a child forked (or vforked) from this process inherits this process's
    high-water mark into its ``ru_maxrss`` at exec, so small tools would read as big as the
    benchmark. ``VmHWM`` belongs to the program's own address space; Popen returns after the
    exec, so every reading is the tool's."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL
        )
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        with sampled_rss(lambda: [proc.pid], key="VmHWM", every=HWM_EVERY) as rss:
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            finally:
                timer.cancel()
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return Measured(
            returncode=proc.returncode,
            seconds=seconds,
            cpu=usage.ru_utime + usage.ru_stime,
            rss_mb=rss["peak_mb"],
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


def proc_cpu(pid: int) -> float:
    """CPU seconds of a process and its reaped children, from /proc/<pid>/stat (0 if gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rpartition(")")[2].split()
    # fields[0] is the state (field 3): utime, stime, cutime, cstime are fields 14-17
    return sum(int(v) for v in fields[11:15]) / CLK_TCK


def proc_rss_mb(pid: int, key: str = "VmRSS") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class WorldCpu:
    """CPU spent by the world while a tool runs: this process (the fronts run on its
    threads) and the registry processes. moto and dockerd are left out."""

    def __init__(self, world: World) -> None:
        self.pids: list[int] = []
        for server in (world.hub_registry, world.ecr_registry):
            if server is not None:
                self.pids += server.pids()

    def now(self) -> float:
        return time.process_time() + sum(proc_cpu(p) for p in self.pids)


@contextlib.contextmanager
def sampled_rss(
    pids: Callable[[], list[int]], *, key: str = "VmRSS", every: float = SAMPLE_EVERY
) -> Iterator[dict[str, float]]:
    """Sample the sum of `key` (VmRSS, VmHWM) over `pids()` until the block ends; yields
    {"peak_mb": the largest sum seen}."""
    result = {"peak_mb": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            total = sum(proc_rss_mb(p, key) for p in pids())
            result["peak_mb"] = max(result["peak_mb"], total)
            stop.wait(every)

    thread = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()


# --------------------------------------------------------------------------- the bench


class Bench:
    def __init__(self, world: World, workdir: Path, args: argparse.Namespace) -> None:
        self.world = world
        self.workdir = workdir
        self.args = args
        self.hub_host = urlsplit(world.hub_url).netloc
        self.ecr_host = urlsplit(world.ecr_url).netloc
        self.counter = 0
        self.world_cpu = WorldCpu(world)
        self.http = httpx.Client(timeout=30)
        # anonymous at the source whatever this machine's Docker login says
        docker_config = workdir / "docker-config"
        docker_config.mkdir(exist_ok=True)
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DOCKERHUB_USERNAME", "DOCKERHUB_TOKEN")
        }
        self.env.update(world.env())
        self.env["DOCKER_CONFIG"] = str(docker_config)
        self._docker: Any = None
        self.docker_error: str | None = None

    # -- helpers -------------------------------------------------------------------------

    def source_digest(self, repository: str, tag: str) -> str:
        return self.world.corpus.get(f"{repository}:{tag}").digest

    def new_target(self, tool: str, repository: str) -> tuple[str, str]:
        """A new ECR repository for one copy: (prefix, full repository name)."""
        self.counter += 1
        prefix = f"bench-{tool}-{self.counter}"
        name = f"{prefix}/{repository}"
        self.world.create_repository(name)
        return prefix, name

    def target_digest(self, repository: str, tag: str) -> str | None:
        r = self.http.head(
            f"{self.world.ecr_url}/v2/{repository}/manifests/{tag}",
            headers={"Accept": ACCEPT},
            auth=self.world.ecr_auth,
        )
        if r.status_code != 200:
            return None
        return r.headers.get("docker-content-digest")

    def _check(self, run: Run, repository: str, tag: str, source: str) -> Run:
        """HEAD the target tag: record its digest and whether it is the source's."""
        run.digest = self.target_digest(repository, tag)
        run.digest_preserved = run.digest == source
        if run.digest is None and run.ok:
            run.ok, run.error = False, "the target tag is missing after the copy"
        return run

    # -- the tools -----------------------------------------------------------------------

    def mirror(self, repository: str, tag: str) -> Run:
        prefix, target = self.new_target("mirror", repository)
        config = self.world.write_config(
            self.workdir / f"{prefix}.yaml",
            images=[{"image": repository, "tags": [tag]}],
            target={"prefix": prefix},
        )
        argv = [str(MIRROR), "sync", "--no-ensure-repo", "-c", str(config), "-o", "json"]
        if self.args.mirror_concurrency:
            argv += ["--concurrency", str(self.args.mirror_concurrency)]
        cpu0 = self.world_cpu.now()
        m = run_measured(argv, self.env)
        world_cpu = self.world_cpu.now() - cpu0
        error = None
        extra: dict[str, Any] = {}
        try:
            report = json.loads(m.stdout)
            extra = {"report_totals": report.get("totals")}
            if report["totals"]["copied"] != 1:
                error = f"mirror copied {report['totals']['copied']} images: {report['images']}"
        except (ValueError, KeyError, TypeError):
            error = f"no JSON report: {m.stderr.strip()[-500:]}"
        if m.returncode != 0 and error is None:
            error = f"exit code {m.returncode}: {m.stderr.strip()[-500:]}"
        run = Run(
            "mirror",
            f"{repository}:{tag}",
            f"{target}:{tag}",
            m.seconds,
            m.cpu,
            m.rss_mb,
            ok=error is None,
            world_cpu=world_cpu,
            error=error,
            extra=extra,
        )
        return self._check(run, target, tag, self.source_digest(repository, tag))

    def skopeo(self, repository: str, tag: str, *, all_platforms: bool) -> Run:
        _, target = self.new_target("skopeo", repository)
        argv = [
            "skopeo",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-no-creds",
            "--dest-creds",
            f"{self.world.ecr_user}:{self.world.ecr_password}",
            *(["--all"] if all_platforms else []),
            f"docker://{self.hub_host}/{repository}:{tag}",
            f"docker://{self.ecr_host}/{target}:{tag}",
        ]
        cpu0 = self.world_cpu.now()
        m = run_measured(argv, self.env)
        world_cpu = self.world_cpu.now() - cpu0
        error = None if m.returncode == 0 else f"exit {m.returncode}: {m.stderr.strip()[-500:]}"
        run = Run(
            "skopeo",
            f"{repository}:{tag}",
            f"{target}:{tag}",
            m.seconds,
            m.cpu,
            m.rss_mb,
            ok=error is None,
            world_cpu=world_cpu,
            error=error,
        )
        return self._check(run, target, tag, self.source_digest(repository, tag))

    def docker_client(self) -> Any:
        if self._docker is None and self.docker_error is None:
            try:
                self._docker = self.world.docker_engine().client()
            except DockerdUnavailable as e:
                self.docker_error = str(e)
        return self._docker

    def docker(self, repository: str, tag: str) -> Run:
        """docker SDK: pull from the hub front, tag, push to the ECR front, then remove."""
        client = self.docker_client()
        if client is None:
            raise DockerdUnavailable(self.docker_error or "no dockerd")
        _, target = self.new_target("docker", repository)
        engine = self.world.docker_engine()
        source_ref = f"{self.hub_host}/{repository}"
        target_ref = f"{self.ecr_host}/{target}"
        auth = {"username": self.world.ecr_user, "password": self.world.ecr_password}
        error = None
        pushed_lines = 0
        pids = engine.pids()
        cpu0 = sum(proc_cpu(p) for p in pids)
        world0 = self.world_cpu.now()
        thread0 = time.thread_time()
        started = time.perf_counter()
        image = None
        with sampled_rss(engine.pids) as rss:
            try:
                image = client.images.pull(source_ref, tag=tag, platform="linux/amd64")
                image.tag(target_ref, tag)
                for line in client.images.push(
                    target_ref, tag, stream=True, decode=True, auth_config=auth
                ):
                    pushed_lines += 1
                    if "errorDetail" in line or "error" in line:
                        error = str(line.get("errorDetail") or line.get("error"))
            except Exception as e:  # the SDK raises docker.errors.APIError and friends
                error = f"{type(e).__name__}: {e}"
        seconds = time.perf_counter() - started
        sdk_cpu = time.thread_time() - thread0
        # the pids again: containerd-shim and friends may have come and gone
        cpu = sum(proc_cpu(p) for p in set(pids) | set(engine.pids())) - cpu0
        world_cpu = self.world_cpu.now() - world0 - sdk_cpu
        if image is not None:
            with contextlib.suppress(Exception):
                client.images.remove(image.id, force=True)
        run = Run(
            "docker",
            f"{repository}:{tag}",
            f"{target}:{tag}",
            seconds,
            cpu,
            rss["peak_mb"],
            ok=error is None,
            world_cpu=world_cpu,
            error=error,
            extra={"sdk_client_cpu": sdk_cpu, "push_lines": pushed_lines},
        )
        return self._check(run, target, tag, self.source_digest(repository, tag))

    def mirror_startup(self) -> Measured:
        return run_measured([str(MIRROR), "--version"], self.env)


# --------------------------------------------------------------------------- reporting


def _version(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "not found"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


def machine_facts() -> dict[str, Any]:
    cpu_model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_gib = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    try:
        import docker

        docker_sdk = docker.__version__
    except ImportError:
        docker_sdk = "not installed"
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu_model,
        "memory_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mirror": _version([str(MIRROR), "--version"]),
        "skopeo": _version(["skopeo", "--version"]) if shutil.which("skopeo") else "not found",
        "dockerd": _version(["dockerd", "--version"]) if shutil.which("dockerd") else "not found",
        "docker_sdk": docker_sdk,
        "httpx": httpx.__version__,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


@dataclass
class Summary:
    tool: str
    image: str
    runs: int
    failed: int
    seconds: float | None
    ratio: float | None
    cpu: float | None
    rss_mb: float | None
    world_cpu: float | None
    digest_preserved: bool | None
    errors: list[str]


def summarise(runs: list[Run], image: str, tools: Sequence[str]) -> list[Summary]:
    out: list[Summary] = []
    base: float | None = None
    for tool in tools:
        mine = [r for r in runs if r.tool == tool and r.image == image]
        good = [r for r in mine if r.ok]
        s = Summary(
            tool,
            image,
            len(mine),
            len(mine) - len(good),
            statistics.median(r.seconds for r in good) if good else None,
            None,
            statistics.median(r.cpu for r in good) if good else None,
            max(r.rss_mb for r in good) if good else None,
            statistics.median(r.world_cpu for r in good) if good else None,
            all(r.digest_preserved for r in good) if good else None,
            [r.error for r in mine if r.error],
        )
        if tool == "mirror":
            base = s.seconds
        if s.seconds is not None and base:
            s.ratio = s.seconds / base
        out.append(s)
    return out


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(title: str, rows: list[Summary], notes: dict[str, str]) -> None:
    print(f"\n{title}")
    header = (
        f"  {'tool':<8} {'median s':>9} {'x mirror':>9} {'CPU s':>7} {'peak RSS MB':>12} "
        f"{'world CPU s':>12}  digest preserved"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for s in rows:
        preserved = "-" if s.digest_preserved is None else ("yes" if s.digest_preserved else "no")
        failed = f"  ({s.failed}/{s.runs} runs failed)" if s.failed else ""
        note = f"  {notes[s.tool]}" if s.tool in notes else ""
        print(
            f"  {s.tool:<8} {_fmt(s.seconds, '9.2f')} {_fmt(s.ratio, '9.2f')} "
            f"{_fmt(s.cpu, '7.2f')} {_fmt(s.rss_mb, '12.1f')} {_fmt(s.world_cpu, '12.2f')}  "
            f"{preserved}{failed}{note}"
        )
        for e in dict.fromkeys(s.errors):
            print(f"      error: {e[:300]}")


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bench",
        description="mirror beside skopeo and the Docker engine, on one test world.",
    )
    p.add_argument("--size-mb", type=int, default=210, help="image size in MiB (default 210)")
    p.add_argument("--layers", type=int, default=8, help="layers per platform (default 8)")
    p.add_argument("--repeat", type=int, default=3, help="copies per tool and image (median)")
    p.add_argument(
        "--big-layer-gib", type=float, default=1, help="one-layer memory test, GiB (0: skip)"
    )
    p.add_argument("--skip-docker", action="store_true", help="leave the Docker engine out")
    p.add_argument(
        "--mirror-concurrency", type=int, default=None, help="mirror sync --concurrency N"
    )
    p.add_argument("--json", type=Path, default=None, help="write the raw numbers here")
    args = p.parse_args(argv)
    if args.size_mb < 1 or args.layers < 1 or args.repeat < 1 or args.big_layer_gib < 0:
        p.error("sizes, layers and repeat must be positive")
    return args


def layer_sizes(total_mib: float, layers: int) -> list[int]:
    total = int(total_mib * MiB)
    per, extra = divmod(total, layers)
    return [per + (1 if i < extra else 0) for i in range(layers)]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    facts = machine_facts()
    tools = [t for t in TOOLS if not (t == "docker" and args.skip_docker)]
    if not shutil.which("skopeo"):
        tools.remove("skopeo")
    print("mirror benchmark: one world, every tool copying the same images (loopback)")
    print(
        f"  machine: {facts['nproc']} CPUs ({facts['cpu']}), {facts['memory_gib']} GiB, "
        f"Linux {facts['kernel']}, Python {facts['python']}, "
        f"load average {' '.join(map(str, facts['loadavg_start']))}"
    )
    print(
        f"  tools: {facts['mirror']}; {facts['skopeo']}; {facts['dockerd']} "
        f"(docker SDK {facts['docker_sdk']}); httpx {facts['httpx']}"
    )
    print(
        f"  images: {args.size_mb} MiB in {args.layers} layers (single platform); "
        f"{args.size_mb} MiB over 2 platforms x {args.layers} layers (OCI index); "
        f"repeat {args.repeat}; big layer {args.big_layer_gib:g} GiB",
        flush=True,
    )

    corpus = [
        big_image(*SINGLE, layer_sizes(args.size_mb, args.layers), kind="docker"),
        big_image(
            *INDEX,
            layer_sizes(args.size_mb / 2, args.layers),
            kind="oci-index",
            platforms=(("amd64", None), ("arm64", "v8")),
        ),
    ]
    if args.big_layer_gib:
        corpus.append(big_image(*BIG, [int(args.big_layer_gib * 1024 * MiB)], kind="docker"))

    runs: list[Run] = []
    big: list[Run] = []
    result: dict[str, Any] = {"facts": facts, "args": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory(prefix="mirror-bench-") as tmp:
        workdir = Path(tmp)
        world = World(
            workdir / "world",
            corpus=corpus,
            hub_front_options={"anonymous_limit": 1_000_000},  # headers on, never a 429
            # ECR without BLOB_MOUNTING (its default): no tool gets a blob by mounting it
            # from an earlier run's repository
            ecr_front_options={"blob_mounting": False},
            warm_moto=False,
        )
        print("  starting the world and pushing the corpus ...", end=" ", flush=True)
        with world:
            print(f"{world.timings['up']:.1f}s", flush=True)
            bench = Bench(world, workdir, args)
            if "docker" in tools and bench.docker_client() is None:
                print(f"  Docker engine left out: {bench.docker_error}")
                tools.remove("docker")
            startup = [bench.mirror_startup() for _ in range(3)]
            result["mirror_startup_seconds"] = statistics.median(m.seconds for m in startup)

            jobs: dict[str, Callable[[str, str], Run]] = {
                "mirror": bench.mirror,
                "skopeo": lambda repo, tag: bench.skopeo(repo, tag, all_platforms=repo == INDEX[0]),
                "docker": bench.docker,
            }
            # interleaved (round by round) so that drifts of the machine hit every tool alike
            for round_ in range(1, args.repeat + 1):
                for image in (SINGLE, INDEX):
                    for tool in tools:
                        run = jobs[tool](*image)
                        runs.append(run)
                        status = "ok" if run.ok else f"FAILED: {(run.error or '')[:200]}"
                        print(
                            f"  round {round_} {tool:<6} {image[0]:<13} {run.seconds:6.2f}s "
                            f"cpu {run.cpu:6.2f}s rss {run.rss_mb:7.1f} MB  {status}",
                            flush=True,
                        )
            if args.big_layer_gib:
                for tool in [t for t in tools if t in ("mirror", "skopeo")]:
                    run = jobs[tool](*BIG)
                    big.append(run)
                    print(
                        f"  big    {tool:<6} {BIG[0]:<13} {run.seconds:6.2f}s "
                        f"cpu {run.cpu:6.2f}s rss {run.rss_mb:7.1f} MB  "
                        f"{'ok' if run.ok else 'FAILED: ' + (run.error or '')[:200]}",
                        flush=True,
                    )
            bench.http.close()

    notes = {"docker": "(CPU, RSS: dockerd+containerd; one platform)"}
    single = summarise(runs, f"{SINGLE[0]}:{SINGLE[1]}", tools)
    index = summarise(runs, f"{INDEX[0]}:{INDEX[1]}", tools)
    print(
        f"\nmedian of {args.repeat}; 'x mirror' = tool time / mirror time; CPU s median; "
        "peak RSS max; world CPU s = fronts + registries during the copy"
    )
    print_table(f"single-platform image, {args.size_mb} MiB in {args.layers} layers", single, notes)
    print_table(f"2-platform OCI index, {args.size_mb} MiB in all", index, notes)
    print(f"\nmirror start-up (mirror --version): {result['mirror_startup_seconds']:.2f}s")
    if big:
        print(f"\none layer of {args.big_layer_gib:g} GiB (target: mirror peak RSS < 120 MB):")
        for r in big:
            verdict = ""
            if r.tool == "mirror" and r.ok:
                verdict = "  under 120 MB" if r.rss_mb < 120 else "  OVER 120 MB"
            status = "" if r.ok else f"  FAILED: {(r.error or '')[:300]}"
            print(
                f"  {r.tool:<8} peak RSS {r.rss_mb:7.1f} MB   {r.seconds:6.2f}s   "
                f"CPU {r.cpu:6.2f}s   digest preserved: "
                f"{'yes' if r.digest_preserved else 'no'}{verdict}{status}"
            )
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"load average at the end: {' '.join(map(str, result['loadavg_end']))}")
    if args.json:
        result.update(
            runs=[asdict(r) for r in runs],
            big_layer=[asdict(r) for r in big],
            summary=[asdict(s) for s in single + index],
        )
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nraw numbers: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
