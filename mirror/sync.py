"""`mirror sync`: plan with free requests, then copy what changed within the pull budget.

    resolve tags  (tag lists: free)         -> (image, tag) pairs, filtered by --only/--shard
    classify      (HEAD source and target)   -> up-to-date | copy | missing | failed
    budget        (ratelimit headers)        -> pulls this run may spend, less the reserve
    execute       (Copier, in config order)  -> copied | deferred | failed

A failing image never stops the others (unless --fail-fast). Docker Hub's 429 stops every
further pull at once: the rest is reported as deferred, for the next run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from mirror.config import Config, MirroredImage
from mirror.copy import (
    Copier,
    CopyEngine,
    CopyError,
    CopyOutcome,
    CopyRequest,
    DeferredError,
    EngineFactory,
    Progress,
    PullBudget,
    spent_before_failing,
)
from mirror.errors import MirrorError
from mirror.manifests import ManifestError
from mirror.plan import (
    Action,
    PlannedTag,
    Shard,
    admit,
    budget_available,
    may_select,
    selected,
)
from mirror.registry.auth import CredentialsProvider
from mirror.registry.client import RateLimit, RegistryClient, new_http_client
from mirror.registry.errors import QuotaExhaustedError
from mirror.registry.retry import RetryPolicy
from mirror.versions import select_tags

log = logging.getLogger("mirror.sync")
QUOTA_CHECK_REPOSITORY = "ratelimitpreview/test"

# What one image's failure may be: reported on that image, never stopping the run.
IMAGE_FAILURES = (MirrorError, ManifestError, CopyError, httpx.HTTPError)


@dataclass(frozen=True)
class SyncOptions:
    dry_run: bool = False
    only: tuple[str, ...] = ()
    shard: Shard | None = None
    concurrency: int = 8
    fail_fast: bool = False


@dataclass
class TagResult:
    planned: PlannedTag
    action: Action
    source_ref: str
    target_ref: str
    digest: str | None = None
    bytes: int = 0
    pulls: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class SyncReport:
    results: list[TagResult] = field(default_factory=list)
    ratelimit: RateLimit | None = None
    dry_run: bool = False
    retries: int = 0

    def count(self, action: Action) -> int:
        return sum(1 for r in self.results if r.action is action)

    @property
    def exit_code(self) -> int:
        if self.count(Action.FAILED) or self.count(Action.MISSING):
            return 1
        if self.count(Action.DEFERRED):
            return 3
        return 0


@dataclass
class Registries:
    """The two ends of a sync, sharing one HTTP connection pool."""

    source: RegistryClient
    target: RegistryClient
    http: httpx.Client
    source_name: str  # how references are shown, e.g. docker.io
    target_name: str  # e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com

    def close(self) -> None:
        self.http.close()


@contextmanager
def open_registries(
    config: Config,
    source_credentials: CredentialsProvider,
    target_credentials: CredentialsProvider,
    target_url: str,
    concurrency: int,
) -> Iterator[Registries]:
    http = new_http_client(connections=concurrency * 2 + 4)
    try:
        source = RegistryClient(config.source_url, source_credentials, http, counts_pulls=True)
        target = RegistryClient(target_url, target_credentials, http)
        source_name = config.source_registry if "://" not in config.source_registry else source.host
        yield Registries(source, target, http, source_name, target.host)
    finally:
        http.close()


def _references(registries: Registries, image: MirroredImage, tag: str) -> tuple[str, str]:
    return (
        f"{registries.source_name}/{image.repository}:{tag}",
        f"{registries.target_name}/{image.target_repository}:{tag}",
    )


def resolve_tags(source: RegistryClient, image: MirroredImage) -> list[str]:
    """The tags an entry names: its list, or its selector applied to the source's tag list."""
    if isinstance(image.tags, tuple):
        return list(image.tags)
    return select_tags(source.list_tags(image.repository), image.tags)


def plan_sync(
    config: Config, copier: CopyEngine, options: SyncOptions, *, retry: RetryPolicy
) -> tuple[list[PlannedTag], RateLimit | None]:
    """Classify every selected tag with HEADs only. Spends no pull."""
    source = copier.source
    shard = options.shard

    def tags_of(image: MirroredImage) -> list[PlannedTag]:
        if not may_select(image, options.only):
            return []
        try:
            tags = retry.call(lambda: resolve_tags(source, image))
        except IMAGE_FAILURES as exc:  # every shard: none can tell which tags it owns
            return [PlannedTag(image, "*", Action.FAILED, error=f"listing tags: {exc}")]
        if not tags:  # one shard reports it
            if shard is None or shard.owns(image.target_repository, "*"):
                return [PlannedTag(image, "*", Action.MISSING, error="no tag matches the selector")]
            return []
        return [
            PlannedTag(image, tag, Action.WOULD_COPY)
            for tag in tags
            if selected(image, tag, options.only)
            and (shard is None or shard.owns(image.target_repository, tag))
        ]

    seen: list[RateLimit] = []

    def classify(planned: PlannedTag) -> None:
        if planned.action is not Action.WOULD_COPY:
            return
        image, tag = planned.image, planned.tag
        try:
            head = retry.call(lambda: source.head_manifest(image.repository, tag))
            if head is None:
                planned.action, planned.error = Action.MISSING, "no such tag at the source"
                return
            planned.source = head
            if head.ratelimit is not None:
                seen.append(head.ratelimit)
            mirrored = copier.up_to_date(image.target_repository, tag, head, image.platforms)
            if mirrored is not None:
                planned.action, planned.target_digest = Action.UP_TO_DATE, mirrored
        except IMAGE_FAILURES as exc:
            planned.action, planned.error = Action.FAILED, str(exc)

    def check_repository(repository: str) -> None:
        """A copy into a repository ECR does not have would spend pulls, then fail."""
        try:
            missing = retry.call(lambda: copier.target.repository_missing(repository))
        except IMAGE_FAILURES as exc:
            problem: str | None = f"checking the ECR repository: {exc}"
        else:
            problem = None if missing is None else f"{missing}; run `mirror ensure-repo` first"
        for planned in pairs:
            if (
                problem
                and planned.image.target_repository == repository
                and planned.action is Action.WOULD_COPY
            ):
                planned.action, planned.error = Action.FAILED, problem

    with ThreadPoolExecutor(max_workers=options.concurrency, thread_name_prefix="plan") as pool:
        pairs = [planned for part in pool.map(tags_of, config.images) for planned in part]
        list(pool.map(classify, pairs))
        to_copy = {p.image.target_repository for p in pairs if p.action is Action.WOULD_COPY}
        list(pool.map(check_repository, sorted(to_copy)))
    # the smallest `remaining` is the latest word: HEADs ran concurrently
    ratelimit = min(seen, key=lambda r: r.remaining) if seen else None
    return pairs, ratelimit


