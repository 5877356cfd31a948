"""The Prometheus example: tasker's counters on a loopback /metrics page, scraped for real."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tasker import TaskManager

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "otel_prometheus.py"


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("tasker_example_otel_prometheus", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    before = set(threading.enumerate())
    yield module
    leftover = [t.name for t in threading.enumerate() if t not in before]
    assert leftover == [], f"threads still running: {leftover}"


def missing(_: None) -> None:
    raise KeyError("missing")


def sample(page: str, metric: str, **labels: str) -> float:
    """The value of the one series of `metric` carrying `labels`."""
    found = []
    for line in page.splitlines():
        match = re.fullmatch(rf"{metric}\{{(.*)\}} (\S+)", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            found.append(float(match.group(2)))
    assert len(found) == 1, f"{metric}{labels}: {found} in\n{page}"
    return found[0]


@pytest.mark.timeout(30)
def test_a_scrape_finds_the_task_counters(example: ModuleType) -> None:
    with example.prometheus_endpoint() as (url, provider):
        assert url.startswith("http://127.0.0.1:")
        manager = (
            TaskManager.builder()
            .with_name("scraped")
            .with_logger("null")
            .with_metrics("otel", meter_provider=provider, manager="scraped")
            .build()
        )
        with manager:  # the collector observes its manager: no observe() needed for the gauges
            for _ in range(3):
                manager.queue_task(lambda r: None)
            manager.submit(lambda r: None, priority=True).result(10)
            with pytest.raises(KeyError):
                manager.queue_task(missing)
            page = example.scrape(url)
    main = {"tasker_manager": "scraped", "tasker_queue": "main"}
    assert sample(page, "tasker_task_submitted_total", **main) == 4
    assert sample(page, "tasker_task_completed_total", **main) == 3
    assert sample(page, "tasker_task_completed_total", tasker_queue="priority") == 1
    assert sample(page, "tasker_task_failed_total", error_type="KeyError") == 1
    completed = {**main, "tasker_task_outcome": "completed"}
    assert sample(page, "tasker_task_duration_seconds_count", **completed) == 3
    assert sample(page, "tasker_task_wait_time_seconds_count", **main) == 4
    assert sample(page, "tasker_worker_count", tasker_worker_kind="base") == 1
    assert sample(page, "tasker_queue_depth", **main) == 0
    # the endpoint is gone once the block exits
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)


@pytest.mark.timeout(30)
def test_the_example_self_test(example: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    example.main(["--self-test", "--port", "0"])
    out = capsys.readouterr().out
    assert out.count("ok      thumb-") == 5
    assert "failed  corrupt.png is not an image" in out
    assert re.search(
        r'^  tasker_task_retried_total\{.*error_type="ConnectionError".*\} 1\.0$', out, re.M
    )
    assert re.search(
        r'^  tasker_task_completed_total\{.*tasker_queue="priority".*\} 1\.0$', out, re.M
    )
    assert re.search(r"^scraped http://127\.0\.0\.1:\d+/metrics:$", out, re.M)
    assert re.search(r'^  tasker_worker_count\{.*tasker_worker_kind="base".*\} 2\.0$', out, re.M)


def test_the_documented_port(example: ModuleType) -> None:
    assert example.PORT == 9464
    assert "127.0.0.1:9464/metrics" in (example.__doc__ or "")


@pytest.mark.timeout(60)
def test_the_example_serves_until_interrupted() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        lines = []
        for line in child.stdout:  # bounded by the test's timeout
            lines.append(line)
            if line.startswith("serving "):
                break
        serving = re.match(
            r"serving (http://127\.0\.0\.1:\d+/metrics) until interrupted", lines[-1]
        )
        assert serving, lines
        with urllib.request.urlopen(serving.group(1), timeout=10) as response:
            page = response.read().decode()
        assert sample(page, "tasker_task_completed_total", tasker_queue="priority") >= 1
        assert child.poll() is None  # still serving after a scrape
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err
    assert "stopped: the manager drained its queues" in out
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(serving.group(1), timeout=2)
