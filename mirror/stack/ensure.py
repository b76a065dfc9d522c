"""`ensure-repo`: plan the stack from what AWS answers, show the plan, then apply it.

`plan_stack` asks and decides, executing nothing (the decisions and their texts are in
`mirror.stack.plan`):

1. A stack of the set left with no repository is refused before the stack is described.
2. **Describe** the stack. No stack: every repository is an addition, computed here (a CREATE
   change set would leave a `REVIEW_IN_PROGRESS` stack behind, even for a dry run). A state no
   update can start from is refused, with the events that led there.
3. A stack whose deployed template (GetTemplate) and parameters equal the rendered ones is up
   to date: no change set is computed, since one takes seconds to tens of seconds on AWS.
4. Repositories to add that already exist in ECR outside the stack are refused, with the fix.
5. Otherwise an UPDATE change set; "no changes" (see `is_no_changes`) means up to date.

`ensure_stack` first finds the stacks of the set (`mirror.stack.split`: past
`stack.scale.repositories_per_stack` repositories, the config is split over `<name>`,
`<name>-2`...) and which repositories each holds, then plans each stack of the set as above and
shows the plans as one. A refusal of any stops them all; a dry run stops there too (deleting the
change sets it computed). A template over 51,200 bytes goes to CloudFormation through S3
(`mirror.stack.upload`).
`apply_stack` refuses a change that would replace a repository, then creates the stack or
executes the change set and waits, showing the stack's events. The outcome names the
repositories' URIs (read from ECR: moto does not refresh stack outputs after a change set),
and the repositories the run removed from the stack, which `DeletionPolicy: Retain` leaves in
ECR with their images (counted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from mirror.config import Config
from mirror.errors import StackError
from mirror.stack.calls import (
    AwsClients,
    aws_errors,
    compute_change_set,
    counted,
    create_and_wait,
    deployed_template,
    deployed_templates,
    describe_stack,
    ecr_repositories,
    execute_and_wait,
    held_repositories,
    owned_repositories,
    set_members,
)
from mirror.stack.events import Polling, Progress, StackEvents, silent
from mirror.stack.outcome import SetOutcome, StackOutcome, StackResult
from mirror.stack.plan import (
    UPDATABLE,
    Refusal,
    StackPlan,
    additions,
    blocked_refusal,
    empty_refusal,
    missing_refusal,
    outside_refusal,
    parameters_match,
    plan_lines,
    replacement_refusal,
    repository_changes,
    set_lines,
    template_matches,
)
from mirror.stack.split import split_config
from mirror.stack.upload import upload_template
from mirror.template import needs_upload
from mirror.template_access import registry_resources


def ensure_stack(
    config: Config,
    *,
    dry_run: bool = False,
    progress: Progress = silent,
    polling: Polling = Polling(),
    aws: AwsClients | None = None,
) -> SetOutcome:
    """Create or update the stacks of the set so that they hold exactly the config's
    repositories, each of them in the stack that holds it already.

    Raises StackError (with its reasons sent to `progress` first) when CloudFormation refuses
    or fails, CredentialsError when there are no AWS credentials.
    """
    with aws_errors(config.stack.name):
        clients = aws or AwsClients.for_config(config)
        members = set_members(clients.cloudformation, config.stack.name)
        templates = deployed_templates(clients.cloudformation, members)
        parts = [
            (index, part)
            for index, part in enumerate(split_config(config, held_repositories(templates)))
            if part.images or index in members  # an empty place in the set stays empty
        ]
        for line in set_lines([part for _, part in parts]):
            progress(line)
        plans = [
            plan_stack(
                part, clients, progress=progress, polling=polling, deployed=templates.get(index)
            )
            for index, part in parts
        ]
        for plan in plans:
            for line in plan_lines(plan, dry_run=dry_run):
                progress(line)
        refused = [plan.refusal for plan in plans if plan.refusal is not None]
        if refused:
            for plan in plans:  # nothing of the set is executed
                if plan.change_set is not None:
                    clients.cloudformation.delete_change_set(ChangeSetName=plan.change_set.id)
            raise StackError(refused[0].message)
        if dry_run:
            return SetOutcome(tuple(_discard(plan, clients) for plan in plans))
        return SetOutcome(
            tuple(apply_stack(plan, clients, progress=progress, polling=polling) for plan in plans)
        )


def plan_stack(
    config: Config,
    aws: AwsClients,
    *,
    progress: Progress = silent,
    polling: Polling = Polling(),
    deployed: Any = None,
) -> StackPlan:
    """What `ensure-repo` would do; `progress` hears of a change set being computed.

    Nothing is executed; a change set computed for the plan is executed by `apply_stack` or
    deleted (see `ensure_stack`). AWS errors become one-line StackErrors. `deployed`: the
    stack's deployed template when the caller read it already (`ensure_stack` reads the set's).
    """
    with aws_errors(config.stack.name):
        cf = aws.cloudformation
        plan = StackPlan.for_config(config, aws.region)
        refusal = empty_refusal(plan)
        if refusal is not None:
            return replace(plan, refusal=refusal)
        stack = describe_stack(cf, plan.stack_name)
        if stack is None:
            plan = replace(
                plan,
                action="create",
                changes=additions(plan.names, registry_resources(config)),
                existing=ecr_repositories(aws.ecr),
            )
            return replace(plan, refusal=_outside(config, plan, aws, owned={}))
        stack_id = stack.get("StackId", plan.stack_name)
        plan = replace(plan, stack_id=stack_id)
        status = stack["StackStatus"]
        if status not in UPDATABLE:
            failures = StackEvents(cf, plan.stack_name, plan.names).recent_failures(stack_id)
            return replace(plan, refusal=blocked_refusal(plan.stack_name, status, failures))
        if parameters_match(stack, plan.parameters) and template_matches(
            deployed if deployed is not None else deployed_template(cf, stack_id),
            plan.template_body,
            config,
        ):
            return replace(plan, action="none", existing=ecr_repositories(aws.ecr))
        owned = owned_repositories(cf, stack_id)
        plan = replace(plan, names={**plan.names, **owned}, existing=ecr_repositories(aws.ecr))
        refusal = _outside(config, plan, aws, owned=owned)
        if refusal is not None:
            return replace(plan, refusal=refusal)
        computed = compute_change_set(
            cf,
            plan.stack_name,
            _template_source(plan, aws, progress),
            plan.parameters,
            polling=polling,
            progress=progress,
        )
        if computed is None:
            return replace(plan, action="none", found_by="change set")
        change_set, raw = computed
        changes = repository_changes(raw, plan.names)
        return replace(plan, action="update", change_set=change_set, changes=changes)


def _outside(
    config: Config, plan: StackPlan, aws: AwsClients, *, owned: Mapping[str, str]
) -> Refusal | None:
    """The refusal of repositories to add that exist outside the stack, their images counted."""
    found, _ = counted(aws.ecr, plan.outside(owned), plan.existing)
    return outside_refusal(plan.stack_name, config.path, found)


def apply_stack(
    plan: StackPlan, aws: AwsClients, *, progress: Progress = silent, polling: Polling = Polling()
) -> StackOutcome:
    """Carry out `plan` and wait for CloudFormation to finish; a refused plan is raised."""
    with aws_errors(plan.stack_name):
        if plan.refusal is not None:
            raise StackError(plan.refusal.message)
        cf = aws.cloudformation
        events = StackEvents(cf, plan.stack_name, plan.names, progress)
        if plan.action == "create":
            create_and_wait(
                events, _template_source(plan, aws, progress), plan.parameters, polling=polling
            )
            return _settled(plan, "created", aws, ecr_repositories(aws.ecr))
        if plan.change_set is not None:
            refusal = replacement_refusal(plan)
            if refusal is not None:
                cf.delete_change_set(ChangeSetName=plan.change_set.id)
                raise StackError(refusal.message)
            stack_id = plan.stack_id or plan.stack_name
            execute_and_wait(events, stack_id, plan.change_set, polling=polling)
            return _settled(plan, "updated", aws, ecr_repositories(aws.ecr))
        return _settled(plan, "up-to-date", aws, plan.existing)


def _template_source(plan: StackPlan, aws: AwsClients, progress: Progress) -> dict[str, str]:
    """The template inline, or its URL once uploaded to S3 (over 51,200 bytes)."""
    if not needs_upload(plan.template_body):
        return {"TemplateBody": plan.template_body}
    store = aws.template_store(plan.template_bucket)
    return {"TemplateURL": upload_template(store, plan.stack_name, plan.template_body, progress)}


def _settled(
    plan: StackPlan, result: StackResult, aws: AwsClients, existing: Mapping[str, str]
) -> StackOutcome:
    """The outcome once the stack holds the config's repositories, which must be in ECR."""
    refusal = missing_refusal(plan, existing)
    if refusal is not None:
        raise StackError(refusal.message)
    removed = [change.repository for change in plan.changes if change.action == "remove"]
    retained, deleted = counted(aws.ecr, removed, existing)
    return StackOutcome.of_plan(plan, result, existing, retained, deleted)


def _discard(plan: StackPlan, aws: AwsClients) -> StackOutcome:
    """A dry run's outcome: the change set the plan computed is deleted, not executed."""
    if plan.change_set is not None:
        aws.cloudformation.delete_change_set(ChangeSetName=plan.change_set.id)
        return StackOutcome.of_plan(plan, "would-update", plan.existing)
    if plan.action == "create":
        return StackOutcome.of_plan(plan, "would-create", plan.existing)
    return _settled(plan, "up-to-date", aws, plan.existing)
