"""Docker's config file and its credential helpers (`mirror.docker_config`): a registry's
login read in Docker's order (a table), errors in one line that never show the secret, and
logins written as `docker login` writes them (locked, through a symlink only within its
directory, keeping the owner) or stored through a helper."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mirror.config import parse_config
from mirror.credentials import find_source_credentials
from mirror.docker_config import store_docker_login
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
from tests.runner import basic_auth

# --- reading a registry's login: a table ----------------------------------------------------


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


# --- writing a login (`mirror login`) ------------------------------------------------------

LOGIN = Credentials("AWS", "s3cr3t-token")  # an ECR token, as `mirror login` stores it


def test_login_writes_a_private_config_file(tmp_path: Path) -> None:
    where = store_docker_login(
        "ecr.example:5000", LOGIN, environ={"DOCKER_CONFIG": str(tmp_path / "d")}
    )
    path = tmp_path / "d" / "config.json"
    assert where == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "auths": {"ecr.example:5000": {"auth": basic_auth(LOGIN)}}
    }
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temporary left


def test_login_keeps_the_other_entries(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    before = {
        "auths": {
            "https://index.docker.io/v1/": {"auth": "dXNlcjpodWI="},
            "ecr.example:5000": {"auth": "QVdTOm9sZA=="},
        },
        "HttpHeaders": {"User-Agent": "x"},
        "credHelpers": {"other.example": "pass"},
    }
    path.write_text(json.dumps(before))
    store_docker_login("ecr.example:5000", LOGIN, environ={"DOCKER_CONFIG": str(tmp_path)})
    after = json.loads(path.read_text())
    assert after["auths"]["ecr.example:5000"] == {"auth": basic_auth(LOGIN)}
    assert after["auths"]["https://index.docker.io/v1/"] == {"auth": "dXNlcjpodWI="}
    assert after["HttpHeaders"] == before["HttpHeaders"]
    assert after["credHelpers"] == before["credHelpers"]


def test_login_does_not_clobber_a_broken_config(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"auths": {"x": {"auth": "c2VjcmV0"}')  # cut short
    with pytest.raises(CredentialsError) as caught:
        store_docker_login("ecr.example", LOGIN, environ={"DOCKER_CONFIG": str(tmp_path)})
    assert "not valid JSON" in str(caught.value) and "c2VjcmV0" not in str(caught.value)
    assert path.read_text() == '{"auths": {"x": {"auth": "c2VjcmV0"}'


def _fake_helper(directory: Path, name: str, exit_code: int = 0) -> Path:
    """A `docker-credential-<name>` that records its argv and stdin."""
    record = directory / f"{name}.record"
    script = directory / f"docker-credential-{name}"
    script.write_text(
        f'#!/bin/sh\necho "$1" > {record}.argv\ncat > {record}.stdin\nexit {exit_code}\n'
    )
    script.chmod(0o755)
    return record


@pytest.mark.parametrize("key", ["credsStore", "credHelpers"])
def test_login_stores_through_the_configured_helper(tmp_path: Path, key: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = _fake_helper(bin_dir, "fake")
    config = {"credsStore": "fake"} if key == "credsStore" else {"credHelpers": {"ecr.x": "fake"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    environ = {"DOCKER_CONFIG": str(tmp_path), "PATH": f"{bin_dir}:/usr/bin:/bin"}
    assert store_docker_login("ecr.x", LOGIN, environ=environ) == "docker-credential-fake"
    assert Path(f"{record}.argv").read_text().strip() == "store"
    assert json.loads(Path(f"{record}.stdin").read_text()) == {
        "ServerURL": "ecr.x",
        "Username": "AWS",
        "Secret": "s3cr3t-token",
    }
    assert json.loads((tmp_path / "config.json").read_text()) == config  # untouched


def test_login_helper_failure_is_one_line_without_the_secret(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_helper(bin_dir, "broken", exit_code=3)
    (tmp_path / "config.json").write_text('{"credsStore": "broken"}')
    environ = {"DOCKER_CONFIG": str(tmp_path), "PATH": f"{bin_dir}:/usr/bin:/bin"}
    with pytest.raises(CredentialsError) as caught:
        store_docker_login("ecr.x", LOGIN, environ=environ)
    assert str(caught.value) == "docker-credential-broken store ecr.x failed with exit status 3"


def test_login_writes_through_a_symlink_within_its_directory(tmp_path: Path) -> None:
    """As Docker does: the link stays, the file it names (beside it) gets the login."""
    real = tmp_path / "config.real.json"
    real.write_text('{"auths": {"other.example": {"auth": "b3RoZXI6eA=="}}}')
    (tmp_path / "config.json").symlink_to("config.real.json")
    store_docker_login("ecr.x", LOGIN, environ={"DOCKER_CONFIG": str(tmp_path)})
    assert (tmp_path / "config.json").is_symlink()
    assert json.loads(real.read_text())["auths"] == {
        "other.example": {"auth": "b3RoZXI6eA=="},
        "ecr.x": {"auth": basic_auth(LOGIN)},
    }
    assert stat.S_IMODE(real.stat().st_mode) == 0o600


@pytest.mark.parametrize("dangling", [False, True])
def test_login_refuses_a_symlink_out_of_its_directory(tmp_path: Path, dangling: bool) -> None:
    """A config.json linked to a file elsewhere (`/etc/...` when run under sudo) is never
    written, nor created when the link dangles."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / "passwd"
    if not dangling:
        victim.write_text("root:x:0:0\n")
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").symlink_to(victim)
    with pytest.raises(CredentialsError) as caught:
        store_docker_login("ecr.x", LOGIN, environ={"DOCKER_CONFIG": str(docker)})
    assert "outside its directory" in str(caught.value)
    assert str(docker / "config.json") in str(caught.value)
    assert victim.exists() != dangling
    if not dangling:
        assert victim.read_text() == "root:x:0:0\n"
    assert sorted(p.name for p in docker.iterdir()) == ["config.json"]  # no temporary left


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_login_under_sudo_keeps_the_owner_of_the_file(tmp_path: Path) -> None:
    """`sudo mirror login` with a user's DOCKER_CONFIG: the file stays the user's (as Docker
    does), readable by that user only."""
    path = tmp_path / "config.json"
    path.write_text("{}")
    os.chown(path, 4242, 4343)
    environ = {"DOCKER_CONFIG": str(tmp_path), "SUDO_UID": "4242", "SUDO_GID": "4343"}
    store_docker_login("ecr.x", LOGIN, environ=environ)
    after = path.stat()
    assert (after.st_uid, after.st_gid) == (4242, 4343)
    assert stat.S_IMODE(after.st_mode) == 0o600
    assert json.loads(path.read_text())["auths"]["ecr.x"] == {"auth": basic_auth(LOGIN)}


