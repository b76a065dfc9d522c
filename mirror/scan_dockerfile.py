"""The images a Dockerfile (or Containerfile) pulls: `FROM`, `COPY --from=`, `RUN --mount=from=`.

Pure. Read as Docker reads it: instructions are case-insensitive and continue over lines
ending in the escape character (`\\`, or the one a `# escape=` directive names); comment lines
inside a continuation are dropped; the bodies of heredocs (`RUN <<EOF`) are not instructions.
`FROM` may use the global `ARG`s (those before the first `FROM`) as `$NAME`, `${NAME}`,
`${NAME:-default}` and `${NAME:+value}`; a `FROM $BASE` whose `ARG BASE=python:3.12` has a
default is found at the `ARG` line's value, which is what a rewrite changes. Stage names
(`AS build`), stage numbers and `scratch` are not images.
Docker's parser is Go code that no Python library carries, hence this small one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mirror.scan import BUILD_ARG, Found, Kind, Site, Span, found, split_lines

__all__ = ["scan_dockerfile"]

_DIRECTIVE = re.compile(r"^#\s*escape\s*=\s*(\S)\s*$", re.IGNORECASE)
_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::([-+])([^}]*))?\}|(\w+))")
_STAGE_NUMBER = re.compile(r"^\d+$")
_HEREDOC = re.compile(r"<<-?([\"']?)(\w+)\1")


@dataclass(frozen=True)
class _Instruction:
    keyword: str  # upper case
    words: list[str]  # after the keyword, split on whitespace
    lines: list[tuple[int, str]]  # (0-based line number, physical line)


@dataclass(frozen=True)
class _Arg:
    value: str
    span: Span | None


def _escape_character(lines: list[str]) -> str:
    """The escape character: a `# escape=` directive at the top of the file, else `\\`."""
    for line in lines:
        match = _DIRECTIVE.match(line.strip())
        if match:
            return match[1]
        if not line.strip().startswith("#") or "=" not in line:
            break
    return "\\"


def _instructions(text: str) -> list[_Instruction]:
    lines = split_lines(text)
    escape = _escape_character(lines)
    out: list[_Instruction] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [(index - 1, line)]
        while parts[-1][1].rstrip().endswith(escape) and index < len(lines):
            nxt = lines[index]
            index += 1
            if nxt.lstrip().startswith("#"):
                continue
            parts.append((index - 1, nxt))
            if not nxt.strip():
                break
        joined = " ".join(p.rstrip().removesuffix(escape) for _, p in parts)
        keyword, _, rest = joined.strip().partition(" ")
        out.append(_Instruction(keyword.upper(), rest.split(), parts))
        for heredoc in _HEREDOC.finditer(joined):  # `RUN <<EOF`: its body is not instructions
            while index < len(lines) and lines[index].strip() != heredoc[2]:
                index += 1
            index += 1
    return out


def _locate(instruction: _Instruction, token: str, *, after: str = "") -> Span | None:
    """Where `token` (preceded by `after`, e.g. `--from=`) stands on one physical line, as a
    whole word; None when it does not (split over lines)."""
    needle = after + token
    for number, line in instruction.lines:
        start = line.find(needle)
        while start >= 0:
            end = start + len(needle)
            before_ok = start == 0 or line[start - 1] in " \t,="
            after_ok = end == len(line) or line[end] in " \t,\\`"
            if before_ok and after_ok:
                return Span(number + 1, start + len(after), end)
            start = line.find(needle, start + 1)
    return None


def _unquoted(value: str) -> tuple[str, int]:
    """A value without its surrounding quotes, and how many characters the opening one took."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1], 1
    return value, 0


def _global_args(instruction: _Instruction, args: dict[str, _Arg]) -> None:
    for word in instruction.words:
        name, eq, raw = word.partition("=")
        if not eq:
            args.setdefault(name, _Arg("", None))  # declared without a default
            continue
        value, quote = _unquoted(raw)
        span = _locate(instruction, raw, after=f"{name}=")
        if span is not None and quote:
            span = Span(span.line, span.start + 1, span.end - 1)
        args[name] = _Arg(value, span)


def _substitute(text: str, args: dict[str, _Arg]) -> str:
    """`text` with the global ARGs' defaults put in; `${MIRROR_REGISTRY}` and unknown or
    default-less variables stay as written (the reference is then unresolved)."""

    def value(match: re.Match[str]) -> str:
        name = match[1] or match[4]
        arg = args.get(name)
        known = arg is not None and arg.value != ""
        if name == BUILD_ARG:
            return match[0]
        if match[2] == "-":
            return arg.value if known and arg else match[3]
        if match[2] == "+":
            return match[3] if known else ""
        return arg.value if known and arg else match[0]

    return _VARIABLE.sub(value, text)


def _image_site(instruction: _Instruction, token: str, args: dict[str, _Arg], after: str) -> Site:
    """Where the text to rewrite is: the token itself; the ARG default it names alone
    (`FROM $BASE`); or its name part when only the tag is a variable (`python:${VERSION}`)."""
    whole = _VARIABLE.fullmatch(token)
    if whole and (whole[1] or whole[4]) in args and whole[2] is None:
        return Site(whole=args[whole[1] or whole[4]].span)
    if "$" not in token:
        return Site(whole=_locate(instruction, token, after=after))
    name = re.split(r"[:@]", token.rsplit("/", 1)[-1], maxsplit=1)[0]
    prefix = token[: token.rfind("/") + 1] + name if "/" in token else name
    if "$" in prefix or not prefix:  # `FROM :$TAG`: no name to rewrite
        return Site()
    span = _locate(instruction, token, after=after)
    if span is None:
        return Site()
    return Site(repository=Span(span.line, span.start, span.start + len(prefix)))


def scan_dockerfile(file: str, text: str) -> list[Found]:
    """Every image the Dockerfile `text` pulls, in order."""
    args: dict[str, _Arg] = {}
    stages: set[str] = set()
    seen_from = False
    out: list[Found] = []

    def add(instruction: _Instruction, token: str, after: str = "") -> None:
        if token.lower() in stages or token.lower() == "scratch" or _STAGE_NUMBER.match(token):
            return
        line = instruction.lines[0][0] + 1
        site = _image_site(instruction, token, args, after)
        text = _substitute(token, args)
        out.append(found(file, line, Kind.dockerfile, text, site, variable_ok=True))

    for instruction in _instructions(text):
        words = instruction.words
        if instruction.keyword == "ARG" and not seen_from:
            _global_args(instruction, args)
        elif instruction.keyword == "FROM":
            seen_from = True
            rest = [w for w in words if not w.startswith("--")]
            if rest:
                add(instruction, rest[0])
            if len(rest) >= 3 and rest[1].lower() == "as":
                stages.add(rest[2].lower())
        elif instruction.keyword == "COPY":
            for word in words:
                if word.startswith("--from="):
                    add(instruction, word.removeprefix("--from="), "--from=")
        elif instruction.keyword == "RUN":
            for word in words:
                if not word.startswith("--mount="):
                    continue
                for option in word.removeprefix("--mount=").split(","):
                    key, _, value = option.partition("=")
                    if key == "from" and value:
                        add(instruction, value, "from=")
    return out
