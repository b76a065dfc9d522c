"""The documentation cannot drift from the tool: every `mirror ...` line and every config key
in README.md and docs/*.md must exist, and every command, option and key must be documented.

Generic by design: it reads every page, so a page added later is guarded too.
- Command lines: in fenced blocks, lines `$ mirror ...` (console blocks), `mirror ...` and
  `- mirror ...` (shell and yaml blocks; a buildspec's commands), and inline code spans that
  start with `mirror `. Each is checked against the typer app: the command exists, and every
  option is one of its options. Shell (`|`, `>`, `&&`, `#`) ends a line; `[` `]` and `...` of
  a synopsis are read through; a `<placeholder>` command is skipped.
- Config keys: a yaml block is a config (or part of one) when its top level holds a config
  section other than `version`, or is a list of `image:` entries; each key path is checked
  against the pydantic models of mirror/config_schema.py.
- `mirror <command> --help` ends with an example, itself a valid command line.
- Links: every relative link goes to a file that exists, and every `#anchor` to a heading of
  its page (GitHub's slugs).
"""

from __future__ import annotations

import ast
import itertools
import json
import re
import shlex
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from jsonschema import Draft202012Validator
from markdown_it import MarkdownIt
from pydantic import BaseModel
from typer.testing import CliRunner

from mirror.cli import app
from mirror.config_schema import ConfigFile, ImageFile
from tests import docs_samples
from tests.runner import REPORT_SCHEMA, check_report_shape

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"(?<!`)`(mirror [^`\n]+)`(?!`)")
SHELL_ENDS = {"|", "||", "&&", ";", ">", ">>", "<", "2>&1", "&"}
GROUP: Any = typer.main.get_command(app)  # a group of typer's own (vendored) click


@dataclass(frozen=True)
class Mention:
    page: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.text}"


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix() if page.is_relative_to(ROOT) else page.name


def _blocks(text: str) -> Iterator[tuple[str, str, int]]:
    """(language, body, line of the body's first line) of every fenced block."""
    for match in FENCE.finditer(text):
        yield match.group(1).lower(), match.group(2), text.count("\n", 0, match.start(2)) + 1


def _joined(body: str, first: int) -> Iterator[tuple[int, str]]:
    """Lines of a block, continuation backslashes joined."""
    pending, start = "", first
    for number, line in enumerate(body.splitlines(), first):
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield start, pending + line
        pending = ""


def command_mentions(page: Path) -> Iterator[Mention]:
    text = page.read_text()
    name = _name(page)
    for language, body, first in _blocks(text):
        console = language == "console" or any(line.startswith("$ ") for line in body.splitlines())
        for number, line in _joined(body, first):
            stripped = line.strip()
            if console:
                command = stripped[2:] if stripped.startswith("$ ") else ""
            else:
                command = stripped[2:] if stripped.startswith("- ") else stripped
            if command.startswith("mirror ") or command == "mirror":
                yield Mention(name, number, command)
    outside = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for match in INLINE.finditer(outside):
        yield Mention(name, outside.count("\n", 0, match.start()) + 1, match.group(1))


def _words(command: str) -> list[str]:
    try:
        words = shlex.split(command, comments=True)
    except ValueError:  # an unbalanced quote: read it word by word
        words = command.split()
    kept: list[str] = []
    for word in words:
        if word in SHELL_ENDS or word.startswith((">", "2>")):
            break
        ends = word.endswith(";")  # `mirror sync; echo $?`
        word = word.rstrip(";").strip("[]")
        if word and word not in ("...", "|"):
            kept.append(word)
        if ends:
            break
    return kept


