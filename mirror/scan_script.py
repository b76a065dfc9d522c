"""The images shell scripts and Makefiles pull: their `docker pull|run|create` commands.

Pure. Both are read by `scan_shell`'s reader, which says where each image's word is written;
this module places it on its line for `mirror rewrite`. A shell script is read whole. A
Makefile is read where make hands text to the shell: its recipe lines (those that start with
a tab, with their continuation lines) and the recipe after `target: prerequisites ;`, without
the `@`, `-` and `+` in front. Make's variables (`$(IMAGE)`, `${IMAGE}`) and `$$` are not
expanded, so an image given by a variable is unresolved, listed with its line.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator

from mirror.scan import Found, Kind, Site, Span, found
from mirror.scan_shell import image_words

__all__ = ["scan_makefile", "scan_script"]

_RECIPE_PREFIX = re.compile(r"\t[@+\-\s]*")
_RULE_RECIPE = re.compile(r"[^\s#:=][^#:=]*::?(?!=)[^#;=]*;[@+\-\s]*")  # `target: deps ;`


def _found(file: str, kind: Kind, text: str, ranges: Iterator[tuple[int, int]]) -> list[Found]:
    starts = [0] + [newline.end() for newline in re.finditer("\n", text)]
    out: list[Found] = []
    for start, stop in ranges:
        for word in image_words(text, start, stop):
            line = bisect.bisect_right(starts, word.start)
            span = None
            if word.plain is not None:
                begin, end = word.plain
                if not re.search(r"[\r\n]", text[begin:end]):  # a quote open over a line's end
                    at = bisect.bisect_right(starts, begin)  # `"\<newline>alpine"`: the next
                    span = Span(at, begin - starts[at - 1], end - starts[at - 1])
            out.append(found(file, line, kind, word.value, Site(whole=span)))
    return out


def scan_script(file: str, text: str) -> list[Found]:
    """Every image the shell script `text` pulls with `docker`, in order."""
    return _found(file, Kind.shell, text, iter([(0, len(text))]))


def _logical_lines(text: str) -> Iterator[tuple[int, int]]:
    """[start, stop) of each line with the lines a trailing `\\` continues it over (each
    physical line looked at once: a file of `\\` lines is read in linear time)."""
    start = 0
    while start < len(text):
        stop = start
        while True:
            newline = text.find("\n", stop)
            line = text[stop : len(text) if newline < 0 else newline].rstrip("\r")
            stop = len(text) if newline < 0 else newline
            trailing = len(line) - len(line.rstrip("\\"))
            if trailing % 2 == 0 or newline < 0:
                break
            stop += 1
        yield start, stop
        start = stop + 1


def _recipes(text: str) -> Iterator[tuple[int, int]]:
    """[start, stop) of each recipe's shell text in a Makefile."""
    for start, stop in _logical_lines(text):
        match = _RECIPE_PREFIX.match(text, start, stop) or _RULE_RECIPE.match(text, start, stop)
        if match is not None:
            yield match.end(), stop


def scan_makefile(file: str, text: str) -> list[Found]:
    """Every image the recipes of the Makefile `text` pull with `docker`, in order."""
    return _found(file, Kind.makefile, text, _recipes(text))
