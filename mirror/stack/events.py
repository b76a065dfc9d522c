"""The stack's events: read, shown under the repositories' names, and followed while it changes.

`StackEvents.wait` polls DescribeStacks (every `Polling.interval`, for at most
`Polling.timeout`) and shows each new event as it comes, with a line after each minute of
silence; an operation that ends in another status than the one hoped for shows the failing
events' reasons and raises StackError. `recent_failures` says why a stack got stuck.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from mirror.errors import StackError

if TYPE_CHECKING:
    from mypy_boto3_cloudformation.client import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import StackEventTypeDef

Progress = Callable[[str], None]

HEARTBEAT_SECONDS = 60.0


def silent(line: str) -> None:
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
class StackEvents:
    """The events of stack `stack_name`; `names` maps logical IDs to repository names."""

    cloudformation: CloudFormationClient
    stack_name: str
    names: Mapping[str, str]
    progress: Progress = silent

    def line(self, event: StackEventTypeDef) -> str:
        """`STATUS  repository: reason`, as shown."""
        key = event.get("LogicalResourceId", "")
        who = self.names.get(key, key)
        reason = event.get("ResourceStatusReason")
        line = f"{event.get('ResourceStatus', ''):<28} {who}"
        return f"{line}: {reason}" if reason else line

    def seen(self, stack_id: str) -> set[str]:
        """The IDs of the newest page of events: where an operation's own events will start."""
        events = self.cloudformation.describe_stack_events(StackName=stack_id)["StackEvents"]
        return {event["EventId"] for event in events}

    def recent_failures(self, stack_id: str) -> tuple[str, ...]:
        """The latest failed events (why a stack is stuck), oldest first, as shown."""
        try:
            events = self.cloudformation.describe_stack_events(StackName=stack_id)["StackEvents"]
        except ClientError:
            return ()
        failed = [e for e in events if str(e.get("ResourceStatus", "")).endswith("_FAILED")]
        return tuple(f"  {self.line(event)}" for event in failed[:5][::-1])

    def wait(
        self, stack_id: str, *, operation: str, success: str, seen: set[str], polling: Polling
    ) -> None:
        """Poll until the stack leaves *_IN_PROGRESS, showing events; raise unless `success`."""
        start = polling.clock()
        last_said = start
        failures: list[str] = []
        while True:
            stack = self.cloudformation.describe_stacks(StackName=stack_id)["Stacks"][0]
            status = stack["StackStatus"]
            for event in self._new(stack_id, seen):
                line = self.line(event)
                self.progress(f"  {line}")
                last_said = polling.clock()
                if str(event.get("ResourceStatus", "")).endswith("_FAILED"):
                    failures.append(line)
            if not status.endswith("_IN_PROGRESS"):
                break
            now = polling.clock()
            if now - start >= polling.timeout:
                raise StackError(
                    f"stack {self.stack_name}: {operation} still {status} after"
                    f" {polling.timeout:.0f} s; CloudFormation carries on: follow it with"
                    f" aws cloudformation describe-stack-events --stack-name {self.stack_name}"
                )
            if now - last_said >= HEARTBEAT_SECONDS:
                self.progress(f"  still {status} ({now - start:.0f} s)")
                last_said = now
            polling.sleep(polling.interval)
        if status == success:
            return
        reason = failures[0] if failures else stack.get("StackStatusReason", "no reason given")
        if failures:
            self.progress(f"stack {self.stack_name}: {operation} failed:")
            for line in failures:
                self.progress(f"  {line}")
        more = f" ({len(failures) - 1} more reasons above)" if len(failures) > 1 else ""
        raise StackError(
            f"stack {self.stack_name}: {operation} failed and the stack is {status}: {reason}{more}"
        )

    def _new(self, stack_id: str, seen: set[str]) -> list[StackEventTypeDef]:
        """Events not seen yet, oldest first (CloudFormation lists the newest first)."""
        new: list[StackEventTypeDef] = []
        paginator = self.cloudformation.get_paginator("describe_stack_events")
        for page in paginator.paginate(StackName=stack_id):
            fresh = [e for e in page["StackEvents"] if e["EventId"] not in seen]
            new += fresh
            if len(fresh) < len(page["StackEvents"]):
                break
        seen.update(event["EventId"] for event in new)
        return new[::-1]
