"""`benchmarks/run.py --quick` runs every scenario end to end and reports each of them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"

QuickRun = tuple[subprocess.CompletedProcess[str], Path]
"""The finished `--quick` run and the JSON file it wrote."""

SCENARIO_TITLES = (
    "a. throughput",
    "b. blocking-call latency, idle",
    "b. blocking-call latency, back-to-back",
    "c. blocking tasks",
    "d. percentiles",
)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> QuickRun:
    output = tmp_path_factory.mktemp("bench") / "quick.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=110,
        check=False,
    )
    return done, output


class TestQuickBenchmarkRun:
    @pytest.mark.timeout(120)
    def test_exits_successfully(self, quick_run: QuickRun) -> None:
        done, _ = quick_run
        assert done.returncode == 0, done.stderr[-3000:]

    @pytest.mark.timeout(120)
    def test_table_mentions_every_scenario(self, quick_run: QuickRun) -> None:
        done, _ = quick_run
        for title in SCENARIO_TITLES:
            assert title in done.stdout
        assert "ThreadPoolExecutor" in done.stdout
        assert "tasker queue_task(f)" in done.stdout
        assert "QuantileSketch" in done.stdout
        assert "ERROR" not in done.stdout

    @pytest.mark.timeout(120)
    def test_writes_every_variant_to_json(self, quick_run: QuickRun) -> None:
        _, output = quick_run
        document = json.loads(output.read_text(encoding="utf-8"))
        assert document["quick"] is True
        variants = document["variants"]
        assert {key.split(".")[0] for key in variants} == {"a", "b", "c", "d"}
        for key, result in variants.items():
            assert "error" not in result, key
            assert result["median"], key
        assert document["checks"]
