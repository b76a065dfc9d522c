"""The CloudFormation stacks that hold the mirrored ECR repositories: plan, then apply.

`ensure_stack(config, dry_run=..., progress=...)` brings the stack (or, past
`stack.scale.repositories_per_stack` repositories, the set of stacks) to the templates
`mirror.template` renders from the config; `delete_set(config, confirm=...)` deletes them after
confirmation and reports the repositories left in ECR. Progress lines go to the `progress`
callback (the CLI writes them to stderr); every AWS error becomes one line of StackError or
CredentialsError.

Modules, each with one job (imports point down this list):

- `plan`: pure. `StackPlan` and `DeletePlan`, the decisions made from what AWS answered, the
  plan as shown, and every refusal with its fix;
- `outcome`: pure. What an operation did, as the command line reports it;
- `split`: pure. Which stack of the set holds which repository;
- `events`: the stack's events, shown under the repositories' names, and followed (`Polling`)
  while an operation runs;
- `upload`: templates over 51,200 bytes, to S3;
- `calls`: the AWS clients, the reads a plan needs, computing a change set, `aws_errors`;
- `ensure`: `plan_stack`, `apply_stack` and `ensure_stack` (`ensure-repo`);
- `delete`: `delete_stack` and `delete_set` (`delete-repo`);
- `schedule`: `deploy_schedule` (`deploy-schedule`), the scheduled job's stack, through the
  same calls, refusals and events.
"""

from mirror.stack.calls import AwsClients
from mirror.stack.delete import delete_set, delete_stack
from mirror.stack.ensure import apply_stack, ensure_stack, plan_stack
from mirror.stack.events import Polling
from mirror.stack.outcome import DeleteOutcome, StackOutcome
from mirror.stack.plan import DeletePlan, Repository, RepositoryChange, StackPlan, is_no_changes

__all__ = [
    "AwsClients",
    "DeleteOutcome",
    "DeletePlan",
    "Polling",
    "Repository",
    "RepositoryChange",
    "StackOutcome",
    "StackPlan",
    "apply_stack",
    "delete_set",
    "delete_stack",
    "ensure_stack",
    "is_no_changes",
    "plan_stack",
]
