"""`mirror sync`: plan with free requests, then copy what changed within the pull budget.

    resolve tags  (tag lists: free)         -> (image, tag) pairs, filtered by --only/--shard
    classify      (HEAD source and target)   -> up-to-date | copy | missing | failed
    group         (source digests)           -> one copy per digest and repository
    budget        (ratelimit headers)        -> pulls this run may spend, less the reserve
    execute       (engine, in config order)  -> copied | deferred | failed

Tags that share a source digest in one repository are copied once: the others are written
from that copy (the same manifest bytes under their tag, no pull). A failing image never
stops the others (unless --fail-fast). Docker Hub's 429 stops every further pull at once:
the rest is reported as deferred, for the next run.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from mirror.budget import DeferredError, PullBudget, budget_available
from mirror.config import Config, MirroredImage
from mirror.copy import Copier, write_tag
from mirror.engine import (
    CopyEngine,
    CopyError,
    CopyOutcome,
    CopyRequest,
    EngineFactory,
    Progress,
    spent_before_failing,
)
from mirror.errors import MirrorError
from mirror.manifests import INDEX_TYPES, ManifestError
from mirror.plan import (
    Action,
    PlannedTag,
    Shard,
    forecast,
    group_copies,
    may_select,
    selected,
)
from mirror.registry.auth import CredentialsProvider
from mirror.registry.client import RateLimit, RegistryClient, new_http_client
from mirror.registry.errors import QuotaExhaustedError, RegistryError
from mirror.registry.retry import RetryPolicy
from mirror.text import known_secrets, redact
from mirror.versions import select_tags

log = logging.getLogger("mirror.sync")
QUOTA_CHECK_REPOSITORY = "ratelimitpreview/test"

# What one image's failure may be: reported on that image, never stopping the run.
IMAGE_FAILURES = (MirrorError, ManifestError, CopyError, httpx.HTTPError)


def failure_text(exc: Exception) -> str:
    """What an image's failure says: the error's own words, or, for an error nothing
    expected (a bug, or a registry answer of a shape nobody foresaw), its type too, with
    anything that looks like a credential redacted (httpx quotes header values)."""
    if isinstance(exc, IMAGE_FAILURES):
        return str(exc)
    log.debug("unexpected error", exc_info=True)
    said = redact(str(exc), known_secrets(os.environ))
    return f"internal error: {type(exc).__name__}: {said} (please report)"


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
    minimum_pulls: int = 0  # distinct manifests fetched: what the work done could not spare

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
    source, target = copier.source, copier.target
    shard = options.shard

    def tags_of(image: MirroredImage) -> list[PlannedTag]:
        if not may_select(image, options.only):
            return []
        try:
            tags = retry.call(lambda: resolve_tags(source, image))
        except Exception as exc:  # every shard: none can tell which tags it owns
            return [
                PlannedTag(image, "*", Action.FAILED, error=f"listing tags: {failure_text(exc)}")
            ]
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
                return
            find_in_target(planned)
        except Exception as exc:  # that tag's failure, whatever it is
            planned.action, planned.error = Action.FAILED, failure_text(exc)

    def find_in_target(planned: PlannedTag) -> None:
        """What ECR holds of a changed tag's image already (HEADs and GETs on ECR: free)."""
        repository, head = planned.image.target_repository, planned.source
        assert head is not None
        if retry.call(lambda: target.head_manifest(repository, head.digest)) is not None:
            planned.top_in_target = "manifest"
        elif head.media_type in INDEX_TYPES:
            if retry.call(lambda: target.blob_exists(repository, head.digest)):
                planned.top_in_target = "kept"
            if options.dry_run and planned.image.platforms is None:
                planned.previous_children = previous_children(repository, planned.tag)

    def previous_children(repository: str, tag: str) -> int | None:
        """How many manifests the index ECR's tag names holds: a free guess at the next."""
        try:
            manifest, _ = retry.call(lambda: target.get_manifest(repository, tag))
        except RegistryError as exc:
            if exc.status == 404:
                return None
            raise
        return len(manifest.children()) if manifest.is_index else None

    def check_repository(repository: str) -> None:
        """A copy into a repository ECR does not have would spend pulls, then fail."""
        try:
            missing = retry.call(lambda: copier.target.repository_missing(repository))
        except Exception as exc:  # those images' failure, whatever it is
            problem: str | None = f"checking the ECR repository: {failure_text(exc)}"
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
    *,
    retry: RetryPolicy,
    on_result: Callable[[TagResult], None] = lambda result: None,
) -> list[TagResult]:
    """Copy what the plan says: one copy per source digest and repository, in config order,
    each on its own thread; the other tags of that digest are written from it at once."""
    stop = threading.Event()  # --fail-fast: set by the first failure, seen by every worker
    followers: dict[int, list[PlannedTag]] = {}
    for planned in plan:
        if planned.same_as is not None:
            followers.setdefault(id(planned.same_as), []).append(planned)

    def result_of(planned: PlannedTag) -> TagResult:
        source_ref, target_ref = _references(registries, planned.image, planned.tag)
        result = TagResult(planned, planned.action, source_ref, target_ref, error=planned.error)
        if planned.action is Action.UP_TO_DATE:
            result.digest = planned.target_digest
        return result

    def copy_group(position: int, planned: PlannedTag) -> list[TagResult]:
        try:
            result, outcome = attempt(position, planned)
        finally:
            copier.budget.end_turn(position)  # whatever happened, later copies may go
        results = [result]
        for follower in followers.get(id(planned), []):
            results.append(follow(follower, result, outcome))
        if options.fail_fast and any(r.action is Action.FAILED for r in results):
            stop.set()
        return results

    def attempt(position: int, planned: PlannedTag) -> tuple[TagResult, CopyOutcome]:
        result = result_of(planned)
        if stop.is_set():
            result.action, result.error = Action.DEFERRED, "not attempted: --fail-fast"
            return result, CopyOutcome()
        assert planned.source is not None
        request = CopyRequest(
            planned.image.repository,
            planned.tag,
            planned.image.target_repository,
            planned.image.platforms,
            planned.source,
            top_in_target=planned.top_in_target,
            position=position,
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
        except Exception as exc:  # that image's failure, whatever it is
            result.action, result.error = Action.FAILED, failure_text(exc)
            outcome = spent_before_failing(exc)
        result.seconds = round(time.monotonic() - started, 3)
        result.bytes, result.pulls = outcome.bytes, outcome.pulls
        return result, outcome

    def follow(planned: PlannedTag, leader: TagResult, outcome: CopyOutcome) -> TagResult:
        """Write a tag from the copy of its digest made for an earlier tag: no pull."""
        result = result_of(planned)
        if leader.action is not Action.COPIED or leader.digest is None:
            result.action = leader.action
            result.error = f"same image as {leader.planned.label}: {leader.error}"
            return result
        repository, digest = planned.image.target_repository, leader.digest
        started = time.monotonic()
        try:
            manifest = (
                outcome.manifest
                or retry.call(lambda: registries.target.get_manifest(repository, digest))[0]
            )
            write_tag(registries.target, retry, repository, planned.tag, manifest)
            result.action, result.digest = Action.COPIED, manifest.digest
        except Exception as exc:  # that tag's failure, whatever it is
            result.action, result.error = Action.FAILED, failure_text(exc)
        result.seconds = round(time.monotonic() - started, 3)
        return result

    done: dict[int, TagResult] = {}
    leaders = [
        (position, planned)
        for position, planned in enumerate(plan)
        if planned.action is Action.WOULD_COPY and planned.same_as is None and not options.dry_run
    ]
    for planned in plan:
        if planned.action is not Action.WOULD_COPY or options.dry_run:
            done[id(planned)] = result_of(planned)
            on_result(done[id(planned)])
            if planned.action is Action.FAILED and options.fail_fast:
                stop.set()  # failed in the plan, before any copy started
    workers = max(1, min(options.concurrency, 4))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="image") as pool:
        for results in pool.map(lambda job: copy_group(*job), leaders):
            for result in results:
                done[id(result.planned)] = result
                on_result(result)
    return [done[id(planned)] for planned in plan]


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
        group_copies(plan)
        available = budget_available(
            ratelimit.remaining if ratelimit else None, config.reserve_pulls
        )
        copier.budget = budget = PullBudget(
            available,
            reserve=config.reserve_pulls,
            ratelimit=ratelimit,
            order=(
                i for i, p in enumerate(plan) if p.action is Action.WOULD_COPY and p.same_as is None
            ),
        )
        if options.dry_run:
            forecast(plan, available)
        log.info(
            "plan: %d tags to copy (%d distinct images), %d up to date; pulls available: %s",
            sum(1 for p in plan if p.action is Action.WOULD_COPY),
            sum(1 for p in plan if p.action is Action.WOULD_COPY and p.same_as is None),
            sum(1 for p in plan if p.action is Action.UP_TO_DATE),
            "unlimited" if available is None else available,
        )
        results = execute(plan, copier, registries, options, retry=retry, on_result=on_result)
        minimum = copier.manifests_fetched()
    return SyncReport(
        results=results,
        ratelimit=budget.last_seen,
        dry_run=options.dry_run,
        retries=retry.retries,
        minimum_pulls=minimum,
    )


def quota(source: RegistryClient) -> RateLimit | None:
    """Docker Hub's quota for these credentials, read from a HEAD (which spends nothing)."""
    head = source.head_manifest(QUOTA_CHECK_REPOSITORY, "latest")
    if head is None:
        raise MirrorError(
            f"{source.host} has no {QUOTA_CHECK_REPOSITORY}:latest to read the quota from"
        )
    return head.ratelimit
