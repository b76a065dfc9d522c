"""`deploy-schedule`: bring the scheduled job's stack to the template rendered from the config.

The same steps as `ensure-repo`, with the same calls (`mirror.stack.calls`), refusals
(`mirror.stack.plan`) and event display (`mirror.stack.events`), less what only a stack of
repositories needs (repositories outside the stack, images counted, retained repositories):

1. A template too large for CloudFormation is refused before AWS is asked anything.
2. **Describe** the stack. None: every resource is an addition; a dry run stops there.
   A state no update can start from is refused, with the events that led there.
3. A stack whose deployed template equals the rendered one is up to date (no change set).
4. Otherwise an UPDATE change set (CAPABILITY_IAM: the stack holds two roles), shown, then
   executed unless it is a dry run (then deleted).

Before any of it, the job's own image (`schedule.image`, unless it installs with `pip`) is
looked up in ECR: the stack does not need it to deploy, but every night's run fails without
it, so a missing image is a warning now rather than a failed build tomorrow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from botocore.exceptions import ClientError

from mirror.config import Config
from mirror.errors import ConfigError, StackError
from mirror.schedule_policy import stack_name, tool_image
from mirror.schedule_template import render, render_yaml, size_problem
from mirror.stack.calls import (
    AwsClients,
    aws_errors,
    compute_change_set,
    create_and_wait,
    deployed_template,
    describe_stack,
    execute_and_wait,
)
from mirror.stack.events import Polling, Progress, StackEvents, silent
from mirror.stack.outcome import StackResult
from mirror.stack.plan import (
    RepositoryChange,
    blocked_refusal,
    change_line,
    repository_changes,
    template_matches,
)
from mirror.stack.split import member_index

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

CAPABILITIES: tuple[Literal["CAPABILITY_IAM"]] = ("CAPABILITY_IAM",)
COMMAND = "mirror deploy-schedule"
_ABSENT = {"RepositoryNotFoundException": "no repository", "ImageNotFoundException": "no tag"}

log = logging.getLogger("mirror.stack")


def missing_tool_image(ecr: ECRClient, image: str) -> str | None:
    """Why the job's image `repository[:tag]` is not in this account's ECR, or None when it
    is there (or ECR cannot say: no permission to look is no reason to stop a deploy)."""
    repository, _, tag = image.partition(":")
    tag = tag or "latest"  # as the build pulls a name without one
    try:
        ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code not in _ABSENT:
            log.debug("looking for the job's image %s: %s", image, code)
            return None
        absent = repository if code.startswith("Repository") else f"{repository}:{tag}"
        return f"{_ABSENT[code]} {absent}"
    return None


@dataclass(frozen=True)
class ScheduleOutcome:
    """What `deploy_schedule` did (or, for a dry run, would do) to the schedule stack."""

    stack_name: str
    region: str
    result: StackResult
    expression: str
    resources: tuple[tuple[str, str], ...]  # (logical ID, type) of every resource, in order
    changes: tuple[RepositoryChange, ...] = ()
    timezone: str | None = None  # the expression's time zone; None: UTC

    def summary(self) -> str:
        name, region = self.stack_name, self.region
        when = self.expression if self.timezone is None else f"{self.expression} in {self.timezone}"
        runs = f"mirror sync runs on {when}"
        counts = (
            f"{self._count('add')} to add, {self._count('modify')} to change,"
            f" {self._count('remove')} to remove"
        )
        return {
            "created": f"stack {name} created in {region}: {runs}",
            "updated": f"stack {name} updated in {region}: {runs}",
            "up-to-date": f"stack {name} in {region} is up to date: {runs}",
            "would-create": f"dry run: stack {name} does not exist in {region};"
            f" deploy-schedule would create it with {len(self.resources)} resources;"
            f" mirror sync would run on {when}",
            "would-update": f"dry run: deploy-schedule would update stack {name} in {region}:"
            f" {counts}; mirror sync would run on {when}",
        }[self.result]

    def _count(self, action: str) -> int:
        return sum(1 for change in self.changes if change.action == action)

    def rows(self) -> tuple[tuple[str, str, str], list[tuple[str, str, str]]]:
        """(headers, rows): every resource of the template, then those removed."""
        dry = self.result.startswith("would")
        verbs = {"add": "added", "modify": "changed", "remove": "removed"}
        by_id = {change.logical_id: change for change in self.changes}
        rows: list[tuple[str, str, str]] = []
        for key, kind in self.resources:
            change = by_id.pop(key, None)
            state = verbs[change.action] if change else "unchanged"
            rows.append((key, kind, f"would be {state}" if dry and change else state))
        for change in by_id.values():
            state = verbs[change.action]
            rows.append(
                (change.logical_id, change.resource_type, f"would be {state}" if dry else state)
            )
        return ("resource", "type", "change"), rows


def deploy_schedule(
    config: Config,
    config_text: str,
    *,
    dry_run: bool = False,
    progress: Progress = silent,
    polling: Polling = Polling(),
    aws: AwsClients | None = None,
) -> ScheduleOutcome:
    """Create or update the schedule stack; `config_text` is the config as deployed inline.

    Raises ConfigError for a template too large or a stack name that is one of the
    repository stacks' (before any AWS call: the update would take every repository out of
    that stack), StackError when CloudFormation refuses or fails, CredentialsError when there
    are no AWS credentials.
    """
    name = stack_name(config)
    if member_index(config.stack.name, name) is not None:
        raise ConfigError(
            f"{config.path}: schedule.stack_name {name!r} is a name of the stacks of"
            f" repositories (stack.name {config.stack.name!r}): give the job's stack another name"
        )
    body = render_yaml(config, config_text)
    problem = size_problem(body)
    if problem is not None:
        raise ConfigError(f"{config.path}: {problem}")
    template = render(config, config_text)
    resources = tuple((key, str(value["Type"])) for key, value in template["Resources"].items())
    with aws_errors(name):
        clients = aws or AwsClients.for_config(config)
        cf, region = clients.cloudformation, clients.region
        events = StackEvents(cf, name, {}, progress)
        image = tool_image(config)
        absent = missing_tool_image(clients.ecr, image) if image else None
        if absent is not None:
            log.warning(
                "mirror: warning: schedule.image %s is not in ECR in %s (%s): every run fails"
                " until it is pushed (docs/schedule.md), or set schedule.pip",
                image,
                region,
                absent,
            )

        def outcome(
            result: StackResult, changes: tuple[RepositoryChange, ...] = ()
        ) -> ScheduleOutcome:
            schedule = config.schedule
            return ScheduleOutcome(
                name, region, result, schedule.expression, resources, changes, schedule.timezone
            )

        stack = describe_stack(cf, name)
        if stack is None:
            changes = tuple(
                RepositoryChange("add", key, key, resource_type=kind) for key, kind in resources
            )
            verb = "would be" if dry_run else "will be"
            progress(f"stack {name} does not exist in {region}: it {verb} created with:")
            for change in changes:
                progress(f"{change_line(change)} ({change.resource_type})")
            if dry_run:
                return outcome("would-create", changes)
            create_and_wait(
                events, {"TemplateBody": body}, {}, polling=polling, capabilities=CAPABILITIES
            )
            return outcome("created", changes)
        stack_id = stack.get("StackId", name)
        refusal = blocked_refusal(
            name,
            stack["StackStatus"],
            events.recent_failures(stack_id),
            rerun=COMMAND,
            delete="mirror delete-schedule",
            delete_note="",
        )
        if refusal is not None:
            for line in refusal.details:
                progress(line)
            raise StackError(refusal.message)
        if template_matches(deployed_template(cf, stack_id), body):
            progress(f"stack {name} matches the config: nothing to change")
            return outcome("up-to-date")
        computed = compute_change_set(
            cf,
            name,
            {"TemplateBody": body},
            {},
            polling=polling,
            progress=progress,
            capabilities=CAPABILITIES,
            description=COMMAND,
        )
        if computed is None:
            progress(f"stack {name}: CloudFormation finds nothing to change")
            return outcome("up-to-date")
        change_set, raw = computed
        changes = repository_changes(raw, {})
        progress(f"change set {change_set.name} for stack {name}:")
        for change in changes:
            progress(f"{change_line(change)} ({change.resource_type})")
        if dry_run:
            cf.delete_change_set(ChangeSetName=change_set.id)
            return outcome("would-update", changes)
        execute_and_wait(events, stack_id, change_set, polling=polling)
        return outcome("updated", changes)
