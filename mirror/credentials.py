"""Where the source registry's (Docker Hub's) credentials come from, first found wins.

1. The environment: `DOCKERHUB_USERNAME` and `DOCKERHUB_TOKEN` (both, or neither).
2. The Docker config file, read as Docker reads it (`mirror.docker_config.find_docker_login`:
   its credential helpers, then its `auths` entry).
3. The AWS Secrets Manager secret named by `source.credentials_secret`, a JSON object
   `{"username": ..., "token": ...}`.
4. Otherwise none: anonymous pulls.

1 and 3 are Docker Hub's credentials: they are used only when `config.source.hub_credentials`
says they may go to the source (`mirror.config_schema.sends_docker_hub_credentials`). 2 is
looked up by the source's own host, as Docker does, so it never hands one registry's login
to another.

Inputs are injected (`environ`, `home`) so that the lookup is testable without touching the
machine's files. Secrets never appear in messages, reprs or tracebacks: every error raised
here is one line naming the variable or secret concerned, and is raised `from None` wherever
the lower exception could hold secret data (the secret's JSON text).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mirror import aws
from mirror.config import Config
from mirror.credential_helpers import HELPER_TIMEOUT
from mirror.docker_config import DockerRegistry, find_docker_login
from mirror.errors import CredentialsError
from mirror.registry.auth import Credentials

__all__ = [
    "ENV_TOKEN",
    "ENV_USERNAME",
    "FoundCredentials",
    "find_source_credentials",
]

ENV_USERNAME = "DOCKERHUB_USERNAME"
ENV_TOKEN = "DOCKERHUB_TOKEN"


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
    registry = DockerRegistry(config.source.host, config.source.is_docker_hub)
    display = "Docker Hub" if registry.hub else registry.host

    hub_credentials = config.source.hub_credentials
    credentials = _from_environment(env) if hub_credentials else None
    if credentials is not None:
        return FoundCredentials(credentials, "environment", display)

    found = find_docker_login(registry, env, home, helper_timeout)
    if found is not None:
        credentials, origin = found
        return FoundCredentials(credentials, origin, display)

    if config.credentials_secret and hub_credentials:
        credentials = _from_secret(config.credentials_secret, config.region)
        return FoundCredentials(credentials, f"secret {config.credentials_secret}", display)

    origin = "anonymous"
    if not hub_credentials and (env.get(ENV_USERNAME) or env.get(ENV_TOKEN)):
        origin += f" ({ENV_USERNAME} is for Docker Hub; see source.use_docker_hub_credentials)"
    return FoundCredentials(None, origin, display)


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
