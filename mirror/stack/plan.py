"""What `ensure-repo` and `delete-repo` would do to the stack, decided from what AWS answered.

Pure: no I/O. `mirror.stack.ensure.plan_stack` asks AWS and decides with the functions here:
the repositories a new stack adds, the repository changes of a change set, whether the deployed
template and parameters already match the config. `plan_lines` is the plan as shown (a dry run
shows it and stops there). Every refusal, with its fix, is worded here: a stack left empty, a
stack no update can start from, repositories that exist outside the stack, a change that would
replace a repository, repositories deleted by hand, a stack busy when asked to delete it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import yaml

from mirror.config import Config
from mirror.template import (
    REPOSITORY_TYPE,
    load_template,
    logical_id,
    render,
    render_yaml,
    stack_parameters,
)

if TYPE_CHECKING:
    from mypy_boto3_cloudformation.type_defs import ChangeTypeDef, StackTypeDef

ChangeAction = Literal["add", "modify", "remove"]
# create: no stack yet; update: a change set to execute; none: up to date; refused: stopped
# before the changes were known (see `StackPlan.refusal`).
PlanAction = Literal["create", "update", "none", "refused"]

# What CloudFormation says when a change set (or an update) would change nothing: the change
# set ends FAILED with the first, `UpdateStack` (and moto's CreateChangeSet) answers the second.
NO_CHANGES_MESSAGES = ("didn't contain changes", "No updates are to be performed")

UPDATABLE = frozenset(
    {
        "CREATE_COMPLETE",
        "UPDATE_COMPLETE",
        "UPDATE_ROLLBACK_COMPLETE",
        "IMPORT_COMPLETE",
        "IMPORT_ROLLBACK_COMPLETE",
    }
)


@dataclass(frozen=True)
class RepositoryChange:
    """One repository in a change set (or in the plan for a new stack)."""

    action: ChangeAction
    repository: str  # the ECR repository name (the logical ID when CloudFormation does not say)
    logical_id: str
    replacement: bool = False  # CloudFormation would create a new repository in its place
    properties: tuple[str, ...] = ()  # the changed properties of a modify, when AWS says
    resource_type: str = REPOSITORY_TYPE  # the replication, the schedule's resources: others

    @property
    def is_repository(self) -> bool:
        return self.resource_type == REPOSITORY_TYPE


@dataclass(frozen=True)
class Repository:
    """An ECR repository; `images` is counted only where a report needs it."""

    name: str
    uri: str
    images: int | None = None


@dataclass(frozen=True)
class Refusal:
    """Why the stack is left as it is: lines to show first, then the error's one line."""

    message: str
    details: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChangeSet:
    """A change set computed for the plan: executed by `apply_stack`, or deleted."""

    id: str
    name: str


@dataclass(frozen=True)
class StackPlan:
    """What `ensure-repo` would do to the stack; nothing of it is executed yet."""

    stack_name: str
    region: str
    template_body: str  # the rendered YAML
    template_bucket: str | None  # stack.scale.template_bucket, for a template sent through S3
    parameters: Mapping[str, str]
    wanted: tuple[str, ...]  # the config's repositories, sorted
    names: Mapping[str, str]  # logical ID -> repository name, for changes and events
    action: PlanAction = "refused"
    changes: tuple[RepositoryChange, ...] = ()
    existing: Mapping[str, str] = field(default_factory=dict)  # ECR name -> URI, when planned
    stack_id: str | None = None
    change_set: ChangeSet | None = None  # set exactly when the action is "update"
    # How an up-to-date stack was found so: its deployed template, or an empty change set.
    found_by: Literal["template", "change set"] = "template"
    refusal: Refusal | None = None  # shown after the plan, then raised: nothing is executed

    @classmethod
    def for_config(cls, config: Config, region: str) -> StackPlan:
        """The plan before AWS is asked anything: what the config renders."""
        names = logical_names(config)
        return cls(
            stack_name=config.stack.name,
            region=region,
            template_body=render_yaml(config),
            template_bucket=config.stack.scale.template_bucket,
            parameters=stack_parameters(config),
            wanted=tuple(sorted(set(names.values()))),
            names=names,
        )

    def outside(self, owned: Mapping[str, str]) -> list[str]:
        """The config's repositories that exist in ECR but not in the stack (`owned`), sorted."""
        return sorted((set(self.wanted) - set(owned.values())) & set(self.existing))


@dataclass(frozen=True)
class DeletePlan:
    """What `delete_stack` is about to delete, for the confirmation prompt."""

    stack_name: str
    region: str
    status: str
    repositories: tuple[str, ...]  # the ECR repositories the stack holds (retained)
    resources: tuple[tuple[str, str], ...] = ()  # (logical ID, type) of all it holds


def logical_names(config: Config) -> dict[str, str]:
    """Logical ID -> ECR repository name of every image of the config."""
    return {logical_id(image.target_repository): image.target_repository for image in config.images}


