"""The observability benchmark runs end to end (tiny rounds; no timing asserted)."""

import shutil

import pytest

from tests.conftest import need

pytestmark = pytest.mark.live


def test_observability_benchmark_compares_the_three_variants(tmp_path):
    need(shutil.which("wrk") is not None, "wrk is not installed (apt-get install wrk)")
    from tests.benchmarks import observability

    output = tmp_path / "observability.json"
    report = observability.main(
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
    assert set(report["results"]) == {"on", "no-metrics", "off"}
    for name, row in report["results"].items():
        assert row["requests"] > 0, name
        assert row["non_2xx"] == 0, name
        assert row["cpu_us_per_request"] > 0, name
    assert set(report["cost"]) == {"rps", "cpu_us_per_request"}
