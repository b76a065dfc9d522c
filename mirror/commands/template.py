"""`mirror template`: print the CloudFormation template `ensure-repo` deploys.

A config split over several stacks (docs/stack-at-scale.md) prints one YAML document per
stack, in the order of the set, each after a comment naming its stack; `--stack NAME` prints
only that stack's template. The split shown is a new deployment's, the repositories filled in
the order of their names, without asking AWS anything. A deployed set keeps each repository in
the stack that holds it: `--deployed` reads the set's deployed templates (read-only calls) and
shows the split `ensure-repo` would deploy.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from mirror.config import Config, load_config
from mirror.errors import ConfigError


def run_template(
    config_path: Path,
    stack: str | None = None,
    *,
    deployed: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    from mirror.stack.split import split_config  # only this command and the stack need them
    from mirror.template import render_yaml

    config = load_config(config_path)
    held = _held(config) if deployed else {}
    parts = [part for part in split_config(config, held) if part.images]
    names = [part.stack.name for part in parts]
    if stack is not None and stack not in names:
        raise ConfigError(
            f"--stack {stack}: {config_path} deploys stack{'s' if len(names) > 1 else ''}"
            f" {', '.join(names)}, not {stack}"
        )
    documents = [
        (
            f"# Stack {index} of {len(parts)} of the set {config.stack.name}:"
            f" {len(part.images)} of its {len(config.images)} repositories\n"
            if len(parts) > 1
            else ""
        )
        + render_yaml(part)
        for index, part in enumerate(parts, start=1)
        if stack in (None, part.stack.name)
    ]
    out.write("---\n".join(documents))
    return 0


def _held(config: Config) -> dict[str, int]:
    """Repository -> index of the stack of the deployed set that holds it."""
    from mirror.stack.calls import (
        AwsClients,
        aws_errors,
        deployed_templates,
        held_repositories,
        set_members,
    )

    with aws_errors(config.stack.name):
        cf = AwsClients.for_config(config).cloudformation
        return held_repositories(deployed_templates(cf, set_members(cf, config.stack.name)))