def is_no_changes(message: str | None) -> bool:
    """True when CloudFormation's message says the stack already matches the template."""
    return bool(message) and any(text in str(message) for text in NO_CHANGES_MESSAGES)


# --- decisions -------------------------------------------------------------------------------


def additions(
    names: Mapping[str, str], registry: Mapping[str, Mapping[str, Any]]
) -> tuple[RepositoryChange, ...]:
    """A new stack's changes: every repository is added, in the order of their names, then
    the registry's resources (its replication, which replaces the registry's own: said)."""
    repositories = (
        RepositoryChange("add", name, key)
        for key, name in sorted(names.items(), key=lambda item: item[1])
    )
    others = (
        RepositoryChange("add", key, key, resource_type=str(resource["Type"]))
        for key, resource in registry.items()
    )
    return (*repositories, *others)


def repository_changes(
    raw: Sequence[ChangeTypeDef], names: Mapping[str, str]
) -> tuple[RepositoryChange, ...]:
    """The change set's changes to repositories, named; other resource types by logical ID."""
    actions: dict[str, ChangeAction] = {"Add": "add", "Modify": "modify", "Remove": "remove"}
    changes: list[RepositoryChange] = []
    for entry in raw:
        change = entry.get("ResourceChange", {})
        key = change.get("LogicalResourceId", "")
        action = actions.get(str(change.get("Action", "")))
        if action is None:  # Import, Dynamic: not something this template produces
            continue
        name = names.get(key)
        resource_type = REPOSITORY_TYPE if name is not None else str(change.get("ResourceType", ""))
        if name is None and resource_type == REPOSITORY_TYPE:
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
                resource_type=resource_type,
            )
        )
    order = {"add": 0, "modify": 1, "remove": 2}
    return tuple(sorted(changes, key=lambda c: (order[c.action], c.repository)))


def parameters_match(stack: StackTypeDef, parameters: Mapping[str, str]) -> bool:
    """True when the stack was deployed with exactly these parameter values."""
    deployed = {
        p.get("ParameterKey", ""): p.get("ParameterValue", "") for p in stack.get("Parameters", [])
    }
    return deployed == parameters


def template_matches(deployed: Any, body: str, config: Config | None = None) -> bool:
    """True when the deployed template (GetTemplate's body) is `body`, the one `config`
    renders (without a config, `body` is read back)."""
    if isinstance(deployed, str):  # boto3 decodes a JSON template into a dict
        if deployed == body:
            return True
        try:
            deployed = load_template(deployed)
        except (yaml.YAMLError, ValueError):
            return False
    return bool(deployed == (render(config) if config is not None else load_template(body)))


# --- the plan as shown, and the refusals ----------------------------------------------------


def set_lines(parts: Sequence[Config]) -> list[str]:
    """The line that introduces the plans of a set of stacks (none for one stack)."""
    if len(parts) < 2:
        return []
    shares = ", ".join(f"{part.stack.name} {len(part.images)}" for part in parts)
    total = sum(len(part.images) for part in parts)
    capacity = parts[0].stack.scale.repositories_per_stack
    return [
        f"{total} repositories over {len(parts)} stacks of at most {capacity}"
        f" (stack.scale.repositories_per_stack): {shares}"
    ]


def plan_lines(plan: StackPlan, *, dry_run: bool) -> list[str]:
    """The plan in progress lines, ending with the refusal's details when there is one."""
    name = plan.stack_name
    lines: list[str] = []
    if plan.change_set is not None:
        lines.append(f"change set {plan.change_set.name} for stack {name}:")
        lines += [change_line(change) for change in plan.changes]
        if not plan.changes:  # only outputs, the description or an unused parameter differ
            lines.append("  (no repository changes)")
    elif plan.action == "create":
        lines.append(
            f"stack {name} does not exist in {plan.region}: it"
            f" {'would be' if dry_run else 'will be'} created with {len(plan.changes)} repositories"
        )
        lines += [change_line(change) for change in plan.changes]
    elif plan.action == "none" and plan.found_by == "template":
        lines.append(f"stack {name} matches the config: nothing to change")
    elif plan.action == "none":
        lines.append(f"stack {name}: CloudFormation finds nothing to change")
    return lines + list(plan.refusal.details if plan.refusal else ())


def change_line(change: RepositoryChange) -> str:
    signs = {"add": "+", "modify": "~", "remove": "-"}
    line = f"  {signs[change.action]} {change.repository}"
    if change.properties:
        line += f" ({', '.join(change.properties)})"
    if change.replacement:
        line += " [replacement]"
    if change.action == "remove" and change.is_repository:
        line += " (leaves the stack; the repository and its images stay in ECR)"
    return line


def empty_refusal(plan: StackPlan) -> Refusal | None:
    """A stack of the set would hold no repository: CloudFormation takes no empty template."""
    if plan.wanted:
        return None
    return Refusal(
        f"stack {plan.stack_name} would hold no repository (the images it held left the"
        " config): delete it with `aws cloudformation delete-stack --stack-name"
        f" {plan.stack_name}` (its repositories stay in ECR), or add images; it takes the next"
        " ones"
    )


