"""A python base image made from this machine, for building the Dockerfile without Docker Hub.

`base_rootfs` writes a tar of a tiny root filesystem: this machine's python3 (the one the tests
run on, so that wheels built here fit it) at its own paths, its standard library (without
tests, caches, GUI kits), pip in its site-packages, /bin/sh, and every shared library these
and the test environment's compiled packages load (found with ldd), plus the dynamic
linker's cache. `docker import` makes it an image that stands where python:3.12-slim would.
"""

from __future__ import annotations

import io
import os
import re
import site as site_module
import subprocess
import sys
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import pip

__all__ = ["BASE_CHANGES", "base_rootfs"]

# what `docker import --change` sets on the image (an imported rootfs has no config)
BASE_CHANGES = ["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
_STDLIB_LEFT_OUT = {
    "test",
    "tests",
    "__pycache__",
    "idlelib",
    "tkinter",
    "turtledemo",
    "lib2to3",
    "ensurepip",
    "pydoc_data",
    "site-packages",
    "dist-packages",
}
_PATHS = "import sysconfig as s; p = s.get_paths(); print(p['stdlib'], p['purelib'])"
_LIBRARY = re.compile(r"(/\S+\.so[.\d]*)")


def _stdlib_files(stdlib: Path) -> Iterator[Path]:
    for path in sorted(stdlib.rglob("*")):
        parts = set(path.relative_to(stdlib).parts)
        if parts & _STDLIB_LEFT_OUT or any(p.startswith(("config-", "_tkinter")) for p in parts):
            continue
        if path.is_file():
            yield path


def _dynload(stdlib: Path) -> Iterator[Path]:
    """The standard library's extension modules, but Tk's (and X11 with it)."""
    return (p for p in stdlib.glob("lib-dynload/*.so") if not p.name.startswith("_tkinter"))


def _shared_libraries(binaries: Iterable[Path]) -> set[Path]:
    """Every library `ldd` names for these binaries (the paths as the loader finds them)."""
    found: set[Path] = set()
    for binary in binaries:
        done = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
        # normalised: an RPATH of `$ORIGIN/..` makes ldd print `lib/../x.so`, which a tar
        # would carry as a second path of the same file (the engine refuses the layer)
        found.update(Path(os.path.normpath(m)) for m in _LIBRARY.findall(done.stdout))
    return {path for path in found if path.exists()}


def _add_file(tar: tarfile.TarFile, source: Path, name: str) -> None:
    info = tar.gettarinfo(str(source.resolve()), arcname=name)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    with source.open("rb") as stream:
        tar.addfile(info, stream)


def _add_text(tar: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    tar.addfile(info)


def base_rootfs(out: Path) -> Path:
    """Write the root filesystem's tar to `out`; the python in it is `/usr/bin/python3`."""
    python = Path(sys._base_executable).resolve()  # the venv's base interpreter
    stdlib, site = (
        Path(line)
        for line in subprocess.run(
            [str(python), "-c", _PATHS], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    pip_root = Path(pip.__file__).resolve().parent
    # and what the installed packages' extensions load (pydantic-core: libgcc_s)
    packages = (Path(p) for p in site_module.getsitepackages())
    extensions = [so for directory in packages for so in directory.rglob("*.so")]
    shared = [python, Path("/bin/sh"), *_dynload(stdlib), *extensions]
    files: dict[str, Path] = {str(python).lstrip("/"): python, "bin/sh": Path("/bin/sh")}
    files |= {str(p).lstrip("/"): p for p in _shared_libraries(shared)}
    files["etc/ld.so.cache"] = Path("/etc/ld.so.cache")
    files |= {str(p).lstrip("/"): p for p in _stdlib_files(stdlib)}
    files |= {
        f"{site}/pip/{p.relative_to(pip_root)}".lstrip("/"): p
        for p in pip_root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    # every directory readable by anyone (the image's user is not root): /root/.pyenv/...
    names = [*files, "usr/bin/python3"]
    directories = {str(parent) for name in names for parent in Path(name).parents} - {"."}
    with tarfile.open(out, "w") as tar:
        _add_dir(tar, "tmp", 0o1777)
        for name in sorted(directories):
            _add_dir(tar, name)
        for name, path in sorted(files.items()):
            _add_file(tar, path, name)
        tar.addfile(_symlink("usr/bin/python3", str(python)))
        _add_text(tar, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
        _add_text(tar, "etc/group", "root:x:0:\n")
    return out


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info
