"""Source registry credentials: the lookup order (the environment, the Docker config file,
the Secrets Manager secret on a real moto_server), and no secret in any message or repr. The
Docker config file's own reading is in `test_docker_config.py`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from mirror.credentials import FoundCredentials
from mirror.errors import CredentialsError
from mirror.registry.auth import Credentials
from tests.machine import (
    ALICE,
    BOB,
    HUB,
    SECRET,
    Machine,
    assert_no_secret,
    b64,
    config_for,
    write_helper,
)
from tests.world.moto import Moto, start_moto


def test_the_registry_in_the_log_line(machine: Machine) -> None:
    machine.docker_config({"auths": {"127.0.0.1:5000": {"auth": b64("bob:" + BOB[1])}}})
    found = machine.find(config_for("http://127.0.0.1:5000"))
    assert found.describe() == "127.0.0.1:5000 credentials: docker config (auths) (user bob)"
    assert machine.find().describe() == "Docker Hub credentials: anonymous"


# --- the environment ------------------------------------------------------------------------


def test_environment_wins_over_docker_config_and_secret(machine: Machine) -> None:
    machine.docker_config({"auths": {HUB: {"auth": b64("bob:" + BOB[1])}}})
    machine.env |= {"DOCKERHUB_USERNAME": "alice", "DOCKERHUB_TOKEN": ALICE[1]}
    # The secret is never read (no AWS is reachable here): the environment comes first.
    found = machine.find(config_for(secret="never/read"))
    assert found == FoundCredentials(Credentials(*ALICE), "environment")
    assert found.describe() == "Docker Hub credentials: environment (user alice)"
    assert SECRET not in repr(found) and SECRET not in str(found)


def test_docker_hub_credentials_stay_with_docker_hub(machine: Machine) -> None:
    """Another source gets neither the variables nor Docker Hub's config.json login; its own
    host's entry is all a helper is asked for."""
    machine.env |= {"DOCKERHUB_USERNAME": "alice", "DOCKERHUB_TOKEN": ALICE[1]}
    machine.docker_config({"credsStore": "fake", "auths": {HUB: {"auth": b64("bob:" + BOB[1])}}})
    log = write_helper(machine.bin, "fake", {HUB: ALICE})
    found = machine.find(config_for("http://127.0.0.1:5000"))
    assert found.credentials is None
    assert found.describe() == (
        "127.0.0.1:5000 credentials: anonymous (DOCKERHUB_USERNAME is for Docker Hub;"
        " see source.use_docker_hub_credentials)"
    )
    assert log.read_text() == "127.0.0.1:5000\n"


def test_the_opt_in_sends_docker_hub_credentials_to_another_source(machine: Machine) -> None:
    machine.env |= {"DOCKERHUB_USERNAME": "alice", "DOCKERHUB_TOKEN": ALICE[1]}
    found = machine.find(config_for("http://127.0.0.1:5000", hub_credentials=True))
    assert found.describe() == "127.0.0.1:5000 credentials: environment (user alice)"


def test_a_secret_is_not_read_for_a_source_it_may_not_go_to(machine: Machine) -> None:
    """A Config made in code, past the file's check: the lookup holds the rule itself (no AWS
    is reachable here, so reading the secret would fail)."""
    config = replace(config_for("quay.io"), credentials_secret="mirror/hub")
    assert machine.find(config).credentials is None


@pytest.mark.parametrize(
    ("variables", "missing"),
    [
        ({"DOCKERHUB_USERNAME": "alice"}, "DOCKERHUB_TOKEN"),
        ({"DOCKERHUB_TOKEN": SECRET}, "DOCKERHUB_USERNAME"),
        ({"DOCKERHUB_USERNAME": "alice", "DOCKERHUB_TOKEN": ""}, "DOCKERHUB_TOKEN"),
    ],
)
def test_half_the_environment_is_an_error(
    machine: Machine, variables: dict[str, str], missing: str
) -> None:
    machine.env |= variables
    with pytest.raises(CredentialsError, match=f"but {missing} is not") as info:
        machine.find()
    assert_no_secret(info.value)


