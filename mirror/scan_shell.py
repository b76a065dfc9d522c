"""The images named by `docker pull|run|create` command lines: shell scripts, Makefile
recipes, buildspec commands.

Pure. Two halves:

- reading the shell's words (`_Reader`), each with where it is written: POSIX quoting
  (`'...'`, `"..."`, `\\`), line continuations, `#` comments, the operators that end a command
  (`;`, `&&`, `||`, `|`, `&`, `(`, `)`, a newline), redirections (`> log`, `2>&1`: their target
  is no argument), heredoc bodies (skipped: they are data), and the commands inside `$(...)`
  and backquotes (to `MAX_NESTING` deep). Variables are not expanded: a word holding one
  keeps it as written. A quote never closed runs to the end of the text, as in the shell.
  shlex splits words too, but says nothing of where each one stood, which a rewrite needs:
  hence this small reader.
- which word names an image pulled: `docker [image] pull [OPTIONS] IMAGE`,
  `docker [container] run|create [OPTIONS] IMAGE ...` and `docker [buildx] build
  --cache-from IMAGE`. An option of `run` takes a value unless it is one of the known flags
  (`--rm`, `-it`, ...), which is how the first word that is not an option's value is found
  to be the image; `build`'s other words (`--build-arg BASE=...`, `-t`) name no pull.
  `sudo` and `env` (with their options: `sudo -u user`), `VAR=value`, `exec`, shell keywords
  (`if`, `then`, `do`, ...) and docker's global options (`--context x`, `-H host`) may come
  first.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["MAX_NESTING", "Word", "image_words", "images_in_command"]

MAX_NESTING = 16  # `$(...)` inside `$(...)`: real scripts nest two or three
_OPERATOR = re.compile(r"&&|\|\||;;&?|;&|\|&|[;&|()]")
_REDIRECT = re.compile(r"&>>?|<<<|<<-?|<>|>>|>&|<&|>\||[<>]")
_WORD_END = frozenset(" \t\r\n;&|()<>")
_CONTINUATION = re.compile(r"\\\r?\n")
_UNQUOTED = re.compile(r"[^\s;&|()<>'\"\\$`]+")  # a run of a word's ordinary characters
_DOUBLE_QUOTED = re.compile(r'[^"\\$`]+')
_ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*=")
_PREFIXES = frozenset(
    {"sudo", "env", "exec", "command", "nohup", "time", "if", "then", "else", "elif", "do"}
    | {"while", "until", "!", "{"}
)
_PREFIX_VALUES = frozenset({"-u", "--user", "-g", "--group", "--unset", "-C", "--chdir"})
_DOCKER_GLOBAL_VALUES = frozenset(
    {"-H", "--host", "-c", "--context", "--config", "-l", "--log-level"}
    | {"--tlscacert", "--tlscert", "--tlskey"}
)
_RUN_LONG_FLAGS = frozenset(
    {"--rm", "--detach", "--interactive", "--tty", "--privileged", "--init", "--publish-all"}
    | {"--read-only", "--quiet", "--no-healthcheck", "--oom-kill-disable", "--sig-proxy"}
    | {"--disable-content-trust", "--use-api-socket", "--help"}
)
_RUN_SHORT_FLAGS = frozenset("ditPq")
_CACHE_FROM = "--cache-from="


@dataclass(frozen=True)
class Word:
    """A word of a command: `value` as the command receives it (quotes and escapes removed,
    variables as written), written from offset `start` of the text read; `plain`: where
    `value` itself stands, [start, end), when it is written in one piece (unquoted, or inside
    one pair of quotes)."""

    value: str
    start: int
    plain: tuple[int, int] | None


class _Reader:
    """One pass over the text: a `$(...)` or backquoted command is read where it stands, by
    a nested `read` that returns where it closes, so that no character is read twice."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.commands: list[list[Word]] = []

    def read(self, pos: int, stop: int, depth: int = 0, closer: str = "") -> int:
        """The commands of text[pos:stop], into `self.commands`; returns where reading ended:
        after `closer` (the `)` of a `$(`, a backquote), else `stop`."""
        text = self.text
        command: list[Word] = []
        heredocs: list[tuple[str, bool]] = []  # delimiters to skip after this line, `<<-`
        redirect: str | None = None  # the operator whose target comes next
        subshells = 0  # `(` opened inside a `$(`: their `)` does not close it
        while pos < stop:
            char = text[pos]
            if char in " \t\r":
                pos += 1
            elif (match := _CONTINUATION.match(text, pos)) is not None:
                pos = match.end()
            elif char == "\n" or char == "#":
                end = text.find("\n", pos, stop)
                pos = stop if end < 0 else end + 1
                self._end(command)
                command, redirect = [], None
                pos = self._skip_heredocs(pos, stop, heredocs)
                heredocs = []
            elif char == closer and (closer == "`" or not subshells):
                self._end(command)
                return pos + 1
            elif (match := _REDIRECT.match(text, pos)) is not None:
                redirect, pos = match[0], match.end()
            elif (match := _OPERATOR.match(text, pos)) is not None:
                subshells = max(subshells + (char == "(") - (char == ")"), 0)
                self._end(command)
                command, redirect, pos = [], None, match.end()
            else:
                word, pos = self._word(pos, stop, depth, closer)
                if redirect in ("<<", "<<-"):
                    heredocs.append((word.value, redirect == "<<-"))
                elif redirect is None and not (
                    word.value.isdigit() and pos < stop and text[pos] in "<>"
                ):  # `2>&1`: a file descriptor's number, not an argument
                    command.append(word)
                redirect = None
        self._end(command)
        return stop

    def _end(self, command: list[Word]) -> None:
        if command:
            self.commands.append(command)

    def _skip_heredocs(self, pos: int, stop: int, heredocs: list[tuple[str, bool]]) -> int:
        for delimiter, strip_tabs in heredocs:
            while pos < stop:
                end = self.text.find("\n", pos, stop)
                end = stop if end < 0 else end
                line = self.text[pos:end].rstrip("\r")
                pos = end + 1
                if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                    break
        return min(pos, stop)

    def _word(self, pos: int, stop: int, depth: int, closer: str) -> tuple[Word, int]:
        """The word starting at `pos`, and where it ends. Its value is kept as pieces, each
        with the offset it is written at, so that `plain` can tell a word written in one."""
        text = self.text
        start = pos
        pieces: list[tuple[str, int]] = []
        while pos < stop and text[pos] not in _WORD_END and text[pos] != closer:
            char = text[pos]
            if (match := _UNQUOTED.match(text, pos)) is not None:
                pieces.append((match[0], pos))
                pos = match.end()
            elif char == "\\":
                if (match := _CONTINUATION.match(text, pos)) is not None:
                    pos = match.end()
                elif pos + 1 < stop:
                    pieces.append((text[pos + 1], pos + 1))
                    pos += 2
                else:
                    pieces.append((char, pos))
                    pos += 1
            elif char == "'":  # a quote never closed runs to the end, as in the shell
                close = text.find("'", pos + 1, stop)
                close = stop if close < 0 else close
                pieces.append((text[pos + 1 : close], pos + 1))
                pos = close + 1
            elif char == '"':
                pos = self._double_quoted(pos + 1, stop, depth, pieces)
            else:  # `$` or a backquote
                end = self._substitution(pos, stop, depth)
                pieces.append((text[pos:end], pos))
                pos = end
        pos = min(pos, stop)
        pieces = [p for p in pieces if p[0]]
        value = "".join(piece for piece, _ in pieces)
        contiguous = all(a[1] + len(a[0]) == b[1] for a, b in itertools.pairwise(pieces))
        plain = (
            (pieces[0][1], pieces[-1][1] + len(pieces[-1][0])) if pieces and contiguous else None
        )
        return Word(value, start, plain), pos

    def _double_quoted(self, pos: int, stop: int, depth: int, pieces: list[tuple[str, int]]) -> int:
        """The pieces of a string opened before `pos`; returns where it closes (or `stop`)."""
        text = self.text
        while pos < stop:
            char = text[pos]
            if (match := _DOUBLE_QUOTED.match(text, pos)) is not None:
                pieces.append((match[0], pos))
                pos = match.end()
            elif char == '"':
                return pos + 1
            elif char == "\\":
                escaped = text[pos + 1] if pos + 1 < stop else ""
                if escaped and escaped in '$`"\\\n':
                    pieces.append((escaped if escaped != "\n" else "", pos + 1))
                    pos += 2
                else:
                    pieces.append((char, pos))
                    pos += 1
            else:  # `$` or a backquote
                end = self._substitution(pos, stop, depth)
                pieces.append((text[pos:end], pos))
                pos = end
        return stop

    def _substitution(self, pos: int, stop: int, depth: int) -> int:
        """The end of the `$(...)`, backquoted or `${...}` text at `pos` (of a `$` alone, the
        next character); the commands in the first two are read."""
        text = self.text
        if text.startswith("$(", pos) or text[pos] == "`":
            closer = "`" if text[pos] == "`" else ")"
            inner = pos + (1 if closer == "`" else 2)
            if depth < MAX_NESTING:
                return self.read(inner, stop, depth + 1, closer)
            return _skip(text, inner, stop, closer)
        if text.startswith("${", pos):
            return _skip(text, pos + 2, stop, "}")
        return pos + 1


