"""The config file's schema: pydantic models (`*File` classes) of what `images.yaml` may say.

Each field's validator gives the words of its error; `validate_file` turns the first problem
into one `ConfigError` line naming the field's path and line. The registry URL rules live
here too, since the fields are checked by them: a host or an http(s) URL without credentials,
plain http only to a loopback host unless the file opts in, and which source Docker Hub's
credentials may go to.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mirror.config_access import StackAccessFile
from mirror.config_schedule import ScheduleFile
from mirror.errors import ConfigError
from mirror.pins import Pin, parse_tag_entry
from mirror.reference import (
    DOCKER_HUB,
    DOCKER_HUB_ALIASES,
    InvalidReference,
    ecr_repository_name,
    hub_repository,
    normalize_registry,
    parse_platform,
    split_registry,
    validate_repository,
)
from mirror.versions import VersionRange
from mirror.yamlfile import DataPath, YamlDocument

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


class OverTimeFile(_Strict):
    """The mirror over time (docs/over-time.md), per image or in `defaults`: prune the tags
    the entry no longer selects (keeping the `keep` newest, and those written in the last
    `keep_days`), and keep `keep_previous` backups of a tag's image when it moves.
    None: not said here (an image takes `defaults`, which take the documented default)."""

    prune: StrictBool | None = None
    keep: Annotated[StrictInt, Field(ge=0)] | None = None
    keep_days: Annotated[StrictInt, Field(ge=0, le=36500)] | None = None
    keep_previous: Annotated[StrictInt, Field(ge=0, le=100)] | None = None


class ImageFile(OverTimeFile):
    image: str
    tags: TagsField
    platforms: PlatformsField | None = None

    @field_validator("image")
    @classmethod
    def _image_is_a_repository(cls, value: str) -> str:
        if "@" in value or ":" in value.rpartition("/")[2]:
            raise ValueError(f"{value!r}: give the repository only; tags and digests go in `tags:`")
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
            entries = [parse_tag_entry(tag) for tag in value]  # InvalidReference: its words
            named = [e.reference if isinstance(e, Pin) else e for e in entries]
            if len(set(named)) != len(named):
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
        _check_transport(registry_url(value), info.data.get("allow_insecure_http", False))
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
            if not sends_docker_hub_credentials(registry_url(registry), opted_in):
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


class ScaleFile(_Strict):
    """`stack.scale`: the repository stack past CloudFormation's limits (docs/stack-at-scale.md)."""

    # The S3 bucket for templates over 51,200 bytes; null: mirror creates and keeps its own.
    template_bucket: str | None = None
    # Past this many, the repositories are split over stacks (a stack holds 500 resources).
    repositories_per_stack: Annotated[int, Field(ge=1, le=490)] = 450

    @field_validator("template_bucket")
    @classmethod
    def _bucket_name(cls, value: str | None) -> str | None:
        # No dots: mirror hands CloudFormation an HTTPS URL on the bucket's virtual host name.
        if value is not None and not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", value):
            raise ValueError(
                f"{value!r} is no S3 bucket name mirror takes: 3 to 63 lowercase letters, digits"
                " and hyphens, starting and ending with a letter or digit"
            )
        return value


class StackFile(StackAccessFile):
    """`stack:`; pull_access, tag_mutability, mutable_tags, replication: `config_access`;
    scale: `ScaleFile`."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z][-A-Za-z0-9]{0,127}$")] = "ecr-mirror"
    iam_user: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]+$", max_length=64)] | None = None
    # null: no lifecycle rule (for accounts that keep untagged images on purpose)
    untagged_expiry_days: Annotated[int, Field(ge=1, le=3650)] | None = 14
    scan_on_push: bool = True
    encryption: Literal["AES256", "KMS"] = "AES256"
    scale: ScaleFile = ScaleFile()


class DefaultsFile(OverTimeFile):
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
    schedule: ScheduleFile = ScheduleFile()  # the scheduled job (mirror deploy-schedule)
    images: Annotated[list[ImageFile], Field(min_length=1)]

    @field_validator("version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != 1:
            raise ValueError(f"unknown config version {value}; this mirror reads version 1")
        return value


# --- registry URLs ----------------------------------------------------------------------


def registry_url(value: str) -> str:
    """`docker.io` -> Docker Hub's registry URL; `host[:port]` -> https; URLs kept.

    Credentials in the URL are refused without quoting it: they are a secret, and would
    otherwise reach the report and the stack's tags.
    """
    if "@" in value:
        raise ValueError(
            "the registry URL carries credentials (user:password@); remove them, and see"
            " docs/credentials.md for where credentials go"
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
    return registry_url(f"https://{value}")


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


def is_docker_hub(url: str) -> bool:
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
    return use_docker_hub_credentials or is_docker_hub(source_url)


# --- the first validation problem, as one line --------------------------------------------


def validate_file(document: YamlDocument) -> ConfigFile:
    """The document's data as a ConfigFile; its first problem as a ConfigError of one line."""
    try:
        return ConfigFile.model_validate(document.data)
    except ValidationError as exc:
        path, message = _first_error(exc, document.data)
        raise ConfigError(f"{document.where(path)}: {message}") from None


def _data_path(data: Any, loc: tuple[int | str, ...]) -> DataPath:
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


def _first_error(exc: ValidationError, data: Any) -> tuple[DataPath, str]:
    errors = exc.errors()
    # A misspelt key also makes the right one "missing": name the misspelling first.
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    return _data_path(data, error["loc"]), message
