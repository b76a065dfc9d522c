"""Reading the config file's YAML, bounded: the file is untrusted input.

Steps, each refusing with a `ConfigError` of one line (`<file>: <path> (line N): <problem>`):
1. `read_text(path)`: at most `MAX_CONFIG_BYTES`, UTF-8.
2. `read_yaml(text, filename)`: compose the document (libyaml's parser when PyYAML has it),
   refusing explicit YAML tags but `!!str` and nesting deeper than `MAX_DEPTH`;
3. walk it with aliases expanded, as the data will be: at most `MAX_VALUES` values (a few
   hundred bytes of nested aliases otherwise expand to billions), no alias inside its own
   anchor, no key given twice, and the line of every value noted for messages;
4. construct the data. Anchors, aliases and merge keys (`<<: *defaults`) within those bounds
   work as YAML says.

The `YamlDocument` it gives names any place in the data by its path and line (`where`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mirror.errors import ConfigError

# Bounds on the document; a real config is a few KiB, 5 levels deep.
MAX_CONFIG_BYTES = 64 * 1024  # read in well under a second, even by pure-Python PyYAML
MAX_VALUES = 20_000  # scalars, lists and mappings, counted once per alias that repeats them
MAX_DEPTH = 20  # nested lists and mappings, aliases expanded

DataPath = tuple[str | int, ...]
_STR_TAG = "tag:yaml.org,2002:str"
_TOO_LARGE = f"the file is larger than {MAX_CONFIG_BYTES // 1024} KiB, the most mirror reads"
_TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep, the most mirror reads"
_TOO_MANY = f"more than {MAX_VALUES:,} values once aliases are expanded, the most mirror reads"


class _Refused(Exception):
    """A document the loader will not read, and where; read_yaml makes it a ConfigError."""

    def __init__(self, path: DataPath, line: int, problem: str) -> None:
        super().__init__(problem)
        self.path = path
        self.line = line
        self.problem = problem


class _Bounds(yaml.composer.Composer, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
    """PyYAML's safe composing and constructing, refusing what composing alone can see:
    nesting deeper than MAX_DEPTH (the composer recurses once per level) and explicit tags
    (`!!int x`, `!!timestamp x` make the constructors fail with arbitrary exceptions).
    A parser (libyaml's, else PyYAML's own) supplies the events."""

    peek_event: Callable[[], yaml.Event]  # from the parser
    dispose: Callable[[], None]

    def __init__(self) -> None:
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self._path: list[str | int | None] = []  # to the node being composed; None: a key

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        self._path.append(index if isinstance(index, int) else _key_text(index))
        try:
            if len(self._path) > MAX_DEPTH:
                raise self._refused(event, _TOO_DEEP)
            tag = getattr(event, "tag", None)  # an alias event has none
            if tag not in (None, "!", _STR_TAG):
                shown = tag.replace("tag:yaml.org,2002:", "!!")
                raise self._refused(
                    event, f"the YAML tag {shown!r} is not accepted; write a plain value"
                )
            return super().compose_node(parent, index)
        finally:
            self._path.pop()

    def _refused(self, event: yaml.Event, problem: str) -> _Refused:
        path = tuple(step for step in self._path if step is not None)
        return _Refused(path, event.start_mark.line + 1 if event.start_mark else 1, problem)

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:  # 2024-02-30 has the shape of a date
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a date; quote it to mean text", node.start_mark
            ) from None


_Bounds.add_constructor(  # the stubs know only PyYAML's own loader classes
    "tag:yaml.org,2002:timestamp",
    _Bounds.construct_yaml_timestamp,  # type: ignore[type-var]
)


class _PythonLoader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, _Bounds):
    def __init__(self, text: str) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        _Bounds.__init__(self)


if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _LibyamlLoader(_Bounds, CParser):  # _Bounds first: its composer, not libyaml's
        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            _Bounds.__init__(self)


def _new_loader(text: str) -> _Bounds:
    """libyaml's parser when PyYAML has it (three times faster), else PyYAML's own."""
    return _LibyamlLoader(text) if yaml.__with_libyaml__ else _PythonLoader(text)


def _key_text(node: yaml.Node | None) -> str | None:
    """The path step of a mapping's value: its key's text; None while composing a key."""
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


@dataclass
class _Walk:
    """One walk over the composed document with aliases expanded, as the data will be: the
    line of every value (for messages), duplicate keys, and the bounds composing cannot see:
    values repeated by aliases, nesting through aliases, an alias inside its own anchor."""

    lines: dict[DataPath, int] = field(default_factory=dict)
    values: int = 0
    walking: set[int] = field(default_factory=set)  # ids of the collections being walked

    def visit(self, node: yaml.Node, path: DataPath) -> None:
        line = node.start_mark.line + 1
        if id(node) in self.walking:
            raise _Refused(path, line, "an alias refers to a list or mapping that contains it")
        self.values += 1
        if self.values > MAX_VALUES:
            raise _Refused(path, line, _TOO_MANY)
        if len(path) >= MAX_DEPTH:
            raise _Refused(path, line, _TOO_DEEP)
        self.lines[path] = line
        if isinstance(node, yaml.ScalarNode):
            return
        self.walking.add(id(node))
        if isinstance(node, yaml.MappingNode):
            self._mapping(node, path)
        else:
            for index, item in enumerate(node.value):
                self.visit(item, (*path, index))
        self.walking.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: DataPath) -> None:
        seen: set[str] = set()
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Refused(path, line, "a key is a list or a mapping; keys are names")
            key = str(key_node.value)
            if key in seen:
                raise _Refused((*path, key), line, "key given twice")
            seen.add(key)
            self.visit(value_node, (*path, key))


def _read_document(text: str) -> tuple[Any, dict[DataPath, int]]:
    """The document's data and the line of each value; raises _Refused or yaml.YAMLError."""
    loader = _new_loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, {}
        walk = _Walk()
        walk.visit(root, ())  # before constructing: it expands aliases, merge keys included
        return loader.construct_document(root), walk.lines
    finally:
        loader.dispose()


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


def _dotted(path: DataPath) -> str:
    """`images[0].tags`; a key that is not a plain name is quoted, cut short, kept on one line."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part[:40] + ('...' if len(part) > 40 else '')!r}]"
    return text or "(top level)"


@dataclass(frozen=True)
class YamlDocument:
    """A document's data, and the line of each value by its path in the data."""

    filename: str
    data: Any
    lines: dict[DataPath, int]

    def where(self, path: DataPath) -> str:
        """`<file>: <path> (line N)`, N the line of the value or of the nearest one around it."""
        for depth in range(len(path), -1, -1):
            if path[:depth] in self.lines:
                return f"{self.filename}: {_dotted(path)} (line {self.lines[path[:depth]]})"
        return f"{self.filename}: {_dotted(path)}"


def read_yaml(text: str, filename: str) -> YamlDocument:
    """The document in `text`, read within the bounds; ConfigError with one clear line."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{filename}: {_TOO_LARGE}")
    try:
        data, lines = _read_document(text)
    except _Refused as exc:
        raise ConfigError(
            f"{filename}: {_dotted(exc.path)} (line {exc.line}): {exc.problem}"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).partition("\n")[0]
        raise ConfigError(f"{filename}{where}: malformed YAML: {problem}") from None
    return YamlDocument(filename, data, lines)


def read_text(path: str | Path) -> str:
    """The text of the file at `path`: at most MAX_CONFIG_BYTES, UTF-8."""
    try:
        with Path(path).open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {_TOO_LARGE}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path} (line {line}): the file is not UTF-8 text (byte {exc.start + 1}); save it"
            " as UTF-8"
        ) from None
