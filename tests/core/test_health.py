"""Health checks and creation failures, past what every executor shares (test_executors.py)."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from tasker import (
    Event,
    ManagerBrokenError,
    ManagerState,
    RetriesExhaustedError,
    TaskManager,
    UnhealthyOn,
)
from tests.helpers import EventLog, Resources, build, builder, missing_key


class TestHealthChecks:
    def test_unhealthy_on_checks_exception_types(self, resources: Resources) -> None:
        class Stale(ConnectionError):
            pass

        checked = builder(resources, max_retries=0).with_health_check(UnhealthyOn(ConnectionError))
        with checked.build() as manager:
            with pytest.raises(RetriesExhaustedError):
                manager.queue_task(lambda r: (_ for _ in ()).throw(Stale()))
            with pytest.raises(KeyError):
                manager.queue_task(lambda r: missing_key())


class TestCreationFailures:
    def test_a_failing_replacement_is_retried_with_backoff_until_it_recovers(
        self, resources: Resources
    ) -> None:
        recovered = threading.Event()
        resources.fail_create = lambda n: n > 1 and not recovered.is_set()
        log = EventLog()
        with build(resources, log=log, backoff_max=0.02) as manager:
            future = manager.submit(
                lambda r: (_ for _ in ()).throw(ConnectionError("reset")) if r.rid == 1 else r.rid
            )
            assert resources.wait_for(lambda: resources.create_calls >= 4)
            started = time.monotonic()
            calls_before = resources.create_calls
            assert not recovered.wait(0.2)  # observe the backoff for a while
            calls = resources.create_calls - calls_before
            elapsed = time.monotonic() - started
            assert calls <= elapsed / 0.01 + 2, f"{calls} creations in {elapsed:.2f}s: a busy loop"
            recovered.set()
            assert future.result(timeout=10) == 2
            assert manager.state is ManagerState.RUNNING
        assert log.named(Event.RESOURCE_CREATE_FAILED)
        resources.assert_all_destroyed_once()

    def test_stop_while_broken_finishes(self, resources: Resources) -> None:
        resources.fail_create = lambda n: n > 1
        manager = build(resources, broken_after=0.1)
        future = manager.submit(lambda r: (_ for _ in ()).throw(ConnectionError("reset")))
        with pytest.raises(ManagerBrokenError):
            future.result(timeout=10)
        assert manager.stop(timeout=10)
        assert manager.state is ManagerState.STOPPED
        resources.assert_all_destroyed_once()


class TestDestroyFailures:
    def test_stdlib_logging_gets_structured_records(
        self, resources: Resources, caplog: pytest.LogCaptureFixture
    ) -> None:
        resources.fail_destroy = True
        with caplog.at_level(logging.ERROR, logger="tasker"):
            TaskManager.builder().with_resource(resources.create, resources.destroy).build().stop(
                timeout=10
            )
        records = [
            r for r in caplog.records if getattr(r, "event", None) == "resource.destroy_failed"
        ]
        assert records
        assert records[0].tasker["manager"].startswith("tasker-")  # type: ignore[attr-defined]
        assert "resource.destroy_failed" in records[0].getMessage()
