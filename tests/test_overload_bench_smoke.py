"""`benchmarks/overload.py --quick` runs the sweep, every policy and both memory scenarios."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "overload.py"
POLICIES = ("rate", "queue-depth", "latency", "adaptive")


@pytest.mark.timeout(150)
def test_quick_run_reports_the_sweep_the_policies_and_memory(tmp_path: Path) -> None:
    output = tmp_path / "overload.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--no-plot", "--output", str(output)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=140,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'targets for "adaptive":' in done.stdout
    document = json.loads(output.read_text(encoding="utf-8"))
    assert document["quick"] is True
    assert set(document["policies"]) == set(POLICIES)
    assert len(document["sweep"]) == 2
    assert len(document["targets"]) == 6
    for run in [*document["sweep"], *document["policies"].values()]:
        assert run["workers"], run["name"]
        assert any(rate > 0 for rate in run["goodput"]), run["name"]
    assert set(document["memory"]) == {"queue limit 100", "unbounded queue"}