def _skip(text: str, pos: int, stop: int, closer: str) -> int:
    """After the `closer` that ends the text opened before `pos` (brackets nested, quotes
    skipped), or `stop`: for `${...}`, and for commands nested too deeply to read."""
    opener = {")": "(", "}": "{"}.get(closer)
    level = 1
    while pos < stop:
        char = text[pos]
        if char == "\\":
            pos += 1
        elif char in "'\"" and char != closer:
            close = text.find(char, pos + 1, stop)
            pos = stop if close < 0 else close
        elif char == closer:
            level -= 1
            if not level:
                return pos + 1
        elif char == opener:
            level += 1
        pos += 1
    return stop


def _first_operand(words: Sequence[Word], takes_value: Callable[[str], bool]) -> Word | None:
    """The first word that is neither an option nor an option's value."""
    index = 0
    while index < len(words):
        value = words[index].value
        if value == "--":
            return words[index + 1] if index + 1 < len(words) else None
        if not value.startswith("-") or value == "-":
            return words[index]
        index += 2 if takes_value(value) else 1
    return None


def _run_option_takes_value(option: str) -> bool:
    """Whether an option of `docker run|create` takes the next word as its value: all do but
    the flags; `-it`, `-dp 80:80` and `-p80:80` are short options run together."""
    if "=" in option:
        return False
    if option.startswith("--"):
        return option not in _RUN_LONG_FLAGS
    for position, letter in enumerate(option[1:], 1):
        if letter not in _RUN_SHORT_FLAGS:
            return position == len(option) - 1  # else the rest of the word is its value
    return False


