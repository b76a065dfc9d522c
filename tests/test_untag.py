"""Deleting tags (mirror/untag.py): on Amazon ECR through the ECR API's BatchDeleteImage by tag,
checked against the real moto_server; elsewhere through the registry DELETE (the test world's
ECR stand-in, covered by tests/test_over_time.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mirror.untag import BATCH, EcrApi, EcrApiUntag, unanswered, which_api
from tests.world.world import World

REPOSITORY = "dockerhub/acme/app"
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "size": 2,
        },
        "layers": [],
    }
)


@pytest.mark.parametrize(
    ("target_registry", "host", "expected"),
    [
        (None, "123456789012.dkr.ecr.eu-west-1.amazonaws.com", EcrApi("eu-west-1", "123456789012")),
        (None, "127.0.0.1:5000", EcrApi("us-east-1", None)),  # no target.registry: ECR itself
        (
            "https://210987654321.dkr.ecr.ap-southeast-2.amazonaws.com",
            "210987654321.dkr.ecr.ap-southeast-2.amazonaws.com",
            EcrApi("ap-southeast-2", "210987654321"),
        ),
        (
            "https://1.example",
            "123456789012.DKR.ECR-FIPS.us-gov-west-1.amazonaws.com:443",
            EcrApi("us-gov-west-1", "123456789012"),
        ),
        (
            "x",
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
            EcrApi("cn-north-1", "123456789012"),
        ),
        ("x", "123456789012.dkr-ecr.eu-central-1.on.aws", EcrApi("eu-central-1", "123456789012")),
        ("http://127.0.0.1:5000", "127.0.0.1:5000", None),  # the test world's ECR stand-in
        ("https://registry.example", "registry.example", None),
        ("x", "123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example", None),
        ("x", "12345.dkr.ecr.eu-west-1.amazonaws.com", None),  # not an account id
        ("x", "public.ecr.aws", None),
    ],
)
def test_the_ecr_api_is_chosen_for_amazon_ecr_only(
    target_registry: str | None, host: str, expected: EcrApi | None
) -> None:
    assert which_api(target_registry, host, "us-east-1") == expected


class Counting:
    """A boto3 ECR client that counts the BatchDeleteImage calls and their sizes."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.sizes: list[int] = []

    def batch_delete_image(self, **kwargs: Any) -> Any:
        self.sizes.append(len(kwargs["imageIds"]))
        return self.client.batch_delete_image(**kwargs)


def tags_in_moto(ecr: Any) -> dict[str, str]:
    """Tag -> digest of every tagged image in moto's repository."""
    listed = ecr.list_images(repositoryName=REPOSITORY)["imageIds"]
    return {image["imageTag"]: image["imageDigest"] for image in listed if "imageTag" in image}


@pytest.fixture
def ecr(fresh_world: World, aws_env: dict[str, str]) -> Any:
    assert fresh_world.moto is not None
    client = fresh_world.moto.client("ecr")
    client.create_repository(repositoryName=REPOSITORY)
    for tag in ("1.1", "stable"):
        client.put_image(repositoryName=REPOSITORY, imageManifest=MANIFEST, imageTag=tag)
    return client


def test_a_tag_deleted_through_the_ecr_api_leaves_the_image_and_its_other_tag(ecr: Any) -> None:
    before = tags_in_moto(ecr)
    assert set(before) == {"1.1", "stable"} and before["1.1"] == before["stable"]
    api = which_api(None, "123456789012.dkr.ecr.us-east-1.amazonaws.com", None)
    assert api is not None
    untag = EcrApiUntag(api)  # its client from the environment, as in a run: moto's
    assert untag(REPOSITORY, ["1.1"]) == {}
    assert tags_in_moto(ecr) == {"stable": before["stable"]}
    assert untag(REPOSITORY, ["stable"]) == {}  # the last tag: the image goes with it
    assert ecr.list_images(repositoryName=REPOSITORY)["imageIds"] == []


def test_a_tag_ecr_no_longer_has_is_gone_as_asked(ecr: Any) -> None:
    """moto answers `ImageNotFound` in `failures`, as ECR does: the tag is gone, which is what
    pruning wants (the registry path takes a 404 the same way)."""
    untag = EcrApiUntag(EcrApi("us-east-1", None))
    assert untag(REPOSITORY, ["1.1", "gone"]) == {}
    assert set(tags_in_moto(ecr)) == {"stable"}


def test_tags_go_in_batches_of_at_most_100(ecr: Any) -> None:
    counting = Counting(ecr)
    absent = [f"old-{n}" for n in range(2 * BATCH + 49)]
    failed = EcrApiUntag(EcrApi("us-east-1", None), counting)(REPOSITORY, ["1.1", *absent])
    assert counting.sizes == [BATCH, BATCH, 50]
    assert failed == {}  # the absent ones are gone already
    assert set(tags_in_moto(ecr)) == {"stable"}


def test_a_failed_call_is_the_line_of_each_of_its_tags(fresh_world: World, aws_env: Any) -> None:
    failed = EcrApiUntag(EcrApi("us-east-1", None))("dockerhub/no/such", ["1", "2"])
    assert set(failed) == {"1", "2"}
    assert failed["1"] == failed["2"]
    assert failed["1"].startswith("ECR BatchDeleteImage failed: RepositoryNotFoundException: ")
    assert "\n" not in failed["1"]


def test_no_region_is_each_tags_line_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    failed = EcrApiUntag(EcrApi(None, None))(REPOSITORY, ["1.1"])
    assert failed == {"1.1": failed["1.1"]} and failed["1.1"].startswith("no AWS region")


def test_an_answer_that_names_a_tag_nowhere_does_not_count_it_deleted() -> None:
    answer = {
        "imageIds": [{"imageTag": "a", "imageDigest": "sha256:0"}],
        "failures": [{"imageId": {"imageTag": "c"}, "failureCode": "X\x1b[31m"}],
    }
    assert unanswered(["a", "b", "c"], answer) == {
        "b": "ECR BatchDeleteImage did not say it deleted the tag",
        "c": "ECR BatchDeleteImage: X: no reason given",
    }
    assert set(unanswered(["a"], {"imageIds": ["not an id"]})) == {"a"}
