"""moto_server (AWS API stand-in) on a loopback port."""

from __future__ import annotations

import base64
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from .procs import ServerProcess, http_probe, start_process, wait_ready

__all__ = ["AWS_KEYS", "Moto", "moto_env", "start_moto"]

REGION = "us-east-1"
AWS_KEYS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


def moto_env(url: str) -> dict[str, str]:
    """The environment a boto3 client (or the aws CLI) needs to talk to moto at ``url``."""
    return {
        "AWS_ENDPOINT_URL": url,
        **AWS_KEYS,
        # keep boto3 from reading the machine's profiles or asking IMDS
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@dataclass
class Moto:
    """A running moto_server. ``url`` is ``http://127.0.0.1:PORT``."""

    url: str
    port: int
    process: ServerProcess

    @property
    def env(self) -> dict[str, str]:
        return moto_env(self.url)

    def wait(self, timeout: float = 60.0) -> None:
        wait_ready(self.process, timeout)

    def reset(self) -> None:
        """Forget every AWS resource (POST /moto-api/reset)."""
        r = httpx.post(f"{self.url}/moto-api/reset", timeout=10)
        r.raise_for_status()

    def client(self, service: str):  # type: ignore[no-untyped-def]  # boto3 client
        import boto3

        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=AWS_KEYS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_KEYS["AWS_SECRET_ACCESS_KEY"],
        )

    def ecr_authorization(self) -> tuple[str, str]:
        """(user, password) decoded from ECR GetAuthorizationToken.

        moto answers ``AWS:123456789012-auth-token`` (and an expiresAt in 2015)."""
        data = self.client("ecr").get_authorization_token()["authorizationData"][0]
        user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        return user, password

    def stop(self) -> None:
        self.process.stop()

    def pids(self) -> list[int]:
        return self.process.pids()


def start_moto(workdir: Path, *, wait: bool = True, timeout: float = 60.0) -> Moto:
    """Start moto_server on a free loopback port (logs under ``workdir/moto``)."""
    exe = Path(sys.executable).with_name("moto_server")
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "moto.server"]
    process = start_process(
        "moto",
        lambda port: [*base, "-H", "127.0.0.1", "-p", str(port)],
        log_dir=Path(workdir) / "moto",
        ready=http_probe("/moto-api/data.json"),
        timeout=timeout,
        wait=wait,
    )
    assert process.port is not None
    return Moto(url=f"http://127.0.0.1:{process.port}", port=process.port, process=process)
