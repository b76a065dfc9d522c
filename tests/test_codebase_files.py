"""What `mirror discover` and `mirror rewrite` do with the file system's odd members, through
the real CLI: symbolic links (into the tree, out of it, to nothing, in a loop), a FIFO, a
device, a directory named like a Dockerfile, a file that cannot be read, and a file that
vanishes between the walk and the read. Every one is reported per file and skipped; the
command finishes, and rewrite never writes outside the PATH it was given."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from mirror.codebase import ScannedFile, Unreadable, scan_paths

HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
ALPINE = f"{HOST}/dockerhub/library/alpine:3.19"


def run(cwd: Path, *args: str, prefix: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """`mirror ARGS` in `cwd`, run by `prefix`; a run that hangs fails the test (a timeout)."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "mirror", *args],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[1])},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A directory holding `code/` (with a Dockerfile) and a config that mirrors alpine."""
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "Dockerfile").write_text("FROM alpine:3.19\n")
    (tmp_path / "images.yaml").write_text(
        f"version: 1\ntarget: {{registry: 'https://{HOST}'}}\n"
        "images:\n  - {image: alpine, tags: ['3.19']}\n"
    )
    return tmp_path


def test_a_fifo_is_reported_not_waited_on(work: Path) -> None:
    os.mkfifo(work / "code" / "x.Dockerfile")
    done = run(work, "discover", "code")
    assert done.returncode == 0, done.stderr
    assert "code/x.Dockerfile: not a regular file" in done.stdout
    assert "code/Dockerfile:1" in done.stdout


def test_a_fifo_in_scripts_is_not_read_for_its_shebang(work: Path) -> None:
    (work / "code" / "scripts").mkdir()
    os.mkfifo(work / "code" / "scripts" / "build")
    done = run(work, "rewrite", "--check", "code")
    assert done.returncode == 1, done.stderr
    assert done.stdout.endswith(
        "1 Docker Hub reference in 1 of 1 file read; could not read 0 files\n"
    )


def test_a_device_given_by_name_is_not_read(work: Path) -> None:
    done = run(work, "discover", "/dev/zero", "code")
    assert done.returncode == 0, done.stderr
    assert "/dev/zero: not a regular file" in done.stdout


def test_a_symlink_loop_and_a_dangling_symlink_are_reported(work: Path) -> None:
    (work / "code" / "loop.Dockerfile").symlink_to("loop.Dockerfile")
    (work / "code" / "gone.yaml").symlink_to("nothing.yaml")
    done = run(work, "discover", "code", "code/loop.Dockerfile")
    assert done.returncode == 0, done.stderr
    no_file = "a symbolic link to no file (dangling, or a loop)"
    assert f"code/loop.Dockerfile: {no_file}" in done.stdout
    assert f"code/gone.yaml: {no_file}" in done.stdout
    assert "code/Dockerfile:1" in done.stdout


def _link_out(work: Path) -> Path:
    """`code/linked.Dockerfile`, a link to a Dockerfile out of `code/`; that Dockerfile."""
    outside = work / "outside.Dockerfile"
    outside.write_text("FROM alpine:3.19\n")
    (work / "code" / "linked.Dockerfile").symlink_to(outside)
    return outside


def test_rewrite_never_follows_a_symlink_out_of_the_path(work: Path) -> None:
    outside = _link_out(work)
    done = run(work, "rewrite", "-c", "images.yaml", "code")
    assert done.returncode == 0, done.stderr
    assert (
        "code/linked.Dockerfile: could not read: a symbolic link out of code: not followed"
        in done.stderr
    )
    assert outside.read_text() == "FROM alpine:3.19\n"
    assert (work / "code" / "linked.Dockerfile").is_symlink()
    assert (work / "code" / "Dockerfile").read_text() == f"FROM {ALPINE}\n"


def test_rewrite_writes_the_file_a_symlink_in_the_path_names(work: Path) -> None:
    (work / "code" / "app").mkdir()
    (work / "code" / "app" / "Dockerfile").write_text("FROM alpine:3.19\n")
    (work / "code" / "A.Dockerfile").symlink_to("app/Dockerfile")  # walked before its target
    done = run(work, "rewrite", "-c", "images.yaml", "code")
    assert done.returncode == 0, done.stderr
    assert (work / "code" / "A.Dockerfile").is_symlink()
    assert (work / "code" / "app" / "Dockerfile").read_text() == f"FROM {ALPINE}\n"
    assert run(work, "rewrite", "--check", "code").returncode == 0


