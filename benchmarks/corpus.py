"""The benchmark's corpus: shaped like what teams mirror, not like one big image.

Issue 12 measured on 627 MB in 101 blobs, 57 manifests and 48 tags. The speed of a sync
depends on that shape as much as on the bytes: many tags per digest (planning, tags written
from another tag's copy), base layers shared between images (a blob copied once), OCI
indexes with attestations (many small manifests, each a pull), and a few 50-150 MB layers
(a run that ends waiting on its largest blob). At ``scale=1`` this corpus is about 655 MB
in 112 blobs, 50 manifests and 44 tags; ``scale`` shrinks every layer, not the shape.

Layers are built by ``tests.world.corpus`` (real gzip'd tars of random bytes); the sizes
here are uncompressed MiB, and random bytes do not compress, so blobs are about as large.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tests.world.corpus import (
    Corpus,
    ImageSpec,
    Kind,
    LayerSpec,
    MiB,
    big_image,
    linux,
)

BIG_REPOSITORY = ("bench/big", "1")
MANY_REPOSITORY = "bench/many"
ARM = ("arm64", "v8")


def _layer(mib: float, scale: float, seed: str | None = None, files: int = 2) -> LayerSpec:
    # the world's own `scale` would also shrink the 1 GiB layer: sizes are scaled here
    return LayerSpec(max(1024, int(mib * MiB * scale)), seed=seed, files=files)


@dataclass(frozen=True)
class Build:
    """One build of an image: its tags, and its own layers (MiB) after the shared ones."""

    tags: tuple[str, ...]
    own: tuple[float, ...]
    created: str


def _image(
    repository: str,
    kind: Kind,
    build: Build,
    shared: Sequence[tuple[str, float]],
    scale: float,
    *,
    multi: bool,
    attestations: bool = False,
) -> ImageSpec:
    """An image whose layers are the `shared` ones (same seed: byte-identical wherever they
    appear on the same platform) followed by the build's own."""
    arches: list[tuple[str, str | None]] = [("amd64", None)] + ([ARM] if multi else [])
    platforms = tuple(
        linux(
            arch,
            *(_layer(mib, scale, seed=seed) for seed, mib in shared),
            *(
                _layer(mib, scale, seed=f"{repository}:{build.tags[0]}:{i}")
                for i, mib in enumerate(build.own)
            ),
            variant=variant,
        )
        for arch, variant in arches
    )
    return ImageSpec(
        repository,
        build.tags,
        kind,
        platforms,
        attestations=attestations,
        created=build.created,
    )


def sync_corpus(scale: float) -> list[ImageSpec]:
    """The images both tools sync: 7 repositories, 16 builds, 44 tags."""
    os_base = ("base-os", 24.0)  # shared by python, node, ml and jdk
    slim = ("base-slim", 6.0)  # shared by db, redis and tool
    yarn = ("yarn", 1.0)  # shared by every node build
    specs: list[ImageSpec] = []
    for b in (
        Build(("3.13", "3.13.1", "3", "latest"), (10, 2, 0.5), "2024-12-04T00:00:00Z"),
        Build(("3.12", "3.12.8"), (10, 2, 0.5), "2024-12-04T00:00:00Z"),
        Build(("3.11", "3.11.11"), (9, 2, 0.5), "2024-12-04T00:00:00Z"),
        Build(("3.10", "3.10.16"), (9, 2, 0.5), "2024-12-04T00:00:00Z"),
    ):
        specs.append(
            _image("bench/python", "oci-index", b, [os_base], scale, multi=True, attestations=True)
        )
    for b in (
        Build(("22", "22.12", "22.12.0", "current"), (9,), "2024-12-03T00:00:00Z"),
        Build(("20", "20.18", "20.18.1", "lts", "iron"), (9,), "2024-11-20T00:00:00Z"),
        Build(("18", "18.20"), (8,), "2024-07-08T00:00:00Z"),
    ):
        specs.append(_image("bench/node", "docker-list", b, [os_base, yarn], scale, multi=True))
    for b in (
        Build(("2.5", "2.5.1", "latest"), (150, 3), "2024-11-28T00:00:00Z"),
        Build(("2.4", "2.4.1"), (100, 3), "2024-07-24T00:00:00Z"),
    ):
        specs.append(_image("bench/ml", "docker", b, [os_base], scale, multi=False))
    for b in (
        Build(("21", "21.0.5", "latest"), (60, 1), "2024-10-15T00:00:00Z"),
        Build(("17", "17.0.13"), (50, 1), "2024-10-15T00:00:00Z"),
    ):
        specs.append(_image("bench/jdk", "oci", b, [os_base], scale, multi=False))
    for b in (
        Build(("16", "16.6", "latest"), (8, 1), "2024-11-14T00:00:00Z"),
        Build(("15", "15.10"), (8, 1), "2024-11-14T00:00:00Z"),
    ):
        specs.append(
            _image("bench/db", "oci-index", b, [slim], scale, multi=True, attestations=True)
        )
    specs.append(
        _image(
            "bench/redis",
            "oci-index",
            Build(("7.4", "7.4.2", "7", "latest"), (3, 0.2), "2025-01-06T00:00:00Z"),
            [slim],
            scale,
            multi=True,
            attestations=True,
        )
    )
    for b in (
        Build(("1.36", "1.36.1", "latest"), (2,), "2024-09-26T00:00:00Z"),
        Build(("1.35",), (2,), "2023-01-03T00:00:00Z"),
    ):
        specs.append(_image("bench/tool", "docker", b, [slim], scale, multi=False))
    return specs