def test_login_refuses_a_config_that_is_not_a_regular_file(tmp_path: Path) -> None:
    """A FIFO at config.json would hang a plain read: refused at once."""
    os.mkfifo(tmp_path / "config.json")
    with pytest.raises(CredentialsError, match="not a regular file"):
        store_docker_login("ecr.x", LOGIN, environ={"DOCKER_CONFIG": str(tmp_path)})


@pytest.mark.parametrize("name", ["../../bin/sh", "-x", "a b", "x;rm", ".hidden", "é"])
def test_login_and_the_reader_refuse_the_same_helper_names(tmp_path: Path, name: str) -> None:
    """One validator: what the credentials lookup refuses, `mirror login` refuses too,
    with the same message, before anything runs."""
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": name}))
    environ = {"DOCKER_CONFIG": str(tmp_path), "PATH": "/usr/bin:/bin"}
    with pytest.raises(CredentialsError) as stored:
        store_docker_login("ecr.x", LOGIN, environ=environ)
    config = parse_config("version: 1\nimages: [{image: alpine, tags: [x]}]\n")
    with pytest.raises(CredentialsError) as read:
        find_source_credentials(config, environ=environ)
    assert str(stored.value) == str(read.value) == f"{name!r} is not a credential helper name"


_CONCURRENT_LOGIN = """
import sys
from mirror.docker_config import store_docker_login
from mirror.registry.auth import Credentials
directory, worker, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
for n in range(rounds):
    store_docker_login(
        f"ecr-{worker}-{n}.example", Credentials("AWS", "pw"), environ={"DOCKER_CONFIG": directory}
    )
"""


