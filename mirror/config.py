"""`config/images.yaml`: a versioned file, validated at load time, defaults merged per entry.

Steps: the YAML is read within bounds (`yamlfile`), checked against the file's schema
(`config_schema`, pydantic `*File` models), then resolved into the plain `Config` the rest of
the tool works with: `MirroredImage` entries whose defaults are already merged and whose names
are already resolved. Every problem becomes a `ConfigError` of one line:
`<file>: <field path> (line N): <what is wrong>`.

Parsing is pure: `parse_config(text, filename)` does no I/O; `load_config(path)` reads the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mirror.config_access import replication_problem
from mirror.config_schedule import ScheduleFile
from mirror.config_schema import (
    DOCKER_HUB_URL,
    ConfigFile,
    OverTimeFile,
    StackFile,
    is_docker_hub,
    registry_url,
    sends_docker_hub_credentials,
    validate_file,
)
from mirror.errors import ConfigError
from mirror.pins import Pin, parse_tag_entry
from mirror.reference import (
    InvalidReference,
    Platform,
    ecr_repository_name,
    hub_repository,
    parse_platform,
)
from mirror.yamlfile import MAX_CONFIG_BYTES, MAX_DEPTH, MAX_VALUES, read_text, read_yaml

# Callers import the file's bounds and schema names from here too, with the config they shape.
__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DOCKER_HUB_URL",
    "MAX_CONFIG_BYTES",
    "MAX_DEPTH",
    "MAX_VALUES",
    "Config",
    "MirroredImage",
    "OverTime",
    "Pin",
    "ScheduleFile",
    "StackFile",
    "TagSelector",
    "load_config",
    "parse_config",
    "sends_docker_hub_credentials",
]

DEFAULT_CONFIG_PATH = Path("config/images.yaml")


@dataclass(frozen=True)
class TagSelector:
    match: str | None
    semver: str | None
    latest: int | None
    exclude: str | None


@dataclass(frozen=True)
class OverTime:
    """An entry's keys for the mirror over time, defaults merged (docs/over-time.md)."""

    prune: bool = False  # delete the tags this tool wrote that the entry no longer selects
    keep: int = 0  # ... but keep the N most recently written of them
    keep_days: int | None = None  # ... and those written in the last N days
    keep_previous: int = 0  # backups kept of a tag's previous image when it moves

    @property
    def keeps_ledger(self) -> bool:
        """Whether the tags written for the entry are recorded (only an entry that prunes or
        keeps backups needs the record, so nothing else gets the ledger's tag)."""
        return self.prune or self.keep_previous > 0

    @classmethod
    def merged(cls, entry: OverTimeFile, defaults: OverTimeFile) -> OverTime:
        """The entry's value of each key, else the defaults', else the documented default."""
        return cls(
            prune=entry.prune if entry.prune is not None else bool(defaults.prune),
            keep=entry.keep if entry.keep is not None else defaults.keep or 0,
            keep_days=entry.keep_days if entry.keep_days is not None else defaults.keep_days,
            keep_previous=entry.keep_previous
            if entry.keep_previous is not None
            else defaults.keep_previous or 0,
        )


@dataclass(frozen=True)
class MirroredImage:
    """One `images:` entry, defaults merged and names resolved."""

    name: str  # as written in the file, e.g. `python`
    repository: str  # on the source registry, e.g. `library/python`
    target_repository: str  # in ECR, e.g. `dockerhub/library/python`
    tags: tuple[str, ...] | TagSelector
    platforms: tuple[Platform, ...] | None  # None: every platform the source has
    pins: tuple[Pin, ...] = ()  # `tags:` entries naming a digest (`tags` holds the others)
    over_time: OverTime = OverTime()


@dataclass(frozen=True)
class SourceRegistry:
    """The registry images come from, resolved once when the config is loaded: whatever
    needs to know which registry it is, or whether it is Docker Hub, reads this."""

    written: str  # as the config file says it, e.g. `docker.io` (the stack's tags show it)
    url: str  # e.g. `https://registry-1.docker.io`
    host: str  # host[:port] of `url`, lowercased: how Docker's config.json keys name it
    is_docker_hub: bool  # https, one of Docker Hub's host names, the default port
    hub_credentials: bool  # may Docker Hub's credentials go to it: it is Docker Hub, or opted in

    @property
    def name(self) -> str:
        """How the report names it in references: as written, or the URL's host[:port]."""
        return self.written if "://" not in self.written else self.host


@dataclass(frozen=True)
class Config:
    path: str
    source: SourceRegistry
    reserve_pulls: int
    credentials_secret: str | None
    region: str | None
    target_url: str | None  # None: the proxyEndpoint ECR's GetAuthorizationToken returns
    prefix: str
    stack: StackFile
    images: tuple[MirroredImage, ...]
    schedule: ScheduleFile  # the scheduled job (`mirror deploy-schedule`)


def _resolve(model: ConfigFile, path: str) -> Config:
    images: list[MirroredImage] = []
    for entry in model.images:
        platforms = entry.platforms if entry.platforms is not None else model.defaults.platforms
        tags: tuple[str, ...] | TagSelector
        pins: list[Pin] = []
        if isinstance(entry.tags, list):
            entries = [parse_tag_entry(text) for text in entry.tags]
            pins = [e for e in entries if isinstance(e, Pin)]
            tags = tuple(e for e in entries if isinstance(e, str))
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
                pins=tuple(pins),
                over_time=OverTime.merged(entry, model.defaults),
            )
        )
    source_url = registry_url(model.source.registry)
    source = SourceRegistry(
        written=model.source.registry,
        url=source_url,
        host=urlsplit(source_url).netloc.lower(),
        is_docker_hub=is_docker_hub(source_url),
        hub_credentials=sends_docker_hub_credentials(
            source_url, model.source.use_docker_hub_credentials
        ),
    )
    return Config(
        path=path,
        source=source,
        reserve_pulls=model.source.reserve_pulls,
        credentials_secret=model.source.credentials_secret,
        region=model.target.region,
        target_url=registry_url(model.target.registry) if model.target.registry else None,
        prefix=model.target.prefix,
        stack=model.stack,
        images=tuple(images),
        schedule=model.schedule,
    )


def parse_config(text: str, filename: str = str(DEFAULT_CONFIG_PATH)) -> Config:
    """Validate a config document and resolve it; raise ConfigError with one clear line."""
    document = read_yaml(text, filename)
    if not isinstance(document.data, dict):
        raise ConfigError(f"{filename}: expected a mapping with `version:` and `images:`")
    model = validate_file(document)
    try:
        config = _resolve(model, filename)
    except InvalidReference as exc:  # a name that is valid alone but too long with the prefix
        raise ConfigError(f"{filename}: {exc}") from None
    problem = replication_problem(model.stack.replication, config.prefix, config.region)
    if problem is not None:
        raise ConfigError(f"{document.where(('stack', 'replication'))}: {problem}")
    for index, later in _duplicate_targets(config):
        other = config.images[index]
        raise ConfigError(
            f"{document.where(('images', later, 'image'))}: {config.images[later].name!r}"
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
    return parse_config(read_text(path), str(path))
