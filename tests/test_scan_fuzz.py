"""Property tests of the readers of `mirror discover` and `mirror rewrite`: any text, and text
made of each reader's own alphabet (quotes, braces, `$(`, backslashes, heredoc markers, `#`,
line ends of every sort, YAML tags, HCL blocks), never raises anything but the reader's
documented per-file errors, and every reference found is placed on a span of the text that
really holds it (so a rewrite never writes outside it); a rewrite followed by a scan finds no
Docker Hub reference the rewrite said it changed.

CI runs a modest, derandomized count (the `ci` profile); `HYPOTHESIS_PROFILE=deep` runs
5,000 examples per property, randomized."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirror.config import parse_config
from mirror.rewrite import plan_rewrite, rewritten
from mirror.scan import Found, Kind, Span, Status
from mirror.scan_cfn import NotATemplate, scan_manifests_and_templates, scan_template
from mirror.scan_dockerfile import scan_dockerfile
from mirror.scan_script import scan_makefile, scan_script
from mirror.scan_terraform import scan_terraform
from mirror.scan_yaml import MalformedYaml, scan_yaml

settings.register_profile(
    "ci",
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "deep",
    max_examples=5000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
MIRRORED = ("python", "alpine", "bitnami/redis")  # every tag of each (`match: .*`)
CONFIG = parse_config(
    f"version: 1\ntarget: {{registry: 'https://{HOST}'}}\nimages:\n"
    + "".join(f"  - {{image: {name}, tags: {{match: '.*'}}}}\n" for name in MIRRORED),
    "images.yaml",
)

Reader = Callable[[str], list[Found]]


def _yaml(kind: Kind, file: str) -> Reader:
    return lambda text: scan_yaml(file, kind, text)


# name: (reader, the errors it documents for a file it cannot read)
READERS: dict[str, tuple[Reader, tuple[type[Exception], ...]]] = {
    "dockerfile": (lambda text: scan_dockerfile("Dockerfile", text), ()),
    "shell": (lambda text: scan_script("run.sh", text), ()),
    "makefile": (lambda text: scan_makefile("Makefile", text), ()),
    "terraform": (lambda text: scan_terraform("main.tf", text), ()),
    "cloudformation": (
        lambda text: scan_template("stack.json", text),
        (NotATemplate, MalformedYaml),
    ),
    "kubernetes": (lambda text: scan_manifests_and_templates("k8s.yaml", text), (MalformedYaml,)),
    "compose": (_yaml(Kind.compose, "compose.yaml"), (MalformedYaml,)),
    "helm": (_yaml(Kind.helm, "values.yaml"), (MalformedYaml,)),
    "github-actions": (_yaml(Kind.github_actions, ".github/workflows/ci.yml"), (MalformedYaml,)),
    "buildspec": (_yaml(Kind.buildspec, "buildspec.yml"), (MalformedYaml,)),
    "gitlab-ci": (_yaml(Kind.gitlab_ci, ".gitlab-ci.yml"), (MalformedYaml,)),
}

# What can hide a quote, a brace or a line from a reader, and the names of images.
COMMON = [
    "'",
    '"',
    "\\",
    "`",
    "$",
    "$(",
    "${",
    ")",
    "(",
    "{",
    "}",
    "[",
    "]",
    "#",
    ";",
    "&&",
    "|",
    "=",
    ":",
    ",",
    "@",
    "/",
    " ",
    "  ",
    "\t",
    "\n",
    "\n",
    "\r\n",
    "\r",
    "\x0c",
    "\x0b",
    "\x85",
    "\u2028",
    "<<EOF\n",
    "<<-EOF\n",
    "\nEOF\n",
    "EOF",
    "python",
    "python:3.12",
    "alpine",
    "bitnami/redis:7",
    "docker.io/library/alpine:3.19",
    "quay.io/x/y",
    "alpine@sha256:" + "c" * 64,
    "$IMAGE",
    "${TAG}",
    "$(IMAGE)",
]
ALPHABETS: dict[str, list[str]] = {
    "dockerfile": [
        "FROM ",
        "from ",
        "ARG BASE=",
        "ARG TAG=",
        "$BASE",
        "${BASE}",
        "${BASE:-python}",
        " AS build",
        "build",
        "scratch",
        "COPY --from=",
        "RUN --mount=from=",
        ",target=/x",
        "--platform=$BUILDPLATFORM ",
        "# escape=`\n",
        "RUN <<EOF\n",
        "ARG MIRROR_REGISTRY=",
        "${MIRROR_REGISTRY}/",
        "\\\n",
        "`\n",
    ],
    "shell": [
        "docker pull ",
        "docker run --rm ",
        "docker run -it -v a:b ",
        "sudo -u x ",
        "env A=b ",
        "docker --context x ",
        "docker build --cache-from ",
        "--cache-from=",
        "docker image pull ",
        "cat <<'EOF'\n",
        "$(docker pull ",
        "`docker pull ",
        "2>&1 ",
        "> log ",
        "-- ",
        "\\\n",
    ],
    "makefile": [
        "\t",
        "\t@",
        "\t-",
        "all: deps ; ",
        "IMAGE := python\n",
        "docker pull ",
        "docker run ",
        "$$",
        "\\\n",
        "target:\n\t",
        "$(IMAGE)",
    ],
    "terraform": [
        'resource "docker_container" "x" {\n',
        'resource "aws_instance" "x" {\n',
        'data "docker_image" "x" {\n',
        "image = ",
        'image = "',
        'name = "',
        "jsonencode(",
        '"image": ',
        '"image": "',
        "<<EOF\n",
        "<<-EOF\n",
        "/*",
        "*/",
        "//",
        "${var.x}",
        "%{",
        "$${",
        "var.image",
        "locals {\n",
        "}\n",
    ],
}
YAML = [
    "image: ",
    "image:\n  repository: ",
    "repository: ",
    "registry: ",
    "tag: ",
    "tag: 3.10",
    "digest: ",
    "name: ",
    "services:\n",
    "- ",
    "  ",
    "    ",
    "container: ",
    "uses: docker://",
    "commands:\n",
    "- docker pull ",
    "echo alpine; ",
    "build: .\n",
    "apiVersion: v1\nkind: Pod\n",
    "---\n",
    "&a ",
    "*a",
    "!!str ",
    "!Ref ",
    "!Sub ",
    "? ",
    "|\n",
    ">-\n",
    "{",
    "}",
    "[",
    "]",
    "- |\n",
    "{{ .Values.x }}",
    "AWSTemplateFormatVersion: x\n",
    "Resources:\n",
    "Type: AWS::ECS::TaskDefinition\n",
    "Properties:\n",
    "ContainerDefinitions:\n",
    "Image: ",
    "Environment:\n",
    "Fn::Sub: ",
    '{"Resources": {"T": {"Type": "AWS::CodeBuild::Project", "Properties": ',
    '{"Environment": {"Image": ',
    "}}}}}",
]
for name in READERS:
    ALPHABETS.setdefault(name, YAML)


def _text_of(alphabet: list[str]) -> st.SearchStrategy[str]:
    piece = st.one_of(st.sampled_from(COMMON + alphabet), st.text(max_size=4))
    return st.lists(piece, max_size=40).map("".join)


def _line(text: str, span: Span) -> str:
    """The line `span` is on, without its end: lines end at `\\n` only (a `\\r` before it
    is part of the end), as Docker, the shell and make read them."""
    lines = text.split("\n")
    assert 1 <= span.line <= len(lines), (span, len(lines))
    return lines[span.line - 1].removesuffix("\r")


def _held(text: str, span: Span) -> str:
    line = _line(text, span)
    assert 0 <= span.start <= span.end <= len(line), (span, line)
    return line[span.start : span.end]


def _read(name: str, text: str) -> list[Found] | None:
    reader, documented = READERS[name]
    try:
        return reader(text)
    except documented:
        return None


def check_spans(text: str, found: list[Found]) -> None:
    """Each span of each reference holds that reference's text (a rewrite changes only it)."""
    for f in found:
        site = f.site
        if site.whole is not None:
            assert _held(text, site.whole) == f.text, (f, text)
        if site.repository is not None:
            held = _held(text, site.repository)
            assert held and held in f.text, (f, held)
        if site.registry is not None:
            held = _held(text, site.registry)
            assert held and f.text.startswith(held), (f, held)


