"""Docker's config file (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`), read
and written as Docker does; the helpers it names run through `mirror.credential_helpers`.

- Reading a registry's login (`find_docker_login`), in Docker's order: `credHelpers[<host>]`,
  then `credsStore` (both run `docker-credential-<helper> get`), then the plain
  `auths[<key>]` entry.
- Writing one (`store_docker_login`, for `mirror login`): `credHelpers[<host>]`, else
  `credsStore`, runs `docker-credential-<helper> store`; else `auths[<host>]` is written,
  under a lock, through a symlink only within its directory, keeping the file's owner.

The file holds secrets: every error here is one line naming the file or entry, raised
`from None` wherever the lower exception could hold secret data (a JSON document, decoded
bytes).
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mirror.credential_helpers import (
    HELPER_TIMEOUT,
    IDENTITY_TOKEN_REFUSAL,
    ask_helper,
    store_with_helper,
)
from mirror.errors import CredentialsError
from mirror.reference import DOCKER_HUB, normalize_registry
from mirror.registry.auth import Credentials

__all__ = [
    "HUB_SERVER_URL",
    "DockerRegistry",
    "docker_config_path",
    "find_docker_login",
    "store_docker_login",
]

HUB_SERVER_URL = "https://index.docker.io/v1/"  # the key Docker stores Docker Hub's login under


def docker_config_path(environ: Mapping[str, str], home: Path | None = None) -> Path:
    """`$DOCKER_CONFIG/config.json`, else `<home>/.docker/config.json`, as Docker finds it."""
    directory = environ.get("DOCKER_CONFIG", "")
    if directory:
        return Path(directory) / "config.json"
    if home is None:
        home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    return home / ".docker" / "config.json"


@dataclass(frozen=True)
class DockerRegistry:
    """A registry as the Docker config file names it."""

    host: str  # host[:port], lowercased; a Docker Hub alias for Docker Hub
    hub: bool

    @property
    def server_url(self) -> str:
        """What `docker login` stores the registry's entry under."""
        return HUB_SERVER_URL if self.hub else self.host

    def matches(self, key: str) -> bool:
        """Is a `credHelpers` / `auths` key (host, host:port or URL) this registry's?"""
        host = _host_of(key)
        if self.hub:
            return normalize_registry(host) == DOCKER_HUB
        return host == self.host


def _host_of(key: str) -> str:
    """`https://index.docker.io/v1/` -> `index.docker.io`; `quay.io/x` -> `quay.io`."""
    key = key.strip()
    if "://" in key:
        return urlsplit(key).netloc.lower()
    return key.partition("/")[0].lower()


# --- reading a registry's login --------------------------------------------------------------


def find_docker_login(
    registry: DockerRegistry,
    environ: Mapping[str, str],
    home: Path | None = None,
    helper_timeout: float = HELPER_TIMEOUT,
) -> tuple[Credentials, str] | None:
    """The registry's login in the Docker config file and where it was found (`docker config
    (credsStore: pass)`); None when the file holds none. `environ` gives `DOCKER_CONFIG`,
    `HOME` (unless `home`), and the PATH and environment helpers run with."""
    path = docker_config_path(environ, home)
    document = _read_for_lookup(path)
    if document is None:
        return None

    helpers = _mapping(document, "credHelpers", path)
    auths = _mapping(document, "auths", path)
    # The keys to ask a helper for: those `docker login` left in `auths` (a helper-backed
    # login leaves an empty entry there), then the registry's usual key.
    keys = [key for key in auths if registry.matches(key)]
    keys.sort(key=lambda key: key != registry.server_url)  # the usual key first, if present
    urls = list(dict.fromkeys([*keys, registry.server_url]))

    helper = next((name for key, name in helpers.items() if registry.matches(key) and name), None)
    if helper is not None:
        if not isinstance(helper, str):
            raise CredentialsError(f"{path}: credHelpers names a helper that is not a string")
        credentials = ask_helper(helper, urls, environ, helper_timeout)
        if credentials is not None:
            return credentials, f"docker config (credHelpers: {helper})"

    store = document.get("credsStore")
    if store:
        if not isinstance(store, str):
            raise CredentialsError(f"{path}: credsStore is not a string")
        credentials = ask_helper(store, urls, environ, helper_timeout)
        if credentials is not None:
            return credentials, f"docker config (credsStore: {store})"

    for key in keys:
        credentials = _auths_entry(auths[key], key, path)
        if credentials is not None:
            return credentials, "docker config (auths)"
    return None