def problems_of(command: str) -> list[str]:
    """What is wrong with a `mirror ...` line: an unknown command, or an option its command
    does not take. Empty when the line is one the tool accepts."""
    words = _words(command)[1:]
    group_options = {"--help", "--version"}
    while words and words[0].startswith("-"):
        if words[0] not in group_options:
            return [f"`mirror` takes no option {words[0]}"]
        words = words[1:]
    if not words or "<" in words[0] or words[0].isupper():
        return []
    name, rest = words[0], words[1:]
    found = GROUP.commands.get(name)
    if found is None:
        return [f"no command `mirror {name}`"]
    options = {"--help"} | {o for p in found.params for o in (*p.opts, *p.secondary_opts)}
    return [
        f"`mirror {name}` takes no option {word.split('=')[0]}"
        for word in rest
        if word.startswith("-") and word != "-" and word.split("=")[0] not in options
    ]


class _AnyTagLoader(yaml.SafeLoader):
    """Reads a yaml block whatever its tags (`!Ref` in a CloudFormation snippet)."""


_AnyTagLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for argument in typing.get_args(annotation):
        if isinstance(argument, type | types.GenericAlias | types.UnionType) or (
            typing.get_origin(argument) is not None
        ):
            found += _models_in(argument)
    return found


def key_paths(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every key a config of this model may hold, as `source.registry`, `images.tags.match`."""
    for key, field in model.model_fields.items():
        path = f"{prefix}{key}"
        yield path
        for inner in _models_in(field.annotation):
            yield from key_paths(inner, f"{path}.")


def _walk(data: Any, model: type[BaseModel], prefix: str) -> Iterator[str]:
    """Key paths of a yaml document read as the model (unknown ones included)."""
    if isinstance(data, list):
        for item in data:
            yield from _walk(item, model, prefix)
        return
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        path = f"{prefix}{key}"
        yield path
        field = model.model_fields.get(str(key))
        for inner in _models_in(field.annotation) if field else []:
            if isinstance(value, dict | list):
                yield from _walk(value, inner, f"{path}.")


def config_keys(page: Path) -> Iterator[Mention]:
    """Every key path of every config-shaped yaml block of a page."""
    name = _name(page)
    sections = set(ConfigFile.model_fields) - {"version"}
    for language, body, first in _blocks(page.read_text()):
        if language not in ("yaml", "yml"):
            continue
        try:
            data = yaml.load(body, Loader=_AnyTagLoader)  # a SafeLoader that skips tags
        except yaml.YAMLError as exc:
            pytest.fail(f"{name}:{first}: a yaml block that does not parse: {exc}")
        if isinstance(data, dict) and sections & set(data):
            yield from (Mention(name, first, p) for p in _walk(data, ConfigFile, ""))
        elif isinstance(data, list) and all(isinstance(i, dict) and "image" in i for i in data):
            yield from (Mention(name, first, p) for p in _walk(data, ImageFile, "images."))


def _all_mentions() -> list[Mention]:
    return [m for page in PAGES for m in command_mentions(page)]


def test_the_pages_are_found_and_mention_commands() -> None:
    assert ROOT / "README.md" in PAGES and len(PAGES) > 5, PAGES
    assert len(_all_mentions()) > 20


def test_every_documented_command_line_is_one_the_tool_takes() -> None:
    wrong = [f"{m}: {p}" for m in _all_mentions() for p in problems_of(m.text)]
    assert not wrong, "\n".join(wrong)


def test_every_command_and_option_is_documented() -> None:
    """Each command, and each of its options under one of its names (`-c` for `--config`),
    appears in some documented command line."""
    used: dict[str, set[str]] = {}
    for mention in _all_mentions():
        words = _words(mention.text)[1:]
        if words and words[0] in GROUP.commands:
            used.setdefault(words[0], set()).update(w.split("=")[0] for w in words[1:])
    missing = [
        f"mirror {name} {param.opts[0] if param.opts[0].startswith('-') else ''}".rstrip()
        for name, command in GROUP.commands.items()
        for param in command.params
        if name not in used
        or (param.opts[0].startswith("-") and not used[name] & {*param.opts, *param.secondary_opts})
    ]
    assert not missing, "not in any documented command line:\n" + "\n".join(sorted(set(missing)))


TEST_CITED = re.compile(r"`(?:tests/)?(test_\w+\.py)(?:::(\w+))?`|`::(\w+)`")


def cited_tests(page: Path) -> Iterator[tuple[str, str | None]]:
    """(file, test or None) of every `test_x.py::name`, `test_x.py` and `::name` (of the file
    cited last) in a page's text."""
    last = None
    for match in TEST_CITED.finditer(page.read_text()):
        file, name, follow = match.groups()
        last = file or last
        if last is not None:
            yield last, name or follow


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def test_every_test_a_page_cites_exists() -> None:
    cited = [(page, file, name) for page in PAGES for file, name in cited_tests(page)]
    assert len(cited) > 20, cited
    wrong = [
        f"{_name(page)}: {file}::{name}" if name else f"{_name(page)}: {file}"
        for page, file, name in cited
        if not (ROOT / "tests" / file).is_file()
        or (name is not None and name not in _test_names(ROOT / "tests" / file))
    ]
    assert not wrong, "cited tests that do not exist:\n" + "\n".join(wrong)


def test_every_documented_config_key_exists() -> None:
    known = set(key_paths(ConfigFile))
    mentions = [m for page in PAGES for m in config_keys(page)]
    assert mentions, "no config in any yaml block"
    wrong = [f"{m}: no config key `{m.text}`" for m in mentions if m.text not in known]
    assert not wrong, "\n".join(wrong)


def test_every_config_key_is_documented_in_a_yaml_block() -> None:
    shown = {m.text for page in PAGES for m in config_keys(page)}
    missing = sorted(set(key_paths(ConfigFile)) - shown)
    assert not missing, f"config keys in no yaml block of the docs: {missing}"


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("mirror sink -c x.yaml", "no command `mirror sink`"),
        ("mirror sync --dry-rn", "takes no option --dry-rn"),
        ("mirror uri python --output=json", "takes no option --output"),
        ("mirror --verbose check", "takes no option --verbose"),
    ],
)
def test_the_command_check_catches_a_wrong_line(line: str, complaint: str) -> None:
    assert any(complaint in p for p in problems_of(line)), problems_of(line)


