"""The plan's requests: tag lists and HEADs that classify every tag, spending no pull.

    resolve tags  (tag lists, both ends: free) -> (image, tag) pairs, filtered by --only/--shard
    classify      (HEAD the source; HEAD ECR where its list has the tag)
                                             -> up-to-date | copy | missing | failed
                                                (failed: also an immutable tag that moved)
    find in ECR   (a tag list, HEADs)        -> what ECR holds of a changed tag's image already
    check         (the ECR tag lists)        -> copies into a missing repository fail first

The decisions on what these requests found are pure and live in `mirror.plan`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial

from mirror.budget import TopInTarget
from mirror.config import Config, MirroredImage, Pin
from mirror.engine import UpToDate, failure_text
from mirror.manifests import INDEX_TYPES
from mirror.plan import Action, PlannedTag, SyncOptions, may_select, selected
from mirror.registries import Registries
from mirror.registry.client import ManifestHead, RateLimit, RegistryClient
from mirror.registry.errors import RegistryError
from mirror.registry.retry import RetryPolicy
from mirror.singleflight import SingleFlight, fulfil
from mirror.versions import select_tags


def resolve_tags(source: RegistryClient, image: MirroredImage) -> list[str]:
    """The tags an entry names: its list, or its selector applied to the source's tag list."""
    if isinstance(image.tags, tuple):
        return list(image.tags)
    return select_tags(source.list_tags(image.repository), image.tags)


