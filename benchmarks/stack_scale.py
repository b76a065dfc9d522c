"""How long `mirror ensure-repo` takes for 10, 100 and 400 images, on moto_server.

    .venv/bin/python -m benchmarks.stack_scale [--sizes 10 100 400] [--repeat 3] [--json PATH]

For each size, on a moto_server of its own (`tests/world/moto.py`), emptied before every
round: `mirror ensure-repo` creates the stack (**create**), runs again on the same config
(**no-op**: the deployed template matches, no change set), then once more with one image
added (**one added**: one change set, one repository). Each is the wall time of the command
as a user runs it (a new process: Python's start-up, the config, boto3's clients included).
It prints a Markdown table of the medians, and the template's bytes per repository (the
growth from 1 to 101 images). Against AWS, CloudFormation itself takes seconds to minutes
per operation; moto answers at once, so these figures are mirror's own share.

It asserts nothing: it is not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from mirror.config import parse_config
from mirror.template import render_yaml
from tests.world.moto import start_moto

STEPS = ("create", "no-op", "one added")
MIRROR = Path(sys.executable).with_name("mirror")


def images(count: int) -> list[str]:
    return [f"team/image-{i:03d}" for i in range(count)]


def config_text(names: list[str]) -> str:
    return yaml.safe_dump(
        {
            "version": 1,
            "stack": {"name": "bench-stack", "iam_user": "ci-pusher"},
            "images": [{"image": name, "tags": ["latest"]} for name in names],
        }
    )


def bytes_per_repository() -> float:
    """The template's growth per repository, from 1 to 101 images."""
    one, many = (
        len(render_yaml(parse_config(config_text(images(n)), "b.yaml")).encode()) for n in (1, 101)
    )
    return (many - one) / 100


def timed(config: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [str(MIRROR), "ensure-repo", "--config", str(config)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def measure(sizes: Sequence[int], repeat: int, workdir: Path) -> dict[int, dict[str, list[float]]]:
    moto = start_moto(workdir)
    env = {**os.environ, **moto.env}
    results: dict[int, dict[str, list[float]]] = {}
    try:
        for size in sizes:
            runs: dict[str, list[float]] = {step: [] for step in STEPS}
            base, more = workdir / f"{size}.yaml", workdir / f"{size}-more.yaml"
            base.write_text(config_text(images(size)))
            more.write_text(config_text([*images(size), "team/image-new"]))
            for _ in range(repeat):
                moto.reset()
                runs["create"].append(timed(base, env))
                runs["no-op"].append(timed(base, env))
                runs["one added"].append(timed(more, env))
            results[size] = runs
            medians = {step: round(statistics.median(runs[step]), 2) for step in STEPS}
            print(f"{size} images: {medians}", file=sys.stderr, flush=True)
    finally:
        moto.stop()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 400])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write every run's seconds here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="stack-scale-") as workdir:
        results = measure(args.sizes, args.repeat, Path(workdir))
    load = os.getloadavg()[0]
    print(f"median of {args.repeat} runs, seconds (load average at the end: {load:.1f})\n")
    print("| images | " + " | ".join(STEPS) + " |")
    print("|---:|" + "---:|" * len(STEPS))
    for size, runs in results.items():
        cells = " | ".join(f"{statistics.median(runs[step]):.2f}" for step in STEPS)
        print(f"| {size} | {cells} |")
    print(f"\ntemplate bytes per repository: {bytes_per_repository():.0f}")
    if args.json:
        args.json.write_text(json.dumps({str(size): runs for size, runs in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