def blocked_refusal(
    stack_name: str,
    status: str,
    failures: Sequence[str],
    *,
    rerun: str = "mirror ensure-repo",
    delete: str = "mirror delete-repo",
    delete_note: str = " (repositories it holds are retained)",
) -> Refusal | None:
    """No update can start from `status`; `failures` are the events that say why it is there.
    `rerun` and `delete` are the commands that update and delete this stack."""
    if status in UPDATABLE:
        return None
    events = f"aws cloudformation describe-stack-events --stack-name {stack_name}"
    if status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED"):
        why = (
            "its creation failed and was rolled back, and CloudFormation cannot update it."
            f" Delete it with `{delete}`{delete_note}, then run `{rerun}` again"
        )
    elif status in ("UPDATE_ROLLBACK_FAILED", "IMPORT_ROLLBACK_FAILED"):
        why = (
            f"an operation failed and so did its rollback. Fix the cause its events show,"
            f" run `aws cloudformation continue-update-rollback --stack-name {stack_name}`,"
            f" then `{rerun}` again"
        )
    elif status == "DELETE_FAILED":
        why = f"its deletion failed ({events}); run `{delete}` again"
    elif status == "REVIEW_IN_PROGRESS":
        why = (
            "it holds only a change set waiting for review (`aws cloudformation deploy"
            " --no-execute-changeset`?). Execute that change set, or delete the stack with"
            f" `aws cloudformation delete-stack --stack-name {stack_name}`, then run again"
        )
    elif status.endswith("_IN_PROGRESS"):
        why = (
            f"another operation on it is running. Wait until it ends ({events}), then run"
            f" `{rerun}` again"
        )
    else:
        why = f"mirror does not know how to update a stack in that state ({events})"
    return Refusal(f"stack {stack_name} is {status}: {why}", tuple(failures))


def outside_refusal(
    stack_name: str, config_path: str, outside: Sequence[Repository]
) -> Refusal | None:
    """Repositories to add exist in ECR outside the stack: CloudFormation would fail on them."""
    if not outside:
        return None
    names = [repository.name for repository in outside]
    resources = [
        {
            "ResourceType": REPOSITORY_TYPE,
            "LogicalResourceId": logical_id(name),
            "ResourceIdentifier": {"RepositoryName": name},
        }
        for name in names
    ]
    details = (
        f"{len(names)} repositories of the config already exist in ECR outside stack"
        f" {stack_name}, and CloudFormation cannot create a repository whose name is taken:",
        *(f"  {repository.name} ({repository.images} images)" for repository in outside),
        "Either:",
        "  - import them into the stack, keeping their images: follow `Repositories that"
        " already exist` in docs/repository-stack.md with --resources-to-import"
        f" '{json.dumps(resources, separators=(',', ':'))}'",
        f"  - or mirror under other names: change target.prefix in {config_path}",
        "  - or, when they hold nothing worth keeping, delete them:"
        " aws ecr delete-repository --force --repository-name NAME",
    )
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return Refusal(
        f"{len(names)} repositories already exist outside stack {stack_name} ({shown}):"
        " import them into the stack or change target.prefix (details above)",
        details,
    )


def replacement_refusal(plan: StackPlan) -> Refusal | None:
    """A change would replace repositories: refused before the change set is executed."""
    replaced = [c for c in plan.changes if c.replacement]
    if not replaced:
        return None
    properties = sorted({p for c in replaced for p in c.properties}) or ["a property"]
    return Refusal(
        f"stack {plan.stack_name}: changing {', '.join(properties)} would replace"
        f" {len(replaced)} repositories ({', '.join(c.repository for c in replaced)}),"
        " and CloudFormation cannot create a new repository under a name in use; the"
        " encryption of an existing repository cannot change: restore stack.encryption"
    )


def missing_refusal(plan: StackPlan, existing: Mapping[str, str]) -> Refusal | None:
    """The stack says it holds these repositories, but ECR has none of that name."""
    missing = [name for name in plan.wanted if name not in existing]
    if not missing:
        return None
    return Refusal(
        f"stack {plan.stack_name} holds repositories that no longer exist in ECR (deleted by"
        f" hand?): {', '.join(missing)}. CloudFormation does not recreate them: remove the"
        " images from the config, run `mirror ensure-repo`, put them back and run it again"
    )


def busy_refusal(stack_name: str, status: str) -> Refusal | None:
    """`delete-repo` waits for no other operation: one is running on the stack."""
    if not status.endswith("_IN_PROGRESS") or status == "REVIEW_IN_PROGRESS":
        return None
    return Refusal(
        f"stack {stack_name} is {status}: another operation on it is running. Wait"
        f" until it ends (aws cloudformation describe-stack-events --stack-name"
        f" {stack_name}), then run `mirror delete-repo` again"
    )
