"""The one place that turns a registry's answer into an error.

Registries answer errors with an OCI `errors[]` body (`{"errors": [{"code": ..., "message":
...}]}`); `registry_error()` reads it, names the request (method and URL, the query string
dropped because upload URLs and CDN links carry state and signatures), and picks the class:

    RegistryError           any error answer; `.retryable` says whether trying again may help
    ├── QuotaExhaustedError Docker Hub's pull quota is spent: retrying only burns time
    └── StaleCredentialsError  a 401 after which the token was renewed: worth one more try
    UntrustedAnswerError    an answer that breaks the rules (an invalid tag or digest, a body
                            over its cap, a URL that would take credentials elsewhere)

`retryable` covers 408, 429 (a throttle, not Docker Hub's quota), and 5xx. 401/403/404 are
final: they need a fix from the user (credentials, a repository, a tag). An untrusted answer
is never retried: asking again gets the same lie.

Every body is read while streaming, up to a cap (`read_capped`): a registry decides nothing
about how much memory `mirror` uses.
"""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime
from time import time
from urllib.parse import urlsplit, urlunsplit

import httpx

from mirror.errors import MirrorError

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_ERROR_BYTES = 64 * 1024  # an error document is a few hundred bytes


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


class UntrustedAnswerError(MirrorError):
    """A registry's answer that breaks the rules; nothing was done with it."""

    @classmethod
    def about(cls, response: httpx.Response, problem: str) -> UntrustedAnswerError:
        """The error for `problem` in the answer to a request, named by method and URL."""
        request = response.request
        return cls(f"{request.method} {public_url(request.url)}: {problem}")


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


def read_at_most(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of the body as sent (no decoding: no decompression bomb), and
    whether more followed. Reads while streaming and closes the response."""
    try:
        return response.content[:limit], len(response.content) > limit
    except httpx.ResponseNotRead:
        pass
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_raw():
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                return b"".join(chunks)[:limit], True
    finally:
        response.close()
    return b"".join(chunks), False


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit >> 10} KiB"


def read_capped(response: httpx.Response, limit: int, what: str) -> bytes:
    """The whole body of `response`, or UntrustedAnswerError once it passes `limit` bytes."""
    body, more = read_at_most(response, limit)
    if more:
        raise UntrustedAnswerError.about(response, f"{what} larger than {_size(limit)}")
    return body


def discard(response: httpx.Response) -> None:
    """Drop a body nobody reads (read up to MAX_ERROR_BYTES, so that the connection can
    serve the next request) and close the response."""
    read_at_most(response, MAX_ERROR_BYTES)


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
    """Build the error for an error answer. Reads at most MAX_ERROR_BYTES of the body.

    `credentials_renewed`: a 401 after which the token or password was renewed; the request
    (a streamed upload that could not be replayed at once) is worth one more try.
    """
    body, _ = read_at_most(response, MAX_ERROR_BYTES)
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
