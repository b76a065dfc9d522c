"""Source registry credentials: the lookup order, Docker's config file and credential helpers,
the Secrets Manager secret (on a real moto_server), and no secret in any message or repr."""

from __future__ import annotations

import base64
import json
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from mirror.config import Config, parse_config
from mirror.credentials import FoundCredentials, find_source_credentials
from mirror.errors import CredentialsError
from mirror.registry.auth import Credentials
from tests.world.moto import Moto, start_moto

HUB = "https://index.docker.io/v1/"
SECRET = "s3cr3t-T0KEN-never-shown"  # every secret in this file contains it


def config_for(
    registry: str = "docker.io", secret: str | None = None, *, hub_credentials: bool = False
) -> Config:
    source = f"{{registry: '{registry}'" + (f", credentials_secret: '{secret}'" if secret else "")
    source += ", use_docker_hub_credentials: true" if hub_credentials else ""
    return parse_config(f"version: 1\nsource: {source}}}\nimages: [{{image: alpine, tags: [x]}}]\n")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- a fake credential helper ------------------------------------------------------------

FAKE_HELPER = """\
#!{python} -S
import json, sys, time
known = {known!r}
url = sys.stdin.read()
with open({log!r}, "a") as log:
    log.write(url + "\\n")
mode = {mode!r}
if mode == "fail":
    print("oops {secret}")
    print("oops {secret}", file=sys.stderr)
    sys.exit(2)
if mode == "garbage":
    print("not json {secret}")
    sys.exit(0)
if mode == "sleep":
    print("{secret}", flush=True)
    time.sleep(30)
if sys.argv[1:] != ["get"] or url not in known:
    print("credentials not found in native keychain")
    sys.exit(1)
user, secret = known[url]
print(json.dumps({{"ServerURL": url, "Username": user, "Secret": secret}}))
"""


def write_helper(
    bin_dir: Path, name: str, known: dict[str, tuple[str, str]], mode: str = "normal"
) -> Path:
    """`docker-credential-<name>`: answers for the URLs in `known`, "not found" otherwise.
    Every URL it is asked for is appended to `<bin_dir>/<name>.log`."""
    log = bin_dir / f"{name}.log"
    script = bin_dir / f"docker-credential-{name}"
    script.write_text(
        FAKE_HELPER.format(
            python=sys.executable, known=known, log=str(log), mode=mode, secret=SECRET
        )
    )
    script.chmod(0o755)
    return log


