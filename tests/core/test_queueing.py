"""Priority and ordering: priority before normal, FIFO within each, retries keep their turn."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from tasker import TaskManager, UnhealthyOn, current_task
from tests.helpers import Resource, Resources, settle


def single_worker(resources: Resources, **options: Any) -> TaskManager[Resource]:
    builder = (
        TaskManager.builder()
        .with_resource(resources.create, resources.destroy)
        .with_workers(1, max_workers=1)
        .with_policy("fixed")
        .with_health_check(UnhealthyOn(ConnectionError))
        .with_backoff(initial=0.001, maximum=0.01)
    )
    if "max_retries" in options:
        builder = builder.with_max_retries(options["max_retries"])
    return builder.build()


def blocker(manager: TaskManager[Resource]) -> tuple[threading.Event, Future[None]]:
    """Occupy the single worker until the returned event is set."""
    started, release = threading.Event(), threading.Event()

    def hold(_: Resource) -> None:
        started.set()
        assert release.wait(10)

    future = manager.submit(hold)
    assert started.wait(10)
    return release, future


def recorder(order: list[str], name: str) -> Callable[[Resource], str]:
    def task(_: Resource) -> str:
        order.append(name)
        return name

    return task


class TestPriority:
    def test_priority_tasks_run_before_queued_normal_tasks(self, resources: Resources) -> None:
        order: list[str] = []
        with single_worker(resources) as manager:
            release, held = blocker(manager)
            futures = [manager.submit(recorder(order, f"n{i}")) for i in range(3)]
            futures += [manager.submit(recorder(order, f"p{i}"), priority=True) for i in range(3)]
            assert manager.stats().queued_tasks == 3
            assert manager.stats().priority_tasks == 3
            release.set()
            settle(held, *futures)
        assert order == ["p0", "p1", "p2", "n0", "n1", "n2"]

    def test_queue_task_with_priority_overtakes_a_backlog(self, resources: Resources) -> None:
        order: list[str] = []
        with single_worker(resources) as manager:
            release, held = blocker(manager)
            backlog = [manager.submit(recorder(order, f"n{i}")) for i in range(5)]
            result: list[str] = []
            caller = threading.Thread(
                target=lambda: result.append(
                    manager.queue_task_with_priority(recorder(order, "urgent"))
                )
            )
            caller.start()
            while manager.stats().priority_tasks == 0 and caller.is_alive():
                caller.join(0.001)
            release.set()
            caller.join(10)
            settle(held, *backlog)
        assert result == ["urgent"]
        assert order[0] == "urgent"

    def test_fifo_within_the_main_queue(self, resources: Resources) -> None:
        order: list[str] = []
        with single_worker(resources) as manager:
            release, held = blocker(manager)
            futures = [manager.submit(recorder(order, str(i))) for i in range(20)]
            release.set()
            settle(held, *futures)
        assert order == [str(i) for i in range(20)]


class TestRetryOrder:
    def test_a_retried_task_runs_before_tasks_queued_behind_it(self, resources: Resources) -> None:
        order: list[str] = []
        with single_worker(resources) as manager:
            release, held = blocker(manager)

            def flaky(resource: Resource) -> str:
                task = current_task()
                assert task is not None
                order.append(f"flaky#{task.attempt}")
                if task.attempt == 1:
                    raise ConnectionError("connection reset")
                return "ok"

            first = manager.submit(flaky)
            rest = [manager.submit(recorder(order, f"n{i}")) for i in range(3)]
            release.set()
            assert first.result(timeout=10) == "ok"
            settle(held, *rest)
        assert order == ["flaky#1", "flaky#2", "n0", "n1", "n2"]

    def test_a_retried_normal_task_does_not_jump_priority_work(self, resources: Resources) -> None:
        order: list[str] = []
        urgent: list[Future[str]] = []
        with single_worker(resources) as manager:

            def flaky(resource: Resource) -> None:
                task = current_task()
                assert task is not None
                order.append(f"flaky#{task.attempt}")
                if task.attempt == 1:
                    urgent.append(manager.submit(recorder(order, "p"), priority=True))
                    raise ConnectionError("connection reset")

            manager.submit(flaky).result(timeout=10)
            urgent[0].result(timeout=10)
        assert order == ["flaky#1", "p", "flaky#2"]
