"""The repositories' stack: ensure-repo, delete-repo and template against moto_server over HTTP.

The moto_server here is started by this module (with the test world's process helpers) with
one correction: moto 5 deletes a resource that a stack update removes from the template even
when its `DeletionPolicy` is `Retain`; CloudFormation keeps it (that is what the policy is
for). The server below behaves like CloudFormation there, so the "image removed from the
config" step shows what happens on AWS. Stack deletion already honours Retain in moto.

States moto cannot reach are in `test_stack_scripted.py`; the pure plan and its texts in
`test_stack_plan.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mirror.config import load_config
from mirror.errors import StackError
from mirror.stack import (
    AwsClients,
    DeletePlan,
    Polling,
    Repository,
    apply_stack,
    delete_stack,
    ensure_stack,
    plan_stack,
)
from mirror.stack import ensure as stack_ensure
from mirror.template import logical_id, render, render_yaml
from tests.stack_config import ALPINE, NODE, PYTHON, STACK, make_config
from tests.world.moto import Moto
from tests.world.procs import http_probe, start_process

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FAST = Polling(interval=0.01, timeout=30)

_MOTO_HONOURING_RETAIN = """
import sys
from moto.cloudformation import parsing

_delete = parsing.ResourceMap._delete_resource


def _delete_unless_retained(self, parsed_resource, resource_json):
    if resource_json.get("DeletionPolicy") == "Retain":
        return  # removed from the stack by an update, kept in the account
    _delete(self, parsed_resource, resource_json)


parsing.ResourceMap._delete_resource = _delete_unless_retained
from moto.server import main

sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    process = start_process(
        "moto-retain",
        lambda port: [
            sys.executable,
            "-c",
            _MOTO_HONOURING_RETAIN,
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        log_dir=tmp_path_factory.mktemp("moto"),
        ready=http_probe("/moto-api/data.json"),
        timeout=60,
    )
    assert process.port is not None
    moto = Moto(url=f"http://127.0.0.1:{process.port}", port=process.port, process=process)
    try:
        moto.client("cloudformation").list_stacks()  # the first call imports every backend
        yield moto
    finally:
        moto.stop()


@pytest.fixture(scope="module")
def moto_clients(moto_server: Moto) -> AwsClients:
    return AwsClients(moto_server.client("cloudformation"), moto_server.client("ecr"))


@pytest.fixture
def aws(moto_server: Moto, moto_clients: AwsClients, monkeypatch: pytest.MonkeyPatch) -> Moto:
    """A fresh moto, and the environment that points boto3 (and `mirror`) at it.

    boto3 takes 0.2 s or more to build a client, so the in-process calls here share two; the
    command-line tests build theirs from the environment, as a user's run does."""
    moto_server.reset()
    for key, value in moto_server.env.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(AwsClients, "for_config", classmethod(lambda cls, config: moto_clients))
    return moto_server


def write_config(path: Path, images: list[str], **stack: Any) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "stack": {"name": STACK, **stack},
                "images": [{"image": image, "tags": ["latest"]} for image in images],
            }
        )
    )
    return path


def repositories(moto: Moto) -> dict[str, str]:
    pages = moto.client("ecr").get_paginator("describe_repositories").paginate()
    return {r["repositoryName"]: r["repositoryUri"] for p in pages for r in p["repositories"]}


def push_image(moto: Moto, repository: str, tag: str) -> None:
    """An image (a manifest naming a config blob) pushed through ECR's API."""
    digest = "sha256:" + f"{abs(hash((repository, tag))):064x}"[-64:]
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 2,
            "digest": digest,
        },
        "layers": [],
    }
    moto.client("ecr").put_image(
        repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag
    )


def stack_state(moto: Moto) -> tuple[Any, ...]:
    """What any executed operation would change: status, events, change sets, resources."""
    cf = moto.client("cloudformation")
    stack = cf.describe_stacks(StackName=STACK)["Stacks"][0]
    events = [e["EventId"] for e in cf.describe_stack_events(StackName=STACK)["StackEvents"]]
    change_sets = cf.list_change_sets(StackName=STACK)["Summaries"]
    resources = sorted(
        r["PhysicalResourceId"]
        for r in cf.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    )
    return stack["StackStatus"], stack.get("LastUpdatedTime"), events, change_sets, resources


def stack_exists(moto: Moto) -> bool:
    stacks = moto.client("cloudformation").list_stacks()["StackSummaries"]
    return any(s["StackName"] == STACK and s["StackStatus"] != "DELETE_COMPLETE" for s in stacks)