@dataclass
class Machine:
    """A DOCKER_CONFIG directory, a PATH of fake helpers, a home without `.docker`."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def docker_dir(self) -> Path:
        return self.root / "docker"

    @property
    def home(self) -> Path:
        return self.root / "home"

    def docker_config(self, document: Any) -> None:
        text = document if isinstance(document, str) else json.dumps(document)
        (self.docker_dir / "config.json").write_text(text)

    def find(self, config: Config | None = None, **kwargs: Any) -> FoundCredentials:
        return find_source_credentials(
            config or config_for(), environ=self.env, home=self.home, **kwargs
        )


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    m = Machine(tmp_path)
    for directory in (m.bin, m.docker_dir, m.home):
        directory.mkdir()
    m.env = {"DOCKER_CONFIG": str(m.docker_dir), "PATH": str(m.bin), "HOME": str(m.home)}
    return m


def assert_no_secret(exc: BaseException) -> None:
    """Neither the message, the repr, nor the printed traceback (with its chain) shows it."""
    text = "".join(traceback.format_exception(exc))
    assert SECRET not in str(exc)
    assert SECRET not in repr(exc)
    assert SECRET not in text
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__


# --- the Docker config file: a table ---------------------------------------------------------

ALICE = ("alice", f"pw-{SECRET}")
BOB = ("bob", f"tok-{SECRET}")

# (id, source registry, config.json, helpers {name: known URLs}, (user, password) or None, origin)
FOUND_CASES: list[tuple[str, str, Any, dict[str, dict[str, tuple[str, str]]], Any, str]] = [
    ("no config file", "docker.io", None, {}, None, "anonymous"),
    ("empty config file", "docker.io", "", {}, None, "anonymous"),
    ("no entries", "docker.io", {"auths": {}}, {}, None, "anonymous"),
    (
        "auth under Docker Hub's key",
        "docker.io",
        {"auths": {HUB: {"auth": b64("alice:" + ALICE[1])}}},
        {},
        ALICE,
        "docker config (auths)",
    ),
    (
        "username and password under docker.io",
        "docker.io",
        {"auths": {"docker.io": {"username": "alice", "password": ALICE[1]}}},
        {},
        ALICE,
        "docker config (auths)",
    ),
    (
        "registry-1.docker.io with scheme and path",
        "docker.io",
        {"auths": {"https://registry-1.docker.io/v2/": {"auth": b64("alice:" + ALICE[1])}}},
        {},
        ALICE,
        "docker config (auths)",
    ),
    (
        "index.docker.io as the source",
        "index.docker.io",
        {"auths": {HUB: {"auth": b64("alice:" + ALICE[1])}}},
        {},
        ALICE,
        "docker config (auths)",
    ),
    (
        "auth wins over username/password, as in Docker",
        "docker.io",
        {"auths": {HUB: {"auth": b64("alice:" + ALICE[1]), "username": "x", "password": "y"}}},
        {},
        ALICE,
        "docker config (auths)",
    ),
    (
        "another registry's entry is not Docker Hub's",
        "docker.io",
        {"auths": {"quay.io": {"auth": b64("alice:" + ALICE[1])}}},
        {},
        None,
        "anonymous",
    ),
    (
        "Docker Hub's entry is not another registry's",
        "http://127.0.0.1:5000",
        {"auths": {HUB: {"auth": b64("alice:" + ALICE[1])}}},
        {},
        None,
        "anonymous",
    ),
    (
        "host:port source matches host:port key",
        "http://127.0.0.1:5000",
        {"auths": {"127.0.0.1:5000": {"auth": b64("bob:" + BOB[1])}}},
        {},
        BOB,
        "docker config (auths)",
    ),
    (
        "host:port source matches a URL key",
        "http://127.0.0.1:5000",
        {"auths": {"http://127.0.0.1:5000/v2/": {"auth": b64("bob:" + BOB[1])}}},
        {},
        BOB,
        "docker config (auths)",
    ),
    (
        "another port is another registry",
        "http://127.0.0.1:5000",
        {"auths": {"127.0.0.1:5001": {"auth": b64("bob:" + BOB[1])}}},
        {},
        None,
        "anonymous",
    ),
    (
        "Docker Hub's entry is not a local registry's",
        "http://127.0.0.1:5000",
        {"auths": {HUB: {"auth": b64("alice:" + ALICE[1])}}},
        {},
        None,
        "anonymous",
    ),
    (
        "quay.io by host",
        "quay.io",
        {"auths": {"https://quay.io": {"auth": b64("bob:" + BOB[1])}}},
        {},
        BOB,
        "docker config (auths)",
    ),
    (
        "credsStore knows Docker Hub",
        "docker.io",
        {"auths": {HUB: {}}, "credsStore": "fake"},
        {"fake": {HUB: ALICE}},
        ALICE,
        "docker config (credsStore: fake)",
    ),
    (
        "credsStore without an auths entry is asked for the usual key",
        "docker.io",
        {"credsStore": "fake"},
        {"fake": {HUB: ALICE}},
        ALICE,
        "docker config (credsStore: fake)",
    ),
    (
        "credsStore is asked for the key auths names",
        "docker.io",
        {"auths": {"docker.io": {}}, "credsStore": "fake"},
        {"fake": {"docker.io": ALICE}},
        ALICE,
        "docker config (credsStore: fake)",
    ),
    (
        "credsStore asked for host:port",
        "http://127.0.0.1:5000",
        {"credsStore": "fake"},
        {"fake": {"127.0.0.1:5000": BOB}},
        BOB,
        "docker config (credsStore: fake)",
    ),
    (
        "credHelpers for the host wins over credsStore",
        "docker.io",
        {"credHelpers": {"index.docker.io": "one"}, "credsStore": "two"},
        {"one": {HUB: ALICE}, "two": {HUB: BOB}},
        ALICE,
        "docker config (credHelpers: one)",
    ),
    (
        "credHelpers for another host is not used",
        "docker.io",
        {"credHelpers": {"quay.io": "one"}, "credsStore": "two"},
        {"one": {HUB: ALICE}, "two": {HUB: BOB}},
        BOB,
        "docker config (credsStore: two)",
    ),
    (
        "credHelpers for a local registry by host:port",
        "http://127.0.0.1:5000",
        {"credHelpers": {"127.0.0.1:5000": "one"}},
        {"one": {"127.0.0.1:5000": BOB}},
        BOB,
        "docker config (credHelpers: one)",
    ),
    (
        "credHelpers not found falls to credsStore",
        "docker.io",
        {"credHelpers": {"docker.io": "one"}, "credsStore": "two"},
        {"one": {}, "two": {HUB: BOB}},
        BOB,
        "docker config (credsStore: two)",
    ),
    (
        "a helper wins over a plain entry",
        "docker.io",
        {"auths": {HUB: {"auth": b64("bob:" + BOB[1])}}, "credsStore": "fake"},
        {"fake": {HUB: ALICE}},
        ALICE,
        "docker config (credsStore: fake)",
    ),
    (
        "helper not found falls to the plain entry",
        "docker.io",
        {"auths": {HUB: {"auth": b64("bob:" + BOB[1])}}, "credsStore": "fake"},
        {"fake": {}},
        BOB,
        "docker config (auths)",
    ),
    (
        "helper not installed falls to the plain entry",
        "docker.io",
        {"auths": {HUB: {"auth": b64("bob:" + BOB[1])}}, "credsStore": "desktop"},
        {},
        BOB,
        "docker config (auths)",
    ),
    (
        "helper not found and an empty entry: anonymous",
        "docker.io",
        {"auths": {HUB: {}}, "credsStore": "fake", "credHelpers": {"docker.io": "fake"}},
        {"fake": {"https://other/": ALICE}},
        None,
        "anonymous",
    ),
]


@pytest.mark.parametrize(
    ("registry", "document", "helpers", "expected", "origin"),
    [case[1:] for case in FOUND_CASES],
    ids=[case[0] for case in FOUND_CASES],
)
def test_docker_config(
    machine: Machine,
    registry: str,
    document: Any,
    helpers: dict[str, dict[str, tuple[str, str]]],
    expected: tuple[str, str] | None,
    origin: str,
) -> None:
    if document is not None:
        machine.docker_config(document)
    for name, known in helpers.items():
        write_helper(machine.bin, name, known)
    found = machine.find(config_for(registry))
    assert found.origin == origin
    assert found.credentials == (Credentials(*expected) if expected else None)
    assert SECRET not in repr(found) and SECRET not in str(found)
    assert SECRET not in found.describe()


def test_a_helper_gets_the_server_url_on_stdin(machine: Machine) -> None:
    machine.docker_config({"credsStore": "fake"})
    log = write_helper(machine.bin, "fake", {HUB: ALICE})
    assert machine.find().credentials == Credentials(*ALICE)
    assert log.read_text() == HUB + "\n"


def test_the_config_file_defaults_to_home(machine: Machine) -> None:
    del machine.env["DOCKER_CONFIG"]
    (machine.home / ".docker").mkdir()
    (machine.home / ".docker" / "config.json").write_text(
        json.dumps({"auths": {HUB: {"auth": b64("alice:" + ALICE[1])}}})
    )
    assert machine.find().credentials == Credentials(*ALICE)
    # HOME from the injected environment, when `home` is not given
    found = find_source_credentials(config_for(), environ=machine.env)
    assert found.credentials == Credentials(*ALICE)


def test_the_registry_in_the_log_line(machine: Machine) -> None:
    machine.docker_config({"auths": {"127.0.0.1:5000": {"auth": b64("bob:" + BOB[1])}}})
    found = machine.find(config_for("http://127.0.0.1:5000"))
    assert found.describe() == "127.0.0.1:5000 credentials: docker config (auths) (user bob)"
    assert machine.find().describe() == "Docker Hub credentials: anonymous"


# --- errors: one line, naming the source, never the secret ----------------------------------

# (id, config.json, helpers {name: mode}, expected text in the message)
ERROR_CASES: list[tuple[str, Any, dict[str, str], str]] = [
    ("not JSON", '{"auths": {"x": {"auth": "' + SECRET + '"}', {}, "is not valid JSON (line 1"),
    ("not an object", f'["{SECRET}"]', {}, "is not a JSON object"),
    ("auths not an object", {"auths": [SECRET]}, {}, "auths is not a JSON object"),
    (
        "identity token",
        {"auths": {HUB: {"auth": b64("alice:"), "identitytoken": SECRET}}},
        {},
        "holds an identity token, which mirror does not support",
    ),
    ("auth not base64", {"auths": {HUB: {"auth": SECRET + "!"}}}, {}, "is not base64"),
    ("auth without a colon", {"auths": {HUB: {"auth": b64(SECRET)}}}, {}, "is not base64"),
    ("auth not UTF-8", {"auths": {HUB: {"auth": "/w" + b64(SECRET)[2:]}}}, {}, "is not base64"),
    (
        "password without username",
        {"auths": {"docker.io": {"password": SECRET}}},
        {},
        "needs both a username and a password",
    ),
    ("credsStore not a string", {"credsStore": [SECRET]}, {}, "credsStore is not a string"),
    ("helper name with a slash", {"credsStore": "../x"}, {}, "is not a credential helper name"),
    (
        "helper fails",
        {"credsStore": "fake"},
        {"fake": "fail"},
        f"docker-credential-fake get {HUB} failed with exit status 2",
    ),
    (
        "helper talks nonsense",
        {"credsStore": "fake"},
        {"fake": "garbage"},
        "did not answer with JSON",
    ),
    (
        "helper hangs",
        {"credHelpers": {"docker.io": "fake"}},
        {"fake": "sleep"},
        f"docker-credential-fake get {HUB}: no answer after 0.5s",
    ),
]


@pytest.mark.parametrize(
    ("document", "helpers", "expected"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_docker_config_errors(
    machine: Machine, document: Any, helpers: dict[str, str], expected: str
) -> None:
    machine.docker_config(document)
    for name, mode in helpers.items():
        write_helper(machine.bin, name, {}, mode)
    with pytest.raises(CredentialsError) as info:
        machine.find(helper_timeout=0.5)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)
    assert_no_secret(info.value)


def test_a_helper_holding_an_identity_token_is_refused(machine: Machine) -> None:
    machine.docker_config({"credsStore": "fake"})
    write_helper(machine.bin, "fake", {HUB: ("<token>", SECRET)})
    with pytest.raises(CredentialsError, match="identity token") as info:
        machine.find()
    assert_no_secret(info.value)


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
