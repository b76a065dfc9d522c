"""Finding images in infrastructure code: CloudFormation templates (YAML with short-form tags,
and JSON) and Terraform files, with what is not an image (CodeBuild's own images, a droplet's
image, comments, strings inside strings) and what cannot be resolved (intrinsic functions,
interpolations, expressions). Pure: texts in, references out; the fixture tree's infra/ is
read through `scan_paths`."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirror.codebase import ScannedFile, scan_paths
from mirror.scan import Kind, kind_of
from mirror.scan_cfn import NotATemplate, scan_manifests_and_templates, scan_template
from mirror.scan_terraform import scan_terraform
from mirror.scan_yaml import MalformedYaml
from tests.test_scan import at, refs

INFRA = Path(__file__).parent / "codebase" / "infra"


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("infra/main.tf", Kind.terraform),
        ("stack.template", Kind.cloudformation),
        ("cfn/task.json", Kind.cloudformation),  # read only if it is a template
        ("stack.yaml", Kind.kubernetes),  # a template among the YAML of no other kind
        ("main.tf.bak", None),
    ],
)
def test_kind_of_infrastructure_files(path: str, kind: Kind | None) -> None:
    assert kind_of(path) is kind


# --- CloudFormation -----------------------------------------------------------------------

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Resources:
  Curated:
    Type: AWS::CodeBuild::Project
    Properties:
      Environment: {Image: aws/codebuild/amazonlinux2-x86_64-standard:5.0}
  Build:
    Type: AWS::CodeBuild::Project
    Properties:
      Environment:
        Image: !Sub 'maven:3.9'   # nothing to substitute
  Task:
    Type: AWS::ECS::TaskDefinition
    Properties:
      ContainerDefinitions:
        - {Name: a, Image: nginx:1.25}
        - Name: b
          Image: !Ref AppImage   # a parameter
        - Name: c
          Image: !Sub "${Repo}:latest"
        - Name: d
          Image: !Join [":", [!Ref Repo, "1.0"]]
        - Name: e
          Image:
            Fn::Sub: [redis:7.2, {}]
  Job:
    Type: AWS::Batch::JobDefinition
    Properties:
      ContainerProperties: {Image: busybox:1.36}
      NodeProperties:
        NodeRangeProperties:
          - Container: {Image: 'python:3.12'}
      EcsProperties:
        TaskProperties:
          - Containers: [{Image: ghcr.io/org/tool:1}]
  Service:
    Type: AWS::ECS::Service
    Properties: {Image: not-read:1}
"""


def test_cloudformation_yaml_with_short_form_tags() -> None:
    found = scan_manifests_and_templates("stack.yaml", TEMPLATE)
    assert refs(found) == [
        (11, "hub", "docker.io/library/maven:3.9"),  # CodeBuild's own image skipped
        (16, "hub", "docker.io/library/nginx:1.25"),
        (18, "unresolved", "!Ref AppImage"),
        (20, "unresolved", "!Sub ${Repo}:latest"),
        (22, "unresolved", '!Join [":", [!Ref Repo, "1.0"]]'),
        (25, "hub", "docker.io/library/redis:7.2"),  # Fn::Sub, long form, list
        (29, "hub", "docker.io/library/busybox:1.36"),
        (32, "hub", "docker.io/library/python:3.12"),
        (35, "other", "ghcr.io/org/tool:1"),
    ]  # a resource type that runs no container is not read
    assert {f.kind for f in found} == {Kind.cloudformation}
    assert found[2].problem == (
        "CloudFormation's Ref is resolved at deploy time; mirror cannot resolve it"
    )
    spans = [at(TEMPLATE, f.site.whole) for f in found if f.site.whole]
    assert spans == [
        "maven:3.9",
        "nginx:1.25",
        "redis:7.2",
        "busybox:1.36",
        "python:3.12",
        "ghcr.io/org/tool:1",
    ]


