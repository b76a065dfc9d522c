"""The tool's container image (issue 13): the Dockerfile is hadolint clean, builds with the
world's Docker engine from a base image made on this machine (tests/world/pythonbase.py;
Docker Hub is out of reach) and from wheels built here (the Dockerfile's offline build), and
the image runs `mirror` as a non-root user, against the world over the host's network."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker.utils.build import exclude_paths

from mirror import __version__
from tests.runner import Mirror, Run, actions, pulls
from tests.world.dockerd import DockerEngine
from tests.world.pythonbase import BASE_CHANGES, base_rootfs

# the image's build (~1.5-2.5 min on a loaded machine, vfs storage) happens in the first test
pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parent.parent
BASE = "mirror-test-base:python"
IMAGE = "mirror-test:latest"
HADOLINT = Path(sys.executable).with_name("hadolint")
# what the final stage must not carry, as a python in the image sees it
LEFTOVERS = """
import glob, json, os
print(json.dumps({
    "uid": os.getuid(),
    "pip_in_venv": glob.glob("/opt/mirror/lib/*/site-packages/pip"),
    "wheels": [w for d in ("/opt", "/tmp", "/work", "/root", "/usr")
               for w in glob.glob(d + "/**/*.whl", recursive=True)],
    "sources": [p for p in ("/src", "/wheels", "/root/.cache") if os.path.exists(p)],
    "compilers": [c for c in ("gcc", "cc", "make") if any(
        os.path.exists(os.path.join(d, c)) for d in os.environ["PATH"].split(":"))],
}))
"""


def test_the_dockerfile_is_hadolint_clean() -> None:
    done = subprocess.run(
        [str(HADOLINT), "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # and hadolint does complain about what it should: a root final stage, pip with a cache
    bad = "FROM python:3.12-slim\nRUN pip install httpx==0.27.0\n"
    complaint = subprocess.run(
        [str(HADOLINT), "--no-color", "-"], input=bad, capture_output=True, text=True, check=False
    )
    assert complaint.returncode != 0 and "DL3042" in complaint.stdout, complaint.stdout


def build_context(directory: Path) -> Path:
    """What `docker build .` in the project sends (the files .dockerignore admits, and the
    Dockerfile), plus
    wheels/ with mirror's dependencies and setuptools built on this machine."""
    patterns = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [p for p in patterns if p.strip() and not p.startswith("#")]
    for name in exclude_paths(str(ROOT), patterns):
        source = ROOT / name
        if source.is_file():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, directory / name)
    wheels = ["--wheel-dir", str(directory / "wheels"), str(ROOT), "setuptools>=68"]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", *wheels],
        check=True,
        capture_output=True,
    )
    return directory


@pytest.fixture(scope="module")
def image(docker_engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The image built from the project's Dockerfile (the timings land in the test log)."""
    client = docker_engine.client()
    tmp = tmp_path_factory.mktemp("container")
    started = time.monotonic()
    client.api.import_image(
        src=str(base_rootfs(tmp / "base.tar")), repository=BASE, changes=BASE_CHANGES
    )
    based = time.monotonic()
    context = build_context(tmp / "context")
    wheels = time.monotonic()
    events = client.api.build(
        path=str(context),
        tag=IMAGE,
        buildargs={"BASE": BASE, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/src/wheels"},
        network_mode="host",
        rm=True,
        forcerm=True,
        decode=True,
    )
    log = list(events)
    errors = [event["error"] for event in log if "error" in event]
    assert not errors, "".join(str(e.get("stream", e)) for e in log)
    print(
        f"container timings: base image {based - started:.1f} s, wheels {wheels - based:.1f} s,"
        f" docker build {time.monotonic() - wheels:.1f} s"
    )
    yield client.images.get(IMAGE)
    client.images.remove(IMAGE, force=True)
    client.images.remove(BASE, force=True)


def run_in(image: Any, *args: str, **options: Any) -> tuple[int, str, str]:
    """Run the image (host network) and wait: (exit code, stdout, stderr)."""
    container = image.client.containers.run(
        image.id, list(args), detach=True, network_mode="host", **options
    )
    try:
        code = container.wait(timeout=120)["StatusCode"]
        out = container.logs(stdout=True, stderr=False).decode()
        err = container.logs(stdout=False, stderr=True).decode()
    finally:
        container.remove(force=True)
    return code, out, err


@pytest.mark.dockerd
def test_the_image_runs_mirror_as_a_non_root_user_and_keeps_no_build_leftovers(
    image: Any,
) -> None:
    code, out, err = run_in(image, "--version")
    assert (code, out, err) == (0, f"mirror {__version__}\n", ""), err
    assert image.attrs["Config"]["User"] == "10001:10001"
    assert image.attrs["Config"]["Entrypoint"] == ["mirror"]
    code, out, err = run_in(image, "-c", LEFTOVERS, entrypoint=["python3"])
    assert code == 0, err
    assert json.loads(out) == {
        "uid": 10001,
        "pip_in_venv": [],
        "wheels": [],
        "sources": [],
        "compilers": [],
    }


@pytest.mark.dockerd
def test_a_dry_run_in_the_container_plans_against_the_world(
    image: Any, mirror: Mirror, tmp_path: Path
) -> None:
    config = tmp_path / "mounted"
    config.mkdir(mode=0o755)
    # The config names a time zone: the base has no tz database of its own (as slim images
    # may not), so it loads only with the one mirror depends on (tzdata).
    system_zones = "import os, zoneinfo; print(any(map(os.path.isdir, zoneinfo.TZPATH)))"
    assert run_in(image, "-c", system_zones, entrypoint=["python3"])[:2] == (0, "False\n")
    mirror.world.write_config(
        config / "images.yaml",
        [{"image": "alpine", "tags": ["3.19", "3.20"]}],
        schedule={"timezone": "Australia/Sydney"},
    )
    (config / "images.yaml").chmod(0o644)
    mirror.world.create_repository("dockerhub/library/alpine")
    args = ("sync", "--dry-run", "-o", "json")
    code, out, err = run_in(
        image,
        *args,
        environment=mirror.world.moto_env,
        volumes={str(config): {"bind": "/work/config", "mode": "ro"}},
    )
    report = mirror.record(Run(args, code, out, err)).report  # its shape; no ECR token shown
    assert report["dry_run"] is True
    assert actions(report) == {
        "library/alpine:3.19": "would-copy",
        "library/alpine:3.20": "would-copy",
    }
    assert pulls(mirror.world) == 0 and mirror.world.hub_front.counters["manifest_get"] == 0
    assert mirror.world.hub_front.counters["manifest_head"] >= 2, "it asked the world's hub"
