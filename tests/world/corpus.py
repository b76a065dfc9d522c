"""A deterministic corpus of real images, pushed into a registry over plain HTTP.

Layers are real gzip'd tar archives (fixed mtimes, uid/gid 0, gzip mtime 0) of files filled
with seeded random bytes; configs are real image configs (``rootfs.diff_ids`` = sha256 of the
uncompressed tar), so a Docker engine can pull them. The same specs always give the same
digests on the same machine (zlib output is stable for a given zlib build).

The corpus is data: ``DEFAULT_CORPUS`` is a list of ``ImageSpec``; ``push_corpus`` builds
and pushes them and returns a ``Corpus`` (a list of ``CorpusEntry``, one per tag).

Large layers (``scale`` or explicit sizes) are generated and compressed chunk by chunk into a
temp file, then uploaded in one streaming PUT with Content-Length, so a 1 GiB layer never
sits in memory. Small blobs stay in memory.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import random
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import httpx

__all__ = [
    "DEFAULT_CORPUS",
    "DOCKER_CONFIG",
    "DOCKER_LAYER",
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "INTOTO",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "Corpus",
    "CorpusEntry",
    "ImageSpec",
    "LayerSpec",
    "ManifestInfo",
    "PlatformSpec",
    "big_image",
    "build_corpus",
    "push_corpus",
]

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
INTOTO = "application/vnd.in-toto+json"
ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])

Kind = Literal["docker", "docker-list", "oci", "oci-index"]
KiB = 1024
MiB = 1024 * KiB
IN_MEMORY_LIMIT = 8 * MiB  # layers above this are built in a temp file
STORED_GZIP_ABOVE = 8 * MiB  # layers above this are gzip level 0 (stored blocks)
TAR_MTIME = 1_700_000_000
ATTESTATION_PLATFORM = "unknown/unknown"


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class LayerSpec:
    """A layer of ``files`` files holding ``size`` random bytes in total (before ``scale``).

    Layers with the same ``seed`` and size on the same platform are byte-identical, which is
    how images share a base layer. Without a seed it is derived from the image and index."""

    size: int
    seed: str | None = None
    files: int = 1


@dataclass(frozen=True)
class PlatformSpec:
    os: str
    architecture: str
    layers: tuple[LayerSpec, ...]
    variant: str | None = None

    @property
    def name(self) -> str:
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)


def linux(arch: str, *layers: LayerSpec, variant: str | None = None) -> PlatformSpec:
    return PlatformSpec("linux", arch, tuple(layers), variant)


@dataclass(frozen=True)
class ImageSpec:
    """One image (single manifest or index) and every tag pointing at it.

    ``kind``: ``docker`` (schema 2 manifest), ``docker-list`` (manifest list), ``oci`` (OCI
    manifest), ``oci-index`` (OCI index; ``attestations`` adds one attestation manifest per
    platform, as buildkit does). Single-manifest kinds use the first platform only."""

    repository: str
    tags: tuple[str, ...]
    kind: Kind
    platforms: tuple[PlatformSpec, ...]
    attestations: bool = False
    created: str = "2024-01-01T00:00:00Z"
    cmd: tuple[str, ...] = ("/bin/sh",)
    # what the image is built as (default: its first tag): two specs built as the same name
    # have the same platform and attestation manifests, as a `3.3` and a `3.3-bookworm`
    # index of one build do; `index_annotations` then tell their indexes apart
    build_as: str | None = None
    index_annotations: tuple[tuple[str, str], ...] = ()

    @property
    def build_name(self) -> str:
        return self.build_as or self.tags[0]


# --------------------------------------------------------------------------- description


@dataclass(frozen=True)
class ManifestInfo:
    """A single-platform manifest (or attestation manifest) as pushed."""

    digest: str
    media_type: str
    size: int
    platform: str  # "linux/amd64", "linux/arm64/v8", "unknown/unknown" for attestations
    config: str  # config blob digest
    layers: tuple[str, ...]  # layer blob digests, in order
    diff_ids: tuple[str, ...]  # sha256 of the uncompressed layers ([] for attestations)
    attests: str | None = None  # for attestations: digest of the manifest it attests
    raw: bytes = field(default=b"", repr=False, compare=False)

    @property
    def blobs(self) -> tuple[str, ...]:
        return (self.config, *self.layers)

    @property
    def is_attestation(self) -> bool:
        return self.attests is not None


@dataclass(frozen=True)
class CorpusEntry:
    """One tag of the corpus."""

    repository: str  # "library/alpine", "bitnami/redis"
    tag: str
    media_type: str  # media type of the top-level manifest
    digest: str  # digest of the top-level manifest (what the tag points at)
    size: int
    platforms: tuple[str, ...]  # real platforms, attestations excluded
    manifests: tuple[ManifestInfo, ...]  # children of an index, or the manifest itself
    blobs: tuple[str, ...]  # every config and layer digest reachable from the tag
    kind: Kind
    raw: bytes = field(default=b"", repr=False, compare=False)

    @property
    def ref(self) -> str:
        """``library/alpine:3.19``."""
        return f"{self.repository}:{self.tag}"

    @property
    def image(self) -> str:
        """Docker Hub short name: ``alpine`` for ``library/alpine``."""
        return self.repository.removeprefix("library/")

    @property
    def is_index(self) -> bool:
        return self.media_type in (DOCKER_LIST, OCI_INDEX)

    @property
    def attestations(self) -> tuple[ManifestInfo, ...]:
        return tuple(m for m in self.manifests if m.is_attestation)

    def manifest_for(self, platform: str) -> ManifestInfo:
        """The child manifest for ``linux/amd64`` (variant optional: ``linux/arm64``)."""
        for m in self.manifests:
            if m.platform == platform or m.platform.startswith(platform + "/"):
                return m
        raise KeyError(f"{self.ref} has no platform {platform}")

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "tag": self.tag,
            "kind": self.kind,
            "media_type": self.media_type,
            "digest": self.digest,
            "size": self.size,
            "platforms": list(self.platforms),
            "blobs": list(self.blobs),
            "manifests": [
                {
                    "digest": m.digest,
                    "media_type": m.media_type,
                    "size": m.size,
                    "platform": m.platform,
                    "config": m.config,
                    "layers": list(m.layers),
                    "attests": m.attests,
                }
                for m in self.manifests
            ],
        }


@dataclass
class Corpus:
    """What was pushed: one entry per tag, in push order."""

    entries: list[CorpusEntry]
    blob_sizes: dict[str, int] = field(default_factory=dict)

    def __iter__(self) -> Iterator[CorpusEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, ref: str) -> CorpusEntry:
        """Entry for ``alpine:3.19``, ``library/alpine:3.19`` or ``bitnami/redis:7.4.1``."""
        repo, _, tag = ref.rpartition(":")
        if "/" not in repo:
            repo = f"library/{repo}"
        for e in self.entries:
            if e.repository == repo and e.tag == tag:
                return e
        raise KeyError(ref)

    def repositories(self) -> list[str]:
        return sorted({e.repository for e in self.entries})

    def tags(self, repository: str) -> list[str]:
        if "/" not in repository:
            repository = f"library/{repository}"
        return [e.tag for e in self.entries if e.repository == repository]

    def by_media_type(self, media_type: str) -> list[CorpusEntry]:
        return [e for e in self.entries if e.media_type == media_type]

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.entries]


# --------------------------------------------------------------------------- blobs


class _RandomReader(io.RawIOBase):
    """``size`` seeded random bytes, produced on read (never all in memory)."""

    def __init__(self, seed: str, size: int) -> None:
        self._rng = random.Random(seed)
        self._left = size

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = self._left
        n = min(n, self._left, MiB)
        self._left -= n
        return self._rng.randbytes(n)


class _HashingWriter(io.RawIOBase):
    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.sha.update(data)
        self.size += len(data)
        self.out.write(data)
        return len(data)


@dataclass
class Blob:
    """Blob content: in memory (``data``) or in a temp file (``path``)."""

    digest: str
    size: int
    data: bytes | None = None
    path: Path | None = None

    @contextlib.contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        if self.data is not None:
            yield io.BytesIO(self.data)
        else:
            assert self.path is not None
            with open(self.path, "rb") as f:
                yield f


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _bytes_blob(data: bytes) -> Blob:
    return Blob(_digest(data), len(data), data=data)


def _build_layer(
    seed: str, size: int, files: int, tmpdir: Path, memory_limit: int = IN_MEMORY_LIMIT
) -> tuple[Blob, str]:
    """A gzip'd tar layer; returns the blob and its diff_id."""
    in_memory = size <= memory_limit
    path: Path | None = None
    sink: IO[bytes]
    if in_memory:
        sink = io.BytesIO()
    else:
        fd, name = tempfile.mkstemp(dir=tmpdir, suffix=".tar.gz")
        path = Path(name)
        sink = open(fd, "wb")  # noqa: SIM115 - closed below
    compressed = _HashingWriter(sink)
    # random bytes do not compress: deflate level 1 runs at ~30 MB/s for nothing, so big
    # layers use stored deflate blocks (level 0, still a valid gzip stream, ~GB/s)
    level = 1 if size <= STORED_GZIP_ABOVE else 0
    with gzip.GzipFile(
        filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=level
    ) as gz:
        tar_stream = _HashingWriter(gz)  # type: ignore[arg-type]
        with tarfile.open(fileobj=tar_stream, mode="w|", format=tarfile.GNU_FORMAT) as tar:
            folder = "opt/world/" + hashlib.sha256(seed.encode()).hexdigest()[:12]
            parts = folder.split("/")
            for i in range(1, len(parts) + 1):
                d = tarfile.TarInfo("/".join(parts[:i]) + "/")
                d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, TAR_MTIME
                tar.addfile(d)
            per_file, extra = divmod(size, files)
            for i in range(files):
                n = per_file + (1 if i < extra else 0)
                info = tarfile.TarInfo(f"{folder}/file-{i}.bin")
                info.size, info.mode, info.mtime = n, 0o644, TAR_MTIME
                tar.addfile(info, _RandomReader(f"{seed}#{i}", n))
        diff_id = "sha256:" + tar_stream.sha.hexdigest()
    digest = "sha256:" + compressed.sha.hexdigest()
    if in_memory:
        assert isinstance(sink, io.BytesIO)
        return Blob(digest, compressed.size, data=sink.getvalue()), diff_id
    sink.close()
    return Blob(digest, compressed.size, path=path), diff_id


