"""Who may pull, immutable tags and replication: the config keys, their rendering, and a
deploy and a sync through the test world (moto's CloudFormation and the ECR front).

moto deploys `ImageTagMutability` and its exclusion filters (asserted on its repositories);
it ignores repository policies, and has no `AWS::ECR::ReplicationConfiguration` in its
CloudFormation (the resource is accepted and does nothing): both are asserted on the
rendered template, which cfn-lint checks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import yaml

from mirror.config import Config, parse_config
from mirror.config_access import MAX_POLICY_CHARS, MAX_PRINCIPALS, StackAccessFile
from mirror.errors import ConfigError
from mirror.template import (
    PUSH_PULL_ACTIONS,
    logical_id,
    render,
    render_yaml,
)
from mirror.template_access import PULL_ACTIONS, REPLICATION_ID, REPLICATION_TYPE
from tests.runner import Mirror, actions
from tests.test_template import repository_policy
from tests.world.corpus import CorpusEntry
from tests.world.world import World

PYTHON = "dockerhub/library/python"
ACCOUNT, ROLE, ORG = (
    "111122223333",
    "arn:aws:iam::444455556666:role/build/codebuild-app",
    "o-a1b2c3d4e5",
)


def config_with(stack: dict[str, Any], **target: Any) -> Config:
    document = {
        "version": 1,
        "target": {"prefix": "dockerhub", **target},
        "stack": stack,
        "images": [{"image": "python", "tags": ["3.12.7"]}],
    }
    return parse_config(yaml.safe_dump(document), "images.yaml")


def repository(config: Config) -> dict[str, Any]:
    return dict(render(config)["Resources"][logical_id(PYTHON)]["Properties"])


# --- the keys, validated at load time -------------------------------------------------------


@pytest.mark.parametrize(
    ("stack", "where", "problem"),
    [
        (
            {"pull_access": {"accounts": [111122223333]}},
            "stack.pull_access.accounts[0]",
            "write the account ID in quotes ('111122223333'): YAML reads",
        ),
        (
            {"pull_access": {"accounts": ["1234"]}},
            "stack.pull_access.accounts[0]",
            "'1234' is not an AWS account ID (12 digits, quoted)",
        ),
        (
            {"pull_access": {"organization_id": "org-123"}},
            "stack.pull_access.organization_id",
            "'org-123' is not an AWS Organization ID",
        ),
        (
            {"pull_access": {"roles": ["arn:aws:iam::444455556666:user/alice"]}},
            "stack.pull_access.roles[0]",
            "is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
        ),
        ({"pull_access": {}}, "stack.pull_access", "needs at least one of accounts"),
        (
            {"pull_access": {"accounts": [ACCOUNT, ACCOUNT]}},
            "stack.pull_access.accounts",
            "the list names the same value twice",
        ),
        ({"pull_access": {"users": ["x"]}}, "stack.pull_access.users", "unknown key"),
        ({"tag_mutability": "frozen"}, "stack.tag_mutability", "Input should be 'mutable'"),
        (
            {"tag_mutability": "immutable_with_exclusions"},
            "stack",
            "immutable_with_exclusions needs mutable_tags",
        ),
        (
            {"tag_mutability": "immutable", "mutable_tags": ["latest"]},
            "stack",
            "mutable_tags applies only with tag_mutability immutable_with_exclusions",
        ),
        (
            {"tag_mutability": "immutable_with_exclusions", "mutable_tags": ["3.12?"]},
            "stack.mutable_tags[0]",
            "'3.12?' is not a tag filter",
        ),
        (
            {"tag_mutability": "immutable_with_exclusions", "mutable_tags": list("abcdef")},
            "stack.mutable_tags",
            "at most 5 items",
        ),
        ({"replication": [{"region": "Europe"}]}, "stack.replication[0].region", "region name"),
        (
            {"replication": [{"region": "eu-west-1"}, {"region": "eu-west-1"}]},
            "stack.replication",
            "the list names the same value twice",
        ),
        (
            {"replication": [{"region": "us-east-1"}]},
            "stack.replication",
            "us-east-1 is target.region: a registry does not replicate to itself",
        ),
    ],
)
def test_bad_values_are_one_line_naming_the_field(
    stack: dict[str, Any], where: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config_with(stack, region="us-east-1")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"images.yaml: {where} (line ")
    assert problem in message


def test_principals_that_would_overflow_the_repository_policy_are_refused() -> None:
    path = "/team-with-a-long-path" * 20 + "/"
    roles = [f"arn:aws:iam::444455556666:role{path}builder-{n}" for n in range(MAX_PRINCIPALS)]
    assert all(len(role) < 512 for role in roles)
    with pytest.raises(ConfigError, match="ECR caps at 10240: grant an organization_id instead"):
        config_with({"pull_access": {"roles": roles}})
    many = {"accounts": [f"{n:012d}" for n in range(MAX_PRINCIPALS)], "roles": [ROLE] * 1}
    config = config_with({"iam_user": "u" * 64, "pull_access": many})
    policy = repository_policy(config, PYTHON, "u" * 64)
    assert len(json.dumps(policy)) < MAX_POLICY_CHARS


def test_replication_needs_a_prefix_to_filter_on() -> None:
    with pytest.raises(ConfigError, match="prefix is empty: it would replicate every repository"):
        config_with({"replication": [{"region": "eu-west-1"}]}, prefix="")


def test_the_cli_refuses_a_bad_key_before_any_call(fresh_world: World, mirror: Mirror) -> None:
    path = mirror.config_path
    path.write_text(
        "version: 1\nstack:\n  pull_access:\n    accounts: [111122223333]\n"
        "images: [{image: python, tags: [latest]}]\n"
    )
    run = mirror.run("ensure-repo", "--config", str(path), "--dry-run")
    assert run.code == 2
    assert fresh_world.moto.client("cloudformation").list_stacks()["StackSummaries"] == []
    assert run.stderr.strip().splitlines() == [
        f"mirror: error: {path}: stack.pull_access.accounts[0] (line 4): write the account ID"
        " in quotes ('111122223333'): YAML reads an unquoted one as a number"
    ]


@pytest.mark.parametrize(
    ("mutability", "filters", "tag", "immutable"),
    [
        ("mutable", None, "3.12.7", False),
        ("immutable", None, "latest", True),
        ("immutable_with_exclusions", ["latest", "*-slim"], "3.12.7", True),
        ("immutable_with_exclusions", ["latest", "*-slim"], "latest", False),
        ("immutable_with_exclusions", ["latest", "*-slim"], "3.12-slim", False),
        ("immutable_with_exclusions", ["latest", "*-slim"], "3.12-slim-x", True),
        ("immutable_with_exclusions", ["3.*"], "3.12", False),
        ("immutable_with_exclusions", ["3.*"], "3x12", True),  # `.` is no wildcard
    ],
)
def test_which_tags_are_immutable(
    mutability: str, filters: list[str] | None, tag: str, immutable: bool
) -> None:
    stack = StackAccessFile(tag_mutability=mutability, mutable_tags=filters)
    assert stack.tag_is_immutable(tag) is immutable


# --- the rendering -------------------------------------------------------------------------


def test_without_the_keys_the_repository_is_as_before() -> None:
    properties = repository(config_with({}))
    assert properties["ImageTagMutability"] == "MUTABLE"
    assert "ImageTagMutabilityExclusionFilters" not in properties
    config = config_with({})
    assert [s["Sid"] for s in repository_policy(config, PYTHON)["Statement"]] == ["AllowPushPull"]
    assert repository_policy(config, PYTHON, "") is None  # no IAM user: no policy
    assert REPLICATION_ID not in render(config_with({}))["Resources"]


def test_pull_access_adds_pull_only_statements_and_keeps_push_pull() -> None:
    config = config_with(
        {
            "iam_user": "ci",
            "pull_access": {"accounts": [ACCOUNT], "roles": [ROLE], "organization_id": ORG},
        }
    )
    push_pull, accounts, organization = repository_policy(config, PYTHON, "ci")["Statement"]
    assert push_pull["Action"] == list(PUSH_PULL_ACTIONS)
    assert push_pull["Principal"] == {"AWS": "arn:aws:iam::123456789012:user/ci"}
    # without the IAM user, the pull-only statements alone
    assert repository_policy(config, PYTHON, "")["Statement"] == [accounts, organization]
    assert accounts["Principal"]["AWS"] == [ACCOUNT, ROLE]  # IAM reads an account ID as its root
    assert accounts["Action"] == list(PULL_ACTIONS) == list(PUSH_PULL_ACTIONS[:3])
    assert "ecr:PutImage" not in accounts["Action"]
    assert organization == {
        "Sid": "AllowPullInOrganization",
        "Effect": "Allow",
        "Principal": {"AWS": "*"},
        "Action": list(PULL_ACTIONS),
        "Condition": {"StringEquals": {"aws:PrincipalOrgID": ORG}},
    }


def test_an_organization_alone_renders_one_statement_besides_push_pull() -> None:
    config = config_with({"pull_access": {"organization_id": ORG}})
    assert [s.get("Sid") for s in repository_policy(config, PYTHON)["Statement"]] == [
        "AllowPushPull",
        "AllowPullInOrganization",
    ]


def test_tag_mutability_with_exclusions_renders_ecr_wildcard_filters() -> None:
    properties = repository(
        config_with(
            {"tag_mutability": "immutable_with_exclusions", "mutable_tags": ["latest", "*-slim"]}
        )
    )
    assert properties["ImageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert properties["ImageTagMutabilityExclusionFilters"] == [
        {
            "ImageTagMutabilityExclusionFilterType": "WILDCARD",
            "ImageTagMutabilityExclusionFilterValue": value,
        }
        for value in ("latest", "*-slim")
    ]
    assert repository(config_with({"tag_mutability": "immutable"}))["ImageTagMutability"] == (
        "IMMUTABLE"
    )


def test_replication_is_one_rule_filtered_to_the_prefix() -> None:
    config = config_with(
        {"replication": [{"region": "eu-west-1"}, {"region": "us-west-2", "account": ACCOUNT}]}
    )
    resource = render(config)["Resources"][REPLICATION_ID]
    assert resource["Type"] == REPLICATION_TYPE
    assert resource["Properties"]["ReplicationConfiguration"]["Rules"] == [
        {
            "Destinations": [
                {"Region": "eu-west-1", "RegistryId": {"Ref": "AWS::AccountId"}},
                {"Region": "us-west-2", "RegistryId": ACCOUNT},
            ],
            "RepositoryFilters": [{"Filter": "dockerhub/", "FilterType": "PREFIX_MATCH"}],
        }
    ]


EVERY_KEY = {
    "iam_user": "ci-pusher",
    "pull_access": {"accounts": [ACCOUNT, "012345678901"], "organization_id": ORG, "roles": [ROLE]},
    "tag_mutability": "immutable_with_exclusions",
    "mutable_tags": ["latest", "*-slim", "3.12"],
    "replication": [{"region": "eu-west-1"}, {"region": "us-east-1", "account": ACCOUNT}],
}


@pytest.mark.parametrize(
    "stack",
    [
        EVERY_KEY,
        {"pull_access": {"organization_id": ORG}},
        {"pull_access": {"roles": [ROLE]}, "tag_mutability": "immutable"},
        {"replication": [{"region": "eu-west-1", "account": ACCOUNT}]},
    ],
    ids=["every-key", "organization-only", "role-immutable", "replication-only"],
)
def test_renderings_are_cfn_lint_clean(stack: dict[str, Any]) -> None:
    from cfnlint.api import lint

    assert [str(match) for match in lint(render_yaml(config_with(stack)))] == []


def test_the_least_privilege_check_passes_with_every_key() -> None:
    from tests.test_template import overbroad

    assert overbroad(render(config_with(EVERY_KEY))) == []


# --- through the test world: ensure-repo on moto, then sync through the ECR front -----------


def describe(world: World, name: str) -> dict[str, Any]:
    (found,) = world._ecr().describe_repositories(repositoryNames=[name])["repositories"]
    return dict(found)


def test_ensure_repo_deploys_every_key_and_updates_mutability(
    fresh_world: World, mirror: Mirror
) -> None:
    images = [{"image": "ruby", "tags": ["3.3"]}]
    stack = {**EVERY_KEY, "iam_user": None}
    fresh_world.write_config(mirror.config_path, images, stack=stack)
    created = mirror.run("ensure-repo", "--config", str(mirror.config_path))
    assert created.code == 0, created.stderr
    # the registry's replication, which replaces whatever the registry had, is said at creation
    assert f"+ {REPLICATION_ID}" in created.stderr, created.stderr
    ruby = describe(fresh_world, "dockerhub/library/ruby")
    assert ruby["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert [f["filter"] for f in ruby["imageTagMutabilityExclusionFilters"]] == [
        "latest",
        "*-slim",
        "3.12",
    ]
    cloudformation = fresh_world.moto.client("cloudformation")
    # moto accepts the replication resource and does nothing with it (it lists it unnamed)
    assert (
        f"Type: {REPLICATION_TYPE}"
        in cloudformation.get_template(StackName="ecr-mirror")["TemplateBody"]
    )
    summaries = cloudformation.list_stack_resources(StackName="ecr-mirror")
    assert len(summaries["StackResourceSummaries"]) == 2

    same = mirror.run("ensure-repo", "--config", str(mirror.config_path))
    assert same.code == 0, same.stderr
    assert "matches the config: nothing to change" in same.stderr

    fresh_world.write_config(
        mirror.config_path,
        images,
        stack={**stack, "tag_mutability": "immutable", "mutable_tags": None},
    )
    updated = mirror.run("ensure-repo", "--config", str(mirror.config_path))
    assert updated.code == 0, updated.stderr
    assert "~ dockerhub/library/ruby" in updated.stderr
    assert describe(fresh_world, "dockerhub/library/ruby")["imageTagMutability"] == "IMMUTABLE"

    # replication taken out of the config: the registry's replication is deleted, and said so
    fresh_world.write_config(
        mirror.config_path,
        images,
        stack={**stack, "tag_mutability": "immutable", "mutable_tags": None, "replication": None},
    )
    removed = mirror.run("ensure-repo", "--config", str(mirror.config_path))
    assert removed.code == 0, removed.stderr
    assert f"  - {REPLICATION_ID}" in removed.stderr.splitlines()
    assert "stay in ECR" not in removed.stderr
    assert removed.stdout.splitlines()[0].endswith("0 added, 0 changed, 1 removed from the stack")
    assert [line.split() for line in removed.stdout.splitlines()[1:]][-1] == [
        REPLICATION_ID,
        "deleted",
    ]


@contextmanager
def hub_tags_moved(world: World, repository: str, tags: list[str], to: str) -> Iterator[None]:
    """Docker Hub's `repository:tag` for each of `tags` re-pointed at the image of tag `to`
    (new releases), and put back afterwards."""

    def point(tag: str, entry: CorpusEntry) -> None:
        response = httpx.put(
            f"{world.hub_upstream_url}/v2/{repository}/manifests/{tag}",
            content=entry.raw,
            headers={"Content-Type": entry.media_type},
        )
        assert response.status_code == 201, response.text

    old = {tag: world.corpus.get(f"{repository}:{tag}") for tag in tags}
    for tag in tags:
        point(tag, world.corpus.get(f"{repository}:{to}"))
    try:
        yield
    finally:
        for tag, entry in old.items():
            point(tag, entry)


def test_a_moved_immutable_tag_fails_in_the_plan_and_the_mutable_one_moves(
    fresh_world: World, mirror: Mirror
) -> None:
    fresh_world.ecr_front.immutable_tags = fresh_world.tag_is_immutable  # ECR's rules, from moto
    images = [{"image": "ruby", "tags": ["3.3", "latest"]}]
    stack = {"tag_mutability": "immutable_with_exclusions", "mutable_tags": ["latest"]}
    fresh_world.write_config(mirror.config_path, images, stack=stack)
    sync = ("sync", "-c", str(mirror.config_path), "-o", "json")
    first = mirror.run(*sync)  # ensure-repo, then the copy
    assert first.code == 0, first.stderr
    assert actions(first.report) == {"library/ruby:3.3": "copied", "library/ruby:latest": "copied"}
    kept = fresh_world.corpus.get("library/ruby:3.3").digest
    moved = fresh_world.corpus.get("library/ruby:3.2").digest

    with hub_tags_moved(fresh_world, "library/ruby", ["3.3", "latest"], to="3.2"):
        second = mirror.run(*sync)
    assert second.code == 1, second.stderr
    by_target = {i["target"].partition("/")[2]: i for i in second.report["images"]}
    failed, copied = (
        by_target["dockerhub/library/ruby:3.3"],
        by_target["dockerhub/library/ruby:latest"],
    )
    assert (failed["action"], failed["pulls"]) == ("failed", 0)
    assert failed["error"] == (
        f"immutable tag (stack.tag_mutability): ECR keeps {kept}, the source moved to {moved};"
        " not copied, no pull spent; stack.mutable_tags lets tags move"
    )
    assert len(failed["error"]) < 300  # the text report cuts a registry's words there
    assert (copied["action"], copied["digest"]) == ("copied", moved)
    assert second.report["totals"]["retries"] == 0
    counters = fresh_world.ecr_front.counters
    assert counters.get("manifest_put", "dockerhub/library/ruby", "3.3") == 1  # the first run's

    # ECR itself refuses the PUT where the config does not know: one clear failure, no retry
    fresh_world.write_config(mirror.config_path, images)  # the config now says "mutable"
    with hub_tags_moved(fresh_world, "library/ruby", ["3.3"], to="3.2"):
        third = mirror.sync()
    assert third.code == 1, third.stderr
    assert actions(third.report) == {"library/ruby:3.3": "failed", "library/ruby:latest": "copied"}
    (refused,) = [i for i in third.report["images"] if i["action"] == "failed"]
    assert refused["error"].endswith(
        f"/dockerhub/library/ruby:3.3 is immutable and points at {kept}, not {moved}"
    )
    assert third.report["totals"]["retries"] == 0
    assert counters.get("tag_invalid", "dockerhub/library/ruby", "3.3") == 1
