"""`mirror sync`: plan with free requests, then copy what changed within the pull budget.

    plan          (mirror.survey: tag lists, HEADs; free) -> up-to-date | copy | missing | failed
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
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mirror.budget import DeferredError, PullBudget, budget_available
from mirror.config import Config
from mirror.copy import Copier, write_tag
from mirror.engine import (
    CopyEngine,
    CopyError,
    CopyFailed,
    CopyOutcome,
    CopyRequest,
    EngineFactory,
    Progress,
    failure_text,
)
from mirror.over_time import OverTime, Pruned
from mirror.plan import Action, PlannedTag, SyncOptions, forecast, group_copies, selected
from mirror.registries import Registries, references
from mirror.registry.client import RateLimit
from mirror.registry.errors import QuotaExhaustedError
from mirror.registry.retry import RetryPolicy
from mirror.survey import plan_sync
from mirror.untag import untagger

log = logging.getLogger("mirror.sync")


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
    note: str | None = None  # besides the action: a pinned tag the source has moved on


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


def execute(
    plan: list[PlannedTag],
    copier: CopyEngine,
    budget: PullBudget,
    registries: Registries,
    options: SyncOptions,
    *,
    retry: RetryPolicy,
    over_time: OverTime,
    on_result: Callable[[TagResult], None] = lambda result: None,
) -> list[TagResult]:
    """Copy what the plan says: one copy per source digest and repository, in config order,
    each on its own thread; the other tags of that digest are written from it at once.
    Every tag written is recorded in `over_time`'s ledger; a tag about to be re-pointed has
    its image backed up first (`keep_previous`; a dry run names the backup, writing nothing).
    Returns a result per planned tag, then one per backup."""
    stop = threading.Event()  # --fail-fast: set by the first failure, seen by every worker
    followers: dict[int, list[PlannedTag]] = {}
    for planned in plan:
        if planned.same_as is not None:
            followers.setdefault(id(planned.same_as), []).append(planned)

    backups: list[TagResult] = []

    def result_of(planned: PlannedTag) -> TagResult:
        pinned = planned.pin.digest if planned.pin else None
        source_ref, target_ref = references(registries, planned.image, planned.tag, pinned=pinned)
        result = TagResult(
            planned, planned.action, source_ref, target_ref, error=planned.error, note=planned.note
        )
        if planned.action is Action.UP_TO_DATE:
            result.digest = planned.target_digest
        return result

    def copy_group(position: int, planned: PlannedTag) -> list[TagResult]:
        try:
            result, outcome = attempt(position, planned)
        finally:
            budget.end_turn(position)  # whatever happened, later copies may go
        results = [result]
        for follower in followers.get(id(planned), []):
            results.append(follow(follower, result, outcome))
        for done_result in results:
            target = done_result.planned
            if (
                done_result.action is Action.COPIED
                and done_result.digest
                and target.image.over_time.keeps_ledger
            ):
                over_time.record(target.image.target_repository, target.tag, done_result.digest)
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
            planned.platforms,
            planned.source,
            top_in_target=planned.top_in_target,
            position=position,
        )
        started = time.monotonic()
        try:
            kept(back_up(planned))
            outcome = copier.copy(request)
            result.action, result.digest = Action.COPIED, outcome.digest
        except CopyFailed as failed:
            outcome, cause = failed.outcome, failed.cause
            if isinstance(cause, QuotaExhaustedError):  # from a GET outside the budget's path
                budget.exhausted()
            if isinstance(cause, DeferredError | QuotaExhaustedError):
                result.action, result.error = Action.DEFERRED, str(cause)
            else:  # that image's failure, whatever it is
                result.action, result.error = Action.FAILED, failure_text(cause)
        except Exception as exc:  # a backup, or an engine that failed before it spent anything
            outcome = CopyOutcome()
            result.action, result.error = Action.FAILED, failure_text(exc)
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
            kept(back_up(planned))
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

    def back_up(planned: PlannedTag, *, dry_run: bool = False) -> TagResult | None:
        """`keep_previous`: the image a tag points at is tagged as its backup before the
        tag moves (a dry run only names the backup); a backup that fails stops the tag from
        moving. Returns the backup's line of the report, if there is one."""
        if planned.image.over_time.keep_previous == 0 or planned.tag.startswith("sha256:"):
            return None
        repository = planned.image.target_repository
        keep = over_time.would_back_up if dry_run else over_time.back_up
        try:
            backup = keep(repository, planned.tag)
        except Exception as exc:  # reported on the tag, which stays where it was
            raise CopyError(f"backing up its previous image: {failure_text(exc)}") from exc
        if backup is None:
            return None
        action = Action.WOULD_BACK_UP if dry_run else Action.BACKED_UP
        moved = f"{registries.target_name}/{repository}:{planned.tag}"
        backup_ref = f"{registries.target_name}/{repository}:{backup.tag}"
        mark = PlannedTag(planned.image, backup.tag, action)
        return TagResult(mark, action, moved, backup_ref, digest=backup.digest)

    def would_back_up(planned: PlannedTag) -> TagResult | None:
        """A dry run's backup of a tag it would re-point; the tag fails as a real run's would."""
        try:
            return back_up(planned, dry_run=True)
        except CopyError as exc:
            planned.action, planned.error = Action.FAILED, str(exc)
            return None

    def kept(backup: TagResult | None) -> None:
        if backup is not None:
            with lock:
                backups.append(backup)
            on_result(backup)

    lock = threading.Lock()
    done: dict[int, TagResult] = {}
    leaders = [
        (position, planned)
        for position, planned in enumerate(plan)
        if planned.action is Action.WOULD_COPY and planned.same_as is None and not options.dry_run
    ]
    if options.dry_run:  # the backups (free HEADs on ECR) first: one may fail its tag
        re_pointed = [planned for planned in plan if planned.action is Action.WOULD_COPY]
        workers = max(1, options.requests)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="backup") as pool:
            for backup in pool.map(would_back_up, re_pointed):
                kept(backup)
    for planned in plan:
        if planned.action is not Action.WOULD_COPY or options.dry_run:
            done[id(planned)] = result_of(planned)
            on_result(done[id(planned)])
            if planned.action is Action.FAILED and options.fail_fast:
                stop.set()  # failed in the plan, before any copy started
    workers = max(1, options.images)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="image") as pool:
        for results in pool.map(lambda job: copy_group(*job), leaders):
            for result in results:
                done[id(result.planned)] = result
                on_result(result)
    return [done[id(planned)] for planned in plan] + backups


