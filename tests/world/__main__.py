"""``python -m tests.world up --dir DIR``: run the test world in the foreground for a demo.

Writes DIR/images.yaml (mirror config pointed at the world), DIR/env (shell ``export``
lines), DIR/corpus.json, DIR/world.pid; logs and registry data go to DIR/world/. Stops
everything on SIGTERM or SIGINT (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from .dockerd import DockerdUnavailable
from .world import World


def _env_lines(world: World) -> list[str]:
    env = world.env()
    env.update(
        {
            "MIRROR_WORLD_HUB_URL": world.hub_url,
            "MIRROR_WORLD_HUB_UPSTREAM": world.hub_upstream_url,
            "MIRROR_WORLD_ECR_URL": world.ecr_url,
            "MIRROR_WORLD_ECR_UPSTREAM": world.ecr_upstream_url,
            "MIRROR_WORLD_ECR_PASSWORD": world.ecr_password,
        }
    )
    return [f"export {k}={shlex.quote(v)}" for k, v in env.items()]


def up(args: argparse.Namespace) -> int:
    out = Path(args.dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    world = World(out / "world", scale=args.scale, fronts=not args.no_fronts)
    pid_file = out / "world.pid"
    try:
        world.up()
        if args.dockerd:
            try:
                world.docker_engine()
            except DockerdUnavailable as e:
                print(f"dockerd not started: {e}", file=sys.stderr)
        world.write_config(out / "images.yaml")
        (out / "env").write_text("\n".join(_env_lines(world)) + "\n")
        (out / "corpus.json").write_text(json.dumps(world.corpus.to_json(), indent=2) + "\n")
        pid_file.write_text(f"{os.getpid()}\n")
        t = world.timings
        print(f"test world up in {t['up']:.1f}s (corpus push {t['corpus_push']:.1f}s)")
        print(f"  hub (Docker Hub front) {world.hub_url}  upstream {world.hub_upstream_url}")
        print(f"  ecr (ECR front)        {world.ecr_url}  upstream {world.ecr_upstream_url}")
        print(f"  moto                   {world.moto_url}")
        if world.docker_started:
            print(f"  dockerd                {world.docker_host}")
        print(f"  corpus: {len(world.corpus)} tags in {len(world.corpus.repositories())} repos")
        print(f"  wrote {out}/images.yaml, {out}/env, {out}/corpus.json; pid {os.getpid()}")
        print("  stop with Ctrl-C or: kill $(cat world.pid)", flush=True)
        while not stop.wait(1.0):
            pass
        print("stopping test world", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        world.down()
        pid_file.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.world", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("up", help="start the world and stay in the foreground")
    p.add_argument("--dir", required=True, help="output directory")
    p.add_argument("--dockerd", action="store_true", help="also start a private dockerd")
    p.add_argument("--scale", type=float, default=1.0, help="multiply corpus layer sizes")
    p.add_argument("--no-fronts", action="store_true", help="expose the bare registries")
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
