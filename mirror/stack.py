"""The CloudFormation stack that holds the mirrored ECR repositories: plan, then act.

`ensure_stack(config, dry_run=..., progress=...)` brings the stack to the template
`mirror.template` renders from the config, in named steps:

1. **Describe** the stack. A state no update can start from (`ROLLBACK_COMPLETE`, `*_FAILED`,
   `*_IN_PROGRESS`, `REVIEW_IN_PROGRESS`) is refused with what to do about it.
2. **Plan.** No stack: every repository is an addition, computed here (a CREATE change set would
   leave a `REVIEW_IN_PROGRESS` stack behind, even for a dry run). A stack whose deployed
   template (GetTemplate) and parameters equal the rendered ones is up to date: no change set
   is computed, since one takes seconds to tens of seconds on AWS. Otherwise an UPDATE change
   set; "no changes" (see `is_no_changes`) means up to date, and the change set is deleted
   without being executed.
3. **Check** what CloudFormation would fail on, before anything is executed: repositories to
   add that already exist in ECR outside the stack (reported with the fix: import them, or
   change `target.prefix`), a change that would replace a repository, the template's size.
4. **Act**, unless dry run: create the stack, or execute the change set; wait, printing the
   stack's events as they come. A failure prints the failing events' reasons and raises
   StackError.
5. **Report**: the repositories' URIs (read from ECR: moto does not refresh stack outputs after
   a change set), and the repositories the run removed from the stack, which
   `DeletionPolicy: Retain` leaves in ECR with their images (counted).

`delete_stack(config, confirm=...)` is the seed's cleanup: it deletes the stack after
confirmation and reports the repositories left in ECR.

Everything that talks to AWS goes through `AwsClients` (built with `mirror.aws.client`, so
region, credentials and `AWS_ENDPOINT_URL` follow the SDK's conventions); progress lines go to
the `progress` callback (the CLI writes them to stderr); waiting polls with a bounded total time
(`Polling`). Every AWS error becomes one line of StackError or CredentialsError.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import yaml
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from mirror.aws import client
from mirror.config import Config
from mirror.errors import CredentialsError, StackError
from mirror.template import (
    REPOSITORY_TYPE,
    limit_problem,
    load_template,
    logical_id,
    render,
    render_yaml,
    stack_parameters,
)

if TYPE_CHECKING:
    from mypy_boto3_cloudformation.client import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import (
        ChangeTypeDef,
        ParameterTypeDef,
        StackEventTypeDef,
        StackTypeDef,
    )
    from mypy_boto3_ecr.client import ECRClient

Progress = Callable[[str], None]
ChangeAction = Literal["add", "modify", "remove"]
StackResult = Literal["created", "updated", "up-to-date", "would-create", "would-update"]

# What CloudFormation says when a change set (or an update) would change nothing: the change
# set ends FAILED with the first, `UpdateStack` (and moto's CreateChangeSet) answers the second.
NO_CHANGES_MESSAGES = ("didn't contain changes", "No updates are to be performed")

_UPDATABLE = frozenset(
    {
        "CREATE_COMPLETE",
        "UPDATE_COMPLETE",
        "UPDATE_ROLLBACK_COMPLETE",
        "IMPORT_COMPLETE",
        "IMPORT_ROLLBACK_COMPLETE",
    }
)
_HEARTBEAT_SECONDS = 60.0


def _silent(line: str) -> None:
    """The default progress callback: say nothing."""


@dataclass(frozen=True)
class Polling:
    """How to wait for CloudFormation: poll every `interval` seconds, give up after `timeout`.

    Stack operations on ECR repositories take seconds to a few minutes and change sets tens of
    seconds, so a few seconds between DescribeStacks calls costs little time and few API calls;
    the tests, against moto (which answers at once), use a tiny interval. `sleep` and `clock`
    are here for tests that wait on a scripted CloudFormation.
    """

    interval: float = 3.0
    timeout: float = 3600.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class AwsClients:
    """The two clients a stack operation needs."""

    cloudformation: CloudFormationClient
    ecr: ECRClient

    @classmethod
    def for_config(cls, config: Config) -> AwsClients:
        """Clients in `target.region`, or the SDK's own region, credentials and endpoint."""
        return cls(client("cloudformation", config.region), client("ecr", config.region))

    @property
    def region(self) -> str:
        return str(self.cloudformation.meta.region_name)


