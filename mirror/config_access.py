"""The config's keys for who may pull, immutable tags and replication (`stack.*`), validated.

`StackAccessFile` is the part of `stack:` these keys make up; `config_schema.StackFile`
extends it. Every value that reaches a policy, a tag filter or a replication rule is checked
here, at load time, against the forms AWS accepts, so that a typo is one line naming the
field (exit 2) rather than a failed stack update minutes later:

- `pull_access`: 12-digit account IDs (quoted: YAML reads an unquoted one as a number, and
  one starting with 0 and made of 0-7 as an octal number), an Organization ID `o-...`, IAM
  role ARNs;
- `tag_mutability` `mutable | immutable | immutable_with_exclusions`, and `mutable_tags`,
  ECR's wildcard filters (`*` the only wildcard), required exactly with the last;
- `replication`: destinations, each a region and optionally another account.

Pure: no I/O. `replication_problem` checks what needs the `target:` section too.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

MAX_PRINCIPALS = 50  # accounts, and roles
MAX_ROLE_ARN_CHARS = 2_048  # IAM's limit
MAX_POLICY_CHARS = 10_240  # ECR's limit on a repository policy
# The policy's statements, keys and the IAM user's longest ARN, without the pull principals:
# 842 characters measured with the longest values; the principals get what is left.
_POLICY_OVERHEAD = 1_000
MAX_MUTABLE_TAG_FILTERS = 5  # ECR's limit on ImageTagMutabilityExclusionFilters
MAX_REPLICATION_DESTINATIONS = 25  # ECR's limit across a registry's replication rules

_ACCOUNT = re.compile(r"\d{12}")
_ORGANIZATION = re.compile(r"o-[a-z0-9]{10,32}")
# arn:<partition>:iam::<account>:role/<path/>name; names and paths take [\w+=,.@-].
_ROLE_ARN = re.compile(
    r"arn:aws(?:-[a-z]+)*:iam::\d{12}:role/(?:[A-Za-z0-9_+=,.@-]+/)*[A-Za-z0-9_+=,.@-]{1,64}"
)
_TAG_FILTER = re.compile(r"[0-9A-Za-z._*-]{1,128}")  # ECR's exclusion filter pattern
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")

TagMutability = Literal["mutable", "immutable", "immutable_with_exclusions"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _text(value: Any, what: str, pattern: re.Pattern[str], form: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(
            f"write the {what} in quotes ('{value}'): YAML reads an unquoted one as a number"
        )
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"{value!r} is not {form}")
    return value


def _account(value: Any) -> str:
    return _text(value, "account ID", _ACCOUNT, "an AWS account ID (12 digits, quoted)")


def _organization(value: Any) -> str:
    return _text(
        value, "Organization ID", _ORGANIZATION, "an AWS Organization ID (o- and 10-32 characters)"
    )


def _role(value: Any) -> str:
    if isinstance(value, str) and len(value) > MAX_ROLE_ARN_CHARS:
        raise ValueError(f"a role ARN has at most {MAX_ROLE_ARN_CHARS} characters")
    return _text(
        value, "role ARN", _ROLE_ARN, "an IAM role ARN (arn:aws:iam::<account>:role/<name>)"
    )


def _tag_filter(value: Any) -> str:
    return _text(
        value, "tag filter", _TAG_FILTER, "a tag filter (1-128 of letters, digits, . _ - and *)"
    )


def _region(value: Any) -> str:
    return _text(value, "region", _REGION, "an AWS region name (such as eu-west-1)")


AccountId = Annotated[str, BeforeValidator(_account)]
OrganizationId = Annotated[str, BeforeValidator(_organization)]
RoleArn = Annotated[str, BeforeValidator(_role)]
TagFilter = Annotated[str, BeforeValidator(_tag_filter)]
Region = Annotated[str, BeforeValidator(_region)]


def _unique(values: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError("the list names the same value twice")
    return values


class PullAccessFile(_Strict):
    """Who else may pull every mirrored repository: accounts, an organization, roles."""

    accounts: Annotated[tuple[AccountId, ...], Field(max_length=MAX_PRINCIPALS)] = ()
    organization_id: OrganizationId | None = None
    roles: Annotated[tuple[RoleArn, ...], Field(max_length=MAX_PRINCIPALS)] = ()

    _unique = field_validator("accounts", "roles")(_unique)

    @model_validator(mode="after")
    def _grants_something(self) -> PullAccessFile:
        if not (self.accounts or self.organization_id or self.roles):
            raise ValueError("pull_access needs at least one of accounts, organization_id, roles")
        longest_partition = "aws-us-gov"
        principals = [f"arn:{longest_partition}:iam::{a}:root" for a in self.accounts]
        size = sum(len(arn) + 4 for arn in [*principals, *self.roles])  # quotes, comma, space
        if size > MAX_POLICY_CHARS - _POLICY_OVERHEAD:
            raise ValueError(
                f"the accounts and roles take {size} characters of the repository policy, which"
                f" ECR caps at {MAX_POLICY_CHARS}: grant an organization_id instead"
            )
        return self


class ReplicationDestinationFile(_Strict):
    """A registry the mirrored repositories are replicated to: a region, another account."""

    region: Region
    account: AccountId | None = None  # None: this account


class StackAccessFile(_Strict):
    """`stack:` keys for pull access, tag mutability and replication (see module docstring)."""

    pull_access: PullAccessFile | None = None
    tag_mutability: TagMutability = "mutable"
    mutable_tags: (
        Annotated[tuple[TagFilter, ...], Field(min_length=1, max_length=MAX_MUTABLE_TAG_FILTERS)]
        | None
    ) = None
    replication: (
        Annotated[
            tuple[ReplicationDestinationFile, ...],
            Field(min_length=1, max_length=MAX_REPLICATION_DESTINATIONS),
        ]
        | None
    ) = None

    _unique = field_validator("mutable_tags", "replication")(_unique)

    @model_validator(mode="after")
    def _mutable_tags_go_with_exclusions(self) -> StackAccessFile:
        with_exclusions = self.tag_mutability == "immutable_with_exclusions"
        if with_exclusions and self.mutable_tags is None:
            raise ValueError(
                "tag_mutability immutable_with_exclusions needs mutable_tags, the filters of"
                " the tags that may move (such as latest, *-slim)"
            )
        if not with_exclusions and self.mutable_tags is not None:
            raise ValueError(
                f"mutable_tags applies only with tag_mutability immutable_with_exclusions,"
                f" not {self.tag_mutability}"
            )
        return self

    def tag_is_immutable(self, tag: str) -> bool:
        """Does ECR refuse to move `tag` in a repository of this stack? (`*` in a filter
        matches any characters, the only wildcard ECR's filters have: fnmatch's `?` and
        `[...]` cannot occur in a valid filter.)"""
        if self.tag_mutability == "mutable":
            return False
        return not any(fnmatchcase(tag, pattern) for pattern in self.mutable_tags or ())


def replication_problem(
    replication: tuple[ReplicationDestinationFile, ...] | None, prefix: str, region: str | None
) -> str | None:
    """Why the replication cannot be deployed with this `target:`, or None.

    Replication is filtered to the prefix: without one it would take in every repository of
    the registry. A destination in this account and this region is the source itself.
    """
    if replication is None:
        return None
    if not prefix.strip("/"):
        return (
            "replication is filtered to target.prefix, and the prefix is empty: it would"
            " replicate every repository of the registry; set target.prefix"
        )
    for destination in replication:
        if destination.account is None and destination.region == region:
            return (
                f"{region} is target.region: a registry does not replicate to itself;"
                " name another region or an account"
            )
    return None
