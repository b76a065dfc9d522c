"""Image references in a codebase's files: what was found, where, and what it resolves to.

Pure: `scan_text(path, text)` reads nothing; walking the file tree is `mirror.codebase`'s job.
A file's kind comes from its name (`kind_of`; a script without a suffix also by its
`#!` line, `shell_shebang`); each kind has its finder (`scan_dockerfile`, `scan_yaml`,
`scan_script`, `scan_cfn`, `scan_terraform`). Every reference found is a `Found`: its file
and line, the text as written, and the `Site` that holds it, so that `mirror rewrite` can
change exactly that text and nothing around it. A reference is sorted (`Found.status`) into:

- `hub`: it resolves to Docker Hub (`python` = `docker.io/library/python:latest`);
- `other`: it names another registry, so mirror leaves it alone;
- `unresolved`: a variable it cannot resolve, or text that is not a valid reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath

from mirror.reference import DOCKER_HUB, ImageRef, InvalidReference, parse_reference

__all__ = [
    "BUILD_ARG",
    "Found",
    "Kind",
    "Site",
    "Span",
    "Status",
    "found",
    "kind_of",
    "needs_shebang",
    "shell_shebang",
    "split_lines",
]

# The build argument `mirror rewrite --build-arg` puts in front of a Dockerfile's images.
BUILD_ARG = "MIRROR_REGISTRY"
_SWITCHABLE = re.compile(rf"^\$(?:\{{{BUILD_ARG}\}}|{BUILD_ARG}\b)/")


class Kind(StrEnum):
    dockerfile = "dockerfile"
    compose = "compose"
    kubernetes = "kubernetes"
    helm = "helm"
    github_actions = "github-actions"
    buildspec = "buildspec"
    gitlab_ci = "gitlab-ci"
    shell = "shell"
    makefile = "makefile"
    cloudformation = "cloudformation"
    terraform = "terraform"


class Status(StrEnum):
    hub = "hub"
    other = "other"
    unresolved = "unresolved"


@dataclass(frozen=True)
class Span:
    """Text on one line of a file: 1-based line, 0-based columns [start, end)."""

    line: int
    start: int
    end: int


@dataclass(frozen=True)
class Site:
    """Where a reference is written. `whole`: the whole reference (`python:3.12`); or, for
    Helm's split form, `repository` (`[registry/]path`) and an optional `registry` key.
    None where the text could not be placed on one line (mirror rewrite then leaves it)."""

    whole: Span | None = None
    repository: Span | None = None
    registry: Span | None = None

    @property
    def rewritable(self) -> bool:
        return self.whole is not None or self.repository is not None


@dataclass(frozen=True)
class Found:
    """One image reference in a file."""

    file: str
    line: int
    kind: Kind
    text: str  # as written, variables from ARG defaults substituted
    ref: ImageRef | None  # None when unresolved
    problem: str | None  # why unresolved
    site: Site
    switchable: bool = False  # `${MIRROR_REGISTRY}/...`: the build chooses the registry

    @property
    def status(self) -> Status:
        if self.ref is None:
            return Status.unresolved
        return Status.hub if self.ref.registry == DOCKER_HUB else Status.other


def found(
    file: str, line: int, kind: Kind, text: str, site: Site, *, variable_ok: bool = False
) -> Found:
    """A `Found` for `text`: parsed by Docker's rules, or unresolved with the reason.
    `variable_ok`: the text was written with `${MIRROR_REGISTRY}/` (resolved as docker.io)."""
    switchable = variable_ok and bool(_SWITCHABLE.match(text))
    parsed = _SWITCHABLE.sub(f"{DOCKER_HUB}/", text) if switchable else text
    if "$" in parsed or "{{" in parsed:
        return Found(file, line, kind, text, None, "a variable mirror cannot resolve", site)
    try:
        ref = parse_reference(parsed)
    except InvalidReference as exc:
        return Found(file, line, kind, text, None, str(exc), site)
    return Found(file, line, kind, text, ref, None, site, switchable)


_COMPOSE = re.compile(r"^(?:docker-)?compose(?:[.-].+)?\.ya?ml$")
_BUILDSPEC = re.compile(r"^buildspec.*\.ya?ml$")
_VALUES = re.compile(r"^values.*\.ya?ml$")
_GITLAB = re.compile(r"^\.gitlab-ci.*\.ya?ml$")
_MAKEFILES = frozenset({"Makefile", "makefile", "GNUmakefile"})
_SCRIPT_DIRECTORIES = frozenset({"scripts", "bin"})
_SHEBANG = re.compile(rb"^#![ \t]*(?:\S*/)?(?:env[ \t]+(?:-\S+[ \t]+)*)?(?:ba|da)?sh(?:\s|$)")


def split_lines(text: str, *, keepends: bool = False) -> list[str]:
    """The lines of `text`, cut at each `\\n` only, as Docker, the shell, make and Terraform
    cut them (a `\\r` before it belongs to the line's end): every `Span` counts lines so.
    `str.splitlines` also cuts at `\\r`, `\\f`, `\\v`, `\\x1c`-`\\x1e`, `\\x85`, `\\u2028` and
    `\\u2029`, which would put a span on another line than the one its reader meant.
    Without `keepends`, a last empty line stands for a text's final newline."""
    pieces = text.split("\n")
    if keepends:
        return [piece + "\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    return [piece.removesuffix("\r") for piece in pieces]


def is_yaml(name: str) -> bool:
    return name.endswith((".yaml", ".yml"))


def needs_shebang(path: str) -> bool:
    """A file without a suffix in a `scripts/` or `bin/` directory: a shell script if its
    first line says so (`shell_shebang`)."""
    pure = PurePosixPath(path.replace("\\", "/"))
    return pure.parent.name in _SCRIPT_DIRECTORIES and not pure.suffix and pure.name[:1] != "."


def shell_shebang(head: bytes) -> bool:
    """Whether a file starting with `head` runs with sh or bash (`#!/bin/sh`,
    `#!/usr/bin/env bash`, ...)."""
    return _SHEBANG.match(head) is not None


def kind_of(path: str) -> Kind | None:
    """The kind of file a path names, from its name; None: not one mirror reads. A YAML file
    of no other kind is `kubernetes` (only documents with `apiVersion` and `kind` count); a
    file that `needs_shebang` is `shell` only when its first line is a shell's; a `*.json` or
    `*.template` file is `cloudformation` only when it is a template (a YAML template of no
    other kind is found among the `kubernetes` files' documents)."""
    pure = PurePosixPath(path.replace("\\", "/"))
    name = pure.name
    lower = name.lower()
    if (
        name in ("Dockerfile", "Containerfile")
        or lower.endswith((".dockerfile", ".containerfile"))
        or name.startswith(("Dockerfile.", "Containerfile."))
    ):
        return Kind.dockerfile
    if name in _MAKEFILES or lower.endswith(".mk"):
        return Kind.makefile
    if lower.endswith((".sh", ".bash")) or needs_shebang(path):
        return Kind.shell
    if lower.endswith(".tf"):
        return Kind.terraform
    if lower.endswith((".json", ".template")):
        return Kind.cloudformation
    if not is_yaml(lower):
        return None
    if _GITLAB.match(name):
        return Kind.gitlab_ci
    if pure.parent.name == "workflows" and pure.parent.parent.name == ".github":
        return Kind.github_actions
    if _COMPOSE.match(lower):
        return Kind.compose
    if _BUILDSPEC.match(lower):
        return Kind.buildspec
    if _VALUES.match(lower):
        return Kind.helm
    return Kind.kubernetes
