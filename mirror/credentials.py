"""Where the source registry's (Docker Hub's) credentials come from, first found wins.

1. The environment: `DOCKERHUB_USERNAME` and `DOCKERHUB_TOKEN` (both, or neither).
2. The Docker config file (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`), read
   in Docker's order: `credHelpers[<host>]`, then `credsStore` (both run
   `docker-credential-<helper> get`), then the plain `auths[<key>]` entry.
3. The AWS Secrets Manager secret named by `source.credentials_secret`, a JSON object
   `{"username": ..., "token": ...}`.
4. Otherwise none: anonymous pulls.

1 and 3 are Docker Hub's credentials: they are used only when `config.docker_hub_credentials`
says they may go to the source (see `mirror.config.sends_docker_hub_credentials`). 2 is looked
up by the source's own host, as Docker does, so it never hands one registry's login to another.

Inputs are injected (`environ`, `home`) so that the lookup is testable without touching the
machine's files. Secrets never appear in messages, reprs or tracebacks: every error raised
here is one line naming the variable, file, helper or secret concerned, and is raised
`from None` wherever the lower exception could hold secret data (a JSON document, a helper's
output, decoded bytes).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mirror import aws
from mirror.config import Config
from mirror.errors import CredentialsError
from mirror.reference import DOCKER_HUB_ALIASES
from mirror.registry.auth import Credentials

__all__ = [
    "ENV_TOKEN",
    "ENV_USERNAME",
    "HUB_SERVER_URL",
    "FoundCredentials",
    "docker_config_path",
    "find_source_credentials",
    "helper_environment",
    "run_helper",
]

ENV_USERNAME = "DOCKERHUB_USERNAME"
ENV_TOKEN = "DOCKERHUB_TOKEN"
HUB_SERVER_URL = "https://index.docker.io/v1/"  # the key Docker stores Docker Hub's login under
HELPER_TIMEOUT = 30.0  # seconds; a helper may wait for a keyring to unlock
_NOT_FOUND = "credentials not found in native keychain"
_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # desktop, ecr-login, desktop.exe
# What a credential helper may need from the environment (its PATH, its keyring or password
# store, a locale); nothing else: never the AWS keys or the Docker Hub token.
_HELPER_VARIABLES = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "LANG", "TMPDIR", "DOCKER_CONFIG", "DISPLAY"}
    | {"WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "GNUPGHOME", "GPG_TTY", "PASSWORD_STORE_DIR"}
)
_HELPER_PREFIXES = ("XDG_", "LC_")
_IDENTITY_TOKEN_USER = "<token>"  # a helper's Username when its Secret is an identity token


@dataclass(frozen=True)
class FoundCredentials:
    """The credentials to use (None: anonymous) and where they were found.

    The password lives in `Credentials`, whose repr leaves it out, so neither `repr()` nor
    `str()` of this object shows it.
    """

    credentials: Credentials | None
    origin: str  # "environment", "docker config (credsStore: pass)", "secret x/y", "anonymous"
    registry: str = "Docker Hub"  # for messages: "Docker Hub", or the source's host[:port]

    def describe(self) -> str:
        """One log line: `Docker Hub credentials: environment (user alice)`."""
        if self.credentials is None:
            return f"{self.registry} credentials: {self.origin}"
        return f"{self.registry} credentials: {self.origin} (user {self.credentials.username})"


@dataclass(frozen=True)
class _Registry:
    """The source registry as the Docker config file names it."""

    host: str  # host[:port], lowercased; a Docker Hub alias for Docker Hub
    hub: bool

    @classmethod
    def of(cls, config: Config) -> _Registry:
        return cls(_host_of(config.source_url), config.source_is_docker_hub)

    @property
    def display(self) -> str:
        return "Docker Hub" if self.hub else self.host

    @property
    def server_url(self) -> str:
        """What `docker login` stores the registry's entry under."""
        return HUB_SERVER_URL if self.hub else self.host

    def matches(self, key: str) -> bool:
        """Is a `credHelpers` / `auths` key (host, host:port or URL) this registry's?"""
        host = _host_of(key)
        if self.hub:
            return host in DOCKER_HUB_ALIASES
        return host == self.host


def _host_of(key: str) -> str:
    """`https://index.docker.io/v1/` -> `index.docker.io`; `quay.io/x` -> `quay.io`."""
    key = key.strip()
    if "://" in key:
        return urlsplit(key).netloc.lower()
    return key.partition("/")[0].lower()