@pytest.mark.parametrize(
    "line",
    [
        "mirror sync [-c FILE] [--dry-run] [--only GLOB]... [--output table|json]",
        "mirror sync --output json > report.json     # exit 3 = deferred",
        "mirror template -c x.yaml | head -20",
        "mirror uri IMAGE[:TAG] [--digest]",
        "mirror --help",
        'mirror sync -c x.yaml; echo "exit code $?"',
    ],
)
def test_the_command_check_reads_synopses_and_shell(line: str) -> None:
    assert problems_of(line) == []


def test_the_key_check_catches_an_unknown_key(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```yaml\nsource:\n  reserve_pull: 3\nimages:\n  - image: x\n"
        "    tags: {match: a, lates: 2}\n```\n"
    )
    found = {m.text for m in config_keys(page)}
    assert {"source.reserve_pull", "images.tags.lates"} <= found
    assert not {"source.reserve_pull", "images.tags.lates"} & set(key_paths(ConfigFile))


@pytest.mark.parametrize("name", sorted(GROUP.commands))
def test_each_command_help_ends_with_a_valid_example(name: str) -> None:
    result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    examples = [
        line.strip().removeprefix("Example:").strip()
        for line in result.output.splitlines()
        if line.strip().startswith("Example:")
    ]
    assert examples, f"`mirror {name} --help` shows no example:\n{result.output}"
    for example in examples:
        assert _words(example)[:2] == ["mirror", name], example
        assert problems_of(example) == [], example


def test_the_report_schema_is_a_valid_json_schema() -> None:
    """docs/report.schema.json, which tests/runner.py applies to every report, is itself valid
    JSON Schema 2020-12 (a broken schema would pass everything)."""
    Draft202012Validator.check_schema(REPORT_SCHEMA)
    assert REPORT_SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def _sample_blocks() -> Iterator[tuple[str, docs_samples.Sample, list[str]]]:
    for page in PAGES:
        lines = page.read_text().splitlines()
        for sample in docs_samples.samples(lines):
            yield _name(page), sample, lines[sample.start + 1 : sample.end - 1]


