"""The Docker image, built and run for real with podman (no Docker engine needed).

No image registry is reachable where this suite runs, so the base image
``python:3.11-slim-bookworm`` is a stand-in built from Debian's own packages by
tests/container/standin-base.sh (Debian bookworm, Python 3.11 with ``python``
and ``pip`` in /usr/local/bin, no compiler) and imported under that name; the
build uses it with ``--pull=never``. A real base image, where one was pulled,
is used as it is. The stand-in is built once and kept in podman's storage.

Run only this module: ``make test-container`` (as root, with podman, runc and
debootstrap installed: ``apt-get install -y podman runc debootstrap``).
"""

import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path

import httpx
import pytest

from tests.conftest import need
from tests.live import BASE_DIR, free_port

pytestmark = pytest.mark.container

BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"
STANDIN_LABEL = "org.opencontainers.image.description"
IMAGE = "localhost/gateway-site:test"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
GRACE_SECONDS = 40  # docker-compose.yml's stop_grace_period
COMPILERS = ("gcc", "cc", "c++", "g++", "x86_64-linux-gnu-gcc", "clang", "tcc")


def podman_available() -> tuple[bool, str]:
    for tool in ("podman", "runc"):
        if not shutil.which(tool):
            return False, f"{tool} is not installed (apt-get install -y podman runc)"
    if os.geteuid() != 0:
        return False, "the container test runs podman as root"
    return True, ""