# --- the life of a stack ---------------------------------------------------------------------


def test_create_noop_update_remove_delete(aws: Moto) -> None:
    lines: list[str] = []

    created = ensure_stack(make_config(["python", "node"]), progress=lines.append, polling=FAST)
    assert created.result == "created"
    assert set(repositories(aws)) == {PYTHON, NODE}
    assert {r.name: r.uri for r in created.repositories} == repositories(aws)
    assert [(c.action, c.repository) for c in created.changes] == [("add", NODE), ("add", PYTHON)]
    push_image(aws, NODE, "20")
    push_image(aws, NODE, "22")
    push_image(aws, PYTHON, "3.13")

    # Nothing changed: no change set is even computed, nothing is executed.
    before = stack_state(aws)
    lines.clear()
    same = ensure_stack(make_config(["node", "python"]), progress=lines.append, polling=FAST)
    assert same.result == "up-to-date"
    assert same.changes == ()
    assert stack_state(aws) == before
    assert not any("change set" in line for line in lines)

    # An image added: the change set is shown, then executed.
    lines.clear()
    updated = ensure_stack(
        make_config(["python", "node", "alpine"]), progress=lines.append, polling=FAST
    )
    assert updated.result == "updated"
    assert [(c.action, c.repository) for c in updated.changes] == [("add", ALPINE)]
    assert set(repositories(aws)) == {PYTHON, NODE, ALPINE}
    shown = lines.index(f"  + {ALPINE}")
    executed = next(i for i, line in enumerate(lines) if line.startswith("executing change set"))
    assert shown < executed

    # An image removed: its repository leaves the stack and stays in ECR with its images.
    removed = ensure_stack(make_config(["python", "alpine"]), progress=lines.append, polling=FAST)
    assert removed.result == "updated"
    assert [(c.action, c.repository) for c in removed.changes] == [("remove", NODE)]
    assert removed.retained == (Repository(NODE, repositories(aws)[NODE], 2),)
    assert set(repositories(aws)) == {PYTHON, NODE, ALPINE}
    assert stack_state(aws)[4] == [ALPINE, PYTHON]  # the stack's resources

    # delete-repo: the stack goes, every repository stays, reported with its images.
    plans: list[DeletePlan] = []
    deleted = delete_stack(
        make_config(["python", "alpine"]),
        confirm=lambda plan: plans.append(plan) is None,
        progress=lines.append,
        polling=FAST,
    )
    assert plans[0].repositories == (ALPINE, PYTHON)
    assert deleted.result == "deleted"
    assert [(r.name, r.images) for r in deleted.retained] == [(ALPINE, 0), (PYTHON, 1)]
    assert not stack_exists(aws)
    assert set(repositories(aws)) == {PYTHON, NODE, ALPINE}


def test_dry_run_executes_nothing(aws: Moto) -> None:
    would_create = ensure_stack(make_config(["python"]), dry_run=True, polling=FAST)
    assert would_create.result == "would-create"
    assert [(c.action, c.repository) for c in would_create.changes] == [("add", PYTHON)]
    assert not stack_exists(aws)
    assert repositories(aws) == {}

    ensure_stack(make_config(["python"]), polling=FAST)
    before = stack_state(aws)
    lines: list[str] = []
    would_update = ensure_stack(
        make_config(["python", "alpine"]), dry_run=True, progress=lines.append, polling=FAST
    )
    assert would_update.result == "would-update"
    assert [(c.action, c.repository) for c in would_update.changes] == [("add", ALPINE)]
    assert f"  + {ALPINE}" in lines
    assert stack_state(aws) == before  # the change set was deleted, not executed
    assert set(repositories(aws)) == {PYTHON}


def test_a_declined_confirmation_deletes_nothing(aws: Moto) -> None:
    ensure_stack(make_config(["python"]), polling=FAST)
    outcome = delete_stack(make_config(["python"]), confirm=lambda plan: False, polling=FAST)
    assert outcome.result == "cancelled"
    assert stack_exists(aws)
    assert delete_stack(make_config(["python"]), confirm=lambda plan: True).result == "deleted"
    assert delete_stack(make_config(["python"]), confirm=lambda plan: True).result == "absent"