def _dumps(obj: Any, docker_style: bool) -> bytes:
    # Docker writes schema-2 manifests with 3-space indents; buildkit writes compact JSON.
    # Either way clients must keep the raw bytes: re-serialising changes the digest.
    if docker_style:
        return json.dumps(obj, indent=3).encode()
    return json.dumps(obj, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- building


@dataclass
class _Manifest:
    digest: str
    media_type: str
    raw: bytes
    info: ManifestInfo


@dataclass
class _Image:
    spec: ImageSpec
    media_type: str
    raw: bytes
    digest: str
    children: list[_Manifest]  # pushed by digest before the top manifest


@dataclass
class BuiltCorpus:
    """Built content, ready to push (blobs, children manifests, tagged manifests)."""

    images: list[_Image]
    blobs: dict[str, Blob]
    tmpdir: Path

    def entries(self) -> list[CorpusEntry]:
        out = []
        for img in self.images:
            infos = tuple(c.info for c in img.children)
            blobs: list[str] = []
            for info in infos:
                blobs += [b for b in info.blobs if b not in blobs]
            for tag in img.spec.tags:
                out.append(
                    CorpusEntry(
                        repository=img.spec.repository,
                        tag=tag,
                        media_type=img.media_type,
                        digest=img.digest,
                        size=len(img.raw),
                        platforms=tuple(i.platform for i in infos if not i.is_attestation),
                        manifests=infos,
                        blobs=tuple(blobs),
                        kind=img.spec.kind,
                        raw=img.raw,
                    )
                )
        return out

    def corpus(self) -> Corpus:
        return Corpus(self.entries(), {d: b.size for d, b in self.blobs.items()})


class _Builder:
    def __init__(self, scale: float, tmpdir: Path, memory_limit: int) -> None:
        self.scale = scale
        self.memory_limit = memory_limit
        self.tmpdir = tmpdir
        self.blobs: dict[str, Blob] = {}
        self._layers: dict[tuple[str, int, int], tuple[Blob, str]] = {}

    def blob(self, data: bytes) -> str:
        b = _bytes_blob(data)
        self.blobs.setdefault(b.digest, b)
        return b.digest

    def layer(self, seed: str, size: int, files: int) -> tuple[Blob, str]:
        key = (seed, size, files)
        if key not in self._layers:
            blob, diff_id = _build_layer(seed, size, files, self.tmpdir, self.memory_limit)
            self._layers[key] = (blob, diff_id)
            self.blobs.setdefault(blob.digest, blob)
        return self._layers[key]

    def platform_manifest(self, spec: ImageSpec, plat: PlatformSpec, oci: bool) -> _Manifest:
        layer_type = OCI_LAYER if oci else DOCKER_LAYER
        layers: list[tuple[Blob, str]] = []
        for i, ls in enumerate(plat.layers):
            seed = ls.seed or f"{spec.repository}:{spec.build_name}:{i}"
            size = max(1, int(ls.size * self.scale))
            layers.append(self.layer(f"{seed}@{plat.name}", size, ls.files))
        config: dict[str, Any] = {
            "architecture": plat.architecture,
            "os": plat.os,
            **({"variant": plat.variant} if plat.variant else {}),
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": list(spec.cmd),
                "Labels": {"org.example.mirror-test": f"{spec.repository}:{spec.build_name}"},
            },
            "created": spec.created,
            "history": [
                {"created": spec.created, "created_by": f"ADD layer {i} in /"}
                for i in range(len(layers))
            ],
            "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
        }
        config_raw = _dumps(config, docker_style=False)
        config_digest = self.blob(config_raw)
        media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {
                "mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
                "digest": config_digest,
                "size": len(config_raw),
            },
            "layers": [
                {"mediaType": layer_type, "digest": b.digest, "size": b.size} for b, _ in layers
            ],
        }
        raw = _dumps(manifest, docker_style=not oci)
        digest = _digest(raw)
        info = ManifestInfo(
            digest=digest,
            media_type=media_type,
            size=len(raw),
            platform=plat.name,
            config=config_digest,
            layers=tuple(b.digest for b, _ in layers),
            diff_ids=tuple(d for _, d in layers),
            raw=raw,
        )
        return _Manifest(digest, media_type, raw, info)

    def attestation(self, spec: ImageSpec, subject: _Manifest) -> _Manifest:
        statement = {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://slsa.dev/provenance/v0.2",
            "subject": [
                {
                    "name": f"pkg:docker/{spec.repository}@{spec.build_name}"
                    f"?platform={subject.info.platform.replace('/', '%2F')}",
                    "digest": {"sha256": subject.digest.removeprefix("sha256:")},
                }
            ],
            "predicate": {
                "builder": {"id": "https://example.invalid/mirror-test-world"},
                "buildType": "https://mobyproject.org/buildkit@v1",
                "metadata": {"buildStartedOn": spec.created},
            },
        }
        layer_raw = _dumps(statement, docker_style=False)
        layer_digest = self.blob(layer_raw)
        config = {
            "architecture": "unknown",
            "os": "unknown",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }
        config_raw = _dumps(config, docker_style=False)
        config_digest = self.blob(config_raw)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_raw)},
            "layers": [
                {
                    "mediaType": INTOTO,
                    "digest": layer_digest,
                    "size": len(layer_raw),
                    "annotations": {
                        "in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"
                    },
                }
            ],
        }
        raw = _dumps(manifest, docker_style=False)
        digest = _digest(raw)
        info = ManifestInfo(
            digest=digest,
            media_type=OCI_MANIFEST,
            size=len(raw),
            platform=ATTESTATION_PLATFORM,
            config=config_digest,
            layers=(layer_digest,),
            diff_ids=(),
            attests=subject.digest,
            raw=raw,
        )
        return _Manifest(digest, OCI_MANIFEST, raw, info)

    def image(self, spec: ImageSpec) -> _Image:
        if not spec.platforms or not spec.tags:
            raise ValueError(f"{spec.repository}: an image needs tags and platforms")
        if spec.kind in ("docker", "oci"):
            m = self.platform_manifest(spec, spec.platforms[0], oci=spec.kind == "oci")
            return _Image(spec, m.media_type, m.raw, m.digest, [m])
        oci = spec.kind == "oci-index"
        children = [self.platform_manifest(spec, p, oci=oci) for p in spec.platforms]
        attestations = [self.attestation(spec, c) for c in children] if spec.attestations else []
        descriptors: list[dict[str, Any]] = []
        for c, p in zip(children, spec.platforms, strict=True):
            platform: dict[str, str] = {"architecture": p.architecture, "os": p.os}
            if p.variant:
                platform["variant"] = p.variant
            descriptors.append(
                {
                    "mediaType": c.media_type,
                    "digest": c.digest,
                    "size": len(c.raw),
                    "platform": platform,
                }
            )
        for a in attestations:
            descriptors.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": a.digest,
                    "size": len(a.raw),
                    "annotations": {
                        "vnd.docker.reference.digest": a.info.attests,
                        "vnd.docker.reference.type": "attestation-manifest",
                    },
                    "platform": {"architecture": "unknown", "os": "unknown"},
                }
            )
        media_type = OCI_INDEX if oci else DOCKER_LIST
        index: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": descriptors,
        }
        if spec.index_annotations:
            index["annotations"] = dict(spec.index_annotations)
        raw = _dumps(index, docker_style=not oci)
        return _Image(spec, media_type, raw, _digest(raw), children + attestations)