@dataclass(frozen=True)
class RepositoryChange:
    """One repository in a change set (or in the plan for a new stack)."""

    action: ChangeAction
    repository: str  # the ECR repository name (the logical ID when CloudFormation does not say)
    logical_id: str
    replacement: bool = False  # CloudFormation would create a new repository in its place
    properties: tuple[str, ...] = ()  # the changed properties of a modify, when AWS says


@dataclass(frozen=True)
class Repository:
    """An ECR repository; `images` is counted only where a report needs it."""

    name: str
    uri: str
    images: int | None = None


@dataclass(frozen=True)
class StackOutcome:
    """What `ensure_stack` did (or, for a dry run, would do)."""

    stack_name: str
    region: str
    result: StackResult
    changes: tuple[RepositoryChange, ...] = ()
    repositories: tuple[Repository, ...] = ()  # the config's repositories that exist in ECR
    retained: tuple[Repository, ...] = ()  # removed from the stack, still in ECR (counted)
    deleted: tuple[str, ...] = ()  # removed from the stack and gone from ECR (not Retain)
    change_set: str | None = None  # the change set computed, and executed unless dry run

    def count(self, action: ChangeAction) -> int:
        return sum(1 for change in self.changes if change.action == action)

    def summary(self) -> str:
        """One line saying what happened."""
        name, counts = self.stack_name, self._counts()
        if self.result == "created":
            return f"stack {name} created in {self.region}: {len(self.repositories)} repositories"
        if self.result == "updated":
            return f"stack {name} updated in {self.region}: {counts}"
        if self.result == "up-to-date":
            return (
                f"stack {name} in {self.region} is up to date:"
                f" {len(self.repositories)} repositories"
            )
        if self.result == "would-create":
            return (
                f"dry run: stack {name} does not exist in {self.region}; ensure-repo would"
                f" create it with {self.count('add')} repositories"
            )
        return f"dry run: ensure-repo would update stack {name} in {self.region}: {counts}"

    def _counts(self) -> str:
        if self.result.startswith("would"):
            return (
                f"{self.count('add')} to add, {self.count('modify')} to change,"
                f" {self.count('remove')} to remove from the stack"
            )
        return (
            f"{self.count('add')} added, {self.count('modify')} changed,"
            f" {self.count('remove')} removed from the stack"
        )

    def rows(self) -> tuple[tuple[str, str, str], list[tuple[str, str, str]]]:
        """(headers, rows): every repository of the config, then those removed from the stack."""
        dry = self.result.startswith("would")
        verbs = (
            {"add": "would add", "modify": "would change"}
            if dry
            else {"add": "added", "modify": "changed"}
        )
        by_name = {change.repository: change for change in self.changes}
        uris = {repository.name: repository.uri for repository in self.repositories}
        rows: list[tuple[str, str, str]] = []
        names = sorted(set(uris) | {c.repository for c in self.changes if c.action != "remove"})
        for name in names:
            change = by_name.get(name)
            state = verbs.get(change.action, "") if change else "unchanged"
            rows.append((name, state, uris.get(name, "")))
        for change in self.changes:
            if change.action != "remove":
                continue
            kept = next((r for r in self.retained if r.name == change.repository), None)
            if dry:
                state = "would remove from the stack (kept in ECR)"
            elif kept is not None:
                state = f"removed from the stack, retained in ECR ({kept.images} images)"
            else:
                state = "removed from the stack, no longer in ECR"
            rows.append((change.repository, state, kept.uri if kept else ""))
        return ("repository", "change", "uri"), rows


@dataclass(frozen=True)
class DeletePlan:
    """What `delete_stack` is about to delete, for the confirmation prompt."""

    stack_name: str
    region: str
    status: str
    repositories: tuple[str, ...]  # the ECR repositories the stack holds (retained)


@dataclass(frozen=True)
class DeleteOutcome:
    """What `delete_stack` did."""

    stack_name: str
    region: str
    result: Literal["deleted", "absent", "cancelled"]
    retained: tuple[Repository, ...] = ()
    deleted: tuple[str, ...] = ()  # repositories that went with the stack (not Retain)

    def summary(self) -> str:
        if self.result == "absent":
            return f"stack {self.stack_name} does not exist in {self.region}: nothing to delete"
        if self.result == "cancelled":
            return f"stack {self.stack_name} was not deleted"
        return (
            f"stack {self.stack_name} deleted from {self.region}; {len(self.retained)}"
            " repositories retained in ECR with their images"
        )

    def rows(self) -> tuple[tuple[str, str, str], list[tuple[str, str, str]]]:
        rows = [(r.name, f"retained, {r.images} images", r.uri) for r in self.retained]
        rows += [(name, "deleted with the stack", "") for name in self.deleted]
        return ("repository", "state", "uri"), rows


