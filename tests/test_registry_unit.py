"""Pure pieces of the registry code: errors, the retry predicate, challenges, ECR renewal."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from mirror.copy import NoProgress, verified_stream
from mirror.ecr import EcrCredentials
from mirror.manifests import Descriptor
from mirror.registry.auth import parse_challenge
from mirror.registry.errors import (
    BlobIntegrityError,
    QuotaExhaustedError,
    RegistryError,
    StaleCredentialsError,
    registry_error,
)
from mirror.registry.retry import RetryPolicy, is_transient

QUOTA_BODY = (
    b'{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}'
)


def answer(
    status: int, url: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(status, content=body, headers=headers, request=httpx.Request("GET", url))


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


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (httpx.ConnectError("refused"), True),
        (httpx.RemoteProtocolError("peer closed"), True),
        (httpx.ReadTimeout("slow"), True),
        (RegistryError(503, "UNAVAILABLE", "", "GET", "u"), True),
        (RegistryError(408, "TIMEOUT", "", "GET", "u"), True),
        (RegistryError(429, "TOOMANYREQUESTS", "Rate exceeded", "PUT", "u"), True),
        (QuotaExhaustedError(429, "TOOMANYREQUESTS", "", "GET", "u"), False),
        (RegistryError(401, "UNAUTHORIZED", "", "GET", "u"), False),
        (StaleCredentialsError(401, "UNAUTHORIZED", "", "PUT", "u"), True),
        (RegistryError(404, "MANIFEST_UNKNOWN", "", "GET", "u"), False),
        (BlobIntegrityError("short", short=True), True),
        (BlobIntegrityError("other bytes", short=False), False),
        (ValueError("a bug"), False),
    ],
)
def test_retry_predicate(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_retry_policy_is_bounded_and_counts() -> None:
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.002)
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise httpx.ConnectError("refused")
        return "ok"

    assert policy.call(flaky) == "ok" and policy.retries == 2

    def always() -> None:
        calls.append(1)
        raise RegistryError(500, "ERR", "", "GET", "u")

    calls.clear()
    with pytest.raises(RegistryError):
        policy.call(always)
    assert len(calls) == 3

    def quota_spent() -> None:
        calls.append(1)
        raise QuotaExhaustedError(429, "TOOMANYREQUESTS", "", "GET", "u")

    calls.clear()
    with pytest.raises(QuotaExhaustedError):
        policy.call(quota_spent)
    assert len(calls) == 1


def test_challenge_parsing() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/python:pull"'
    )
    assert challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/python:pull",
    }
    assert parse_challenge('Basic realm="https://x.dkr.ecr"').scheme == "basic"


class FakeEcr:
    def __init__(self, expires: datetime) -> None:
        self.expires = expires
        self.calls = 0

    def get_authorization_token(self) -> dict[str, Any]:
        self.calls += 1
        token = base64.b64encode(f"AWS:pw-{self.calls}".encode()).decode()
        return {
            "authorizationData": [
                {
                    "authorizationToken": token,
                    "expiresAt": self.expires,
                    "proxyEndpoint": "https://1.dkr.ecr.eu-west-1.amazonaws.com",
                }
            ]
        }


def test_ecr_credentials_renew_before_expiry() -> None:
    now = [1_000_000.0]
    fake = FakeEcr(datetime.fromtimestamp(now[0] + 12 * 3600, UTC))
    creds = EcrCredentials("eu-west-1", clock=lambda: now[0], ecr_client=fake)
    assert creds.get().password == "pw-1"
    assert creds.endpoint == "https://1.dkr.ecr.eu-west-1.amazonaws.com"
    now[0] += 11 * 3600  # 1 h left: still more than the 30 min margin
    assert creds.get().password == "pw-1"
    now[0] += 40 * 60  # 20 min left: renew
    fake.expires = datetime.fromtimestamp(now[0] + 12 * 3600, UTC)
    assert creds.get().password == "pw-2"
    assert "pw-" not in repr(creds) and "pw-" not in repr(creds.get())


def test_a_token_that_reads_expired_does_not_cause_a_renewal_storm() -> None:
    now = [2_000_000_000.0]
    fake = FakeEcr(datetime(2015, 1, 1, tzinfo=UTC))  # what moto answers
    creds = EcrCredentials("us-east-1", clock=lambda: now[0], ecr_client=fake)
    for _ in range(100):
        creds.get()
        creds.renew()
    assert fake.calls == 1
    now[0] += 61
    creds.get()
    creds.renew()
    assert fake.calls == 2


def test_retry_after_is_honoured_and_capped() -> None:
    slept: list[float] = []
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.002, sleep=slept.append)
    answers = iter([7.0, 3600.0])

    def throttled() -> str:
        wait = next(answers, None)
        if wait is None:
            return "ok"
        raise RegistryError(429, "TOOMANYREQUESTS", "Rate exceeded", "PUT", "u", retry_after=wait)

    assert policy.call(throttled) == "ok"
    assert slept == [7.0, 60.0]  # what the registry asked for, capped at a minute


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
