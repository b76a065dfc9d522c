"""boto3 clients that follow the AWS SDK's conventions.

Region and credentials come from the usual chain (AWS_PROFILE, AWS_REGION, instance and
CodeBuild roles); `AWS_ENDPOINT_URL` (and the per-service `AWS_ENDPOINT_URL_<SERVICE>`) point
every client at another endpoint, which is how the tests reach moto_server. boto3 is imported
lazily so that commands which never talk to AWS do not pay for it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from mirror.errors import MirrorError

if TYPE_CHECKING:
    import boto3


def session(region: str | None) -> boto3.Session:
    """A boto3 session in `region`, or else in the SDK's own region. boto3 reads
    AWS_DEFAULT_REGION and the profile; AWS_REGION (which CodeBuild and the other SDKs set)
    is honoured here too."""
    import boto3

    region = region or os.environ.get("AWS_REGION") or None
    return boto3.Session(region_name=region) if region else boto3.Session()


def client(service: str, region: str | None) -> Any:
    """A boto3 client for `service`; a clear error when no region is configured anywhere."""
    aws = session(region)
    if not aws.region_name:
        raise MirrorError(
            "no AWS region: set target.region in the config, AWS_REGION, or a profile's region"
        )
    return aws.client(service)  # type: ignore[call-overload]
