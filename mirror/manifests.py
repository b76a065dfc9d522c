"""Manifests: media types, what a manifest refers to, and the platform filter.

Pure functions over the raw bytes a registry gave. The bytes are never re-serialised when an
image is copied whole: the digest is the sha256 of exactly those bytes. Only the platform
filter writes a new index (its digest differs from the source's by necessity), and it records
the source index digest in an annotation so that a later sync can tell "up to date" without
spending a Docker Hub pull.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from mirror.errors import MirrorError
from mirror.reference import InvalidReference, Platform, validate_digest

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
IMAGE_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

SOURCE_DIGEST_ANNOTATION = "io.mirror.source.digest"
SOURCE_PLATFORMS_ANNOTATION = "io.mirror.source.platforms"
ATTESTATION_TYPE = "attestation-manifest"
REFERENCE_TYPE = "vnd.docker.reference.type"
REFERENCE_DIGEST = "vnd.docker.reference.digest"


class ManifestError(MirrorError):
    """A manifest that cannot be read or does not describe what it claims."""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: tuple[tuple[str, str], ...] = ()

    @property
    def is_attestation(self) -> bool:
        return dict(self.annotations).get(REFERENCE_TYPE) == ATTESTATION_TYPE

    @property
    def attests(self) -> str | None:
        return dict(self.annotations).get(REFERENCE_DIGEST)


@dataclass(frozen=True)
class Manifest:
    """A manifest as received: raw bytes, their media type and digest."""

    raw: bytes
    media_type: str
    digest: str

    @classmethod
    def from_bytes(cls, raw: bytes, media_type: str | None) -> Manifest:
        document = _load(raw)
        kind = media_type or document.get("mediaType")
        if not kind:
            raise ManifestError("manifest has no media type")
        kind = kind.split(";")[0].strip()
        if kind not in INDEX_TYPES | IMAGE_TYPES:
            raise ManifestError(f"unsupported manifest type {kind}")
        return cls(raw, kind, sha256_digest(raw))

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def children(self) -> list[Descriptor]:
        """An index's manifests (platform images and attestations)."""
        if not self.is_index:
            return []
        return [_descriptor(item) for item in _items(_load(self.raw).get("manifests"))]

    def blobs(self) -> list[Descriptor]:
        """An image manifest's config and layers: what must be in the target before it."""
        if self.is_index:
            return []
        document = _load(self.raw)
        if "config" not in document:
            raise ManifestError("image manifest has no config")
        items = [document["config"], *_items(document.get("layers"))]
        return [_descriptor(item) for item in items]

    def annotation(self, key: str) -> str | None:
        annotations = _load(self.raw).get("annotations")
        value = annotations.get(key) if isinstance(annotations, dict) else None
        return str(value) if value is not None else None


def _load(raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise ManifestError(f"manifest is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ManifestError("manifest is not a JSON object")
    return document


def _items(value: Any) -> list[Any]:
    """A list of descriptors (`manifests`, `layers`); absent is empty, anything else wrong."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ManifestError("manifest lists its descriptors in something that is not a list")
    return value


def _descriptor(item: Any) -> Descriptor:
    """One descriptor, checked: its digest goes into URL paths, its size into a header."""
    try:
        digest = validate_digest(item["digest"] if isinstance(item["digest"], str) else "")
    except (KeyError, TypeError, InvalidReference):
        raise ManifestError(
            f"descriptor without a valid digest in manifest: {item!r:.200}"
        ) from None
    size = item.get("size", 0)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"descriptor {digest} has no valid size")
    try:
        platform = item.get("platform")
        annotations = item.get("annotations") or {}
        return Descriptor(
            media_type=str(item.get("mediaType", "")),
            digest=digest,
            size=size,
            platform=Platform(
                str(platform.get("os", "")),
                str(platform.get("architecture", "")),
                str(platform["variant"]) if platform.get("variant") else None,
            )
            if isinstance(platform, dict)
            else None,
            annotations=tuple(sorted((str(k), str(v)) for k, v in annotations.items())),
        )
    except (TypeError, AttributeError):
        raise ManifestError(f"malformed descriptor in manifest: {item!r:.200}") from None


def chosen_children(index: Manifest, platforms: tuple[Platform, ...] | None) -> list[Descriptor]:
    """The children to copy: all, or the chosen platforms and the attestations of those."""
    children = index.children()
    if platforms is None:
        return children
    images = [
        c
        for c in children
        if not c.is_attestation and c.platform and any(p.matches(c.platform) for p in platforms)
    ]
    kept = {c.digest for c in images}
    return [c for c in children if c.digest in kept or (c.is_attestation and c.attests in kept)]


def filtered_index(
    index: Manifest, children: list[Descriptor], platforms: tuple[Platform, ...]
) -> Manifest:
    """A new index holding only `children`, annotated with the source index digest.

    A filtered Docker manifest list is written as an OCI index: the Docker list has no
    annotations field, and an OCI index may refer to Docker manifests.
    """
    document = _load(index.raw)
    kept = {c.digest for c in children}
    manifests = [m for m in document.get("manifests") or [] if m.get("digest") in kept]
    given = document.get("annotations")
    annotations = dict(given) if isinstance(given, dict) else {}
    annotations[SOURCE_DIGEST_ANNOTATION] = index.digest
    annotations[SOURCE_PLATFORMS_ANNOTATION] = ",".join(sorted(str(p) for p in platforms))
    out = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
        "annotations": annotations,
    }
    raw = json.dumps(out, indent=3, sort_keys=False).encode()
    return Manifest(raw, OCI_INDEX, sha256_digest(raw))


def platforms_label(platforms: tuple[Platform, ...]) -> str:
    """How a filter is recorded in SOURCE_PLATFORMS_ANNOTATION, for comparison later."""
    return ",".join(sorted(str(p) for p in platforms))
