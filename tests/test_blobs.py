"""A blob's bytes checked as they stream (`verified_stream`, the blob transfer's check): wrong
bytes are refused before the last chunk reaches the upload."""

from __future__ import annotations

import hashlib

import pytest

from mirror.blobs import verified_stream
from mirror.engine import NoProgress
from mirror.manifests import Descriptor
from mirror.registry.errors import (
    BlobIntegrityError,
)


def _blob(data: bytes) -> Descriptor:
    return Descriptor(
        "application/octet-stream", "sha256:" + hashlib.sha256(data).hexdigest(), len(data)
    )


@pytest.mark.parametrize(
    ("arrived", "short"),
    [
        (b"aaaa" + b"bbbb" + b"cccX", False),
        (b"aaaa" + b"bbbb", True),
        (b"aaaa" + b"bbbb" + b"ccccd", False),
    ],
    ids=["other-bytes", "cut-short", "too-long"],
)
def test_a_wrong_blob_is_refused_before_its_last_chunk_is_sent(arrived: bytes, short: bool) -> None:
    expected = _blob(b"aaaabbbbcccc")
    chunks = [arrived[i : i + 4] for i in range(0, len(arrived), 4)]
    sent: list[bytes] = []
    with pytest.raises(BlobIntegrityError) as caught:
        for chunk in verified_stream(iter(chunks), expected, "x:1", NoProgress()):
            sent.append(chunk)
    assert caught.value.short is short
    assert b"".join(sent) != arrived  # the upload never received the whole body
    assert len(sent) == len(chunks) - 1


def test_a_right_blob_passes_whole() -> None:
    data = b"aaaabbbbcccc"
    assert (
        b"".join(verified_stream(iter([data[:5], data[5:]]), _blob(data), "x:1", NoProgress()))
        == data
    )
