"""The images named in YAML files: compose, Kubernetes, Helm values, GitHub Actions workflows,
CodeBuild buildspecs, GitLab CI.

Pure. ruamel.yaml reads the text (every document of it) and says where each value starts, so
each reference is placed on its line and column for `mirror rewrite`. What counts, by kind:

- every kind: `image: REF`, and `image:` as a mapping with `repository:` (Helm's split form,
  with `registry:`, `tag:`, `digest:` when given);
- compose: a service's `image:`, unless the service also has `build:` (then it names the
  image built, not one pulled);
- Kubernetes: only documents with `apiVersion` and `kind` (`scan_cfn` reads the other
  files' CloudFormation templates);
- Helm values: also any mapping with `repository:` and `tag:`;
- GitHub Actions: `container: REF`, `uses: docker://REF` (services' `image:` as above);
- GitLab CI: `image: {name: REF}`, `services:` items (a REF or `{name: REF}`);
- buildspec: `docker pull|run|build` lines in its commands, and a batch build's `env.image`
  (CodeBuild's own `aws/codebuild/...` images are not Docker Hub's and are skipped).

A `MalformedYaml` says why a file could not be read; the caller reports it and goes on.
"""

from __future__ import annotations

import bisect
import re
import warnings
from collections.abc import Iterator
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import ReusedAnchorWarning, YAMLError

from mirror.scan import Found, Kind, Site, Span, found, split_lines
from mirror.scan_shell import image_words

__all__ = ["MalformedYaml", "YamlScanner", "documents", "is_manifest", "scan_yaml"]

MAX_DEPTH = 64  # nested lists and mappings; real files are a dozen deep
_PLAIN = re.compile(r"[^\s,\]}#]+")  # a plain scalar, in a block or a flow collection
_YAML_BREAK = re.compile(r"\r(?!\n)|\n")  # where ruamel.yaml counts a new line


class MalformedYaml(ValueError):
    """A YAML file that cannot be read: its one-line reason."""


