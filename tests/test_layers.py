"""Imports point one way: a module may import its own layer and those below, never above.

    cli, __main__                         the command line
    commands.*                            a function per command
    sync, survey, report, over_time,      a run: plan, copy, report, backups and pruning,
      metrics, codebase, status           metrics; a codebase walked; the job's status read
    engine, copy, blobs, engine_docker,   the copy engines, the stacks
      docker_sdk, docker_copier, stack*
    budget, plan, template*, schedule_*,  pure decisions over what the registries said,
      uri, rewrite, ledger,               the templates, and what the job's status means
      status_report
    registry.*, registries, ecr, aws,     talking to registries, AWS and credential stores
      credentials, credential_helpers,
      docker_config
    config*                               the config file (pure)
    errors, text, console, reference,     pure building blocks (and the package's version)
      manifests, singleflight, pins, scan*

Every module of `mirror/` must be placed here (a new module needs a line below), and every
`import mirror...` in it, lazy ones inside functions too, is checked.
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mirror"

# lowest first; a pattern names modules relative to `mirror`
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # "": the package's face, mirror/__init__.py (its version, nothing imported)
    (
        "building blocks",
        (
            "",
            "errors",
            "text",
            "console",
            "reference",
            "versions",
            "manifests",
            "singleflight",
            "pins",
            "scan",
            "scan_*",
        ),
    ),
    ("config", ("config", "config_*", "yamlfile")),
    (
        "registries and AWS",
        (
            "registry",
            "registry.*",
            "registries",
            "ecr",
            "aws",
            "credentials",
            "credential_helpers",
            "docker_config",
        ),
    ),
    (
        "decisions",
        (
            "budget",
            "plan",
            "cfn_yaml",
            "template",
            "schedule_policy",
            "schedule_template",
            "status_report",
            "template_access",
            "rewrite",
            "uri",
            "ledger",
        ),
    ),
    ("engines", ("engine", "copy", "blobs", "engine_docker*", "docker_*", "stack", "stack.*")),
    (
        "a run",
        ("sync", "survey", "report", "over_time", "untag", "metrics", "codebase", "status"),
    ),
    ("commands", ("commands", "commands.*")),
    ("command line", ("cli", "__main__")),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    for index, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(module, pattern) for pattern in patterns):
            return index
    raise LookupError(module)


def imported(path: Path) -> set[str]:
    """The `mirror` modules `path` imports, as names relative to `mirror`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from mirror.x import y`: y may be a module of package x
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == "mirror" or name.startswith("mirror."):
                relative = name.removeprefix("mirror").removeprefix(".")
                if (
                    relative == ""
                    or (PACKAGE / relative.replace(".", "/")).exists()
                    or (PACKAGE / (relative.replace(".", "/") + ".py")).exists()
                ):
                    found.add(relative)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    unplaced = []
    for path in MODULES:
        try:
            layer_of(module_name(path))
        except LookupError:
            unplaced.append(module_name(path))
    assert not unplaced, f"place these in tests/test_layers.py LAYERS: {unplaced}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p) or "mirror")
def test_imports_point_down(path: Path) -> None:
    here = module_name(path)
    mine = layer_of(here)
    upward = [
        f"{here} ({LAYERS[mine][0]}) imports {name} ({LAYERS[layer_of(name)][0]})"
        for name in sorted(imported(path))
        if layer_of(name) > mine
    ]
    assert not upward, "\n".join(upward)


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from mirror.cli import main\n", encoding="utf-8")
    assert "cli" in imported(module)
    assert layer_of("cli") > layer_of("reference")  # so mirror/reference.py doing this fails
