"""stop() drains and cleans up; kill() cuts short without leaving anyone hanging."""

from __future__ import annotations

import concurrent.futures
import threading
from concurrent.futures import Future
from typing import Any

import pytest

from tasker import (
    CancelledError,
    ManagerClosedError,
    ManagerState,
    TaskManager,
    current_task,
)
from tests.helpers import EventLog, Resource, Resources, SwitchPolicy, build


def identity(value: int, _resource: object) -> int:
    return value


def worker_threads(manager: TaskManager[Any]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"{manager.name}-")]


class TestStop:
    def test_no_thread_outlives_stop(self, resources: Resources) -> None:
        manager = build(resources, 3, pool=1)
        assert len(worker_threads(manager)) == 4  # 3 workers + the supervisor
        for _ in range(10):
            manager.submit(lambda r: None)
        assert manager.stop()
        assert worker_threads(manager) == []

    def test_stop_does_not_add_workers_while_draining(self, resources: Resources) -> None:
        log = EventLog()
        policy = SwitchPolicy(target=1)
        manager = (
            TaskManager.builder()
            .with_resource(resources.create, resources.destroy)
            .with_workers(1, max_workers=4)
            .with_policy(policy)
            .with_logger(log)
            .build()
        )
        started, gate = threading.Event(), threading.Event()
        manager.submit(lambda r: (started.set(), gate.wait(10)))
        assert started.wait(10)
        assert manager.stop(timeout=0.01) is False
        policy.target = 4
        assert not gate.wait(0.1)  # several scaling intervals while stopping
        assert manager.stats().active_workers == 1
        gate.set()
        assert manager.stop(timeout=10)
        assert not log.named("scaling.up")

    def test_stop_refuses_new_work_with_a_runtime_error(self, resources: Resources) -> None:
        manager = build(resources, 2, pool=1)
        manager.stop()
        with pytest.raises(ManagerClosedError, match="stopped") as caught:
            manager.queue_task(lambda r: 1)
        assert isinstance(caught.value, RuntimeError)
        with pytest.raises(ManagerClosedError):
            manager.run_task(lambda r: 1)

    def test_stop_is_idempotent(self, resources: Resources) -> None:
        manager = build(resources, 2, pool=1)
        assert manager.stop()
        assert manager.stop()
        resources.assert_all_destroyed_once()

    def test_stop_with_a_timeout_reports_unfinished_work_and_can_be_awaited_again(
        self, resources: Resources
    ) -> None:
        manager = build(resources, 1, pool=1)
        gate = threading.Event()
        running = manager.submit(lambda r: gate.wait(10))
        assert manager.stop(timeout=0.05) is False
        assert manager.state is ManagerState.STOPPING
        gate.set()
        assert manager.stop(timeout=10) is True
        assert running.result() is True
        resources.assert_all_destroyed_once()

    def test_stop_from_inside_a_task_does_not_deadlock(self, resources: Resources) -> None:
        manager = build(resources, 2, pool=1)
        result = manager.submit(lambda r: manager.stop()).result(timeout=10)
        assert result is False  # started, not waited for
        assert manager.join(10)
        assert manager.state is ManagerState.STOPPED

    def test_stop_from_a_done_callback_does_not_deadlock(self, resources: Resources) -> None:
        manager = build(resources, 2, pool=1)
        called = threading.Event()
        future = manager.submit(lambda r: 1)
        future.add_done_callback(lambda f: (manager.stop(), called.set()))
        assert called.wait(10)
        assert manager.join(10)

    def test_context_manager_stops(self, resources: Resources) -> None:
        with build(resources, 2, pool=1) as manager:
            manager.queue_task(lambda r: None)
        assert manager.state is ManagerState.STOPPED
        resources.assert_all_destroyed_once()

    def test_stop_waits_for_a_run_task_resource_borrowed_during_stop(
        self, resources: Resources
    ) -> None:
        manager = build(resources, 1, pool=1)
        borrowed, release = threading.Event(), threading.Event()

        def slow(_: Resource) -> str:
            borrowed.set()
            release.wait(10)
            return "done"

        results: list[str] = []
        caller = threading.Thread(target=lambda: results.append(manager.run_task(slow)))
        caller.start()
        assert borrowed.wait(10)
        assert not manager.stop(timeout=0.2)  # True would claim every resource destroyed
        release.set()
        caller.join(10)
        assert manager.stop(timeout=10)
        assert results == ["done"]
        resources.assert_all_destroyed_once()


