"""`config/images.yaml`: a versioned file, validated at load time, defaults merged per entry.

The file's schema is drawn with pydantic models (`*File` classes); loading turns them into
the plain `Config` the rest of the tool works with (`MirroredImage` entries whose
defaults are already merged and whose names are already resolved). Every problem becomes a
`ConfigError` of one line: `<file>: <field path> (line N): <what is wrong>`.

The file is untrusted input, so reading it is bounded before anything else looks at it: at
most `MAX_CONFIG_BYTES` of UTF-8, `MAX_DEPTH` levels of nesting and `MAX_VALUES` values once
aliases are expanded (a few hundred bytes of nested aliases otherwise expand to billions), no
alias inside its own anchor, no explicit YAML tags but `!!str`. Anchors, aliases and merge keys
(`<<: *defaults`) within those bounds work as YAML says.

Parsing is pure: `parse_config(text, filename)` does no I/O; `load_config(path)` reads the file.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mirror.errors import ConfigError
from mirror.reference import (
    DOCKER_HUB,
    DOCKER_HUB_ALIASES,
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

# Bounds on the document (see the module docstring); a real config is a few KiB, 5 levels deep.
MAX_CONFIG_BYTES = 64 * 1024  # read in well under a second, even by pure-Python PyYAML
MAX_VALUES = 20_000  # scalars, lists and mappings, counted once per alias that repeats them
MAX_DEPTH = 20  # nested lists and mappings, aliases expanded


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
            except (re.error, OverflowError) as exc:  # OverflowError: a{99999999999}
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
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


def _registry_is_usable(value: str | None, info: ValidationInfo) -> str | None:
    """A `registry:` field's validator; `allow_insecure_http` is declared before `registry`
    in its section, so that it is in `info.data` here."""
    if value is not None:
        _check_transport(_registry_url(value), info.data.get("allow_insecure_http", False))
    return value


class SourceFile(_Strict):
    allow_insecure_http: StrictBool = False
    registry: str = DOCKER_HUB
    reserve_pulls: Annotated[int, Field(ge=0)] = 10
    use_docker_hub_credentials: StrictBool = False
    credentials_secret: str | None = None

    _registry_is_usable = field_validator("registry")(_registry_is_usable)

    @field_validator("credentials_secret")
    @classmethod
    def _secret_goes_to_docker_hub(cls, value: str | None, info: ValidationInfo) -> str | None:
        registry = info.data.get("registry")  # absent when it was refused
        if value is not None and registry is not None:
            opted_in = info.data.get("use_docker_hub_credentials", False)
            if not sends_docker_hub_credentials(_registry_url(registry), opted_in):
                raise ValueError(
                    f"the secret holds Docker Hub credentials and source.registry {registry!r} is"
                    " not Docker Hub; set source.use_docker_hub_credentials: true to send them"
                    " there"
                )
        return value


class TargetFile(_Strict):
    region: str | None = None
    allow_insecure_http: StrictBool = False
    registry: str | None = None
    prefix: str = "dockerhub"

    _registry_is_usable = field_validator("registry")(_registry_is_usable)

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
    source_is_docker_hub: bool
    # May Docker Hub's credentials go to the source? It is Docker Hub, or the file says so.
    docker_hub_credentials: bool
    reserve_pulls: int
    credentials_secret: str | None
    region: str | None
    target_url: str | None  # None: the proxyEndpoint ECR's GetAuthorizationToken returns
    prefix: str
    stack: StackFile
    images: tuple[MirroredImage, ...]


def _registry_url(value: str) -> str:
    """`docker.io` -> Docker Hub's registry URL; `host[:port]` -> https; URLs kept.

    Credentials in the URL are refused without quoting it: they are a secret, and would
    otherwise reach the report and the stack's tags.
    """
    if "@" in value:
        raise ValueError(
            "the registry URL carries credentials (user:password@); remove them, and see"
            " README.md for where credentials go"
        )
    if "://" in value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r}: expected a host or an http(s):// URL")
        if "?" in value or "#" in value:
            raise ValueError(f"{value!r}: a registry URL has no query or fragment")
        if parts.port == 0:  # reading the port also refuses one that is no number to 65535
            raise ValueError(f"{value!r}: port 0 is no registry's port")
        return value.rstrip("/")
    if not value or "/" in value or any(c.isspace() for c in value):
        raise ValueError(f"{value!r}: expected a host or an http(s):// URL")
    if normalize_registry(value) == DOCKER_HUB:
        return DOCKER_HUB_URL
    return _registry_url(f"https://{value}")


def _check_transport(url: str, allow_insecure_http: bool) -> None:
    """Plain http only to this machine, or where the file opts in."""
    parts = urlsplit(url)
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.hostname):
        raise ValueError(
            f"{url!r}: plain http is accepted only for a loopback host (127.0.0.0/8, ::1,"
            " localhost); use https, or set `allow_insecure_http: true` next to it"
        )


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":  # urlsplit lowercases hostnames
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _is_docker_hub(url: str) -> bool:
    """Is this registry URL Docker Hub's (https, one of its host names, the default port)?"""
    parts = urlsplit(url)
    return (
        parts.scheme == "https"
        and parts.hostname in DOCKER_HUB_ALIASES
        and parts.port in (None, 443)
    )


