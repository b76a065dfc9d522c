"""Deleting tags in the mirror's registry: the ECR API on Amazon ECR, the registry API elsewhere.

Amazon ECR does not implement the registry API's tag deletion (`DELETE
/v2/<name>/manifests/<tag>`); it deletes only by digest there, which would take the image from
under all its tags. Its own API does untag: `BatchDeleteImage` with `imageIds=[{"imageTag":
TAG}]` removes that tag only (and the image, when that was its last tag). Any other registry
(the test world's ECR stand-in, a distribution registry) keeps the registry DELETE.

    which_api(target.registry, host, target.region)   the choice, pure: EcrApi or None
    RegistryUntag    one registry DELETE per tag, under the retry policy
    EcrApiUntag      BatchDeleteImage, up to 100 tags a call, boto3's own retries only

An `Untag` takes one repository and its tags, and answers the tags it could not delete, each
with its one-line reason; a tag it does not name is gone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from mirror import aws
from mirror.engine import failure_text
from mirror.errors import MirrorError
from mirror.registry.client import RegistryClient
from mirror.registry.retry import RetryPolicy
from mirror.text import FIELD_LIMIT, printable

Untag = Callable[[str, Sequence[str]], dict[str, str]]  # (repository, tags) -> {tag: why not}

BATCH = 100  # BatchDeleteImage takes at most 100 image ids a call

# A private ECR registry's host: `<account>.dkr.ecr.<region>.amazonaws.com` (`.com.cn` in
# China), its FIPS form `dkr.ecr-fips`, and its dual-stack form `<account>.dkr-ecr.<region>.on.aws`.
ECR_HOST = re.compile(
    r"(?P<account>\d{12})\.dkr[.-]ecr(?:-fips)?\.(?P<region>[a-z]{2}(?:-[a-z0-9]+)+)"
    r"\.(?:amazonaws\.com(?:\.cn)?|on\.aws)"
)


@dataclass(frozen=True)
class EcrApi:
    """Where the ECR API deletes the tags."""

    region: str | None  # None: the AWS SDK's own
    registry_id: str | None  # None: the registry of the caller's account


def which_api(target_registry: str | None, host: str, region: str | None) -> EcrApi | None:
    """How tags are deleted in the registry at `host` (`host[:port]`): through the ECR API when
    it is Amazon ECR (an ECR registry host, in the account and region it names; or no
    `target.registry`, which is the account's own registry in `region`), else (None) through
    the registry API."""
    name = host.lower()
    found = ECR_HOST.fullmatch(name.rpartition(":")[0] or name)
    if found:
        return EcrApi(found["region"], found["account"])
    return EcrApi(region, None) if target_registry is None else None


def untagger(
    target_registry: str | None,
    region: str | None,
    target: RegistryClient,
    retry: RetryPolicy,
) -> Untag:
    """The way tags are deleted in `target`, as `which_api` chooses."""
    api = which_api(target_registry, target.host, region)
    return RegistryUntag(target, retry) if api is None else EcrApiUntag(api)


class RegistryUntag:
    """`DELETE /v2/<repository>/manifests/<tag>` (OCI distribution 1.1), one tag at a time; a
    tag the registry does not have is as good as deleted."""

    def __init__(self, target: RegistryClient, retry: RetryPolicy) -> None:
        self._target = target
        self._retry = retry

    def __call__(self, repository: str, tags: Sequence[str]) -> dict[str, str]:
        failed: dict[str, str] = {}
        for tag in tags:
            try:
                self._retry.call(partial(self._target.delete_tag, repository, tag))
            except Exception as exc:  # that tag's failure, reported on it
                failed[tag] = failure_text(exc)
        return failed


class EcrApiUntag:
    """ECR's `BatchDeleteImage` by tag. The client is made at the first deletion, so a run
    that deletes nothing needs no region. Each failure ECR lists is its tag's reason; a call
    that fails is the reason of each of its tags; there is no retry beyond boto3's own."""

    def __init__(self, api: EcrApi, ecr_client: Any = None) -> None:
        self._api = api
        self._client = ecr_client

    def __call__(self, repository: str, tags: Sequence[str]) -> dict[str, str]:
        failed: dict[str, str] = {}
        for start in range(0, len(tags), BATCH):
            batch = list(dict.fromkeys(tags[start : start + BATCH]))
            try:
                answer = self._batch_delete(repository, batch)
            except MirrorError as exc:
                failed.update(dict.fromkeys(batch, str(exc)))
                continue
            failed.update(unanswered(batch, answer))
        return failed

    def _batch_delete(self, repository: str, tags: list[str]) -> Any:
        import botocore.exceptions

        ids = [{"imageTag": tag} for tag in tags]
        where = {"registryId": self._api.registry_id} if self._api.registry_id else {}
        try:
            if self._client is None:
                self._client = aws.client("ecr", self._api.region)
            return self._client.batch_delete_image(repositoryName=repository, imageIds=ids, **where)
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            raise MirrorError(
                f"ECR BatchDeleteImage failed: {error.get('Code', 'error')}:"
                f" {printable(error.get('Message', exc), FIELD_LIMIT)}"
            ) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise MirrorError(f"ECR BatchDeleteImage failed: {printable(exc)}") from None


def unanswered(tags: list[str], answer: Any) -> dict[str, str]:
    """The tags of one `BatchDeleteImage` call that were not deleted, each with ECR's reason: a
    tag in `failures`, or one the answer names nowhere (it is not taken as deleted). A tag
    ECR no longer has (`ImageNotFound`) is gone, which is what was asked: not a failure, as a
    404 is not on the registry path."""
    deleted: set[str] = set()
    failed: dict[str, str] = {}
    try:
        for image in answer.get("imageIds") or []:
            deleted.add(str(image.get("imageTag")))
        for failure in answer.get("failures") or []:
            tag = str(failure.get("imageId", {}).get("imageTag"))
            if failure.get("failureCode") == "ImageNotFound":
                deleted.add(tag)
                continue
            code = printable(failure.get("failureCode") or "error", FIELD_LIMIT)
            reason = printable(failure.get("failureReason") or "no reason given", FIELD_LIMIT)
            failed.setdefault(tag, f"ECR BatchDeleteImage: {code}: {reason}")
    except AttributeError:  # not the shape of an answer: nothing in it is believed
        deleted.clear()
        failed.clear()
    return {
        tag: failed.get(tag, "ECR BatchDeleteImage did not say it deleted the tag")
        for tag in tags
        if tag in failed or tag not in deleted
    }
