"""How one command is measured: wall time, CPU seconds, peak RSS; and the machine's facts.

Kept apart from the scenarios so that every row of the benchmark (mirror, skopeo, the bound,
the docker loop) is measured by the same code, and a reader can check that code in one place.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
MIRROR = ROOT / ".venv" / "bin" / "mirror"
RUN_TIMEOUT = 1800.0  # seconds; a command that takes longer is killed and reported as failed
SAMPLE_EVERY = 0.02  # seconds between VmRSS samples of dockerd
HWM_EVERY = 0.01  # seconds between VmHWM readings of a tool process
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Measured:
    """One command's outcome and cost."""

    returncode: int
    seconds: float
    cpu: float
    rss_mb: float
    stdout: str
    stderr: str


def run_measured(
    argv: Sequence[str],
    env: dict[str, str],
    timeout: float = RUN_TIMEOUT,
    stdin: bytes | None = None,
) -> Measured:
    """Run a command: wall time, CPU seconds (wait4) and peak RSS (VmHWM, polled).

    Not ``ru_maxrss``: a child forked (or vforked) from this process inherits this process's
    high-water mark into its ``ru_maxrss`` at exec, so small tools would read as big as the
    benchmark (which holds the world's fronts). ``VmHWM`` belongs to the program's own
    address space; Popen returns after the exec, so every reading is the tool's."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            env=env,
            stdout=out,
            stderr=err,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        )
        if stdin is not None:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(stdin)
            proc.stdin.close()
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
    """``key`` (VmRSS, VmHWM) of a process in MB, 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@contextlib.contextmanager
def sampled_rss(
    pids: Callable[[], list[int]], *, key: str = "VmRSS", every: float = SAMPLE_EVERY
) -> Iterator[dict[str, float]]:
    """Sample the sum of `key` (VmRSS, VmHWM) over `pids()` until the block ends; yields
    {"peak_mb": the largest sum seen}. Polling, because the tools are other programs."""
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


def _version(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "not found"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "?"


def machine_facts() -> dict[str, Any]:
    """What a reader needs to judge the numbers: the machine, and every tool's version."""
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

        docker_sdk = str(docker.__version__)
    except ImportError:
        docker_sdk = "not installed"
    docker_cli = shutil.which("docker")
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu_model,
        "memory_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mirror": _version([str(MIRROR), "--version"]),
        "skopeo": _version(["skopeo", "--version"]) if shutil.which("skopeo") else "not found",
        "dockerd": _version(["dockerd", "--version"]) if shutil.which("dockerd") else "not found",
        "docker_cli": _version([docker_cli, "--version"]) if docker_cli else "not found",
        "docker_sdk": docker_sdk,
        "registry": _version(["docker-registry", "--version"])
        if shutil.which("docker-registry")
        else "not found",
        "httpx": httpx.__version__,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
