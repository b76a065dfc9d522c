"""The repositories' stack in states moto cannot reach, scripted with botocore's Stubber.

ROLLBACK_COMPLETE, *_IN_PROGRESS, a failing create with its events, a replacement in a change
set: the Stubber checks every request and answer against the real API model, without a network,
and fails on a call that was not scripted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from mirror.errors import StackError
from mirror.stack import AwsClients, Polling, ensure_stack
from mirror.template import logical_id, render_yaml
from tests.stack_config import PYTHON, STACK, make_config

STACK_ID = f"arn:aws:cloudformation:us-east-1:123456789012:stack/{STACK}/0f1e2d3c"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Scripted:
    """Real boto3 clients whose answers are scripted (and whose requests are checked)."""

    def __init__(self) -> None:
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        cf = session.client("cloudformation", endpoint_url="https://cloudformation.invalid")
        ecr = session.client("ecr", endpoint_url="https://ecr.invalid")
        self.clients = AwsClients(cf, ecr)
        self.cf = Stubber(cf)
        self.ecr = Stubber(ecr)
        self.cf.activate()
        self.ecr.activate()
        self.sleeps: list[float] = []
        self.now = 0.0

    def polling(self, interval: float = 5.0, timeout: float = 600.0) -> Polling:
        def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)
            self.now += seconds

        return Polling(interval=interval, timeout=timeout, sleep=sleep, clock=lambda: self.now)

    def stack(self, status: str, **extra: Any) -> None:
        answer = {
            "StackId": STACK_ID,
            "StackName": STACK,
            "CreationTime": NOW,
            "StackStatus": status,
            **extra,
        }
        self.cf.add_response("describe_stacks", {"Stacks": [answer]})

    def members(self, status: str | None) -> None:
        """The stacks of the set (ListStacks): none, or the one stack in `status`, holding the
        python repository (GetTemplate)."""
        summaries = []
        if status is not None:
            summaries.append(
                {
                    "StackId": STACK_ID,
                    "StackName": STACK,
                    "CreationTime": NOW,
                    "StackStatus": status,
                }
            )
        self.cf.add_response("list_stacks", {"StackSummaries": summaries})
        if status is not None:
            body = render_yaml(make_config(["python"]))
            self.cf.add_response(
                "get_template",
                {"TemplateBody": body},
                {"StackName": STACK_ID, "TemplateStage": "Original"},
            )

    def events(self, *events: tuple[str, str, str]) -> None:
        """(event id, logical id, status[: reason]) newest first."""
        answer = []
        for event_id, logical, status in events:
            status, _, reason = status.partition(": ")
            event = {
                "StackId": STACK_ID,
                "EventId": event_id,
                "StackName": STACK,
                "Timestamp": NOW,
                "LogicalResourceId": logical,
                "ResourceStatus": status,
            }
            if reason:
                event["ResourceStatusReason"] = reason
            answer.append(event)
        self.cf.add_response("describe_stack_events", {"StackEvents": answer})

    def done(self) -> None:
        self.cf.assert_no_pending_responses()
        self.ecr.assert_no_pending_responses()


@pytest.fixture
def scripted() -> Scripted:
    return Scripted()


REASON = (
    "Resource handler returned message: \"Invalid parameter at 'PolicyText' failed to"
    " satisfy constraint: 'Invalid repository policy provided'\""
)


def test_a_failed_creation_prints_the_events_reasons(scripted: Scripted) -> None:
    config = make_config(["python"], iam_user="nobody")
    scripted.members(None)
    scripted.cf.add_client_error(
        "describe_stacks", "ValidationError", f"Stack with id {STACK} does not exist"
    )
    scripted.ecr.add_response("describe_repositories", {"repositories": []})
    scripted.cf.add_response("create_stack", {"StackId": STACK_ID})
    scripted.stack("CREATE_IN_PROGRESS")
    scripted.events(("e1", STACK, "CREATE_IN_PROGRESS: User Initiated"))
    scripted.stack("ROLLBACK_COMPLETE")
    scripted.events(
        ("e4", STACK, "ROLLBACK_COMPLETE"),
        ("e3", logical_id(PYTHON), "DELETE_COMPLETE"),
        ("e2", logical_id(PYTHON), f"CREATE_FAILED: {REASON}"),
        ("e1", STACK, "CREATE_IN_PROGRESS: User Initiated"),
    )
    lines: list[str] = []
    with pytest.raises(StackError) as raised:
        ensure_stack(
            config, progress=lines.append, polling=scripted.polling(), aws=scripted.clients
        )
    assert str(raised.value) == (
        f"stack {STACK}: creation failed and the stack is ROLLBACK_COMPLETE:"
        f" {'CREATE_FAILED':<28} {PYTHON}: {REASON}"
    )
    assert f"stack {STACK}: creation failed:" in lines
    assert lines[-1] == f"  {'CREATE_FAILED':<28} {PYTHON}: {REASON}"
    assert scripted.sleeps == [5.0]  # one poll interval, no busy loop
    scripted.done()


def test_waiting_is_bounded(scripted: Scripted) -> None:
    scripted.members(None)
    scripted.cf.add_client_error(
        "describe_stacks", "ValidationError", f"Stack with id {STACK} does not exist"
    )
    scripted.ecr.add_response("describe_repositories", {"repositories": []})
    scripted.cf.add_response("create_stack", {"StackId": STACK_ID})
    for _ in range(4):  # at 0, 10, 20 and 30 seconds
        scripted.stack("CREATE_IN_PROGRESS")
        scripted.events(("e1", STACK, "CREATE_IN_PROGRESS"))
    with pytest.raises(StackError, match="creation still CREATE_IN_PROGRESS after 25 s"):
        ensure_stack(
            make_config(["python"]),
            polling=scripted.polling(interval=10, timeout=25),
            aws=scripted.clients,
        )
    assert scripted.sleeps == [10, 10, 10]
    scripted.done()


@pytest.mark.parametrize(
    ("status", "advice"),
    [
        ("ROLLBACK_COMPLETE", "Delete it with `mirror delete-repo`"),
        ("UPDATE_IN_PROGRESS", "another operation on it is running"),
        ("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "another operation on it is running"),
        ("UPDATE_ROLLBACK_FAILED", "aws cloudformation continue-update-rollback"),
        ("DELETE_FAILED", "run `mirror delete-repo` again"),
        ("REVIEW_IN_PROGRESS", "Execute that change set, or delete the stack"),
    ],
)
def test_a_stack_no_update_can_start_from_is_explained(
    scripted: Scripted, status: str, advice: str
) -> None:
    scripted.members(status)
    scripted.stack(status)
    scripted.events(
        ("e2", logical_id(PYTHON), f"CREATE_FAILED: {REASON}"),
        ("e1", STACK, "CREATE_IN_PROGRESS: User Initiated"),
    )
    lines: list[str] = []
    with pytest.raises(StackError) as raised:
        ensure_stack(
            make_config(["python"]),
            progress=lines.append,
            polling=scripted.polling(),
            aws=scripted.clients,
        )
    assert str(raised.value).startswith(f"stack {STACK} is {status}: ")
    assert advice in str(raised.value)
    assert lines == [f"  {'CREATE_FAILED':<28} {PYTHON}: {REASON}"]  # why it got there
    scripted.done()


def test_a_replacement_is_refused_before_anything_is_executed(scripted: Scripted) -> None:
    config = make_config(["python"], encryption="KMS")
    scripted.members("UPDATE_COMPLETE")
    scripted.stack(
        "UPDATE_COMPLETE", Parameters=[{"ParameterKey": "IAMUserName", "ParameterValue": "x"}]
    )
    scripted.cf.add_response(
        "list_stack_resources",
        {
            "StackResourceSummaries": [
                {
                    "LogicalResourceId": logical_id(PYTHON),
                    "PhysicalResourceId": PYTHON,
                    "ResourceType": "AWS::ECR::Repository",
                    "LastUpdatedTimestamp": NOW,
                    "ResourceStatus": "CREATE_COMPLETE",
                }
            ]
        },
    )
    scripted.ecr.add_response("describe_repositories", {"repositories": []})
    scripted.cf.add_response("create_change_set", {"Id": "arn:cs", "StackId": STACK_ID})
    change = {
        "Action": "Modify",
        "LogicalResourceId": logical_id(PYTHON),
        "PhysicalResourceId": PYTHON,
        "ResourceType": "AWS::ECR::Repository",
        "Replacement": "True",
        "Details": [{"Target": {"Attribute": "Properties", "Name": "EncryptionConfiguration"}}],
    }
    scripted.cf.add_response(
        "describe_change_set",
        {
            "ChangeSetName": "mirror-x",
            "Status": "CREATE_COMPLETE",
            "Changes": [{"Type": "Resource", "ResourceChange": change}],
        },
    )
    scripted.cf.add_response("delete_change_set", {}, {"ChangeSetName": "arn:cs"})
    lines: list[str] = []
    with pytest.raises(StackError, match="changing EncryptionConfiguration would replace"):
        ensure_stack(
            config, progress=lines.append, polling=scripted.polling(), aws=scripted.clients
        )
    assert f"  ~ {PYTHON} (EncryptionConfiguration) [replacement]" in lines
    scripted.done()  # no ExecuteChangeSet was scripted, and none was sent


def test_aws_errors_become_one_line(scripted: Scripted) -> None:
    scripted.cf.add_client_error(
        "list_stacks", "AccessDenied", "User: arn:aws:iam::1:user/x is not authorized"
    )
    with pytest.raises(StackError) as raised:
        ensure_stack(make_config(["python"]), aws=scripted.clients)
    assert str(raised.value) == (
        f"stack {STACK}: ListStacks failed: AccessDenied:"
        " User: arn:aws:iam::1:user/x is not authorized"
    )
