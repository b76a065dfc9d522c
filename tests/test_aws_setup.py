"""AWS set-up problems are one clear line, before any registry is touched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_sync(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    base = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mirror",
            "sync",
            "--no-ensure-repo",
            "-c",
            str(REPO / "config" / "images.yaml"),
        ],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "mirror: error: no AWS region: set target.region in the config, AWS_REGION"),
        (
            {"AWS_REGION": "eu-west-1"},
            "mirror: error: ECR GetAuthorizationToken failed: NoCredentialsError",
        ),
        (
            {"AWS_DEFAULT_REGION": "eu-west-1"},
            "mirror: error: ECR GetAuthorizationToken failed: NoCredentialsError",
        ),
    ],
    ids=["no-region", "aws-region-honoured", "aws-default-region"],
)
def test_missing_aws_setup_is_one_line(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    result = run_sync(tmp_path, **env)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("mirror: error:")]
    assert len(errors) == 1 and errors[0].startswith(expected), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