def execute(
    plan: list[PlannedTag],
    copier: CopyEngine,
    registries: Registries,
    options: SyncOptions,
    on_result: Callable[[TagResult], None] = lambda result: None,
) -> list[TagResult]:
    """Copy what the plan says, in config order, each image on its own thread."""
    results: list[TagResult] = []
    stop = threading.Event()  # --fail-fast: set by the first failure, seen by every worker

    def run(planned: PlannedTag) -> TagResult:
        result = attempt(planned)
        if result.action is Action.FAILED and options.fail_fast:
            stop.set()
        return result

    def attempt(planned: PlannedTag) -> TagResult:
        source_ref, target_ref = _references(registries, planned.image, planned.tag)
        result = TagResult(planned, planned.action, source_ref, target_ref, error=planned.error)
        if planned.source is not None and planned.action is Action.UP_TO_DATE:
            result.digest = planned.target_digest
        if planned.action is not Action.WOULD_COPY or options.dry_run:
            return result
        if stop.is_set():
            result.action, result.error = Action.DEFERRED, "not attempted: --fail-fast"
            return result
        assert planned.source is not None
        request = CopyRequest(
            planned.image.repository,
            planned.tag,
            planned.image.target_repository,
            planned.image.platforms,
            planned.source,
        )
        started = time.monotonic()
        outcome = CopyOutcome()
        try:
            outcome = copier.copy(request)
            result.action, result.digest = Action.COPIED, outcome.digest
        except DeferredError as exc:
            result.action, result.error = Action.DEFERRED, str(exc)
            outcome = spent_before_failing(exc)
        except QuotaExhaustedError as exc:  # from a GET outside the budgeted path
            copier.budget.exhausted()
            result.action, result.error = Action.DEFERRED, str(exc)
            outcome = spent_before_failing(exc)
        except IMAGE_FAILURES as exc:
            result.action, result.error = Action.FAILED, str(exc)
            outcome = spent_before_failing(exc)
        result.seconds = round(time.monotonic() - started, 3)
        result.bytes, result.pulls = outcome.bytes, outcome.pulls
        return result

    workers = max(1, min(options.concurrency, 4))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="image") as pool:
        for result in pool.map(run, plan):
            results.append(result)
            on_result(result)
    return results


def sync(
    config: Config,
    registries: Registries,
    options: SyncOptions,
    *,
    retry: RetryPolicy | None = None,
    progress: Progress | None = None,
    on_result: Callable[[TagResult], None] = lambda result: None,
    engine: EngineFactory = Copier,
) -> SyncReport:
    """Plan, then (unless a dry run) copy within the pull budget. Returns the report.

    `engine` makes the copier: `Copier` (registry to registry), or a Docker engine's
    (`mirror.engine_docker`); both plan with the same HEADs and spend the same budget."""
    retry = retry or RetryPolicy()
    budget = PullBudget(None)
    with engine(
        registries.source,
        registries.target,
        concurrency=options.concurrency,
        budget=budget,
        retry=retry,
        progress=progress,
    ) as copier:
        plan, ratelimit = plan_sync(config, copier, options, retry=retry)
        available = budget_available(
            ratelimit.remaining if ratelimit else None, config.reserve_pulls
        )
        copier.budget = budget = PullBudget(
            available, reserve=config.reserve_pulls, ratelimit=ratelimit
        )
        admit(plan, available)  # in config order, by estimated pulls
        log.info(
            "plan: %d to copy, %d up to date, %d deferred; pulls available: %s",
            sum(1 for p in plan if p.action is Action.WOULD_COPY),
            sum(1 for p in plan if p.action is Action.UP_TO_DATE),
            sum(1 for p in plan if p.action is Action.DEFERRED),
            "unlimited" if available is None else available,
        )
        results = execute(plan, copier, registries, options, on_result)
    return SyncReport(
        results=results,
        ratelimit=budget.last_seen,
        dry_run=options.dry_run,
        retries=retry.retries,
    )


def quota(source: RegistryClient) -> RateLimit | None:
    """Docker Hub's quota for these credentials, read from a HEAD (which spends nothing)."""
    head = source.head_manifest(QUOTA_CHECK_REPOSITORY, "latest")
    if head is None:
        raise MirrorError(
            f"{source.host} has no {QUOTA_CHECK_REPOSITORY}:latest to read the quota from"
        )
    return head.ratelimit
