"""The examples run to completion, print what they promise and leave no thread behind."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest

from tests.helpers import load_example


def run_example(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> str:
    """Run the example's `main()` in-process and return what it printed."""
    module = load_example(name, monkeypatch)
    module.main()
    return capsys.readouterr().out


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    """Every thread an example starts (workers, supervisors, helpers) is gone when it returns."""
    before = set(threading.enumerate())
    yield
    leftover = [t.name for t in threading.enumerate() if t not in before]
    assert leftover == [], f"threads still running after the example: {leftover}"


def count(pattern: str, text: str) -> int:
    return len(re.findall(pattern, text, flags=re.MULTILINE))


@pytest.mark.timeout(30)
def test_basic(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_example("basic", monkeypatch, capsys)

    assert "Task 1 (addition) result: 35" in out
    assert "Task 2 (subtraction) result: 60" in out
    assert "Task 3 (blocking) result: 42" in out
    assert "Active workers: 2" in out
    assert "Queued tasks: 0" in out
    created = count(r"^INFO: creating calculator #\d+$", out)
    assert created == 4  # two workers and a pool of two
    assert count(r"^INFO: destroying calculator #\d+$", out) == created
    assert "Manager state: stopped" in out
    assert out.rstrip().endswith("Basic usage example finished.")


@pytest.mark.timeout(30)
def test_intermediate(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_example("intermediate", monkeypatch, capsys)

    assert "failed   corrupt-3.jpg: corrupt-3.jpg is not a valid image" in out
    assert "gave up  poison-6.tiff after 3 attempts" in out
    assert "ok       avatar.png done by processor" in out
    assert count(r"^  ok       photo-\d+\.jpg done by processor #\d+", out) == 8
    assert re.search(r"The urgent thumbnail overtook \d+ images", out)
    started = count(r"\[processor #\d+ started\]", out)
    assert started >= 5  # the two first processors, plus one per crash
    assert count(r"\[processor #\d+ shut down\]", out) == started
    assert "Tasks arrived:    11" in out
    assert "Tasks completed:  9" in out
    assert "Tasks failed:     2" in out
    assert out.rstrip().endswith("Intermediate usage example finished.")


@pytest.mark.timeout(30)
def test_advanced(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_example("advanced", monkeypatch, capsys)

    # the custom logger saw the pool grow and shrink
    assert "scaling.up" in out
    assert "scaling.down" in out
    assert "320 requests served" in out
    assert re.search(r"burst\)", out)
    # run_task
    assert count(r"^  urgent call \d: +\d+ ms on (pooled|temporary) client #\d+$", out) == 3
    # retried vs at-most-once
    assert "queue_task:      /balance succeeded on attempt 2" in out
    assert "queue_task_once: not retried: connection reset while calling /charge" in out
    assert "worker.unhealthy" in out
    # stop vs kill
    assert "6 of 6 exports completed" in out
    assert "6 of 6 callers got CancelledError" in out
    # the custom collector and the built-in metrics agree on the essentials
    assert re.search(r"^  once\s+1\s+0\s+1$", out, flags=re.MULTILINE)
    assert "1 failed, 1 retried" in out
    assert re.search(r"API clients opened: \d+, still open: 0", out)
    assert out.rstrip().endswith("Advanced usage example finished.")


@pytest.mark.timeout(30)
def test_demo(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TASKER_DEMO_FAST", "1")
    out = run_example("demo", monkeypatch, capsys)

    # act 1: the dropped connection is invisible to the caller
    assert "lost: server closed it; worker reconnects" in out
    assert "<- attempt 2, after a dropped connection" in out
    assert "8 of 8 queries succeeded" in out
    # act 2: the priority checkouts overtake the backlog
    order = re.search(r"completion order \(P = checkout, \. = report\): ([.P]+)$", out, re.M)
    assert order is not None
    assert sorted(set(order.group(1))) == [".", "P"]
    assert order.group(1).count("P") == 5
    assert "reports queued before them were still waiting" in out
    # act 3: live stats lines, from a separate thread
    assert count(r"^ +\d+\.\ds  workers +\d+ \( *\d+ burst\)", out) >= 3
    assert "surge done:" in out
    # act 4: the final tables
    for label in ("run time", "wait in queue", "success rate", "peak workers"):
        assert f"| {label}" in out
    connections = re.search(r"\| connections opened / closed\s+\|\s+(\d+) / (\d+) \|", out)
    assert connections is not None
    assert connections.group(1) == connections.group(2)
    assert re.search(r"Done in \d+\.\d s; manager stopped\.$", out.rstrip())


@pytest.mark.timeout(30)
def test_async_fetch(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_example("async_fetch", monkeypatch, capsys)

    assert count(r"^  200 OK /page/\d via session \d \[req-1\]$", out) == 4
    assert "(attempt 2)" in out  # the dropped session was replaced and the request retried
    assert "timed out after 0.05 s" in out
    assert "the caller gave up" in out
    closed = sorted(int(sid) for sid in re.findall(r"^  closed session (\d+) after", out, re.M))
    assert closed == list(range(1, len(closed) + 1))  # every session opened is closed, once
    assert len(closed) >= 3  # two workers + one replacement (+ a burst worker, load permitting)
    assert "manager http: stopped" in out
