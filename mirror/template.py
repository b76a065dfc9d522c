"""The CloudFormation template that holds the mirrored ECR repositories, rendered from a Config.

Pure: no I/O. `render(config)` builds the template as a dict (intrinsic functions in their long
`{"Fn::Sub": ...}` form), `render_yaml(config)` writes it in CloudFormation's short YAML form
(`!Sub`, `!If`, `!FindInMap`; see `mirror.cfn_yaml`) and `load_template(text)` reads either
form back into the long one.
The same config always renders byte-identical YAML, which is what lets `mirror ensure-repo`
compare the deployed template (GetTemplate) with the rendered one and skip a change set.

Why rendered rather than a hand-written `Fn::ForEach` loop: `Fn::ForEach` needs the
`AWS::LanguageExtensions` transform, which moto does not implement (the tests could not deploy
it), and a rendered file is easier to review: every repository is spelled out. `cfn/ecr.yml`,
the rendering of `config/images.yaml`, stays deployable by hand with the command in its header
(`aws cloudformation deploy --template-file cfn/ecr.yml --stack-name ecr-mirror
--capabilities CAPABILITY_NAMED_IAM --parameter-overrides IAMUserName=...`).

What the template holds, per mirrored image, one `AWS::ECR::Repository`:

- `RepositoryName` `<prefix>/<namespace>/<name>`, as the config resolves it;
- the `AllowPushPull` policy statement for the IAM user in the `IAMUserName` parameter,
  only when that parameter is not empty (condition `HasIAMUser`), and the pull-only
  statements of `stack.pull_access` (see `mirror.template_access`);
- scan on push, AES256 or KMS encryption, the tag mutability of `stack.tag_mutability`
  (mutable by default: a mirrored tag moves when its source moves), a lifecycle rule
  expiring untagged images N days after their push;
- tags `managed-by: mirror` and `mirror:source: <registry>/<repository>`;
- `DeletionPolicy: Retain` and `UpdateReplacePolicy: Retain`: removing an image from the config
  or deleting the stack leaves the repository and its images in ECR;

`stack.replication` adds the registry's replication configuration (to the first stack of a
split set only: it is the registry's one). Resources are sorted by repository name, so
reordering the config changes nothing.

Compact: what every repository repeats is written once. The lifecycle policy text and the
repository policy (as JSON text around the principal, which only CloudFormation knows) sit in
`Mappings`; each repository names them with `!FindInMap` and joins the policy's parts with the
principal's ARN. With `stack.pull_access` and no IAM user, the policy is the pull-only
statements alone, a third shared text. There is no output per repository (CloudFormation allows
200 outputs; `mirror ensure-repo` reads the URIs from ECR). A repository costs about 760 bytes
of YAML instead of 1,140, so some 65 fit in the 51,200 bytes CloudFormation takes inline; larger
templates go through S3 (`mirror.stack.upload`), and past `stack.scale.repositories_per_stack`
the repositories are split over several stacks (`mirror.stack.split`).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from mirror import cfn_yaml
from mirror.config import Config, MirroredImage
from mirror.config_access import PullAccessFile
from mirror.template_access import (
    POLICY_VERSION,
    PULL_ACTIONS,
    mutability_properties,
    pull_statements,
    registry_resources,
)

IAM_USER_PARAMETER = "IAMUserName"
HAS_IAM_USER = "HasIAMUser"
# The IAM user name pattern `[a-zA-Z0-9-_]+`, with `*` so that an empty value (the default
# when the config names no IAM user) means "no repository policy".
IAM_USER_PATTERN = "[a-zA-Z0-9-_]*"
POLICY_SID = "AllowPushPull"
USER_ARN = f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:user/${{{IAM_USER_PARAMETER}}}"
# Seven actions: the first three pull, all seven together push.
PUSH_PULL_ACTIONS = (
    *PULL_ACTIONS,
    "ecr:PutImage",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
)
MANAGED_BY = ("managed-by", "mirror")
SOURCE_TAG = "mirror:source"
REPOSITORY_TYPE = "AWS::ECR::Repository"
# Texts every repository shares, in `Mappings`: (map, top-level key, second-level key).
SHARED = "Shared"
LIFECYCLE_MAPPING = (SHARED, "Lifecycle", "Text")
POLICY_HEAD = (SHARED, "Policy", "Head")
POLICY_TAIL = (SHARED, "Policy", "Tail")
PULL_ONLY_POLICY = (SHARED, "Policy", "PullOnly")
# Where the principal's ARN goes in the shared policy text (split there into head and tail).
_PRINCIPAL = "@principal@"

# CloudFormation's quota on a template sent inline (TemplateBody); from S3 (TemplateURL) it takes
# 1,000,000 bytes, more than the largest stack mirror renders: 490 repositories (the most
# `stack.scale.repositories_per_stack` allows) of 255-character names make some 690,000.
MAX_TEMPLATE_BODY_BYTES = 51_200

_HASH_CHARS = 8
_CAMEL_MAX = 200  # logical IDs and output keys may have 255 characters
_WORD = re.compile(r"[A-Za-z0-9]+")


def logical_id(repository: str) -> str:
    """The stack's logical ID for the ECR repository `repository`: readable, stable, unique.

    `dockerhub/library/python` -> `RepoDockerhubLibraryPython` + 8 hex digits of the name's
    SHA-256. The CamelCase part is for people reading the template or the stack events; the
    hash keeps names that CamelCase alike (`a-b/c`, `a/b-c`) apart. The ID is a resource's
    identity in the stack: were this scheme ever changed, CloudFormation would remove (and
    retain) every repository, then fail to create it again under the same name. Never change it.
    """
    camel = "".join(word[:1].upper() + word[1:] for word in _WORD.findall(repository))
    digest = hashlib.sha256(repository.encode()).hexdigest()[:_HASH_CHARS]
    return f"Repo{camel[:_CAMEL_MAX]}{digest}"


def stack_parameters(config: Config) -> dict[str, str]:
    """The parameter values `ensure-repo` deploys with: the config is the source of truth."""
    return {IAM_USER_PARAMETER: config.stack.iam_user or ""}


def lifecycle_policy_text(days: int) -> str:
    """ECR lifecycle policy JSON: expire untagged images `days` days after their push.

    In ECR, "untagged" includes the per-platform manifests of a multi-platform image, which
    are pushed by digest. As far as we know, ECR's lifecycle rules do not expire an image that
    a manifest list still references; this was not verified (no AWS account in the tests).
    """
    policy = {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"Expire untagged images {days} days after their push",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": days,
                },
                "action": {"type": "expire"},
            }
        ]
    }
    return json.dumps(policy, separators=(",", ":"))


def policy_document(principal: str, access: PullAccessFile | None) -> dict[str, Any]:
    """Every repository's policy: the `AllowPushPull` statement for the IAM user `principal`,
    then the pull-only statements of `stack.pull_access`.

    Statements that are the same for every repository belong here: the template writes this
    document once (see `policy_parts`).
    """
    push_pull = {
        "Sid": POLICY_SID,
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": list(PUSH_PULL_ACTIONS),
    }
    pull = pull_statements(access) if access is not None else []
    return {"Version": POLICY_VERSION, "Statement": [push_pull, *pull]}


def policy_parts(access: PullAccessFile | None) -> tuple[str, str]:
    """The policy's JSON text before and after the principal's ARN, which only CloudFormation
    knows (its partition and account)."""
    text = json.dumps(policy_document(_PRINCIPAL, access), separators=(",", ":"))
    head, tail = text.split(_PRINCIPAL)
    return head, tail


def pull_only_policy_text(access: PullAccessFile) -> str:
    """The policy when no IAM user is given: the pull-only statements alone."""
    policy = {"Version": POLICY_VERSION, "Statement": pull_statements(access)}
    return json.dumps(policy, separators=(",", ":"))


def _policy_text() -> dict[str, Any]:
    """The policy text of a repository: the shared parts joined around the IAM user's ARN."""
    return {
        "Fn::Join": [
            "",
            [
                {"Fn::FindInMap": list(POLICY_HEAD)},
                {"Fn::Sub": USER_ARN},
                {"Fn::FindInMap": list(POLICY_TAIL)},
            ],
        ]
    }


