"""Walking a codebase for `mirror discover` and `mirror rewrite`: which files, read safely.

The I/O half of discovery (the pure half is `scan*`): the files under the given paths whose
kind `scan.kind_of` knows (dependency and tool directories such as `.git` and
`node_modules` skipped; a file of `scripts/` or `bin/` without a suffix only when its `#!`
line is a shell's), each read within bounds. A file that cannot be read (missing,
unreadable, larger than `MAX_FILE_BYTES`, binary, not UTF-8, malformed YAML) is an
`Unreadable` with its reason; the walk goes on.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mirror.errors import MirrorError
from mirror.scan import Found, Kind, is_yaml, kind_of, needs_shebang, shell_shebang
from mirror.scan_cfn import NotATemplate, scan_manifests_and_templates, scan_template
from mirror.scan_dockerfile import scan_dockerfile
from mirror.scan_script import scan_makefile, scan_script
from mirror.scan_terraform import scan_terraform
from mirror.scan_yaml import MalformedYaml, scan_yaml

__all__ = [
    "MAX_FILE_BYTES",
    "ScannedFile",
    "Unreadable",
    "replace_text",
    "scan_paths",
    "scan_text",
]

MAX_FILE_BYTES = 1024 * 1024  # a Dockerfile or a CI file is a few KiB
SHEBANG_BYTES = 128  # what is read of a file to see whether its `#!` line is a shell's
SKIP_DIRECTORIES = frozenset(
    {".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".tox", ".mypy_cache"}
    | {".terraform", "cdk.out"}  # modules Terraform downloaded, templates the CDK generated
)


@dataclass(frozen=True)
class Unreadable:
    file: str
    problem: str


@dataclass(frozen=True)
class ScannedFile:
    file: str
    kind: Kind
    text: str
    found: list[Found]


# The kinds read by their own reader; the YAML kinds (compose, Helm values, ...) by scan_yaml.
_READERS: dict[Kind, Callable[[str, str], list[Found]]] = {
    Kind.dockerfile: scan_dockerfile,
    Kind.shell: scan_script,
    Kind.makefile: scan_makefile,
    Kind.terraform: scan_terraform,
    Kind.cloudformation: scan_template,
    Kind.kubernetes: scan_manifests_and_templates,
}


def scan_text(file: str, kind: Kind, text: str) -> list[Found]:
    """The references in a file's text (raises MalformedYaml for YAML that is not,
    NotATemplate for a `cloudformation` file that is no template)."""
    reader = _READERS.get(kind)
    return reader(file, text) if reader is not None else scan_yaml(file, kind, text)


def _open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading if it is a regular file (else ValueError, its reason). Opened
    without blocking, then asked what it is: a FIFO opened plainly waits for a writer
    forever, and a device never ends."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(handle).st_mode):
        os.close(handle)
        raise ValueError("not a regular file")
    return os.fdopen(handle, "rb")


def _runs_a_shell(path: Path) -> bool:
    """Whether the file's first line is a shell's `#!` (False when it cannot be read)."""
    try:
        with _open_regular(path) as file:
            return shell_shebang(file.read(SHEBANG_BYTES))
    except (OSError, ValueError):
        return False


def _files(paths: Iterable[Path]) -> Iterator[tuple[Path, Kind | None] | Unreadable]:
    """Each file to read (once, however many of `paths` hold it) and its kind; a path given
    by name is read whatever its name (YAML by its suffix, a shell script by its `#!` line,
    a Dockerfile otherwise). Missing paths come with kind None."""
    seen: set[str] = set()
    for candidate in _candidates(paths):
        if isinstance(candidate, Unreadable):
            yield candidate
        elif (real := os.path.realpath(candidate[0])) not in seen:  # a loop raises nothing
            seen.add(real)
            yield candidate


def _linked(link: Path, top: Path) -> Path | Unreadable:
    """The file a symbolic link found under `top` names, as a path under `top`; Unreadable
    when it names nothing, loops, or leaves `top` (rewrite never writes outside the PATH
    given, and discover reads only what is in it)."""
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError):  # RuntimeError: a loop, before Python 3.13
        return Unreadable(str(link), "a symbolic link to no file (dangling, or a loop)")
    try:
        return top / target.relative_to(top.resolve())
    except ValueError:
        return Unreadable(str(link), f"a symbolic link out of {top}: not followed")


def _candidates(paths: Iterable[Path]) -> Iterator[tuple[Path, Kind | None] | Unreadable]:
    for path in paths:
        if path.is_dir():
            for root, directories, names in os.walk(path):
                directories[:] = sorted(d for d in directories if d not in SKIP_DIRECTORIES)
                for name in sorted(names):
                    file = Path(root, name)
                    kind = kind_of(str(file))
                    if kind is None:
                        continue
                    read = _linked(file, path) if file.is_symlink() else file
                    if isinstance(read, Unreadable):
                        yield read
                    elif not needs_shebang(str(file)) or _runs_a_shell(read):
                        yield read, kind
        elif path.exists():
            kind = kind_of(str(path))
            if kind is None or (kind is Kind.shell and needs_shebang(str(path))):
                kind = Kind.shell if _runs_a_shell(path) else None
            yield path, kind or (Kind.kubernetes if is_yaml(path.name) else Kind.dockerfile)
        else:
            yield path, None


def read_source(path: Path) -> str:
    """A file's text: at most MAX_FILE_BYTES of UTF-8, no NUL (else ValueError, its reason)."""
    try:
        with _open_regular(path) as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ValueError(f"larger than {MAX_FILE_BYTES // 1024} KiB, the most mirror reads")
    if b"\0" in raw:
        raise ValueError("a binary file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte {exc.start + 1})") from None


def scan_paths(paths: Iterable[Path]) -> Iterator[ScannedFile | Unreadable]:
    """Every file of a known kind under `paths`, scanned, or why it could not be read.
    A YAML file found by walking that is not YAML and has `{{` (a Helm template) is
    skipped rather than reported: templates are not YAML until Helm renders them. So is a
    `*.json` or `*.template` file that is no CloudFormation template, and one that cannot be
    read before it is known to be one (a `package-lock.json` over the size bound)."""
    for candidate in _files(paths):
        if isinstance(candidate, Unreadable):
            yield candidate
            continue
        path, kind = candidate
        file = str(path)
        if kind is None:
            yield Unreadable(file, "no such file or directory")
            continue
        try:
            text = read_source(path)
            yield ScannedFile(file, kind, text, scan_text(file, kind, text))
        except NotATemplate:
            continue
        except MalformedYaml as exc:
            if kind is Kind.kubernetes and "{{" in text:
                continue
            yield Unreadable(file, str(exc))
        except ValueError as exc:
            if kind is not Kind.cloudformation:
                yield Unreadable(file, str(exc))


def replace_text(path: Path, text: str) -> None:
    """Write `text` to `path` all at once (a temporary file renamed over it, in the same
    directory), keeping the file's permissions; a reader never sees half a file."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    try:
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
    except OSError as exc:
        raise MirrorError(f"{path}: cannot write: {exc.strerror}") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise MirrorError(f"{path}: cannot write: {exc.strerror}") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
