"""The images named by `docker pull|run|build` command lines (CI scripts, buildspec commands).

Pure. `docker pull IMAGE`, `docker image pull IMAGE`, `docker run [OPTIONS] IMAGE ...`,
`docker container run|create ...` and `docker build ... --cache-from IMAGE`. An option of
`docker run` takes a value unless it is one of the known flags (`--rm`, `-it`, ...), which
is how the first word that is not an option's value is found to be the image.
"""

from __future__ import annotations

import re
import shlex

__all__ = ["images_in_command"]

_SEPARATORS = re.compile(r"&&|\|\||[;|\n]")
_RUN_FLAGS = frozenset(
    {
        "--rm",
        "-d",
        "--detach",
        "-i",
        "--interactive",
        "-t",
        "--tty",
        "-it",
        "-ti",
        "-dit",
        "-itd",
        "--privileged",
        "--init",
        "-P",
        "--publish-all",
        "--read-only",
        "-q",
        "--quiet",
        "--no-healthcheck",
        "--oom-kill-disable",
    }
)


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command, comments=True)
    except ValueError:  # an unclosed quote: split on whitespace instead
        return command.split()


def _after_docker(words: list[str]) -> list[str] | None:
    """The words after `docker` (and `sudo`), or None when the command is not docker's."""
    while words and (words[0] in ("sudo", "-E", "exec") or "=" in words[0]):
        words = words[1:]  # `sudo`, `VAR=value docker ...`
    if not words or words[0] != "docker":
        return None
    return words[1:]


def _run_image(words: list[str]) -> str | None:
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--":
            return words[index + 1] if index + 1 < len(words) else None
        if not word.startswith("-"):
            return word
        index += 1 if word in _RUN_FLAGS or "=" in word else 2
    return None


def _images(words: list[str]) -> list[str]:
    if words[:1] in (["image"], ["container"]):
        words = words[1:]
    if not words:
        return []
    verb, rest = words[0], words[1:]
    if verb == "pull":
        image = next((w for w in rest if not w.startswith("-")), None)
        return [image] if image else []
    if verb in ("run", "create"):
        image = _run_image(rest)
        return [image] if image else []
    if verb == "build" or (verb == "buildx" and rest[:1] == ["build"]):
        found = []
        for index, word in enumerate(rest):
            if word.startswith("--cache-from="):
                found.append(word.removeprefix("--cache-from="))
            elif word == "--cache-from" and index + 1 < len(rest):
                found.append(rest[index + 1])
        return [f for f in found if "=" not in f]  # `type=registry,ref=...` is not a name
    return []


def images_in_command(command: str) -> list[str]:
    """The image references a shell command line pulls with `docker`, as written."""
    out: list[str] = []
    for part in _SEPARATORS.split(command):
        words = _after_docker(_words(part))
        if words:
            out += _images(words)
    return out