def is_no_changes(message: str | None) -> bool:
    """True when CloudFormation's message says the stack already matches the template."""
    return bool(message) and any(text in str(message) for text in NO_CHANGES_MESSAGES)


# --- ensure ----------------------------------------------------------------------------------


def ensure_stack(
    config: Config,
    *,
    dry_run: bool = False,
    progress: Progress = _silent,
    polling: Polling = Polling(),
    aws: AwsClients | None = None,
) -> StackOutcome:
    """Create or update the stack so that it holds exactly the config's repositories.

    Raises StackError (with its reasons sent to `progress` first) when CloudFormation refuses
    or fails, CredentialsError when there are no AWS credentials.
    """
    with _aws_errors(config.stack.name):
        run = _Run(config, aws or AwsClients.for_config(config), progress, polling)
        return run.ensure(dry_run=dry_run)


def delete_stack(
    config: Config,
    *,
    confirm: Callable[[DeletePlan], bool],
    progress: Progress = _silent,
    polling: Polling = Polling(),
    aws: AwsClients | None = None,
) -> DeleteOutcome:
    """Delete the stack once `confirm(plan)` says yes; its repositories stay in ECR."""
    with _aws_errors(config.stack.name):
        run = _Run(config, aws or AwsClients.for_config(config), progress, polling)
        return run.delete(confirm)


