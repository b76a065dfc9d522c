"""The two ends of a sync, and Docker Hub's quota as a HEAD states it.

One pooled HTTP client serves both registries; `Registries` names them as the report shows
references (`docker.io/library/python:3.12`, `<account>.dkr.ecr.<region>.amazonaws.com/...`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from mirror.config import Config, MirroredImage
from mirror.errors import MirrorError
from mirror.registry.auth import CredentialsProvider
from mirror.registry.client import RateLimit, RegistryClient, new_http_client

QUOTA_CHECK_REPOSITORY = "ratelimitpreview/test"


@dataclass
class Registries:
    """The two ends of a sync, sharing one HTTP connection pool."""

    source: RegistryClient
    target: RegistryClient
    http: httpx.Client
    source_name: str  # how references are shown, e.g. docker.io
    target_name: str  # e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com

    def close(self) -> None:
        self.http.close()


@contextmanager
def open_registries(
    config: Config,
    source_credentials: CredentialsProvider,
    target_credentials: CredentialsProvider,
    target_url: str,
    connections: int,
) -> Iterator[Registries]:
    http = new_http_client(connections=connections)
    try:
        source = RegistryClient(config.source.url, source_credentials, http, counts_pulls=True)
        target = RegistryClient(target_url, target_credentials, http)
        source_name = config.source.name
        yield Registries(source, target, http, source_name, target.host)
    finally:
        http.close()


def references(
    registries: Registries, image: MirroredImage, tag: str, *, pinned: str | None = None
) -> tuple[str, str]:
    """The source and ECR references of `tag` (a digest is written `@sha256:...`); `pinned`:
    the digest the source reference names instead of the tag."""
    at = "@" if tag.startswith("sha256:") else ":"
    source = f"@{pinned}" if pinned else f"{at}{tag}"
    return (
        f"{registries.source_name}/{image.repository}{source}",
        f"{registries.target_name}/{image.target_repository}{at}{tag}",
    )


def quota(source: RegistryClient) -> RateLimit | None:
    """Docker Hub's quota for these credentials, read from a HEAD (which spends nothing)."""
    head = source.head_manifest(QUOTA_CHECK_REPOSITORY, "latest")
    if head is None:
        raise MirrorError(
            f"{source.host} has no {QUOTA_CHECK_REPOSITORY}:latest to read the quota from"
        )
    return head.ratelimit
