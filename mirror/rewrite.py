"""What `mirror rewrite` changes in a file: each Docker Hub reference the config mirrors,
pointed at its ECR mirror, keeping its tag or digest; every other character left as it was.

Pure. `plan_rewrite` decides, per reference, its new text or why it stays (`mirror uri`'s
rules: the config must mirror that image and tag); `rewritten` splices the new texts into
the file at the places the scan noted. Two ways to point a Dockerfile at the mirror:

- the ECR reference written out (`FROM 1234.dkr.ecr.../dockerhub/library/python:3.12`);
- `build_arg`: `FROM ${MIRROR_REGISTRY}/library/python:3.12` and, before the first
  instruction, `ARG MIRROR_REGISTRY=docker.io`: the file names no account, and a build given
  `--build-arg MIRROR_REGISTRY=<ecr host>/<prefix>` pulls from the mirror.
"""

from __future__ import annotations

from dataclasses import dataclass

from mirror.config import Config
from mirror.errors import ConfigError
from mirror.scan import BUILD_ARG, Found, Kind, Span, Status, split_lines
from mirror.uri import mirrored

__all__ = ["Decision", "plan_rewrite", "rewritten"]

ARG_LINE = f"ARG {BUILD_ARG}=docker.io"


@dataclass(frozen=True)
class Decision:
    """A Docker Hub reference and what becomes of it: `edits` (span, new text), or `reason`
    it is left as it is."""

    found: Found
    edits: tuple[tuple[Span, str], ...] = ()
    reason: str | None = None
    build_arg: bool = False


def _suffix(found: Found) -> str:
    ref = found.ref
    assert ref is not None
    return (f":{ref.tag}" if ref.tag else "") + (f"@{ref.digest}" if ref.digest else "")


def _decide(config: Config, found: Found, host: str | None, build_arg: bool) -> Decision:
    ref = found.ref
    assert ref is not None
    try:
        image, _ = mirrored(config, ref)  # a digest alone: only when the entry pins it
    except ConfigError as exc:
        return Decision(found, reason=str(exc))
    site = found.site
    if not site.rewritable:
        return Decision(found, reason="written over several lines or in pieces; change it by hand")
    if build_arg and found.kind is Kind.dockerfile:
        name = f"${{{BUILD_ARG}}}/{ref.repository}"
    elif host is None:
        return Decision(found, reason="the ECR registry is not known")
    else:
        name = f"{host}/{image.target_repository}"
    edits: list[tuple[Span, str]] = []
    if site.whole is not None:
        edits.append((site.whole, name + _suffix(found)))
    elif site.repository is not None and site.registry is not None and host is not None:
        edits += [(site.registry, host), (site.repository, image.target_repository)]
    elif site.repository is not None:
        edits.append((site.repository, name))
    return Decision(found, tuple(edits), build_arg=build_arg and found.kind is Kind.dockerfile)


def plan_rewrite(
    config: Config, found: list[Found], *, host: str | None, build_arg: bool = False
) -> list[Decision]:
    """A decision for each Docker Hub reference in `found` (references a build already
    switches with `${MIRROR_REGISTRY}` are done). `host`: the ECR registry's host."""
    return [
        _decide(config, f, host, build_arg)
        for f in found
        if f.status is Status.hub and not f.switchable
    ]


def _first_instruction(lines: list[str]) -> int:
    """The index of the first line that is not blank or a comment (parser directives stay
    above what is inserted)."""
    for index, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith("#"):
            return index
    return len(lines)


def _has_arg(lines: list[str]) -> bool:
    for line in lines[: _first_from(lines)]:
        words = line.split()
        if [w.upper() for w in words[:1]] == ["ARG"] and any(
            w.partition("=")[0] == BUILD_ARG for w in words[1:]
        ):
            return True
    return False


def _first_from(lines: list[str]) -> int:
    starts = (line.upper().split()[:1] for line in lines)
    return next((i for i, first in enumerate(starts) if first == ["FROM"]), len(lines))


def rewritten(text: str, decisions: list[Decision]) -> str:
    """`text` with the decisions' edits made (each place once, however many references share
    it, as `FROM $BASE` twice shares its ARG); in build-arg mode the ARG line is added."""
    lines = split_lines(text, keepends=True)
    edits = sorted(
        {edit for d in decisions for edit in d.edits}, key=lambda e: (e[0].line, e[0].start)
    )
    for span, new in reversed(edits):
        line = lines[span.line - 1]
        lines[span.line - 1] = line[: span.start] + new + line[span.end :]
    if any(d.build_arg and d.edits for d in decisions):
        bare = [line.rstrip("\r\n") for line in lines]
        if not _has_arg(bare):
            newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
            lines.insert(_first_instruction(bare), ARG_LINE + newline)
    return "".join(lines)
