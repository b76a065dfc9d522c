"""The config file's schema (mirror/config_schema.py): registry URLs (no credentials, plain
http only to this machine or by choice) and which source Docker Hub's credentials may go to."""

from __future__ import annotations

import pytest

from mirror.config import parse_config
from tests.config_documents import VALID_TAIL, refused


@pytest.mark.parametrize("section", ["source", "target"])
@pytest.mark.parametrize(
    "url", ["https://alice:PASSWORD@quay.io", "alice:PASSWORD@quay.io", "http://:PASSWORD@[::1]"]
)
def test_credentials_in_a_registry_url_are_refused_unshown(section: str, url: str) -> None:
    message = refused(f"version: 1\n{section}: {{registry: '{url}'}}\n" + VALID_TAIL)
    assert message == (
        f"f.yaml: {section}.registry (line 2): the registry URL carries credentials"
        " (user:password@); remove them, and see docs/credentials.md for where credentials go"
    )
    assert "PASSWORD" not in message and "alice" not in message


@pytest.mark.parametrize("section", ["source", "target"])
def test_plain_http_to_another_host_needs_the_opt_in(section: str) -> None:
    url = "http://registry.example:5000"
    message = refused(f"version: 1\n{section}: {{registry: '{url}'}}\n" + VALID_TAIL)
    assert message == (
        f"f.yaml: {section}.registry (line 2): '{url}': plain http is accepted only for a"
        " loopback host (127.0.0.0/8, ::1, localhost); use https, or set"
        " `allow_insecure_http: true` next to it"
    )
    opted = f"version: 1\n{section}: {{registry: '{url}', allow_insecure_http: true}}\n"
    config = parse_config(opted + VALID_TAIL)
    assert (config.source.url if section == "source" else config.target_url) == url
    not_a_bool = opted.replace("true", "'true'")
    assert refused(not_a_bool + VALID_TAIL) == (
        f"f.yaml: {section}.allow_insecure_http (line 2): Input should be a valid boolean"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5000",
        "http://127.255.0.9",
        "http://[::1]:5000",
        "http://localhost:5000",
        "http://LOCALHOST",
    ],
)
def test_plain_http_to_loopback_is_accepted(url: str) -> None:
    text = f"version: 1\nsource: {{registry: '{url}'}}\ntarget: {{registry: '{url}'}}\n"
    config = parse_config(text + VALID_TAIL)
    assert config.source.url == url and config.target_url == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://quay.io/?x=1", "a registry URL has no query or fragment"),
        ("https://quay.io#x", "a registry URL has no query or fragment"),
        ("https://quay.io:0", "port 0 is no registry's port"),
        ("quay.io:99999", "Port out of range 0-65535"),
        ("quay.io:http", "Port could not be cast to integer value"),
        ("https://", "expected a host or an http(s):// URL"),
    ],
)
def test_a_registry_url_is_a_host_and_a_port(url: str, problem: str) -> None:
    assert problem in refused(f"version: 1\nsource: {{registry: '{url}'}}\n" + VALID_TAIL)


# --- which source Docker Hub's credentials may go to -----------------------------------

HUB_CASES = [
    # (source section, source is Docker Hub, Docker Hub's credentials go to it)
    ("{registry: docker.io}", True, True),
    ("{registry: index.docker.io}", True, True),
    ("{registry: 'https://registry-1.docker.io'}", True, True),
    ("{registry: 'https://registry-1.docker.io:443'}", True, True),
    ("{registry: 'https://registry-1.docker.io:5000'}", False, False),
    ("{registry: 'http://registry-1.docker.io', allow_insecure_http: true}", False, False),
    ("{registry: 'http://127.0.0.1:5000'}", False, False),
    ("{registry: quay.io}", False, False),
    ("{registry: quay.io, use_docker_hub_credentials: true}", False, True),
    ("{registry: quay.io, use_docker_hub_credentials: false}", False, False),
]


@pytest.mark.parametrize(("source", "hub", "hub_credentials"), HUB_CASES)
def test_docker_hub_credentials_go_to_docker_hub_unless_the_file_says(
    source: str, hub: bool, hub_credentials: bool
) -> None:
    config = parse_config(f"version: 1\nsource: {source}\n" + VALID_TAIL)
    assert config.source.is_docker_hub is hub
    assert config.source.hub_credentials is hub_credentials


def test_a_docker_hub_secret_for_another_registry_needs_the_opt_in() -> None:
    source = "source:\n  registry: quay.io\n  credentials_secret: mirror/hub\n"
    assert refused("version: 1\n" + source + VALID_TAIL) == (
        "f.yaml: source.credentials_secret (line 4): the secret holds Docker Hub credentials"
        " and source.registry 'quay.io' is not Docker Hub; set"
        " source.use_docker_hub_credentials: true to send them there"
    )
    opted = source + "  use_docker_hub_credentials: true\n"
    assert parse_config("version: 1\n" + opted + VALID_TAIL).credentials_secret == "mirror/hub"
    hub = "source: {registry: docker.io, credentials_secret: mirror/hub}\n"
    assert parse_config("version: 1\n" + hub + VALID_TAIL).credentials_secret == "mirror/hub"
