"""The names and IAM policies of the scheduled job's stack (`mirror.schedule_template`).

Pure: no I/O. `build_policy` is what the CodeBuild build may do, least privilege: every
statement names its resources, except the two actions AWS authorizes on `*` only
(UNSCOPED_ACTIONS). `schedule_policy` lets the schedule start the one project. ARNs are
`Fn::Sub` strings of names chosen here, readable in the template as they stand.
"""

from __future__ import annotations

from typing import Any

from mirror.config import Config
from mirror.config_schedule import DEFAULT_IMAGE
from mirror.template import PUSH_PULL_ACTIONS, needs_upload, own_bucket_name, render_yaml

METRICS_NAMESPACE = "mirror"  # where `mirror sync --metrics cloudwatch` publishes
SCHEDULE_NAME_MAX = 64  # EventBridge Scheduler's limit on a schedule's name

# What `mirror sync` (and the `ensure-repo` it runs first) does to the mirror's repositories:
# the registry API's pull and push, tag listing, and CloudFormation's ECR handler.
REPOSITORY_ACTIONS = (
    *PUSH_PULL_ACTIONS,
    "ecr:ListImages",
    "ecr:DescribeImages",
    "ecr:DescribeRepositories",
    "ecr:CreateRepository",
    "ecr:TagResource",
    "ecr:UntagResource",
    "ecr:ListTagsForResource",
    "ecr:GetLifecyclePolicy",
    "ecr:PutLifecyclePolicy",
    "ecr:DeleteLifecyclePolicy",
    "ecr:GetRepositoryPolicy",
    "ecr:SetRepositoryPolicy",
    "ecr:DeleteRepositoryPolicy",
    "ecr:PutImageScanningConfiguration",
    "ecr:PutImageTagMutability",
)
STACK_ACTIONS = (
    "cloudformation:DescribeStacks",
    "cloudformation:DescribeStackEvents",
    "cloudformation:ListStackResources",
    "cloudformation:GetTemplate",
    "cloudformation:CreateStack",
    "cloudformation:CreateChangeSet",
    "cloudformation:DescribeChangeSet",
    "cloudformation:ExecuteChangeSet",
    "cloudformation:DeleteChangeSet",
)
# The only statements with `Resource: "*"`: these actions have no resource to narrow to
# (GetAuthorizationToken; ListStacks, which ensure-repo uses to find the stacks of a split
# set; PutMetricData, narrowed by its namespace condition instead).
UNSCOPED_ACTIONS = frozenset(
    {"ecr:GetAuthorizationToken", "cloudformation:ListStacks", "cloudwatch:PutMetricData"}
)
# What ensure-repo does to the S3 bucket of a template over 51,200 bytes (docs/stack-at-scale.md):
# create it private, versioned, encrypted (its own bucket), then write and read the template.
TEMPLATE_BUCKET_ACTIONS = (
    "s3:CreateBucket",
    "s3:ListBucket",
    "s3:PutBucketOwnershipControls",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutEncryptionConfiguration",
    "s3:PutBucketVersioning",
    "s3:PutLifecycleConfiguration",
)
TEMPLATE_OBJECT_ACTIONS = ("s3:PutObject", "s3:GetObject")


def _deletion(config: Config) -> tuple[str, ...]:
    """Untagging (a tag DELETE is `ecr:BatchDeleteImage`), granted only when an entry prunes
    or keeps backups (docs/over-time.md): otherwise the job never deletes."""
    deletes = any(image.over_time.keeps_ledger for image in config.images)
    return ("ecr:BatchDeleteImage",) if deletes else ()


def _template_bucket(config: Config) -> list[dict[str, Any]]:
    """The template bucket's statements, when the repository template goes through S3."""
    if not needs_upload(render_yaml(config)):
        return []
    bucket = config.stack.scale.template_bucket or own_bucket_name(
        "${AWS::AccountId}", "${AWS::Region}"
    )
    bucket_arn = f"arn:${{AWS::Partition}}:s3:::{bucket}"
    return [
        statement("TemplateBucket", TEMPLATE_BUCKET_ACTIONS, [{"Fn::Sub": bucket_arn}]),
        statement("Templates", TEMPLATE_OBJECT_ACTIONS, [{"Fn::Sub": f"{bucket_arn}/*"}]),
    ]