def build_corpus(
    specs: Sequence[ImageSpec] | None = None,
    *,
    scale: float = 1.0,
    tmpdir: Path | None = None,
    memory_limit: int = IN_MEMORY_LIMIT,
) -> BuiltCorpus:
    """Build every blob and manifest of ``specs`` (layer sizes multiplied by ``scale``).

    Layers above ``memory_limit`` (8 MiB) are generated and compressed chunk by chunk into
    temp files in ``tmpdir`` (default: a new temp dir); smaller ones stay in memory."""
    tmp = Path(tmpdir) if tmpdir else Path(tempfile.mkdtemp(prefix="mirror-corpus-"))
    tmp.mkdir(parents=True, exist_ok=True)
    builder = _Builder(scale, tmp, memory_limit)
    images = [builder.image(s) for s in (DEFAULT_CORPUS if specs is None else specs)]
    return BuiltCorpus(images, builder.blobs, tmp)


# --------------------------------------------------------------------------- pushing


class PushError(RuntimeError):
    pass


def _check(r: httpx.Response, *ok: int) -> httpx.Response:
    if r.status_code not in ok:
        raise PushError(f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text[:500]}")
    return r


def _upload_blob(client: httpx.Client, repo: str, blob: Blob) -> None:
    if client.head(f"/v2/{repo}/blobs/{blob.digest}").status_code == 200:
        return
    r = _check(client.post(f"/v2/{repo}/blobs/uploads/"), 202)
    location = httpx.URL(str(r.url)).join(r.headers["location"])
    # keep the registry's _state query; add digest to it
    url = location.copy_merge_params({"digest": blob.digest})
    with blob.open() as f:
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)}
        content: bytes | IO[bytes] = f.read() if blob.data is not None else f
        _check(client.put(url, content=content, headers=headers), 201)


