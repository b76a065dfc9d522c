"""The rendered CloudFormation template: stable, complete, cfn-lint clean, and what moto ignores.

moto ignores the repository policy, the lifecycle policy and the scanning configuration when
it deploys a stack, so those are asserted here, on the rendered template. The policy is written
once, as JSON text in `Mappings`, and joined around the principal's ARN in each repository:
`resolved` evaluates those intrinsic functions as CloudFormation would, so the tests read the
policy each repository gets.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mirror import cfn_yaml
from mirror.config import Config, load_config, parse_config
from mirror.stack.split import split_config
from mirror.template import (
    HAS_IAM_USER,
    IAM_USER_PARAMETER,
    IAM_USER_PATTERN,
    MAX_TEMPLATE_BODY_BYTES,
    PUSH_PULL_ACTIONS,
    load_template,
    logical_id,
    needs_upload,
    render,
    render_yaml,
    repository_names,
    stack_parameters,
)

REPO = Path(__file__).resolve().parent.parent
PUSH_PULL_STATEMENT_ACTIONS = [
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchGetImage",
    "ecr:BatchCheckLayerAvailability",
    "ecr:PutImage",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
]


def make_config(
    images: list[str] | None = None,
    *,
    iam_user: str | None = None,
    expiry: int | None = None,
    scan: bool | None = None,
    encryption: str | None = None,
    prefix: str = "dockerhub",
) -> Config:
    stack: dict[str, Any] = {"name": "ecr-mirror", "iam_user": iam_user}
    if expiry is not None:
        stack["untagged_expiry_days"] = expiry
    if scan is not None:
        stack["scan_on_push"] = scan
    if encryption is not None:
        stack["encryption"] = encryption
    document = {
        "version": 1,
        "target": {"prefix": prefix},
        "stack": stack,
        "images": [
            {"image": name, "tags": ["latest"]}
            for name in (images or ["python", "bitnami/redis", "node"])
        ],
    }
    return parse_config(yaml.safe_dump(document), "images.yaml")


PSEUDO = {"AWS::Partition": "aws", "AWS::AccountId": "123456789012"}


def resolved(node: Any, template: dict[str, Any], parameters: dict[str, str]) -> Any:
    """`node` with `Fn::FindInMap`, `Ref`, `Fn::Sub` and `Fn::Join` evaluated, as CloudFormation
    does for the account 123456789012 (`Fn::If` and `AWS::NoValue` are left as they are)."""
    values = {**PSEUDO, **parameters}
    if isinstance(node, list):
        return [resolved(item, template, parameters) for item in node]
    if not isinstance(node, dict):
        return node
    if "Fn::FindInMap" in node:
        name, key, field = node["Fn::FindInMap"]
        return template["Mappings"][name][key][field]
    if "Ref" in node and node["Ref"] in values:
        return values[node["Ref"]]
    if "Fn::Sub" in node:
        return re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], node["Fn::Sub"])
    if "Fn::Join" in node:
        separator, items = node["Fn::Join"]
        return separator.join(resolved(items, template, parameters))
    return {key: resolved(value, template, parameters) for key, value in node.items()}


def repository_policy(config: Config, repository: str, iam_user: str = "ci-pusher") -> Any:
    """The policy document the repository gets with that IAM user ("": none; None: no policy),
    the template's intrinsic functions evaluated as CloudFormation would."""
    template = render(config)
    condition, text, otherwise = properties(config, repository)["RepositoryPolicyText"]["Fn::If"]
    assert condition == HAS_IAM_USER
    chosen = text if iam_user else otherwise
    if chosen == {"Ref": "AWS::NoValue"}:
        return None
    return json.loads(resolved(chosen, template, {IAM_USER_PARAMETER: iam_user}))


def resources(config: Config) -> dict[str, dict[str, Any]]:
    return dict(render(config)["Resources"])


def properties(config: Config, repository: str) -> dict[str, Any]:
    return dict(resources(config)[logical_id(repository)]["Properties"])


# --- logical IDs ---------------------------------------------------------------------------


def test_logical_ids_are_readable_and_pinned() -> None:
    # Pinned: a changed scheme would make CloudFormation drop and re-add every repository.
    assert logical_id("dockerhub/library/python") == "RepoDockerhubLibraryPython1bbcb99e"