def test_a_directory_named_like_a_dockerfile_is_walked(work: Path) -> None:
    (work / "code" / "sub.Dockerfile").mkdir()
    (work / "code" / "sub.Dockerfile" / "Dockerfile").write_text("FROM python:3.12\n")
    done = run(work, "discover", "code/sub.Dockerfile", "code")
    assert done.returncode == 0, done.stderr
    assert "code/sub.Dockerfile/Dockerfile:1" in done.stdout
    assert "could not read 0 files" in done.stdout


def test_a_file_that_vanishes_after_the_walk_is_reported(work: Path) -> None:
    (work / "code" / "x.Dockerfile").write_text("FROM python:3.12\n")
    results = scan_paths([work / "code"])
    first = next(results)
    assert isinstance(first, ScannedFile) and first.file.endswith("/Dockerfile")
    (work / "code" / "x.Dockerfile").unlink()  # the walk listed it already
    assert list(results) == [
        Unreadable(str(work / "code" / "x.Dockerfile"), "cannot read: No such file or directory")
    ]


# Root reads and writes any file: without these two capabilities, a mode applies to it too.
NO_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
as_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="dropping root's capabilities needs root and setpriv",
)


@as_root
def test_a_file_that_cannot_be_read_is_reported(work: Path) -> None:
    (work / "code" / "secret.Dockerfile").write_text("FROM python:3.12\n")
    (work / "code" / "secret.Dockerfile").chmod(0)
    done = run(work, "discover", "code", prefix=NO_OVERRIDE)
    assert done.returncode == 0, done.stderr
    assert "code/secret.Dockerfile: cannot read: Permission denied" in done.stdout
    assert "code/Dockerfile:1" in done.stdout


@as_root
def test_a_file_rewrite_cannot_write_is_reported_and_the_others_rewritten(work: Path) -> None:
    (work / "a").mkdir()
    (work / "a" / "Dockerfile").write_text("FROM alpine:3.19\n")
    (work / "a").chmod(0o555)  # read first, and not writable
    done = run(work, "rewrite", "-c", "images.yaml", "a", "code", prefix=NO_OVERRIDE)
    (work / "a").chmod(0o755)
    assert done.returncode == 1, done.stderr
    assert done.stderr == "a/Dockerfile: cannot write: Permission denied\n"
    assert done.stdout.endswith(
        "rewrote 1 reference in 1 of 2 files read; 0 left as they are; could not read 0 files;"
        " could not write 1 file\n"
    )
    assert (work / "a" / "Dockerfile").read_text() == "FROM alpine:3.19\n"
    assert (work / "code" / "Dockerfile").read_text() == f"FROM {ALPINE}\n"


def test_the_dry_run_diff_cuts_lines_where_git_does(work: Path) -> None:
    """A form feed inside a line: the diff cut the line there, and git refused the patch."""
    (work / "code" / "Dockerfile").write_text("FROM alpine:3.19 AS a\x0cb\n")
    done = run(work, "rewrite", "-c", "images.yaml", "--dry-run", "code")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "--- a/code/Dockerfile\n+++ b/code/Dockerfile\n@@ -1 +1 @@\n"
        f"-FROM alpine:3.19 AS a\x0cb\n+FROM {ALPINE} AS a\x0cb\n"
    )


def test_an_anchor_named_twice_is_read_without_a_warning(work: Path) -> None:
    """ruamel.yaml warned on stderr, quoting the file over eight lines."""
    (work / "code" / "compose.yaml").write_text("a: &x 1\nb: &x 2\nimage: alpine:3.19\n")
    done = run(work, "discover", "code")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "code/compose.yaml:3  alpine:3.19" in done.stdout


def test_rewrite_leaves_a_symlink_named_on_the_command_line(work: Path) -> None:
    """It was replaced by a rewritten copy of what it names: the link was gone."""
    outside = _link_out(work)
    done = run(work, "rewrite", "-c", "images.yaml", "code/linked.Dockerfile")
    assert done.returncode == 1
    assert done.stderr == (
        "code/linked.Dockerfile: cannot write: a symbolic link; name the file it links to\n"
    )
    assert (work / "code" / "linked.Dockerfile").is_symlink()
    assert outside.read_text() == "FROM alpine:3.19\n"