def _put_manifest(client: httpx.Client, repo: str, ref: str, media_type: str, raw: bytes) -> None:
    r = _check(
        client.put(
            f"/v2/{repo}/manifests/{ref}", content=raw, headers={"Content-Type": media_type}
        ),
        201,
    )
    got = r.headers.get("docker-content-digest")
    if got and got != _digest(raw):
        raise PushError(f"{repo}:{ref}: registry stored {got}, expected {_digest(raw)}")


def push_built(
    built: BuiltCorpus,
    registry_url: str,
    *,
    auth: tuple[str, str] | None = None,
    timeout: float = 300.0,
    workers: int = 8,
) -> Corpus:
    """Push built content into the registry at ``registry_url`` (plain HTTP).

    Three stages, each in parallel: blobs, then index children by digest, then tags."""
    blobs: dict[tuple[str, str], Blob] = {}
    children: dict[tuple[str, str], _Manifest] = {}
    tags: list[tuple[str, str, _Image]] = []
    for img in built.images:
        repo = img.spec.repository
        for child in img.children:
            for digest in child.info.blobs:
                blobs[(repo, digest)] = built.blobs[digest]
            if img.spec.kind in ("docker-list", "oci-index"):
                children[(repo, child.digest)] = child
        tags += [(repo, tag, img) for tag in img.spec.tags]
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    with (
        httpx.Client(base_url=registry_url, auth=auth, timeout=timeout, limits=limits) as client,
        ThreadPoolExecutor(workers) as pool,
    ):

        def run(fn: Any, items: Iterable[Any]) -> None:
            for f in [pool.submit(fn, *item) for item in items]:
                f.result()

        run(lambda k, b: _upload_blob(client, k[0], b), blobs.items())
        run(
            lambda k, c: _put_manifest(client, k[0], c.digest, c.media_type, c.raw),
            children.items(),
        )
        run(lambda repo, tag, img: _put_manifest(client, repo, tag, img.media_type, img.raw), tags)
    return built.corpus()


