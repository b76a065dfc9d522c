"""Finding image references in a codebase: file kinds, Dockerfiles, `docker` command lines,
shell scripts and Makefiles, YAML files of every kind, and the fixture tree (tests/codebase)
that has them all, tricky cases included. Pure: texts in, references out (the tree is read
through `scan_paths`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirror.codebase import MAX_FILE_BYTES, ScannedFile, Unreadable, scan_paths
from mirror.scan import Found, Kind, Span, Status, kind_of, shell_shebang
from mirror.scan_dockerfile import scan_dockerfile
from mirror.scan_script import scan_makefile, scan_script
from mirror.scan_shell import MAX_NESTING, images_in_command
from mirror.scan_yaml import MalformedYaml, scan_yaml

CODEBASE = Path(__file__).parent / "codebase"


def refs(found: list[Found]) -> list[tuple[int, str, str]]:
    """(line, status, resolved reference or the text as written) of each reference."""
    return [(f.line, f.status.value, str(f.ref) if f.ref else f.text) for f in found]


def at(text: str, span: Span | None) -> str:
    """The text a span covers."""
    assert span is not None
    return text.splitlines()[span.line - 1][span.start : span.end]


# --- file kinds -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("Dockerfile", Kind.dockerfile),
        ("app/Containerfile", Kind.dockerfile),
        ("worker.Dockerfile", Kind.dockerfile),
        ("Dockerfile.dev", Kind.dockerfile),
        ("compose.yaml", Kind.compose),
        ("docker-compose.prod.yml", Kind.compose),
        (".github/workflows/ci.yml", Kind.github_actions),
        ("repo/.github/workflows/release.yaml", Kind.github_actions),
        ("buildspec.yml", Kind.buildspec),
        ("ci/buildspec-arm.yaml", Kind.buildspec),
        (".gitlab-ci.yml", Kind.gitlab_ci),
        ("chart/values.yaml", Kind.helm),
        ("chart/values-prod.yaml", Kind.helm),
        ("k8s/deployment.yaml", Kind.kubernetes),
        ("README.md", None),
        ("main.py", None),
        ("workflows/ci.yml", Kind.kubernetes),  # not under .github
        ("ci/build.sh", Kind.shell),
        ("deploy.bash", Kind.shell),
        ("scripts/release", Kind.shell),  # read only if its #! line is a shell's
        ("bin/run-tests", Kind.shell),
        ("tools/release", None),
        ("bin/tool.py", None),
        ("Makefile", Kind.makefile),
        ("sub/makefile", Kind.makefile),
        ("GNUmakefile", Kind.makefile),
        ("make/docker.mk", Kind.makefile),
    ],
)
def test_kind_of_a_file_comes_from_its_name(path: str, kind: Kind | None) -> None:
    assert kind_of(path) is kind


@pytest.mark.parametrize(
    ("head", "shell"),
    [
        (b"#!/bin/sh\n", True),
        (b"#!/usr/bin/env bash\nset -e", True),
        (b"#! /bin/bash -eu\n", True),
        (b"#!/usr/bin/env -S bash -x\n", True),
        (b"#!/bin/dash", True),
        (b"#!/usr/bin/python3\n", False),
        (b"#!/bin/shell\n", False),
        (b"\x7fELF\x02\x01", False),
        (b"docker pull x\n", False),
    ],
)
def test_a_script_without_a_suffix_is_known_by_its_shebang(head: bytes, shell: bool) -> None:
    assert shell_shebang(head) is shell


# --- Dockerfiles ------------------------------------------------------------------------

MULTI_STAGE = """\
# syntax=docker/dockerfile:1
ARG BASE=python:3.12-slim
FROM --platform=$BUILDPLATFORM golang:1.22 AS build
COPY --from=build /a /b
COPY --from=0 /a /c
COPY --from=busybox:1.36 /bin/busybox /busybox
RUN --mount=type=cache,from=alpine:3.19,target=/x true
FROM $BASE
from build as again
FROM scratch
"""


def test_dockerfile_multi_stage_build() -> None:
    found = scan_dockerfile("Dockerfile", MULTI_STAGE)
    assert refs(found) == [
        (3, "hub", "docker.io/library/golang:1.22"),
        (6, "hub", "docker.io/library/busybox:1.36"),
        (7, "hub", "docker.io/library/alpine:3.19"),
        (8, "hub", "docker.io/library/python:3.12-slim"),
    ]  # `build` (a stage), stage 0 and `scratch` are not images
    assert [at(MULTI_STAGE, f.site.whole) for f in found] == [
        "golang:1.22",
        "busybox:1.36",
        "alpine:3.19",
        "python:3.12-slim",  # FROM $BASE is rewritten where the ARG gives its default
    ]
    assert found[3].site.whole == Span(2, 9, 25)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FROM python", [(1, "hub", "docker.io/library/python")]),
        ("FROM index.docker.io/library/redis:7", [(1, "hub", "docker.io/library/redis:7")]),
        (
            "FROM registry-1.docker.io/bitnami/redis:7.4.1",
            [(1, "hub", "docker.io/bitnami/redis:7.4.1")],
        ),
        (
            "FROM python:3.12@sha256:" + "a" * 64,
            [(1, "hub", "docker.io/library/python:3.12@sha256:" + "a" * 64)],
        ),
        ("FROM quay.io/org/img:1", [(1, "other", "quay.io/org/img:1")]),
        ("FROM localhost:5000/img", [(1, "other", "localhost:5000/img")]),
        ("FROM ${NOPE}", [(1, "unresolved", "${NOPE}")]),
        ("ARG TAG\nFROM python:$TAG", [(2, "unresolved", "python:$TAG")]),
        ("ARG V=3.12\nFROM python:${V}-slim", [(2, "hub", "docker.io/library/python:3.12-slim")]),
        ("FROM python:${V:-3.13}", [(1, "hub", "docker.io/library/python:3.13")]),
        ("FROM Python:3", [(1, "unresolved", "Python:3")]),  # upper case: not a name
        ("  # FROM python:3\nFROM \\\n  node:20 AS x", [(2, "hub", "docker.io/library/node:20")]),
        ("# escape=`\nFROM `\n  node:20", [(2, "hub", "docker.io/library/node:20")]),
        ("FROM scratch\nCOPY --from=scratch /a /b", []),
        (
            "FROM alpine\nRUN <<EOF\nFROM not-an-instruction\nEOF\n"
            "COPY <<-'X' /f\nFROM no\nX\nFROM node",
            [(1, "hub", "docker.io/library/alpine"), (8, "hub", "docker.io/library/node")],
        ),
    ],
)
def test_dockerfile_references(text: str, expected: list[tuple[int, str, str]]) -> None:
    assert refs(scan_dockerfile("Dockerfile", text)) == expected


def test_dockerfile_arg_default_after_from_does_not_reach_from() -> None:
    text = "FROM alpine:3.19\nARG BASE=python:3\nFROM $BASE\n"
    assert refs(scan_dockerfile("Dockerfile", text))[1] == (3, "unresolved", "$BASE")


def test_dockerfile_variable_tag_is_rewritten_by_its_name() -> None:
    text = "ARG NODE=20\nFROM node:${NODE} AS build\n"
    (found,) = scan_dockerfile("Dockerfile", text)
    assert found.site.whole is None and at(text, found.site.repository) == "node"


def test_dockerfile_mirror_registry_is_switchable() -> None:
    text = "ARG MIRROR_REGISTRY=docker.io\nFROM ${MIRROR_REGISTRY}/library/python:3.12\n"
    (found,) = scan_dockerfile("Dockerfile", text)
    assert found.status is Status.hub and found.switchable
    assert str(found.ref) == "docker.io/library/python:3.12"
    (other,) = scan_dockerfile("Dockerfile", "FROM ${REGISTRY}/library/python:3.12\n")
    assert other.status is Status.unresolved and not other.switchable


# --- docker command lines ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "images"),
    [
        ("docker pull node:20", ["node:20"]),
        ("docker image pull -q node:20", ["node:20"]),
        ("docker run --rm -v a:b -w /src golang:1.22 go test", ["golang:1.22"]),
        ("docker run -it --name=t --rm alpine sh", ["alpine"]),
        ("sudo docker container run -d -p 80:80 nginx:1", ["nginx:1"]),
        ("docker build --cache-from=org/app:cache -t app .", ["org/app:cache"]),
        ("docker build --cache-from type=registry,ref=x/y -t app .", []),
        ("docker login -u x && docker pull a:1; docker push b:2", ["a:1"]),
        ("echo docker pull not-this", []),
        ("docker pull 'unclosed", ["unclosed"]),  # as the shell: to the end
        ('docker run "a:1 && docker pull b:1', ["a:1 && docker pull b:1"]),
        ("docker pull --platform linux/arm64 python:3.12", ["python:3.12"]),
        ("docker run -dp 80:80 nginx:2 && docker run -p80:80 nginx:3", ["nginx:2", "nginx:3"]),
        ("docker run -e X --entrypoint sh -u 1 --network host a:1 -c 'x'", ["a:1"]),
        ("docker run --platform=linux/amd64 -w=/w --sig-proxy -it b:1", ["b:1"]),
        (
            "docker --context remote -D run --rm redis:7 && /usr/bin/docker pull c:1",
            ["redis:7", "c:1"],
        ),
        ("docker build --build-arg BASE=python:3.12 -t app . && docker buildx build .", []),
        ("docker compose pull && docker compose run web && docker push a:1", []),
        ("docker buildx create ctx && docker buildx build --cache-from=c:1 .", ["c:1"]),
        ("X=1 docker pull x:2 > /dev/null 2>&1 || exit 1", ["x:2"]),
        (
            "env -u HOME DOCKER_CONFIG=/c docker pull y:3 && sudo -E -u ci docker pull z:3",
            ["y:3", "z:3"],
        ),
        ("if docker pull a:1; then docker run --rm b:1; fi", ["a:1", "b:1"]),
        (
            'id=$(docker create c:1) && echo `docker pull d:1` "$(docker pull e:1)"',
            ["c:1", "d:1", "e:1"],
        ),
        ("docker run \\\n  --rm \\\n  node:20 npm test", ["node:20"]),
        ("docker pull x:1 # docker pull y:2\n# docker pull z:3", ["x:1"]),
        ("cat <<-EOF > f\n\tdocker pull no:1\n\tEOF\ndocker pull yes:1", ["yes:1"]),
        ('docker run --rm "$IMAGE" && docker pull python:${TAG}', ["$IMAGE", "python:${TAG}"]),
        ("docker pull 'q:1' \"r:1\" && docker run -e 'a b' s:1", ["q:1", "s:1"]),
    ],
)
def test_images_in_command(command: str, images: list[str]) -> None:
    assert images_in_command(command) == images


def test_commands_nested_in_substitutions_are_read_to_a_bound() -> None:
    nested = "echo " + "$(echo " * 5 + "`docker pull deep:1`" + ")" * 5 + " && docker pull after:1"
    assert images_in_command(nested) == ["deep:1", "after:1"]
    too_deep = "$(" * (MAX_NESTING + 1) + "docker pull deeper:1" + ")" * (MAX_NESTING + 1)
    assert images_in_command(too_deep + "; docker pull after:1") == ["after:1"]
    unclosed = '"$(' * 5_000  # each level once: no reading it again and again
    assert images_in_command(unclosed + "docker pull x:1") == []


# --- shell scripts and Makefiles -------------------------------------------------------

SCRIPT = """\
#!/bin/sh
docker pull "python:3.12"   # quoted
docker run --rm \\
  -v "$PWD:/src" \\
  node:20 npm test
