"""The images CloudFormation templates (YAML or JSON) name for containers to run.

Pure. A template is a mapping with `AWSTemplateFormatVersion`, or with `Resources` one of
which has a `Type: AWS::...`. ruamel.yaml reads both syntaxes (JSON is YAML to it) and keeps
the short-form tags (`!Ref`, `!Sub`, `!GetAtt`, `!Join`) as tagged nodes, with the line and
column of every value, which a rewrite needs. Images read:

- `AWS::CodeBuild::Project`: `Properties.Environment.Image` (CodeBuild's own curated images,
  `aws/codebuild/...`, are CodeBuild's to pull, not Docker Hub's, and are skipped);
- `AWS::ECS::TaskDefinition`: `Properties.ContainerDefinitions[].Image`;
- `AWS::Batch::JobDefinition`: `Properties.ContainerProperties.Image`,
  `Properties.NodeProperties.NodeRangeProperties[].Container.Image` and
  `Properties.EcsProperties.TaskProperties[].Containers[].Image`.

An image given by an intrinsic function (`!Ref`, `!GetAtt`, `Fn::Join`, a `!Sub` with `${}`)
is resolved only at deploy time: it is listed as unresolved. A `!Sub` (or `Fn::Sub`) whose
text has no `${}` is that text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar

from mirror.scan import Found, Kind, Site
from mirror.scan_yaml import MalformedYaml, YamlScanner, documents, is_manifest

__all__ = ["NotATemplate", "is_template", "scan_manifests_and_templates", "scan_template"]

MARKERS = ("AWSTemplateFormatVersion", "AWS::")  # a template has one of these in its text
SHOWN = 60  # characters of an intrinsic function shown in the list of unresolved ones
SHOWN_DEPTH = 4  # and the lists and mappings in it shown
_EACH = "[]"  # a step of a path: each item of a list

# Resource type: paths from its Properties to the mappings that hold an `Image`.
IMAGE_PLACES: dict[str, tuple[tuple[str, ...], ...]] = {
    "AWS::CodeBuild::Project": (("Environment",),),
    "AWS::ECS::TaskDefinition": (("ContainerDefinitions", _EACH),),
    "AWS::Batch::JobDefinition": (
        ("ContainerProperties",),
        ("NodeProperties", "NodeRangeProperties", _EACH, "Container"),
        ("EcsProperties", "TaskProperties", _EACH, "Containers", _EACH),
    ),
}


class NotATemplate(Exception):
    """A `*.json` or `*.template` file that is no CloudFormation template: not read."""


def is_template(document: Any) -> bool:
    """A CloudFormation template: `AWSTemplateFormatVersion`, or a resource of an AWS type."""
    if not isinstance(document, CommentedMap):
        return False
    if "AWSTemplateFormatVersion" in document:
        return True
    resources = document.get("Resources")
    return isinstance(resources, CommentedMap) and any(
        isinstance(r, CommentedMap) and str(r.get("Type", "")).startswith("AWS::")
        for r in resources.values()
    )


def _follow(node: Any, path: tuple[str, ...]) -> Iterator[CommentedMap]:
    """The mappings at the end of `path` from `node`."""
    if not path:
        if isinstance(node, CommentedMap):
            yield node
        return
    step, rest = path[0], path[1:]
    if step == _EACH and isinstance(node, CommentedSeq):
        for item in node:
            yield from _follow(item, rest)
    elif step != _EACH and isinstance(node, CommentedMap) and step in node:
        yield from _follow(node[step], rest)


def _intrinsic(value: Any) -> tuple[str, Any] | None:
    """(function name, its argument) when `value` is an intrinsic function, short or long."""
    tag = getattr(getattr(value, "tag", None), "value", None)
    if isinstance(tag, str) and tag.startswith("!"):
        inner = value.value if isinstance(value, TaggedScalar) else value
        return tag.removeprefix("!"), inner
    if isinstance(value, CommentedMap) and len(value) == 1:
        (key,) = value
        if key == "Ref" or (isinstance(key, str) and key.startswith("Fn::")):
            return str(key).removeprefix("Fn::"), value[key]
    return None


def _plain_sub(argument: Any) -> str | None:
    """The text of a `Sub` that substitutes nothing (no `${`), else None."""
    text = argument[0] if isinstance(argument, CommentedSeq) and argument else argument
    if isinstance(text, str) and "${" not in text:
        return text
    return None


def _shown(value: Any, depth: int = 0) -> str:
    """An intrinsic function on one line, for the list of unresolved references:
    `!Ref AppImage`, `!Join [":", [!Ref Repo, "1.0"]]`, `{Fn::Join: [...]}` as written."""
    if depth > SHOWN_DEPTH:
        return "..."
    tag = getattr(getattr(value, "tag", None), "value", None)
    prefix = f"{tag} " if isinstance(tag, str) and tag.startswith("!") else ""
    if isinstance(value, TaggedScalar):
        return prefix + str(value.value)
    if isinstance(value, CommentedSeq):
        return prefix + "[" + ", ".join(_shown(item, depth + 1) for item in value) + "]"
    if isinstance(value, CommentedMap):
        items = (f"{key}: {_shown(item, depth + 1)}" for key, item in value.items())
        return prefix + "{" + ", ".join(items) + "}"
    return json.dumps(value) if isinstance(value, str) else str(value)


def _image(scanner: YamlScanner, parent: CommentedMap, where: tuple[int, int]) -> None:
    value = parent["Image"]
    if isinstance(value, str) and not isinstance(value, TaggedScalar):
        scanner.add(where, value)
        return
    intrinsic = _intrinsic(value)
    if intrinsic is None:
        return  # a number, a list: no image
    function, argument = intrinsic
    plain = _plain_sub(argument) if function == "Sub" else None
    if plain is not None:
        scanner.add(where, plain)
        return
    shown = _shown(value)
    shown = shown if len(shown) <= SHOWN else shown[: SHOWN - 3] + "..."
    problem = f"CloudFormation's {function} is resolved at deploy time; mirror cannot resolve it"
    line = scanner.place(where)[0] + 1
    scanner.out.append(Found(scanner.file, line, scanner.kind, shown, None, problem, Site()))


def template_images(scanner: YamlScanner, template: CommentedMap) -> None:
    """The images of `template`'s resources, into `scanner` (of kind cloudformation)."""
    resources = template.get("Resources")
    if not isinstance(resources, CommentedMap):
        return
    for resource in resources.values():
        if not isinstance(resource, CommentedMap):
            continue
        places = IMAGE_PLACES.get(str(resource.get("Type", "")), ())
        for path in places:
            for holder in _follow(resource.get("Properties"), path):
                if "Image" in holder:
                    _image(scanner, holder, holder.lc.value("Image"))


