"""How `docker` names the images mirror keeps in ECR: the ECR registry's host, and the entry
and tag that mirror a source reference (`mirror uri`, `mirror login`). Pure: no request."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from mirror.config import Config, MirroredImage
from mirror.errors import ConfigError
from mirror.reference import (
    DEFAULT_TAG,
    DOCKER_HUB,
    ImageRef,
    InvalidReference,
    normalize_registry,
    parse_reference,
)
from mirror.versions import select_tags

__all__ = ["ecr_host", "mirror_uri", "mirrored"]


def ecr_host(config: Config, endpoint: Callable[[], str]) -> str:
    """The ECR registry as `docker` names it: host[:port] of target.registry or the
    proxyEndpoint (`endpoint` is asked only when there is no target.registry)."""
    return urlsplit(config.target_url or endpoint()).netloc


def _source_hosts(config: Config) -> set[str]:
    """The registries a reference may name to be mirrored: Docker Hub and the source."""
    return {DOCKER_HUB, normalize_registry(config.source.host)}


def mirror_uri(config: Config, text: str) -> tuple[MirroredImage, str]:
    """The config entry that mirrors `IMAGE[:TAG]`, and the tag (`latest` when none).

    Refused, with one line naming the image: digests (use --digest), other registries,
    images not in the config (nothing mirrors them), and tags the entry never selects."""
    try:
        ref = parse_reference(text)
    except InvalidReference as exc:
        raise ConfigError(f"{text}: {exc}") from None
    if ref.digest:
        raise ConfigError(f"{text}: give IMAGE[:TAG]; --digest prints the digest reference")
    try:
        return mirrored(config, ref)
    except ConfigError as exc:
        raise ConfigError(f"{text}: {exc}") from None


def mirrored(config: Config, ref: ImageRef) -> tuple[MirroredImage, str]:
    """The config entry that mirrors `ref` and its tag (`latest` when none); else a
    ConfigError saying why not (`mirror uri` and `mirror rewrite` put the image in front)."""
    if ref.registry not in _source_hosts(config):
        raise ConfigError(
            f"not from the source registry ({config.source.written}); nothing mirrors it"
        )
    image = next((i for i in config.images if i.repository == ref.repository), None)
    if image is None:
        raise ConfigError(f"{ref.repository} is not in {config.path}; nothing mirrors it")
    tag = ref.tag or DEFAULT_TAG
    if isinstance(image.tags, tuple):
        if tag not in image.tags:
            raise ConfigError(
                f"tag {tag} is not mirrored for {image.name} (its tags: {', '.join(image.tags)})"
            )
    elif not select_tags([tag], image.tags):
        raise ConfigError(f"tag {tag} does not match the tag selector of {image.name}")
    return image, tag
