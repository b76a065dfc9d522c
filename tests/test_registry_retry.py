"""The retry policy (mirror/registry/retry.py): what is transient, bounded attempts, and a
`Retry-After` honoured but capped."""

from __future__ import annotations

import httpx
import pytest

from mirror.registry.errors import (
    BlobIntegrityError,
    QuotaExhaustedError,
    RegistryError,
    StaleCredentialsError,
)
from mirror.registry.retry import RetryPolicy, is_transient


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