class _Run:
    """One stack operation: the config, the clients, and what the run learns on its way."""

    def __init__(
        self, config: Config, aws: AwsClients, progress: Progress, polling: Polling
    ) -> None:
        self.config = config
        self.aws = aws
        self.progress = progress
        self.polling = polling
        self.name = config.stack.name
        self.body = render_yaml(config)
        self.parameters = stack_parameters(config)
        self.wanted = {
            logical_id(image.target_repository): image.target_repository for image in config.images
        }
        self.names = dict(self.wanted)  # logical ID -> repository name, for events and changes

    @property
    def cf(self) -> CloudFormationClient:
        return self.aws.cloudformation

    # -- ensure --------------------------------------------------------------------------

    def ensure(self, *, dry_run: bool) -> StackOutcome:
        problem = limit_problem(self.config, self.body)
        if problem:
            raise StackError(f"stack {self.name}: {problem}")
        stack = self._describe()
        if stack is None:
            return self._create(dry_run=dry_run)
        self._refuse_blocked(stack)
        return self._update(stack, dry_run=dry_run)

    def _create(self, *, dry_run: bool) -> StackOutcome:
        changes = tuple(
            RepositoryChange("add", name, key)
            for key, name in sorted(self.wanted.items(), key=lambda kv: kv[1])
        )
        self.progress(
            f"stack {self.name} does not exist in {self.aws.region}: it"
            f" {'would be' if dry_run else 'will be'} created with {len(changes)} repositories"
        )
        self._show(changes)
        existing = self._ecr_repositories()
        self._refuse_outside([c.repository for c in changes if c.repository in existing])
        if dry_run:
            return self._outcome("would-create", changes, existing)
        self.progress(f"creating stack {self.name}")
        stack_id = self.cf.create_stack(
            StackName=self.name,
            TemplateBody=self.body,
            Parameters=self._parameter_list(),
        )["StackId"]
        self._wait(stack_id, operation="creation", success="CREATE_COMPLETE", seen=set())
        return self._outcome("created", changes, self._ecr_repositories())

    def _update(self, stack: StackTypeDef, *, dry_run: bool) -> StackOutcome:
        stack_id = stack.get("StackId", self.name)
        if self._deployed_matches(stack):
            self.progress(f"stack {self.name} matches the config: nothing to change")
            return self._outcome("up-to-date", (), self._ecr_repositories())
        owned = self._owned(stack_id)
        existing = self._ecr_repositories()
        self._refuse_outside(
            sorted(n for n in set(self.wanted.values()) - set(owned.values()) if n in existing)
        )
        created = self._create_change_set()
        if created is None:
            self.progress(f"stack {self.name}: CloudFormation finds nothing to change")
            return self._outcome("up-to-date", (), existing)
        change_set_id, change_set_name, raw = created
        changes = self._changes(raw, owned)
        self.progress(f"change set {change_set_name} for stack {self.name}:")
        self._show(changes)
        if not changes:  # only outputs, the description or an unused parameter differ
            self.progress("  (no repository changes)")
        if dry_run:
            self.cf.delete_change_set(ChangeSetName=change_set_id)
            return self._outcome("would-update", changes, existing, change_set_name)
        self._refuse_replacement(changes, change_set_id)
        seen = self._event_ids(stack_id)
        self.progress(f"executing change set {change_set_name}")
        self.cf.execute_change_set(ChangeSetName=change_set_id)
        self._wait(stack_id, operation="update", success="UPDATE_COMPLETE", seen=seen)
        return self._outcome("updated", changes, self._ecr_repositories(), change_set_name)

    def _deployed_matches(self, stack: StackTypeDef) -> bool:
        """True when the deployed template and parameters are the ones the config renders."""
        deployed_parameters = {
            p.get("ParameterKey", ""): p.get("ParameterValue", "")
            for p in stack.get("Parameters", [])
        }
        if deployed_parameters != self.parameters:
            return False
        body: Any = self.cf.get_template(
            StackName=stack.get("StackId", self.name), TemplateStage="Original"
        )["TemplateBody"]
        if isinstance(body, str):  # boto3 decodes a JSON template into a dict
            if body == self.body:
                return True
            try:
                body = load_template(body)
            except (yaml.YAMLError, ValueError):
                return False
        return bool(body == render(self.config))

    def _create_change_set(self) -> tuple[str, str, list[ChangeTypeDef]] | None:
        """(id, name, changes) of a computed change set, or None when nothing would change."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        name = f"mirror-{stamp}-{secrets.token_hex(2)}"
        self.progress(f"computing change set {name} for stack {self.name}")
        try:
            change_set_id = self.cf.create_change_set(
                StackName=self.name,  # moto finds a stack for a change set by name only
                ChangeSetName=name,
                ChangeSetType="UPDATE",
                TemplateBody=self.body,
                Parameters=self._parameter_list(),
                Description="mirror ensure-repo",
            )["Id"]
        except ClientError as exc:
            if is_no_changes(exc.response.get("Error", {}).get("Message")):
                return None
            raise
        deadline = self.polling.clock() + self.polling.timeout
        while True:
            described = self.cf.describe_change_set(ChangeSetName=change_set_id)
            status = described["Status"]
            if status in ("CREATE_COMPLETE", "FAILED", "DELETE_COMPLETE", "DELETE_FAILED"):
                break
            if self.polling.clock() >= deadline:
                raise StackError(
                    f"stack {self.name}: change set {name} is still {status} after"
                    f" {self.polling.timeout:.0f} s"
                )
            self.polling.sleep(self.polling.interval)
        if status != "CREATE_COMPLETE":
            reason = described.get("StatusReason", "")
            self.cf.delete_change_set(ChangeSetName=change_set_id)
            if is_no_changes(reason):
                return None
            raise StackError(f"stack {self.name}: CloudFormation refused the change set: {reason}")
        changes = list(described.get("Changes", []))
        token = described.get("NextToken")
        while token:
            page = self.cf.describe_change_set(ChangeSetName=change_set_id, NextToken=token)
            changes += page.get("Changes", [])
            token = page.get("NextToken")
        return change_set_id, name, changes

    def _changes(
        self, raw: list[ChangeTypeDef], owned: dict[str, str]
    ) -> tuple[RepositoryChange, ...]:
        """The change set's changes to repositories, named; other resource types by logical ID."""
        self.names.update(owned)
        actions: dict[str, ChangeAction] = {"Add": "add", "Modify": "modify", "Remove": "remove"}
        changes: list[RepositoryChange] = []
        for entry in raw:
            change = entry.get("ResourceChange", {})
            key = change.get("LogicalResourceId", "")
            action = actions.get(str(change.get("Action", "")))
            if action is None:  # Import, Dynamic: not something this template produces
                continue
            name = self.names.get(key)
            if name is None and change.get("ResourceType") == REPOSITORY_TYPE:
                name = change.get("PhysicalResourceId")
            properties = sorted(
                {
                    str(detail.get("Target", {}).get("Name"))
                    for detail in change.get("Details", [])
                    if detail.get("Target", {}).get("Name")
                }
            )
            changes.append(
                RepositoryChange(
                    action=action,
                    repository=name or key,
                    logical_id=key,
                    replacement=change.get("Replacement") == "True",
                    properties=tuple(properties),
                )
            )
        order = {"add": 0, "modify": 1, "remove": 2}
        return tuple(sorted(changes, key=lambda c: (order[c.action], c.repository)))

    def _show(self, changes: Sequence[RepositoryChange]) -> None:
        signs = {"add": "+", "modify": "~", "remove": "-"}
        for change in changes:
            line = f"  {signs[change.action]} {change.repository}"
            if change.properties:
                line += f" ({', '.join(change.properties)})"
            if change.replacement:
                line += " [replacement]"
            if change.action == "remove":
                line += " (leaves the stack; the repository and its images stay in ECR)"
            self.progress(line)

    # -- checks ----------------------------------------------------------------------------

    def _refuse_blocked(self, stack: StackTypeDef) -> None:
        status = stack["StackStatus"]
        if status in _UPDATABLE:
            return
        name = self.name
        events = f"aws cloudformation describe-stack-events --stack-name {name}"
        if status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED"):
            why = (
                "its creation failed and was rolled back, and CloudFormation cannot update it."
                " Delete it with `mirror delete-repo` (repositories it holds are retained),"
                " then run `mirror ensure-repo` again"
            )
        elif status in ("UPDATE_ROLLBACK_FAILED", "IMPORT_ROLLBACK_FAILED"):
            why = (
                f"an operation failed and so did its rollback. Fix the cause its events show,"
                f" run `aws cloudformation continue-update-rollback --stack-name {name}`, then"
                f" `mirror ensure-repo` again"
            )
        elif status == "DELETE_FAILED":
            why = f"its deletion failed ({events}); run `mirror delete-repo` again"
        elif status == "REVIEW_IN_PROGRESS":
            why = (
                "it holds only a change set waiting for review (`aws cloudformation deploy"
                " --no-execute-changeset`?). Execute that change set, or delete the stack with"
                f" `aws cloudformation delete-stack --stack-name {name}`, then run again"
            )
        elif status.endswith("_IN_PROGRESS"):
            why = (
                f"another operation on it is running. Wait until it ends ({events}), then run"
                " `mirror ensure-repo` again"
            )
        else:
            why = f"mirror does not know how to update a stack in that state ({events})"
        self._show_failures(stack.get("StackId", name))
        raise StackError(f"stack {name} is {status}: {why}")

    def _refuse_outside(self, names: list[str]) -> None:
        """Stop before CloudFormation fails on repositories that exist outside the stack."""
        if not names:
            return
        self.progress(
            f"{len(names)} repositories of the config already exist in ECR outside stack"
            f" {self.name}, and CloudFormation cannot create a repository whose name is taken:"
        )
        for name in names:
            self.progress(f"  {name} ({self._image_count(name)} images)")
        resources = [
            {
                "ResourceType": REPOSITORY_TYPE,
                "LogicalResourceId": logical_id(name),
                "ResourceIdentifier": {"RepositoryName": name},
            }
            for name in names
        ]
        self.progress("Either:")
        self.progress(
            "  - import them into the stack, keeping their images: follow `Repositories that"
            " already exist` in the README with --resources-to-import"
            f" '{json.dumps(resources, separators=(',', ':'))}'"
        )
        self.progress(
            f"  - or mirror under other names: change target.prefix in {self.config.path}"
        )
        self.progress(
            "  - or, when they hold nothing worth keeping, delete them:"
            " aws ecr delete-repository --force --repository-name NAME"
        )
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise StackError(
            f"{len(names)} repositories already exist outside stack {self.name} ({shown}):"
            " import them into the stack or change target.prefix (details above)"
        )

    def _refuse_replacement(self, changes: Sequence[RepositoryChange], change_set_id: str) -> None:
        replaced = [c for c in changes if c.replacement]
        if not replaced:
            return
        self.cf.delete_change_set(ChangeSetName=change_set_id)
        properties = sorted({p for c in replaced for p in c.properties}) or ["a property"]
        raise StackError(
            f"stack {self.name}: changing {', '.join(properties)} would replace"
            f" {len(replaced)} repositories ({', '.join(c.repository for c in replaced)}),"
            " and CloudFormation cannot create a new repository under a name in use; the"
            " encryption of an existing repository cannot change: restore stack.encryption"
        )

    # -- delete ----------------------------------------------------------------------------

    def delete(self, confirm: Callable[[DeletePlan], bool]) -> DeleteOutcome:
        stack = self._describe()
        region = self.aws.region
        if stack is None:
            return DeleteOutcome(self.name, region, "absent")
        status = stack["StackStatus"]
        if status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
            raise StackError(
                f"stack {self.name} is {status}: another operation on it is running. Wait"
                f" until it ends (aws cloudformation describe-stack-events --stack-name"
                f" {self.name}), then run `mirror delete-repo` again"
            )
        stack_id = stack.get("StackId", self.name)
        owned = self._owned(stack_id)
        self.names.update(owned)
        plan = DeletePlan(self.name, region, status, tuple(sorted(owned.values())))
        if not confirm(plan):
            return DeleteOutcome(self.name, region, "cancelled")
        seen = self._event_ids(stack_id)
        self.progress(f"deleting stack {self.name}")
        self.cf.delete_stack(StackName=stack_id)
        self._wait(stack_id, operation="deletion", success="DELETE_COMPLETE", seen=seen)
        retained, deleted = self._retained(plan.repositories, self._ecr_repositories())
        return DeleteOutcome(self.name, region, "deleted", retained, deleted)

    # -- AWS reads ---------------------------------------------------------------------------

    def _describe(self) -> StackTypeDef | None:
        """The stack, or None when there is none of that name (deleted stacks do not count)."""
        try:
            stacks = self.cf.describe_stacks(StackName=self.name)["Stacks"]
        except ClientError as exc:
            message = str(exc.response.get("Error", {}).get("Message", ""))
            if "does not exist" in message:
                return None
            raise
        return stacks[0] if stacks else None

    def _owned(self, stack_id: str) -> dict[str, str]:
        """Logical ID -> name of the ECR repositories the stack holds."""
        owned: dict[str, str] = {}
        for page in self.cf.get_paginator("list_stack_resources").paginate(StackName=stack_id):
            for resource in page["StackResourceSummaries"]:
                if resource["ResourceType"] == REPOSITORY_TYPE and resource.get(
                    "PhysicalResourceId"
                ):
                    owned[resource["LogicalResourceId"]] = resource["PhysicalResourceId"]
        return owned

    def _ecr_repositories(self) -> dict[str, str]:
        """Name -> URI of every ECR repository in the account and region."""
        found: dict[str, str] = {}
        for page in self.aws.ecr.get_paginator("describe_repositories").paginate():
            for repository in page["repositories"]:
                found[repository["repositoryName"]] = repository["repositoryUri"]
        return found

    def _image_count(self, name: str) -> int | None:
        """How many images the repository holds; None when it does not exist."""
        count = 0
        try:
            for page in self.aws.ecr.get_paginator("describe_images").paginate(repositoryName=name):
                count += len(page["imageDetails"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "RepositoryNotFoundException":
                return None
            raise
        return count

    def _retained(
        self, names: Sequence[str], existing: dict[str, str]
    ) -> tuple[tuple[Repository, ...], tuple[str, ...]]:
        retained = tuple(
            Repository(name, existing[name], self._image_count(name))
            for name in sorted(names)
            if name in existing
        )
        return retained, tuple(sorted(name for name in names if name not in existing))

    def _outcome(
        self,
        result: StackResult,
        changes: tuple[RepositoryChange, ...],
        existing: dict[str, str],
        change_set: str | None = None,
    ) -> StackOutcome:
        wanted = sorted(set(self.wanted.values()))
        if result in ("created", "updated", "up-to-date"):
            self._refuse_missing([name for name in wanted if name not in existing])
        removed = [c.repository for c in changes if c.action == "remove"]
        retained, deleted = (
            ((), ()) if result.startswith("would") else self._retained(removed, existing)
        )
        return StackOutcome(
            stack_name=self.name,
            region=self.aws.region,
            result=result,
            changes=changes,
            repositories=tuple(Repository(n, existing[n]) for n in wanted if n in existing),
            retained=retained,
            deleted=deleted,
            change_set=change_set,
        )

    def _refuse_missing(self, missing: list[str]) -> None:
        """The stack says it holds these repositories, but ECR has none of that name."""
        if not missing:
            return
        raise StackError(
            f"stack {self.name} holds repositories that no longer exist in ECR (deleted by"
            f" hand?): {', '.join(missing)}. CloudFormation does not recreate them: remove the"
            " images from the config, run `mirror ensure-repo`, put them back and run it again"
        )

    def _parameter_list(self) -> list[ParameterTypeDef]:
        return [
            {"ParameterKey": key, "ParameterValue": value}
            for key, value in sorted(self.parameters.items())
        ]

    # -- waiting and events --------------------------------------------------------------------

    def _event_ids(self, stack_id: str) -> set[str]:
        """The IDs of the newest page of events: where this run's events will start."""
        events = self.cf.describe_stack_events(StackName=stack_id)["StackEvents"]
        return {event["EventId"] for event in events}

    def _new_events(self, stack_id: str, seen: set[str]) -> list[StackEventTypeDef]:
        """Events not seen yet, oldest first (CloudFormation lists the newest first)."""
        new: list[StackEventTypeDef] = []
        paginator = self.cf.get_paginator("describe_stack_events")
        for page in paginator.paginate(StackName=stack_id):
            fresh = [e for e in page["StackEvents"] if e["EventId"] not in seen]
            new += fresh
            if len(fresh) < len(page["StackEvents"]):
                break
        seen.update(event["EventId"] for event in new)
        return new[::-1]

    def _wait(self, stack_id: str, *, operation: str, success: str, seen: set[str]) -> None:
        """Poll until the stack leaves *_IN_PROGRESS, printing events; raise unless `success`."""
        polling = self.polling
        start = polling.clock()
        last_said = start
        failures: list[str] = []
        while True:
            stack = self.cf.describe_stacks(StackName=stack_id)["Stacks"][0]
            status = stack["StackStatus"]
            for event in self._new_events(stack_id, seen):
                line = self._event_line(event)
                self.progress(f"  {line}")
                last_said = polling.clock()
                if str(event.get("ResourceStatus", "")).endswith("_FAILED"):
                    failures.append(line)
            if not status.endswith("_IN_PROGRESS"):
                break
            now = polling.clock()
            if now - start >= polling.timeout:
                raise StackError(
                    f"stack {self.name}: {operation} still {status} after"
                    f" {polling.timeout:.0f} s; CloudFormation carries on: follow it with"
                    f" aws cloudformation describe-stack-events --stack-name {self.name}"
                )
            if now - last_said >= _HEARTBEAT_SECONDS:
                self.progress(f"  still {status} ({now - start:.0f} s)")
                last_said = now
            polling.sleep(polling.interval)
        if status == success:
            return
        reason = failures[0] if failures else stack.get("StackStatusReason", "no reason given")
        if failures:
            self.progress(f"stack {self.name}: {operation} failed:")
            for line in failures:
                self.progress(f"  {line}")
        more = f" ({len(failures) - 1} more reasons above)" if len(failures) > 1 else ""
        raise StackError(
            f"stack {self.name}: {operation} failed and the stack is {status}: {reason}{more}"
        )

    def _event_line(self, event: StackEventTypeDef) -> str:
        key = event.get("LogicalResourceId", "")
        who = self.names.get(key, key)
        reason = event.get("ResourceStatusReason")
        line = f"{event.get('ResourceStatus', ''):<28} {who}"
        return f"{line}: {reason}" if reason else line

    def _show_failures(self, stack_id: str) -> None:
        """Print the reasons of the latest failed events (why a stack is stuck)."""
        try:
            events = self.cf.describe_stack_events(StackName=stack_id)["StackEvents"]
        except ClientError:
            return
        failed = [e for e in events if str(e.get("ResourceStatus", "")).endswith("_FAILED")]
        for event in failed[:5][::-1]:
            self.progress(f"  {self._event_line(event)}")


@contextmanager
def _aws_errors(stack_name: str) -> Iterator[None]:
    """Turn the SDK's exceptions into one-line MirrorErrors."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise StackError(
            f"stack {stack_name}: {exc.operation_name} failed:"
            f" {error.get('Code', 'error')}: {error.get('Message', exc)}"
        ) from None
    except NoCredentialsError:
        raise CredentialsError(
            "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and"
            " AWS_SECRET_ACCESS_KEY, or run with an instance or CodeBuild role"
        ) from None
    except BotoCoreError as exc:
        raise StackError(f"stack {stack_name}: {exc}") from None