def many_tags(count: int) -> list[ImageSpec]:
    """``count`` tags on five tiny manifests: planning is HEADs per tag, not bytes."""
    tags = [f"v{i:04d}" for i in range(count)]
    per = -(-count // 5)
    return [
        ImageSpec(
            MANY_REPOSITORY,
            tuple(tags[i : i + per]),
            "docker",
            (linux("amd64", LayerSpec(1024, seed=f"many-{i}")),),
        )
        for i in range(0, count, per)
    ]


def big_layer(gib: float) -> ImageSpec:
    """One image of one layer of ``gib`` GiB (not scaled: it measures memory, not speed)."""
    return big_image(*BIG_REPOSITORY, [int(gib * 1024 * MiB)], kind="docker", files_per_layer=1)


@dataclass(frozen=True)
class Shape:
    """What a set of tags holds, counted the way the issue counts."""

    repositories: int
    tags: int
    manifests: int  # distinct: indexes, platform manifests, attestations
    blobs: int  # distinct configs and layers
    bytes: int  # of the distinct blobs

    def describe(self) -> str:
        return (
            f"{self.bytes / 1e6:.0f} MB in {self.blobs} blobs, {self.manifests} manifests, "
            f"{self.tags} tags, {self.repositories} repositories"
        )


def shape(corpus: Corpus, repositories: Sequence[str]) -> Shape:
    """Count the distinct manifests, blobs and bytes of the given repositories' tags (a
    blob shared by two repositories counts once, as the issue counts)."""
    entries = [e for e in corpus if e.repository in repositories]
    manifests = {e.digest for e in entries}
    for e in entries:
        if e.is_index:
            manifests.update(m.digest for m in e.manifests)
    blobs = {b for e in entries for b in e.blobs}
    return Shape(
        repositories=len({e.repository for e in entries}),
        tags=len(entries),
        manifests=len(manifests),
        blobs=len(blobs),
        bytes=sum(corpus.blob_sizes[b] for b in blobs),
    )


def blob_jobs(
    corpus: Corpus, repositories: Sequence[str], *, per_repository: bool
) -> list[tuple[str, str, int]]:
    """(repository, digest, size): the blobs the bound moves, largest first.

    With mounting on (ECR's BLOB_MOUNTING, the front's default), a blob shared by several
    repositories has to cross the wire once: it is listed once, under the first repository
    that refers to it. With mounting off (``per_repository``) every repository must receive
    its own upload, so it is listed once per repository: the least any tool can move."""
    seen: set[tuple[str, str]] = set()
    jobs: list[tuple[str, str, int]] = []
    for e in corpus:
        if e.repository not in repositories:
            continue
        for b in e.blobs:
            key = (e.repository if per_repository else "", b)
            if key not in seen:
                seen.add(key)
                jobs.append((e.repository, b, corpus.blob_sizes[b]))
    jobs.sort(key=lambda job: -job[2])
    return jobs


def tags_by_repository(corpus: Corpus, repositories: Sequence[str]) -> dict[str, list[str]]:
    """{repository: its tags, in push order}: the list both tools are told to sync."""
    out: dict[str, list[str]] = {r: [] for r in repositories}
    for e in corpus:
        if e.repository in out:
            out[e.repository].append(e.tag)
    return out


def single_platform(corpus: Corpus, repositories: Sequence[str]) -> dict[str, list[str]]:
    """{repository: tags} of the single-manifest images: what the Docker engine can copy
    without choosing a platform."""
    out: dict[str, list[str]] = {}
    for e in corpus:
        if e.repository in repositories and not e.is_index:
            out.setdefault(e.repository, []).append(e.tag)
    return out
