"""What a registry's answers state, checked before anything uses it.

A registry is untrusted: every value the client takes from an answer passes here first and
comes out checked, or as an `UntrustedAnswerError` naming the request.

- `content_length`: one decimal byte count, or nothing.
- `stated_digest`: `Docker-Content-Digest` by the reference grammar (it may end up in a URL).
- `RateLimit.from_headers`: Docker Hub's pull quota headers.
- `named_url`: a URL the answer names (`Location`, `Link`), resolved against its own URL.
- `tags_on_page`: one page of a tag list, read capped, every tag a valid tag.
- `upload_location`: the upload session an answer opened, kept in its repository.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import httpx

from mirror.reference import InvalidReference, validate_digest, validate_tag
from mirror.registry.auth import may_authenticate
from mirror.registry.errors import RegistryError, UntrustedAnswerError, public_url, read_capped

MAX_JSON_BYTES = 4 * 1024 * 1024  # a page of a tag list
_RATELIMIT = re.compile(r"^\s*(\d+)(?:\s*;\s*w=(\d+))?")
_BYTE_COUNT = re.compile(r"[0-9]{1,18}")


def content_length(response: httpx.Response) -> int | None:
    """The Content-Length an answer states, None when it states none. Anything but one
    decimal number is a lie told about the body: UntrustedAnswerError, not a ValueError."""
    stated = response.headers.get("content-length")
    if stated is None:
        return None
    if not _BYTE_COUNT.fullmatch(stated):
        raise UntrustedAnswerError.about(response, "Content-Length is not a byte count")
    return int(stated)


def stated_digest(response: httpx.Response) -> str | None:
    """The `Docker-Content-Digest` of an answer, checked: it may end up in a URL."""
    stated = response.headers.get("docker-content-digest")
    if stated is None:
        return None
    try:
        return validate_digest(stated)
    except InvalidReference:
        raise UntrustedAnswerError.about(response, "states an invalid digest") from None


@dataclass(frozen=True)
class RateLimit:
    """Docker Hub's pull quota as its headers state it; None fields: not stated."""

    limit: int
    remaining: int
    window_seconds: int | None
    source: str | None

    @classmethod
    def from_headers(cls, headers: httpx.Headers) -> RateLimit | None:
        limit = _RATELIMIT.match(headers.get("ratelimit-limit", ""))
        remaining = _RATELIMIT.match(headers.get("ratelimit-remaining", ""))
        if not limit or not remaining:
            return None  # no headers: unlimited (a paid account, or an exempt image)
        window = remaining.group(2) or limit.group(2)
        return cls(
            limit=int(limit.group(1)),
            remaining=int(remaining.group(1)),
            window_seconds=int(window) if window else None,
            source=headers.get("docker-ratelimit-source"),
        )


def named_url(response: httpx.Response, reference: str) -> httpx.URL:
    """A URL an answer names (`Location`, `Link`), resolved against the answer's own URL."""
    try:
        return response.url.join(reference)
    except httpx.InvalidURL:
        raise UntrustedAnswerError.about(response, "names an invalid URL") from None


def tags_on_page(response: httpx.Response, where: str) -> list[str]:
    """The tags one page of a tag list holds; `where` (`host/repository`) names the list.

    Every tag must be a tag by the config's rule: a page holding `..`, `/`, `?` or the like
    is refused whole (such a registry is lying or compromised)."""
    body = read_capped(response, MAX_JSON_BYTES, "tag list page")
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    # `"tags": null` is distribution's answer for a repository without tags
    tags = (document.get("tags") or []) if isinstance(document, dict) else None
    if not isinstance(tags, list):
        raise UntrustedAnswerError.about(response, "the tag list is not a JSON list of tags")
    for tag in tags:
        try:
            validate_tag(tag if isinstance(tag, str) else "")
        except InvalidReference:
            raise UntrustedAnswerError(
                f"{where}: the registry lists an invalid tag"
                f" {tag!r:.80}: refused, a registry that lists it is lying or compromised"
            ) from None
    return tags


def upload_location(
    response: httpx.Response, origin: httpx.URL, uploads: httpx.URL, repository: str
) -> str:
    """The upload session an answer opened: on the registry at `origin`, it must lie under
    `uploads`, the repository's upload path (the bytes go nowhere else); elsewhere, it gets
    no credentials."""
    location = response.headers.get("location")
    if not location:
        raise RegistryError(
            response.status_code,
            "NO_LOCATION",
            "upload answer without Location",
            response.request.method,
            public_url(response.request.url),
        )
    url = named_url(response, location)
    if may_authenticate(url, origin) and not url.path.startswith(uploads.path):
        raise UntrustedAnswerError.about(
            response, f"opened an upload outside {repository}: refused"
        )
    return str(url)
