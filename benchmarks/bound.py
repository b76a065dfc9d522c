"""The bound: what the wire allows, with no tool's logic in the way.

``python -m benchmarks.bound JOB.json`` pipes every blob of the job from the Docker Hub front
(its 307 to the CDN followed) into the ECR front (POST an upload, then ONE PUT with
Content-Length and the digest), ``streams`` at a time, largest first, with no hashing, no
HEADs, no retries, no manifests. It prints one JSON line: the seconds from the first request
to the last answer (interpreter start-up and imports left out, which only makes the bound
lower), the blobs and bytes moved, and any errors.

It runs in its own process, as the tools do: in the benchmark's process it would share the
GIL with the world's fronts, which are Python threads there, and be slower than the wire.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

CHUNK = 1024 * 1024  # bytes per read from the CDN: large, so Python overhead stays small


def _challenge(hub: httpx.Client) -> tuple[str, str]:
    """(realm, service) from the hub's 401 on /v2/: where anonymous tokens come from."""
    r = hub.get("/v2/")
    value = r.headers.get("www-authenticate", "")
    fields = dict(re.findall(r'(\w+)="([^"]*)"', value))
    return fields["realm"], fields["service"]


def copy_blobs(job: dict[str, Any]) -> dict[str, Any]:
    """Copy ``job["blobs"]`` ([repository, digest, size], ...) into ``job["prefix"]/<repo>``."""
    streams = int(job["streams"])
    limits = httpx.Limits(max_connections=streams * 2, max_keepalive_connections=streams * 2)
    timeout = httpx.Timeout(300.0)
    errors: list[str] = []
    moved = [0, 0]  # blobs, bytes
    lock = threading.Lock()
    started = time.perf_counter()
    with (
        httpx.Client(base_url=job["hub_url"], timeout=timeout, limits=limits) as hub,
        httpx.Client(timeout=timeout, limits=limits) as cdn,
        httpx.Client(
            base_url=job["ecr_url"],
            timeout=timeout,
            limits=limits,
            auth=(job["ecr_user"], job["ecr_password"]),
        ) as ecr,
    ):
        realm, service = _challenge(hub)
        tokens: dict[str, str] = {}
        for repository in sorted({b[0] for b in job["blobs"]}):
            r = hub.get(
                realm, params={"service": service, "scope": f"repository:{repository}:pull"}
            )
            r.raise_for_status()
            tokens[repository] = r.json()["token"]

        def one(repository: str, digest: str, size: int) -> None:
            try:
                r = hub.get(
                    f"/v2/{repository}/blobs/{digest}",
                    headers={"Authorization": f"Bearer {tokens[repository]}"},
                )
                if r.status_code != 307:
                    raise RuntimeError(f"blob GET answered {r.status_code}")
                target = f"{job['prefix']}/{repository}"
                up = ecr.post(f"/v2/{target}/blobs/uploads/")
                if up.status_code != 202:
                    raise RuntimeError(f"upload POST answered {up.status_code}: {up.text[:200]}")
                url = up.url.join(up.headers["location"]).copy_merge_params({"digest": digest})
                with cdn.stream("GET", r.headers["location"]) as src:
                    if src.status_code != 200:
                        raise RuntimeError(f"CDN GET answered {src.status_code}")
                    put = ecr.put(
                        url,
                        content=src.iter_raw(CHUNK),
                        headers={
                            "Content-Length": str(size),
                            "Content-Type": "application/octet-stream",
                        },
                    )
                if put.status_code != 201:
                    raise RuntimeError(f"upload PUT answered {put.status_code}: {put.text[:200]}")
                with lock:
                    moved[0] += 1
                    moved[1] += size
            except Exception as e:  # reported, never raised: the benchmark says what failed
                with lock:
                    errors.append(f"{repository}@{digest[:19]}: {type(e).__name__}: {e}")

        with ThreadPoolExecutor(streams) as pool:
            for f in [pool.submit(one, *blob) for blob in job["blobs"]]:
                f.result()
    return {
        "seconds": time.perf_counter() - started,
        "blobs": moved[0],
        "bytes": moved[1],
        "errors": errors,
    }


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text())
    result = copy_blobs(job)
    print(json.dumps(result))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