def check_rewrite(name: str, text: str, *, build_arg: bool) -> None:
    """After a rewrite, a scan finds no Docker Hub reference but those the rewrite left."""
    found = _read(name, text)
    if found is None:
        return
    decisions = plan_rewrite(CONFIG, found, host=HOST, build_arg=build_arg)
    new = rewritten(text, decisions)
    after = _read(name, new)
    assert after is not None, (text, new)
    check_spans(new, after)
    left = Counter(str(d.found.ref) for d in decisions if not d.edits)
    remaining = Counter(str(f.ref) for f in after if f.status is Status.hub and not f.switchable)
    assert not remaining - left, (text, new, remaining - left)


@pytest.mark.parametrize("name", sorted(READERS))
@PROFILE
@given(data=st.data())
def test_any_text_is_read_or_refused_with_the_documented_error(
    name: str, data: st.DataObject
) -> None:
    text = data.draw(st.one_of(st.text(max_size=200), _text_of(ALPHABETS[name])))
    found = _read(name, text)
    if found is not None:
        check_spans(text, found)


@pytest.mark.parametrize("name", sorted(READERS))
@PROFILE
@given(data=st.data())
def test_rewrite_leaves_no_docker_hub_reference_it_said_it_changed(
    name: str, data: st.DataObject
) -> None:
    text = data.draw(_text_of(ALPHABETS[name]))
    check_rewrite(name, text, build_arg=False)
    if name == "dockerfile":
        check_rewrite(name, text, build_arg=True)


