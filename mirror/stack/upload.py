"""Templates over 51,200 bytes go to CloudFormation through S3, as `aws cloudformation deploy
--s3-bucket` sends them.

`upload_template(...)` uploads a template and returns the URL that CreateStack and
CreateChangeSet take as `TemplateURL`. The bucket is `stack.scale.template_bucket`, or the one
mirror keeps for itself, `mirror-templates-<account>-<region>`, created on first need: private
(public access blocked, ACLs disabled), versioned, encrypted (SSE-S3), its templates expiring
30 days after their upload (a stack keeps its own copy of its template; the bucket only hands
it over).

A template's key is `mirror/<stack>/<SHA-256 of the body>.yaml`: uploading the same template
again writes the same object.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from mirror.stack.events import Progress
from mirror.template import own_bucket_name

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_sts.client import STSClient

KEY_PREFIX = "mirror"
EXPIRY_DAYS = 30


@dataclass(frozen=True)
class TemplateStore:
    """Where templates too large to send inline go: the clients, and the bucket a config names."""

    s3: S3Client
    sts: STSClient
    region: str
    bucket: str | None  # stack.scale.template_bucket; None: mirror's own bucket


def upload_template(store: TemplateStore, stack_name: str, body: str, progress: Progress) -> str:
    """Upload the template of `stack_name`; its URL for CloudFormation's `TemplateURL`."""
    bucket = store.bucket or _own_bucket(store, progress)
    data = body.encode()
    key = f"{KEY_PREFIX}/{stack_name}/{hashlib.sha256(data).hexdigest()}.yaml"
    progress(f"uploading the template of stack {stack_name} ({len(data)} bytes) to s3://{bucket}")
    store.s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="text/yaml")
    return f"https://{bucket}.s3.{store.region}.amazonaws.com/{key}"


def _own_bucket(store: TemplateStore, progress: Progress) -> str:
    """mirror's bucket, created (private, versioned, encrypted) when it does not exist yet."""
    s3 = store.s3
    bucket = own_bucket_name(store.sts.get_caller_identity()["Account"], store.region)
    try:
        s3.head_bucket(Bucket=bucket)
        return bucket
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    progress(f"creating S3 bucket {bucket} for templates over 51,200 bytes")
    if store.region == "us-east-1":  # the one region S3 refuses a LocationConstraint for
        s3.create_bucket(Bucket=bucket, ObjectOwnership="BucketOwnerEnforced")
    else:
        s3.create_bucket(
            Bucket=bucket,
            ObjectOwnership="BucketOwnerEnforced",
            CreateBucketConfiguration={"LocationConstraint": store.region},  # type: ignore[typeddict-item]
        )
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "expire-templates",
                    "Status": "Enabled",
                    "Filter": {"Prefix": f"{KEY_PREFIX}/"},
                    "Expiration": {"Days": EXPIRY_DAYS},
                    "NoncurrentVersionExpiration": {"NoncurrentDays": EXPIRY_DAYS},
                }
            ]
        },
    )
    return bucket
