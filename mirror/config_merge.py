"""`mirror discover --write CONFIG`: the images found, merged into the config file's text.

Pure: text in, text out. ruamel.yaml edits the document in place, so that its comments, key
order, quoting and flow lists stay as they were: a new image is appended to `images:` as
`{image: NAME, tags: [...]}`; an entry with a tag list gains the tags it lacks; an entry with
a tag selector is left alone when the selector does not take a tag (noted). The original is
checked by the config loader first (a bad config is refused, exit 2) and so is the result.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from mirror.config import parse_config
from mirror.reference import hub_repository
from mirror.versions import select_tags

__all__ = ["Merged", "merge_images", "short_name"]

NEW_CONFIG = "version: 1\n"  # a file to be: `images:` follows
_ITEM_INDENT = re.compile(r"^( *)- ", re.MULTILINE)


@dataclass
class Merged:
    text: str
    added_images: list[str] = field(default_factory=list)
    added_tags: list[str] = field(default_factory=list)  # `name:tag`
    notes: list[str] = field(default_factory=list)


def short_name(repository: str) -> str:
    """How a config names a Docker Hub repository: `python` for `library/python`."""
    return repository.removeprefix("library/") if repository.count("/") == 1 else repository


def _yaml(text: str) -> YAML:
    """A round-trip YAML that writes lists indented as the file already does."""
    yaml = YAML(typ="rt", pure=True)
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line the file has
    match = _ITEM_INDENT.search(text)
    offset = len(match[1]) if match else 2
    yaml.indent(mapping=2, sequence=offset + 2, offset=offset)
    return yaml


def merge_images(text: str | None, filename: str, wanted: dict[str, list[str]]) -> Merged:
    """`text` (None: no file yet) with the `wanted` Docker Hub repositories and their tags
    merged in; ConfigError when the config (or, by a fault, the result) is not valid."""
    original = text if text is not None else NEW_CONFIG
    config = parse_config(text, filename).images if text is not None else ()
    yaml = _yaml(original)
    document = yaml.load(original)
    images = document.get("images")
    if not isinstance(images, CommentedSeq):
        images = document["images"] = CommentedSeq()
    merged = Merged(original)
    entries = {hub_repository(str(e["image"])): e for e in images if isinstance(e, CommentedMap)}
    resolved = {image.repository: image for image in config}
    for repository, tags in wanted.items():
        entry = entries.get(repository)
        if entry is None:
            new_tags = CommentedSeq(tags)
            new_tags.fa.set_flow_style()
            images.append(CommentedMap([("image", short_name(repository)), ("tags", new_tags)]))
            merged.added_images.append(short_name(repository))
            continue
        selector = resolved[repository].tags
        for tag in tags:
            if isinstance(entry["tags"], CommentedSeq):
                if tag not in entry["tags"]:
                    entry["tags"].append(tag)
                    merged.added_tags.append(f"{entry['image']}:{tag}")
            elif not isinstance(selector, tuple) and not select_tags([tag], selector):
                merged.notes.append(
                    f"{entry['image']}:{tag}: the entry's tag selector does not take it;"
                    " change the selector to mirror it"
                )
    if merged.added_images or merged.added_tags:
        out = io.StringIO()
        yaml.dump(document, out)
        merged.text = out.getvalue()
        parse_config(merged.text, filename)
    return merged
