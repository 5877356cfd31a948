"""`benchmarks/run.py --quick` runs every scenario end to end and reports each of them."""

from __future__ import annotations

import json
import re
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
    "e. asyncio throughput",
    "f. asyncio sleeps",
    "g. plugin overhead",
    "h. cancellation",
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
        assert "tasker AsyncTaskManager" in done.stdout
        assert "asyncio.gather + Semaphore" in done.stdout
        assert "uvloop: tasker AsyncTaskManager" in done.stdout
        assert "ERROR" not in done.stdout
        assert "(not run)" not in done.stdout

    @pytest.mark.timeout(120)
    def test_asyncio_scenarios_report_every_variant(self, quick_run: QuickRun) -> None:
        done, output = quick_run
        variants = json.loads(output.read_text(encoding="utf-8"))["variants"]
        expected = {
            "e.queue",
            "e.gather",
            "e.tasker",
            "e.uvloop.queue",
            "e.uvloop.tasker",
            "f.calibration",
            "f.queue",
            "f.gather",
            "f.tasker",
        }
        assert expected <= variants.keys()
        rows = done.stdout.splitlines()
        for key in expected:
            assert "error" not in variants[key], key
            assert variants[key]["median"], key
            if key != "f.calibration":  # shown as the adjusted ideal, not under its label
                label = variants[key]["label"]
                assert any(row.startswith(f"  {label} ") for row in rows), key
        scenario_f = done.stdout[done.stdout.index("f. asyncio sleeps") :]
        assert "ideal with the measured sleep" in scenario_f

    @pytest.mark.timeout(120)
    def test_plugin_overhead_reports_every_variant(self, quick_run: QuickRun) -> None:
        done, output = quick_run
        variants = json.loads(output.read_text(encoding="utf-8"))["variants"]
        keys = ("g.none", "g.observer", "g.finished", "g.noautoload")
        assert set(keys) <= variants.keys()
        assert variants["g.noautoload"]["env"] == {"TASKER_DISABLE_PLUGIN_AUTOLOAD": "1"}
        scenario_g = done.stdout[done.stdout.index("g. plugin overhead") :].splitlines()
        for key in keys:
            assert "error" not in variants[key], key
            assert variants[key]["median"]["us_per_task"] > 0, key
            label = variants[key]["label"]
            (row,) = [row for row in scenario_g if row.startswith(f"  {label} ")]
            if key != "g.none":  # the others show their ratio and cost per task over it
                assert re.search(r" \d+\.\d\d, [+-]\d+\.\d\d us/task", row), key

    @pytest.mark.timeout(120)
    def test_writes_every_variant_to_json(self, quick_run: QuickRun) -> None:
        _, output = quick_run
        document = json.loads(output.read_text(encoding="utf-8"))
        assert document["quick"] is True
        variants = document["variants"]
        assert {key.split(".")[0] for key in variants} == {"a", "b", "c", "d", "e", "f", "g", "h"}
        for key, result in variants.items():
            assert "error" not in result, key
            assert result["median"], key
        assert document["checks"]


@pytest.mark.timeout(180)
def test_the_process_benchmark_runs_and_loses_no_task(tmp_path: Path) -> None:
    output = tmp_path / "process.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT.with_name("process.py")), "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=170,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(output.read_text(encoding="utf-8"))
    assert set(report["cpu"]) == {
        "tasker process",
        "tasker, none ahead",
        "tasker thread",
        "ProcessPoolExecutor",
        "loky",
    }
    assert report["crash"]["tasker lost"] == 0
    assert report["crash"]["tasker failed"] == 0
    assert report["hung"]["caller answered after (s)"] > 0
    assert set(report["burst"]) == {"start-up aware", "start-up blind"}