def push_corpus(
    registry_url: str,
    specs: Sequence[ImageSpec] | None = None,
    *,
    scale: float = 1.0,
    auth: tuple[str, str] | None = None,
    tmpdir: Path | None = None,
    memory_limit: int = IN_MEMORY_LIMIT,
) -> Corpus:
    """Build ``specs`` (default ``DEFAULT_CORPUS``) and push them to ``registry_url``
    (HTTP Basic ``auth`` if given). Temp files of large layers are deleted afterwards."""
    built = build_corpus(specs, scale=scale, tmpdir=tmpdir, memory_limit=memory_limit)
    try:
        return push_built(built, registry_url, auth=auth)
    finally:
        for blob in built.blobs.values():
            if blob.path is not None:
                blob.path.unlink(missing_ok=True)
        if tmpdir is None:
            shutil.rmtree(built.tmpdir, ignore_errors=True)


def fetch_manifest(
    registry_url: str, repository: str, ref: str, auth: tuple[str, str] | None = None
) -> httpx.Response:
    """GET a manifest with an Accept header listing all four manifest types."""
    return httpx.get(
        f"{registry_url}/v2/{repository}/manifests/{ref}",
        headers={"Accept": ACCEPT},
        auth=auth,
        timeout=30,
    )


# --------------------------------------------------------------------------- the default corpus