def test_empty_variables_are_unset(machine: Machine) -> None:
    machine.env |= {"DOCKERHUB_USERNAME": "", "DOCKERHUB_TOKEN": ""}
    assert machine.find().origin == "anonymous"


# --- AWS Secrets Manager, on moto_server ---------------------------------------------------


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    server = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sm(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The secretsmanager client of a test; `mirror.aws.client` reaches moto through the env."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(key, raising=False)
    for key, value in moto.env.items():
        monkeypatch.setenv(key, value)
    return moto.client("secretsmanager")


def test_secret_is_read_when_nothing_else_is_set(machine: Machine, sm: Any) -> None:
    sm.create_secret(
        Name="mirror/hub-ok", SecretString=json.dumps({"username": "alice", "token": ALICE[1]})
    )
    found = machine.find(config_for(secret="mirror/hub-ok"))
    assert found == FoundCredentials(Credentials(*ALICE), "secret mirror/hub-ok")
    assert found.describe() == "Docker Hub credentials: secret mirror/hub-ok (user alice)"
    assert SECRET not in repr(found)


def test_the_opt_in_reads_the_secret_for_another_source(machine: Machine, sm: Any) -> None:
    sm.create_secret(
        Name="mirror/hub-quay", SecretString=json.dumps({"username": "alice", "token": ALICE[1]})
    )
    found = machine.find(config_for("quay.io", "mirror/hub-quay", hub_credentials=True))
    assert found.describe() == "quay.io credentials: secret mirror/hub-quay (user alice)"


def test_docker_config_wins_over_the_secret(machine: Machine, sm: Any) -> None:
    sm.create_secret(
        Name="mirror/hub-second", SecretString=json.dumps({"username": "x", "token": "y"})
    )
    machine.docker_config({"auths": {HUB: {"auth": b64("bob:" + BOB[1])}}})
    found = machine.find(config_for(secret="mirror/hub-second"))
    assert found.origin == "docker config (auths)"


SECRET_ERRORS = [
    ("not JSON", f'{{"username": "alice", "token": "{SECRET}"', "is not JSON"),
    ("not an object", json.dumps([SECRET]), "is not a JSON object"),
    ("no token", json.dumps({"username": "alice", "password": SECRET}), "has no 'token'"),
    ("empty username", json.dumps({"username": "", "token": SECRET}), "has no 'username'"),
    ("no keys", json.dumps({"user": SECRET}), "has no 'username' and no 'token'"),
]


@pytest.mark.parametrize(
    ("value", "expected"),
    [case[1:] for case in SECRET_ERRORS],
    ids=[case[0] for case in SECRET_ERRORS],
)
def test_a_bad_secret_is_named_never_shown(
    machine: Machine, sm: Any, request: pytest.FixtureRequest, value: str, expected: str
) -> None:
    name = f"mirror/bad-{request.node.callspec.id.replace(' ', '-')}"
    sm.create_secret(Name=name, SecretString=value)
    with pytest.raises(CredentialsError) as info:
        machine.find(config_for(secret=name))
    message = str(info.value)
    assert message.startswith(f"secret {name!r} ") and expected in message
    assert_no_secret(info.value)


def test_a_binary_secret_is_refused(machine: Machine, sm: Any) -> None:
    sm.create_secret(Name="mirror/binary", SecretBinary=SECRET.encode())
    with pytest.raises(CredentialsError, match="'mirror/binary' has no SecretString") as info:
        machine.find(config_for(secret="mirror/binary"))
    assert_no_secret(info.value)


def test_a_missing_secret_is_named(machine: Machine, sm: Any) -> None:
    with pytest.raises(CredentialsError) as info:
        machine.find(config_for(secret="mirror/nowhere"))
    assert str(info.value) == (
        "secret 'mirror/nowhere' (source.credentials_secret) does not exist in us-east-1"
    )
    assert_no_secret(info.value)