def podman(*args: str, check: bool = True, timeout: float = 120, **kwargs):
    result = subprocess.run(
        ["podman", "--runtime", "runc", *args],
        env={
            **os.environ,
            "CONTAINERS_CONF": str(BASE_DIR / "tests/container/containers.conf"),
        },
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def image_info(name: str) -> dict | None:
    result = podman("image", "inspect", name, check=False)
    return json.loads(result.stdout)[0] if result.returncode == 0 else None


def ensure_base_image() -> str:
    """Return a description of the base image, building the stand-in if missing."""
    info = image_info(BASE_IMAGE)
    if info is None:
        need(
            bool(shutil.which("debootstrap")),
            "no python:3.11-slim-bookworm image and no debootstrap to build a "
            "stand-in (apt-get install -y debootstrap)",
        )
        result = subprocess.run(
            [
                "sh",
                str(BASE_DIR / "tests/container/standin-base.sh"),
                "--runtime",
                "runc",
            ],
            env={
                **os.environ,
                "CONTAINERS_CONF": str(BASE_DIR / "tests/container/containers.conf"),
            },
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        info = image_info(BASE_IMAGE)
    labels = (info.get("Labels") or {}) if info else {}
    if "Stand-in" in labels.get(STANDIN_LABEL, ""):
        return f"{BASE_IMAGE}: a stand-in built from Debian packages (no registry here)"
    return f"{BASE_IMAGE}: the image found in podman's storage"


@pytest.fixture(scope="module")
def image():
    """Build docker/Dockerfile as the README says, on the (stand-in) base image."""
    available, reason = podman_available()
    need(available, reason)
    base = ensure_base_image()
    print(f"\nBase image {base}")
    args = ["build", "--format", "docker", "--pull=never", "--network=host"]
    if Path(CA_BUNDLE).is_file():
        # The package index may be reached through a TLS proxy whose CA only
        # the host trusts: lend pip the host's bundle for the build only.
        args += [
            "-v",
            f"{CA_BUNDLE}:{CA_BUNDLE}:ro",
            "--build-arg",
            f"PIP_CERT={CA_BUNDLE}",
        ]
    args += ["-f", "docker/Dockerfile", "-t", IMAGE, "."]
    podman(*args, cwd=BASE_DIR, timeout=1800)
    info = image_info(IMAGE)
    base_size = image_info(BASE_IMAGE)["Size"]
    print(
        f"Image {IMAGE}: {info['Size'] / 1e6:.0f} MB, "
        f"{(info['Size'] - base_size) / 1e6:.0f} MB over the base image"
    )
    return info


class Container:
    """One container of the image, on the host network, with a volume at /data."""

    def __init__(self, volume: str, **env: str):
        self.name = f"likes-test-{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "API_GATEWAY_PORT": str(self.port),
            "WEB_CONCURRENCY": "2",
            **env,
        }
        self.volume = volume

    def run(self) -> "Container":
        env_args = [
            arg for key, value in self.env.items() for arg in ("-e", f"{key}={value}")
        ]
        # As docker-compose.yml runs it: an init as PID 1, no capabilities, no
        # privilege gain, a read-only root with a tmpfs at /tmp, data in /data.
        podman(
            "run", "--detach", "--name", self.name, "--network=host", "--init",
            "--cap-drop=ALL", "--security-opt=no-new-privileges",
            "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp",
            "--health-interval=disable",
            "-v", f"{self.volume}:/data", *env_args, IMAGE,
        )  # fmt: skip
        return self

    def wait_healthy(self) -> None:
        wait_healthy(self.base_url, self.name)

    def state(self) -> dict:
        return json.loads(podman("inspect", self.name).stdout)[0]["State"]

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exec(self, *command: str, check: bool = True):
        return podman("exec", self.name, *command, check=check)

    def remove(self) -> None:
        podman("rm", "--force", "--time", "5", self.name, check=False)


def wait_healthy(base_url: str, name: str, timeout: float = 90) -> None:
    """Wait for /health of container ``name``; fail with its logs if it stops."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        state = json.loads(podman("inspect", name).stdout)[0]["State"]
        if state["Status"] == "exited":
            break
        time.sleep(0.2)
    logs = podman("logs", name, check=False)
    raise AssertionError(f"{name} did not become healthy:\n{logs.stdout}{logs.stderr}")


@pytest.fixture
def volume():
    name = f"likes-test-{uuid.uuid4().hex[:10]}"
    podman("volume", "create", name)
    yield name
    podman("volume", "rm", "--force", name, check=False)


def volume_path(name: str) -> Path:
    return Path(
        podman("volume", "inspect", name, "--format", "{{.Mountpoint}}").stdout.strip()
    )


@pytest.fixture
def container(image, volume):
    # Likes from one test client are counted one by one (no dedupe, a high rate).
    box = Container(volume, LIKES_DEDUPE="off", LIKES_POST_RATE="100000/m").run()
    try:
        box.wait_healthy()
        yield box
    finally:
        box.remove()


# --- The image ------------------------------------------------------------------


def test_the_image_carries_no_compiler_and_uses_the_compiled_parser(image):
    found = podman(
        "run", "--rm", "--entrypoint", "sh", IMAGE, "-c",
        f"for c in {' '.join(COMPILERS)}; do command -v $c; done; "
        "python -c 'import gunicorn_h1c; print(\"h1c\")'",
    ).stdout.split()  # fmt: skip

    assert found == ["h1c"]


def test_the_image_holds_no_secrets_and_no_local_state(image):
    env = dict(item.split("=", 1) for item in image["Config"]["Env"])
    files = podman(
        "run", "--rm", "--entrypoint", "sh", IMAGE, "-c",
        "find /app /data \\( -name '.env*' -o -name '*.sqlite3*' -o -name '*.pem' "
        "-o -name '*.key' -o -name '*.dump' -o -path '/app/data*' "
        "-o -path '/app/.git*' -o -path '/app/tests*' \\) -print; ls -A /data",
    ).stdout.split()  # fmt: skip

    assert not [k for k in env if any(w in k for w in ("SECRET", "PASSWORD", "TOKEN"))]
    assert "PIP_CERT" not in env
    assert files == []
    assert image["Config"]["User"] == "10001:10001"


# --- The running container ------------------------------------------------------


def test_the_container_serves_health_and_counts_a_like(container):
    health = httpx.get(f"{container.base_url}/health")
    liked = httpx.post(f"{container.base_url}/likes/docker-post")
    read = httpx.get(f"{container.base_url}/likes/docker-post")

    assert health.json()["status"] == "healthy"
    assert liked.status_code == HTTPStatus.OK
    assert liked.json()["likes"] == 1
    assert read.json() == {"post_id": "docker-post", "likes": 1}


def test_the_images_healthcheck_passes(container, image):
    assert image["Healthcheck"]["Test"] == [
        "CMD",
        "python",
        "/app/docker/healthcheck.py",
    ]
    result = podman("healthcheck", "run", container.name, check=False)

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_process_runs_as_uid_10001(container):
    uids = container.exec(
        "python", "-c",
        "import os\n"
        "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "    status = open(f'/proc/{pid}/status').read().splitlines()\n"
        "    name = status[0].split()[1]\n"
        "    uid = next(l.split()[1] for l in status if l.startswith('Uid:'))\n"
        "    print(name, uid)",
    ).stdout.splitlines()  # fmt: skip
    by_name = dict(line.split() for line in uids)

    assert "gunicorn" in by_name
    assert {uid for _, uid in (line.split() for line in uids)} == {"10001"}


def test_only_data_is_writable_and_persistent(container):
    mounts = container.exec("cat", "/proc/mounts").stdout.splitlines()
    writable = {
        fields[1]
        for fields in (line.split() for line in mounts)
        if "rw" in fields[3].split(",")
        and fields[2]
        not in {"tmpfs", "proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2"}
    }
    root = next(line.split() for line in mounts if line.split()[1] == "/")
    denied = container.exec("touch", "/app/x", check=False)
    allowed = container.exec("touch", "/data/x", check=False)

    assert "ro" in root[3].split(",")
    assert writable == {"/data"}
    assert denied.returncode != 0
    assert "Read-only file system" in denied.stderr
    assert allowed.returncode == 0


def test_sigterm_stops_gracefully_losing_no_like_and_a_restart_keeps_them(container):
    url = f"{container.base_url}/likes/graceful"
    outcomes: Counter = Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def like_until_stopped():
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                try:
                    status = client.post(url).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                with lock:
                    outcomes[status] += 1

    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(8):
            pool.submit(like_until_stopped)
        while outcomes[HTTPStatus.OK] < 300:
            time.sleep(0.05)
        started = time.monotonic()
        podman(
            "stop",
            "--time",
            str(GRACE_SECONDS),
            container.name,
            timeout=GRACE_SECONDS + 30,
        )
        stopped_after = time.monotonic() - started
        stop.set()
    state = container.state()
    logs = container.logs()

    podman("start", container.name)
    container.wait_healthy()
    count = httpx.get(url).json()["likes"]
    failed = sum(n for status, n in outcomes.items() if status != HTTPStatus.OK)

    assert stopped_after < GRACE_SECONDS
    assert state["ExitCode"] == 0, logs
    assert "Shutting down: Master" in logs
    assert not [s for s in outcomes if isinstance(s, int) and s != HTTPStatus.OK]
    # Every acknowledged like was kept; a request cut off by the stop may or
    # may not have been counted before its connection closed.
    assert outcomes[HTTPStatus.OK] <= count <= outcomes[HTTPStatus.OK] + failed


def test_two_containers_on_one_volume_both_come_up(image, volume):
    first, second = Container(volume), Container(volume)
    try:
        first.run()
        second.run()
        first.wait_healthy()
        second.wait_healthy()
        likes = [
            httpx.post(f"{box.base_url}/likes/shared", headers={"User-Agent": box.name})
            for box in (first, second)
        ]
        applied = first.exec("python", "manage.py", "showmigrations", "--plan").stdout
    finally:
        first.remove()
        second.remove()

    assert [like.json()["likes"] for like in likes] == [1, 2]  # one database for both
    assert "[ ]" not in applied
    assert applied.count("[X]") > 10


def test_likes_backup_runs_inside_the_container(container, volume):
    httpx.post(f"{container.base_url}/likes/backed-up")
    httpx.post(f"{container.base_url}/likes/backed-up")

    result = container.exec("python", "manage.py", "likes_backup", "/data/backups/")
    backups = list((volume_path(volume) / "backups").glob("likes-*.sqlite3"))

    assert "Backed up 1 posts (2 likes)" in result.stdout
    assert len(backups) == 1
    with sqlite3.connect(backups[0]) as db:
        assert db.execute(
            "SELECT likes FROM likes_post WHERE post_id = 'backed-up'"
        ).fetchone() == (2,)


# --- docker-compose.yml, run by podman-compose -----------------------------------


def test_compose_runs_the_likes_service_as_the_files_describe(image, tmp_path):
    """podman-compose starts the likes service from docker-compose.yml and its dev file.

    The other profiles' images cannot be pulled here: only ``likes`` starts, with
    ``--no-deps`` (podman-compose does not honour ``required: false``), on the
    image built above. The env file is written in a copy of the compose files,
    so the project's own .env is never touched.
    """
    compose = shutil.which("podman-compose") or str(
        Path(sys.executable).parent / "podman-compose"
    )
    need(
        Path(compose).exists(), "podman-compose is not installed (requirements/dev.txt)"
    )
    for name in ("docker-compose.yml", "docker-compose.dev.yml"):
        shutil.copy(BASE_DIR / name, tmp_path / name)
    (tmp_path / ".env.docker").write_text(
        f"DJANGO_SECRET_KEY={secrets.token_urlsafe(50)}\n"
    )
    port = free_port()
    (tmp_path / "test.yml").write_text(
        f"services:\n  likes:\n    image: {IMAGE}\n"
        f"    ports: !override\n      - '127.0.0.1:{port}:8000'\n"
    )
    project = f"likes-test-{uuid.uuid4().hex[:8]}"
    files = [
        "-f",
        "docker-compose.yml",
        "-f",
        "docker-compose.dev.yml",
        "-f",
        "test.yml",
    ]

    def run(*args: str, check: bool = True):
        result = subprocess.run(
            [compose, "--podman-args=--runtime runc", "-p", project, *files, *args],
            env={
                **os.environ,
                "CONTAINERS_CONF": str(BASE_DIR / "tests/container/containers.conf"),
            },
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert not check or result.returncode == 0, result.stdout + result.stderr
        return result

    try:
        run("up", "--detach", "--no-build", "--no-deps", "likes")
        name, base_url = f"{project}_likes_1", f"http://127.0.0.1:{port}"
        wait_healthy(base_url, name)
        liked = httpx.post(f"{base_url}/likes/composed")
        host = json.loads(podman("inspect", name).stdout)[0]["HostConfig"]
    finally:
        run("down", "--volumes", check=False)

    assert liked.json()["likes"] == 1
    assert host["ReadonlyRootfs"] is True
    assert host["Init"] is True
    assert "no-new-privileges" in host["SecurityOpt"]


# The README's Docker commands, run as written with `docker` played by podman:
# `docker network …` is podman's, `docker compose …` is podman-compose on a
# copy of the compose files, where the image built above stands for `--build`
# and only the likes service starts (the profiles' images cannot be pulled).
DOCKER_SHIM = """#!/bin/bash
set -euo pipefail
if [ "$1" = network ] && [ "$2" = create ]; then
  podman network exists "$3" || podman network create "$3"
  exit 0
fi
if [ "$1" = compose ]; then
  shift
  args=()
  for arg in "$@"; do
    case "$arg" in
      --build) ;;
      -d) args+=(--detach) ;;
      *) args+=("$arg") ;;
    esac
  done
  if [ "${args[0]}" = up ]; then args+=(--no-build --no-deps likes); fi
  exec "$COMPOSE" --podman-args="--runtime runc" -p "$PROJECT" \\
    -f docker-compose.yml -f test.yml "${args[@]}"