def plan_sync(
    config: Config,
    registries: Registries,
    up_to_date: UpToDate,
    options: SyncOptions,
    *,
    retry: RetryPolicy,
) -> tuple[list[PlannedTag], RateLimit | None, dict[str, frozenset[str]]]:
    """Classify every selected tag and pinned digest with HEADs only (`up_to_date`: the
    engine's check), and tell what each listed entry selects (for pruning). Spends no pull."""
    source, target = registries.source, registries.target
    shard = options.shard
    # ECR repository -> its tags, or why they could not be listed (NAME_UNKNOWN: it is missing)
    in_target: dict[str, set[str] | Exception] = {}
    where: SingleFlight[tuple[str, str], TopInTarget] = SingleFlight()
    # ECR repository -> every tag its entry selects (before --only and --shard): what stays
    selections: dict[str, frozenset[str]] = {}

    def target_tags(repository: str) -> set[str] | Exception:
        """The tags ECR's repository has: one paged listing, free, that tells whether the
        repository exists and spares the HEAD of every tag it lacks."""
        try:
            return set(retry.call(lambda: target.list_tags(repository)))
        except Exception as exc:  # reported by `check_repository` on the copies it concerns
            return exc

    def tags_of(image: MirroredImage) -> list[PlannedTag]:
        if not may_select(image, options.only):
            return []
        in_target[image.target_repository] = target_tags(image.target_repository)
        try:
            tags = retry.call(lambda: resolve_tags(source, image))
        except Exception as exc:  # every shard: none can tell which tags it owns
            return [
                PlannedTag(image, "*", Action.FAILED, error=f"listing tags: {failure_text(exc)}")
            ]
        selections[image.target_repository] = frozenset(tags) | {
            pin.tag for pin in image.pins if pin.tag
        }
        pinned = [PlannedTag(image, p.reference, Action.WOULD_COPY, pin=p) for p in image.pins]
        if not tags and not pinned:  # one shard reports it
            if shard is None or shard.owns(image.target_repository, "*"):
                return [PlannedTag(image, "*", Action.MISSING, error="no tag matches the selector")]
            return []
        return [
            planned
            for planned in [PlannedTag(image, tag, Action.WOULD_COPY) for tag in tags] + pinned
            if selected(image, planned.tag, options.only)
            and (shard is None or shard.owns(image.target_repository, planned.tag))
        ]

    seen: list[RateLimit] = []

    def classify(planned: PlannedTag) -> None:
        if planned.action is not Action.WOULD_COPY:
            return
        if planned.pin is not None:
            try:
                classify_pin(planned, planned.pin)
            except Exception as exc:  # that pin's failure, whatever it is
                planned.action, planned.error = Action.FAILED, failure_text(exc)
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
            if tagged_in_target(planned):
                mirrored = up_to_date(image.target_repository, tag, head, image.platforms)
                if mirrored is not None:
                    planned.action, planned.target_digest = Action.UP_TO_DATE, mirrored
                    return
                if config.stack.tag_is_immutable(tag) and refuse_immutable(planned):
                    return
            find_in_target(planned)
        except Exception as exc:  # that tag's failure, whatever it is
            planned.action, planned.error = Action.FAILED, failure_text(exc)

    def refuse_immutable(planned: PlannedTag) -> bool:
        """Fail a tag that `stack.tag_mutability` keeps where it is and whose source moved,
        before its copy spends a pull: ECR would refuse the tag's PUT (TAG_INVALID)."""
        repository, tag, head = planned.image.target_repository, planned.tag, planned.source
        assert head is not None
        held = retry.call(lambda: target.head_manifest(repository, tag))
        if held is None:  # the tag left ECR since it was listed: writing it is allowed
            return False
        planned.action = Action.FAILED
        planned.error = (  # the report's line names the tag: the digests fit the line
            f"immutable tag (stack.tag_mutability): ECR keeps {held.digest}, the source moved"
            f" to {head.digest}; not copied, no pull spent; stack.mutable_tags lets tags move"
        )
        return True

    def classify_pin(planned: PlannedTag, pin: Pin) -> None:
        """A pinned digest: up to date when ECR holds it (by digest, or under its tag), with
        no source request but the free HEAD that tells whether a pinned tag moved on."""
        image = planned.image
        repository = image.target_repository
        if pin.tag is not None:
            planned.note = moved_on(image.repository, pin.tag, pin.digest)
        if pin.tag is None:
            held_head = retry.call(lambda: target.head_manifest(repository, pin.digest))
            mirrored = held_head.digest if held_head else None
        elif tagged_in_target(planned):
            pinned = ManifestHead(pin.digest, "", 0, None)
            mirrored = up_to_date(repository, pin.tag, pinned, planned.platforms)
        else:
            mirrored = None
        if mirrored is not None:
            planned.action, planned.target_digest = Action.UP_TO_DATE, mirrored
            return
        head = retry.call(lambda: source.head_manifest(image.repository, pin.digest))
        if head is None:
            planned.action = Action.MISSING
            planned.error = f"the pinned digest {pin.digest} is no longer at the source"
            return
        planned.source = head
        if head.ratelimit is not None:
            seen.append(head.ratelimit)
        find_in_target(planned)

    def moved_on(repository: str, tag: str, digest: str) -> str | None:
        """What the report says when the source's tag no longer names the pinned digest."""
        head = retry.call(lambda: source.head_manifest(repository, tag))
        if head is None:
            return f"the source has no tag {tag} any more"
        if head.digest != digest:
            return f"the source tag {tag} has moved on to {head.digest}"
        return None

    def tagged_in_target(planned: PlannedTag) -> bool:
        known = in_target.get(planned.image.target_repository)
        return not isinstance(known, set) or planned.tag in known

    def find_in_target(planned: PlannedTag) -> None:
        """What ECR holds of a changed tag's image already (HEADs and GETs on ECR: free),
        asked once per digest however many tags share it."""
        repository, head = planned.image.target_repository, planned.source
        assert head is not None
        future, mine = where.claim((repository, head.digest))
        planned.top_in_target = (
            fulfil(future, partial(held, repository, head)) if mine else (future.result())
        )
        if (
            head.media_type in INDEX_TYPES
            and options.dry_run
            and planned.platforms is None
            and tagged_in_target(planned)
        ):
            planned.previous_children = previous_children(repository, planned.tag)

    def held(repository: str, head: ManifestHead) -> TopInTarget:
        if retry.call(lambda: target.head_manifest(repository, head.digest)) is not None:
            return "manifest"
        if head.media_type in INDEX_TYPES and retry.call(
            lambda: target.blob_exists(repository, head.digest)
        ):
            return "kept"
        return None

    def previous_children(repository: str, tag: str) -> int | None:
        """How many manifests the index ECR's tag names holds: a free guess at the next."""
        try:
            manifest, _ = retry.call(lambda: target.get_manifest(repository, tag))
        except RegistryError as exc:
            if exc.status == 404:
                return None
            raise
        return len(manifest.children()) if manifest.is_index else None

    def repository_problem(repository: str) -> str | None:
        """Why copies into this repository would spend pulls, then fail (from its listing)."""
        listing = in_target.get(repository)
        if listing is None or isinstance(listing, set):
            return None
        if isinstance(listing, RegistryError) and (listing.status, listing.code) == (
            404,
            "NAME_UNKNOWN",
        ):
            return f"{listing}; run `mirror ensure-repo` first"
        return f"checking the ECR repository: {failure_text(listing)}"

    with ThreadPoolExecutor(max_workers=options.requests, thread_name_prefix="plan") as pool:
        pairs = [planned for part in pool.map(tags_of, config.images) for planned in part]
        list(pool.map(classify, pairs))
    for planned in pairs:
        problem = repository_problem(planned.image.target_repository)
        if problem and planned.action is Action.WOULD_COPY:
            planned.action, planned.error = Action.FAILED, problem
    # the smallest `remaining` is the latest word: HEADs ran concurrently
    ratelimit = min(seen, key=lambda r: r.remaining) if seen else None
    return pairs, ratelimit, selections
