"""The AWS calls of a stack operation, and the SDK's errors made one line.

`AwsClients` holds the CloudFormation and ECR clients (built with `mirror.aws.client`, so
region, credentials and `AWS_ENDPOINT_URL` follow the SDK's conventions), and builds the S3
and STS ones when a template goes through S3. The reads answer what a plan asks: the stacks of
a set and the repositories each holds, the stack, its deployed template and repositories, ECR's
repositories and their image counts. `compute_change_set` creates an UPDATE change set and
waits until CloudFormation has computed it; `create_and_wait` and `execute_and_wait` carry an
operation out and follow it to its end. A template goes as `source`: `TemplateBody` inline, or
`TemplateURL` once uploaded. `aws_errors` turns every AWS error into one line of StackError or
CredentialsError.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from botocore.model import StringShape
from botocore.parsers import ResponseParserError

from mirror.aws import client
from mirror.config import Config
from mirror.errors import CredentialsError, StackError
from mirror.stack.events import Polling, Progress, StackEvents
from mirror.stack.plan import ChangeSet, Repository, is_no_changes
from mirror.stack.split import member_index
from mirror.stack.upload import TemplateStore
from mirror.template import REPOSITORY_TYPE, load_template, repository_names

if TYPE_CHECKING:
    from mypy_boto3_cloudformation.client import CloudFormationClient
    from mypy_boto3_cloudformation.literals import CapabilityType
    from mypy_boto3_cloudformation.type_defs import (
        ChangeTypeDef,
        ParameterTypeDef,
        StackTypeDef,
    )
    from mypy_boto3_ecr.client import ECRClient
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_sts.client import STSClient


@dataclass(frozen=True)
class AwsClients:
    """The clients a stack operation needs; S3 and STS only for templates over 51,200 bytes."""

    cloudformation: CloudFormationClient
    ecr: ECRClient
    s3: S3Client | None = None  # None: built when needed, in the same region
    sts: STSClient | None = None

    @classmethod
    def for_config(cls, config: Config) -> AwsClients:
        """Clients in `target.region`, or the SDK's own region, credentials and endpoint."""
        return cls(client("cloudformation", config.region), client("ecr", config.region))

    @property
    def region(self) -> str:
        return str(self.cloudformation.meta.region_name)

    def template_store(self, bucket: str | None) -> TemplateStore:
        """Where templates too large to send inline go (`bucket`, or mirror's own)."""
        return TemplateStore(
            self.s3 or client("s3", self.region),
            self.sts or client("sts", self.region),
            self.region,
            bucket,
        )


@contextmanager
def aws_errors(stack_name: str) -> Iterator[None]:
    """Turn the SDK's exceptions into one-line MirrorErrors."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise StackError(
            f"stack {stack_name}: {exc.operation_name} failed:"
            f" {error.get('Code', 'error')}: {error.get('Message', exc)}"
        ) from None
    except NoCredentialsError:
        raise CredentialsError(
            "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and"
            " AWS_SECRET_ACCESS_KEY, or run with an instance or CodeBuild role"
        ) from None
    except BotoCoreError as exc:
        raise StackError(f"stack {stack_name}: {exc}") from None
    except ResponseParserError:  # not a BotoCoreError; its text quotes the page it got
        raise StackError(
            f"stack {stack_name}: an answer that is not AWS's, which the SDK cannot read"
            " (a proxy's page, or an AWS_ENDPOINT_URL that is no AWS endpoint?)"
        ) from None


# --- reads -----------------------------------------------------------------------------------


def describe_stack(cf: CloudFormationClient, name: str) -> StackTypeDef | None:
    """The stack, or None when there is none of that name (deleted stacks do not count)."""
    try:
        stacks = cf.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        message = str(exc.response.get("Error", {}).get("Message", ""))
        if "does not exist" in message:
            return None
        raise
    return stacks[0] if stacks else None


def set_members(cf: CloudFormationClient, base: str) -> dict[int, str]:
    """Index in the set -> stack ID of the stacks of the set `base` that exist. Deleted stacks
    stay listed for 90 days and are often most of a busy account's: they are filtered out by
    CloudFormation, not read page by page (every status but DELETE_COMPLETE, from the API's
    own model)."""
    statuses = cf.meta.service_model.shape_for("StackStatus")
    assert isinstance(statuses, StringShape)
    living = [status for status in statuses.enum if status != "DELETE_COMPLETE"]
    members: dict[int, str] = {}
    for page in cf.get_paginator("list_stacks").paginate(StackStatusFilter=living):  # type: ignore[arg-type]  # from the model
        for summary in page["StackSummaries"]:
            index = member_index(base, summary["StackName"])
            deleted = summary["StackStatus"] == "DELETE_COMPLETE"  # an endpoint not filtering
            if index is not None and not deleted:
                members[index] = summary.get("StackId", summary["StackName"])
    return members


def deployed_templates(cf: CloudFormationClient, members: Mapping[int, str]) -> dict[int, Any]:
    """Index -> the template each stack of the set was deployed with: read once a run, for
    the split and for each stack's plan."""
    return {index: deployed_template(cf, stack_id) for index, stack_id in sorted(members.items())}