def test_names_that_camelcase_alike_get_different_ids() -> None:
    names = ["dockerhub/a-b/c", "dockerhub/a/b-c", "dockerhub/a.b/c", "dockerhub/a/b_c"]
    ids = [logical_id(name) for name in names]
    assert len(set(ids)) == len(ids)


def test_logical_ids_fit_cloudformation_rules_for_the_longest_names() -> None:
    longest = "/".join(["a" * 63] * 4)  # 255 characters
    for name in (longest, "x/y", "dockerhub/library/python"):
        assert re.fullmatch(r"[A-Za-z0-9]{1,255}", logical_id(name))


# --- stability -----------------------------------------------------------------------------


def test_the_same_config_renders_byte_identical_yaml() -> None:
    assert render_yaml(make_config()) == render_yaml(make_config())


def test_the_order_of_images_in_the_config_does_not_matter() -> None:
    one = make_config(["python", "node", "bitnami/redis"])
    other = make_config(["bitnami/redis", "python", "node"])
    assert render_yaml(one) == render_yaml(other)


def test_the_yaml_reads_back_into_the_rendered_dict() -> None:
    config = make_config(iam_user="ci-pusher")
    text = render_yaml(config)
    assert "!FindInMap" in text and "!If" in text and "!Sub" in text  # CloudFormation short form
    assert load_template(text) == render(config)


def test_pyyaml_alone_writes_and_reads_the_same_template_as_libyaml(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without libyaml, PyYAML's own emitter and parser: the same bytes, the same dict."""
    configs = [make_config(iam_user="ci-pusher"), load_config(REPO / "config" / "images.yaml")]
    fast = [render_yaml(config) for config in configs]
    monkeypatch.setattr(cfn_yaml, "DUMPER", cfn_yaml._Dumper)
    monkeypatch.setattr(cfn_yaml, "LOADER", cfn_yaml._Loader)
    assert [render_yaml(config) for config in configs] == fast
    assert [load_template(text) for text in fast] == [render(config) for config in configs]


def test_load_template_reads_json_and_every_short_form() -> None:
    text = "Resources: {X: {Properties: {A: !Ref P, B: !GetAtt R.Arn, C: !Join ['', [a, b]]}}}"
    assert load_template(text)["Resources"]["X"]["Properties"] == {
        "A": {"Ref": "P"},
        "B": {"Fn::GetAtt": ["R", "Arn"]},
        "C": {"Fn::Join": ["", ["a", "b"]]},
    }
    assert load_template(json.dumps({"Resources": {}})) == {"Resources": {}}


# --- what each repository holds (moto ignores policy, lifecycle, scanning) -------------------


def test_one_repository_per_image_named_from_the_config() -> None:
    config = make_config(prefix="mirror/hub")
    names = repository_names(render(config))
    assert sorted(names.values()) == [
        "mirror/hub/bitnami/redis",
        "mirror/hub/library/node",
        "mirror/hub/library/python",
    ]
    assert all(key == logical_id(name) for key, name in names.items())


def test_every_repository_has_the_push_pull_policy_for_the_iam_user() -> None:
    config = make_config(iam_user="ci-pusher")
    for name in repository_names(render(config)).values():
        document = repository_policy(config, name)
        assert document["Version"] == "2012-10-17"
        (statement,) = document["Statement"]
        assert statement["Sid"] == "AllowPushPull"
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == PUSH_PULL_STATEMENT_ACTIONS == list(PUSH_PULL_ACTIONS)
        assert statement["Principal"] == {"AWS": "arn:aws:iam::123456789012:user/ci-pusher"}


def test_the_policy_text_is_written_once_however_many_repositories() -> None:
    few, many = make_config(["a", "b"]), make_config([f"team/image{i}" for i in range(50)])
    for config in (few, many):
        assert render_yaml(config).count('"Sid":"AllowPushPull"') == 1
        assert render_yaml(config).count('"rulePriority":1') == 1


def test_the_policy_applies_only_when_an_iam_user_is_given() -> None:
    without = render(make_config())
    assert without["Parameters"][IAM_USER_PARAMETER]["Default"] == ""
    assert without["Conditions"][HAS_IAM_USER] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": IAM_USER_PARAMETER}, ""]}]
    }
    assert stack_parameters(make_config()) == {IAM_USER_PARAMETER: ""}
    with_user = make_config(iam_user="ci-pusher")
    assert render(with_user)["Parameters"][IAM_USER_PARAMETER]["Default"] == "ci-pusher"
    assert stack_parameters(with_user) == {IAM_USER_PARAMETER: "ci-pusher"}


