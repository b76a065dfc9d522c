"""The one place that turns a registry's answer into an error.

Registries answer errors with an OCI `errors[]` body (`{"errors": [{"code": ..., "message":
...}]}`); `registry_error()` reads it, names the request (method and URL, the query string
dropped because upload URLs and CDN links carry state and signatures), and picks the class:

    RegistryError           any error answer; `.retryable` says whether trying again may help
    ├── QuotaExhaustedError Docker Hub's pull quota is spent: retrying only burns time
    └── StaleCredentialsError  a 401 after which the token was renewed: worth one more try

`retryable` covers 408, 429 (a throttle, not Docker Hub's quota), and 5xx. 401/403/404 are
final: they need a fix from the user (credentials, a repository, a tag).
"""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime
from time import time
from urllib.parse import urlsplit, urlunsplit

import httpx

from mirror.errors import MirrorError

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def public_url(url: str | httpx.URL) -> str:
    """The URL without query, fragment or user info: safe to print."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class RegistryError(MirrorError):
    """A registry answered a request with an error."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        method: str,
        url: str,
        *,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.method = method
        self.url = url
        self.retry_after = retry_after
        super().__init__(f"{method} {url}: {status} {code}: {message}".rstrip(": "))

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE_STATUS


class QuotaExhaustedError(RegistryError):
    """Docker Hub's pull quota is spent (429 TOOMANYREQUESTS on a manifest GET)."""

    @property
    def retryable(self) -> bool:
        return False


class StaleCredentialsError(RegistryError):
    """A 401 on a request whose token has since been renewed: one more try may pass."""

    @property
    def retryable(self) -> bool:
        return True


class BlobIntegrityError(MirrorError):
    """A blob's bytes did not match its digest or size; nothing was committed."""

    def __init__(self, message: str, *, short: bool) -> None:
        super().__init__(message)
        self.short = short  # a body cut short is worth another try; wrong bytes are not


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time())
        except (TypeError, ValueError):
            return None


def _first_error(body: bytes) -> tuple[str, str]:
    try:
        document = json.loads(body)
        first = document["errors"][0]
        return str(first.get("code", "")), str(first.get("message", ""))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        text = body[:200].decode("utf-8", "replace").strip()
        return "", text if text and "<" not in text else ""


def registry_error(
    response: httpx.Response, *, counts_pulls: bool = False, credentials_renewed: bool = False
) -> RegistryError:
    """Build the error for an error answer. Reads the body (errors are small).

    `credentials_renewed`: a 401 after which the token or password was renewed; the request
    (a streamed upload that could not be replayed at once) is worth one more try.
    """
    body = response.read()
    code, message = _first_error(body)
    request = response.request
    kind: type[RegistryError] = RegistryError
    is_manifest = "/manifests/" in request.url.path
    if counts_pulls and response.status_code == 429 and code == "TOOMANYREQUESTS" and is_manifest:
        kind = QuotaExhaustedError
    elif credentials_renewed and response.status_code == 401:
        kind = StaleCredentialsError
    if not message:
        message = response.reason_phrase or "error"
    return kind(
        response.status_code,
        code or response.reason_phrase.upper().replace(" ", "_"),
        message,
        request.method,
        public_url(request.url),
        retry_after=_retry_after(response),
    )