def test_a_yaml_file_holds_manifests_and_templates_and_nothing_else() -> None:
    text = (
        "image: not-a-manifest:1\n---\napiVersion: v1\nkind: Pod\nspec:\n"
        "  containers: [{name: a, image: nginx}]\n---\n"
        "Resources:\n  T:\n    Type: AWS::ECS::TaskDefinition\n    Properties:\n"
        "      ContainerDefinitions: [{Image: 'redis:7.2'}]\n"
    )
    found = scan_manifests_and_templates("mixed.yaml", text)
    assert [(f.line, f.kind, str(f.ref)) for f in found] == [
        (6, Kind.kubernetes, "docker.io/library/nginx"),
        (12, Kind.cloudformation, "docker.io/library/redis:7.2"),  # no version: its Type says
    ]


JSON_TEMPLATE = """\
{
\t"AWSTemplateFormatVersion": "2010-09-09",
\t"Resources": {
\t\t"Task": {"Type": "AWS::ECS::TaskDefinition", "Properties": {"ContainerDefinitions": [
\t\t\t{"Name": "a", "Image": "redis:7.2"},
\t\t\t{"Name": "b", "Image": {"Fn::Join": [":", ["postgres", {"Ref": "Tag"}]]}}
\t\t]}}
\t}
}
"""


def test_cloudformation_json() -> None:
    found = scan_template("task.json", JSON_TEMPLATE)
    assert refs(found) == [
        (5, "hub", "docker.io/library/redis:7.2"),
        (6, "unresolved", '{Fn::Join: [":", ["postgres", {Ref: "Tag"}]]}'),
    ]
    assert at(JSON_TEMPLATE, found[0].site.whole) == "redis:7.2"  # inside its quotes


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "app", "dependencies": {}}',  # names no AWS:: at all
        '{"Resources": {"Image": "x:1"}, "note": "AWS::"}',  # says AWS:: but is no template
        '{"Resources": [1, 2], "Type": "AWS::Thing"',  # not JSON, and no template
        "[]",
    ],
)
def test_json_that_is_no_template_is_not_read(text: str) -> None:
    if text.endswith('"AWS::Thing"'):
        with pytest.raises(MalformedYaml, match=r"^malformed JSON \(line 1\)"):
            scan_template("x.json", text)  # names AWS::, so it is said why it is not read
        return
    with pytest.raises(NotATemplate):
        scan_template("package.json", text)


def test_the_fixture_trees_infrastructure() -> None:
    scanned = {Path(r.file).name: r for r in scan_paths([INFRA]) if isinstance(r, ScannedFile)}
    assert sorted(scanned) == ["main.tf", "pipeline.yaml", "task.json"]  # not package.json
    assert scanned["pipeline.yaml"].kind is Kind.kubernetes  # a YAML file of no other kind
    assert {f.kind for f in scanned["pipeline.yaml"].found} == {Kind.cloudformation}
    hub = {(n, f.line, str(f.ref)) for n, s in scanned.items() for f in s.found if f.ref}
    assert ("pipeline.yaml", 17, "docker.io/library/maven:3.9-eclipse-temurin-21") in hub
    assert ("task.json", 25, "docker.io/library/python:3.12-slim") in hub  # a node's container
    assert ("main.tf", 39, "docker.io/library/redis:7.2") in hub  # in a heredoc's JSON
    assert not any("aws/codebuild" in f.text for f in scanned["pipeline.yaml"].found)


# --- Terraform ------------------------------------------------------------------------------

TERRAFORM = """\
# image = "commented:1"
resource "kubernetes_pod" "p" {
  spec {
    container {
      image = "nginx:1.25" // the proxy
    }
    init_container { image = "${var.registry}/init:1" }
  }
}
/* image = "commented:2"
   resource "docker_image" "x" { name = "commented:3" } */
resource "aws_batch_job_definition" "j" {
  container_properties = jsonencode({
    "image": "busybox:1.36", command = ["echo", "}"]
    environment = [{ name = "image", value = "not-an-image:1" }]
  })
}
resource "aws_ecs_task_definition" "t" {
  container_definitions = <<EOF
[{"name": "a", "image": "redis:7.2"}, {"image": "ghcr.io/org/tool:1"}]
EOF
}
resource "docker_image" "db" {
  name = "postgres:16"
  build { name = "not-a-pull:1" }
}
data "docker_registry_image" "py" { name = "python:3.12" }
resource "docker_container" "c" {
  image = docker_image.db.image_id
  name  = "not-an-image"
}
resource "digitalocean_droplet" "d" {
  image = "ubuntu-22-04-x64"
}
locals {
  task = jsonencode([{ image = format("%s:%s", var.repository,
    var.tag) }, { image = "alpine:3.19" }])
  text = "a \\"quoted\\" ${upper("}")} image = \\"not-an-image:2\\""
}
"""