def scan_template(file: str, text: str) -> list[Found]:
    """The images of a `*.json` or `*.template` file's template; NotATemplate when it is
    none (it does not name `AWSTemplateFormatVersion` or `AWS::`, or is not a template once
    read), MalformedYaml when it names them but cannot be read."""
    if not any(marker in text for marker in MARKERS):
        raise NotATemplate(file)
    try:
        read = documents(text)
    except MalformedYaml as exc:
        if file.endswith(".json"):
            raise MalformedYaml(str(exc).replace("malformed YAML", "malformed JSON", 1)) from None
        raise
    templates = [document for document in read if is_template(document)]
    if not templates:
        raise NotATemplate(file)
    scanner = YamlScanner(file, Kind.cloudformation, text)
    for template in templates:
        template_images(scanner, template)
    return scanner.out


def scan_manifests_and_templates(file: str, text: str) -> list[Found]:
    """A YAML file of no other kind: the images of its Kubernetes manifests and of its
    CloudFormation templates (other documents are not read); MalformedYaml if not YAML."""
    manifests = YamlScanner(file, Kind.kubernetes, text)
    templates = YamlScanner(file, Kind.cloudformation, text)
    for document in documents(text):
        if is_manifest(document):
            manifests.walk(document)
        elif is_template(document):
            template_images(templates, document)
    return sorted(manifests.out + templates.out, key=lambda f: f.line)