@pytest.mark.parametrize(
    ("value", "allowed"),
    [("", True), ("ci-pusher", True), ("CI_user-01", True), ("a b", False), ("x/y", False)],
)
def test_the_iam_user_parameter_keeps_its_name_pattern(value: str, allowed: bool) -> None:
    # CloudFormation matches AllowedPattern against the whole value.
    assert bool(re.fullmatch(IAM_USER_PATTERN, value)) is allowed


def test_untagged_images_expire_after_the_configured_days() -> None:
    for days in (14, 30):
        template = render(make_config(expiry=days))
        text = template["Mappings"]["Shared"]["Lifecycle"]["Text"]
        (rule,) = json.loads(text)["rules"]
        assert rule["selection"] == {
            "tagStatus": "untagged",
            "countType": "sinceImagePushed",
            "countUnit": "days",
            "countNumber": days,
        }
        assert rule["action"] == {"type": "expire"}
        for resource in template["Resources"].values():
            assert resource["Properties"]["LifecyclePolicy"] == {
                "LifecyclePolicyText": {"Fn::FindInMap": ["Shared", "Lifecycle", "Text"]}
            }


@pytest.mark.parametrize("scan", [True, False])
def test_scan_on_push_follows_the_config(scan: bool) -> None:
    props = properties(make_config(scan=scan), "dockerhub/library/python")
    assert props["ImageScanningConfiguration"] == {"ScanOnPush": scan}


@pytest.mark.parametrize("encryption", ["AES256", "KMS"])
def test_encryption_follows_the_config(encryption: str) -> None:
    props = properties(make_config(encryption=encryption), "dockerhub/library/python")
    assert props["EncryptionConfiguration"] == {"EncryptionType": encryption}


def test_repositories_are_tagged_as_managed_by_mirror_and_keep_moving_tags() -> None:
    props = properties(make_config(), "dockerhub/bitnami/redis")
    assert props["Tags"] == [
        {"Key": "managed-by", "Value": "mirror"},
        {"Key": "mirror:source", "Value": "docker.io/bitnami/redis"},
    ]
    assert props["ImageTagMutability"] == "MUTABLE"


def test_repositories_survive_removal_and_stack_deletion() -> None:
    for resource in resources(make_config()).values():
        assert resource["Type"] == "AWS::ECR::Repository"
        assert resource["DeletionPolicy"] == "Retain"
        assert resource["UpdateReplacePolicy"] == "Retain"


def test_no_output_per_repository_a_stack_holds_200_at_most() -> None:
    assert "Outputs" not in render(make_config([f"team/image{i}" for i in range(250)]))


def test_the_header_tells_how_to_deploy_by_hand() -> None:
    text = render_yaml(make_config(iam_user="ci-pusher"))
    assert "aws cloudformation deploy --template-file ecr.yml --stack-name ecr-mirror" in text
    assert "--capabilities CAPABILITY_NAMED_IAM --parameter-overrides IAMUserName=ci-pusher" in text


# --- limits --------------------------------------------------------------------------------


def test_sixty_images_fit_inline_and_four_hundred_go_through_s3() -> None:
    sixty = render_yaml(make_config([f"some-namespace/image-name-{i}" for i in range(60)]))
    assert len(sixty.encode()) <= MAX_TEMPLATE_BODY_BYTES and not needs_upload(sixty)
    many = make_config([f"some-namespace/image-name-{i}" for i in range(400)])
    body = render_yaml(many)
    assert needs_upload(body)
    assert "--s3-bucket BUCKET" in body and "--s3-bucket" not in sixty


