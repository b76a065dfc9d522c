"""The `mirror` command: parse options, call one core function, map errors to exit codes.

Exit codes: 0 done; 1 a failure (an image, the stack); 2 bad input (config, arguments);
3 nothing failed but work was deferred by Docker Hub's pull budget; 130 interrupted.
Progress and logs go to stderr; stdout carries only what a command reports.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mirror import __version__
from mirror.config import DEFAULT_CONFIG_PATH, load_config
from mirror.errors import MirrorError

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
