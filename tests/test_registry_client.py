"""The registry client against a lying registry on httpx's MockTransport
(mirror/registry/client.py, mirror/registry/answers.py): what it sends where, what it reads,
what it refuses."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from mirror.registry.client import content_length
from mirror.registry.errors import (
    RegistryError,
    UntrustedAnswerError,
)
from tests.mock_registry import DIGEST, Pulled, Registry, answer


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