docker pull python:"3.12" && docker pull $IMAGE
docker pull ghcr.io/org/tool:1\r
"""


def test_shell_script_references_and_where_they_stand() -> None:
    found = scan_script("ci.sh", SCRIPT)
    assert [(f.line, f.kind, f.status.value, f.text) for f in found] == [
        (2, Kind.shell, "hub", "python:3.12"),
        (5, Kind.shell, "hub", "node:20"),  # on the line the continuation brings it to
        (6, Kind.shell, "hub", "python:3.12"),
        (6, Kind.shell, "unresolved", "$IMAGE"),
        (7, Kind.shell, "other", "ghcr.io/org/tool:1"),
    ]
    assert [at(SCRIPT, f.site.whole) if f.site.whole else None for f in found] == [
        "python:3.12",  # inside its quotes
        "node:20",
        None,  # written in pieces (`python:"3.12"`): found, not rewritable
        "$IMAGE",
        "ghcr.io/org/tool:1",  # without the carriage return
    ]


MAKEFILE = """\
IMAGE := python:3.12
BUILD = docker pull not-a-recipe:1
test: deps
\t@docker run --rm -v "$$PWD:/src" $(IMAGE) pytest
\t-docker pull redis:7.2 \\
\t  && docker run -d postgres:16
lint: ; docker run --rm -i hadolint/hadolint:2.12.0 < Dockerfile
check: X := docker pull not-a-recipe:2
# docker pull commented:1
define CANNED
\t+docker create busybox:1.36
endef
"""


def test_makefile_recipes() -> None:
    found = scan_makefile("Makefile", MAKEFILE)
    assert refs(found) == [
        (4, "unresolved", "$(IMAGE)"),  # a make variable: not resolved
        (5, "hub", "docker.io/library/redis:7.2"),
        (6, "hub", "docker.io/library/postgres:16"),
        (7, "hub", "docker.io/hadolint/hadolint:2.12.0"),  # `target: ; recipe`
        (11, "hub", "docker.io/library/busybox:1.36"),
    ]  # variable definitions and comments are no recipes
    assert {f.kind for f in found} == {Kind.makefile}
    assert [at(MAKEFILE, f.site.whole) for f in found[1:]] == [
        "redis:7.2",
        "postgres:16",
        "hadolint/hadolint:2.12.0",
        "busybox:1.36",
    ]


# --- YAML files -------------------------------------------------------------------------


def test_compose_service_with_build_pulls_nothing() -> None:
    text = (
        "services:\n  web:\n    build: .\n  named:\n    build: .\n    image: me/web:dev\n"
        "  db:\n    image: 'postgres:16'   # quoted\n"
    )
    found = scan_yaml("compose.yaml", Kind.compose, text)
    assert refs(found) == [(8, "hub", "docker.io/library/postgres:16")]
    assert at(text, found[0].site.whole) == "postgres:16"


def test_helm_split_repository_and_tag() -> None:
    text = (
        "image:\n  repository: bitnami/redis\n  tag: 7.4.1\n"
        "exporter:\n  image:\n    registry: docker.io\n    repository: bitnami/exporter\n"
        "    tag: '1.62'\n"
        "sidecar:\n  repository: library/python\n  tag: 3.10   # a float to YAML\n"
        "app:\n  image: {repository: example/app, tag: ''}\n"
        "flow: {image: {repository: library/python, tag: 3.10, digest: 'sha256:%s'}}\n"
    ) % ("c" * 64)
    found = scan_yaml("values.yaml", Kind.helm, text)
    assert refs(found) == [
        (2, "hub", "docker.io/bitnami/redis:7.4.1"),
        (7, "hub", "docker.io/bitnami/exporter:1.62"),
        (10, "hub", "docker.io/library/python:3.10"),
        (13, "unresolved", "example/app:{{ .Chart.AppVersion }}"),
        (14, "hub", "docker.io/library/python:3.10@sha256:" + "c" * 64),
    ]
    assert at(text, found[0].site.repository) == "bitnami/redis"
    assert at(text, found[1].site.registry) == "docker.io"
    assert at(text, found[1].site.repository) == "bitnami/exporter"


def test_kubernetes_only_reads_manifests() -> None:
    text = (
        "image: not-a-manifest\n---\napiVersion: v1\nkind: Pod\nspec:\n  containers:\n"
        "    - {name: a, image: nginx}\n    - name: b\n      image: ghcr.io/x/y:1\n"
    )
    assert refs(scan_yaml("pod.yaml", Kind.kubernetes, text)) == [
        (7, "hub", "docker.io/library/nginx"),
        (9, "other", "ghcr.io/x/y:1"),
    ]


def test_github_actions_container_services_and_docker_uses() -> None:
    text = (
        "jobs:\n  a:\n    container: node:20\n    services:\n      db: {image: postgres:16}\n"
        "    steps:\n      - uses: actions/checkout@v4\n      - uses: docker://alpine:3.19\n"
        "  b:\n    container:\n      image: ruby:3.3\n"
    )
    found = scan_yaml("ci.yml", Kind.github_actions, text)
    assert refs(found) == [
        (3, "hub", "docker.io/library/node:20"),
        (5, "hub", "docker.io/library/postgres:16"),
        (8, "hub", "docker.io/library/alpine:3.19"),
        (11, "hub", "docker.io/library/ruby:3.3"),
    ]
    assert at(text, found[2].site.whole) == "alpine:3.19"


def test_gitlab_ci_image_and_services() -> None:
    text = (
        "image: ruby:3.3\nservices:\n  - postgres:16\n  - {name: redis:7.2, alias: c}\n"
        "job:\n  image: {name: $CI_REGISTRY/x:1}\n  services: [mysql:8]\n"
    )
    assert refs(scan_yaml(".gitlab-ci.yml", Kind.gitlab_ci, text)) == [
        (1, "hub", "docker.io/library/ruby:3.3"),
        (3, "hub", "docker.io/library/postgres:16"),
        (4, "hub", "docker.io/library/redis:7.2"),
        (6, "unresolved", "$CI_REGISTRY/x:1"),
        (7, "hub", "docker.io/library/mysql:8"),
    ]


def test_buildspec_commands_and_batch_image() -> None:
    text = (
        "version: 0.2\nbatch:\n  build-list:\n    - env: {image: aws/codebuild/standard:7.0}\n"
        "    - env: {image: maven:3.9}\nphases:\n  build:\n    commands:\n"
        "      - docker pull node:20\n      - |\n        echo one\n"
        "        docker run --rm golang:1.22 go version\n    finally:\n"
        "      - docker pull busybox:1.36\n"
    )
    found = scan_yaml("buildspec.yml", Kind.buildspec, text)
    assert refs(found) == [
        (5, "hub", "docker.io/library/maven:3.9"),  # CodeBuild's own image skipped
        (9, "hub", "docker.io/library/node:20"),
        (12, "hub", "docker.io/library/golang:1.22"),  # inside a block scalar
        (14, "hub", "docker.io/library/busybox:1.36"),
    ]
    assert at(text, found[2].site.whole) == "golang:1.22"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("image: [unclosed\n", "malformed YAML (line 2)"),
        ("a: b\na: c\n", "malformed YAML (line 2)"),  # a key given twice
        ("- " * 200 + "x\n", "nested more than 64 levels deep"),
    ],
)
def test_malformed_yaml_is_one_reason(text: str, reason: str) -> None:
    with pytest.raises(MalformedYaml) as caught:
        scan_yaml("x.yaml", Kind.compose, text)
    assert str(caught.value).startswith(reason) and "\n" not in str(caught.value)


def test_aliases_are_walked_once() -> None:
    text = "x: &a {image: redis:7}\ny: [*a, *a, *a]\nz: &l [*l]\n"
    assert refs(scan_yaml("x.yaml", Kind.compose, text)) == [
        (1, "hub", "docker.io/library/redis:7")
    ]


# --- the fixture tree -------------------------------------------------------------------


def scan_tree() -> tuple[dict[str, list[Found]], dict[str, str]]:
    scanned: dict[str, list[Found]] = {}
    unreadable: dict[str, str] = {}
    for result in scan_paths([CODEBASE]):
        name = Path(result.file).relative_to(CODEBASE).as_posix()
        if isinstance(result, ScannedFile):
            scanned[name] = result.found
        else:
            unreadable[name] = result.problem
    return scanned, unreadable


def test_fixture_tree_every_kind() -> None:
    scanned, unreadable = scan_tree()
    kinds = {f.kind for found in scanned.values() for f in found}
    assert kinds == set(Kind)
    hub = {(n, f.line, str(f.ref)) for n, found in scanned.items() for f in found if f.ref}
    assert ("app/Dockerfile", 10, "docker.io/library/python:3.12-slim") in hub  # FROM $BASE
    assert ("chart/values.yaml", 2, "docker.io/bitnami/redis:7.4.1") in hub
    assert ("ci/buildspec.yml", 15, "docker.io/myorg/app:cache") in hub
    assert ("k8s/deployment.yaml", 12, "docker.io/library/nginx") in hub
    assert ("scripts/ci.sh", 10, "docker.io/library/busybox:1.36") in hub  # continued lines
    assert ("scripts/release", 2, "docker.io/library/golang:1.22") in hub  # by its #! line
    assert ("Makefile", 7, "docker.io/hadolint/hadolint:2.12.0") in hub
    assert ("infra/pipeline.yaml", 40, "docker.io/library/nginx:1.25") in hub
    assert ("infra/task.json", 11, "docker.io/library/redis:7.2") in hub
    assert ("infra/main.tf", 46, "docker.io/library/postgres:16") in hub
    shell = [f.text for f in scanned["scripts/ci.sh"]]
    assert "python:3.11" not in shell and "quoted:1" not in shell and "heredoc:1" not in shell
    assert "k8s/settings.yaml" in scanned and scanned["k8s/settings.yaml"] == []
    assert "chart/templates/deployment.yaml" not in scanned | unreadable  # a Helm template
    statuses = {n: {f.status for f in found} for n, found in scanned.items()}
    assert Status.unresolved in statuses["worker/worker.Dockerfile"]
    assert Status.other in statuses["k8s/deployment.yaml"]


def test_fixture_tree_unreadable_files_are_reported_and_skipped() -> None:
    scanned, unreadable = scan_tree()
    assert unreadable == {
        "broken/Dockerfile": "a binary file",
        "broken/compose.yaml": "malformed YAML (line 4): expected ',' or ']', but got"
        " '<stream end>'",
    }
    assert sorted(scanned) == [
        ".github/workflows/ci.yml",
        ".gitlab-ci.yml",
        "Makefile",
        "app/Dockerfile",
        "chart/values.yaml",
        "ci/buildspec.yml",
        "compose.yaml",
        "infra/main.tf",
        "infra/pipeline.yaml",
        "infra/task.json",
        "k8s/deployment.yaml",
        "k8s/settings.yaml",
        "scripts/ci.sh",
        "scripts/release",
        "worker/worker.Dockerfile",
    ]  # bin/helper has no #! line of a shell, infra/package.json is no template: neither
    # read nor reported


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_bytes(b"FROM \xff\xfe\n")
    (tmp_path / "big.Dockerfile").write_text("#" * (MAX_FILE_BYTES + 1))
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "Dockerfile").write_text("FROM python\n")
    results = list(scan_paths([tmp_path, tmp_path / "missing"]))
    assert all(isinstance(r, Unreadable) for r in results)
    assert [(Path(r.file).name, r.problem) for r in results if isinstance(r, Unreadable)] == [
        ("Dockerfile", "not UTF-8 text (byte 6)"),
        ("big.Dockerfile", "larger than 1024 KiB, the most mirror reads"),
        ("missing", "no such file or directory"),
    ]


def test_a_script_without_a_suffix_is_read_when_its_first_line_runs_a_shell(
    tmp_path: Path,
) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "deploy").write_text("#!/bin/bash\ndocker pull node:20\n")
    (scripts / "notes").write_text("docker pull not-a-script:1\n")
    (scripts / "tool").write_bytes(b"\x7fELF\0\0docker pull x:1\n")
    (tmp_path / "run-ci").write_text("#!/bin/sh -e\ndocker pull alpine:3.19\n")
    results = list(scan_paths([scripts, tmp_path / "run-ci"]))
    assert [(Path(r.file).name, r.kind, refs(r.found)) for r in results] == [
        ("deploy", Kind.shell, [(2, "hub", "docker.io/library/node:20")]),
        ("run-ci", Kind.shell, [(2, "hub", "docker.io/library/alpine:3.19")]),  # named
    ]  # `notes` and the binary `tool` are neither read nor reported
