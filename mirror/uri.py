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
    """The config entry that mirrors `IMAGE[:TAG]` or `IMAGE@DIGEST`, and the reference in
    ECR: the tag (`latest` when none), or the digest when the entry pins it.

    Refused, with one line naming the image: digests the entry does not pin (use --digest),
    other registries, images not in the config (nothing mirrors them), and tags the entry
    never selects."""
    try:
        ref = parse_reference(text)
    except InvalidReference as exc:
        raise ConfigError(f"{text}: {exc}") from None
    if ref.digest and ref.tag:
        raise ConfigError(f"{text}: give IMAGE[:TAG] or a pinned IMAGE@DIGEST, not both")
    try:
        return mirrored(config, ref)
    except ConfigError as exc:
        raise ConfigError(f"{text}: {exc}") from None


def mirrored(config: Config, ref: ImageRef) -> tuple[MirroredImage, str]:
    """The config entry that mirrors `ref` and its tag (`latest` when none) or pinned digest;
    else a ConfigError saying why not (`mirror uri` and `mirror rewrite` put the image in
    front)."""
    if ref.registry not in _source_hosts(config):
        raise ConfigError(
            f"not from the source registry ({config.source.written}); nothing mirrors it"
        )
    image = next((i for i in config.images if i.repository == ref.repository), None)
    if image is None:
        raise ConfigError(f"{ref.repository} is not in {config.path}; nothing mirrors it")
    if ref.digest and not ref.tag:  # with a tag, the tag decides (rewrite keeps both)
        if any(pin.digest == ref.digest for pin in image.pins):
            return image, ref.digest
        raise ConfigError(
            f"{image.name} pins no such digest; give IMAGE[:TAG], and --digest prints"
            " the digest reference"
        )
    tag = ref.tag or DEFAULT_TAG
    if any(pin.tag == tag for pin in image.pins):
        return image, tag
    if isinstance(image.tags, tuple):
        if tag not in image.tags:
            raise ConfigError(
                f"tag {tag} is not mirrored for {image.name}"
                f" (its tags: {', '.join([*image.tags, *map(str, image.pins)])})"
            )
    elif not select_tags([tag], image.tags):
        raise ConfigError(f"tag {tag} does not match the tag selector of {image.name}")
    return image, tag
