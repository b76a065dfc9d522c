"""`mirror discover PATH...`: every Docker Hub image a codebase pulls, and where.

stdout carries the report (a table, or `--output json`); with `--write CONFIG` the images
found are merged into the config file (`mirror.config_merge`) and what changed is said on
stderr. Files that cannot be read are reported and counted; the command still finishes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from mirror.codebase import ScannedFile, Unreadable, replace_text, scan_paths
from mirror.config_merge import merge_images
from mirror.errors import ConfigError
from mirror.reference import DEFAULT_TAG
from mirror.scan import Found, Status
from mirror.text import printable
from mirror.yamlfile import read_text

DISCOVER_VERSION = 1


def _scan(paths: Sequence[Path]) -> tuple[list[Found], list[Unreadable], int]:
    found: list[Found] = []
    unreadable: list[Unreadable] = []
    files = 0
    for result in scan_paths(paths):
        if isinstance(result, ScannedFile):
            files += 1
            found += result.found
        else:
            unreadable.append(result)
    return found, unreadable, files


def wanted_images(found: Sequence[Found]) -> dict[str, list[str]]:
    """{Docker Hub repository: its tags, in the order found}. A reference by digest alone is
    wanted as that digest pinned (`sha256:...` among the tags: docs/over-time.md)."""
    wanted: dict[str, list[str]] = {}
    for f in found:
        if f.status is not Status.hub or f.ref is None:
            continue
        tags = wanted.setdefault(f.ref.repository, [])
        digest_alone = f.ref.digest if f.ref.digest and not f.ref.tag else None
        tag = digest_alone or f.ref.tag or DEFAULT_TAG
        if tag not in tags:
            tags.append(tag)
    return wanted


def _entry(f: Found) -> dict[str, Any]:
    entry: dict[str, Any] = {"file": f.file, "line": f.line, "kind": f.kind.value}
    entry["reference"] = f.text
    if f.ref is not None:
        entry["image"] = f"{f.ref.registry}/{f.ref.repository}"
        entry["tag"] = f.ref.tag or (None if f.ref.digest else DEFAULT_TAG)
        entry["digest"] = f.ref.digest
    if f.status is Status.hub:
        entry["build_arg"] = f.switchable
    if f.problem is not None:
        entry["problem"] = f.problem
    return entry


def discover_document(
    found: Sequence[Found], unreadable: Sequence[Unreadable], files: int
) -> dict[str, Any]:
    wanted = wanted_images(found)
    return {
        "version": DISCOVER_VERSION,
        "files": files,
        "references": [_entry(f) for f in found if f.status is Status.hub],
        "images": [{"repository": name, "tags": tags} for name, tags in wanted.items()],
        "other_registries": [_entry(f) for f in found if f.status is Status.other],
        "unresolved": [_entry(f) for f in found if f.status is Status.unresolved],
        "unreadable": [{"file": u.file, "problem": u.problem} for u in unreadable],
    }


def plural(count: int, noun: str) -> str:
    """`1 file`, `2 files`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _columns(rows: list[tuple[str, ...]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        out.write("  ".join(cells).rstrip() + "\n")


def write_discover_table(document: dict[str, Any], out: TextIO) -> None:
    """Aligned columns: where, the reference as written, the Docker Hub image, tag/digest;
    then what was left alone and why, and a summary line."""
    rows: list[tuple[str, ...]] = [("FILE:LINE", "REFERENCE", "DOCKER HUB IMAGE", "TAG OR DIGEST")]
    for e in document["references"]:
        pin = " ".join(p for p in (e["tag"], e["digest"]) if p)
        rows.append(
            (f"{printable(e['file'])}:{e['line']}", printable(e["reference"]), e["image"], pin)
        )
    _columns(rows, out)
    for title, key in (("Other registries", "other_registries"), ("Unresolved", "unresolved")):
        if document[key]:
            out.write(f"\n{title} (left alone):\n")
            for e in document[key]:
                why = f": {e['problem']}" if "problem" in e else ""
                out.write(f"  {printable(e['file'])}:{e['line']}  {printable(e['reference'])}")
                out.write(f"{printable(why)}\n")
    if document["unreadable"]:
        out.write("\nCould not read:\n")
        for u in document["unreadable"]:
            out.write(f"  {printable(u['file'])}: {printable(u['problem'])}\n")
    files = {e["file"] for e in document["references"]}
    out.write(
        f"\n{plural(len(document['references']), 'reference')} to"
        f" {plural(len(document['images']), 'Docker Hub image')} in {len(files)} of"
        f" {plural(document['files'], 'file')} read; {len(document['other_registries'])} to"
        f" other registries, {len(document['unresolved'])} unresolved; could not read"
        f" {plural(len(document['unreadable']), 'file')}\n"
    )


def _write_config(config: Path, found: Sequence[Found], err: TextIO) -> None:
    wanted = wanted_images(found)
    text = read_text(config) if config.exists() else None
    merged = merge_images(text, str(config), wanted)
    for note in merged.notes:
        err.write(f"{config}: not added: {printable(note)}\n")
    if merged.text != (text or ""):
        replace_text(config, merged.text)
    added = ", ".join(merged.added_images) or "none"
    tags = ", ".join(merged.added_tags) or "none"
    err.write(f"{config}: added images: {added}; added tags: {tags}\n")


def run_discover(
    paths: Sequence[Path],
    *,
    output: str,
    write: Path | None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    if write is not None and write.is_dir():
        raise ConfigError(f"{write}: --write needs a config file, not a directory")
    if write is not None and write.exists():
        merge_images(read_text(write), str(write), {})  # a bad config: exit 2 before the walk
    found, unreadable, files = _scan(paths)
    document = discover_document(found, unreadable, files)
    if output == "json":
        out.write(json.dumps(document, indent=2) + "\n")
    else:
        write_discover_table(document, out)
    if write is not None:
        _write_config(write, found, err)
    return 0