def _read_for_lookup(path: Path) -> dict[str, Any] | None:
    """The parsed file; None when there is none. The file holds secrets: errors show none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise CredentialsError(f"{path}: the Docker config file is not UTF-8 text") from None
    except OSError as exc:
        raise CredentialsError(
            f"{path}: cannot read the Docker config file: {exc.strerror}"
        ) from None
    if not text.strip():
        return None  # Docker treats an empty file as no configuration
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:  # exc.doc is the whole file: never chain it
        raise CredentialsError(
            f"{path}: the Docker config file is not valid JSON (line {exc.lineno},"
            f" column {exc.colno})"
        ) from None
    if not isinstance(document, dict):
        raise CredentialsError(f"{path}: the Docker config file is not a JSON object")
    return document


def _mapping(document: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = document.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CredentialsError(f"{path}: {name} is not a JSON object")
    return value


def _auths_entry(entry: Any, key: str, path: Path) -> Credentials | None:
    """`{"auth": base64("user:password")}` or `{"username", "password"}`; `{}`: None."""
    where = f"{path}: auths[{key!r}]"
    if not isinstance(entry, dict):
        raise CredentialsError(f"{where} is not a JSON object")
    if entry.get("identitytoken"):
        raise CredentialsError(f"{where} holds an identity token, {IDENTITY_TOKEN_REFUSAL}")
    auth = entry.get("auth")
    if auth:
        return _decode_auth(auth, where)
    user = entry.get("username")
    password = entry.get("password")
    if not user and not password:
        return None  # an entry a credential helper's login leaves behind
    if not isinstance(user, str) or not isinstance(password, str) or not user or not password:
        raise CredentialsError(f"{where} needs both a username and a password")
    return Credentials(user, password)


def _decode_auth(auth: Any, where: str) -> Credentials:
    if not isinstance(auth, str):
        raise CredentialsError(f"{where}.auth is not a string")
    try:
        decoded = base64.b64decode("".join(auth.split()), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):  # both may quote the secret's bytes
        raise CredentialsError(f"{where}.auth is not base64 of `user:password`") from None
    username, sep, password = decoded.partition(":")
    if not sep or not username or not password:
        raise CredentialsError(f"{where}.auth is not base64 of `user:password`")
    return Credentials(username, password)


# --- writing a login (`mirror login`) --------------------------------------------------------


def store_docker_login(
    host: str,
    credentials: Credentials,
    *,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
    helper_timeout: float = HELPER_TIMEOUT,
) -> str:
    """Record a login the way `docker login` does; returns where it went (for a log line).

    `credHelpers[<host>]`, else `credsStore`, names a helper that stores it
    (`docker-credential-<helper> store`, the secret on stdin, in the helpers' minimal
    environment); else `auths[<host>]` in the config file gets `{"auth":
    base64(user:password)}`, other entries kept. A helper `ecr-login` fetches its own tokens:
    nothing is stored for it. The file is read and written under a lock (see `_ConfigFile`)."""
    env = os.environ if environ is None else environ
    with _ConfigFile(docker_config_path(env, home)) as config_file:
        document = config_file.read()
        helpers = document.get("credHelpers")
        helper = helpers.get(host) if isinstance(helpers, dict) else None
        helper = helper or document.get("credsStore")
        if helper:
            if helper == "ecr-login":
                return "docker-credential-ecr-login (it fetches ECR tokens itself)"
            store_with_helper(helper, host, credentials, env, helper_timeout)
            return f"docker-credential-{helper}"
        auths = document.get("auths")
        if not isinstance(auths, dict):
            auths = document["auths"] = {}
        secret = f"{credentials.username}:{credentials.password}".encode()
        auths[host] = {"auth": base64.b64encode(secret).decode("ascii")}
        config_file.write(json.dumps(document, indent="\t") + "\n")
        return str(config_file.path)


class _ConfigFile:
    """The docker config file, read and replaced as `docker login` does, with three guards.

    - A lock: `flock` on the file's directory, held from the read to the rename, so that two
      logins at once (parallel build steps) do not lose each other's entry.
    - Symlinks: like Docker, a symlinked config.json is written through (the link stays),
      but only when it resolves to a file in the same directory; one that leads elsewhere
      (`/etc/...` under sudo) is refused, nothing written.
    - The owner: like Docker, the new file keeps the owner of the file it replaces (root
      writing a user's config under sudo leaves it the user's); mode 0600.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock: int | None = None

    def __enter__(self) -> _ConfigFile:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self.path = self._target()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            os.close(self._lock)  # releases the lock
            self._lock = None

    def _target(self) -> Path:
        """The file to replace: the path itself, or where its symlink leads in its directory."""
        if not self.path.is_symlink():
            return self.path
        target = self.path.parent / os.readlink(self.path)
        if target.resolve().parent != self.path.parent.resolve():
            raise CredentialsError(
                f"{self.path} is a symlink to {target}, outside its directory; not written"
                " (replace the link with the file, or point DOCKER_CONFIG at its directory)"
            )
        return target.resolve()

    def read(self) -> dict[str, Any]:
        try:
            descriptor = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CredentialsError(f"{self.path}: cannot read it: {exc.strerror}") from None
        with os.fdopen(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise CredentialsError(f"{self.path}: not a regular file; not written")
            data = handle.read()
        try:
            document = json.loads(data) if data.strip() else {}
        except ValueError:  # the message could quote the file, which holds secrets
            raise CredentialsError(f"{self.path}: not valid JSON; fix or remove it first") from None
        if not isinstance(document, dict):
            raise CredentialsError(f"{self.path}: not a JSON object; fix or remove it first")
        return document

    def write(self, text: str) -> None:
        """Replace the file with `text` (a temporary file renamed over it), mode 0600, owned
        by the old file's owner when there was one."""
        try:
            previous: os.stat_result | None = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            previous = None
        descriptor, temporary = tempfile.mkstemp(prefix=".config.json.", dir=self.path.parent)
        try:
            os.fchmod(descriptor, 0o600)
            if previous is not None and os.geteuid() == 0:
                os.fchown(descriptor, previous.st_uid, previous.st_gid)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