def test_the_largest_stack_mirror_renders_fits_what_cloudformation_takes_from_s3() -> None:
    """490 repositories (the most a stack of the set holds) with 255-character names: less
    than the 1,000,000 bytes CloudFormation reads from S3, so no size is ever refused."""
    config = make_config(["a"], iam_user="ci-pusher")
    (image,) = config.images
    images = tuple(
        dataclasses.replace(
            image, repository=f"{i:03d}/" + "r" * 251, target_repository=f"{i:03d}/" + "n" * 251
        )
        for i in range(490)
    )
    body = render_yaml(dataclasses.replace(config, images=images))
    assert len(repository_names(load_template(body))) == 490
    assert len(body.encode()) < 1_000_000


# --- cfn/ and cfn-lint ---------------------------------------------------------------------


def test_cfn_ecr_yml_is_the_rendering_of_the_repository_config() -> None:
    config = load_config(REPO / "config" / "images.yaml")
    assert (REPO / "cfn" / "ecr.yml").read_text() == render_yaml(config), (
        "cfn/ecr.yml is stale: regenerate it with `mirror template > cfn/ecr.yml`"
    )


def _lint(text: str) -> list[str]:
    from cfnlint.api import lint

    return [str(match) for match in lint(text)]


@pytest.mark.parametrize("path", sorted((REPO / "cfn").glob("*.y*ml")), ids=lambda p: p.name)
def test_every_template_in_cfn_is_cfn_lint_clean(path: Path) -> None:
    assert _lint(path.read_text()) == []


@pytest.mark.parametrize(
    "config",
    [
        make_config(),
        make_config(iam_user="ci-pusher", encryption="KMS", scan=False, expiry=90),
        make_config(["alpine"], prefix=""),
        parse_config(
            "version: 1\nstack: {untagged_expiry_days: null}\nimages: [{image: a, tags: [x]}]\n"
        ),
    ],
    ids=["no-iam-user", "iam-user-kms", "one-image-no-prefix", "no-lifecycle-rule"],
)
def test_rendered_variants_are_cfn_lint_clean(config: Config) -> None:
    assert _lint(render_yaml(config)) == []


def test_a_template_for_s3_and_every_stack_of_a_split_are_cfn_lint_clean() -> None:
    """400 images: one template over 51,200 bytes (sent through S3); then the same images
    split over stacks of at most 150 repositories."""
    names = [f"some-namespace/image-name-{i}" for i in range(400)]
    large = make_config(names, iam_user="ci-pusher")
    assert needs_upload(render_yaml(large))
    assert _lint(render_yaml(large)) == []
    split = parse_config(
        yaml.safe_dump(
            {
                "version": 1,
                "stack": {"iam_user": "ci-pusher", "scale": {"repositories_per_stack": 150}},
                "images": [{"image": name, "tags": ["latest"]} for name in names],
            }
        ),
        "images.yaml",
    )
    parts = split_config(split, {})
    assert [len(part.images) for part in parts] == [150, 150, 100]
    for part in parts:
        assert _lint(render_yaml(part)) == []


def test_untagged_expiry_null_leaves_the_lifecycle_rule_out() -> None:
    config = parse_config(
        "version: 1\nstack: {untagged_expiry_days: null}\nimages: [{image: a, tags: [x]}]\n"
    )
    template = render(config)
    assert "Lifecycle" not in template["Mappings"]["Shared"]
    (repository,) = template["Resources"].values()
    assert "LifecyclePolicy" not in repository["Properties"]
    assert "LifecyclePolicy" in next(iter(resources(make_config(["a"])).values()))["Properties"]


# --- least privilege: no `*` action, no `*` resource ------------------------------------------

# Actions IAM grants only on Resource "*" (they name no resource).
# (AWS's service authorization reference: these take no resource-level permission.)
RESOURCELESS_ACTIONS = {"ecr:GetAuthorizationToken", "cloudformation:ListStacks"}
# Actions with no resource either, narrowed by a condition key instead: allowed on "*" only
# with that key in the statement's condition.
CONDITIONED_ACTIONS = {"cloudwatch:PutMetricData": "cloudwatch:namespace"}