def held_repositories(templates: Mapping[int, Any]) -> dict[str, int]:
    """Repository name -> index of the stack of the set that holds it (its deployed template)."""
    held: dict[str, int] = {}
    for index, template in sorted(templates.items()):
        loaded = load_template(template) if isinstance(template, str) else template
        held.update({name: index for name in repository_names(loaded).values()})
    return held


def deployed_template(cf: CloudFormationClient, stack_id: str) -> Any:
    """The template the stack was deployed with: YAML text, or a dict for a JSON template."""
    return cf.get_template(StackName=stack_id, TemplateStage="Original")["TemplateBody"]


def stack_resources(cf: CloudFormationClient, stack_id: str) -> tuple[tuple[str, str, str], ...]:
    """(logical ID, type, physical ID or "") of every resource the stack holds; a summary
    without a logical ID (moto's, for a resource type it does not implement) names none."""
    return tuple(
        (r["LogicalResourceId"], r["ResourceType"], r.get("PhysicalResourceId", ""))
        for page in cf.get_paginator("list_stack_resources").paginate(StackName=stack_id)
        for r in page["StackResourceSummaries"]
        if r["LogicalResourceId"]
    )


def repositories_among(resources: Sequence[tuple[str, str, str]]) -> dict[str, str]:
    """Logical ID -> name of the ECR repositories among a stack's `resources`."""
    return {key: name for key, kind, name in resources if kind == REPOSITORY_TYPE and name}


def owned_repositories(cf: CloudFormationClient, stack_id: str) -> dict[str, str]:
    """Logical ID -> name of the ECR repositories the stack holds."""
    return repositories_among(stack_resources(cf, stack_id))


def ecr_repositories(ecr: ECRClient) -> dict[str, str]:
    """Name -> URI of every ECR repository in the account and region."""
    found: dict[str, str] = {}
    for page in ecr.get_paginator("describe_repositories").paginate():
        for repository in page["repositories"]:
            found[repository["repositoryName"]] = repository["repositoryUri"]
    return found