fi
echo "docker $* is not in the README" >&2
exit 2
"""


def test_the_readmes_docker_commands_work(image, tmp_path):
    """The README's `tested: docker` block, line for line, in a copy of the files."""
    from tests.docs import tagged

    (block,) = tagged("docker")
    compose = shutil.which("podman-compose") or str(
        Path(sys.executable).parent / "podman-compose"
    )
    need(
        Path(compose).exists(), "podman-compose is not installed (requirements/dev.txt)"
    )
    for name in ("docker-compose.yml", ".env.docker.example"):
        shutil.copy(BASE_DIR / name, tmp_path / name)
    port = free_port()
    (tmp_path / "test.yml").write_text(
        f"services:\n  likes:\n    image: {IMAGE}\n"
        f"    ports:\n      - '127.0.0.1:{port}:8000'\n"
        # The README's next step: ALLOWED_HOSTS set to the service's name.
        "    environment:\n      ALLOWED_HOSTS: 127.0.0.1,localhost\n"
    )
    shim = tmp_path / "bin" / "docker"
    shim.parent.mkdir()
    shim.write_text(DOCKER_SHIM)
    shim.chmod(0o755)
    project = f"likes-readme-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "PATH": f"{shim.parent}:{os.environ['PATH']}",
        "COMPOSE": compose,
        "PROJECT": project,
        "CONTAINERS_CONF": str(BASE_DIR / "tests/container/containers.conf"),
    }
    name, base_url = f"{project}_likes_1", f"http://127.0.0.1:{port}"
    try:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.text],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        wait_healthy(base_url, name)
        secret = (tmp_path / ".env.docker").read_text()
        admin = podman(
            "exec",
            name,
            "python",
            "manage.py",
            "shell",
            "-c",
            "from django.contrib.auth.models import User; "
            "u = User.objects.get(username='author'); "
            "print(u.is_superuser, u.check_password('a long passphrase'))",
        )
    finally:
        subprocess.run(
            [
                compose,
                "--podman-args=--runtime runc",
                "-p",
                project,
                "-f",
                "docker-compose.yml",
                "-f",
                "test.yml",
                "down",
                "--volumes",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            timeout=300,
        )

    assert re.search(r"^DJANGO_SECRET_KEY=[0-9a-f]{64}$", secret, re.M)
    assert (tmp_path / ".env.docker").stat().st_mode & 0o777 == 0o600
    # The last line: Django's shell may first say what it imported.
    assert admin.stdout.strip().splitlines()[-1].split() == ["True", "True"]
