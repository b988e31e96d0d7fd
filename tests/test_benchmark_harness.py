"""The benchmark harness itself runs end to end (tiny rounds; no timing asserted)."""

import shutil

import pytest

from tests.conftest import need

pytestmark = pytest.mark.live


def test_benchmark_runs_all_servers_and_writes_its_report(tmp_path):
    need(shutil.which("wrk") is not None, "wrk is not installed (apt-get install wrk)")
    from tests.benchmarks import run

    output = tmp_path / "latest.json"
    report = run.main(
        [
            "--duration",
            "1",
            "--rounds",
            "1",
            "--connections",
            "8",
            "--output",
            str(output),
        ]
    )

    assert output.exists()
    project, baseline = report["results"]["project"], report["results"]["baseline"]
    assert set(project) == {"get", "post", "batch"}
    assert set(baseline) == {"get", "post"}
    assert "get" in report["results"]["ceiling"]
    # Correctness is asserted, speed is not: every like the project accepted
    # is counted, and it answered nothing but 2xx.
    assert project["post"]["ok"] > 0
    assert project["post"]["lost"] == 0
    # wrk stops recording at its deadline with up to one request per
    # connection still in flight; the server counts those too.
    assert 0 <= project["post"]["counted"] - project["post"]["ok"] <= 8
    assert project["post"]["non_2xx"] == project["get"]["non_2xx"] == 0
    assert report["memory"]["project"]["processes"] == 3  # master + 2 workers
    assert set(report["ratios"]) >= {"get_rps_vs_baseline", "post_rps_vs_baseline"}


def test_rate_limit_store_benchmark_checks_that_counts_add_up(tmp_path):
    from tests.benchmarks import ratelimit_store

    report = ratelimit_store.main(
        [
            "--checks",
            "300",
            "--stores",
            "counters,diskcache,locmem",
            "--output",
            str(tmp_path / "ratelimit_store.json"),
        ]
    )

    exact = {row["store"]: row["exact_across_processes"] for row in report["results"]}
    # The shared stores count every check of both processes; per-process memory
    # does not add up (the reason it is not the default).
    assert exact == {"counters": True, "diskcache": True, "locmem": False}
    assert all(row["cpu_us_per_check"] > 0 for row in report["results"])
