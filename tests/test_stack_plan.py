"""The stack's plan without AWS: decisions from scripted answers, the plan as shown, refusals."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from mirror.stack.plan import (
    ChangeSet,
    Repository,
    RepositoryChange,
    StackPlan,
    additions,
    blocked_refusal,
    busy_refusal,
    change_line,
    is_no_changes,
    outside_refusal,
    parameters_match,
    plan_lines,
    replacement_refusal,
    repository_changes,
    template_matches,
)
from mirror.template import logical_id, render, render_yaml
from tests.stack_config import ALPINE, NODE, PYTHON, STACK, make_config


def plan_for(images: list[str], **fields: Any) -> StackPlan:
    return replace(StackPlan.for_config(make_config(images), "us-east-1"), **fields)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("The submitted information didn't contain changes. Submit different information", True),
        ("No updates are to be performed.", True),
        ("Template format error: unsupported structure.", False),
        (None, False),
    ],
)
def test_no_changes_messages(message: str | None, expected: bool) -> None:
    assert is_no_changes(message) is expected


def test_a_new_stack_adds_every_repository_by_name() -> None:
    plan = plan_for(["python", "node"])
    assert plan.wanted == (NODE, PYTHON)
    assert additions(plan.names, {}) == (
        RepositoryChange("add", NODE, logical_id(NODE)),
        RepositoryChange("add", PYTHON, logical_id(PYTHON)),
    )


def test_repositories_outside_the_stack_are_those_to_add_that_ecr_has() -> None:
    plan = plan_for(["python", "node", "alpine"], existing={PYTHON: "u1", NODE: "u2"})
    assert plan.outside(owned={}) == [NODE, PYTHON]
    assert plan.outside(owned={logical_id(PYTHON): PYTHON}) == [NODE]


def test_change_set_changes_are_named_and_ordered() -> None:
    names = {logical_id(PYTHON): PYTHON}

    def change(action: str, key: str, kind: str = "AWS::ECR::Repository", **extra: Any) -> Any:
        resource = {"Action": action, "LogicalResourceId": key, "ResourceType": kind, **extra}
        return {"Type": "Resource", "ResourceChange": resource}

    raw = [
        change("Remove", "RepoGone", PhysicalResourceId=ALPINE),
        change("Import", "RepoImported"),
        change("Add", "SomeOutput", kind="AWS::SSM::Parameter"),
        change(
            "Modify",
            logical_id(PYTHON),
            Replacement="True",
            Details=[{"Target": {"Attribute": "Properties", "Name": "EncryptionConfiguration"}}],
        ),
    ]
    assert repository_changes(raw, names) == (
        RepositoryChange("add", "SomeOutput", "SomeOutput", resource_type="AWS::SSM::Parameter"),
        RepositoryChange("modify", PYTHON, logical_id(PYTHON), True, ("EncryptionConfiguration",)),
        RepositoryChange("remove", ALPINE, "RepoGone"),
    )


def test_only_a_removed_repository_is_said_to_stay_in_ecr() -> None:
    assert change_line(RepositoryChange("remove", ALPINE, "RepoGone")) == (
        f"  - {ALPINE} (leaves the stack; the repository and its images stay in ECR)"
    )
    topic = RepositoryChange("remove", "AlarmTopic", "AlarmTopic", resource_type="AWS::SNS::Topic")
    assert change_line(topic) == "  - AlarmTopic"


def test_the_deployed_template_matches_in_either_form() -> None:
    config = make_config(["python"])
    body = render_yaml(config)
    assert template_matches(body, body, config)
    assert template_matches(json.dumps(render(config)), body, config)
    assert template_matches(render(config), body, config)  # boto3 decodes JSON bodies
    assert not template_matches(render(make_config(["node"])), body, config)
    assert not template_matches("key: [unclosed", body, config)
    assert not template_matches("- a list", body, config)


def test_parameters_match_only_when_equal() -> None:
    deployed: Any = {"Parameters": [{"ParameterKey": "IAMUserName", "ParameterValue": ""}]}
    assert parameters_match(deployed, {"IAMUserName": ""})
    assert not parameters_match(deployed, {"IAMUserName": "ci-pusher"})
    assert not parameters_match({}, {"IAMUserName": ""})


def test_the_plan_as_shown() -> None:
    create = plan_for(
        ["python"], action="create", changes=additions(plan_for(["python"]).names, {})
    )
    assert plan_lines(create, dry_run=True) == [
        f"stack {STACK} does not exist in us-east-1: it would be created with 1 repositories",
        f"  + {PYTHON}",
    ]
    assert "it will be created" in plan_lines(create, dry_run=False)[0]

    changes = (
        RepositoryChange("modify", PYTHON, "P", True, ("EncryptionConfiguration",)),
        RepositoryChange("remove", NODE, "N"),
    )
    update = plan_for(
        ["python"], action="update", change_set=ChangeSet("arn:cs", "mirror-x"), changes=changes
    )
    assert plan_lines(update, dry_run=False) == [
        f"change set mirror-x for stack {STACK}:",
        f"  ~ {PYTHON} (EncryptionConfiguration) [replacement]",
        f"  - {NODE} (leaves the stack; the repository and its images stay in ECR)",
    ]
    empty = replace(update, changes=())
    assert plan_lines(empty, dry_run=True)[1:] == ["  (no repository changes)"]

    assert plan_lines(plan_for(["python"], action="none"), dry_run=False) == [
        f"stack {STACK} matches the config: nothing to change"
    ]
    assert plan_lines(
        plan_for(["python"], action="none", found_by="change set"), dry_run=False
    ) == [f"stack {STACK}: CloudFormation finds nothing to change"]

    refused = plan_for(["python"], refusal=blocked_refusal(STACK, "ROLLBACK_COMPLETE", ["  e"]))
    assert plan_lines(refused, dry_run=True) == ["  e"]


def test_a_replacement_names_the_properties_and_repositories() -> None:
    replaced = RepositoryChange("modify", PYTHON, "P", True)
    refusal = replacement_refusal(plan_for(["python"], changes=(replaced,)))
    assert refusal is not None
    assert refusal.message.startswith(
        f"stack {STACK}: changing a property would replace 1 repositories ({PYTHON}),"
    )
    assert (
        replacement_refusal(plan_for(["python"], changes=(replace(replaced, replacement=False),)))
        is None
    )


def test_outside_refusal_shortens_a_long_list() -> None:
    outside = [Repository(f"dockerhub/library/r{i}", "uri", i) for i in range(5)]
    refusal = outside_refusal(STACK, "images.yaml", outside)
    assert refusal is not None
    assert refusal.message.startswith(
        f"5 repositories already exist outside stack {STACK} (dockerhub/library/r0,"
        " dockerhub/library/r1, dockerhub/library/r2 and 2 more):"
    )
    assert "  dockerhub/library/r4 (4 images)" in refusal.details
    assert "  - or mirror under other names: change target.prefix in images.yaml" in refusal.details
    assert outside_refusal(STACK, "images.yaml", []) is None


@pytest.mark.parametrize(
    ("status", "refused"),
    [
        ("UPDATE_COMPLETE", None),
        ("IMPORT_ROLLBACK_COMPLETE", None),
        ("ROLLBACK_COMPLETE", "Delete it with `mirror delete-repo`"),
        ("SOMETHING_NEW", "mirror does not know how to update a stack in that state"),
    ],
)
def test_states_an_update_can_start_from(status: str, refused: str | None) -> None:
    refusal = blocked_refusal(STACK, status, ["  why"])
    if refused is None:
        assert refusal is None
    else:
        assert refusal is not None and refused in refusal.message
        assert refusal.details == ("  why",)


def test_delete_waits_for_no_running_operation() -> None:
    assert busy_refusal(STACK, "UPDATE_COMPLETE") is None
    assert busy_refusal(STACK, "REVIEW_IN_PROGRESS") is None
    busy = busy_refusal(STACK, "UPDATE_IN_PROGRESS")
    assert busy is not None
    assert busy.message.endswith("then run `mirror delete-repo` again")
