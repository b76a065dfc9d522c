"""Configs and names the stack tests share."""

from __future__ import annotations

from typing import Any

import yaml

from mirror.config import Config, parse_config

STACK = "ecr-mirror"
PYTHON, NODE, ALPINE = (
    "dockerhub/library/python",
    "dockerhub/library/node",
    "dockerhub/library/alpine",
)


def make_config(images: list[str], path: str = "images.yaml", **stack: Any) -> Config:
    document = {
        "version": 1,
        "target": {"prefix": "dockerhub"},
        "stack": {"name": STACK, **stack},
        "images": [{"image": image, "tags": ["latest"]} for image in images],
    }
    return parse_config(yaml.safe_dump(document), path)
