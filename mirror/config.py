"""`config/images.yaml`: a versioned file, validated at load time, defaults merged per entry.

The file's schema is drawn with pydantic models (`*File` classes); loading turns them into
the plain `Config` the rest of the tool works with (`MirroredImage` entries whose
defaults are already merged and whose names are already resolved). Every problem becomes a
`ConfigError` of one line: `<file>: <field path> (line N): <what is wrong>`.

Parsing is pure: `parse_config(text, filename)` does no I/O; `load_config(path)` reads the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from mirror.errors import ConfigError
from mirror.reference import (
    DOCKER_HUB,
    InvalidReference,
    Platform,
    ecr_repository_name,
    hub_repository,
    normalize_registry,
    parse_platform,
    split_registry,
    validate_repository,
    validate_tag,
)
from mirror.versions import VersionRange

DEFAULT_CONFIG_PATH = Path("config/images.yaml")
DOCKER_HUB_URL = "https://registry-1.docker.io"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _platform_list(values: list[str]) -> list[str]:
    if not values:
        raise ValueError("an empty platform list selects nothing; write `all` or name platforms")
    for value in values:
        parse_platform(value)  # InvalidReference is a ValueError: pydantic reports its words
    return values


def _all_or_list(value: Any) -> str:
    return "list" if isinstance(value, list) else "all"


PlatformsField = Annotated[
    Annotated[Literal["all"], Tag("all")] | Annotated[list[str], Tag("list")],
    Discriminator(_all_or_list),
]


class TagSelectorFile(_Strict):
    """Tags chosen from the source's tag list: by regex, version range, and/or the newest N."""

    match: str | None = None
    semver: str | None = None
    latest: Annotated[int, Field(ge=1, le=1000)] | None = None
    exclude: str | None = None

    @field_validator("match", "exclude")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression '{value}': {exc}") from None
        return value

    @field_validator("semver")
    @classmethod
    def _range_parses(cls, value: str | None) -> str | None:
        if value is not None:
            VersionRange.parse(value)
        return value

    @model_validator(mode="after")
    def _selects_something(self) -> TagSelectorFile:
        if self.match is None and self.semver is None and self.latest is None:
            raise ValueError("a tag selector needs at least one of match, semver, latest")
        return self


def _list_or_selector(value: Any) -> str:
    return "list" if isinstance(value, list) else "selector"


TagsField = Annotated[
    Annotated[list[str], Tag("list")] | Annotated[TagSelectorFile, Tag("selector")],
    Discriminator(_list_or_selector),
]


class ImageFile(_Strict):
    image: str
    tags: TagsField
    platforms: PlatformsField | None = None

    @field_validator("image")
    @classmethod
    def _image_is_a_repository(cls, value: str) -> str:
        if "@" in value or ":" in value.rpartition("/")[2]:
            raise ValueError(
                f"{value!r}: give the repository only; tags go in `tags:`, digests are not mirrored"
            )
        registry, path = split_registry(value)
        if registry != DOCKER_HUB:
            raise ValueError(
                f"{value!r}: images come from source.registry; write the name without a host"
            )
        validate_repository(hub_repository(path))
        return value

    @field_validator("tags")
    @classmethod
    def _tags_are_valid(cls, value: list[str] | TagSelectorFile) -> list[str] | TagSelectorFile:
        if isinstance(value, list):
            if not value:
                raise ValueError("the tag list is empty: list tags or use a selector")
            for tag in value:
                validate_tag(tag)
            if len(set(value)) != len(value):
                raise ValueError("the tag list names a tag twice")
        return value

    @field_validator("platforms")
    @classmethod
    def _platforms_are_valid(cls, value: str | list[str] | None) -> str | list[str] | None:
        return _platform_list(value) if isinstance(value, list) else value


class SourceFile(_Strict):
    registry: str = DOCKER_HUB
    reserve_pulls: Annotated[int, Field(ge=0)] = 10
    credentials_secret: str | None = None

    @field_validator("registry")
    @classmethod
    def _registry_is_host_or_url(cls, value: str) -> str:
        _registry_url(value)
        return value