HUB_ALPINE = f"{HOST}/dockerhub/library/alpine"


def _rewrite(name: str, text: str) -> str:
    found = _read(name, text)
    assert found is not None
    return rewritten(text, plan_rewrite(CONFIG, found, host=HOST))


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        # a form feed ends a line for str.splitlines, not for the shell: the rewrite wrote
        # the ECR name into the empty "line" after it
        ("shell", "echo \x0c\ndocker pull alpine\n", f"echo \x0c\ndocker pull {HUB_ALPINE}\n"),
        # U+2028 inside a comment: Docker reads one comment line, not a FROM after it
        ("dockerfile", "# x\u2028FROM alpine\n", "# x\u2028FROM alpine\n"),
        # U+2028 inside a YAML string: ruamel.yaml counts no new line there
        ("compose", "a: '\u2028'\nimage: alpine\n", f"a: '\u2028'\nimage: {HUB_ALPINE}\n"),
        # a lone carriage return: a new line to ruamel.yaml, none to the line count of a span
        ("compose", "a: 1\rimage: alpine\n", f"a: 1\rimage: {HUB_ALPINE}\n"),
    ],
)
def test_lines_end_at_newlines_only(name: str, text: str, expected: str) -> None:
    assert _rewrite(name, text) == expected


def test_a_key_ruamel_cannot_build_is_malformed_yaml() -> None:
    """`? - a: b`: a list holding a mapping as a key made ruamel.yaml raise TypeError, which
    escaped as an internal error of the whole command."""
    with pytest.raises(MalformedYaml, match="a key mirror cannot read"):
        scan_yaml("compose.yaml", Kind.compose, "? - a: b\n: c\n")


@pytest.mark.parametrize(
    ("text", "written"),
    [
        # a string whose `%{` is never closed runs over the line: its span ended past it
        ('x = jsonencode({"image": "%{\n})\n', "%{\n})"),
        # a string the line's end closes, in a CRLF file: it held the `\r`
        ('x = jsonencode({"image": "alpine\r\n})\r\n', "alpine"),
        # a string never closed, to the end of a file ending in `\\r`: it held the `\\r`
        ('x = jsonencode({"image": "\r', "\r"),
    ],
)
def test_a_terraform_string_ends_within_its_line(text: str, written: str) -> None:
    found = scan_terraform("main.tf", text)
    assert [f.text for f in found] == [written]
    check_spans(text, found)


@pytest.mark.parametrize(
    ("name", "text"),
    [("helm", "image:\n  repository: ''\n  tag: '1'\n"), ("dockerfile", "FROM :$TAG\n")],
)
def test_an_empty_name_is_on_no_span(name: str, text: str) -> None:
    """An empty repository was placed on an empty span: no text there to rewrite."""
    found = _read(name, text)
    assert found and all(not f.site.rewritable for f in found), found


BUILDSPEC = "phases:\n  build:\n    commands:\n      - {}\n"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        # the first `alpine` of the line was rewritten, the echo's, not the pull's
        ("echo alpine; docker pull alpine", f"echo alpine; docker pull {HUB_ALPINE}"),
        # written in pieces: no span, though `alpine` stands whole further on
        ('docker pull "alp"ine; echo alpine', 'docker pull "alp"ine; echo alpine'),
    ],
)
def test_a_buildspec_command_is_rewritten_at_the_pulled_word(command: str, expected: str) -> None:
    assert _rewrite("buildspec", BUILDSPEC.format(command)) == BUILDSPEC.format(expected)


def test_a_quote_never_closed_holds_no_line_end() -> None:
    """A quote open to the end of a file ending in `\\r` was placed on a span holding it."""
    text = "docker build --cache-from '\r"
    found = scan_script("run.sh", text)
    assert [f.text for f in found] == ["\r"]
    check_spans(text, found)


def test_a_word_continued_before_its_text_is_placed_on_the_text_s_line() -> None:
    """`"\\<newline>alpine"`: the span had the word's first line and the text's column."""
    text = 'docker pull "\\\nalpine"\n'
    assert _rewrite("shell", text) == f'docker pull "\\\n{HUB_ALPINE}"\n'
