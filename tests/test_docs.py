"""The docs' commands, run as a reader would: on a fresh copy of the project.

``make run`` starts the service in a copy of the checkout (its own ``.env``,
its own fresh ``data/``), then every block marked ``<!-- tested -->`` runs in
order in that copy, against that server: a copy command that does not work
fails here. The one substitution is the server's address, since port 8000 may
be taken: ``http://127.0.0.1:8000`` becomes the address ``make run`` was given.
A ``# {…}`` or ``# […]`` comment after a command is the answer it prints (``…``
stands for anything); the block's output must hold them in order.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests import docs
from tests.live import free_port

BASE_DIR = docs.BASE_DIR
DOCUMENTED_URL = "http://127.0.0.1:8000"
EXPECTED = re.compile(r"#\s*(?P<json>[\[{].*)$")
LOCAL_STATE = (
    ".git",
    ".venv",
    ".venv-deploy",
    ".env",
    ".env.docker",
    "data",
    "staticfiles",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    ".schemathesis",
    "htmlcov",
    ".coverage*",
    "*.log",
)

pytestmark = pytest.mark.live


def reader_env() -> dict[str, str]:
    """A shell's environment: no test settings, no services of the test run."""
    drop = {
        "DJANGO_SETTINGS_MODULE",
        "DATABASE_URL",
        "REDIS_URL",
        "DJANGO_SECRET_KEY",
        "DJANGO_ENV_FILE",
        "DATA_DIR",
        "STATIC_ROOT",
        "PORT",
        "HOST",
        "API_GATEWAY_PORT",
        "API_GATEWAY_HOST",
        "MAKEFLAGS",
        "MAKELEVEL",
        "MFLAGS",
    }
    return {
        key: value
        for key, value in os.environ.items()
        if key not in drop and not key.startswith(("PYTEST_", "COV_CORE_"))
    }


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """The project as a fresh clone has it, with this test run's virtualenv."""
    root = tmp_path_factory.mktemp("reader") / "gateway_site"
    shutil.copytree(BASE_DIR, root, ignore=shutil.ignore_patterns(*LOCAL_STATE))
    (root / ".venv").symlink_to(Path(sys.prefix))
    return root


@pytest.fixture(scope="module")
def served(checkout):
    """``make run`` in the copy, as the quick start says (on a free port)."""
    port = free_port()
    log = (checkout.parent / "make-run.log").open("w+")
    proc = subprocess.Popen(
        ["make", "run", f"PORT={port}"],
        cwd=checkout,
        env=reader_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"make run exited {proc.returncode}:\n{log.read()}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"make run did not serve in 120 s:\n{log.read()}")
            time.sleep(0.3)
        log.seek(0)
        yield url, log.read()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def expected_answers(block: docs.Block) -> list[re.Pattern]:
    patterns = []
    for line in block.text.splitlines():
        found = EXPECTED.search(line)
        if found:
            parts = [re.escape(part) for part in found["json"].strip().split("…")]
            patterns.append(re.compile(".*?".join(parts)))
    return patterns


def test_the_quick_start_is_make_run_then_make_test():
    text = (BASE_DIR / "README.md").read_text()
    quick = text[text.index("## Quick start") :]
    fence = quick[quick.index("```sh") : quick.index("```\n", quick.index("```sh") + 5)]

    commands = [line.split("#")[0].strip() for line in fence.splitlines()[1:]]
    assert [c for c in commands if c] == ["make run", "make test"]


def test_every_shell_block_of_the_readme_is_tested_or_is_the_quick_start():
    lines = (BASE_DIR / "README.md").read_text().splitlines()
    untested = []
    for i, line in enumerate(lines):
        if line.strip() in ("```sh", "```bash", "```shell", "```console"):
            marked = i > 0 and docs.MARKER.match(lines[i - 1].strip())
            first = lines[i + 1].split("#")[0].strip()
            # The quick start's make run / make test: run by the fixture below
            # and by CI itself.
            if not marked and first != "make run":
                untested.append(f"README.md:{i + 1}")

    assert not untested, f"mark these blocks <!-- tested --> or fix them: {untested}"


def test_make_run_prints_how_to_get_a_stats_key_as_the_readme_says(served):
    _, banner = served
    readme = (BASE_DIR / "README.md").read_text()

    assert "manage.py likes_apikey create --name me" in banner
    assert "likes_apikey create --name me" in readme
    assert "createsuperuser" in banner


def test_every_tested_block_works_as_written(served, checkout):
    url, _ = served
    blocks = [block for path in docs.documents() for block in docs.blocks(path)]
    plain = [block for block in blocks if not block.tag]
    assert plain, "no block is marked <!-- tested -->"

    for block in plain:
        script = block.text.replace(DOCUMENTED_URL, url)
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=checkout,
            env=reader_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, (
            f"{block} failed ({result.returncode}):\n{block.text}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
        position = 0
        for pattern in expected_answers(block):
            found = pattern.search(result.stdout, position)
            assert found, f"{block}: expected {pattern.pattern!r} in:\n{result.stdout}"
            position = found.end()


def test_a_fresh_install_is_ready_with_no_upstream_service(served):
    url, _ = served
    ready = httpx.get(url + "/ready", timeout=10)

    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "cache": "ok"}
    assert body["upstreams"] == {}