def _statements(node: Any, where: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every policy statement in a template, with where it is (through `Fn::If` and all)."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        statements = node.get("Statement")
        if statements is not None:
            items = statements if isinstance(statements, list) else [statements]
            found += [(f"{where}.Statement[{i}]", s) for i, s in enumerate(items)]
        for key, value in node.items():
            if key != "Statement":
                found += _statements(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _statements(value, f"{where}[{i}]")
    return found


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _narrowed(statement: dict[str, Any]) -> set[str]:
    """The CONDITIONED_ACTIONS that `statement` narrows by their condition key."""
    keys = {key for test in statement.get("Condition", {}).values() for key in test}
    return {action for action, key in CONDITIONED_ACTIONS.items() if key in keys}


def overbroad(template: dict[str, Any]) -> list[str]:
    """What a template's Allow statements grant beyond least privilege, one line each: a
    `*` action, a service-wide action (`ecr:*`) on every resource, an action other than the
    resource-less ones on `*`, NotAction / NotResource, `*` principals without a condition."""
    problems = []
    for where, statement in _statements(template):
        if statement.get("Effect") != "Allow":
            continue
        actions = [a for a in _listed(statement.get("Action", [])) if isinstance(a, str)]
        resources = _listed(statement.get("Resource", []))
        every_resource = "*" in resources
        said = json.dumps(statement, sort_keys=True)
        if "NotAction" in statement or "NotResource" in statement:
            problems.append(f"{where}: NotAction/NotResource grants too much: {said}")
        if "*" in actions:
            problems.append(f"{where}: Action '*': {said}")
        if every_resource and any(a.endswith(":*") for a in actions):
            problems.append(f"{where}: a service-wide action on Resource '*': {said}")
        elif every_resource and set(actions) - RESOURCELESS_ACTIONS - _narrowed(statement):
            problems.append(f"{where}: Resource '*' for resource-scoped actions: {said}")
        principal = statement.get("Principal")
        if principal in ("*", {"AWS": "*"}) and "Condition" not in statement:
            problems.append(f"{where}: Principal '*' without a condition: {said}")
    return problems


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:ecr:*:1:repository/x"},
        {"Effect": "Allow", "Action": ["ecr:*"], "Resource": "*"},
        {"Effect": "Allow", "Action": "ecr:PutImage", "Resource": ["*"]},
        {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"},
        {"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:ecr:*:1:repository/x"},
        {"Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage"},
    ],
)
def test_the_least_privilege_check_catches_overbroad_statements(statement: dict[str, Any]) -> None:
    """The check below can fail: each of these is reported, naming the statement."""
    template = {"Resources": {"R": {"Properties": {"PolicyDocument": {"Statement": [statement]}}}}}
    (problem,) = overbroad(template)
    assert problem.startswith(".Resources.R.Properties.PolicyDocument.Statement[0]: ")
    assert json.dumps(statement, sort_keys=True) in problem


def test_the_least_privilege_check_accepts_scoped_statements() -> None:
    fine = [
        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": "mirror"}},
        },
        {"Effect": "Allow", "Action": ["ecr:PutImage"], "Resource": "arn:aws:ecr:*:1:repository/x"},
        {"Effect": "Deny", "Action": "*", "Resource": "*"},
        {
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": "ecr:BatchGetImage",
            "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-1"}},
        },
    ]
    assert overbroad({"Statement": fine}) == []


@pytest.mark.parametrize(
    "path",
    [*sorted((REPO / "cfn").glob("*.y*ml")), REPO / "config" / "images.yaml"],
    ids=lambda path: path.name,
)
def test_no_policy_in_cfn_or_the_rendered_config_grants_a_wildcard(path: Path) -> None:
    """Every template in cfn/, and the one `mirror template` renders from the shipped
    config, grants no `*` action and no `*` resource."""
    if path.parent.name == "cfn":
        template = load_template(path.read_text())
    else:
        template = render(load_config(path))
    shared = template.get("Mappings", {}).get("Shared", {}).get("Policy")
    if shared is not None:  # the repositories' policy, as JSON text around the principal
        principal = "arn:aws:iam::123456789012:user/ci-pusher"
        template = {
            **template,
            "SharedPolicy": json.loads(shared["Head"] + principal + shared["Tail"]),
        }
    assert _statements(template), f"{path}: no policy statement found: the check saw nothing"
    assert overbroad(template) == []