def find_source_credentials(
    config: Config,
    *,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
    helper_timeout: float = HELPER_TIMEOUT,
) -> FoundCredentials:
    """Find the source registry's credentials (see the module docstring for the order).

    `environ` (default `os.environ`) gives the `DOCKERHUB_*` variables, `DOCKER_CONFIG`,
    and the PATH and environment credential helpers run with; `home` (default: `HOME` from
    `environ`, else the user's home) holds `.docker/config.json`. The Secrets Manager client
    follows the AWS SDK's own configuration. Raises `CredentialsError` when a source is
    present but unusable (half of the variables, a malformed entry, a failing helper, an
    unreadable secret).
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    registry = _Registry.of(config)

    hub_credentials = config.docker_hub_credentials
    credentials = _from_environment(env) if hub_credentials else None
    if credentials is not None:
        return FoundCredentials(credentials, "environment", registry.display)

    path = docker_config_path(env, home)
    found = _from_docker_config(path, registry, env, helper_timeout)
    if found is not None:
        credentials, origin = found
        return FoundCredentials(credentials, origin, registry.display)

    if config.credentials_secret and hub_credentials:
        credentials = _from_secret(config.credentials_secret, config.region)
        return FoundCredentials(
            credentials, f"secret {config.credentials_secret}", registry.display
        )

    origin = "anonymous"
    if not hub_credentials and (env.get(ENV_USERNAME) or env.get(ENV_TOKEN)):
        origin += f" ({ENV_USERNAME} is for Docker Hub; see source.use_docker_hub_credentials)"
    return FoundCredentials(None, origin, registry.display)


# --- 1. the environment -----------------------------------------------------------------


def _from_environment(env: Mapping[str, str]) -> Credentials | None:
    """Both variables set (and not empty): credentials; neither: None; one: an error."""
    username = env.get(ENV_USERNAME, "")
    token = env.get(ENV_TOKEN, "")
    if username and token:
        return Credentials(username, token)
    if username:
        raise CredentialsError(f"{ENV_USERNAME} is set but {ENV_TOKEN} is not; set both or neither")
    if token:
        raise CredentialsError(f"{ENV_TOKEN} is set but {ENV_USERNAME} is not; set both or neither")
    return None


# --- 2. the Docker config file ------------------------------------------------------------


def docker_config_path(environ: Mapping[str, str], home: Path | None = None) -> Path:
    """`$DOCKER_CONFIG/config.json`, else `<home>/.docker/config.json`, as Docker finds it."""
    directory = environ.get("DOCKER_CONFIG", "")
    if directory:
        return Path(directory) / "config.json"
    if home is None:
        home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    return home / ".docker" / "config.json"


def _from_docker_config(
    path: Path, registry: _Registry, env: Mapping[str, str], timeout: float
) -> tuple[Credentials, str] | None:
    document = _read_docker_config(path)
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
        credentials = _ask_helper(helper, urls, env, timeout)
        if credentials is not None:
            return credentials, f"docker config (credHelpers: {helper})"

    store = document.get("credsStore")
    if store:
        if not isinstance(store, str):
            raise CredentialsError(f"{path}: credsStore is not a string")
        credentials = _ask_helper(store, urls, env, timeout)
        if credentials is not None:
            return credentials, f"docker config (credsStore: {store})"

    for key in keys:
        credentials = _auths_entry(auths[key], key, path)
        if credentials is not None:
            return credentials, "docker config (auths)"
    return None


def _read_docker_config(path: Path) -> dict[str, Any] | None:
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
        raise CredentialsError(
            f"{where} holds an identity token, which mirror does not support; log in with a"
            f" user name and access token, or set {ENV_USERNAME} and {ENV_TOKEN}"
        )
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


def helper_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The few variables of `env` a credential helper gets (see `_HELPER_VARIABLES`)."""
    return {
        name: value
        for name, value in env.items()
        if name in _HELPER_VARIABLES or name.startswith(_HELPER_PREFIXES)
    }


