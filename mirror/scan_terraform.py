"""The images Terraform files (`*.tf`) name for containers to run.

Pure. Read:

- `image = "REF"` in `resource` and `data` blocks of the types that run containers
  (`kubernetes_*`, `docker_*`, `aws_ecs_*`, `aws_batch_*`), and anywhere inside a
  `jsonencode(...)` call (the container definitions of a task or job, also built in
  `locals`); other blocks' `image` is not a container's (a droplet's, an instance's);
- `"image": "REF"` in the JSON of heredocs (`container_definitions = <<EOF ... EOF`);
- the `name` of `docker_image` and `docker_registry_image` resources and data sources.

An image given by an interpolation (`"${var.repository}:1.0"`) or an expression
(`var.image`, `local.image`, `docker_image.web.image_id`) is listed as unresolved.

No HCL library for Python says where each value is written, which a rewrite needs: hence
this small tokenizer (`_tokens`). It knows what can hide a `"` or a brace: comments (`#`,
`//`, `/* */`), quoted strings with their escapes and `${...}`/`%{...}` templates (nested
strings inside them too, on an explicit stack rather than by recursion), and heredocs
(`<<EOF`, `<<-EOF`). Every step moves forward at least one character, so a file is read in
one pass whatever it holds; a string or comment never closed runs to the end of its line
(strings) or of the file, as Terraform would refuse the file anyway.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass

from mirror.scan import Found, Kind, Site, Span, found

__all__ = ["scan_terraform"]

CONTAINER_TYPES = ("kubernetes_", "docker_", "aws_ecs_", "aws_batch_")
NAMED_IMAGE_TYPES = frozenset({"docker_image", "docker_registry_image"})
SHOWN = 60  # characters of an expression shown in the list of unresolved ones
_WORD = re.compile(r"[\w][\w-]*")
_HEREDOC = re.compile(r"<<(-?)([A-Za-z_][\w-]*)[ \t]*\r?\n")
_JSON_IMAGE = re.compile(r'"image"\s*:\s*"((?:[^"\\\n]|\\.)*)"')


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "string", "heredoc", "newline", or the punctuation character itself
    start: int
    end: int  # a string's or heredoc's end includes its closing quote or marker
    content: tuple[int, int] | None = None  # a string's text between its quotes; a heredoc's body
    template: bool = False  # a string with `${` or `%{`


def _string_end(text: str, start: int) -> tuple[int, int, bool]:
    """The quoted string at `start`: (where its text ends, where the string ends, whether it
    holds a template). The stack holds `"` for a string being read and `{` for a brace open
    in a template's expression."""
    stack = ['"']
    template = False
    index = start + 1
    end = len(text)
    while index < end:
        char = text[index]
        if stack[-1] == '"':
            if char == "\\":
                index += 2
                continue
            if char == "\n":  # a quoted string does not span lines: the line ends it
                del stack[-1]
                if not stack:  # its text stops before the line's end, `\r\n` too
                    return index - (text[index - 1] == "\r"), index, template
                continue
            if text.startswith(("$${", "%%{"), index):
                index += 3
                continue
            if text.startswith(("${", "%{"), index):
                template = True
                stack.append("{")
                index += 2
                continue
            if char == '"':
                del stack[-1]
                if not stack:
                    return index, index + 1, template
        elif char == '"':
            stack.append('"')
        elif char == "{":
            stack.append("{")
        elif char == "}":
            del stack[-1]
        index += 1
    return end, end, template


def _comment_end(text: str, index: int) -> int | None:
    """Where the comment at `index` ends, or None when none starts there."""
    if text.startswith(("#", "//"), index):
        newline = text.find("\n", index)
        return len(text) if newline < 0 else newline
    if text.startswith("/*", index):
        close = text.find("*/", index + 2)
        return len(text) if close < 0 else close + 2
    return None


def _tokens(text: str) -> Iterator[_Token]:
    """The tokens of a Terraform file, comments and blanks left out."""
    index = 0
    while index < len(text):
        char = text[index]
        comment = _comment_end(text, index)
        if comment is not None:
            index = comment
        elif char in " \t\r":
            index += 1
        elif char == "\n":
            yield _Token("newline", index, index + 1)
            index += 1
        elif char == '"':
            content_end, end, template = _string_end(text, index)
            yield _Token("string", index, end, (index + 1, content_end), template)
            index = end
        elif (heredoc := _HEREDOC.match(text, index)) is not None:
            marker = re.compile(rf"^[ \t]*{re.escape(heredoc[2])}[ \t]*\r?$", re.MULTILINE)
            close = marker.search(text, heredoc.end())
            body_end = close.start() if close else len(text)
            end = close.end() if close else len(text)
            yield _Token("heredoc", index, end, (heredoc.end(), body_end))
            index = end
        elif (word := _WORD.match(text, index)) is not None:
            yield _Token("word", index, word.end())
            index = word.end()
        else:
            yield _Token(char, index, index + 1)
            index += 1


