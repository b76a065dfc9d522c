"""The `mirror` command: parse options, call one core function, map errors to exit codes.

A command's module is imported when that command runs, so that `mirror uri` in a build
step does not pay for the sync's imports.

Exit codes: 0 done; 1 a failure (an image, the stack), or an internal error (a bug); 2 bad
input (config, arguments); 3 nothing failed but work was deferred by Docker Hub's pull budget;
130 interrupted. Progress and logs go to stderr; stdout carries only what a command reports.

Every error of every command ends in `_Commands.invoke`, the one place that prints one: one
line, through `error_text` (redacted, printable). A `MirrorError` is `mirror: error: ...`;
any other exception is a bug, `mirror: internal error: <Type>: <message> (please report)`,
with its (redacted) traceback only under `--verbose`; ^C is `mirror: interrupted`, exit 130.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from mirror import __version__
from mirror.config import DEFAULT_CONFIG_PATH
from mirror.console import log_handler
from mirror.errors import ConfigError, MirrorError, unreachable
from mirror.text import ERROR_LIMIT, known_secrets, printable, redact

INTERRUPTED = 130
_verbose = False  # set by each command from its --verbose, read when an error is printed


def error_text(exc: BaseException) -> str:
    """What an error says, in a JSON report's `error` and on stderr (after `mirror: error: `
    for a MirrorError, `mirror: ` otherwise): one printable line, with anything that looks
    like a credential redacted."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    message = printable(redact(str(exc), known_secrets(os.environ)), ERROR_LIMIT)
    if isinstance(exc, MirrorError):
        return message
    kind = type(exc).__name__
    module = type(exc).__module__.partition(".")[0]
    kind = kind if module == "builtins" else f"{module}.{kind}"
    said = f"{kind}: {message}" if message else kind
    return f"internal error: {said} (please report)"


def exit_code_of(exc: BaseException) -> int:
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    return exc.exit_code if isinstance(exc, MirrorError) else 1


def _print_error(exc: BaseException) -> None:
    """The one place an error is printed. An internal error's traceback, under --verbose
    only, goes through the same redaction, line by line made printable."""
    if _verbose and not isinstance(exc, MirrorError | KeyboardInterrupt):
        text = redact("".join(traceback.format_exception(exc)), known_secrets(os.environ))
        for line in text.splitlines():
            print(printable(line, None), file=sys.stderr)
    label = "error: " if isinstance(exc, MirrorError) else ""
    print(f"mirror: {label}{error_text(exc)}", file=sys.stderr, flush=True)


class _Commands(TyperGroup):
    """Every command runs through `invoke`: its errors become one line and an exit code."""

    def invoke(self, ctx: Any) -> Any:  # typer's (vendored) click.Context
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # typer's own: --help, usage errors (exit 2), typer.Exit(code)
        except (Exception, KeyboardInterrupt) as exc:
            error = unreachable(exc) or exc
            _print_error(error)
            raise typer.Exit(exit_code_of(error)) from None


HELP = (
    "Keep Docker Hub images mirrored in Amazon ECR, so that builds pull from ECR and never"
    " meet Docker Hub's pull rate limit.\n\n"
    "Check the config (mirror check), create its ECR repositories (mirror ensure-repo), then"
    " run mirror sync on a schedule: a sync where nothing changed spends no Docker Hub pull."
    " Builds log in with mirror login and name their base images with mirror uri.\n\n"
    "The guide: docs/README.md. Each command's --help shows an example."
)

app = typer.Typer(
    name="mirror",
    help=HELP,
    cls=_Commands,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="The config file.", show_default=True)
]
# ensure-repo's and deploy-schedule's: the change set is computed, shown, and deleted
StackDryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Show the changes; execute nothing.")
]
# delete-repo's and delete-schedule's: without it they ask on the terminal, or refuse
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (for CI).")]
VerboseOption = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="Debug logs, and the traceback of an internal error."),
]


