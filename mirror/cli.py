"""The `mirror` command: parse options, call one core function, map errors to exit codes.

Exit codes: 0 done; 1 a failure (an image, the stack); 2 bad input (config, arguments);
3 nothing failed but work was deferred by Docker Hub's pull budget; 130 interrupted.
Progress and logs go to stderr; stdout carries only what a command reports.
"""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from mirror import __version__
from mirror.commands import run_quota, run_sync
from mirror.config import DEFAULT_CONFIG_PATH, load_config
from mirror.errors import MirrorError
from mirror.plan import Shard
from mirror.sync import SyncOptions

app = typer.Typer(
    name="mirror",
    help="Keep Docker Hub images mirrored in Amazon ECR.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="The config file.", show_default=True)
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mirror {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Keep Docker Hub images mirrored in Amazon ECR."""


@app.command()
def check(config: ConfigOption = DEFAULT_CONFIG_PATH) -> None:
    """Validate the config file and list the ECR repositories it names."""
    loaded = load_config(config)
    for image in loaded.images:
        typer.echo(f"{image.name} -> {image.target_repository}")


# Commands of later modules are added below this line.


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
    )
    for noisy in ("httpx", "httpcore", "botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.command("sync")
def sync_command(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; spend nothing but HEADs.")
    ] = False,
    no_ensure_repo: Annotated[
        bool, typer.Option("--no-ensure-repo", help="Skip `mirror ensure-repo` before syncing.")
    ] = False,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Only images (or image:tag) matching this glob; repeatable."),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=64, help="Parallel transfers.")
    ] = 8,
    shard: Annotated[
        str | None, typer.Option("--shard", help="K/N: this job's part of the plan.")
    ] = None,
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast", help="Stop starting copies after a failure.")
    ] = False,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="Report format on stdout.")
    ] = OutputFormat.table,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs.")] = False,
) -> None:
    """Copy the configured Docker Hub images into ECR, within the pull budget."""
    _logging(verbose)
    options = SyncOptions(
        dry_run=dry_run,
        only=tuple(only or ()),
        shard=Shard.parse(shard) if shard else None,
        concurrency=concurrency,
        fail_fast=fail_fast,
    )
    code = run_sync(config, options, output=output.value, ensure_repo=not no_ensure_repo)
    raise typer.Exit(code)


@app.command("quota")
def quota_command(config: ConfigOption = DEFAULT_CONFIG_PATH) -> None:
    """Print Docker Hub's pull limit and what is left, without spending a pull."""
    _logging(False)
    raise typer.Exit(run_quota(config))


def main() -> None:
    """Entry point: run the app, turning MirrorError into one line on stderr and an exit code."""
    try:
        app()  # handles --help, usage errors (exit 2) and typer.Exit itself
    except MirrorError as exc:
        print(f"mirror: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("mirror: interrupted", file=sys.stderr)
        sys.exit(130)
