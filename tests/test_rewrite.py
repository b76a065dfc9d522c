"""Pointing references at the mirror (`mirror.rewrite`) in every kind of file, and merging
found images into a config (`mirror.config_merge`). Pure: texts in, texts out."""

from __future__ import annotations

import json

import pytest

from mirror.cfn_yaml import load as cfn_load
from mirror.commands.discover import wanted_images
from mirror.config import parse_config
from mirror.config_merge import merge_images, short_name
from mirror.errors import ConfigError
from mirror.rewrite import ARG_LINE, plan_rewrite, rewritten
from mirror.scan import Kind
from mirror.scan_cfn import scan_manifests_and_templates, scan_template
from mirror.scan_dockerfile import scan_dockerfile
from mirror.scan_script import scan_makefile, scan_script
from mirror.scan_terraform import scan_terraform
from mirror.scan_yaml import scan_yaml

HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
ECR = f"{HOST}/dockerhub"
CONFIG = parse_config(
    f"""\
version: 1
target: {{registry: "https://{HOST}"}}
images:
  - image: python
    tags: ["3.12-slim", "3.12"]
  - image: node
    tags: {{semver: ">=20,<23"}}
  - image: bitnami/redis
    tags: [7.4.1]
  - image: alpine
    tags:
      - latest
      - "3.19"
      - sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc
""",
    "images.yaml",
)


def rewrite_dockerfile(text: str, *, build_arg: bool = False) -> tuple[str, list[str]]:
    decisions = plan_rewrite(
        CONFIG, scan_dockerfile("Dockerfile", text), host=HOST, build_arg=build_arg
    )
    return rewritten(text, decisions), [
        f"{d.found.line}: {d.reason}" for d in decisions if d.reason
    ]


def test_rewrite_keeps_everything_but_the_references() -> None:
    text = (
        "# syntax=docker/dockerfile:1\r\n"
        "ARG BASE=python:3.12-slim\r\n"
        "FROM --platform=$BUILDPLATFORM node:20 AS build   # the builder\r\n"
        "COPY --from=alpine /a /b\r\n"
        "FROM $BASE\r\n"
        "FROM $BASE AS again\r\n"
        "FROM python:3.12@sha256:" + "a" * 64 + "\r\n"
    )
    new, reasons = rewrite_dockerfile(text)
    assert new == (
        "# syntax=docker/dockerfile:1\r\n"
        f"ARG BASE={ECR}/library/python:3.12-slim\r\n"
        f"FROM --platform=$BUILDPLATFORM {ECR}/library/node:20 AS build   # the builder\r\n"
        f"COPY --from={ECR}/library/alpine /a /b\r\n"
        "FROM $BASE\r\n"
        "FROM $BASE AS again\r\n"
        f"FROM {ECR}/library/python:3.12@sha256:" + "a" * 64 + "\r\n"
    )
    assert reasons == []


def test_references_the_config_does_not_mirror_stay() -> None:
    text = (
        "FROM python:3.11\nFROM node:18\nFROM golang:1.22\nFROM quay.io/x/y:1\n"
        "FROM python@sha256:" + "b" * 64 + "\nFROM ${X}\n"
    )
    new, reasons = rewrite_dockerfile(text)
    assert new == text
    assert reasons == [
        "1: tag 3.11 is not mirrored for python (its tags: 3.12-slim, 3.12)",
        "2: tag 18 does not match the tag selector of node",
        "3: library/golang is not in images.yaml; nothing mirrors it",
        "5: python pins no such digest; give IMAGE[:TAG], and --digest prints the digest reference",
    ]  # other registries and unresolved variables are not Docker Hub references


def test_a_digest_the_config_pins_is_rewritten_with_its_digest() -> None:
    pinned = "sha256:" + "c" * 64
    new, reasons = rewrite_dockerfile(f"FROM alpine@{pinned}\n")
    assert (new, reasons) == (f"FROM {ECR}/library/alpine@{pinned}\n", [])


def test_build_arg_mode() -> None:
    text = "# syntax=docker/dockerfile:1\n\nARG BASE=python:3.12\nFROM $BASE\nFROM node:21\n"
    new, _ = rewrite_dockerfile(text, build_arg=True)
    assert new == (
        "# syntax=docker/dockerfile:1\n\n"
        f"{ARG_LINE}\n"
        "ARG BASE=${MIRROR_REGISTRY}/library/python:3.12\n"
        "FROM $BASE\n"
        "FROM ${MIRROR_REGISTRY}/library/node:21\n"
    )
    again, reasons = rewrite_dockerfile(new, build_arg=True)
    assert again == new and reasons == []  # done: the ARG is not added twice


def test_variable_tag_keeps_its_variable() -> None:
    new, _ = rewrite_dockerfile("ARG V=3.12\nFROM python:${V}\n")
    assert new == f"ARG V=3.12\nFROM {ECR}/library/python:${{V}}\n"


