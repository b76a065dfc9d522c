"""The project's error types, drawn once.

    MirrorError                 anything `mirror` reports to a user (exit code 1)
    ├── ConfigError             bad input: config file, CLI arguments (exit code 2)
    ├── RegistryError           a registry answered with an error (see mirror.registry.errors)
    │   ├── QuotaExhaustedError Docker Hub's pull quota is spent (TOOMANYREQUESTS)
    │   └── StaleCredentialsError  a 401 after the token was renewed: one more try
    ├── UntrustedAnswerError    a registry's answer broke a rule (mirror.registry.errors)
    ├── BlobIntegrityError      a blob's bytes did not match its digest or size
    ├── CredentialsError        credentials could not be found or read
    ├── UnreachableError        a registry could not be reached (connection, TLS, timeout)
    ├── StackError              CloudFormation refused or failed
    ├── EngineError             the Docker engine reported a failure
    ├── ManifestError           a manifest that cannot be read or is not what it claims
    ├── DeferredError           the pull budget cannot pay for a copy now (mirror.budget)
    ├── CopyError               a copy that cannot succeed as configured (mirror.engine)
    └── CopyFailed              a copy that did not finish: its cause and what it spent

`InvalidReference` (mirror.reference) stays a `ValueError`: pydantic reports a validator's
ValueError as that field's problem, which is how a bad image name in the config becomes one
line naming the field.

Messages are one line, name the file, field or image concerned, and never carry secrets.
"""

from __future__ import annotations

import sys


class MirrorError(Exception):
    """An error `mirror` reports to its user as one line, with an exit code."""

    exit_code = 1


class ConfigError(MirrorError):
    """Bad input: the config file or a command-line argument."""

    exit_code = 2


class CredentialsError(MirrorError):
    """Credentials were named but could not be obtained."""


class UnreachableError(MirrorError):
    """A registry could not be reached: refused, reset, timed out, or a TLS failure."""


def unreachable(exc: BaseException) -> UnreachableError | None:
    """A failure to connect or to hear back (after its retries) as one line naming the host;
    None for anything else (a malformed request is a bug, and stays one).

    httpx is looked up, not imported: `mirror uri` must not pay for importing it, and an
    httpx exception cannot exist before httpx was imported."""
    httpx = sys.modules.get("httpx")
    if httpx is None or not isinstance(
        exc, httpx.NetworkError | httpx.TimeoutException | httpx.ProxyError
    ):
        return None
    try:
        host = exc.request.url.netloc.decode("ascii", "replace")
    except RuntimeError:  # no request attached
        return UnreachableError(f"cannot reach the registry: {exc or type(exc).__name__}")
    return UnreachableError(f"cannot reach {host}: {exc or type(exc).__name__}")


class StackError(MirrorError):
    """CloudFormation refused or failed to bring the stack to the wanted state."""


class EngineError(MirrorError):
    """The Docker engine reported a failure (pull, tag or push).

    `transient`: another attempt may cure it (the engine unreachable, a 5xx, a throttle).
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