def sends_docker_hub_credentials(source_url: str, use_docker_hub_credentials: bool) -> bool:
    """The one rule for Docker Hub's credentials (`DOCKERHUB_*`, `source.credentials_secret`):
    they go to Docker Hub, and to another source only when the file says so."""
    return use_docker_hub_credentials or _is_docker_hub(source_url)


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
    source_url = _registry_url(model.source.registry)
    return Config(
        path=path,
        source_registry=model.source.registry,
        source_url=source_url,
        source_is_docker_hub=_is_docker_hub(source_url),
        docker_hub_credentials=sends_docker_hub_credentials(
            source_url, model.source.use_docker_hub_credentials
        ),
        reserve_pulls=model.source.reserve_pulls,
        credentials_secret=model.source.credentials_secret,
        region=model.target.region,
        target_url=_registry_url(model.target.registry) if model.target.registry else None,
        prefix=model.target.prefix,
        stack=model.stack,
        images=tuple(images),
    )


# --- reading the document, bounded ---------------------------------------------------------

Path_ = tuple[str | int, ...]
_STR_TAG = "tag:yaml.org,2002:str"
_TOO_LARGE = f"the file is larger than {MAX_CONFIG_BYTES // 1024} KiB, the most mirror reads"
_TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep, the most mirror reads"
_TOO_MANY = f"more than {MAX_VALUES:,} values once aliases are expanded, the most mirror reads"


class _Refused(Exception):
    """A document the loader will not read, and where; parse_config makes it a ConfigError."""

    def __init__(self, path: Path_, line: int, problem: str) -> None:
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

    lines: dict[Path_, int] = field(default_factory=dict)
    values: int = 0
    walking: set[int] = field(default_factory=set)  # ids of the collections being walked

    def visit(self, node: yaml.Node, path: Path_) -> None:
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

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> None:
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


def _read_document(text: str) -> tuple[Any, dict[Path_, int]]:
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


# --- turning YAML and validation problems into one-line errors --------------------------

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


def _dotted(path: Path_) -> str:
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
    if not isinstance(data, dict):
        raise ConfigError(f"{filename}: expected a mapping with `version:` and `images:`")
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
    """Read and validate the config file at `path`: at most MAX_CONFIG_BYTES, UTF-8."""
    try:
        with Path(path).open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {_TOO_LARGE}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path} (line {line}): the file is not UTF-8 text (byte {exc.start + 1}); save it"
            " as UTF-8"
        ) from None
    return parse_config(text, str(path))
