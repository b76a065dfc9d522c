"""The one place a registry's error answer becomes an error (mirror/registry/errors.py): the
OCI `errors[]` body, the URL without its query, Docker Hub's quota told from a throttle, and
an error body read capped."""

from __future__ import annotations

import httpx
import pytest

from mirror.registry.errors import (
    MAX_ERROR_BYTES,
    QuotaExhaustedError,
    RegistryError,
    registry_error,
)
from tests.mock_registry import Pulled, Registry, answer

QUOTA_BODY = (
    b'{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}'
)


def test_error_is_built_from_the_errors_body_without_the_query() -> None:
    error = registry_error(
        answer(
            404,
            "https://r.example/v2/a/blobs/uploads/x?_state=SECRET&digest=d",
            b'{"errors":[{"code":"NAME_UNKNOWN","message":"no such repo"}]}',
        )
    )
    assert (error.status, error.code, error.message) == (404, "NAME_UNKNOWN", "no such repo")
    assert "SECRET" not in str(error) and error.url == "https://r.example/v2/a/blobs/uploads/x"
    assert (
        str(error) == "GET https://r.example/v2/a/blobs/uploads/x: 404 NAME_UNKNOWN: no such repo"
    )
    assert not error.retryable


def test_quota_429_is_told_from_a_throttle() -> None:
    url = "https://hub/v2/library/python/manifests/3"
    assert isinstance(
        registry_error(answer(429, url, QUOTA_BODY), counts_pulls=True), QuotaExhaustedError
    )
    throttle = registry_error(answer(429, url, QUOTA_BODY), counts_pulls=False)  # ECR: a throttle
    assert type(throttle) is RegistryError and throttle.retryable
    bare = registry_error(answer(429, url, headers={"Retry-After": "3"}), counts_pulls=True)
    assert type(bare) is RegistryError and bare.retryable and bare.retry_after == 3.0


def test_error_without_a_json_body_still_reads() -> None:
    error = registry_error(answer(502, "https://r/v2/", b"<html>bad gateway</html>"))
    assert error.status == 502 and error.retryable and "<html>" not in str(error)


def test_an_error_body_is_read_up_to_64_kib() -> None:
    registry = Registry()
    pulled = Pulled()
    registry.routes["/v2/x/manifests/1"] = lambda request: httpx.Response(
        500, content=pulled.endless()
    )
    with pytest.raises(RegistryError) as caught:
        registry.client.get_manifest("x", "1")
    assert caught.value.status == 500
    assert pulled.bytes <= MAX_ERROR_BYTES + 65536
