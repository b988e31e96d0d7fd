"""make run refuses a taken port with one line naming a free one."""

import socket
import subprocess
import sys

from tests.live import BASE_DIR


def portcheck(port: int):
    return subprocess.run(
        [sys.executable, "-m", "gateway_site.portcheck", "127.0.0.1", str(port)],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_taken_port_gives_one_line_with_a_free_port_to_try():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = portcheck(port)

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        f"port {port} is in use on 127.0.0.1; try make run PORT="
    )
    suggested = int(lines[0].rsplit("=", 1)[1])
    assert suggested > port
    with socket.socket() as check:  # the suggestion is free
        check.bind(("127.0.0.1", suggested))


def test_a_free_port_passes_silently():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = portcheck(port)

    assert result.returncode == 0
    assert result.stderr == ""


def test_make_run_on_a_taken_port_stops_at_once_with_that_line():
    import shutil
    import time

    import pytest

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()

        result = subprocess.run(
            ["make", "--no-print-directory", "run", f"PORT={port}", "HOST=127.0.0.1"],
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert result.returncode != 0
    assert f"port {port} is in use on 127.0.0.1; try make run PORT=" in result.stderr
    assert "migrate" not in result.stdout  # stopped before anything else ran
    assert time.monotonic() - started < 60