@dataclass(frozen=True)
class _Frame:
    """An open `{`, `(` or `[`: the resource type it is inside, whether it is inside a
    `jsonencode(...)`, and whether it is the body of a `resource` or `data` block itself."""

    resource_type: str
    json: bool
    block_body: bool = False


class _Reader:
    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.text = text
        self.starts = [0] + [newline.end() for newline in re.finditer("\n", text)]
        self.out: list[Found] = []

    def span(self, start: int, end: int) -> Span:
        line = bisect.bisect_right(self.starts, start)
        column = self.starts[line - 1]
        return Span(line, start - column, end - column)

    def word(self, token: _Token) -> str:
        """A word's text, or a plain string's (a key written `"image"`)."""
        if token.kind == "word":
            return self.text[token.start : token.end]
        if token.kind == "string" and token.content and not token.template:
            return self.text[token.content[0] : token.content[1]]
        return ""

    def string(self, token: _Token) -> None:
        """An image's attribute given as a quoted string (a template with `${}` or not); one
        whose template runs over lines (`"${` never closed), or that runs to a file's end after
        a `\\r`, is placed on no span."""
        assert token.content is not None
        start, end = token.content
        span = self.span(start, end)
        site = Site() if re.search(r"[\r\n]", self.text[start:end]) else Site(span)
        self.out.append(found(self.file, span.line, Kind.terraform, self.text[start:end], site))

    def expression(self, start: int, end: int) -> None:
        """An image's attribute given by an expression (`var.image`), written in [start, end)."""
        written = " ".join(self.text[start:end].split())
        shown = written if len(written) <= SHOWN else written[: SHOWN - 3] + "..."
        line = self.span(start, start).line
        problem = "a Terraform expression mirror cannot resolve"
        self.out.append(Found(self.file, line, Kind.terraform, shown, None, problem, Site()))

    def heredoc(self, token: _Token) -> None:
        assert token.content is not None
        for match in _JSON_IMAGE.finditer(self.text, *token.content):
            span = self.span(match.start(1), match.end(1))
            self.out.append(found(self.file, span.line, Kind.terraform, match[1], Site(span)))

    def wanted(self, key: str, frames: list[_Frame]) -> bool:
        """Whether the attribute `key` in the innermost of `frames` names an image."""
        if not frames:
            return False
        frame = frames[-1]
        if key == "image":
            return frame.json or frame.resource_type.startswith(CONTAINER_TYPES)
        return key == "name" and frame.block_body and frame.resource_type in NAMED_IMAGE_TYPES

    def read(self) -> list[Found]:
        frames: list[_Frame] = []
        statement: list[_Token] = []  # since the last newline, `{`, `}` or `,`
        expression: tuple[int, int] | None = None  # (where it starts, its depth) while read
        for token in _tokens(self.text):
            ends = token.kind in ("newline", ",", "}", ")", "]")
            if expression is not None and ends and len(frames) == expression[1]:
                self.expression(expression[0], token.start)
                expression = None
            if token.kind == "heredoc":
                self.heredoc(token)
            elif (
                len(statement) >= 2
                and statement[-1].kind in ("=", ":")
                and self.wanted(self.word(statement[-2]), frames)
            ):
                if token.kind == "string":
                    self.string(token)
                elif token.kind != "newline":
                    expression = (token.start, len(frames))
            if token.kind in ("{", "(", "["):
                frames.append(self.opened(token, statement, frames))
            elif token.kind in ("}", ")", "]") and frames:
                frames.pop()
            if token.kind in ("newline", "{", "}", ","):
                statement = []
            else:
                statement.append(token)
        if expression is not None:
            self.expression(expression[0], len(self.text))
        return self.out

    def opened(self, token: _Token, statement: list[_Token], frames: list[_Frame]) -> _Frame:
        outer = frames[-1] if frames else _Frame("", json=False)
        if token.kind == "(":
            called = self.word(statement[-1]) if statement else ""
            return _Frame(outer.resource_type, outer.json or called == "jsonencode")
        words = [self.word(t) for t in statement]
        if (
            token.kind == "{"
            and not frames
            and len(words) >= 2
            and words[0] in ("resource", "data")
        ):
            return _Frame(words[1], json=False, block_body=True)
        return _Frame(outer.resource_type, outer.json)


def scan_terraform(file: str, text: str) -> list[Found]:
    """Every container image the Terraform `text` names, in order."""
    return _Reader(file, text).read()