def test_every_sample_block_shows_the_commands_its_markers_run() -> None:
    """A sample's `$` lines are its markers' commands, in order: the output below them came
    from `scripts/docs-samples`, not from an edit by hand (which would change one, not both)."""
    blocks = list(_sample_blocks())
    assert len(blocks) > 20, blocks
    wrong = [
        f"{page}:{sample.start + 1}: {docs_samples.shown_commands(block)}"
        for page, sample, block in blocks
        if docs_samples.shown_commands(block) != [s.command for s in sample.steps if s.shown]
        or len(block) <= len(docs_samples.shown_commands(block))  # no output: never generated
    ]
    assert not wrong, "samples that scripts/docs-samples did not write:\n" + "\n".join(wrong)


def test_every_json_report_in_the_docs_is_valid_by_the_schema() -> None:
    """The sync reports shown in the docs (a `mirror sync -o json` sample's output) pass the
    same check as every report of the test suite."""
    reports = []
    for _page, _sample, block in _sample_blocks():
        text = "\n".join(block)
        for chunk in text.split("\n$ "):
            command, _, output = chunk.removeprefix("$ ").partition("\n")
            is_sync = re.search(r"\bmirror sync\b", command)
            if is_sync and re.search(r"(-o|--output) json", command) and "{" in output:
                reports.append(json.loads(output[output.index("{") : output.rindex("}") + 1]))
    assert len(reports) >= 3, reports
    for report in reports:
        check_report_shape(report)


MARKDOWN = MarkdownIt("commonmark").enable("table")


def heading_anchor(text: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but `-` and `_` dropped, spaces to
    `-`. Written here because GitHub publishes the rule, not a library."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchor of every heading of a page; a repeated heading gets `-1`, `-2`, ..."""
    tokens = MARKDOWN.parse(page.read_text())
    counts: dict[str, int] = {}
    found = set()
    for opening, inline in itertools.pairwise(tokens):
        if opening.type == "heading_open":
            parts = [c.content for c in inline.children or [] if c.type in ("text", "code_inline")]
            anchor = heading_anchor("".join(parts))
            found.add(f"{anchor}-{counts[anchor]}" if anchor in counts else anchor)
            counts[anchor] = counts.get(anchor, 0) + 1
    return found


def links(page: Path) -> Iterator[Mention]:
    """Every relative link of a page (a URL with a scheme is not checked: no network)."""
    for token in MARKDOWN.parse(page.read_text()):
        for child in token.children or []:
            href = str(child.attrs.get("href", "")) if child.type == "link_open" else ""
            if href and not re.match(r"[a-z][a-z+.-]*:", href):
                yield Mention(_name(page), (token.map or [0])[0] + 1, href)


def broken_links(page: Path) -> list[str]:
    wrong = []
    for link in links(page):
        path, _, anchor = link.text.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            wrong.append(f"{link}: no file {path}")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            wrong.append(f"{link}: no heading #{anchor} in {target.name}")
    return wrong


def test_every_relative_link_and_anchor_goes_somewhere() -> None:
    assert sum(1 for page in PAGES for link in links(page) if "#" in link.text) > 20
    wrong = [problem for page in PAGES for problem in broken_links(page)]
    assert not wrong, "links that go nowhere:\n" + "\n".join(wrong)


def test_the_link_check_catches_a_missing_file_and_anchor(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text(
        "# Other\n\n## The `mirror uri` page: a heading\n\n## Again\n\n## Again\n"
    )
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#the-mirror-uri-page-a-heading) [ok](other.md#again-1) [ok](#top)\n"
        "[bad](missing.md) [bad](other.md#again-2) [web](https://example.com/x#y)\n\n# Top\n"
    )
    wrong = broken_links(page)
    assert len(wrong) == 2, wrong
    assert "no file missing.md" in wrong[0] and "no heading #again-2" in wrong[1]