def big_image(
    repository: str,
    tag: str,
    layer_sizes: Iterable[int],
    *,
    kind: Kind = "docker",
    platforms: Sequence[tuple[str, str | None]] = (("amd64", None),),
    files_per_layer: int = 4,
) -> ImageSpec:
    """A spec for a benchmark image, e.g. ``big_image("bench/big", "1", [200 * MiB])``
    or a 1 GiB layer: ``[1024 * MiB]``. Sizes are uncompressed bytes (random, so the
    compressed size is about the same)."""
    sizes = list(layer_sizes)
    return ImageSpec(
        repository,
        (tag,),
        kind,
        tuple(
            linux(
                arch,
                *(
                    LayerSpec(s, seed=f"{repository}:{tag}:{i}", files=files_per_layer)
                    for i, s in enumerate(sizes)
                ),
                variant=variant,
            )
            for arch, variant in platforms
        ),
    )


def _node() -> list[ImageSpec]:
    """library/node: 27 tags on 8 small manifest lists (for tag-selection tests).

    Every list shares one tiny layer per platform; the configs (created, labels) differ."""
    node_layer = LayerSpec(8 * KiB, seed="node-runtime")
    groups: list[tuple[str, tuple[str, ...]]] = [
        ("2024-04-01T00:00:00Z", ("18.20.3",)),
        ("2024-07-08T00:00:00Z", ("18", "18.20", "18.20.4", "18.20.4-bookworm", "hydrogen")),
        ("2024-01-10T00:00:00Z", ("20.11.0", "20.11.0-slim")),
        ("2024-02-14T00:00:00Z", ("20.11", "20.11.1")),
        ("2024-04-10T00:00:00Z", ("20", "20.12", "20.12.2", "iron", "lts")),
        ("2024-05-02T00:00:00Z", ("22.1", "22.1.0", "22.1.0-bookworm")),
        ("2024-05-03T00:00:00Z", ("22.1.0-alpine", "22-alpine", "alpine", "lts-alpine")),
        ("2024-05-15T00:00:00Z", ("22", "22.2", "22.2.0", "current", "latest")),
    ]
    return [
        ImageSpec(
            "library/node",
            tags,
            "docker-list",
            (
                linux("amd64", node_layer),
                linux("arm64", node_layer, variant="v8"),
            ),
            created=created,
            cmd=("node",),
        )
        for created, tags in groups
    ]


