"""`delete-repo` and `delete-schedule`: delete a stack once confirmed.

`delete_confirmed` is the steps both share: describe the stack (none: nothing to delete);
refuse while another operation runs on it; list what it holds and ask `confirm` with a
`DeletePlan`; delete the stack and wait, showing its events.

`delete_stack` deletes the stack of repositories, then reports the repositories left in ECR
(`DeletionPolicy: Retain`) with their images counted; `delete_set` does that for every stack of
a split config (`mirror.stack.split`), the last of the set first, each confirmed on its own.
`delete_schedule` deletes the scheduled job's stack, with everything it holds (its log group
and alarm topic among them), and never a stack of repositories.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Literal

from mirror.config import Config
from mirror.errors import StackError
from mirror.schedule_policy import stack_name as schedule_stack_name
from mirror.stack.calls import (
    AwsClients,
    aws_errors,
    counted,
    describe_stack,
    ecr_repositories,
    repositories_among,
    set_members,
    stack_resources,
)
from mirror.stack.events import Polling, Progress, StackEvents, silent
from mirror.stack.outcome import DeleteOutcome
from mirror.stack.plan import DeletePlan, busy_refusal, logical_names
from mirror.stack.split import member_name

Confirm = Callable[[DeletePlan], bool]


def delete_confirmed(
    clients: AwsClients,
    name: str,
    *,
    confirm: Confirm,
    names: Mapping[str, str],
    progress: Progress,
    polling: Polling,
) -> tuple[Literal["deleted", "absent", "cancelled"], DeletePlan | None]:
    """Delete stack `name` once `confirm(plan)` says yes; the plan is None when there is no
    stack. `names` (logical ID -> name) name the stack's events, with its repositories'."""
    cf = clients.cloudformation
    stack = describe_stack(cf, name)
    if stack is None:
        return "absent", None
    status = stack["StackStatus"]
    refusal = busy_refusal(name, status)
    if refusal is not None:
        raise StackError(refusal.message)
    stack_id = stack.get("StackId", name)
    resources = stack_resources(cf, stack_id)
    owned = repositories_among(resources)
    plan = DeletePlan(
        name,
        clients.region,
        status,
        tuple(sorted(owned.values())),
        tuple((key, kind) for key, kind, _ in resources),
    )
    if not confirm(plan):
        return "cancelled", plan
    events = StackEvents(cf, name, {**names, **owned}, progress)
    seen = events.seen(stack_id)
    progress(f"deleting stack {name}")
    cf.delete_stack(StackName=stack_id)
    events.wait(
        stack_id, operation="deletion", success="DELETE_COMPLETE", seen=seen, polling=polling
    )
    return "deleted", plan


def delete_set(
    config: Config,
    *,
    confirm: Confirm,
    progress: Progress = silent,
    polling: Polling = Polling(),
    aws: AwsClients | None = None,
) -> tuple[DeleteOutcome, ...]:
    """`delete_stack` for each stack of the set, from the last to `stack.name` itself."""
    base = config.stack.name
    with aws_errors(base):
        clients = aws or AwsClients.for_config(config)
        indexes = sorted(set_members(clients.cloudformation, base), reverse=True) or [0]
    return tuple(
        delete_stack(
            dataclasses.replace(
                config, stack=config.stack.model_copy(update={"name": member_name(base, index)})
            ),
            confirm=confirm,
            progress=progress,
            polling=polling,
            aws=clients,
        )
        for index in indexes
    )


def delete_stack(
    config: Config,
    *,
    confirm: Confirm,
    progress: Progress = silent,
    polling: Polling = Polling(),
    aws: AwsClients | None = None,
) -> DeleteOutcome:
    """Delete the stack once `confirm(plan)` says yes; its repositories stay in ECR."""
    name = config.stack.name
    with aws_errors(name):
        clients = aws or AwsClients.for_config(config)
        result, plan = delete_confirmed(
            clients,
            name,
            confirm=confirm,
            names=logical_names(config),
            progress=progress,
            polling=polling,
        )
        if result != "deleted" or plan is None:
            return DeleteOutcome(name, clients.region, result)
        retained, deleted = counted(clients.ecr, plan.repositories, ecr_repositories(clients.ecr))
        return DeleteOutcome(name, clients.region, result, retained, deleted)


def delete_schedule(
    config: Config,
    *,
    confirm: Confirm,
    progress: Progress = silent,
    polling: Polling = Polling(),
    aws: AwsClients | None = None,
) -> DeleteOutcome:
    """Delete the scheduled job's stack once `confirm(plan)` says yes, with all it holds.

    A stack of that name holding ECR repositories is refused: it is not a schedule stack
    (`schedule.stack_name` names a stack of repositories?), and `delete-repo` deletes those."""
    name = schedule_stack_name(config)
    with aws_errors(name):
        clients = aws or AwsClients.for_config(config)

        def confirmed(plan: DeletePlan) -> bool:
            if plan.repositories:
                raise StackError(
                    f"stack {name} holds ECR repositories: it is no schedule stack, and"
                    " delete-schedule deletes none (`mirror delete-repo` deletes a stack of"
                    " repositories)"
                )
            return confirm(plan)

        result, plan = delete_confirmed(
            clients, name, confirm=confirmed, names={}, progress=progress, polling=polling
        )
        resources = plan.resources if plan is not None and result == "deleted" else ()
        return DeleteOutcome(name, clients.region, result, resources=resources)
