"""The Prometheus example: tasker's counters on a loopback /metrics page, scraped for real."""

from __future__ import annotations

import importlib.util
import re
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tasker import TaskManager
from tasker_otel import observe

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
        with manager, observe(manager, meter_provider=provider):
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
def test_the_example_runs(example: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    example.main()
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
