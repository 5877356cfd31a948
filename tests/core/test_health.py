"""Health checks, retries, worker replacement, at-most-once, and creation failures."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from typing import Any

import pytest

from tasker import (
    Event,
    ManagerBrokenError,
    ManagerState,
    RetriesExhaustedError,
    TaskManager,
    UnhealthyOn,
)
from tests.helpers import EventLog, Resource, Resources, missing_key, wait_until


def build(resources: Resources, log: EventLog | None = None, **kw: float) -> TaskManager[Resource]:
    builder = (
        TaskManager.builder()
        .with_resource(resources.create, resources.destroy)
        .with_workers(1, max_workers=1)
        .with_resource_pool(0)
        .with_policy("fixed")
        .with_health_check(lambda exc: not isinstance(exc, ConnectionError))
        .with_max_retries(int(kw.get("max_retries", 3)))
        .with_backoff(
            initial=0.001, maximum=kw.get("maximum", 0.01), broken_after=kw.get("broken_after", 5)
        )
    )
    if log is not None:
        builder = builder.with_logger(log)
    return builder.build()


class TestHealthyFailures:
    def test_a_healthy_exception_reaches_the_caller_unchanged_and_is_not_retried(
        self, resources: Resources
    ) -> None:
        error = ValueError("bad input")
        calls: list[int] = []

        def task(_: Resource) -> None:
            calls.append(1)
            raise error

        with build(resources) as manager:
            with pytest.raises(ValueError, match="bad input") as caught:
                manager.queue_task(task)
            assert caught.value is error
            assert calls == [1]
            # the same worker, on the same resource, keeps serving
            assert manager.queue_task(lambda r: r.rid) == resources.created[0].rid
            assert len(resources.created) == 1
            assert manager.metrics().total_tasks_failed == 1


class TestUnhealthyFailures:
    def test_an_unhealthy_failure_replaces_the_worker_and_retries_on_a_fresh_resource(
        self, resources: Resources
    ) -> None:
        seen: list[int] = []

        def task(resource: Resource) -> int:
            seen.append(resource.rid)
            if len(seen) == 1:
                raise ConnectionError("connection reset")
            return resource.rid

        log = EventLog()
        with build(resources, log) as manager:
            assert manager.queue_task(task) == 2
            assert seen == [1, 2]
            assert resources.destroyed[1] == 1  # the unhealthy resource, destroyed at once
            assert manager.stats().active_workers == 1
            assert manager.metrics().total_tasks_retried == 1
        replaced = log.named(Event.WORKER_REPLACED)
        assert len(replaced) == 1
        assert replaced[0]["replaced_worker_id"] != replaced[0]["worker_id"]
        assert log.named(Event.TASK_RETRIED)[0]["attempt"] == 1
        resources.assert_all_destroyed_once()

    def test_retries_are_bounded_and_the_caller_gets_the_last_error_chained(
        self, resources: Resources
    ) -> None:
        attempts: list[int] = []

        def task(_: Resource) -> None:
            attempts.append(1)
            raise ConnectionError(f"reset #{len(attempts)}")

        with build(resources, max_retries=2) as manager:
            with pytest.raises(RetriesExhaustedError) as caught:
                manager.queue_task(task)
            assert caught.value.attempts == 3
            assert isinstance(caught.value.__cause__, ConnectionError)
            assert str(caught.value.__cause__) == "reset #3"
            assert len(attempts) == 3
            metrics = manager.metrics()
            assert (metrics.total_tasks_retried, metrics.total_tasks_failed) == (2, 1)
            # the first resource + one replacement per unhealthy failure
            assert resources.wait_for(lambda: len(resources.created) == 4)
        resources.assert_all_destroyed_once()

    def test_zero_retries_fails_on_the_first_unhealthy_error(self, resources: Resources) -> None:
        with build(resources, max_retries=0) as manager, pytest.raises(RetriesExhaustedError):
            manager.queue_task(lambda r: (_ for _ in ()).throw(ConnectionError("x")))

    @pytest.mark.parametrize("priority", [False, True])
    def test_a_once_task_never_runs_twice_but_its_worker_is_still_replaced(
        self, resources: Resources, priority: bool
    ) -> None:
        runs: list[int] = []
        error = ConnectionError("reset")

        def task(resource: Resource) -> None:
            runs.append(resource.rid)
            raise error

        with build(resources) as manager:
            submit = manager.queue_task_with_priority_once if priority else manager.queue_task_once
            with pytest.raises(ConnectionError) as caught:
                submit(task)
            assert caught.value is error
            assert runs == [1]
            assert resources.wait_for(lambda: len(resources.created) == 2)
            assert resources.destroyed[1] == 1
            assert manager.queue_task(lambda r: r.rid) == 2
        resources.assert_all_destroyed_once()

    def test_unhealthy_on_checks_exception_types(self, resources: Resources) -> None:
        class Stale(ConnectionError):
            pass

        manager = (
            TaskManager.builder()
            .with_resource(resources.create, resources.destroy)
            .with_workers(1, max_workers=1)
            .with_health_check(UnhealthyOn(ConnectionError))
            .with_max_retries(0)
            .build()
        )
        with manager:
            with pytest.raises(RetriesExhaustedError):
                manager.queue_task(lambda r: (_ for _ in ()).throw(Stale()))
            with pytest.raises(KeyError):
                manager.queue_task(lambda r: missing_key())

    def test_a_health_check_that_raises_is_logged_and_the_error_delivered(
        self, resources: Resources
    ) -> None:
        log = EventLog()

        def check(exc: BaseException) -> bool:
            raise RuntimeError("check is broken")

        manager = (
            TaskManager.builder()
            .with_resource(resources.create, resources.destroy)
            .with_health_check(check)
            .with_logger(log)
            .build()
        )
        with manager, pytest.raises(KeyError):
            manager.queue_task(lambda r: missing_key())
        assert log.named(Event.HEALTH_CHECK_FAILED)
        assert len(resources.created) == 2  # worker + pool, nothing replaced


class TestCreationFailures:
    def test_a_failing_replacement_is_retried_with_backoff_until_it_recovers(
        self, resources: Resources
    ) -> None:
        recovered = threading.Event()
        resources.fail_create = lambda n: n > 1 and not recovered.is_set()
        log = EventLog()
        with build(resources, log, maximum=0.02) as manager:
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

    def test_a_pool_that_cannot_keep_any_worker_alive_is_broken_not_hung(
        self, resources: Resources
    ) -> None:
        healed = threading.Event()
        resources.fail_create = lambda n: n > 1 and not healed.is_set()
        log = EventLog()
        with build(resources, log, broken_after=0.2) as manager:
            gate = threading.Event()

            def poison(_: Resource) -> None:
                gate.wait(10)
                raise ConnectionError("reset")

            first: Future[Any] = manager.submit(poison)
            queued = [manager.submit(lambda r: r.rid) for _ in range(3)]
            gate.set()
            for future in [first, *queued]:
                with pytest.raises(ManagerBrokenError) as caught:
                    future.result(timeout=10)
                assert isinstance(caught.value.__cause__, ConnectionError)
            assert manager.state is ManagerState.BROKEN
            with pytest.raises(ManagerBrokenError):
                manager.submit(lambda r: r.rid)
            assert log.named(Event.MANAGER_BROKEN)
            healed.set()
            assert wait_until(lambda: manager.state is ManagerState.RUNNING)
            assert manager.queue_task(lambda r: r.rid) == resources.created[-1].rid
        assert log.named(Event.MANAGER_RECOVERED)
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
    def test_on_destroy_errors_are_logged_and_every_resource_still_destroyed(
        self, resources: Resources
    ) -> None:
        resources.fail_destroy = True
        log = EventLog()
        manager = (
            TaskManager.builder()
            .with_resource(resources.create, resources.destroy)
            .with_workers(3)
            .with_resource_pool(2)
            .with_logger(log)
            .build()
        )
        assert manager.stop(timeout=10)
        resources.assert_all_destroyed_once()
        assert len(log.named(Event.RESOURCE_DESTROY_FAILED)) == 5

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