def _ruby() -> list[ImageSpec]:
    """library/ruby: one build published as two OCI indexes (with attestations) that share
    all four child manifests, under six tags; an older build beside it.

    For the pull economy: 9 manifests in all (3 indexes, 6 children) for 7 tags."""
    layer = LayerSpec(24 * KiB, seed="ruby-runtime")

    def build(
        tags: tuple[str, ...], name: str, created: str, variant: str | None = None
    ) -> ImageSpec:
        return ImageSpec(
            "library/ruby",
            tags,
            "oci-index",
            (linux("amd64", layer), linux("arm64", layer, variant="v8")),
            attestations=True,
            created=created,
            cmd=("irb",),
            build_as=name,
            index_annotations=(("org.opencontainers.image.ref.name", variant),) if variant else (),
        )

    return [
        build(("3.3", "3.3.6", "3", "latest"), "3.3.6", "2024-11-05T00:00:00Z"),
        build(("3.3-bookworm", "bookworm"), "3.3.6", "2024-11-05T00:00:00Z", "bookworm"),
        build(("3.2",), "3.2.6", "2024-10-30T00:00:00Z"),
    ]


def _default_corpus() -> list[ImageSpec]:
    alpine_base = LayerSpec(192 * KiB, seed="alpine-base", files=3)
    slim_base = LayerSpec(160 * KiB, seed="debian-slim-base", files=2)
    redis_base = LayerSpec(128 * KiB, seed="bitnami-minideb", files=2)

    def redis(version: str, created: str) -> ImageSpec:
        return ImageSpec(
            "bitnami/redis",
            (version,),
            "oci-index",
            tuple(
                linux(arch, redis_base, LayerSpec(48 * KiB), LayerSpec(16 * KiB))
                for arch in ("amd64", "arm64")
            ),
            attestations=True,
            created=created,
            cmd=("redis-server",),
        )

    def python(version: str, created: str) -> ImageSpec:
        return ImageSpec(
            "library/python",
            (f"{version}-slim",),
            "docker-list",
            (
                linux("amd64", slim_base, LayerSpec(64 * KiB), LayerSpec(24 * KiB, files=2)),
                linux(
                    "arm64",
                    slim_base,
                    LayerSpec(64 * KiB),
                    LayerSpec(24 * KiB, files=2),
                    variant="v8",
                ),
            ),
            created=created,
            cmd=("python3",),
        )

    return [
        ImageSpec(
            "library/alpine",
            ("3.19",),
            "docker",
            (linux("amd64", alpine_base, LayerSpec(32 * KiB)),),
            created="2024-01-27T00:00:00Z",
        ),
        ImageSpec(
            "library/alpine",
            ("3.20", "latest"),
            "docker",
            (linux("amd64", alpine_base, LayerSpec(40 * KiB)),),
            created="2024-05-22T00:00:00Z",
        ),
        ImageSpec(
            "library/busybox",
            ("1.36",),
            "docker",
            (linux("amd64", LayerSpec(96 * KiB, files=4)),),
            created="2024-03-01T00:00:00Z",
        ),
        ImageSpec(
            "library/debian",
            ("12-slim", "bookworm-slim"),
            "oci",
            (linux("amd64", slim_base),),
            created="2024-06-01T00:00:00Z",
            cmd=("bash",),
        ),
        python("3.12", "2024-06-10T00:00:00Z"),
        python("3.13", "2024-10-08T00:00:00Z"),
        redis("7.2.5", "2024-05-16T00:00:00Z"),
        redis("7.4.1", "2024-10-03T00:00:00Z"),
        redis("7.4.2", "2025-01-06T00:00:00Z"),
        *_node(),
        *_ruby(),
        ImageSpec(
            "ratelimitpreview/test",
            ("latest",),
            "docker",
            (linux("amd64", LayerSpec(4 * KiB)),),
            created="2020-10-01T00:00:00Z",
        ),
    ]


DEFAULT_CORPUS: list[ImageSpec] = _default_corpus()
