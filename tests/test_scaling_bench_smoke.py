"""`benchmarks/scaling.py --quick` runs every scaling policy through the load profile."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scaling.py"
POLICIES = ("rate", "queue-depth", "latency", "fixed", "go-lifetime")


@pytest.mark.timeout(120)
def test_quick_run_reports_every_policy(tmp_path: Path) -> None:
    output = tmp_path / "scaling.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--no-plot", "--output", str(output)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = done.stdout.splitlines()
    for policy in POLICIES:
        assert any(row.startswith(f"{policy} ") for row in rows), policy
    assert 'targets for "rate":' in done.stdout
    document = json.loads(output.read_text(encoding="utf-8"))
    assert document["quick"] is True
    assert set(document["policies"]) == set(POLICIES)
    for policy, result in document["policies"].items():
        assert result["samples"], policy
        assert result["tasks"] > 0, policy
    assert len(document["targets"]["rate"]) == 3
