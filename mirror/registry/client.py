"""A thin client of the OCI distribution API, on httpx.

Why by hand: the Python OCI libraries tried re-serialise manifests (changing digests), reject
indexes, read whole layers into memory or retry poorly. What is needed is small: manifests as
raw bytes, blob HEAD/GET/mount/upload, tag lists. Why httpx: a mature, typed client with
connection pooling shared across threads, streaming request and response bodies, explicit
redirects and timeouts; HTTP/1.1 (HTTP/2 measured 2.3x slower on loopback for this workload).

Every call is one request with its Authorization header computed beforehand
(`Authenticator.headers`), one answer checked, and errors built in one place
(`registry_error`); what an answer states is checked in `answers` before it is used.
Retrying is the caller's decision (`RetryPolicy`), so that a streamed upload is retried whole,
with a new upload session.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import httpx

from mirror import __version__
from mirror.manifests import ACCEPT, Manifest, ManifestError
from mirror.registry.answers import (
    MAX_JSON_BYTES,
    RateLimit,
    content_length,
    named_url,
    stated_digest,
    tags_on_page,
    upload_location,
)
from mirror.registry.auth import Authenticator, CredentialsProvider, may_authenticate, scope_for
from mirror.registry.errors import (
    RegistryError,
    UntrustedAnswerError,
    discard,
    public_url,
    read_capped,
    registry_error,
)

# Callers import the answers' values from here too, with the client that returns them.
__all__ = [
    "MAX_JSON_BYTES",
    "MAX_MANIFEST_BYTES",
    "ManifestHead",
    "RateLimit",
    "RegistryClient",
    "content_length",
    "new_http_client",
]

USER_AGENT = f"mirror/{__version__}"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # ECR's limit, and a guard against nonsense
MAX_TAG_PAGES = 1000
MAX_TAGS = 100_000
MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
_LINK_NEXT = re.compile(r"<([^>]+)>\s*;\s*rel=\"?next\"?")


def _segment(text: str) -> str:
    """One path segment, percent-encoded: nothing in it can add a segment or a query."""
    return quote(text, safe=":")


@dataclass(frozen=True)
class ManifestHead:
    digest: str
    media_type: str
    size: int
    ratelimit: RateLimit | None


def new_http_client(connections: int) -> httpx.Client:
    """One pooled HTTP/1.1 client shared by every thread talking to a registry."""
    return httpx.Client(
        http2=False,
        follow_redirects=False,
        timeout=httpx.Timeout(30.0, read=120.0),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        # bodies are read raw and capped: a compressed answer would be a compression bomb
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
    )


class RegistryClient:
    """One registry: manifests, blobs and tags, with authentication.

    `counts_pulls` marks Docker Hub (or its stand-in): a 429 TOOMANYREQUESTS on a manifest
    GET there means the pull quota is spent, not a throttle to wait out.

    Whatever the registry answers is checked where it enters: tags and digests against the
    reference grammar, URLs it names by `may_authenticate`, every body against a cap.
    """

    def __init__(
        self,
        base_url: str,
        credentials: CredentialsProvider,
        http: httpx.Client,
        *,
        counts_pulls: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.host = urlsplit(self.base_url).netloc
        self._origin = httpx.URL(self.base_url)
        self.counts_pulls = counts_pulls
        self._http = http
        self.auth = Authenticator(http, self.base_url, credentials)

    # --- requests ---------------------------------------------------------------------

    def _url(self, repository: str, *path: str, query: str = "") -> str:
        segments = (*repository.split("/"), *path)
        url = f"{self.base_url}/v2/{'/'.join(_segment(s) for s in segments)}"
        return f"{url}?{query}" if query else url

    def _request(
        self,
        method: str,
        url: str | httpx.URL,
        scopes: tuple[str, ...],
        *,
        ok: tuple[int, ...],
        headers: dict[str, str] | None = None,
        content: bytes | Iterable[bytes] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """Send one request; on a 401 renew the token and resend once if the body allows.

        Credentials go only to this registry's origin: a URL elsewhere (a CDN, an upload
        host) is asked without them, and its 401 teaches nothing. With `stream` the answer
        is returned unread (the caller reads it capped and closes it); without, its body
        is dropped."""
        home = may_authenticate(httpx.URL(url), self._origin)
        if home:
            self.auth.ping()
        replayable = content is None or isinstance(content, bytes)
        for attempt in (0, 1):
            all_headers = {**(headers or {}), **(self.auth.headers(scopes) if home else {})}
            request = self._http.build_request(method, url, headers=all_headers, content=content)
            response = self._http.send(request, stream=True)
            if response.status_code in ok:
                if not stream:
                    discard(response)
                return response
            try:
                renewed = home and response.status_code == 401
                renewed = renewed and self.auth.unauthorized(response, scopes)
            except BaseException:
                response.close()
                raise
            if renewed and attempt == 0 and replayable:
                response.close()
                continue
            raise registry_error(
                response,
                counts_pulls=self.counts_pulls,
                credentials_renewed=renewed and not replayable,
            )
        raise AssertionError("unreachable")

    def check_access(self, repository: str) -> None:
        """Authenticate for pulling `repository` now: refused credentials are one clear
        error before the run starts, not a failure on every image."""
        self.auth.ping()
        self.auth.headers((scope_for(repository, "pull"),))

    # --- manifests --------------------------------------------------------------------

    def head_manifest(self, repository: str, reference: str) -> ManifestHead | None:
        """The digest and type of a manifest, or None when absent. Free on Docker Hub."""
        scopes = (scope_for(repository, "pull"),)
        try:
            response = self._request(
                "HEAD",
                self._url(repository, "manifests", reference),
                scopes,
                ok=(200,),
                headers={"Accept": ACCEPT},
            )
        except RegistryError as exc:
            if exc.status == 404:
                return None
            raise
        pinned = reference.startswith("sha256:")
        digest = stated_digest(response) or (reference if pinned else None)
        if not digest:
            raise ManifestError(
                f"{self.host}/{repository}:{reference}: HEAD answer states no digest"
            )
        if pinned and digest != reference:
            raise UntrustedAnswerError.about(response, f"answers for another digest, {digest}")
        size = content_length(response) or 0
        if size > MAX_MANIFEST_BYTES:
            raise UntrustedAnswerError.about(response, "manifest larger than 4 MiB")
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        return ManifestHead(
            digest=digest,
            media_type=media_type,
            size=size,
            ratelimit=RateLimit.from_headers(response.headers),
        )

    def get_manifest(
        self, repository: str, reference: str, *, charged: Callable[[], None] | None = None
    ) -> tuple[Manifest, RateLimit | None]:
        """GET a manifest's raw bytes (a pull on Docker Hub) and check its digest.

        `charged` is called once the registry has answered 200: Docker Hub counts the pull
        then, whatever happens to the body afterwards."""
        url = self._url(repository, "manifests", reference)
        response = self._request(
            "GET",
            url,
            (scope_for(repository, "pull"),),
            ok=(200,),
            headers={"Accept": ACCEPT},
            stream=True,
        )
        if charged is not None:
            charged()
        raw = read_capped(response, MAX_MANIFEST_BYTES, "manifest")
        manifest = Manifest.from_bytes(raw, response.headers.get("content-type"))
        stated = stated_digest(response)
        expected = reference if reference.startswith("sha256:") else stated
        if expected and expected != manifest.digest:
            raise ManifestError(
                f"{public_url(url)}: manifest bytes hash to {manifest.digest}, not {expected}"
            )
        return manifest, RateLimit.from_headers(response.headers)

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> None:
        """PUT the exact bytes with their own media type; check the digest the registry saw."""
        url = self._url(repository, "manifests", reference)
        response = self._request(
            "PUT",
            url,
            (scope_for(repository, "pull,push"),),
            ok=(200, 201),
            headers={"Content-Type": manifest.media_type},
            content=manifest.raw,
        )
        stated = response.headers.get("docker-content-digest")
        if stated and stated != manifest.digest:
            raise ManifestError(
                f"{public_url(url)}: registry stored {stated}, not {manifest.digest}"
            )

    def delete_tag(self, repository: str, tag: str) -> bool:
        """Remove one tag (OCI distribution 1.1 `DELETE /v2/<name>/manifests/<tag>`); the
        image and its other tags stay. False: the tag was not there."""
        try:
            self._request(
                "DELETE",
                self._url(repository, "manifests", tag),
                (scope_for(repository, "delete"),),
                ok=(200, 202),
            )
        except RegistryError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def list_tags(self, repository: str, page_size: int = 1000) -> list[str]:
        """Every tag of a repository, following `Link: rel="next"` pages. Free on Docker Hub.

        Every tag must be a tag by the config's rule: a list holding `..`, `/`, `?` or the
        like fails the image whole (such a registry is lying or compromised, and the rest of
        its list is not to be believed either). Pages and tags are capped, and a page asked
        for twice ends the listing: a registry cannot keep `mirror` listing for ever."""
        scopes = (scope_for(repository, "pull"),)
        tags: list[str] = []
        url: httpx.URL | None = httpx.URL(
            self._url(repository, "tags", "list", query=f"n={page_size}")
        )
        seen: set[httpx.URL] = set()
        while url is not None:
            if url in seen or len(seen) >= MAX_TAG_PAGES:
                problem = "links back to a page it gave" if url in seen else "has too many pages"
                raise UntrustedAnswerError(
                    f"{self.host}/{repository}: the tag list {problem} (after {len(seen)} pages)"
                )
            seen.add(url)
            response = self._request("GET", url, scopes, ok=(200,), stream=True)
            tags.extend(tags_on_page(response, f"{self.host}/{repository}"))
            if len(tags) > MAX_TAGS:
                raise UntrustedAnswerError(
                    f"{self.host}/{repository}: the tag list holds more than {MAX_TAGS} tags"
                )
            found = _LINK_NEXT.search(response.headers.get("link", ""))
            url = named_url(response, found.group(1)) if found else None
        return tags

    # --- blobs ------------------------------------------------------------------------

    def blob_exists(self, repository: str, digest: str) -> bool:
        try:
            self._request(
                "HEAD",
                self._url(repository, "blobs", digest),
                (scope_for(repository, "pull"),),
                ok=(200,),
            )
        except RegistryError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    @contextlib.contextmanager
    def open_blob(self, repository: str, digest: str) -> Iterator[httpx.Response]:
        """A streaming GET of a blob, following redirects (a CDN gets no Authorization)."""
        url: str | httpx.URL = self._url(repository, "blobs", digest)
        for _ in range(MAX_REDIRECTS + 1):
            response = self._request(
                "GET", url, (scope_for(repository, "pull"),), ok=(200, *REDIRECTS), stream=True
            )
            if response.status_code == 200:
                break
            location = response.headers.get("location")
            response.close()
            if not location:
                raise RegistryError(
                    response.status_code,
                    "REDIRECT",
                    "redirect without Location",
                    "GET",
                    public_url(url),
                )
            url = named_url(response, location)
        else:
            response.close()
            raise RegistryError(
                310, "REDIRECTS", f"more than {MAX_REDIRECTS} redirects", "GET", public_url(url)
            )
        try:
            yield response
        finally:
            response.close()

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> str | None:
        """Try a cross-repository mount. None: mounted; else the upload URL it opened."""
        scopes = (scope_for(repository, "pull,push"), scope_for(from_repository, "pull"))
        query = f"mount={_segment(digest)}&from={quote(from_repository, safe='/')}"
        response = self._request(
            "POST",
            self._url(repository, "blobs", "uploads", "", query=query),
            scopes,
            ok=(201, 202),
        )
        if response.status_code == 201:
            return None
        return self._upload_location(response, repository)

    def start_upload(self, repository: str) -> str:
        response = self._request(
            "POST",
            self._url(repository, "blobs", "uploads", ""),
            (scope_for(repository, "pull,push"),),
            ok=(202,),
        )
        return self._upload_location(response, repository)

    def finish_upload(
        self, repository: str, upload_url: str, digest: str, size: int, body: Iterable[bytes]
    ) -> None:
        """One PUT `?digest=` with the whole body and its Content-Length (no chunked PATCH:
        ECR drops the second PATCH's body). `digest` joins the URL's own query (`_state`)."""
        separator = "&" if urlsplit(upload_url).query else "?"
        self._request(
            "PUT",
            f"{upload_url}{separator}digest={_segment(digest)}",
            (scope_for(repository, "pull,push"),),
            ok=(201, 204),
            headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
            content=body,
        )

    def _upload_location(self, response: httpx.Response, repository: str) -> str:
        uploads = httpx.URL(self._url(repository, "blobs", "uploads", ""))
        return upload_location(response, self._origin, uploads, repository)
