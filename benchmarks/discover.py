"""How long `mirror discover` and `mirror rewrite` take over a large codebase.

    .venv/bin/python -m benchmarks.discover [--copies 200] [--repeat 3]

Builds a tree of `--copies` copies of the fixture tree (tests/codebase: every file kind,
tricky cases, two unreadable files each) in a temporary directory, then times, as the user
runs them (a subprocess each, interpreter start-up included): `discover`, `discover -o json`,
`rewrite --dry-run` and `rewrite --check`. Prints the median seconds and the files read per
second. It asserts nothing: it is not a test, and CI does not run it.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CODEBASE = Path(__file__).resolve().parent.parent / "tests" / "codebase"
CONFIG = """\
version: 1
target: {registry: "https://123456789012.dkr.ecr.us-east-1.amazonaws.com"}
images:
  - {image: python, tags: ["3.12-slim", "3.10"]}
  - {image: node, tags: ["20", "20-bookworm"]}
  - {image: redis, tags: ["7.2"]}
  - {image: postgres, tags: ["16"]}
"""


def timed(args: list[str], cwd: Path, repeat: int) -> float:
    """The median seconds of `repeat` runs of `mirror ARGS` in `cwd`."""
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "mirror", *args], cwd=cwd, capture_output=True, check=False
        )
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--copies", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        tree = Path(workdir) / "tree"
        for copy in range(options.copies):
            shutil.copytree(CODEBASE, tree / f"service-{copy:04d}")
        (Path(workdir) / "images.yaml").write_text(CONFIG)
        files = sum(1 for path in tree.rglob("*") if path.is_file())
        size = sum(path.stat().st_size for path in tree.rglob("*") if path.is_file())
        print(f"{options.copies} copies of tests/codebase: {files} files, {size / 1e6:.1f} MB")
        runs = {
            "discover": ["discover", "tree"],
            "discover -o json": ["discover", "tree", "-o", "json"],
            "rewrite --dry-run": ["rewrite", "tree", "-c", "images.yaml", "--dry-run"],
            "rewrite --check": ["rewrite", "--check", "tree"],
        }
        for name, args in runs.items():
            seconds = timed(args, Path(workdir), options.repeat)
            print(f"{name:<20} {seconds:6.2f} s  ({files / seconds:,.0f} files/s)")
        print(
            f"{'mirror --version':<20} {timed(['--version'], Path(workdir), options.repeat):6.2f} s"
        )


if __name__ == "__main__":
    main()
