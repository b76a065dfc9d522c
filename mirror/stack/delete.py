"""`delete-repo`: delete the stack once confirmed; its repositories stay in ECR.

Steps: describe the stack (none: nothing to delete); refuse while another operation runs on
it; list the repositories it holds and ask `confirm` with a `DeletePlan`; delete the stack and
wait, showing its events; report the repositories left in ECR (`DeletionPolicy: Retain`) with
their images counted. `delete_set` does that for every stack of a split config
(`mirror.stack.split`), the last of the set first, each confirmed on its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from mirror.config import Config
from mirror.errors import StackError
from mirror.stack.calls import (
    AwsClients,
    aws_errors,
    counted,
    describe_stack,
    ecr_repositories,
    owned_repositories,
    set_members,
)
from mirror.stack.events import Polling, Progress, StackEvents, silent
from mirror.stack.outcome import DeleteOutcome
from mirror.stack.plan import DeletePlan, busy_refusal, logical_names
from mirror.stack.split import member_name


def delete_set(
    config: Config,
    *,
    confirm: Callable[[DeletePlan], bool],
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
    confirm: Callable[[DeletePlan], bool],
    progress: Progress = silent,
    polling: Polling = Polling(),
    aws: AwsClients | None = None,
) -> DeleteOutcome:
    """Delete the stack once `confirm(plan)` says yes; its repositories stay in ECR."""
    name = config.stack.name
    with aws_errors(name):
        clients = aws or AwsClients.for_config(config)
        cf, region = clients.cloudformation, clients.region
        stack = describe_stack(cf, name)
        if stack is None:
            return DeleteOutcome(name, region, "absent")
        status = stack["StackStatus"]
        refusal = busy_refusal(name, status)
        if refusal is not None:
            raise StackError(refusal.message)
        stack_id = stack.get("StackId", name)
        owned = owned_repositories(cf, stack_id)
        plan = DeletePlan(name, region, status, tuple(sorted(owned.values())))
        if not confirm(plan):
            return DeleteOutcome(name, region, "cancelled")
        names = {**logical_names(config), **owned}
        events = StackEvents(cf, name, names, progress)
        seen = events.seen(stack_id)
        progress(f"deleting stack {name}")
        cf.delete_stack(StackName=stack_id)
        events.wait(
            stack_id, operation="deletion", success="DELETE_COMPLETE", seen=seen, polling=polling
        )
        retained, deleted = counted(clients.ecr, plan.repositories, ecr_repositories(clients.ecr))
        return DeleteOutcome(name, region, "deleted", retained, deleted)
