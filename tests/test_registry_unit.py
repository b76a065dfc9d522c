"""Pure pieces of the registry code: errors, the retry predicate, challenges, ECR renewal,
and the registry client against a lying registry on httpx's MockTransport (what it sends
where, what it reads, what it refuses)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from mirror.blobs import verified_stream
from mirror.ecr import EcrCredentials
from mirror.engine import NoProgress
from mirror.errors import CredentialsError
from mirror.manifests import OCI_INDEX, OCI_MANIFEST, Descriptor, Manifest, ManifestError
from mirror.reference import InvalidReference, validate_digest, validate_tag
from mirror.registry.auth import (
    Credentials,
    StaticCredentials,
    check_realm,
    may_authenticate,
    parse_challenge,
)
from mirror.registry.client import RegistryClient, content_length
from mirror.registry.errors import (
    MAX_ERROR_BYTES,
    BlobIntegrityError,
    QuotaExhaustedError,
    RegistryError,
    StaleCredentialsError,
    UntrustedAnswerError,
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


# --- what a registry says is checked where it enters (issue 10) ------------------------------


class Registry:
    """A registry on httpx's MockTransport: `routes` maps a path to a handler; every request
    is recorded with its headers."""

    def __init__(self, base: str = "https://r.example", *, challenge: str | None = None) -> None:
        self.base = base
        self.routes: dict[str, Callable[[httpx.Request], httpx.Response]] = {}
        self.seen: list[httpx.Request] = []
        self.challenge = challenge
        self.http = httpx.Client(transport=httpx.MockTransport(self._answer))
        credentials = StaticCredentials(Credentials("alice", SECRET_TOKEN))
        self.client = RegistryClient(base, credentials, self.http)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if request.url.path == "/v2/":
            challenge = self.challenge or 'Basic realm="r"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        handler = self.routes.get(request.url.path)
        return handler(request) if handler else httpx.Response(404)

    def with_credentials(self) -> list[str]:
        return [str(r.url) for r in self.seen if "authorization" in r.headers]


SECRET_TOKEN = "dckr_pat_unit-secret"
DIGEST = "sha256:" + "a" * 64


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


class Pulled:
    """An endless body that counts what the client pulled from it."""

    def __init__(self) -> None:
        self.bytes = 0

    def endless(self) -> Iterator[bytes]:
        while True:
            self.bytes += 65536
            yield b" " * 65536


@pytest.mark.parametrize(
    ("path", "cap"),
    [("/v2/x/manifests/1", 4 * 1024 * 1024), ("/v2/x/tags/list", 4 * 1024 * 1024)],
)
def test_bodies_are_read_capped_while_streaming(path: str, cap: int) -> None:
    registry = Registry()
    pulled = Pulled()
    registry.routes[path] = lambda request: httpx.Response(200, content=pulled.endless())
    with pytest.raises(UntrustedAnswerError, match="larger than 4 MiB"):
        if "manifests" in path:
            registry.client.get_manifest("x", "1")
        else:
            registry.client.list_tags("x")
    assert cap < pulled.bytes <= cap + 2 * 65536


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


@pytest.mark.parametrize("tag", ["../../prod", "a/b", "a?b", "a#b", "a%2Fb", "-a", ".a", "a\n", 7])
def test_a_tag_list_with_one_invalid_tag_fails_whole(tag: Any) -> None:
    registry = Registry()
    registry.routes["/v2/library/x/tags/list"] = lambda request: httpx.Response(
        200, json={"tags": ["1.0", tag]}
    )
    with pytest.raises(UntrustedAnswerError, match=r"r\.example/library/x: .* invalid tag"):
        registry.client.list_tags("library/x")


@pytest.mark.parametrize("document", [[], "tags", {"tags": "1.0"}, {"tags": {"a": 1}}])
def test_a_tag_list_that_is_no_list_of_tags_is_one_error(document: Any) -> None:
    registry = Registry()
    registry.routes["/v2/x/tags/list"] = lambda request: httpx.Response(200, json=document)
    with pytest.raises(UntrustedAnswerError, match="not a JSON list of tags"):
        registry.client.list_tags("x")


def test_tag_pages_are_followed_at_home_and_a_loop_ends() -> None:
    registry = Registry()
    pages = {
        None: ('{"tags": ["1"]}', "</v2/x/tags/list?last=1>"),
        "1": ('{"tags": ["2"]}', "</v2/x/tags/list?last=2>"),
        "2": ('{"tags": ["3"]}', "</v2/x/tags/list?last=1>"),  # back to a page already read
    }

    def page(request: httpx.Request) -> httpx.Response:
        body, link = pages[request.url.params.get("last")]
        return httpx.Response(200, content=body, headers={"Link": f'{link}; rel="next"'})

    registry.routes["/v2/x/tags/list"] = page
    with pytest.raises(UntrustedAnswerError, match="links back to a page it gave"):
        registry.client.list_tags("x")
    assert len([r for r in registry.seen if r.url.path == "/v2/x/tags/list"]) == 3
    assert len(registry.with_credentials()) == 3


def test_a_next_page_elsewhere_gets_no_authorization_and_a_downgrade_is_refused() -> None:
    registry = Registry()
    link = {"link": '<https://other.example/v2/x/tags/list?last=1>; rel="next"'}
    registry.routes["/v2/x/tags/list"] = lambda request: (
        httpx.Response(200, json={"tags": ["1"]}, headers=link)
        if request.url.host == "r.example"
        else httpx.Response(404)
    )
    with pytest.raises(RegistryError) as caught:  # the other host answers 404
        registry.client.list_tags("x")
    assert caught.value.status == 404
    assert [r.url.host for r in registry.seen if "authorization" not in r.headers][-1] == (
        "other.example"
    )
    assert all(u.startswith("https://r.example/") for u in registry.with_credentials())

    link["link"] = '<http://r.example/v2/x/tags/list?last=1>; rel="next"'
    registry.seen.clear()
    with pytest.raises(UntrustedAnswerError, match="leave https"):
        registry.client.list_tags("x")
    assert all(r.url.scheme == "https" for r in registry.seen)


def test_blob_redirects_keep_credentials_at_home_and_never_leave_https() -> None:
    registry = Registry()
    target = ["https://cdn.example/blob"]
    registry.routes[f"/v2/x/blobs/{DIGEST}"] = lambda request: httpx.Response(
        307, headers={"Location": target[0]}
    )
    registry.routes["/blob"] = lambda request: httpx.Response(200, content=b"data")
    with registry.client.open_blob("x", DIGEST) as response:
        assert response.read() == b"data"
    assert registry.seen[-1].url.host == "cdn.example"
    assert "authorization" not in registry.seen[-1].headers
    target[0] = "http://cdn.example/blob"
    with (
        pytest.raises(UntrustedAnswerError, match="leave https"),
        registry.client.open_blob("x", DIGEST),
    ):
        pass
    assert registry.seen[-1].url.scheme == "https"


def test_an_upload_session_stays_in_its_repository_and_credentials_at_home() -> None:
    registry = Registry()
    location = ["/v2/other/blobs/uploads/1?_state=s"]
    registry.routes["/v2/x/blobs/uploads/"] = lambda request: httpx.Response(
        202, headers={"Location": location[0]}
    )
    with pytest.raises(UntrustedAnswerError, match="upload outside x"):
        registry.client.start_upload("x")
    location[0] = "/v2/x/blobs/uploads/../../other/blobs/uploads/1"
    with pytest.raises(UntrustedAnswerError, match="upload outside x"):
        registry.client.start_upload("x")

    location[0] = "https://uploads.example/put?_state=s"
    registry.routes["/put"] = lambda request: httpx.Response(201)
    url = registry.client.start_upload("x")
    registry.client.finish_upload("x", url, DIGEST, 4, [b"data"])
    put = registry.seen[-1]
    assert put.url.host == "uploads.example" and "authorization" not in put.headers
    assert put.url.params["digest"] == DIGEST and put.url.params["_state"] == "s"


def test_path_segments_are_percent_encoded() -> None:
    registry = Registry()
    registry.client.head_manifest("x", "a?b#c/../d%2F")
    request = registry.seen[-1]
    assert request.url.raw_path == b"/v2/x/manifests/a%3Fb%23c%2F..%2Fd%252F"


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"Docker-Content-Digest": "sha256:../../x"}, "states an invalid digest"),
        ({"Docker-Content-Digest": DIGEST.upper()}, "states an invalid digest"),
        ({"Docker-Content-Digest": DIGEST, "Content-Length": "5000000"}, "larger than 4 MiB"),
    ],
)
def test_a_head_answer_is_checked(headers: dict[str, str], problem: str) -> None:
    registry = Registry()
    registry.routes["/v2/x/manifests/1"] = lambda request: httpx.Response(200, headers=headers)
    with pytest.raises(UntrustedAnswerError, match=problem):
        registry.client.head_manifest("x", "1")


def test_a_head_by_digest_that_answers_another_digest_is_refused() -> None:
    registry = Registry()
    other = "sha256:" + "b" * 64
    registry.routes[f"/v2/x/manifests/{DIGEST}"] = lambda request: httpx.Response(
        200, headers={"Docker-Content-Digest": other}
    )
    with pytest.raises(UntrustedAnswerError, match="another digest"):
        registry.client.head_manifest("x", DIGEST)


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        *[("0", 0), ("123", 123), (None, None)],
        *[(v, "error") for v in ("abc", "1_000", "12, 12", "-1", " 12", "0x10", "9" * 19)],
    ],
)
def test_content_length_is_a_byte_count_or_an_error(value: str | None, parsed: Any) -> None:
    response = answer(200, "https://r/v2/x/blobs/d")
    if value is not None:
        response.headers["Content-Length"] = value
    if parsed == "error":
        with pytest.raises(UntrustedAnswerError, match="Content-Length is not a byte count"):
            content_length(response)
    else:
        assert content_length(response) == parsed


def test_tags_and_digests_do_not_end_in_a_newline() -> None:
    with pytest.raises(InvalidReference):
        validate_tag("latest\n")
    with pytest.raises(InvalidReference):
        validate_digest(DIGEST + "\n")
    assert validate_digest(DIGEST) == DIGEST


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
