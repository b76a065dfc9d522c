"""Benchmark: what users feel, in one run. ``bash scripts/bench`` (see benchmarks/README.md).

    .venv/bin/python -m benchmarks.bench [--scale 1] [--repeat 3] [--big-layer-gib 1]
        [--skip-docker] [--json out.json] [--docs docs]

One test world (tests/world) holds a corpus shaped like a team's mirror list (several
repositories, many tags per digest, shared layers, OCI indexes with attestations, a few
50-150 MB layers). Then, round after round, with the tools' order rotated each round:

* loopback, and again with every Docker Hub answer delayed 40 ms:
  the bound (every blob piped hub -> ECR, 8 streams, no hashing), ``mirror sync`` full and
  no-op (without and with the stack check), ``skopeo sync --all`` full and no-op;
* ``mirror sync --dry-run`` of 1,000 tags with Docker Hub 40 ms away;
* ``mirror sync --engine docker`` beside a plain docker pull/tag/push loop;
* once: mirror's peak RSS while it copies one layer of ``--big-layer-gib`` GiB.

The table (medians, ratios, pulls, bytes, peak RSS) goes to stdout, ``docs/benchmark.md``
and ``docs/benchmark.png``; every run's numbers to ``--json``. It asserts nothing: it is
not a test, and CI does not run it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.world.world import World

from . import report
from .corpus import (
    MANY_REPOSITORY,
    big_layer,
    many_tags,
    shape,
    single_platform,
    sync_corpus,
    tags_by_repository,
)
from .engine_rows import EngineBench
from .measure import ROOT, machine_facts
from .scenarios import FAR, LATENCY_MS, LOOPBACK, Run

MIRROR_TRANSFERS = 8  # mirror's default --transfers: the bound uses as many streams


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bench",
        description="mirror beside the bound, skopeo and the Docker engine, on one test world.",
    )
    p.add_argument("--scale", type=float, default=1.0, help="multiply every layer size (1)")
    p.add_argument("--repeat", type=int, default=3, help="rounds; tables show medians (3)")
    p.add_argument("--big-layer-gib", type=float, default=1, help="memory run, GiB (0 skips)")
    p.add_argument("--plan-tags", type=int, default=1000, help="tags in the planning run")
    p.add_argument("--skip-docker", action="store_true", help="leave the Docker engine out")
    p.add_argument(
        "--ecr-mounting",
        choices=("on", "off"),
        default="on",
        help="the ECR front's blob mounting (on: a shared layer crosses the wire once)",
    )
    p.add_argument("--json", type=Path, default=None, help="write every run's numbers here")
    p.add_argument(
        "--docs", type=Path, default=ROOT / "docs", help="where benchmark.md/.png go (docs/)"
    )
    p.add_argument("--no-docs", action="store_true", help="write nothing under --docs")
    args = p.parse_args(argv)
    if args.scale <= 0 or args.repeat < 1 or args.big_layer_gib < 0 or args.plan_tags < 5:
        p.error("--scale and --repeat must be positive, --plan-tags at least 5")
    return args


def rotated(items: list[Any], n: int) -> list[Any]:
    """The tools' order for round n: each tool goes first in turn, so a slow spell of the
    machine does not always land on the same tool."""
    n %= len(items)
    return items[n:] + items[:n]


def show(run: Run) -> None:
    status = "ok" if run.ok else f"FAILED: {(run.error or '')[:300]}"
    print(
        f"  round {run.round} {run.scenario:<10} {run.row:<30} {run.seconds:7.2f}s "
        f"pulls {run.pulls:4d}  rss {run.rss_mb:6.1f} MB  {status}",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raw_argv = list(sys.argv[1:] if argv is None else argv)
    command = os.environ.get("BENCH_COMMAND") or shlex.join(
        [".venv/bin/python", "-m", "benchmarks.bench", *raw_argv]
    )
    facts = machine_facts()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"mirror benchmark, {date}")
    print(
        f"  machine: {facts['nproc']} CPUs ({facts['cpu']}), {facts['memory_gib']} GiB, "
        f"Python {facts['python']}, load average {' '.join(map(str, facts['loadavg_start']))}"
    )
    print(f"  tools: {facts['mirror']}; {facts['skopeo']}; {facts['dockerd']}", flush=True)

    sync_specs = sync_corpus(args.scale)
    repositories = list(dict.fromkeys(s.repository for s in sync_specs))
    many = many_tags(args.plan_tags)
    specs = [*sync_specs, *many]
    if args.big_layer_gib:
        specs.append(big_layer(args.big_layer_gib))
    mounting = args.ecr_mounting == "on"
    runs: list[Run] = []
    skipped: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mirror-bench-") as tmp:
        workdir = Path(tmp)
        world = World(
            workdir / "world",
            corpus=specs,
            # a quota that never runs out, but stated on every answer as Docker Hub does
            hub_front_options={"anonymous_limit": 1_000_000},
            # ECR answers from its own index whether a repository exists; the front asks moto,
            # a Python process, on every request unless it may remember the answer a moment
            ecr_front_options={"blob_mounting": mounting, "exists_cache_ttl": 0.9},
            warm_moto=False,  # warmed below, before any timing, not beside the first run
        )
        print("  building and pushing the corpus, starting the world ...", end=" ", flush=True)
        with world:
            print(f"{world.timings['up']:.1f}s", flush=True)
            assert world.moto is not None
            world.moto.client("cloudformation").list_stacks()  # moto loads every backend
            corpus_shape = shape(world.corpus, repositories)
            print(f"  corpus: {corpus_shape.describe()}", flush=True)
            tags = tags_by_repository(world.corpus, repositories)
            bench = EngineBench(
                world,
                workdir,
                repositories=repositories,
                tags=tags,
                docker_tags=single_platform(world.corpus, repositories),
                transfers=MIRROR_TRANSFERS,
                ecr_mounting=mounting,
            )
            docker = not args.skip_docker and bench.docker_ready()
            if args.skip_docker:
                skipped.append("the Docker engine rows (--skip-docker)")
            elif not docker:
                skipped.append(f"the Docker engine rows ({bench.docker_error})")
                print(f"  Docker engine left out: {bench.docker_error}", flush=True)
            if not args.big_layer_gib:
                skipped.append("the big-layer memory run (--big-layer-gib 0)")
            many_list = world.corpus.tags(MANY_REPOSITORY)
            # untimed: the first copy after start-up pays for cold connection pools, moto's
            # first calls and the registries' first reads; no tool should pay that alone
            print("  warm-up (not counted) ...", end=" ", flush=True)
            warm = bench.bound(LOOPBACK, 0)
            print(f"{warm.seconds:.1f}s" if warm.ok else f"failed: {warm.error}", flush=True)

            def sync_tools(scenario: str, round_: int) -> list[Callable[[], list[Run]]]:
                return [
                    lambda: [bench.bound(scenario, round_)],
                    lambda: bench.mirror(scenario, round_),
                    lambda: bench.skopeo(scenario, round_),
                ]

            for round_ in range(1, args.repeat + 1):
                for scenario in (LOOPBACK, FAR):
                    world.hub_front.set_faults(latency_ms=LATENCY_MS if scenario == FAR else 0)
                    try:
                        for tool in rotated(sync_tools(scenario, round_), round_ - 1):
                            for run in tool():
                                runs.append(run)
                                show(run)
                    finally:
                        world.hub_front.set_faults()
                world.hub_front.set_faults(latency_ms=LATENCY_MS)
                try:
                    runs.append(bench.plan(round_, many_list))
                    show(runs[-1])
                finally:
                    world.hub_front.set_faults()
                if docker:
                    pair = [
                        lambda r=round_: bench.docker_mirror(r),
                        lambda r=round_: bench.docker_loop(r),
                    ]
                    for job in rotated(pair, round_ - 1):
                        runs.append(job())
                        show(runs[-1])
            if args.big_layer_gib:
                runs.append(bench.big())
                show(runs[-1])
            bench.http.close()
            front_errors = list(world.hub_front.errors) + list(world.ecr_front.errors)

    facts["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    elapsed = time.monotonic() - started
    summaries = report.summarise(runs)
    settings = [
        f"`--scale {args.scale:g} --repeat {args.repeat} --big-layer-gib {args.big_layer_gib:g}"
        f" --plan-tags {args.plan_tags} --ecr-mounting {args.ecr_mounting}`; the bound uses "
        f"{MIRROR_TRANSFERS} streams (mirror's default `--transfers`); "
        f"{elapsed / 60:.1f} minutes in all, world start-up included",
        "Docker Hub front: anonymous pulls, a quota of 1,000,000 stated on every answer (so "
        "it never runs out), blobs by a 307 to its CDN listener; ECR front: blob mounting "
        + args.ecr_mounting,
    ]
    banner = None
    if args.scale != 1.0 or args.repeat < 3:
        banner = (
            f"Small-scale validation run (--scale {args.scale:g}, --repeat {args.repeat}), "
            "not the published figures: regenerate with `bash scripts/bench` on a quiet machine."
        )
    title = f"mirror, wall-time ratios ({corpus_shape.describe()}; {date})"
    chart_note: str | None = None
    chart_name: str | None = None
    if not args.no_docs:
        chart_note = report.chart(summaries, args.docs / "benchmark.png", title)
        chart_name = None if chart_note else "benchmark.png"
        if chart_note:
            skipped.append(f"the chart ({chart_note})")
    page = report.markdown(
        summaries,
        facts=facts,
        command=command,
        date=date,
        corpus=corpus_shape.describe(),
        settings=settings,
        banner=banner,
        chart=chart_name,
        skipped=skipped,
    )
    print()
    print(page)
    if not args.no_docs:
        args.docs.mkdir(parents=True, exist_ok=True)
        (args.docs / "benchmark.md").write_text(page)
        print(f"wrote {args.docs / 'benchmark.md'}" + ("" if chart_note else " and benchmark.png"))
    if front_errors:
        print(f"the world's fronts reported errors: {front_errors[:5]}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "date": date,
                    "command": command,
                    "facts": facts,
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "corpus": asdict(corpus_shape),
                    "runs": [asdict(r) for r in runs],
                    "summary": [asdict(x) for x in summaries.values()],
                    "ratios": [
                        {
                            **asdict(r),
                            "measured": report.ratio(summaries, r.scenario, r.row, r.base),
                        }
                        for r in report.RATIOS
                    ],
                    "front_errors": front_errors,
                },
                indent=2,
            )
            + "\n"
        )
        print(f"raw numbers: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
