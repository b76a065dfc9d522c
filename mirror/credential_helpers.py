"""Docker's credential helpers, as Docker runs them: `docker-credential-<helper> get` (the
server URL on stdin, `{"Username", "Secret"}` on stdout) and `store` (`{"ServerURL",
"Username", "Secret"}` on stdin).

One runner for both: the helper's name is checked (letters, digits, `.`, `_`, `-`; never a
path), and it runs with one timeout and a minimal environment (never the AWS keys or the
Docker Hub token). A helper that is not installed answers nothing to `get` (the caller tries
its next source) and fails a `store`. Its stdin and output hold secrets: no message quotes
them, and errors are raised `from None`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from mirror.errors import CredentialsError
from mirror.registry.auth import Credentials

__all__ = ["HELPER_TIMEOUT", "IDENTITY_TOKEN_REFUSAL", "ask_helper", "store_with_helper"]

HELPER_TIMEOUT = 30.0  # seconds; a helper may wait for a keyring to unlock
# mirror takes a user name and a token, never an identity token: what its refusal says.
IDENTITY_TOKEN_REFUSAL = (
    "which mirror does not support; log in with a user name and access token, or set"
    " DOCKERHUB_USERNAME and DOCKERHUB_TOKEN"
)
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


def _helper_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The few variables of `env` a credential helper gets (see `_HELPER_VARIABLES`)."""
    return {
        name: value
        for name, value in env.items()
        if name in _HELPER_VARIABLES or name.startswith(_HELPER_PREFIXES)
    }


def _run_helper(
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
            env=_helper_environment(env),
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


def ask_helper(
    helper: str, urls: list[str], env: Mapping[str, str], timeout: float
) -> Credentials | None:
    """The first of `urls` the helper knows; None when it knows none or is not installed
    (e.g. a config copied from Docker Desktop: try the next source)."""
    for url in urls:
        done = _run_helper(helper, "get", url, env, timeout, about=url)
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
            f"{program} holds an identity token for {url}, {IDENTITY_TOKEN_REFUSAL}"
        )
    return Credentials(username, secret)


def store_with_helper(
    helper: Any, host: str, credentials: Credentials, env: Mapping[str, str], timeout: float
) -> None:
    """Store a login for `host` with `docker-credential-<helper> store`. `helper` is what the
    docker config names, checked by the runner before anything runs."""
    program = f"docker-credential-{helper}"
    payload = {"ServerURL": host, "Username": credentials.username, "Secret": credentials.password}
    done = _run_helper(helper, "store", json.dumps(payload), env, timeout, about=host)
    if done is None:
        raise CredentialsError(f"{program} (named in the docker config) is not installed")
    if done.returncode != 0:  # its output is not quoted: it may echo what it was given
        raise CredentialsError(f"{program} store {host} failed with exit status {done.returncode}")
