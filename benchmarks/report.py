"""From runs to what a reader sees: medians, ratios, the Markdown page, the chart, the JSON.

Ratios are the result to read: the world's servers share the machine with the tools, so
absolute seconds say more about the machine than about the tools. Nothing here judges a
number: issue 12's targets are printed beside the measured ratios, never asserted.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .scenarios import (
    BIG,
    BOUND,
    DOCKER_LOOP,
    DOCKER_MIRROR,
    FAR,
    LOOPBACK,
    MIRROR_FULL,
    MIRROR_NOOP,
    MIRROR_NOOP_STACK,
    PLAN,
    SKOPEO_FULL,
    SKOPEO_NOOP,
    Run,
)

SCENARIOS = (LOOPBACK, FAR)
SYNC_ROWS = (BOUND, MIRROR_FULL, SKOPEO_FULL, MIRROR_NOOP, MIRROR_NOOP_STACK, SKOPEO_NOOP)


@dataclass
class Summary:
    """The median run of one row in one scenario (peak RSS: the largest of the runs)."""

    scenario: str
    row: str
    runs: int
    failed: int
    seconds: float | None
    cpu: float | None
    rss_mb: float | None
    pulls: float | None
    cdn_bytes: float | None
    bytes: float | None
    errors: list[str] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)


def _median(values: Sequence[float | int | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarise(runs: Sequence[Run]) -> dict[tuple[str, str], Summary]:
    """{(scenario, row): Summary} over the runs that succeeded."""
    out: dict[tuple[str, str], Summary] = {}
    for key in dict.fromkeys((r.scenario, r.row) for r in runs):
        mine = [r for r in runs if (r.scenario, r.row) == key]
        good = [r for r in mine if r.ok]
        extra_keys = {k for r in good for k, v in r.extra.items() if isinstance(v, int | float)}
        out[key] = Summary(
            key[0],
            key[1],
            len(mine),
            len(mine) - len(good),
            _median([r.seconds for r in good]),
            _median([r.cpu for r in good]),
            max((r.rss_mb for r in good), default=None),
            _median([r.pulls for r in good]),
            _median([r.cdn_bytes for r in good]),
            _median([r.bytes for r in good]),
            [r.error for r in mine if r.error],
            {
                k: v
                for k in sorted(extra_keys)
                if (v := _median([r.extra.get(k) for r in good])) is not None
            },
        )
    return out


def ratio(
    s: dict[tuple[str, str], Summary], scenario: str, row: str, base_row: str
) -> float | None:
    a, b = s.get((scenario, row)), s.get((scenario, base_row))
    if a is None or b is None or a.seconds is None or not b.seconds:
        return None
    return a.seconds / b.seconds


@dataclass(frozen=True)
class Ratio:
    """One ratio the issue asks about, and its target there (None: no target)."""

    label: str
    scenario: str
    row: str
    base: str
    target: float | None


RATIOS = (
    Ratio("full sync: mirror / bound", LOOPBACK, MIRROR_FULL, BOUND, 1.5),
    Ratio("full sync: mirror / bound", FAR, MIRROR_FULL, BOUND, None),
    Ratio("full sync: mirror / skopeo", LOOPBACK, MIRROR_FULL, SKOPEO_FULL, None),
    Ratio("full sync: mirror / skopeo", FAR, MIRROR_FULL, SKOPEO_FULL, 0.25),
    Ratio("no-op: mirror / skopeo", LOOPBACK, MIRROR_NOOP, SKOPEO_NOOP, None),
    Ratio("no-op: mirror / skopeo", FAR, MIRROR_NOOP, SKOPEO_NOOP, None),
    Ratio("no-op + stack check: mirror / skopeo", LOOPBACK, MIRROR_NOOP_STACK, SKOPEO_NOOP, 0.25),
    Ratio("no-op + stack check: mirror / skopeo", FAR, MIRROR_NOOP_STACK, SKOPEO_NOOP, 0.08),
    Ratio("--engine docker: mirror / docker loop", LOOPBACK, DOCKER_MIRROR, DOCKER_LOOP, 1.1),
)


def _f(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else format(value, spec) + suffix


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e6:.1f}"


def sync_table(s: dict[tuple[str, str], Summary], scenario: str) -> list[str]:
    """The Markdown table of one scenario: the bound, the full syncs, the no-ops."""
    lines = [
        "| run | median s | x bound | x skopeo | pulls | MB moved | MB from CDN "
        "| peak RSS MB | CPU s | runs ok |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    skopeo_of = {
        MIRROR_FULL: SKOPEO_FULL,
        MIRROR_NOOP: SKOPEO_NOOP,
        MIRROR_NOOP_STACK: SKOPEO_NOOP,
    }
    for row in SYNC_ROWS:
        x = s.get((scenario, row))
        if x is None:
            continue
        x_bound = ratio(s, scenario, row, BOUND) if row in (MIRROR_FULL, SKOPEO_FULL) else None
        x_skopeo = ratio(s, scenario, row, skopeo_of[row]) if row in skopeo_of else None
        lines.append(
            f"| {row} | {_f(x.seconds, '.2f')} | {_f(x_bound, '.2f')} | {_f(x_skopeo, '.2f')} "
            f"| {_f(x.pulls, '.0f')} | {_mb(x.bytes)} | {_mb(x.cdn_bytes)} "
            f"| {_f(x.rss_mb, '.1f')} | {_f(x.cpu, '.2f')} | {x.runs - x.failed}/{x.runs} |"
        )
    return lines


def errors_section(s: dict[tuple[str, str], Summary]) -> list[str]:
    lines: list[str] = []
    for x in s.values():
        for e in dict.fromkeys(x.errors):
            lines.append(f"- {x.scenario}, {x.row}: `{e[:400]}`")
    return ["", "### Failed runs (left out of the medians)", "", *lines] if lines else []


def markdown(
    s: dict[tuple[str, str], Summary],
    *,
    facts: dict[str, Any],
    command: str,
    date: str,
    corpus: str,
    settings: list[str],
    banner: str | None,
    chart: str | None,
    skipped: list[str],
) -> str:
    """docs/benchmark.md: the tables, the date, the machine, the command that made them."""
    out = ["# Benchmark: mirror beside the bound, skopeo and the Docker engine", ""]
    if banner:
        out += [f"> **{banner}**", ""]
    out += [
        f"Run on {date} with:",
        "",
        "```sh",
        command,
        "```",
        "",
        f"- machine: {facts['nproc']} CPUs ({facts['cpu']}), {facts['memory_gib']} GiB, "
        f"Linux {facts['kernel']}, Python {facts['python']}; load average "
        f"{' '.join(map(str, facts['loadavg_start']))} at the start, "
        f"{' '.join(map(str, facts.get('loadavg_end', [])))} at the end",
        f"- tools: {facts['mirror']}; {facts['skopeo']}; {facts['dockerd']}; "
        f"docker CLI {facts['docker_cli']}; {facts['registry']}; httpx {facts['httpx']}",
        f"- corpus: {corpus}",
        *[f"- {line}" for line in settings],
        "",
        "Everything runs on loopback: the Docker Hub and ECR stand-ins are Python proxies in "
        "the benchmark's process, in front of two distribution registries. Only the ratios "
        "are meant to be compared, and only between runs on the same kind of machine. "
        "What every column means: `benchmarks/README.md`.",
        "",
    ]
    for scenario, title in (
        (LOOPBACK, "Full sync and no-op, loopback"),
        (FAR, "Full sync and no-op, every Docker Hub answer delayed 40 ms"),
    ):
        if any(k[0] == scenario and k[1] in SYNC_ROWS for k in s):
            out += [f"## {title}", "", *sync_table(s, scenario), ""]
    out += ["## Issue 12's ratios", "", "| ratio | scenario | measured | issue 12 target |"]
    out += ["|---|---|--:|--:|"]
    for r in RATIOS:
        value = ratio(s, r.scenario, r.row, r.base)
        if value is None and (r.scenario, r.row) not in s:
            continue
        target = "-" if r.target is None else f"<= {r.target:g}"
        out.append(f"| {r.label} | {r.scenario} | {_f(value, '.2f')} | {target} |")
    plan = s.get((FAR, PLAN))
    if plan is not None:
        tags = int(plan.extra.get("tags", 0))
        out += [
            "",
            f"## Planning {tags:,} tags, Docker Hub 40 ms away",
            "",
            f"`mirror sync --dry-run` of one repository listing {tags:,} tags (5 tiny manifests),"
            " its ECR repository empty: a HEAD per tag at Docker Hub, the ECR repository's"
            " tag list (a tag it lacks needs no HEAD), nothing else.",
            "",
            "| median s | HEADs at Docker Hub | pulls | peak RSS MB | issue 12 target |",
            "|--:|--:|--:|--:|--:|",
            f"| {_f(plan.seconds, '.2f')} | {_f(plan.extra.get('hub_manifest_heads'), '.0f')} "
            f"| {_f(plan.pulls, '.0f')} | {_f(plan.rss_mb, '.1f')} | < 5 s |",
        ]
    big = s.get((LOOPBACK, BIG))
    if big is not None:
        out += [
            "",
            "## Memory: one big layer",
            "",
            "| layer | seconds | peak RSS MB | CPU s | issue 12 target |",
            "|---|--:|--:|--:|--:|",
            f"| {_mb(big.bytes)} MB | {_f(big.seconds, '.2f')} | {_f(big.rss_mb, '.1f')} "
            f"| {_f(big.cpu, '.2f')} | <= 120 MB |",
        ]
    dm, dl = s.get((LOOPBACK, DOCKER_MIRROR)), s.get((LOOPBACK, DOCKER_LOOP))
    if dm is not None or dl is not None:
        out += [
            "",
            "## The Docker engine: single-platform images, loopback",
            "",
            "| run | median s | x loop | pulls | MB from CDN | client peak RSS MB | client CPU s "
            "| dockerd CPU s | dockerd peak RSS MB | runs ok |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for x in (dm, dl):
            if x is None:
                continue
            xl = ratio(s, LOOPBACK, x.row, DOCKER_LOOP) if dl is not None else None
            out.append(
                f"| {x.row} | {_f(x.seconds, '.2f')} | {_f(xl, '.2f')} | {_f(x.pulls, '.0f')} "
                f"| {_mb(x.cdn_bytes)} | {_f(x.rss_mb, '.1f')} | {_f(x.cpu, '.2f')} "
                f"| {_f(x.extra.get('dockerd_cpu'), '.2f')} "
                f"| {_f(x.extra.get('dockerd_peak_rss_mb'), '.1f')} "
                f"| {x.runs - x.failed}/{x.runs} |"
            )
    if skipped:
        out += ["", "Left out of this run: " + "; ".join(skipped) + "."]
    out += errors_section(s)
    if chart:
        out += ["", "## Chart", "", f"![wall-time ratios per scenario]({chart})"]
    return "\n".join(out) + "\n"


def chart(s: dict[tuple[str, str], Summary], path: Path, title: str) -> str | None:
    """docs/benchmark.png: the wall-time ratios, loopback beside 40 ms, with the issue's
    targets as black ticks. Returns why it was not drawn, or None."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]', or bash scripts/bench)"
    present = [r for r in RATIOS if ratio(s, r.scenario, r.row, r.base) is not None]
    if not present:
        return "no ratio was measured"
    labels = list(dict.fromkeys(r.label for r in present))
    fig, ax = plt.subplots(figsize=(10, 5.2), dpi=110)
    width = 0.38
    colours = {LOOPBACK: "#4c78a8", FAR: "#f58518"}
    legend: set[str] = set()

    def once(name: str) -> str | None:
        if name in legend:
            return None
        legend.add(name)
        return name

    for i, scenario in enumerate(SCENARIOS):
        for j, label in enumerate(labels):
            r = next((r for r in present if r.label == label and r.scenario == scenario), None)
            if r is None:
                continue
            value = ratio(s, scenario, r.row, r.base)
            assert value is not None
            alone = sum(1 for p in present if p.label == label) == 1
            x = j if alone else j + (i - 0.5) * width
            ax.bar(x, value, width, color=colours[scenario], label=once(scenario))
            ax.annotate(f"{value:.2f}", (x, value), ha="center", va="bottom", fontsize=8)
            if r.target is not None:
                ax.plot(
                    [x - width / 2, x + width / 2],
                    [r.target] * 2,
                    color="black",
                    lw=2,
                    label=once("issue 12 target"),
                )
    ax.legend(loc="upper right")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels([label.replace(": ", ":\n") for label in labels], fontsize=8)
    ax.set_ylabel("wall-time ratio (lower is better for mirror)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return None