def stack_name(config: Config) -> str:
    """The schedule stack's name: `schedule.stack_name`, or `<stack.name>-schedule`."""
    return config.schedule.stack_name or f"{config.stack.name}-schedule"[:128]


def arn(service: str, resource: str) -> dict[str, str]:
    """`resource`'s ARN in this account and region, as `Fn::Sub` resolves it."""
    account = "${AWS::Region}:${AWS::AccountId}"
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:{service}:{account}:{resource}"}


def project_arn(config: Config) -> dict[str, str]:
    """The CodeBuild project's ARN: the project is named as the stack."""
    return arn("codebuild", f"project/{stack_name(config)}")


def log_group_name(config: Config) -> str:
    """The build's own log group."""
    return f"/aws/codebuild/{stack_name(config)}"


def tool_image(config: Config) -> str | None:
    """The mirror's container image (`repository[:tag]` in this account's ECR), or None (pip)."""
    if config.schedule.pip is not None:
        return None
    return config.schedule.image or DEFAULT_IMAGE


def statement(sid: str, actions: tuple[str, ...], resources: list[Any]) -> dict[str, Any]:
    """An Allow statement."""
    return {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": resources}


def build_policy(config: Config) -> dict[str, Any]:
    """What the build may do, and nothing more. Every statement names its resources, except
    the actions AWS authorizes on `*` only (UNSCOPED_ACTIONS)."""
    prefix = config.prefix.strip("/")
    repositories = f"repository/{prefix}/*" if prefix else "repository/*"
    statements = [
        statement(
            "OwnLogGroup",
            ("logs:CreateLogStream", "logs:PutLogEvents"),
            [arn("logs", f"log-group:{log_group_name(config)}:*")],
        ),
        statement("EcrToken", ("ecr:GetAuthorizationToken",), ["*"]),
        statement(
            "MirrorRepositories",
            (*REPOSITORY_ACTIONS, *_deletion(config)),
            [arn("ecr", repositories)],
        ),
        # ensure-repo lists the region's repositories to find names taken outside its stack;
        # a DescribeRepositories without names is authorized against repository/*.
        statement("ListRepositories", ("ecr:DescribeRepositories",), [arn("ecr", "repository/*")]),
        statement(
            "RepositoryStack",
            STACK_ACTIONS,
            [  # and the further stacks of a split set, `<name>-2`, `<name>-3`...
                arn("cloudformation", f"stack/{config.stack.name}/*"),
                arn("cloudformation", f"stack/{config.stack.name}-*/*"),
            ],
        ),
        statement("ListStacks", ("cloudformation:ListStacks",), ["*"]),
        *_template_bucket(config),
        {
            **statement("Metrics", ("cloudwatch:PutMetricData",), ["*"]),
            "Condition": {"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
        },
    ]
    secret = config.credentials_secret
    if secret is not None:
        resource = (
            secret
            if secret.startswith("arn:")
            else arn("secretsmanager", f"secret:{secret}-??????")
        )
        statements.append(
            statement("DockerHubSecret", ("secretsmanager:GetSecretValue",), [resource])
        )
    image = tool_image(config)
    if image is not None:
        statements.append(
            statement(
                "ToolImage",
                PUSH_PULL_ACTIONS[:3],  # pull only
                [arn("ecr", f"repository/{image.partition(':')[0]}")],
            )
        )
    if config.schedule.shards > 1:  # the batch build starts its shards with this role
        statements.append(
            statement(
                "BatchShards",
                ("codebuild:StartBuild", "codebuild:StopBuild", "codebuild:RetryBuild"),
                [project_arn(config)],
            )
        )
    return {"Version": "2012-10-17", "Statement": statements}


def role(service: str, policy_name: str, policy: dict[str, Any]) -> dict[str, Any]:
    """An IAM role that `service` may assume from this account only, with `policy` inline."""
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": f"{service}.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                        "Condition": {
                            "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
                        },
                    }
                ],
            },
            "Policies": [{"PolicyName": policy_name, "PolicyDocument": policy}],
        },
    }


def schedule_policy(config: Config) -> dict[str, Any]:
    """What the schedule may do: start this one project (a batch build with shards)."""
    start = "codebuild:StartBuildBatch" if config.schedule.shards > 1 else "codebuild:StartBuild"
    return {
        "Version": "2012-10-17",
        "Statement": [statement("StartSync", (start,), [project_arn(config)])],
    }