class TargetFile(_Strict):
    region: str | None = None
    registry: str | None = None
    prefix: str = "dockerhub"

    @field_validator("registry")
    @classmethod
    def _registry_is_host_or_url(cls, value: str | None) -> str | None:
        if value is not None:
            _registry_url(value)
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix_is_ecr_path(cls, value: str) -> str:
        if value.strip("/"):
            try:
                ecr_repository_name(value, "x")
            except InvalidReference:
                raise ValueError(
                    f"{value!r} cannot start an ECR repository name (lowercase, digits, . _ - /)"
                ) from None
        return value


class StackFile(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z][-A-Za-z0-9]{0,127}$")] = "ecr-mirror"
    iam_user: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]+$", max_length=64)] | None = None
    # null: no lifecycle rule (for accounts that keep untagged images on purpose)
    untagged_expiry_days: Annotated[int, Field(ge=1, le=3650)] | None = 14
    scan_on_push: bool = True
    encryption: Literal["AES256", "KMS"] = "AES256"


class DefaultsFile(_Strict):
    platforms: PlatformsField = "all"

    @field_validator("platforms")
    @classmethod
    def _platforms_are_valid(cls, value: str | list[str]) -> str | list[str]:
        return _platform_list(value) if isinstance(value, list) else value


class ConfigFile(_Strict):
    version: int
    source: SourceFile = SourceFile()
    target: TargetFile = TargetFile()
    stack: StackFile = StackFile()
    defaults: DefaultsFile = DefaultsFile()
    images: Annotated[list[ImageFile], Field(min_length=1)]

    @field_validator("version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != 1:
            raise ValueError(f"unknown config version {value}; this mirror reads version 1")
        return value


# --- the resolved configuration the tool works with -----------------------------------


@dataclass(frozen=True)
class TagSelector:
    match: str | None
    semver: str | None
    latest: int | None
    exclude: str | None


@dataclass(frozen=True)
class MirroredImage:
    """One `images:` entry, defaults merged and names resolved."""

    name: str  # as written in the file, e.g. `python`
    repository: str  # on the source registry, e.g. `library/python`
    target_repository: str  # in ECR, e.g. `dockerhub/library/python`
    tags: tuple[str, ...] | TagSelector
    platforms: tuple[Platform, ...] | None  # None: every platform the source has


@dataclass(frozen=True)
class Config:
    path: str
    source_registry: str  # as the user wrote it, e.g. `docker.io`
    source_url: str  # e.g. `https://registry-1.docker.io`
    reserve_pulls: int
    credentials_secret: str | None
    region: str | None
    target_url: str | None  # None: the proxyEndpoint ECR's GetAuthorizationToken returns
    prefix: str
    stack: StackFile
    images: tuple[MirroredImage, ...]


def _registry_url(value: str) -> str:
    """`docker.io` -> Docker Hub's registry URL; `host[:port]` -> https; URLs kept."""
    if "://" in value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r}: expected a host or an http(s):// URL")
        return value.rstrip("/")
    if not value or "/" in value or " " in value:
        raise ValueError(f"{value!r}: expected a host or an http(s):// URL")
    if normalize_registry(value) == DOCKER_HUB:
        return DOCKER_HUB_URL
    return f"https://{value}"


def _resolve(model: ConfigFile, path: str) -> Config:
    images: list[MirroredImage] = []
    for entry in model.images:
        platforms = entry.platforms if entry.platforms is not None else model.defaults.platforms
        tags: tuple[str, ...] | TagSelector
        if isinstance(entry.tags, list):
            tags = tuple(entry.tags)
        else:
            tags = TagSelector(
                entry.tags.match, entry.tags.semver, entry.tags.latest, entry.tags.exclude
            )
        repository = hub_repository(entry.image)
        images.append(
            MirroredImage(
                name=entry.image,
                repository=repository,
                target_repository=ecr_repository_name(model.target.prefix, repository),
                tags=tags,
                platforms=None
                if platforms == "all"
                else tuple(parse_platform(p) for p in platforms),
            )
        )
    return Config(
        path=path,
        source_registry=model.source.registry,
        source_url=_registry_url(model.source.registry),
        reserve_pulls=model.source.reserve_pulls,
        credentials_secret=model.source.credentials_secret,
        region=model.target.region,
        target_url=_registry_url(model.target.registry) if model.target.registry else None,
        prefix=model.target.prefix,
        stack=model.stack,
        images=tuple(images),
    )