class TestKill:
    def test_kill_cancels_queued_tasks_and_returns_without_waiting(
        self, resources: Resources
    ) -> None:
        manager = build(resources, 1, pool=1)
        stuck_started, unstick = threading.Event(), threading.Event()

        def stuck(_: Resource) -> str:
            stuck_started.set()
            unstick.wait(10)
            return "finished late"

        running = manager.submit(stuck)
        assert stuck_started.wait(10)
        queued = [manager.submit(lambda r: "never") for _ in range(5)]
        report = manager.kill()
        assert report.cancelled_tasks == 5
        assert report.abandoned_tasks == 1
        for f in queued:
            assert f.cancelled()
        with pytest.raises(CancelledError):
            running.result(timeout=0)  # the caller is not left hanging
        assert manager.state is ManagerState.KILLED
        # the running task's resource is destroyed once the task returns
        worker_resource = resources.created[-1]
        assert resources.destroyed[worker_resource.rid] == 0
        unstick.set()
        assert manager.join(10)
        resources.assert_all_destroyed_once()

    def test_callers_blocked_in_queue_task_get_cancelled_error(self, resources: Resources) -> None:
        manager = build(resources, 1, pool=1)
        gate = threading.Event()
        manager.submit(lambda r: gate.wait(10))
        outcomes: list[BaseException] = []
        ready = threading.Barrier(4)

        def caller() -> None:
            ready.wait(10)
            try:
                manager.queue_task(lambda r: "never")
            except BaseException as error:
                outcomes.append(error)

        callers = [threading.Thread(target=caller) for _ in range(3)]
        for t in callers:
            t.start()
        ready.wait(10)
        while manager.stats().queued_tasks < 3:
            gate.wait(0.001)
        manager.kill()
        for t in callers:
            t.join(10)
        assert len(outcomes) == 3
        assert all(isinstance(e, CancelledError) for e in outcomes)
        gate.set()
        assert manager.join(10)

    def test_running_tasks_see_the_cancellation_token(self, resources: Resources) -> None:
        manager = build(resources, 1, pool=1)
        started = threading.Event()
        observed: list[bool] = []

        def cooperative(_: Resource) -> None:
            task = current_task()
            assert task is not None
            started.set()
            observed.append(task.sleep(10))  # wakes early when killed
            observed.append(task.cancelled)

        future = manager.submit(cooperative)
        assert started.wait(10)
        manager.kill()
        assert manager.join(10)
        assert observed == [True, True]
        with pytest.raises(CancelledError):
            future.result()
        resources.assert_all_destroyed_once()

    @pytest.mark.parametrize("round_", range(5))
    def test_tasks_that_notice_the_kill_still_end_cancelled(
        self, resources: Resources, round_: int
    ) -> None:
        manager = build(resources, 3, pool=1)
        started = threading.Semaphore(0)

        def cooperative(_: Resource) -> str:
            task = current_task()
            assert task is not None
            started.release()
            task.sleep(10)
            return "interrupted"

        running = [manager.submit(cooperative) for _ in range(3)]
        for _ in range(3):
            assert started.acquire(timeout=10)
        queued = [manager.submit(cooperative) for _ in range(3)]
        report = manager.kill()
        assert (report.cancelled_tasks, report.abandoned_tasks) == (3, 3)
        for future in running + queued:
            assert future.cancelled()
            with pytest.raises(CancelledError):
                future.result(timeout=10)
        assert manager.join(10)
        metrics = manager.metrics()
        assert (metrics.total_tasks_completed, metrics.total_tasks_failed) == (0, 0)
        resources.assert_all_destroyed_once()

    def test_kill_notifies_concurrent_futures_wait(self, resources: Resources) -> None:
        manager = build(resources, 1, pool=1)
        started = threading.Event()
        gate = threading.Event()
        running = manager.submit(lambda r: (started.set(), gate.wait(10)))
        assert started.wait(10)
        waiter = threading.Thread(target=concurrent.futures.wait, args=([running], 10))
        waiter.start()
        manager.kill()
        waiter.join(10)
        assert not waiter.is_alive()
        gate.set()
        assert manager.join(10)

    def test_kill_is_idempotent_and_safe_after_stop(self, resources: Resources) -> None:
        manager = build(resources, 2, pool=1)
        manager.kill()
        again = manager.kill()
        assert (again.cancelled_tasks, again.abandoned_tasks) == (0, 0)
        assert manager.join(10)
        stopped = build(resources, 2, pool=1)
        stopped.stop()
        stopped.kill()
        assert stopped.state is ManagerState.STOPPED
        resources.assert_all_destroyed_once()

    def test_kill_from_inside_a_task(self, resources: Resources) -> None:
        manager = build(resources, 1, pool=1)
        future: Future[object] = manager.submit(lambda r: manager.kill())
        with pytest.raises(CancelledError):
            future.result(timeout=10)
        assert manager.join(10)
        resources.assert_all_destroyed_once()

    def test_kill_from_a_done_callback(self, resources: Resources) -> None:
        manager = build(resources, 1, pool=1)
        done = threading.Event()
        future = manager.submit(lambda r: 1)
        future.add_done_callback(lambda f: (manager.kill(), done.set()))
        assert done.wait(10)
        assert manager.join(10)
        resources.assert_all_destroyed_once()

    def test_kill_after_stop_began_cuts_the_drain_short(self, resources: Resources) -> None:
        manager = build(resources, 1, pool=1)
        started, gate = threading.Event(), threading.Event()
        manager.submit(lambda r: (started.set(), gate.wait(10)))
        assert started.wait(10)
        backlog = [manager.submit(lambda r: None) for _ in range(5)]
        assert manager.stop(timeout=0.01) is False
        report = manager.kill()
        assert report.cancelled_tasks == 5
        assert all(f.cancelled() for f in backlog)
        gate.set()
        assert manager.join(10)
        resources.assert_all_destroyed_once()

    def test_stop_after_kill_does_not_wait_for_stuck_tasks(self, resources: Resources) -> None:
        manager = build(resources, 1, pool=1)
        started, gate = threading.Event(), threading.Event()
        manager.submit(lambda r: (started.set(), gate.wait(10)))
        assert started.wait(10)
        manager.kill()
        assert manager.stop() is False  # a stuck task does not hold stop() hostage
        gate.set()
        assert manager.join(10)