def test_terraform_images() -> None:
    found = scan_terraform("main.tf", TERRAFORM)
    assert refs(found) == [
        (5, "hub", "docker.io/library/nginx:1.25"),
        (7, "unresolved", "${var.registry}/init:1"),
        (14, "hub", "docker.io/library/busybox:1.36"),  # jsonencode, a "key": value
        (20, "hub", "docker.io/library/redis:7.2"),  # a heredoc's JSON
        (20, "other", "ghcr.io/org/tool:1"),
        (24, "hub", "docker.io/library/postgres:16"),  # docker_image's name
        (27, "hub", "docker.io/library/python:3.12"),
        (29, "unresolved", "docker_image.db.image_id"),
        (36, "unresolved", 'format("%s:%s", var.repository, var.tag)'),  # over two lines
        (37, "hub", "docker.io/library/alpine:3.19"),
    ]  # not comments, a droplet's image, a nested block's name, or text inside strings
    assert {f.kind for f in found} == {Kind.terraform}
    assert found[7].problem == "a Terraform expression mirror cannot resolve"
    assert [at(TERRAFORM, f.site.whole) for f in found if f.site.whole] == [
        "nginx:1.25",
        "${var.registry}/init:1",
        "busybox:1.36",
        "redis:7.2",
        "ghcr.io/org/tool:1",
        "postgres:16",
        "python:3.12",
        "alpine:3.19",
    ]


def test_terraform_heredoc_ends_at_its_marker_indented_or_not() -> None:
    text = (
        'resource "aws_ecs_task_definition" "t" {\n  a = <<-EOT\n    {"image": "redis:7.2"}\n'
        '    EOT\n  b = "after"\n}\nresource "docker_image" "i" { name = "alpine:3.19" }\n'
    )
    assert refs(scan_terraform("x.tf", text)) == [
        (3, "hub", "docker.io/library/redis:7.2"),
        (7, "hub", "docker.io/library/alpine:3.19"),
    ]


ONE_MIB = 1024 * 1024


TAIL = '\nresource "docker_image" "y" { name = "alpine:3.19" }\n'


@pytest.mark.parametrize(
    ("text", "after"),
    [
        ('x = "' + '${"' * (ONE_MIB // 3), []),  # templates in strings, never closed
        ("x = " + "{" * ONE_MIB, []),  # braces never closed: the tail is no top-level block
        ("/*" + "*" * ONE_MIB, []),  # a comment never closed
        ("a = <<EOF\n" + "{\n" * (ONE_MIB // 2), []),  # a heredoc never closed
        ('resource "docker_image" "x" { name = ' * (ONE_MIB // 40), []),
        ('x = "' + "\\" * ONE_MIB, ["alpine:3.19"]),  # escapes: the line ends the string
        ("<<" * (ONE_MIB // 2), ["alpine:3.19"]),  # no heredoc at all
    ],
    ids=["templates", "braces", "comment", "heredoc", "headers", "escapes", "shifts"],
)
def test_terraform_pathological_input_is_read_to_its_end(text: str, after: list[str]) -> None:
    """1 MiB (the most mirror reads) of each is read to its end; what follows the damage is
    read as Terraform reads it: inside the unclosed thing, or after a line that ends it."""
    found = scan_terraform("x.tf", text + TAIL)
    assert [f.text for f in found if f.ref is not None] == after
    assert all(len(f.text) <= 60 for f in found if f.ref is None)  # unresolved: shown short


def test_terraform_after_damage_that_ends_at_its_line() -> None:
    text = 'x = "never closed\nresource "docker_image" "y" { name = "alpine:3.19" }\n'
    assert refs(scan_terraform("x.tf", text)) == [(2, "hub", "docker.io/library/alpine:3.19")]