def test_concurrent_logins_lose_no_entry(tmp_path: Path) -> None:
    """Parallel build steps logging in at once: every entry survives (without the lock,
    read-modify-write races lose most of them)."""
    workers, rounds = 6, 15
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _CONCURRENT_LOGIN, str(tmp_path), str(w), str(rounds)]
        )
        for w in range(workers)
    ]
    assert [p.wait(timeout=120) for p in processes] == [0] * workers
    auths = json.loads((tmp_path / "config.json").read_text())["auths"]
    expected = {f"ecr-{w}-{n}.example" for w in range(workers) for n in range(rounds)}
    assert set(auths) == expected, f"{len(expected - set(auths))} entries lost"


_ENV_DUMPER = """#!{python} -S
import json, os, sys
sys.stdin.read()
with open({record!r}, "w") as out:
    json.dump(dict(os.environ), out)
if sys.argv[1] == "get":
    print("credentials not found in native keychain")
    sys.exit(1)
"""


def test_credential_helpers_get_a_minimal_environment(tmp_path: Path) -> None:
    """`get` (the Docker Hub lookup) and `store` (`mirror login`) both run the helper with
    what it needs (PATH, HOME, DOCKER_CONFIG, XDG_*, D-Bus) and never the AWS keys or the
    Docker Hub token."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "helper-env.json"
    helper = bin_dir / "docker-credential-dump"
    helper.write_text(_ENV_DUMPER.format(python=sys.executable, record=str(record)))
    helper.chmod(0o755)
    (tmp_path / "config.json").write_text('{"credsStore": "dump"}')
    environ = {
        "DOCKER_CONFIG": str(tmp_path),
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_RUNTIME_DIR": "/run/user/1000",
        "DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/1000/bus",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-never-given",
        "AWS_SESSION_TOKEN": "aws-session-never-given",
        "SOMETHING_ELSE": "x",
    }
    wanted = {k: environ[k] for k in ("PATH", "HOME", "DOCKER_CONFIG", "XDG_RUNTIME_DIR")}
    wanted["DBUS_SESSION_BUS_ADDRESS"] = environ["DBUS_SESSION_BUS_ADDRESS"]

    store_docker_login("ecr.x", LOGIN, environ=environ)
    stored = json.loads(record.read_text())
    record.unlink()
    config = parse_config("version: 1\nimages: [{image: alpine, tags: [x]}]\n")
    find_source_credentials(config, environ=environ)  # DOCKERHUB_* unset: the helper is asked
    asked = json.loads(record.read_text())
    for seen in (stored, asked):
        assert {k: v for k, v in seen.items() if k in wanted} == wanted
        assert not [
            k for k in seen if k.startswith(("AWS_", "DOCKERHUB_")) or k == "SOMETHING_ELSE"
        ]


def test_login_leaves_ecr_login_helper_alone(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"credHelpers": {"ecr.x": "ecr-login"}}')
    where = store_docker_login("ecr.x", LOGIN, environ={"DOCKER_CONFIG": str(tmp_path)})
    assert "ecr-login" in where
    assert json.loads((tmp_path / "config.json").read_text()) == {
        "credHelpers": {"ecr.x": "ecr-login"}
    }
