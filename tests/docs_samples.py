"""Regenerate every command sample of README.md and docs/*.md as real output of the demo world
(`bash scripts/docs-samples [PAGE...]`).

A sample is a fenced block right after one or more markers, each a command run in this order:

    <!-- sample: mirror check -c .demo/images.yaml -->
    ```console
    $ mirror check -c .demo/images.yaml
    (its output, stdout and stderr as a terminal-less run prints them)
    ```

`<!-- sample-setup: COMMAND -->` runs a command whose output is not shown (to edit the
config between two samples, say). `<!-- sample-cwd: DIR -->` runs nothing: DIR (from the
repository's root) becomes the directory of the page's later commands, so that a sample reads
as a user types it in their own project (`mirror discover .`). Each page that holds samples
gets a fresh world in `.demo/` (as `scripts/demo` starts it), so a page's samples depend on no
other page; its commands run with bash (from the repository's root until a `sample-cwd`),
`.venv/bin` first on PATH, the world's environment and a private docker config. Ports,
timings and change-set names change from one run to the next; digests and sizes do not (the
corpus is seeded).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
MARKER = re.compile(r"^<!-- sample(-setup|-cwd)?: (.+?) -->$")
FENCE = re.compile(r"^```")


@dataclass(frozen=True)
class Step:
    command: str
    shown: bool  # a sample (its output shown) or a setup step (not shown)
    directory: bool = False  # a `sample-cwd`: where the later commands run; nothing is run


@dataclass(frozen=True)
class Sample:
    """The steps marked before one fenced block, and the block's line span [start, end)."""

    steps: tuple[Step, ...]
    start: int
    end: int


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def samples(lines: list[str]) -> list[Sample]:
    """Every marked block of a page; a marker that no block follows is an error."""
    found: list[Sample] = []
    steps: list[Step] = []
    i = 0
    while i < len(lines):
        marker = MARKER.match(lines[i])
        if marker:
            kind = marker.group(1)
            steps.append(Step(marker.group(2), shown=kind is None, directory=kind == "-cwd"))
        elif steps and FENCE.match(lines[i]) and any(s.shown for s in steps):
            end = next(j for j in range(i + 1, len(lines)) if FENCE.match(lines[j])) + 1
            found.append(Sample(tuple(steps), i, end))
            steps, i = [], end
            continue
        elif steps and any(s.shown for s in steps) and lines[i].strip():
            raise ValueError(f"line {i + 1}: a sample marker must be followed by a fenced block")
        i += 1
    return found


def shown_commands(block: list[str]) -> list[str]:
    """The `$ ...` lines of a sample block, as written."""
    return [line[2:] for line in block if line.startswith("$ ")]


class DemoWorld:
    """`python -m tests.world up --dir .demo` in the background, as scripts/demo runs it."""

    def __init__(self) -> None:
        shutil.rmtree(DEMO, ignore_errors=True)
        DEMO.mkdir()
        self.log = (DEMO / "world.log").open("w")
        self.process = subprocess.Popen(
            [str(ROOT / ".venv/bin/python"), "-m", "tests.world", "up", "--dir", str(DEMO)],
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while not (DEMO / "env").exists() or not (DEMO / "env").read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((DEMO / "world.log").read_text())
            time.sleep(0.5)
        (DEMO / "docker-config").mkdir()
        self.directory = ROOT

    def run(self, command: str) -> str:
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DOCKERHUB_", "AWS_"))},
            "PATH": f"{ROOT / '.venv/bin'}:{os.environ['PATH']}",
            "DOCKER_CONFIG": str(DEMO / "docker-config"),
            "COLUMNS": "100",
            "NO_COLOR": "1",
        }
        done = subprocess.run(
            ["bash", "-c", f". {DEMO / 'env'} && {command}"],
            cwd=self.directory,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=300,
        )
        return done.stdout

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        self.log.close()


def regenerate(page: Path) -> str:
    """The page with every sample block rewritten from a fresh world."""
    lines = page.read_text().splitlines()
    marked = samples(lines)
    if not marked:
        return page.read_text()
    world = DemoWorld()
    try:
        out: list[str] = []
        done = 0
        for sample in marked:
            out += lines[done : sample.start]
            out.append(lines[sample.start])  # the opening fence, language kept
            for number, step in enumerate(sample.steps):
                if step.directory:
                    world.directory = ROOT / step.command
                    continue
                output = world.run(step.command)
                if not step.shown:
                    continue
                if number and out[-1] != lines[sample.start]:
                    out.append("")
                out.append(f"$ {step.command}")
                out += [line.rstrip() for line in output.rstrip("\n").splitlines()]
            out.append("```")
            done = sample.end
        out += lines[done:]
        return "\n".join(out) + "\n"
    finally:
        world.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", type=Path, help="pages to regenerate (default: all)")
    for page in [p.resolve() for p in parser.parse_args().pages] or pages():
        text = regenerate(page)
        page.write_text(text)
        print(f"docs-samples: {page.relative_to(ROOT)}: {len(samples(text.splitlines()))} samples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