def test_yaml_rewrite_split_forms_and_comments() -> None:
    text = (
        "# values\nimage:\n  repository: bitnami/redis   # keep me\n  tag: 7.4.1\n"
        "other:\n  image:\n    registry: docker.io\n    repository: bitnami/redis\n"
        "    tag: 7.4.1\nplain:\n  image: 'alpine'\n"
    )
    found = scan_yaml("values.yaml", Kind.helm, text)
    new = rewritten(text, plan_rewrite(CONFIG, found, host=HOST))
    assert new == (
        f"# values\nimage:\n  repository: {ECR}/bitnami/redis   # keep me\n  tag: 7.4.1\n"
        f"other:\n  image:\n    registry: {HOST}\n    repository: dockerhub/bitnami/redis\n"
        f"    tag: 7.4.1\nplain:\n  image: '{ECR}/library/alpine'\n"
    )


def test_yaml_needs_the_registry_host() -> None:
    found = scan_yaml("compose.yaml", Kind.compose, "services:\n  a:\n    image: alpine\n")
    (decision,) = plan_rewrite(CONFIG, found, host=None, build_arg=True)
    assert decision.reason == "the ECR registry is not known" and not decision.edits


def test_shell_script_rewrite_keeps_quotes_continuations_and_comments() -> None:
    text = (
        "#!/bin/sh\r\n"
        'docker pull "python:3.12"   # the interpreter\r\n'
        "docker run --rm \\\r\n"
        "  -e CI=1 alpine:3.19 true && docker pull golang:1.22\r\n"
        'docker pull python:"3.12" $IMAGE ghcr.io/x/y:1\r\n'
    )
    decisions = plan_rewrite(CONFIG, scan_script("ci.sh", text), host=HOST, build_arg=True)
    assert rewritten(text, decisions) == (
        "#!/bin/sh\r\n"
        f'docker pull "{ECR}/library/python:3.12"   # the interpreter\r\n'
        "docker run --rm \\\r\n"
        f"  -e CI=1 {ECR}/library/alpine:3.19 true && docker pull golang:1.22\r\n"
        'docker pull python:"3.12" $IMAGE ghcr.io/x/y:1\r\n'
    )  # --build-arg is for Dockerfiles: a script gets the ECR reference written out
    assert [(d.found.line, d.reason) for d in decisions if d.reason] == [
        (4, "library/golang is not in images.yaml; nothing mirrors it"),
        (5, "written over several lines or in pieces; change it by hand"),
    ]


def test_makefile_rewrite_changes_recipes_only() -> None:
    text = (
        "BASE = python:3.12\n"
        "test:\n"
        '\t@docker run --rm -v "$$PWD:/src" python:3.12 pytest\n'
        "lint: ; docker pull bitnami/redis:7.4.1\n"
    )
    new = rewritten(text, plan_rewrite(CONFIG, scan_makefile("Makefile", text), host=HOST))
    assert new == (
        "BASE = python:3.12\n"
        "test:\n"
        f'\t@docker run --rm -v "$$PWD:/src" {ECR}/library/python:3.12 pytest\n'
        f"lint: ; docker pull {ECR}/bitnami/redis:7.4.1\n"
    )


def test_cloudformation_rewrite_keeps_tags_comments_and_json() -> None:
    """In place inside the short-form tags and JSON's quotes; `build_arg` is for Dockerfiles
    only; the template still loads, with only the images changed."""
    text = (
        "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  Task:\n"
        "    Type: AWS::ECS::TaskDefinition\n    Properties:\n      ContainerDefinitions:\n"
        "        - {Name: a, Image: !Sub 'python:3.12'}   # the app\n"
        "        - {Name: b, Image: !Ref Other}\n"
        '        - {Name: c, Image: "alpine:3.19"}\n'
    )
    found = scan_manifests_and_templates("stack.yaml", text)
    new = rewritten(text, plan_rewrite(CONFIG, found, host=HOST, build_arg=True))
    assert new.splitlines()[6:] == [
        f"        - {{Name: a, Image: !Sub '{ECR}/library/python:3.12'}}   # the app",
        "        - {Name: b, Image: !Ref Other}",
        f'        - {{Name: c, Image: "{ECR}/library/alpine:3.19"}}',
    ]
    images = [
        c["Image"] for c in cfn_load(new)["Resources"]["Task"]["Properties"]["ContainerDefinitions"]
    ]
    assert images == [
        {"Fn::Sub": f"{ECR}/library/python:3.12"},
        {"Ref": "Other"},
        f"{ECR}/library/alpine:3.19",
    ]
    document = {
        "Resources": {
            "Job": {
                "Type": "AWS::Batch::JobDefinition",
                "Properties": {"ContainerProperties": {"Image": "alpine:3.19", "Vcpus": 1}},
            }
        }
    }
    text = json.dumps(document, indent="\t")
    new = rewritten(text, plan_rewrite(CONFIG, scan_template("job.json", text), host=HOST))
    properties = document["Resources"]["Job"]["Properties"]
    properties["ContainerProperties"]["Image"] = f"{ECR}/library/alpine:3.19"
    assert json.loads(new) == document and new == json.dumps(document, indent="\t")