def run_helper(
    helper: str, action: str, stdin: str, env: Mapping[str, str], timeout: float, *, about: str
) -> subprocess.CompletedProcess[bytes] | None:
    """Run `docker-credential-<helper> <action>` (`get`, `store`) with `stdin`, in the
    helper's environment; None when the helper is not installed. `about` (a URL or host)
    names the call in messages. Its stdin and output hold secrets: no message quotes them."""
    if not isinstance(helper, str) or not _HELPER_NAME.fullmatch(helper):
        raise CredentialsError(f"{helper!r} is not a credential helper name")
    program = f"docker-credential-{helper}"
    executable = shutil.which(program, path=env.get("PATH", os.defpath))
    if executable is None:
        return None
    try:
        return subprocess.run(
            [executable, action],
            input=stdin.encode(),
            capture_output=True,
            timeout=timeout,
            env=helper_environment(env),
            check=False,
        )
    except FileNotFoundError:
        return None
    except subprocess.TimeoutExpired:  # it carries the output read so far
        raise CredentialsError(
            f"{program} {action} {about}: no answer after {timeout:g}s"
        ) from None
    except OSError as exc:
        raise CredentialsError(
            f"{program} {action} {about}: cannot run it: {exc.strerror}"
        ) from None


def _ask_helper(
    helper: str, urls: list[str], env: Mapping[str, str], timeout: float
) -> Credentials | None:
    """The first of `urls` the helper knows; None when it knows none or is not installed
    (e.g. a config copied from Docker Desktop: try the next source)."""
    for url in urls:
        done = run_helper(helper, "get", url, env, timeout, about=url)
        if done is None:
            return None
        credentials = _helper_answer(f"docker-credential-{helper}", url, done)
        if credentials is not None:
            return credentials
    return None


def _helper_answer(
    program: str, url: str, done: subprocess.CompletedProcess[bytes]
) -> Credentials | None:
    """What `<program> get` answered for `url`. Its output is a secret: no message quotes it."""
    if done.returncode != 0:
        said = (done.stdout + done.stderr).decode("utf-8", "replace")
        if _NOT_FOUND in said:
            return None
        raise CredentialsError(f"{program} get {url} failed with exit status {done.returncode}")
    try:
        reply = json.loads(done.stdout)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CredentialsError(f"{program} get {url} did not answer with JSON") from None
    if not isinstance(reply, dict):
        raise CredentialsError(f"{program} get {url} did not answer with a JSON object")
    username, secret = reply.get("Username"), reply.get("Secret")
    if not isinstance(username, str) or not isinstance(secret, str):
        raise CredentialsError(f"{program} get {url} answered without Username and Secret")
    if not username or not secret:
        return None
    if username == _IDENTITY_TOKEN_USER:
        raise CredentialsError(
            f"{program} holds an identity token for {url}, which mirror does not support; log"
            f" in with a user name and access token, or set {ENV_USERNAME} and {ENV_TOKEN}"
        )
    return Credentials(username, secret)


# --- 3. AWS Secrets Manager ---------------------------------------------------------------


def _from_secret(name: str, region: str | None) -> Credentials:
    """The secret's SecretString, `{"username": ..., "token": ...}`; any problem is an error."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = aws.client("secretsmanager", region)
    try:
        answer = client.get_secret_value(SecretId=name)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        if code == "ResourceNotFoundException":
            raise CredentialsError(
                f"secret {name!r} (source.credentials_secret) does not exist in"
                f" {client.meta.region_name}"
            ) from None
        message = " ".join(str(error.get("Message", "")).split())
        raise CredentialsError(
            f"cannot read secret {name!r}: {code or 'error'}: {message}"
        ) from None
    except BotoCoreError as exc:
        raise CredentialsError(f"cannot read secret {name!r}: {exc}") from None

    text = answer.get("SecretString")
    if not isinstance(text, str):
        raise CredentialsError(
            f"secret {name!r} has no SecretString; store JSON"
            ' {"username": ..., "token": ...} as text'
        )
    try:
        value = json.loads(text)
    except json.JSONDecodeError:  # exc.doc is the secret itself
        raise CredentialsError(
            f'secret {name!r} is not JSON; expected {{"username": ..., "token": ...}}'
        ) from None
    if not isinstance(value, dict):
        raise CredentialsError(
            f'secret {name!r} is not a JSON object; expected {{"username": ..., "token": ...}}'
        )
    missing = [
        key
        for key in ("username", "token")
        if not isinstance(value.get(key), str) or not value[key]
    ]
    if missing:
        raise CredentialsError(
            f"secret {name!r} has no {' and no '.join(repr(key) for key in missing)}"
            ' (a non-empty string); expected {"username": ..., "token": ...}'
        )
    return Credentials(value["username"], value["token"])
