"""A machine for credential lookups: a DOCKER_CONFIG directory, a PATH of fake credential
helpers, a home without `.docker`; configs for a source registry, and the check that no
secret shows in an error. Shared by the tests of `mirror.credentials` and
`mirror.docker_config`."""

from __future__ import annotations

import base64
import json
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirror.config import Config, parse_config
from mirror.credentials import FoundCredentials, find_source_credentials

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

    @classmethod
    def make(cls, root: Path) -> Machine:
        m = cls(root)
        for directory in (m.bin, m.docker_dir, m.home):
            directory.mkdir()
        m.env = {"DOCKER_CONFIG": str(m.docker_dir), "PATH": str(m.bin), "HOME": str(m.home)}
        return m

    def find(self, config: Config | None = None, **kwargs: Any) -> FoundCredentials:
        return find_source_credentials(
            config or config_for(), environ=self.env, home=self.home, **kwargs
        )


def assert_no_secret(exc: BaseException) -> None:
    """Neither the message, the repr, nor the printed traceback (with its chain) shows it."""
    text = "".join(traceback.format_exception(exc))
    assert SECRET not in str(exc)
    assert SECRET not in repr(exc)
    assert SECRET not in text
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__


ALICE = ("alice", f"pw-{SECRET}")
BOB = ("bob", f"tok-{SECRET}")