def test_a_plan_executes_nothing_until_applied(aws: Moto, moto_clients: AwsClients) -> None:
    ensure_stack(make_config(["python"]), polling=FAST)
    status = stack_state(aws)[0]
    plan = plan_stack(make_config(["python", "alpine"]), moto_clients, polling=FAST)
    assert plan.action == "update" and plan.change_set is not None
    assert [(c.action, c.repository) for c in plan.changes] == [("add", ALPINE)]
    assert stack_state(aws)[0] == status
    assert set(repositories(aws)) == {PYTHON}

    applied = apply_stack(plan, moto_clients, polling=FAST)
    assert (applied.result, applied.change_set) == ("updated", plan.change_set.name)
    assert set(repositories(aws)) == {PYTHON, ALPINE}


def test_a_refused_plan_is_not_applied(aws: Moto, moto_clients: AwsClients) -> None:
    aws.client("ecr").create_repository(repositoryName=PYTHON)
    plan = plan_stack(make_config(["python"]), moto_clients, polling=FAST)
    assert plan.action == "create" and plan.refusal is not None
    with pytest.raises(StackError, match="already exist outside stack"):
        apply_stack(plan, moto_clients, polling=FAST)
    assert not stack_exists(aws)


# --- "no changes" ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "suffix",
    ["", "# deployed by hand\n"],
    ids=["CreateChangeSet-says-no-updates", "change-set-FAILED-no-changes"],
)
def test_a_change_set_without_changes_means_up_to_date(
    aws: Moto, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    """moto refuses an identical template at CreateChangeSet ("No updates are to be
    performed."), and fails the change set for an equivalent one ("didn't contain changes"),
    as AWS does; both mean up to date, and nothing is executed."""
    config = make_config(["python"])
    aws.client("cloudformation").create_stack(
        StackName=STACK,
        TemplateBody=render_yaml(config) + suffix,
        Parameters=[{"ParameterKey": "IAMUserName", "ParameterValue": ""}],
    )
    monkeypatch.setattr(stack_ensure, "template_matches", lambda deployed, body, config: False)
    before = stack_state(aws)
    lines: list[str] = []
    outcome = ensure_stack(config, progress=lines.append, polling=FAST)
    assert outcome.result == "up-to-date"
    assert stack_state(aws) == before  # no change set left behind, none executed
    assert any(line.startswith("computing change set") for line in lines)


def test_an_equivalent_template_in_another_format_is_up_to_date(aws: Moto) -> None:
    config = make_config(["python", "node"])
    aws.client("cloudformation").create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(render(config), indent=1),
        Parameters=[{"ParameterKey": "IAMUserName", "ParameterValue": ""}],
    )
    lines: list[str] = []
    assert ensure_stack(config, progress=lines.append, polling=FAST).result == "up-to-date"
    assert not any("change set" in line for line in lines)


# --- repositories that exist outside the stack, or no longer exist ----------------------------


def test_a_repository_created_by_hand_is_reported_with_the_fix(aws: Moto) -> None:
    aws.client("ecr").create_repository(repositoryName=PYTHON)
    push_image(aws, PYTHON, "3.13")
    lines: list[str] = []
    with pytest.raises(StackError) as raised:
        ensure_stack(make_config(["python", "node"]), progress=lines.append, polling=FAST)
    message = str(raised.value)
    assert message.startswith(f"1 repositories already exist outside stack {STACK} ({PYTHON})")
    assert "import them into the stack or change target.prefix" in message
    text = "\n".join(lines)
    assert f"  {PYTHON} (1 images)" in lines
    resources = json.loads(text.split("--resources-to-import '")[1].split("'")[0])
    assert resources == [
        {
            "ResourceType": "AWS::ECR::Repository",
            "LogicalResourceId": logical_id(PYTHON),
            "ResourceIdentifier": {"RepositoryName": PYTHON},
        }
    ]
    assert "target.prefix" in text and "aws ecr delete-repository" in text
    assert not stack_exists(aws)
    assert set(repositories(aws)) == {PYTHON}


def test_an_addition_that_exists_outside_the_stack_stops_the_update(aws: Moto) -> None:
    ensure_stack(make_config(["python"]), polling=FAST)
    aws.client("ecr").create_repository(repositoryName=ALPINE)
    before = stack_state(aws)
    with pytest.raises(StackError, match=f"already exist outside stack {STACK} \\({ALPINE}\\)"):
        ensure_stack(make_config(["python", "alpine"]), polling=FAST)
    assert stack_state(aws) == before


