"""Registry authentication (mirror/registry/auth.py): challenges, credentials only to the
registry's own origin over https, token realms, and token answers checked and read capped."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from mirror.errors import CredentialsError
from mirror.registry.auth import (
    check_realm,
    may_authenticate,
    parse_challenge,
)
from mirror.registry.errors import (
    UntrustedAnswerError,
)
from tests.mock_registry import DIGEST, Pulled, Registry


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


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://r.example/v2/x/blobs/uploads/1", True),
        ("https://r.example:443/v2/", True),
        ("https://cdn.example/blob", False),
        ("https://r.example:8443/v2/", False),
        ("https://r.example.evil/v2/", False),
    ],
)
def test_credentials_go_only_to_their_own_origin(url: str, allowed: bool) -> None:
    assert may_authenticate(httpx.URL(url), httpx.URL("https://r.example")) is allowed


@pytest.mark.parametrize("url", ["http://r.example/v2/", "ftp://r.example/x", "file:///etc/x"])
def test_no_request_leaves_https(url: str) -> None:
    with pytest.raises(UntrustedAnswerError, match="refused"):
        may_authenticate(httpx.URL(url), httpx.URL("https://r.example"))


@pytest.mark.parametrize(
    ("realm", "registry", "allowed"),
    [
        ("https://auth.docker.io/token", "https://registry-1.docker.io", True),
        ("https://registry-1.docker.io/token", "https://registry-1.docker.io", False),
        ("https://evil.example/token", "https://registry-1.docker.io", False),
        ("http://auth.docker.io/token", "https://registry-1.docker.io", False),
        ("https://ghcr.io/token", "https://ghcr.io", True),
        ("https://ghcr.io:8443/token", "https://ghcr.io", True),
        ("https://gitlab.com/jwt/auth", "https://registry.gitlab.com", True),
        ("https://other.gitlab.com/jwt/auth", "https://registry.gitlab.com", False),
        ("https://com/token", "https://registry.gitlab.com", False),
        ("http://r.example/token", "https://r.example", False),
        ("http://r.example/token", "http://r.example", False),  # plain http: loopback only
        ("http://127.0.0.1:5001/token", "http://127.0.0.1:5000", True),
        ("http://127.0.0.3:5001/token", "http://127.0.0.1:5000", False),
        ("http://127.0.0.1:5001/token", "https://127.0.0.1:5000", False),
        ("not a url", "https://r.example", False),
        ("", "https://r.example", False),
    ],
)
def test_a_token_realm_gets_credentials_only_at_home_over_https(
    realm: str, registry: str, allowed: bool
) -> None:
    if allowed:
        assert str(check_realm(realm, httpx.URL(registry))) == realm
    else:
        with pytest.raises(UntrustedAnswerError, match="asks for credentials to be sent to"):
            check_realm(realm, httpx.URL(registry))


def test_a_realm_elsewhere_is_never_asked_and_the_challenge_before_stays() -> None:
    registry = Registry(challenge='Bearer realm="https://r.example/token",service="r"')
    registry.routes["/token"] = lambda request: httpx.Response(200, json={"token": "t1"})
    evil = 'Bearer realm="https://evil.example/token",service="r"'
    registry.routes["/v2/lying/manifests/1"] = lambda request: httpx.Response(
        401, headers={"WWW-Authenticate": evil}
    )
    registry.routes["/v2/good/manifests/1"] = lambda request: httpx.Response(
        200, headers={"Docker-Content-Digest": DIGEST}
    )
    with pytest.raises(UntrustedAnswerError, match=r"evil\.example"):
        registry.client.head_manifest("lying", "1")
    head = registry.client.head_manifest("good", "1")
    assert head is not None and head.digest == DIGEST
    assert {r.url.host for r in registry.seen} == {"r.example"}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"token": "a\r\nX-Injected: 1"}, "no usable token"),
        ({"token": 12}, "no usable token"),
        ({"nothing": "here"}, "no usable token"),
        ([1, 2], "no usable token"),
    ],
)
def test_a_token_answer_is_checked(body: Any, problem: str) -> None:
    registry = Registry(challenge='Bearer realm="https://r.example/token",service="r"')
    registry.routes["/token"] = lambda request: httpx.Response(200, json=body)
    with pytest.raises(CredentialsError, match=problem) as caught:
        registry.client.check_access("x")
    assert "X-Injected" not in str(caught.value)


def test_a_token_answer_is_read_capped() -> None:
    registry = Registry(challenge='Bearer realm="https://r.example/token",service="r"')
    pulled = Pulled()
    registry.routes["/token"] = lambda request: httpx.Response(200, content=pulled.endless())
    with pytest.raises(UntrustedAnswerError, match="token answer larger than 1 MiB"):
        registry.client.check_access("x")
    assert pulled.bytes < 2 * 1024 * 1024