def image_count(ecr: ECRClient, name: str) -> int | None:
    """How many images the repository holds; None when it does not exist."""
    count = 0
    try:
        for page in ecr.get_paginator("describe_images").paginate(repositoryName=name):
            count += len(page["imageDetails"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "RepositoryNotFoundException":
            return None
        raise
    return count


def counted(
    ecr: ECRClient, names: Sequence[str], existing: Mapping[str, str]
) -> tuple[tuple[Repository, ...], tuple[str, ...]]:
    """(those of `names` in ECR, with their images counted; those not in ECR), both sorted."""
    found = tuple(
        Repository(name, existing[name], image_count(ecr, name))
        for name in sorted(names)
        if name in existing
    )
    return found, tuple(sorted(name for name in names if name not in existing))


# --- change sets -----------------------------------------------------------------------------


def parameter_list(parameters: Mapping[str, str]) -> list[ParameterTypeDef]:
    return [
        {"ParameterKey": key, "ParameterValue": value} for key, value in sorted(parameters.items())
    ]


def compute_change_set(
    cf: CloudFormationClient,
    stack_name: str,
    source: Mapping[str, str],
    parameters: Mapping[str, str],
    *,
    polling: Polling,
    progress: Progress,
    capabilities: Sequence[CapabilityType] = (),
    description: str = "mirror ensure-repo",
) -> tuple[ChangeSet, list[ChangeTypeDef]] | None:
    """An UPDATE change set and its changes, or None when nothing would change."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    name = f"mirror-{stamp}-{secrets.token_hex(2)}"
    progress(f"computing change set {name} for stack {stack_name}")
    try:
        change_set_id = cf.create_change_set(
            StackName=stack_name,  # moto finds a stack for a change set by name only
            ChangeSetName=name,
            ChangeSetType="UPDATE",
            **source,  # type: ignore[arg-type]
            Parameters=parameter_list(parameters),
            Capabilities=list(capabilities),
            Description=description,
        )["Id"]
    except ClientError as exc:
        if is_no_changes(exc.response.get("Error", {}).get("Message")):
            return None
        raise
    deadline = polling.clock() + polling.timeout
    while True:
        described = cf.describe_change_set(ChangeSetName=change_set_id)
        status = described["Status"]
        if status in ("CREATE_COMPLETE", "FAILED", "DELETE_COMPLETE", "DELETE_FAILED"):
            break
        if polling.clock() >= deadline:
            raise StackError(
                f"stack {stack_name}: change set {name} is still {status} after"
                f" {polling.timeout:.0f} s"
            )
        polling.sleep(polling.interval)
    if status != "CREATE_COMPLETE":
        reason = described.get("StatusReason", "")
        cf.delete_change_set(ChangeSetName=change_set_id)
        if is_no_changes(reason):
            return None
        raise StackError(f"stack {stack_name}: CloudFormation refused the change set: {reason}")
    changes = list(described.get("Changes", []))
    token = described.get("NextToken")
    while token:
        page = cf.describe_change_set(ChangeSetName=change_set_id, NextToken=token)
        changes += page.get("Changes", [])
        token = page.get("NextToken")
    return ChangeSet(change_set_id, name), changes


# --- operations, followed to their end ------------------------------------------------------


def create_and_wait(
    events: StackEvents,
    source: Mapping[str, str],
    parameters: Mapping[str, str],
    *,
    polling: Polling,
    capabilities: Sequence[CapabilityType] = (),
) -> None:
    """Create the stack `events` follows, showing its events until it is CREATE_COMPLETE."""
    events.progress(f"creating stack {events.stack_name}")
    stack_id = events.cloudformation.create_stack(
        StackName=events.stack_name,
        **source,  # type: ignore[arg-type]
        Parameters=parameter_list(parameters),
        Capabilities=list(capabilities),
    )["StackId"]
    events.wait(
        stack_id, operation="creation", success="CREATE_COMPLETE", seen=set(), polling=polling
    )


def execute_and_wait(
    events: StackEvents, stack_id: str, change_set: ChangeSet, *, polling: Polling
) -> None:
    """Execute a computed change set, showing the stack's events until it is UPDATE_COMPLETE."""
    seen = events.seen(stack_id)
    events.progress(f"executing change set {change_set.name}")
    events.cloudformation.execute_change_set(ChangeSetName=change_set.id)
    events.wait(stack_id, operation="update", success="UPDATE_COMPLETE", seen=seen, polling=polling)