def _pull_option_takes_value(option: str) -> bool:
    return option == "--platform"


def _docker_arguments(words: Sequence[Word]) -> Sequence[Word] | None:
    """The words after `docker` and its global options, or None when the command does not
    run docker."""
    index, prefixed = 0, False
    while index < len(words):
        value = words[index].value
        if value in _PREFIXES or _ASSIGNMENT.match(value) or (prefixed and value[:1] == "-"):
            prefixed = prefixed or value in _PREFIXES
            index += 2 if prefixed and value in _PREFIX_VALUES else 1
        else:
            break
    if index == len(words) or words[index].value.rsplit("/", 1)[-1] != "docker":
        return None
    index += 1
    while index < len(words) and words[index].value.startswith("-"):
        option = words[index].value
        index += 2 if option in _DOCKER_GLOBAL_VALUES else 1
    return words[index:]


def _pulled(words: Sequence[Word]) -> list[Word]:
    """The words of a docker command (after `docker`) that name an image it pulls."""
    values = [w.value for w in words[:2]]
    if values[:1] in (["image"], ["container"]) or values == ["buildx", "build"]:
        words = words[1:]  # `buildx` alone: only its `build`, not `buildx create NAME`
    if not words:
        return []
    verb, rest = words[0].value, words[1:]
    image: Word | None = None
    if verb == "pull":
        image = _first_operand(rest, _pull_option_takes_value)
    elif verb in ("run", "create"):
        image = _first_operand(rest, _run_option_takes_value)
    elif verb == "build":
        named: list[Word] = []
        for index, word in enumerate(rest):
            if word.value == "--cache-from" and index + 1 < len(rest):
                named.append(rest[index + 1])
            elif word.value.startswith(_CACHE_FROM):
                named.append(_without_option(word))
        return [w for w in named if w.value and "=" not in w.value]  # not `type=registry,...`
    return [image] if image is not None and image.value else []


def _without_option(word: Word) -> Word:
    """`--cache-from=IMAGE`: the IMAGE part of the word."""
    plain = (word.plain[0] + len(_CACHE_FROM), word.plain[1]) if word.plain else None
    return Word(word.value.removeprefix(_CACHE_FROM), word.start, plain)


def image_words(text: str, start: int = 0, stop: int | None = None) -> list[Word]:
    """The words of text[start:stop] that name an image a `docker` command pulls, in the
    order written (offsets are the text's)."""
    reader = _Reader(text)
    reader.read(start, len(text) if stop is None else stop)
    found: list[Word] = []
    for command in reader.commands:
        arguments = _docker_arguments(command)
        found += _pulled(arguments) if arguments is not None else []
    return sorted(found, key=lambda w: w.start)  # a `$(...)`'s commands end before its own


def images_in_command(command: str) -> list[str]:
    """The image references a shell command line pulls with `docker`, as written."""
    return [w.value for w in image_words(command)]
