"""The template's parts for who may pull, tag mutability and replication, from `stack:`.

Pure: no I/O. `mirror.template` calls these while it renders each repository and the stack:

- `pull_statements`: the pull-only statements of `pull_access`, which `mirror.template` writes
  once into the shared policy text, after the push/pull statement (and alone when no IAM user
  is given). Accounts (by ID, which IAM reads as the account's root: no partition needed, so
  the text stays the same everywhere) and roles share one statement (`Principal` list); the
  Organization gets its own, `Principal` `*` narrowed by the condition `aws:PrincipalOrgID`.
- `mutability_properties`: `ImageTagMutability` and, for `immutable_with_exclusions`,
  `ImageTagMutabilityExclusionFilters` (ECR's wildcard filters of the tags that stay mutable).
- `registry_resources`: `AWS::ECR::ReplicationConfiguration`, one rule replicating the
  repositories whose names start with `<prefix>/` to every destination. It is the registry's
  (one per account and region): deploying it replaces whatever replication the registry had.
"""

from __future__ import annotations

from typing import Any

from mirror.config import Config, StackFile
from mirror.config_access import PullAccessFile

# The three actions that pull an image (and nothing else).
PULL_ACTIONS = (
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchGetImage",
    "ecr:BatchCheckLayerAvailability",
)
PULL_SID = "AllowPull"
ORGANIZATION_PULL_SID = "AllowPullInOrganization"
REPLICATION_ID = "RegistryReplication"
REPLICATION_TYPE = "AWS::ECR::ReplicationConfiguration"
POLICY_VERSION = "2012-10-17"
_MUTABILITY = {
    "mutable": "MUTABLE",
    "immutable": "IMMUTABLE",
    "immutable_with_exclusions": "IMMUTABLE_WITH_EXCLUSION",
}


def pull_statements(access: PullAccessFile) -> list[dict[str, Any]]:
    """The pull-only statements granting `access`: principals by ARN, then the organization."""
    principals = [*access.accounts, *access.roles]
    statements: list[dict[str, Any]] = []
    if principals:
        statements.append(
            {
                "Sid": PULL_SID,
                "Effect": "Allow",
                "Principal": {"AWS": principals},
                "Action": list(PULL_ACTIONS),
            }
        )
    if access.organization_id is not None:
        statements.append(
            {
                "Sid": ORGANIZATION_PULL_SID,
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": list(PULL_ACTIONS),
                "Condition": {"StringEquals": {"aws:PrincipalOrgID": access.organization_id}},
            }
        )
    return statements


def mutability_properties(stack: StackFile) -> dict[str, Any]:
    """`ImageTagMutability`, and the filters of the tags that stay mutable when there are."""
    properties: dict[str, Any] = {"ImageTagMutability": _MUTABILITY[stack.tag_mutability]}
    if stack.mutable_tags is not None:
        properties["ImageTagMutabilityExclusionFilters"] = [
            {
                "ImageTagMutabilityExclusionFilterType": "WILDCARD",
                "ImageTagMutabilityExclusionFilterValue": pattern,
            }
            for pattern in stack.mutable_tags
        ]
    return properties


def registry_resources(config: Config) -> dict[str, Any]:
    """The registry-wide resources the config asks for: its replication, or nothing."""
    if config.stack.replication is None:
        return {}
    destinations = [
        {
            "Region": destination.region,
            "RegistryId": destination.account or {"Ref": "AWS::AccountId"},
        }
        for destination in config.stack.replication
    ]
    prefix = config.prefix.strip("/") + "/"
    rule = {
        "Destinations": destinations,
        "RepositoryFilters": [{"Filter": prefix, "FilterType": "PREFIX_MATCH"}],
    }
    return {
        REPLICATION_ID: {
            "Type": REPLICATION_TYPE,
            "Properties": {"ReplicationConfiguration": {"Rules": [rule]}},
        }
    }