def _source(config: Config, image: MirroredImage) -> str:
    """Where the images come from, as a tag value (ECR takes at most 256 characters)."""
    return f"{config.source.written}/{image.repository}"[:256]


def _repository(config: Config, image: MirroredImage) -> dict[str, Any]:
    stack = config.stack
    return {
        "Type": REPOSITORY_TYPE,
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "RepositoryName": image.target_repository,
            **mutability_properties(stack),
            "ImageScanningConfiguration": {"ScanOnPush": stack.scan_on_push},
            "EncryptionConfiguration": {"EncryptionType": stack.encryption},
            **(
                {
                    "LifecyclePolicy": {
                        "LifecyclePolicyText": {"Fn::FindInMap": list(LIFECYCLE_MAPPING)}
                    }
                }
                if stack.untagged_expiry_days is not None
                else {}
            ),
            "RepositoryPolicyText": {
                "Fn::If": [
                    HAS_IAM_USER,
                    _policy_text(),
                    (
                        {"Fn::FindInMap": list(PULL_ONLY_POLICY)}
                        if stack.pull_access is not None
                        else {"Ref": "AWS::NoValue"}
                    ),
                ]
            },
            "Tags": [
                {"Key": MANAGED_BY[0], "Value": MANAGED_BY[1]},
                {"Key": SOURCE_TAG, "Value": _source(config, image)},
            ],
        },
    }


