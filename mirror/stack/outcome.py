"""What a stack operation did (or, for a dry run, would do), as the command line reports it.

Pure: `summary()` is the one line, `rows()` the table (headers, rows) of repositories.
`SetOutcome` is what `ensure-repo` reports: the outcomes of the stacks of a split config as one
(for one stack, exactly that stack's outcome).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from mirror.stack.plan import ChangeAction, Repository, RepositoryChange, StackPlan

StackResult = Literal["created", "updated", "up-to-date", "would-create", "would-update"]


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

    @classmethod
    def of_plan(
        cls,
        plan: StackPlan,
        result: StackResult,
        existing: Mapping[str, str],
        retained: tuple[Repository, ...] = (),
        deleted: tuple[str, ...] = (),
    ) -> StackOutcome:
        """The outcome of `plan`, given the ECR repositories (`existing`: name -> URI)."""
        return cls(
            stack_name=plan.stack_name,
            region=plan.region,
            result=result,
            changes=plan.changes,
            repositories=tuple(Repository(n, existing[n]) for n in plan.wanted if n in existing),
            retained=retained,
            deleted=deleted,
            change_set=plan.change_set.name if plan.change_set else None,
        )

    def wanted(self) -> set[str]:
        """The config's repositories in this stack: those in ECR, and those (to be) added."""
        added = {change.repository for change in self.changes if change.action == "add"}
        return {repository.name for repository in self.repositories} | added

    def count(self, action: ChangeAction) -> int:
        return sum(1 for change in self.changes if change.action == action)

    def summary(self) -> str:
        """One line saying what happened."""
        name, counts = self.stack_name, self.counts()
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

    def counts(self) -> str:
        """How many repositories were (or would be) added, changed and removed."""
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
            if not change.is_repository:  # the registry's replication: deleted with the entry
                state = "would delete" if dry else "deleted"
            elif dry:
                state = "would remove from the stack (kept in ECR)"
            elif kept is not None:
                state = f"removed from the stack, retained in ECR ({kept.images} images)"
            else:
                state = "removed from the stack, no longer in ECR"
            rows.append((change.repository, state, kept.uri if kept else ""))
        return ("repository", "change", "uri"), rows


_PHRASES: dict[StackResult, str] = {
    "created": "created",
    "updated": "updated",
    "up-to-date": "up to date",
    "would-create": "would be created",
    "would-update": "would be updated",
}


@dataclass(frozen=True)
class SetOutcome:
    """What `ensure_stack` did to the stacks of the set (one stack unless the config is split)."""

    stacks: tuple[StackOutcome, ...]

    @property
    def result(self) -> StackResult:
        """The stacks' result when they share it; else `updated` (`would-update` for a dry run)."""
        results = {stack.result for stack in self.stacks}
        if len(results) == 1:
            return results.pop()
        return "would-update" if any(r.startswith("would") for r in results) else "updated"

    @property
    def changes(self) -> tuple[RepositoryChange, ...]:
        return tuple(change for stack in self.stacks for change in stack.changes)

    @property
    def repositories(self) -> tuple[Repository, ...]:
        return tuple(repository for stack in self.stacks for repository in stack.repositories)

    @property
    def retained(self) -> tuple[Repository, ...]:
        return tuple(repository for stack in self.stacks for repository in stack.retained)

    def summary(self) -> str:
        """One line: the stack's own, or the set's total and what happened to each stack."""
        if len(self.stacks) == 1:
            return self.stacks[0].summary()
        names = ", ".join(stack.stack_name for stack in self.stacks)
        each = ", ".join(
            f"{stack.stack_name} {_PHRASES[stack.result]}"
            + (f" ({stack.counts()})" if stack.changes else "")
            for stack in self.stacks
        )
        region = self.stacks[0].region
        prefix = "dry run: " if self.result.startswith("would") else ""
        count = sum(len(stack.wanted()) for stack in self.stacks)
        return (
            f"{prefix}{len(self.stacks)} stacks ({names}) in {region}, {count} repositories: {each}"
        )

    def rows(self) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
        """The stack's table; for a set, every stack's rows with the stack named last."""
        if len(self.stacks) == 1:
            headers, own = self.stacks[0].rows()
            return headers, [tuple(row) for row in own]
        rows: list[tuple[str, ...]] = []
        for stack in self.stacks:
            headers, own = stack.rows()
            rows += [(*row, stack.stack_name) for row in own]
        return (*headers, "stack"), rows


@dataclass(frozen=True)
class DeleteOutcome:
    """What `delete_stack` or `delete_schedule` did."""

    stack_name: str
    region: str
    result: Literal["deleted", "absent", "cancelled"]
    retained: tuple[Repository, ...] = ()
    deleted: tuple[str, ...] = ()  # repositories that went with the stack (not Retain)
    resources: tuple[tuple[str, str], ...] = ()  # the schedule's: (logical ID, type), all gone

    def summary(self) -> str:
        if self.result == "absent":
            return f"stack {self.stack_name} does not exist in {self.region}: nothing to delete"
        if self.result == "cancelled":
            return f"stack {self.stack_name} was not deleted"
        if self.resources:
            return (
                f"stack {self.stack_name} deleted from {self.region} with its"
                f" {len(self.resources)} resources"
            )
        return (
            f"stack {self.stack_name} deleted from {self.region}; {len(self.retained)}"
            " repositories retained in ECR with their images"
        )

    def rows(self) -> tuple[tuple[str, str, str], list[tuple[str, str, str]]]:
        if self.resources:
            gone = [(key, kind, "deleted with the stack") for key, kind in self.resources]
            return ("resource", "type", "state"), gone
        rows = [(r.name, f"retained, {r.images} images", r.uri) for r in self.retained]
        rows += [(name, "deleted with the stack", "") for name in self.deleted]
        return ("repository", "state", "uri"), rows
