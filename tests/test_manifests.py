"""Manifests as a registry gives them (mirror/manifests.py): a descriptor with a bad digest or
size, or a manifest of odd shapes, is a ManifestError, not a crash."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mirror.manifests import OCI_INDEX, OCI_MANIFEST, Manifest, ManifestError

DIGEST = "sha256:" + "a" * 64


def _manifest(document: Any) -> Manifest:
    return Manifest.from_bytes(json.dumps(document).encode(), None)


@pytest.mark.parametrize(
    "layer",
    [
        {"digest": "sha256:../../x", "size": 1},
        {"digest": DIGEST + "/../", "size": 1},
        {"digest": 5, "size": 1},
        {"size": 1},
        {"digest": DIGEST, "size": -1},
        {"digest": DIGEST, "size": "12"},
        "layer",
    ],
)
def test_a_descriptor_with_a_bad_digest_or_size_is_refused(layer: Any) -> None:
    manifest = _manifest(
        {"mediaType": OCI_MANIFEST, "config": {"digest": DIGEST, "size": 2}, "layers": [layer]}
    )
    with pytest.raises(ManifestError, match="descriptor"):
        manifest.blobs()


def test_a_manifest_of_odd_shapes_is_a_manifest_error_not_a_crash() -> None:
    index = _manifest({"mediaType": OCI_INDEX, "manifests": 7, "annotations": ["a"]})
    with pytest.raises(ManifestError):
        index.children()
    assert index.annotation("x") is None