def test_terraform_rewrite_keeps_quotes_comments_and_heredocs() -> None:
    text = (
        'resource "kubernetes_pod" "p" {\n'
        '  spec { container { image = "python:3.12" } } # keep\n}\n'
        'resource "aws_ecs_task_definition" "t" {\n  container_definitions = <<-EOF\n'
        '    [{"image": "alpine:3.19"}, {"image": "golang:1.22"}]\n  EOF\n}\n'
        'resource "docker_image" "b" { name = "bitnami/redis:7.4.1" }\n'
    )
    found = scan_terraform("main.tf", text)
    decisions = plan_rewrite(CONFIG, found, host=HOST, build_arg=True)
    assert rewritten(text, decisions) == (
        'resource "kubernetes_pod" "p" {\n'
        f'  spec {{ container {{ image = "{ECR}/library/python:3.12" }} }} # keep\n}}\n'
        'resource "aws_ecs_task_definition" "t" {\n  container_definitions = <<-EOF\n'
        f'    [{{"image": "{ECR}/library/alpine:3.19"}}, {{"image": "golang:1.22"}}]\n  EOF\n}}\n'
        f'resource "docker_image" "b" {{ name = "{ECR}/bitnami/redis:7.4.1" }}\n'
    )
    assert [d.reason for d in decisions if d.reason] == [
        "library/golang is not in images.yaml; nothing mirrors it"
    ]


# --- merging into the config --------------------------------------------------------------

ORIGINAL = """\
version: 1
# what we mirror
images:
  - image: python   # the interpreter
    tags: ["3.12-slim"]
  - image: node
    tags: {semver: ">=20,<23"}

  # from bitnami
  - image: bitnami/redis
    tags:
      - 7.4.1
"""


def test_merge_appends_and_extends_keeping_comments_and_order() -> None:
    merged = merge_images(
        ORIGINAL,
        "images.yaml",
        {
            "library/python": ["3.12-slim", "3.13"],
            "library/node": ["21", "18"],
            "bitnami/redis": ["7.4.2"],
            "library/alpine": ["3.19", "latest"],
        },
    )
    assert merged.text == ORIGINAL.replace(
        'tags: ["3.12-slim"]', "tags: [\"3.12-slim\", '3.13']"
    ).replace("      - 7.4.1\n", "      - 7.4.1\n      - 7.4.2\n") + (
        "  - image: alpine\n    tags: ['3.19', latest]\n"
    )
    assert merged.added_images == ["alpine"]
    assert merged.added_tags == ["python:3.13", "bitnami/redis:7.4.2"]
    assert merged.notes == [
        "node:18: the entry's tag selector does not take it; change the selector to mirror it"
    ]
    parse_config(merged.text)  # still a valid config


def test_merge_without_changes_keeps_the_text() -> None:
    merged = merge_images(ORIGINAL, "images.yaml", {"library/python": ["3.12-slim"]})
    assert merged.text == ORIGINAL and merged.added_images == merged.added_tags == []


def test_merge_into_a_new_file() -> None:
    merged = merge_images(None, "images.yaml", {"bitnami/redis": ["7.4.1"]})
    assert merged.text == "version: 1\nimages:\n  - image: bitnami/redis\n    tags: [7.4.1]\n"


def test_a_reference_by_digest_alone_is_merged_as_a_pin() -> None:
    digest = "sha256:" + "d" * 64
    found = scan_dockerfile("Dockerfile", f"FROM redis@{digest}\nFROM redis:7\n")
    wanted = wanted_images(found)
    assert wanted == {"library/redis": [digest, "7"]}
    merged = merge_images(None, "images.yaml", wanted)
    (redis,) = parse_config(merged.text, "images.yaml").images
    assert [pin.digest for pin in redis.pins] == [digest] and redis.tags == ("7",)


def test_merge_refuses_a_bad_config() -> None:
    with pytest.raises(ConfigError, match=r"^images.yaml: images\[0\]\.tagz"):
        merge_images("version: 1\nimages:\n  - {image: python, tagz: [1]}\n", "images.yaml", {})


@pytest.mark.parametrize(
    ("repository", "name"),
    [("library/python", "python"), ("bitnami/redis", "bitnami/redis"), ("a/b/c", "a/b/c")],
)
def test_short_name(repository: str, name: str) -> None:
    assert short_name(repository) == name