def render(config: Config) -> dict[str, Any]:
    """The template for `config` as a dict, intrinsic functions in their long form."""
    images = sorted(config.images, key=lambda image: image.target_repository)
    days = config.stack.untagged_expiry_days
    access = config.stack.pull_access
    head, tail = policy_parts(access)
    policy = {POLICY_HEAD[2]: head, POLICY_TAIL[2]: tail}
    if access is not None:
        policy[PULL_ONLY_POLICY[2]] = pull_only_policy_text(access)
    shared: dict[str, dict[str, str]] = {POLICY_HEAD[1]: policy}
    if days is not None:
        shared[LIFECYCLE_MAPPING[1]] = {LIFECYCLE_MAPPING[2]: lifecycle_policy_text(days)}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "ECR repositories of the images mirror keeps mirrored from Docker Hub",
        "Parameters": {
            IAM_USER_PARAMETER: {
                "Type": "String",
                "Default": config.stack.iam_user or "",
                "AllowedPattern": IAM_USER_PATTERN,
                "MaxLength": 64,
                "ConstraintDescription": "letters, digits, - and _ only",
                "Description": "IAM user granted push and pull on every repository"
                " (empty: no repository policy)",
            }
        },
        "Conditions": {
            HAS_IAM_USER: {"Fn::Not": [{"Fn::Equals": [{"Ref": IAM_USER_PARAMETER}, ""]}]}
        },
        "Mappings": {SHARED: dict(sorted(shared.items()))},
        "Resources": {
            **{logical_id(image.target_repository): _repository(config, image) for image in images},
            **registry_resources(config),
        },
    }


def _header(config: Config, *, large: bool) -> str:
    user = config.stack.iam_user or "<user, or empty for no policy>"
    bucket = config.stack.scale.template_bucket or "BUCKET"
    # `deploy` uploads a template over 51,200 bytes to the bucket it is given, as ensure-repo does
    upload = f" --s3-bucket {bucket}" if large else ""
    return (
        "# ECR repositories for the images `mirror` mirrors from Docker Hub.\n"
        "# Rendered by `mirror template` from the config file: regenerate it, do not edit it.\n"
        "# `mirror ensure-repo` deploys it; to deploy it by hand:\n"
        f"#   aws cloudformation deploy --template-file ecr.yml --stack-name {config.stack.name}"
        " \\\n"
        f"#     --capabilities CAPABILITY_NAMED_IAM{upload}"
        f" --parameter-overrides {IAM_USER_PARAMETER}={user}\n"
    )


def render_yaml(config: Config) -> str:
    """The template for `config` as YAML, after a comment saying how to deploy it."""
    body = cfn_yaml.dump(render(config))
    return _header(config, large=needs_upload(body)) + body


def load_template(text: str) -> dict[str, Any]:
    """Parse a YAML or JSON template; short forms (`!Ref x`, `!GetAtt a.b`) become long ones."""
    data = cfn_yaml.load(text)
    if not isinstance(data, dict):
        raise ValueError("a CloudFormation template is a mapping")
    return data


def repository_names(template: dict[str, Any]) -> dict[str, str]:
    """Logical ID -> repository name of every ECR repository in a (long form) template."""
    resources = template.get("Resources") or {}
    names: dict[str, str] = {}
    for key, resource in resources.items():
        if isinstance(resource, dict) and resource.get("Type") == REPOSITORY_TYPE:
            name = (resource.get("Properties") or {}).get("RepositoryName")
            if isinstance(name, str):
                names[key] = name
    return names


def own_bucket_name(account: str, region: str) -> str:
    """The bucket mirror creates for its templates in `account` and `region`."""
    return f"mirror-templates-{account}-{region}"


def needs_upload(body: str) -> bool:
    """True when the template is too large to send inline: it goes through S3."""
    return len(body.encode()) > MAX_TEMPLATE_BODY_BYTES