def documents(text: str) -> list[Any]:
    """Every document of `text`. An anchor named twice is YAML (the later one counts):
    ruamel.yaml's warning of it, which quotes the file on stderr, is not shown."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ReusedAnchorWarning)
            return list(YAML(typ="rt", pure=True).load_all(text))
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).partition("\n")[0]
        raise MalformedYaml(f"malformed YAML{where}: {problem}") from None
    except RecursionError:
        raise MalformedYaml("malformed YAML: nested too deeply") from None
    except TypeError:  # ruamel.yaml cannot build a key that is a list holding a mapping
        problem = "malformed YAML: a key mirror cannot read (a list or mapping)"
        raise MalformedYaml(problem) from None


class YamlScanner:
    """The references of one file's YAML documents, each placed on its line (`add`), into `out`."""

    def __init__(self, file: str, kind: Kind, text: str) -> None:
        self.file = file
        self.kind = kind
        self.lines = split_lines(text)
        self.starts = [0] + [newline.end() for newline in re.finditer("\n", text)]
        self.yaml_starts = [0] + [brk.end() for brk in _YAML_BREAK.finditer(text)]
        self.out: list[Found] = []
        self.seen: set[int] = set()  # containers already walked (aliases repeat them)
        self.split_seen: set[int] = set()  # split forms already read

    # --- placing a value's text on its line ---------------------------------------------

    def place(self, mark: tuple[int, int]) -> tuple[int, int]:
        """ruamel.yaml's (line, column) of a value as `split_lines` counts them: ruamel.yaml
        also starts a line after a lone `\\r`."""
        line0, col = mark
        if line0 >= len(self.yaml_starts):
            return mark
        offset = self.yaml_starts[line0] + col
        ours = bisect.bisect_right(self.starts, offset) - 1
        return ours, offset - self.starts[ours]

    def _span(
        self, where: tuple[int, int], token: str, lines: int = 1, skip: int = 0
    ) -> Span | None:
        """`token` as a word at or after `where` (0-based line, column), within `lines`,
        after `skip` earlier ones; never an empty one (`repository: ''` is no place to write
        an image)."""
        if not token:
            return None
        line0, col = where
        for number in range(line0, min(line0 + lines, len(self.lines))):
            for start in _words(self.lines[number], token, col if number == line0 else 0):
                if not skip:
                    return Span(number + 1, start, start + len(token))
                skip -= 1
        return None

    def _tag(self, node: CommentedMap) -> str | None:
        """The `tag:` as written: `tag: 3.10` is the number 3.1 to YAML, `3.10` to Docker."""
        value = node.get("tag")
        if value is None or value == "" or isinstance(value, str):
            return value or None
        line0, col = self.place(node.lc.value("tag"))
        written = _PLAIN.match(self.lines[line0], col) if line0 < len(self.lines) else None
        return written[0] if written else str(value)

    def add(
        self, where: tuple[int, int], text: str, lines: int = 1, prefix: str = "", skip: int = 0
    ) -> None:
        """A reference written at `where`, after `prefix` (`docker://`) and after `skip`
        earlier words of the same text; `lines=0`: on no span."""
        text = text.strip()
        if not text or text.startswith("aws/codebuild/"):
            return
        where = self.place(where)
        span = self._span(where, prefix + text, lines, skip)
        if span is not None and prefix:
            span = Span(span.line, span.start + len(prefix), span.end)
        line = span.line if span else where[0] + 1
        self.out.append(found(self.file, line, self.kind, text, Site(whole=span)))

    # --- the rules ----------------------------------------------------------------------

    def split(self, node: CommentedMap) -> None:
        """Helm's `{registry, repository, tag, digest}`, once (an `image:` mapping is also
        a mapping with `repository:` and `tag:`)."""
        if id(node) in self.split_seen or not isinstance(node.get("repository"), str):
            return
        self.split_seen.add(id(node))
        repository = node["repository"]
        where = self.place(node.lc.value("repository"))
        tag = self._tag(node)
        text = str(repository)
        registry = node.get("registry")
        registry_span = None
        if isinstance(registry, str) and registry:
            text = f"{registry}/{text}"
            registry_span = self._span(self.place(node.lc.value("registry")), registry)
        if "tag" in node and tag is None:
            text += ":{{ .Chart.AppVersion }}"  # Helm's convention for an empty tag
        elif tag:
            text += f":{tag}"
        if isinstance(node.get("digest"), str) and node["digest"]:
            text += f"@{node['digest']}"
        site = Site(repository=self._span(where, str(repository)), registry=registry_span)
        line = where[0] + 1
        self.out.append(found(self.file, line, self.kind, text, site))

    def image(self, parent: CommentedMap, key: str) -> None:
        value = parent[key]
        if isinstance(value, str):
            self.add(parent.lc.value(key), value)
        elif isinstance(value, CommentedMap):
            if isinstance(value.get("repository"), str):
                self.split(value)
            elif self.kind is Kind.gitlab_ci and isinstance(value.get("name"), str):
                self.add(value.lc.value("name"), value["name"])

    def mapping(self, node: CommentedMap, depth: int) -> None:
        for key in node:
            value = node[key]
            if key == "image" and not (self.kind is Kind.compose and "build" in node):
                self.image(node, key)
            elif key == "container" and self.kind is Kind.github_actions:
                if isinstance(value, str):
                    self.add(node.lc.value(key), value)
            elif key == "uses" and isinstance(value, str) and value.startswith("docker://"):
                self.add(node.lc.value(key), value.removeprefix("docker://"), prefix="docker://")
            elif key == "services" and self.kind is Kind.gitlab_ci:
                self.gitlab_services(value)
            elif key in ("commands", "finally") and self.kind is Kind.buildspec:
                self.commands(value)
            if key == "repository" and self.kind is Kind.helm and "tag" in node:
                self.split(node)
            self.walk(value, depth + 1)

    def gitlab_services(self, value: Any) -> None:
        if not isinstance(value, CommentedSeq):
            return
        for index, item in enumerate(value):
            if isinstance(item, str):
                self.add(value.lc.item(index), item)
            elif isinstance(item, CommentedMap) and isinstance(item.get("name"), str):
                self.add(item.lc.value("name"), item["name"])

    def commands(self, value: Any) -> None:
        if not isinstance(value, CommentedSeq):
            return
        for index, item in enumerate(value):
            if not isinstance(item, str):
                continue
            for word in image_words(item):
                # the image is the how-many-th word of its text in the command (`echo alpine;
                # docker pull alpine`: the second), which it is in the file too
                earlier = sum(1 for _ in _words(item[: word.start], word.value, 0))
                lines = item.count("\n") + 2 if word.plain is not None else 0
                self.add(value.lc.item(index), word.value, lines, skip=earlier)

    def walk(self, node: Any, depth: int = 0) -> None:
        if not isinstance(node, CommentedMap | CommentedSeq) or id(node) in self.seen:
            return
        if depth > MAX_DEPTH:
            raise MalformedYaml(f"nested more than {MAX_DEPTH} levels deep")
        self.seen.add(id(node))
        if isinstance(node, CommentedMap):
            self.mapping(node, depth)
        else:
            for item in node:
                self.walk(item, depth + 1)


def _words(text: str, token: str, start: int) -> Iterator[int]:
    """Where `token` stands in `text` from `start` as a whole word (not part of a longer
    reference)."""
    found = text.find(token, start)
    while found >= 0:
        end = found + len(token)
        if (found == 0 or not _in_word(text[found - 1])) and (
            end == len(text) or not _in_word(text[end])
        ):
            yield found
        found = text.find(token, found + 1)


def _in_word(char: str) -> bool:
    """A character that continues a reference (so a match next to it is only part of one)."""
    return char.isalnum() or char in "._-/:@$"


def is_manifest(document: Any) -> bool:
    """A Kubernetes manifest: a mapping with `apiVersion` and `kind`."""
    return isinstance(document, CommentedMap) and "apiVersion" in document and "kind" in document


def _relevant(kind: Kind, documents: list[Any]) -> Iterator[Any]:
    for document in documents:
        if kind is not Kind.kubernetes or is_manifest(document):
            yield document


def scan_yaml(file: str, kind: Kind, text: str) -> list[Found]:
    """Every image reference in the YAML `text` of a file of `kind`; MalformedYaml when the
    text is not YAML."""
    scanner = YamlScanner(file, kind, text)
    for document in _relevant(kind, documents(text)):
        scanner.walk(document)
    return scanner.out
