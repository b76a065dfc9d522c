"""The repository stack at scale, against moto_server: templates through S3, split stacks.

400 images deploy through S3 (in the bucket mirror creates, or one the config names), an
unchanged config is a no-op, one added image is one change set. Past
`stack.scale.repositories_per_stack` the repositories spread over `ecr-mirror`,
`ecr-mirror-2`...; adding and removing images never moves a repository between them. moto's
S3 serves CloudFormation's TemplateURL, as S3 does on AWS. The moto_server (which honours
`DeletionPolicy: Retain` on updates) and its fixtures are those of `test_stack.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mirror.errors import StackError
from mirror.stack import ensure_stack
from mirror.stack.calls import set_members
from mirror.template import own_bucket_name
from tests import test_stack
from tests.stack_config import STACK, make_config
from tests.test_stack import FAST, mirror, repositories, write_config
from tests.world.moto import REGION, Moto

# The fixtures of test_stack.py (a moto_server of this module's own), used by name.
moto_server = test_stack.moto_server
moto_clients = test_stack.moto_clients
aws = test_stack.aws

ACCOUNT = "123456789012"  # moto's default account
MANY = [f"team/image-{i:03d}" for i in range(400)]


def stack_repositories(moto: Moto, stack: str) -> list[str]:
    """The repositories the stack holds, sorted."""
    pages = (
        moto.client("cloudformation")
        .get_paginator("list_stack_resources")
        .paginate(StackName=stack)
    )
    return sorted(
        r["PhysicalResourceId"]
        for page in pages
        for r in page["StackResourceSummaries"]
        if r["ResourceType"] == "AWS::ECR::Repository"
    )


def template_objects(moto: Moto, bucket: str) -> list[str]:
    listed = moto.client("s3").list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def scaled(images: list[str], **scale: Any) -> Any:
    return make_config(images, scale=scale) if scale else make_config(images)


def test_four_hundred_images_deploy_through_s3_and_one_more_is_one_change(aws: Moto) -> None:
    lines: list[str] = []
    created = ensure_stack(scaled(MANY), progress=lines.append, polling=FAST)
    assert created.result == "created"
    assert len(created.repositories) == 400 == len(repositories(aws))
    assert len(stack_repositories(aws, STACK)) == 400

    # The template (over 51,200 bytes) went through the bucket mirror made for itself.
    bucket = own_bucket_name(ACCOUNT, REGION)
    s3 = aws.client("s3")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    (key,) = template_objects(aws, bucket)
    assert key.startswith(f"mirror/{STACK}/") and key.endswith(".yaml")
    assert any(line.startswith(f"creating S3 bucket {bucket}") for line in lines)

    # Unchanged: nothing is uploaded, computed or executed.
    lines.clear()
    same = ensure_stack(scaled(MANY), progress=lines.append, polling=FAST)
    assert same.result == "up-to-date"
    assert lines == [f"stack {STACK} matches the config: nothing to change"]

    # One image more: one change set (from the template in S3), one repository added.
    lines.clear()
    updated = ensure_stack(scaled([*MANY, "team/image-new"]), progress=lines.append, polling=FAST)
    assert updated.result == "updated"
    assert [(c.action, c.repository) for c in updated.changes] == [
        ("add", "dockerhub/team/image-new")
    ]
    assert len(stack_repositories(aws, STACK)) == 401
    assert len(template_objects(aws, bucket)) == 2
    assert not any(line.startswith("creating S3 bucket") for line in lines)


def test_a_stack_deployed_before_the_compact_form_is_updated_in_place(aws: Moto) -> None:
    """The same policies written differently: each repository is modified, none replaced."""
    before = (Path(__file__).parent / "stack_before_compact.yml").read_text()
    aws.client("cloudformation").create_stack(
        StackName=STACK,
        TemplateBody=before,
        Parameters=[{"ParameterKey": "IAMUserName", "ParameterValue": "ci-pusher"}],
    )
    created = {
        r["repositoryName"]: r["createdAt"]
        for r in aws.client("ecr").describe_repositories()["repositories"]
    }
    config = make_config(["python", "node"], iam_user="ci-pusher")
    updated = ensure_stack(config, polling=FAST)
    assert updated.result == "updated"
    assert sorted((c.action, c.replacement) for c in updated.changes) == [("modify", False)] * 2
    after = aws.client("ecr").describe_repositories()["repositories"]
    assert {r["repositoryName"]: r["createdAt"] for r in after} == created
    assert ensure_stack(config, polling=FAST).result == "up-to-date"


def test_a_bucket_the_config_names_takes_the_templates(aws: Moto) -> None:
    aws.client("s3").create_bucket(Bucket="team-templates")
    ensure_stack(scaled(MANY[:100], template_bucket="team-templates"), polling=FAST)
    (key,) = template_objects(aws, "team-templates")
    assert key.startswith(f"mirror/{STACK}/")
    buckets = [b["Name"] for b in aws.client("s3").list_buckets()["Buckets"]]
    assert buckets == ["team-templates"]  # mirror made none of its own


def test_a_template_that_fits_inline_touches_no_bucket(aws: Moto) -> None:
    ensure_stack(scaled(MANY[:20]), polling=FAST)
    assert aws.client("s3").list_buckets()["Buckets"] == []


def names(stack_images: list[str]) -> list[str]:
    return sorted(f"dockerhub/{image}" for image in stack_images)


def test_past_the_limit_repositories_split_over_stacks_and_never_move(aws: Moto) -> None:
    images = ["b1", "b2", "b3", "b4", "b5", "b6", "b7"]
    lines: list[str] = []
    created = ensure_stack(
        scaled(images, repositories_per_stack=3), progress=lines.append, polling=FAST
    )
    sets = [STACK, f"{STACK}-2", f"{STACK}-3"]
    assert [stack.stack_name for stack in created.stacks] == sets
    assert [stack_repositories(aws, s) for s in sets] == [
        names(["library/b1", "library/b2", "library/b3"]),
        names(["library/b4", "library/b5", "library/b6"]),
        names(["library/b7"]),
    ]
    assert lines[0] == (
        "7 repositories over 3 stacks of at most 3 (stack.scale.repositories_per_stack):"
        f" {STACK} 3, {STACK}-2 3, {STACK}-3 1"
    )
    each = "created ({} added, 0 changed, 0 removed from the stack)"
    assert created.summary() == (
        f"3 stacks ({STACK}, {STACK}-2, {STACK}-3) in {REGION}, 7 repositories:"
        f" {STACK} {each.format(3)}, {STACK}-2 {each.format(3)}, {STACK}-3 {each.format(1)}"
    )
    headers, rows = created.rows()
    assert headers[-1] == "stack" and len(rows) == 7
    assert {row[0]: row[-1] for row in rows}["dockerhub/library/b5"] == f"{STACK}-2"

    # "a0" sorts first, yet goes to the first stack with room: nothing moves.
    before = [stack_repositories(aws, s) for s in sets]
    added = ensure_stack(scaled(["a0", *images], repositories_per_stack=3), polling=FAST)
    assert [s.result for s in added.stacks] == ["up-to-date", "up-to-date", "updated"]
    assert [stack_repositories(aws, s) for s in sets] == [
        before[0],
        before[1],
        names(["library/a0", "library/b7"]),
    ]

    # b2 leaves the config and c1 arrives: c1 takes b2's place in the first stack.
    after = ["a0", "b1", "b3", "b4", "b5", "b6", "b7", "c1"]
    moved = ensure_stack(scaled(after, repositories_per_stack=3), polling=FAST)
    assert [s.result for s in moved.stacks] == ["updated", "up-to-date", "up-to-date"]
    assert stack_repositories(aws, STACK) == names(["library/b1", "library/b3", "library/c1"])
    assert "dockerhub/library/b2" in repositories(aws)  # Retain: left the stack, kept in ECR

    # Unchanged: a no-op on every stack of the set.
    same = ensure_stack(scaled(after, repositories_per_stack=3), polling=FAST)
    assert same.result == "up-to-date" and same.changes == ()


def test_a_dry_run_of_a_split_executes_nothing(aws: Moto) -> None:
    ensure_stack(scaled(["b1", "b2"], repositories_per_stack=2), polling=FAST)
    lines: list[str] = []
    would = ensure_stack(
        scaled(["b1", "b2", "b3"], repositories_per_stack=2),
        dry_run=True,
        progress=lines.append,
        polling=FAST,
    )
    assert [(s.stack_name, s.result) for s in would.stacks] == [
        (STACK, "up-to-date"),
        (f"{STACK}-2", "would-create"),
    ]
    assert would.summary().startswith("dry run: 2 stacks")
    assert "  + dockerhub/library/b3" in lines
    stacks = aws.client("cloudformation").list_stacks()["StackSummaries"]
    assert [s["StackName"] for s in stacks] == [STACK]


def test_a_stack_of_the_set_left_empty_is_refused_and_nothing_of_the_set_runs(aws: Moto) -> None:
    ensure_stack(scaled(["b1", "b2", "b3"], repositories_per_stack=2), polling=FAST)
    lines: list[str] = []
    with pytest.raises(StackError) as raised:  # b2 leaves the first stack, b3 the second
        ensure_stack(scaled(["b1"], repositories_per_stack=2), progress=lines.append, polling=FAST)
    assert str(raised.value).startswith(f"stack {STACK}-2 would hold no repository")
    assert f"aws cloudformation delete-stack --stack-name {STACK}-2" in str(raised.value)
    assert "  - dockerhub/library/b2" in " ".join(lines)  # the first stack's change was planned,
    cf = aws.client("cloudformation")
    assert cf.list_change_sets(StackName=STACK)["Summaries"] == []  # then deleted, not run
    assert stack_repositories(aws, STACK) == names(["library/b1", "library/b2"])
    assert stack_repositories(aws, f"{STACK}-2") == names(["library/b3"])


def test_cli_template_deployed_shows_the_split_of_the_deployed_set(
    aws: Moto, tmp_path: Path
) -> None:
    """`a0` arrives after the set is deployed: a new deployment would put it in the first
    stack, the deployed set takes it in the second, where there is room."""
    first = write_config(
        tmp_path / "a.yaml", ["b1", "b2", "b3"], scale={"repositories_per_stack": 2}
    )
    assert mirror("ensure-repo", "--config", str(first), env=aws.env).returncode == 0
    path = write_config(
        tmp_path / "b.yaml", ["a0", "b1", "b2", "b3"], scale={"repositories_per_stack": 2}
    )

    def shares(*options: str) -> list[list[str]]:
        result = mirror("template", "--config", str(path), *options, env=aws.env)
        assert result.returncode == 0, result.stderr
        return [
            [line.split(": ")[1] for line in document.splitlines() if "RepositoryName" in line]
            for document in result.stdout.split("---\n")
        ]

    assert shares() == [names(["library/a0", "library/b1"]), names(["library/b2", "library/b3"])]
    assert shares("--deployed") == [
        names(["library/b1", "library/b2"]),
        names(["library/a0", "library/b3"]),
    ]
    assert mirror("ensure-repo", "--config", str(path), env=aws.env).returncode == 0
    assert stack_repositories(aws, f"{STACK}-2") == names(["library/a0", "library/b3"])


def test_cli_delete_repo_deletes_every_stack_of_the_set_and_keeps_the_repositories(
    aws: Moto, tmp_path: Path
) -> None:
    path = str(
        write_config(tmp_path / "a.yaml", ["b1", "b2", "b3"], scale={"repositories_per_stack": 2})
    )
    assert mirror("ensure-repo", "--config", path, env=aws.env).returncode == 0
    deleted = mirror("delete-repo", "--config", path, "--yes", env=aws.env)
    assert deleted.returncode == 0, deleted.stderr
    summaries = [line for line in deleted.stdout.splitlines() if line.startswith("stack ")]
    assert summaries == [
        f"stack {STACK}-2 deleted from {REGION}; 1 repositories retained in ECR with their images",
        f"stack {STACK} deleted from {REGION}; 2 repositories retained in ECR with their images",
    ]
    stacks = aws.client("cloudformation").list_stacks()["StackSummaries"]
    assert {s["StackStatus"] for s in stacks} == {"DELETE_COMPLETE"}
    assert set(repositories(aws)) == set(names(["library/b1", "library/b2", "library/b3"]))


def test_cli_template_of_a_split_config(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "images.yaml", ["b1", "b2", "b3"], scale={"repositories_per_stack": 2}
    )
    every = mirror("template", "--config", str(path))
    assert every.returncode == 0, every.stderr
    documents = every.stdout.split("---\n")
    assert [d.splitlines()[0] for d in documents] == [
        f"# Stack 1 of 2 of the set {STACK}: 2 of its 3 repositories",
        f"# Stack 2 of 2 of the set {STACK}: 1 of its 3 repositories",
    ]
    assert f"--stack-name {STACK}-2" in documents[1]
    one = mirror("template", "--config", str(path), "--stack", f"{STACK}-2")
    assert one.stdout == documents[1]
    unknown = mirror("template", "--config", str(path), "--stack", "other")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (
        f"mirror: error: --stack other: {path} deploys stacks {STACK}, {STACK}-2, not other"
    )


def test_the_set_is_found_without_reading_the_accounts_deleted_stacks(aws: Moto) -> None:
    """Deleted stacks stay listed for 90 days; ListStacks is asked to leave them out."""
    cf = aws.client("cloudformation")
    body = '{"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}'
    for name in ("gone-1", "gone-2", f"{STACK}-2"):
        cf.create_stack(StackName=name, TemplateBody=body)
    for name in ("gone-1", "gone-2"):
        cf.delete_stack(StackName=name)
    answered: list[str] = []
    cf.meta.events.register(
        "after-call.cloudformation.ListStacks",
        lambda parsed, **_: answered.extend(s["StackStatus"] for s in parsed["StackSummaries"]),
    )
    assert set_members(cf, STACK) == {
        1: cf.describe_stacks(StackName=f"{STACK}-2")["Stacks"][0]["StackId"]
    }
    assert answered and "DELETE_COMPLETE" not in answered


def test_a_stack_name_too_long_for_its_set_is_one_line_and_changes_nothing(
    aws: Moto, tmp_path: Path
) -> None:
    long = "m" * 127  # a valid stack name; its second stack's would be 129 characters
    path = write_config(
        tmp_path / "images.yaml", ["b1", "b2"], name=long, scale={"repositories_per_stack": 1}
    )
    for command in ("template", "ensure-repo"):
        result = mirror(command, "--config", str(path), env=aws.env)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == (
            f"mirror: error: {path}: stack.name {long!r}: its repositories take 2 stacks, and the"
            f" last one's name '{long}-2' is over CloudFormation's 128 characters:"
            " shorten stack.name"
        )
    assert aws.client("cloudformation").list_stacks()["StackSummaries"] == []
