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
    results = report["results"]
    project, baseline = results["project"], results["baseline"]
    workloads = {"page", "list", "like", "get"}
    assert (
        set(project) == set(baseline) == set(results["project-nolimits"]) == workloads
    )
    assert {"page", "list"} <= set(results["ceiling"])
    # The project runs as installed: rate limits counting (raised), said so.
    assert report["settings"]["project_rate_limits"].startswith("counting")
    # Correctness is asserted, speed is not: every like the project accepted
    # is counted, and it answered nothing but 2xx.
    assert project["like"]["ok"] > 0
    assert project["like"]["lost"] == 0
    # wrk stops recording at its deadline with up to one request per
    # connection still in flight; the server counts those too.
    assert 0 <= project["like"]["counted"] - project["like"]["ok"] <= 8
    assert all(project[w]["non_2xx"] == 0 for w in workloads)
    # The ceiling runs the project's SQL on the project's schema: all 2xx too.
    ceiling = results["ceiling"]
    assert all(ceiling[w]["non_2xx"] == 0 for w in ceiling), ceiling
    # A list page is 20 requests to the original service, one to the project.
    assert baseline["list"]["pages_per_s"] < baseline["list"]["rps"]
    assert project["list"]["pages_per_s"] == project["list"]["rps"]
    # master, 2 workers and the webhook sender
    assert report["memory"]["project"]["processes"] == 4
    assert set(report["ratios"]) >= {
        "page_rps_vs_baseline",
        "page_p99_vs_baseline",
        "page_rps_vs_ceiling",
        "list_page_loads_vs_baseline",
        "like_rps_vs_baseline",
        "read_cpu_limits_vs_off",
        "worker_peak_rss_mb",
    }


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
