"""Image references, parsed by Docker's rules, and their ECR repository names.

Pure functions: no I/O. Docker's rules, in short:
- the part before the first `/` is a registry host only if it has a `.` or a `:` or is
  `localhost`; otherwise the whole name is a Docker Hub repository;
- `docker.io`, `index.docker.io` and `registry-1.docker.io` are the same registry;
- on Docker Hub a one-component name is an official image: `python` = `library/python`;
- `name:tag`, `name@sha256:<hex>` and `name:tag@sha256:<hex>` are all valid; no tag means `latest`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_ECR_NAME_RE = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_PLATFORM_RE = re.compile(r"^([a-z0-9]+)/([a-z0-9_]+)(?:/([a-z0-9]+))?$")

KNOWN_OS = frozenset(
    {
        "linux",
        "windows",
        "darwin",
        "freebsd",
        "netbsd",
        "openbsd",
        "illumos",
        "solaris",
        "aix",
        "plan9",
        "wasip1",
    }
)
KNOWN_ARCH = frozenset(
    {
        "amd64",
        "arm64",
        "arm",
        "386",
        "ppc64le",
        "ppc64",
        "s390x",
        "riscv64",
        "mips64le",
        "mips64",
        "mipsle",
        "mips",
        "loong64",
        "wasm",
    }
)


class InvalidReference(ValueError):
    """A reference, repository name or platform string that does not follow the rules."""


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference. `repository` is the full path on its registry."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What goes after `/manifests/`: the digest when pinned, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def normalize_registry(host: str) -> str:
    """Fold Docker Hub's aliases into `docker.io`; other hosts are kept as written."""
    return DOCKER_HUB if host.lower() in DOCKER_HUB_ALIASES else host


def split_registry(name: str) -> tuple[str, str]:
    """Split `host/path` into (registry, path) by Docker's rule; no host means Docker Hub."""
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return normalize_registry(first), rest
    return DOCKER_HUB, name


def hub_repository(path: str) -> str:
    """Docker Hub's official images live under `library/`: `python` -> `library/python`."""
    return path if "/" in path else f"library/{path}"


def validate_repository(path: str) -> str:
    """Check a repository path against the distribution grammar; return it unchanged."""
    if not _REPOSITORY_RE.fullmatch(path):
        raise InvalidReference(
            f"invalid repository name {path!r}: use lowercase letters, digits and . _ -"
            " separators, components joined by /"
        )
    if len(path) > 255:
        raise InvalidReference(f"repository name {path!r} is longer than 255 characters")
    return path


def validate_tag(tag: str) -> str:
    """Check a tag (from a config or a registry's tag list); return it unchanged."""
    if not _TAG_RE.fullmatch(tag):  # fullmatch: `$` alone lets a trailing newline through
        raise InvalidReference(
            f"invalid tag {tag!r:.100}: up to 128 of letters, digits, _ . -,"
            " not starting with . or -"
        )
    return tag


def validate_digest(digest: str) -> str:
    """Check a digest is `sha256:` and 64 lowercase hex digits; return it unchanged."""
    if not _DIGEST_RE.fullmatch(digest):
        raise InvalidReference(f"invalid digest {digest!r:.100}: expected sha256:<64 hex>")
    return digest


def parse_reference(text: str, *, implied_library: bool = True) -> ImageRef:
    """Parse `[host/]path[:tag][@sha256:hex]` by Docker's rules.

    `implied_library` adds `library/` to one-component names, as Docker Hub does; it applies
    to Docker Hub and to registries that stand in for it.
    """
    rest = text.strip()
    if not rest:
        raise InvalidReference("empty image reference")
    digest = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST_RE.fullmatch(digest):
            raise InvalidReference(
                f"invalid digest {digest!r} in {text!r}: expected sha256:<64 hex>"
            )
    tag = None
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], validate_tag(rest[colon + 1 :])
    registry, path = split_registry(rest)
    if implied_library and registry == DOCKER_HUB:
        path = hub_repository(path)
    validate_repository(path)
    return ImageRef(registry=registry, repository=path, tag=tag, digest=digest)


def ecr_repository_name(prefix: str, repository: str) -> str:
    """The ECR repository that mirrors `repository`: `<prefix>/<repository>`, lowercase.

    ECR names are 2-256 characters of lowercase components joined by `/`.
    """
    name = f"{prefix.strip('/')}/{repository}" if prefix.strip("/") else repository
    name = name.lower()
    if not 2 <= len(name) <= 256:
        raise InvalidReference(f"ECR repository name {name!r} must be 2 to 256 characters")
    if not _ECR_NAME_RE.fullmatch(name):
        raise InvalidReference(f"{name!r} is not a valid ECR repository name")
    return name


@dataclass(frozen=True, order=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def matches(self, other: Platform) -> bool:
        """True when `other` (from a manifest) is this platform; no variant here matches any."""
        return (
            self.os == other.os
            and self.architecture == other.architecture
            and (self.variant is None or self.variant == other.variant)
        )


def parse_platform(text: str) -> Platform:
    """Parse `os/arch[/variant]`, e.g. `linux/arm64/v8`, checking the os and arch are known."""
    match = _PLATFORM_RE.fullmatch(text.strip())
    if not match:
        raise InvalidReference(f"invalid platform {text!r}: expected os/arch[/variant]")
    os_name, arch, variant = match.groups()
    if os_name not in KNOWN_OS:
        raise InvalidReference(f"unknown operating system {os_name!r} in platform {text!r}")
    if arch not in KNOWN_ARCH:
        raise InvalidReference(f"unknown architecture {arch!r} in platform {text!r}")
    return Platform(os_name, arch, variant)