# --- turning YAML and validation problems into one-line errors --------------------------

Path_ = tuple[str | int, ...]


def _walk_lines(node: yaml.Node, path: Path_, lines: dict[Path_, int], filename: str) -> None:
    """Record the 1-based line of every value in the document, and refuse duplicate keys."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                raise ConfigError(
                    f"{filename}: {_dotted((*path, key))} (line {key_node.start_mark.line + 1}):"
                    " key given twice"
                )
            seen.add(key)
            _walk_lines(value_node, (*path, key), lines, filename)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk_lines(item, (*path, index), lines, filename)


def _dotted(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


def _data_path(data: Any, loc: tuple[int | str, ...]) -> Path_:
    """Drop pydantic's union tags from `loc`, keeping only the steps that index the data."""
    path: list[str | int] = []
    for step in loc:
        if _indexes(data, step):
            data = data[step]
            path.append(step)
        elif isinstance(data, dict) and isinstance(step, str) and not _is_union_tag(step):
            path.append(step)  # a missing or unknown key
            data = None
    return tuple(path)


def _indexes(data: Any, step: int | str) -> bool:
    if isinstance(data, dict):
        return step in data
    return isinstance(data, list) and isinstance(step, int) and 0 <= step < len(data)


def _is_union_tag(step: str) -> bool:
    return step in ("list", "all", "selector")


def _where(filename: str, path: Path_, lines: dict[Path_, int]) -> str:
    for depth in range(len(path), -1, -1):
        if path[:depth] in lines:
            return f"{filename}: {_dotted(path)} (line {lines[path[:depth]]})"
    return f"{filename}: {_dotted(path)}"


def _first_error(exc: ValidationError, data: Any) -> tuple[Path_, str]:
    errors = exc.errors()
    # A misspelt key also makes the right one "missing": name the misspelling first.
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    return _data_path(data, error["loc"]), message


def parse_config(text: str, filename: str = str(DEFAULT_CONFIG_PATH)) -> Config:
    """Validate a config document and resolve it; raise ConfigError with one clear line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{filename}{where}: malformed YAML: {problem}") from None
    if root is None or not isinstance(data, dict):
        raise ConfigError(f"{filename}: expected a mapping with `version:` and `images:`")
    lines: dict[Path_, int] = {}
    _walk_lines(root, (), lines, filename)
    try:
        model = ConfigFile.model_validate(data)
    except ValidationError as exc:
        path, message = _first_error(exc, data)
        raise ConfigError(f"{_where(filename, path, lines)}: {message}") from None
    try:
        config = _resolve(model, filename)
    except InvalidReference as exc:  # a name that is valid alone but too long with the prefix
        raise ConfigError(f"{filename}: {exc}") from None
    for index, later in _duplicate_targets(config):
        other = config.images[index]
        raise ConfigError(
            f"{_where(filename, ('images', later, 'image'), lines)}: {config.images[later].name!r}"
            f" maps to ECR repository {other.target_repository!r}, as images[{index}]"
            f" ({other.name!r}) does; list each image once"
        )
    return config


def _duplicate_targets(config: Config) -> Iterator[tuple[int, int]]:
    first_seen: dict[str, int] = {}
    for index, image in enumerate(config.images):
        if image.target_repository in first_seen:
            yield first_seen[image.target_repository], index
        first_seen.setdefault(image.target_repository, index)


def load_config(path: str | Path = DEFAULT_CONFIG_PATH) -> Config:
    """Read and validate the config file at `path`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    return parse_config(text, str(path))