def test_a_repository_deleted_by_hand_is_reported(aws: Moto) -> None:
    ensure_stack(make_config(["python", "node"]), polling=FAST)
    aws.client("ecr").delete_repository(repositoryName=NODE)
    with pytest.raises(StackError, match=f"no longer exist in ECR .*: {NODE}"):
        ensure_stack(make_config(["python", "node"]), polling=FAST)


# --- a stack deployed by hand ------------------------------------------------------------------


@pytest.mark.parametrize("user", ["", "ci-pusher"])
def test_a_hand_deploy_of_cfn_ecr_yml_then_ensure_repo(aws: Moto, user: str) -> None:
    """`aws cloudformation deploy` of cfn/ecr.yml, as its header says; then `ensure-repo` on
    the config it was rendered from finds it up to date, or (another IAM user) updates it."""
    deploy = subprocess.run(
        [
            str(BIN / "aws"),
            "cloudformation",
            "deploy",
            "--template-file",
            "cfn/ecr.yml",
            "--stack-name",
            STACK,
            "--capabilities",
            "CAPABILITY_NAMED_IAM",
            "--parameter-overrides",
            f"IAMUserName={user}",
        ],
        cwd=REPO,
        env={**os.environ, **aws.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert deploy.returncode == 0, deploy.stderr
    config = load_config(REPO / "config" / "images.yaml")
    names = {image.target_repository for image in config.images}
    assert set(repositories(aws)) == names

    lines: list[str] = []
    outcome = ensure_stack(config, progress=lines.append, polling=FAST)
    assert {r.name for r in outcome.repositories} == names
    if not user:
        assert outcome.result == "up-to-date"
        assert not any("change set" in line for line in lines)
        return
    assert outcome.result == "updated"  # the config names no IAM user: the parameter goes
    cf = aws.client("cloudformation")
    assert cf.describe_stacks(StackName=STACK)["Stacks"][0]["Parameters"] == [
        {"ParameterKey": "IAMUserName", "ParameterValue": ""}
    ]
    assert ensure_stack(config, polling=FAST).result == "up-to-date"


# --- the command line --------------------------------------------------------------------------


def mirror(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "mirror"), *args],
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,  # no terminal: delete-repo must refuse without --yes
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_template_prints_what_ensure_repo_deploys(tmp_path: Path) -> None:
    path = write_config(tmp_path / "images.yaml", ["python", "node"], iam_user="ci-pusher")
    result = mirror("template", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == render_yaml(load_config(path))
    assert (
        mirror("template", "-c", str(REPO / "config" / "images.yaml")).stdout
        == (REPO / "cfn" / "ecr.yml").read_text()
    )


def test_cli_ensure_repo_and_delete_repo(aws: Moto, tmp_path: Path) -> None:
    path = str(write_config(tmp_path / "images.yaml", ["python", "node"]))

    dry = mirror("ensure-repo", "--config", path, "--dry-run", env=aws.env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith(f"dry run: stack {STACK} does not exist in us-east-1;")
    assert f"  + {PYTHON}" in dry.stderr.splitlines()
    assert not stack_exists(aws)

    created = mirror("ensure-repo", "--config", path, env=aws.env)
    assert created.returncode == 0, created.stderr
    first, *rows = created.stdout.splitlines()
    assert first == f"stack {STACK} created in us-east-1: 2 repositories"
    uris = repositories(aws)
    assert rows == [
        f"  {NODE}    added  {uris[NODE]}",
        f"  {PYTHON}  added  {uris[PYTHON]}",
    ]
    assert f"creating stack {STACK}" in created.stderr

    refused = mirror("delete-repo", "--config", path, env=aws.env)
    assert refused.returncode == 2
    assert refused.stderr.strip().endswith("pass --yes")
    assert refused.stderr.startswith("mirror: error: ")
    assert stack_exists(aws)

    deleted = mirror("delete-repo", "--config", path, "--yes", env=aws.env)
    assert deleted.returncode == 0, deleted.stderr
    first, *rows = deleted.stdout.splitlines()
    assert first == (
        f"stack {STACK} deleted from us-east-1; 2 repositories retained in ECR with their images"
    )
    assert rows == [
        f"  {NODE}    retained, 0 images  {uris[NODE]}",
        f"  {PYTHON}  retained, 0 images  {uris[PYTHON]}",
    ]

    outside = mirror("ensure-repo", "--config", path, env=aws.env)
    assert outside.returncode == 1
    assert outside.stdout == ""
    last = outside.stderr.splitlines()[-1]
    assert last.startswith("mirror: error: 2 repositories already exist outside stack")