def pruned_result(registries: Registries, pruned: Pruned, *, dry_run: bool) -> TagResult:
    """A pruned tag's line in the report: `source` and `target` both name the ECR tag."""
    action = Action.FAILED if pruned.error else Action.WOULD_PRUNE if dry_run else Action.PRUNED
    where = f"{registries.target_name}/{pruned.image.target_repository}:{pruned.tag}"
    planned = PlannedTag(pruned.image, pruned.tag, action)
    return TagResult(
        planned, action, where, where, digest=pruned.digest or None, error=pruned.error
    )


def sync(
    config: Config,
    registries: Registries,
    options: SyncOptions,
    *,
    retry: RetryPolicy | None = None,
    progress: Progress | None = None,
    on_result: Callable[[TagResult], None] = lambda result: None,
    engine: EngineFactory | None = None,
) -> SyncReport:
    """Plan, then (unless a dry run) copy within the pull budget. Returns the report.

    `engine` makes the copier (default: registry to registry, `mirror.copy`), or a Docker
    engine's (`mirror.docker_copier`): it gives the plan its check, then, built with the
    budget the plan read, copies; both engines spend the same budget the same way."""
    retry = retry or RetryPolicy()
    engine = engine or Copier
    untag = untagger(config.target_url, config.region, registries.target, retry)
    over_time = OverTime(registries.target, retry, untag)
    plan, ratelimit, selections = plan_sync(
        config,
        registries,
        engine.up_to_date_check(registries.target, retry),
        options,
        retry=retry,
    )
    group_copies(plan)
    available = budget_available(ratelimit.remaining if ratelimit else None, config.reserve_pulls)
    budget = PullBudget(
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
    with engine(
        registries.source,
        registries.target,
        concurrency=options.transfers,
        budget=budget,
        retry=retry,
        progress=progress,
    ) as copier:
        results = execute(
            plan,
            copier,
            budget,
            registries,
            options,
            retry=retry,
            over_time=over_time,
            on_result=on_result,
        )
        minimum = copier.manifests_fetched()
    unfinished = (Action.FAILED, Action.DEFERRED, Action.MISSING)
    for pruned in over_time.settle(
        list(config.images),
        selections,
        prune=not any(r.action in unfinished for r in results),
        dry_run=options.dry_run,
        owns=lambda image, tag: (
            selected(image, tag, options.only)
            and (options.shard is None or options.shard.owns(image.target_repository, tag))
        ),
    ):
        results.append(pruned_result(registries, pruned, dry_run=options.dry_run))
        on_result(results[-1])
    return SyncReport(
        results=results,
        ratelimit=budget.last_seen,
        dry_run=options.dry_run,
        retries=retry.retries,
        minimum_pulls=minimum,
    )