def _ask(question: str) -> bool:
    """A delete command's question, on stderr; no answer is no."""
    return typer.confirm(question, default=False, err=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mirror {__version__}")
        raise typer.Exit()


@app.callback(help=HELP)
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Options of `mirror` itself; --version is handled by its callback."""


@app.command(epilog="Example: mirror check -c config/images.yaml")
def check(config: ConfigOption = DEFAULT_CONFIG_PATH, verbose: VerboseOption = False) -> None:
    """Validate the config file and list the ECR repositories it names."""
    _logging(verbose)
    from mirror.commands.check import run_check

    raise typer.Exit(run_check(config))


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


class MetricsChoice(StrEnum):
    none = "none"
    cloudwatch = "cloudwatch"


class EngineChoice(StrEnum):
    registry = "registry"
    docker = "docker"


def _logging(verbose: bool) -> None:
    global _verbose
    _verbose = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        handlers=[log_handler()],
        format="%(message)s",
    )
    for noisy in ("httpx", "httpcore", "botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.command("sync", epilog="Example: mirror sync --dry-run --only 'python:3.12-*'")
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
    transfers: Annotated[
        int,
        typer.Option("--transfers", "--concurrency", min=1, max=64, help="Blobs moving at once."),
    ] = 8,
    images: Annotated[
        int | None,
        typer.Option(
            "--images",
            min=1,
            max=64,
            help="Images copied at once (default: 4, at most --transfers).",
        ),
    ] = None,
    shard: Annotated[
        str | None, typer.Option("--shard", help="K/N: this job's part of the plan.")
    ] = None,
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast", help="Stop starting copies after a failure.")
    ] = False,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="Report format on stdout.")
    ] = OutputFormat.table,
    verbose: VerboseOption = False,
    engine: Annotated[
        EngineChoice,
        typer.Option(
            "--engine",
            help="registry: registry to registry (digests and all platforms kept);"
            " docker: pull, tag, push through the Docker engine (ONE platform per tag,"
            " digests change).",
        ),
    ] = EngineChoice.registry,
    platform: Annotated[
        str | None,
        typer.Option(
            "--platform",
            help="With --engine docker: the platform copied for entries at `all`"
            " (default: the engine's own), e.g. linux/arm64.",
        ),
    ] = None,
    keep_local: Annotated[
        bool,
        typer.Option("--keep-local", help="With --engine docker: keep the pulled images."),
    ] = False,
    metrics: Annotated[
        MetricsChoice,
        typer.Option(
            "--metrics",
            help="cloudwatch: publish the run's numbers (namespace `mirror`, dimension"
            " Stack); a failed publish is a warning. A dry run publishes none.",
        ),
    ] = MetricsChoice.none,
) -> None:
    """Copy the configured Docker Hub images into ECR, within the pull budget."""
    from mirror.plan import Shard, SyncOptions
    from mirror.report import write_error_json

    _logging(verbose)
    try:
        options = SyncOptions(
            dry_run=dry_run,
            only=tuple(only or ()),
            shard=Shard.parse(shard) if shard else None,
            transfers=transfers,
            images=images or min(transfers, 4),
            fail_fast=fail_fast,
        )
        docker = None
        if engine is EngineChoice.docker:
            from mirror.engine_docker import DockerOptions

            docker = DockerOptions.parse(platform, keep_local)
        elif platform is not None or keep_local:
            raise ConfigError("--platform and --keep-local apply to --engine docker only")
        from mirror.commands.sync import run_sync

        code = run_sync(
            config,
            options,
            output=output.value,
            ensure_repo=not no_ensure_repo,
            docker=docker,
            metrics=metrics.value,
        )
    except (Exception, KeyboardInterrupt) as exc:  # the run stopped before its report
        if output is OutputFormat.json:
            error = unreachable(exc) or exc
            write_error_json(
                error_text(error), exit_code_of(error), dry_run=dry_run, out=sys.stdout
            )
        raise
    raise typer.Exit(code)


@app.command("quota", epilog="Example: mirror quota -c config/images.yaml")
def quota_command(
    config: ConfigOption = DEFAULT_CONFIG_PATH, verbose: VerboseOption = False
) -> None:
    """Print Docker Hub's pull limit and what is left, without spending a pull."""
    _logging(verbose)
    from mirror.commands.quota import run_quota

    raise typer.Exit(run_quota(config))


@app.command("template", epilog="Example: mirror template > cfn/ecr.yml")
def template_command(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    stack: Annotated[
        str | None,
        typer.Option("--stack", help="Of a config split over stacks, print this stack's only."),
    ] = None,
    deployed: Annotated[
        bool,
        typer.Option(
            "--deployed", help="Split as the deployed stacks hold the repositories (asks AWS)."
        ),
    ] = False,
    verbose: VerboseOption = False,
) -> None:
    """Print the CloudFormation template `ensure-repo` deploys (deployable by hand too)."""
    _logging(verbose)
    from mirror.commands.template import run_template

    raise typer.Exit(run_template(config, stack, deployed=deployed))


@app.command("ensure-repo", epilog="Example: mirror ensure-repo --dry-run")
def ensure_repo_command(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    dry_run: StackDryRunOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Create or update the stack of ECR repositories, showing its changes first."""
    _logging(verbose)
    from mirror.commands.stack import run_ensure_repo

    raise typer.Exit(run_ensure_repo(config, dry_run=dry_run))


@app.command("delete-repo", epilog="Example: mirror delete-repo --yes")
def delete_repo_command(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    yes: YesOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Delete the stack; its repositories stay in ECR with their images."""
    _logging(verbose)
    from mirror.commands.stack import run_delete_repo

    raise typer.Exit(run_delete_repo(config, yes=yes, interactive=sys.stdin.isatty(), ask=_ask))


@app.command("schedule-template", epilog="Example: mirror schedule-template > cfn/schedule.yml")
def schedule_template_command(
    config: ConfigOption = DEFAULT_CONFIG_PATH, verbose: VerboseOption = False
) -> None:
    """Print the CloudFormation template of the scheduled sync job (`deploy-schedule`)."""
    _logging(verbose)
    from mirror.commands.schedule import run_schedule_template

    raise typer.Exit(run_schedule_template(config))


@app.command("deploy-schedule", epilog="Example: mirror deploy-schedule --dry-run")
def deploy_schedule_command(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    dry_run: StackDryRunOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Create or update the scheduled sync job (CodeBuild, schedule, role, alarms)."""
    _logging(verbose)
    from mirror.commands.schedule import run_deploy_schedule

    raise typer.Exit(run_deploy_schedule(config, dry_run=dry_run))


@app.command("delete-schedule", epilog="Example: mirror delete-schedule --yes")
def delete_schedule_command(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    yes: YesOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Delete the scheduled sync job's stack, its logs and alarms; repositories stay."""
    _logging(verbose)
    from mirror.commands.schedule import run_delete_schedule

    raise typer.Exit(run_delete_schedule(config, yes=yes, interactive=sys.stdin.isatty(), ask=_ask))


@app.command("status", epilog="Example: mirror status --builds 10 -o json")
def status_command(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="Report format on stdout.")
    ] = OutputFormat.table,
    builds: Annotated[
        int, typer.Option("--builds", min=1, max=100, help="How many of the latest builds.")
    ] = 5,
    verbose: VerboseOption = False,
) -> None:
    """The scheduled job: stack, last builds, last run's metrics, alarms; exit 1 if amiss."""
    _logging(verbose)
    from mirror.commands.status import run_status

    raise typer.Exit(run_status(config, output=output.value, builds=builds))


@app.command("login", epilog="Example: mirror login --config-only")
def login_command(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    config_only: Annotated[
        bool,
        typer.Option(
            "--config-only",
            help="Only write the docker config (no Docker engine needed, e.g. for kaniko).",
        ),
    ] = False,
    verbose: VerboseOption = False,
) -> None:
    """Log the Docker engine and the docker config into ECR with a fresh token."""
    _logging(verbose)
    from mirror.commands.login import run_login

    raise typer.Exit(run_login(config, config_only=config_only))


@app.command("uri", epilog="Example: mirror uri python:3.12-slim --digest")
def uri_command(
    image: Annotated[
        str, typer.Argument(metavar="IMAGE[:TAG]", help="A Docker Hub reference: IMAGE[:TAG].")
    ],
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    digest: Annotated[
        bool, typer.Option("--digest", help="Pin by digest (a HEAD on ECR resolves it).")
    ] = False,
    verbose: VerboseOption = False,
) -> None:
    """Print the ECR reference that mirrors a Docker Hub reference."""
    _logging(verbose)
    from mirror.commands.uri import run_uri

    raise typer.Exit(run_uri(config, image, digest=digest))


PathsArgument = Annotated[
    list[Path],
    typer.Argument(metavar="PATH", help="Files and directories to read (directories walked)."),
]


@app.command("discover", epilog="Example: mirror discover . --write config/images.yaml")
def discover_command(
    paths: PathsArgument,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="Report format on stdout.")
    ] = OutputFormat.table,
    write: Annotated[
        Path | None,
        typer.Option(
            "--write", metavar="CONFIG", help="Merge the images found into this config file."
        ),
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """List every Docker Hub image the files pull (Dockerfiles, compose, CI, k8s, scripts, IaC)."""
    _logging(verbose)
    from mirror.commands.discover import run_discover

    raise typer.Exit(run_discover(paths, output=output.value, write=write))


@app.command("rewrite", epilog="Example: mirror rewrite . --check")
def rewrite_command(
    paths: PathsArgument,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the changes as a unified diff; write nothing.")
    ] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Change nothing; exit 1 while any Docker Hub reference remains."
        ),
    ] = False,
    build_arg: Annotated[
        bool,
        typer.Option(
            "--build-arg",
            help="Dockerfiles: FROM ${MIRROR_REGISTRY}/... with ARG MIRROR_REGISTRY=docker.io.",
        ),
    ] = False,
    verbose: VerboseOption = False,
) -> None:
    """Point the files' Docker Hub references at the ECR mirror, keeping tags and digests."""
    _logging(verbose)
    if check and (dry_run or build_arg):
        raise ConfigError("--check changes nothing; give it without --dry-run and --build-arg")
    from mirror.commands.rewrite import run_check, run_rewrite

    if check:
        raise typer.Exit(run_check(paths))
    raise typer.Exit(run_rewrite(config, paths, dry_run=dry_run, build_arg=build_arg))


def main() -> None:
    """Entry point. Errors inside a command are printed by `_Commands.invoke`; this catches
    what escapes typer itself (^C while it parses, a fault in option handling)."""
    try:
        app()  # handles --help, usage errors (exit 2) and typer.Exit itself
    except (Exception, KeyboardInterrupt) as exc:
        _print_error(exc)
        sys.exit(exit_code_of(exc))
