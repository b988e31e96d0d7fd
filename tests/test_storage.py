"""Failing storage: a full or read-only DATA_DIR, a corrupt database.

The full and read-only disks are small tmpfs mounts made for the test (as
root); a corrupt database is a copy with pages overwritten.
"""

import os
import shutil
import sqlite3
import subprocess
import uuid
from contextlib import contextmanager
from http import HTTPStatus
from pathlib import Path

import httpx
import pytest

from tests.conftest import need
from tests.live import BASE_DIR, BIN, free_port, gunicorn, manage, project_env


def can_mount() -> bool:
    return os.geteuid() == 0 and bool(shutil.which("mount"))


@contextmanager
def small_disk(tmp_path, megabytes: int):
    need(can_mount(), "mounting a small tmpfs needs root and mount(8)")
    where = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    where.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(where)],
        check=True,
    )
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full; return it (delete it to free space)."""
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        block = b"\0" * 65536
        try:
            while True:
                handle.write(block)
                handle.flush()
        except OSError:
            pass
    return filler


def start(env):
    """Run gunicorn as deployed; (exit code, output) when it refuses to start."""
    port = free_port()
    return subprocess.run(
        [str(BIN / "gunicorn"), "-c", str(BASE_DIR / "gateway_site/gunicorn.conf.py")],
        env={**env, "API_GATEWAY_HOST": "127.0.0.1", "API_GATEWAY_PORT": str(port)},
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


# --- At start ---------------------------------------------------------------------


@pytest.mark.live
def test_a_read_only_data_dir_refuses_to_start_with_one_clear_line(tmp_path):
    with small_disk(tmp_path, 8) as disk:
        data = disk / "data"
        data.mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)

        result = start(project_env(DATA_DIR=str(data)))

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"Refusing to start: DATA_DIR {data}: it is on a read-only" in output
    assert "Traceback" not in output


@pytest.mark.live
def test_a_full_data_dir_refuses_to_start_with_one_clear_line(tmp_path):
    with small_disk(tmp_path, 4) as disk:
        data = disk / "data"
        data.mkdir()
        fill(disk)

        result = manage(
            "migrate", "--noinput", env=project_env(DATA_DIR=str(data)), check=False
        )

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"Refusing to start: DATA_DIR {data}: the disk is full." in output
    assert "Traceback" not in output


@pytest.mark.live
def test_a_corrupt_database_refuses_to_start(tmp_path):
    env = project_env(DATA_DIR=str(tmp_path))
    manage("migrate", "--noinput", env=env)
    corrupt(tmp_path / "likes.sqlite3")

    result = start(env)

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "gateway_site.E031" in output
    assert "is corrupt" in output
    assert "Traceback" not in output


def corrupt(path: Path) -> None:
    """Give the database rows, then overwrite pages in its middle."""
    db = sqlite3.connect(path)
    db.executemany(
        "INSERT INTO likes_post (post_id, likes, imported, created_at) "
        "VALUES (?, 1, 0, '2026-01-01 00:00:00')",
        [(f"post-{n}",) for n in range(2000)],
    )
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    with open(path, "r+b") as handle:
        for page in range(pages // 2, pages // 2 + 4):
            handle.seek(page * size)
            handle.write(os.urandom(size))


# --- While running ------------------------------------------------------------------


@pytest.mark.live
def test_ready_reports_a_database_corrupted_while_running(tmp_path):
    env = project_env(DATA_DIR=str(tmp_path))
    manage("migrate", "--noinput", env=env)

    with gunicorn(env, workers=1) as server:
        corrupt(tmp_path / "likes.sqlite3")
        response = httpx.get(f"{server.base_url}/ready")

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["checks"]["database"] == "corrupt"


@pytest.mark.live
def test_a_disk_full_while_running_refuses_writes_serves_reads_and_recovers(tmp_path):
    with small_disk(tmp_path, 24) as disk:
        data = disk / "data"
        data.mkdir()
        env = project_env(
            DATA_DIR=str(data),
            LIKES_DEDUPE="off",
            LIKES_POST_RATE="100000/m",
            LIKES_GET_RATE="100000/m",
        )
        manage("migrate", "--noinput", env=env)
        log = tmp_path / "gunicorn.log"
        with gunicorn(env, workers=2, log_path=log) as server:
            url = f"{server.base_url}/likes"
            assert httpx.post(f"{url}/before").status_code == HTTPStatus.OK
            filler = fill(disk)
            statuses = []
            with httpx.Client(timeout=30) as client:
                for n in range(300):
                    response = client.post(f"{url}/full-{n}")
                    statuses.append(response.status_code)
                    if response.status_code != HTTPStatus.OK:
                        refused = response
                reads = [client.get(f"{url}/before") for _ in range(5)]
                metrics = client.get(f"{server.base_url}/metrics")
                filler.unlink()
                after = client.post(f"{url}/after")
                counted = sum(
                    client.get(f"{url}/full-{n}").json()["likes"] for n in range(300)
                )

    assert set(statuses) <= {HTTPStatus.OK, HTTPStatus.SERVICE_UNAVAILABLE}
    assert HTTPStatus.SERVICE_UNAVAILABLE in statuses
    assert refused.json()["code"] == "storage_unavailable"
    assert refused.headers["Retry-After"] == "30"
    assert [r.json()["likes"] for r in reads] == [1] * 5
    assert metrics.status_code == HTTPStatus.OK
    assert after.status_code == HTTPStatus.OK  # recovered by itself
    assert counted == statuses.count(HTTPStatus.OK)  # no acknowledged like lost
    output = log.read_text()
    assert "SIGBUS" not in output
    assert "Worker (pid" not in output  # no worker died
