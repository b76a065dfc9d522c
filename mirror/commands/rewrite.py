"""`mirror rewrite PATH...`: point a codebase's Docker Hub references at the ECR mirror.

- default: each file changed in place (all at once), one line per file on stdout, and each
  reference left as it is (not mirrored by the config, ...) with its reason;
- `--dry-run`: the same changes as a unified diff on stdout (reasons on stderr), no file
  written;
- `--check`: nothing changed, no config read; exit 1 while any Docker Hub reference remains,
  each listed with its file and line (a CI gate that keeps new Docker Hub pulls out);
- a file that cannot be written (its directory read-only) is left as it was and reported; the
  others are still rewritten, and the exit code is 1;
- `--build-arg`: Dockerfiles get `${MIRROR_REGISTRY}/...` (see `mirror.rewrite`).

The ECR registry's host comes from the config (`target.registry`), else from ECR (one
GetAuthorizationToken call), and only when a reference needs it.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from mirror.codebase import ScannedFile, Unreadable, replace_text, scan_paths
from mirror.commands.discover import plural
from mirror.config import load_config
from mirror.ecr import EcrCredentials
from mirror.errors import MirrorError
from mirror.rewrite import plan_rewrite, rewritten
from mirror.scan import Found, Kind, Status, split_lines
from mirror.text import printable
from mirror.uri import ecr_host

CHECK_FAILED = 1
WRITE_FAILED = 1  # a file could not be written: it is as it was, the others rewritten


def _where(f: Found) -> str:
    return f"{printable(f.file)}:{f.line}"


def _unreadable(unreadable: Sequence[Unreadable], err: TextIO) -> None:
    for u in unreadable:
        err.write(f"{printable(u.file)}: could not read: {printable(u.problem)}\n")


def _replace(path: Path, text: str) -> None:
    """A file's new text; a symbolic link named on the command line is left, not replaced by
    a copy of what it names (links met in a walk are read at their target already)."""
    if path.is_symlink():
        raise MirrorError(f"{path}: cannot write: a symbolic link; name the file it links to")
    replace_text(path, text)


def run_check(paths: Sequence[Path], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Exit 1 while a Docker Hub reference remains (one not switched by MIRROR_REGISTRY)."""
    remaining: list[Found] = []
    unreadable: list[Unreadable] = []
    files = 0
    for result in scan_paths(paths):
        if isinstance(result, Unreadable):
            unreadable.append(result)
            continue
        files += 1
        remaining += [f for f in result.found if f.status is Status.hub and not f.switchable]
    for f in remaining:
        out.write(f"{_where(f)}: {printable(f.text)} pulls from Docker Hub ({f.ref})\n")
    _unreadable(unreadable, err)
    where = len({f.file for f in remaining})
    out.write(
        f"{plural(len(remaining), 'Docker Hub reference')} in {where} of {plural(files, 'file')}"
        f" read; could not read {plural(len(unreadable), 'file')}\n"
    )
    return CHECK_FAILED if remaining else 0


def run_rewrite(
    config_path: Path,
    paths: Sequence[Path],
    *,
    dry_run: bool,
    build_arg: bool,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    config = load_config(config_path)
    scanned: list[ScannedFile] = []
    unreadable: list[Unreadable] = []
    for result in scan_paths(paths):
        if isinstance(result, ScannedFile):
            scanned.append(result)
        else:
            unreadable.append(result)
    needs_host = any(
        f.status is Status.hub and not (build_arg and f.kind is Kind.dockerfile)
        for s in scanned
        for f in s.found
    )
    host = ecr_host(config, lambda: EcrCredentials(config.region).endpoint) if needs_host else None
    notes = err if dry_run else out
    changed = references = left = 0
    unwritten: list[str] = []
    for file in scanned:
        decisions = plan_rewrite(config, file.found, host=host, build_arg=build_arg)
        for d in decisions:
            if d.reason is not None:
                left += 1
                notes.write(
                    f"{_where(d.found)}: {printable(d.found.text)} left as it is:"
                    f" {printable(d.reason)}\n"
                )
        new = rewritten(file.text, decisions)
        if new == file.text:
            continue
        done = sum(1 for d in decisions if d.edits)
        if dry_run:
            out.writelines(
                difflib.unified_diff(
                    split_lines(file.text, keepends=True),  # not at a form feed, as git
                    split_lines(new, keepends=True),
                    f"a/{file.file}",
                    f"b/{file.file}",
                )
            )
        else:
            try:
                _replace(Path(file.file), new)
            except MirrorError as exc:  # the file is as it was; the others are still done
                unwritten.append(str(exc))
                continue
            out.write(f"{printable(file.file)}: rewrote {plural(done, 'reference')}\n")
        changed += 1
        references += done
    _unreadable(unreadable, err)
    for problem in unwritten:
        err.write(f"{printable(problem)}\n")
    verb = "would rewrite" if dry_run else "rewrote"
    notes.write(
        f"{verb} {plural(references, 'reference')} in {changed} of"
        f" {plural(len(scanned), 'file')} read; {left} left as they are; could not read"
        f" {plural(len(unreadable), 'file')}"
        + (f"; could not write {plural(len(unwritten), 'file')}" if unwritten else "")
        + "\n"
    )
    return WRITE_FAILED if unwritten else 0
