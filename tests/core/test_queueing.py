"""Ordering through the thread API, past what every executor shares (test_executors.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

from tasker import TaskManager, current_task
from tests.helpers import Resource, Resources, build, settle


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
    def test_queue_task_with_priority_overtakes_a_backlog(self, resources: Resources) -> None:
        order: list[str] = []
        with build(resources) as manager:
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


class TestRetryOrder:
    # the task submits to its own manager, which a task in a child process cannot reach
    def test_a_retried_normal_task_does_not_jump_priority_work(self, resources: Resources) -> None:
        order: list[str] = []
        urgent: list[Future[str]] = []
        with build(resources) as manager:

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
