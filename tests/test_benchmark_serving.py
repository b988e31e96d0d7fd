"""The serving benchmark runs every model and reports what it measured.

No timing is asserted: the numbers come from ``make bench-serving``.
"""

import json
import shutil

import pytest

from tests.conftest import need


@pytest.mark.live
def test_serving_benchmark_measures_each_model_alone_and_with_slow_clients(tmp_path):
    need(shutil.which("wrk") is not None, "wrk is not installed (apt-get install wrk)")
    from tests.benchmarks import serving

    output = tmp_path / "serving.json"
    report = serving.main(
        [
            "--duration",
            "1",
            "--connections",
            "2",
            "--slow-clients",
            "2",
            "--models",
            "sync,asgi",
            "--output",
            str(output),
        ]
    )

    assert json.loads(output.read_text())["models"].keys() == {"sync", "asgi"}
    for model, runs in report["models"].items():
        assert set(runs) == {"alone", "slow_clients"}, model
        assert runs["alone"]["rps"] > 0
        assert runs["alone"]["errors"] == 0
        assert runs["alone"]["cpu_us_per_request"] > 0
    # The asyncio front keeps answering while slow clients hold connections.
    assert report["models"]["asgi"]["slow_clients"]["errors"] == 0
    assert report["models"]["asgi"]["slow_clients"]["rps"] > 0
