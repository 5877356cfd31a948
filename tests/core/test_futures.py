"""Futures: cancellation, callbacks, the running task, and the standard-library interfaces."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
from typing import Any

import pytest

from tasker import Event, TaskFuture, current_task
from tests.helpers import EventLog, Resource, Resources, build


def square(i: int, _resource: object) -> int:
    return i * i


class TestCancel:
    def test_cancelling_a_queued_task_removes_it_at_once(self, resources: Resources) -> None:
        ran: list[int] = []
        with build(resources) as manager:
            started, gate = threading.Event(), threading.Event()
            held = manager.submit(lambda r: (started.set(), gate.wait(10)))
            assert started.wait(10)
            doomed = manager.submit(lambda r: ran.append(1))
            kept = manager.submit(lambda r: ran.append(2))
            assert manager.stats().queued_tasks == 2
            assert doomed.cancel()
            assert doomed.cancelled()
            assert manager.stats().queued_tasks == 1
            gate.set()
            kept.result(timeout=10)
            held.result(timeout=10)
        assert ran == [2]

    def test_a_running_task_cannot_be_cancelled(self, resources: Resources) -> None:
        with build(resources) as manager:
            started, gate = threading.Event(), threading.Event()
            future = manager.submit(lambda r: (started.set(), gate.wait(10))[1])
            assert started.wait(10)
            assert not future.cancel()
            gate.set()
            assert future.result(timeout=10) is True

    def test_wait_and_as_completed_see_a_cancelled_queued_task(self, resources: Resources) -> None:
        with build(resources) as manager:
            started, gate = threading.Event(), threading.Event()
            held = manager.submit(lambda r: (started.set(), gate.wait(10)))
            assert started.wait(10)
            doomed = manager.submit(lambda r: None)
            assert doomed.cancel()
            done, _ = concurrent.futures.wait([doomed], timeout=10)
            assert done == {doomed}
            assert list(concurrent.futures.as_completed([doomed], timeout=10)) == [doomed]
            gate.set()
            held.result(timeout=10)

    def test_cancelled_tasks_do_not_block_stop(self, resources: Resources) -> None:
        manager = build(resources)
        gate = threading.Event()
        manager.submit(lambda r: gate.wait(10))
        for future in [manager.submit(lambda r: None) for _ in range(10)]:
            future.cancel()
        gate.set()
        assert manager.stop(timeout=10)


class TestCallbacks:
    def test_a_raising_done_callback_is_logged_and_the_worker_keeps_going(
        self, resources: Resources
    ) -> None:
        log = EventLog()
        called = threading.Event()

        def bad(_: concurrent.futures.Future[int]) -> None:
            called.set()
            raise RuntimeError("callback bug")

        with build(resources, log=log) as manager:
            future = manager.submit(lambda r: 1)
            future.add_done_callback(bad)
            assert called.wait(10)
            assert manager.queue_task(lambda r: 2) == 2
            future.add_done_callback(bad)  # already done: runs now, still contained
        failures = log.named(Event.CALLBACK_FAILED)
        assert len(failures) == 2
        assert isinstance(failures[0]["error"], RuntimeError)

    def test_callbacks_run_once_with_the_future(self, resources: Resources) -> None:
        seen: list[int] = []
        with build(resources) as manager:
            future = manager.submit(lambda r: 7)
            done = threading.Event()
            future.add_done_callback(lambda f: (seen.append(f.result()), done.set()))
            assert done.wait(10)
        assert seen == [7]


class TestContext:
    def test_current_task_describes_the_running_task(self, resources: Resources) -> None:
        assert current_task() is None
        with build(resources) as manager:

            def describe(resource: Resource) -> tuple[int, int, bool, bool, bool]:
                task = current_task()
                assert task is not None
                return (
                    task.task_id,
                    task.attempt,
                    task.priority,
                    task.once,
                    task.resource is resource,
                )

            info = manager.queue_task_with_priority_once(describe)
        task_id, attempt, priority, once, same_resource = info
        assert task_id >= 1
        assert (attempt, priority, once, same_resource) == (1, True, True, True)


class TestStandardInterfaces:
    def test_submit_returns_a_concurrent_future(self, resources: Resources) -> None:
        with build(resources) as manager:
            futures = [manager.submit(functools.partial(square, i)) for i in range(10)]
            assert all(isinstance(f, concurrent.futures.Future) for f in futures)
            assert isinstance(futures[0], TaskFuture)
            _, not_done = concurrent.futures.wait(futures, timeout=10)
            assert not not_done
            got = sorted(f.result() for f in concurrent.futures.as_completed(futures, timeout=10))
            assert got == [i * i for i in range(10)]

    @pytest.mark.parametrize(
        "return_when",
        [
            concurrent.futures.FIRST_EXCEPTION,
            concurrent.futures.FIRST_COMPLETED,
            concurrent.futures.ALL_COMPLETED,
        ],
    )
    def test_wait_works_on_finished_futures(self, resources: Resources, return_when: str) -> None:
        with build(resources) as manager:
            ok = manager.submit(lambda r: 1)
            bad = manager.submit(lambda r: 1 / 0)
            ok.result(timeout=10)
            bad.exception(timeout=10)
            both: list[concurrent.futures.Future[Any]] = [ok, bad]
            done, not_done = concurrent.futures.wait(both, timeout=10, return_when=return_when)
            assert done == {ok, bad}
            assert not not_done

    def test_result_and_exception_time_out(self, resources: Resources) -> None:
        with build(resources) as manager:
            gate = threading.Event()
            future = manager.submit(lambda r: gate.wait(10))
            with pytest.raises(TimeoutError):
                future.result(timeout=0.01)
            with pytest.raises(TimeoutError):
                future.exception(timeout=0.01)
            gate.set()
            assert future.exception(timeout=10) is None

    def test_many_threads_can_wait_on_one_future(self, resources: Resources) -> None:
        with build(resources) as manager:
            gate = threading.Event()
            future = manager.submit(lambda r: (gate.wait(10), "shared")[1])
            results: list[str] = []
            waiters = [threading.Thread(target=lambda: results.append(future.result(10)))]
            waiters *= 1
            waiters += [
                threading.Thread(target=lambda: results.append(future.result(10))) for _ in range(7)
            ]
            for t in waiters:
                t.start()
            gate.set()
            for t in waiters:
                t.join(10)
            assert results == ["shared"] * 8

    def test_asyncio_can_await_a_task(self, resources: Resources) -> None:
        with build(resources) as manager:

            async def main() -> int:
                return await asyncio.wrap_future(manager.submit(lambda r: 5))

            assert asyncio.run(main()) == 5

    def test_task_future_has_every_attribute_of_a_future(self) -> None:
        plain: concurrent.futures.Future[int] = concurrent.futures.Future()
        assert set(vars(plain)) <= set(TaskFuture.__slots__)

    def test_as_executor_is_a_drop_in_executor(self, resources: Resources) -> None:
        manager = build(resources)
        with manager.as_executor() as executor:
            assert executor.submit(pow, 2, 10).result(timeout=10) == 1024
            assert list(executor.map(abs, [-1, -2, 3])) == [1, 2, 3]
            rid = executor.submit(lambda: current_task().resource.rid).result(timeout=10)  # type: ignore[union-attr]
            assert rid == resources.created[-1].rid
        assert manager.state.value == "stopped"

    def test_executor_shutdown_can_cancel_pending_futures(self, resources: Resources) -> None:
        manager = build(resources)
        executor = manager.as_executor()
        started, gate = threading.Event(), threading.Event()
        held = executor.submit(lambda: (started.set(), gate.wait(10))[1])
        assert started.wait(10)
        pending = [executor.submit(abs, -1) for _ in range(5)]
        stopper = threading.Thread(target=lambda: executor.shutdown(wait=True, cancel_futures=True))
        stopper.start()
        gate.set()
        stopper.join(10)
        assert held.result() is True
        assert all(f.cancelled() for f in pending)
        done, _ = concurrent.futures.wait(pending, timeout=10)
        assert done == set(pending)

    def test_executor_shutdown_lets_go_of_cancelled_functions(self, resources: Resources) -> None:
        import gc
        import weakref

        class Job:
            def __call__(self) -> None:
                pass

        manager = build(resources)
        executor = manager.as_executor()
        started, gate = threading.Event(), threading.Event()
        held = executor.submit(lambda: (started.set(), gate.wait(10))[1])
        assert started.wait(10)
        job = Job()
        watched = weakref.ref(job)
        pending = executor.submit(job)
        del job
        stopper = threading.Thread(target=lambda: executor.shutdown(wait=True, cancel_futures=True))
        stopper.start()
        gate.set()
        stopper.join(10)
        assert held.result() is True
        assert pending.cancelled()
        gc.collect()
        assert watched() is None  # the cancelled future keeps no reference to it

    def test_interrupting_queue_task_cancels_the_queued_task(
        self, resources: Resources, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.CRITICAL)
        with build(resources) as manager:
            gate = threading.Event()
            started = threading.Event()
            manager.submit(lambda r: (started.set(), gate.wait(10)))
            assert started.wait(10)
            ran: list[int] = []
            original = TaskFuture.result

            def interrupted(
                self: concurrent.futures.Future[object], timeout: float | None = None
            ) -> object:
                raise KeyboardInterrupt

            TaskFuture.result = interrupted  # type: ignore[method-assign,assignment]
            try:
                with pytest.raises(KeyboardInterrupt):
                    manager.queue_task(lambda r: ran.append(1))
            finally:
                TaskFuture.result = original  # type: ignore[method-assign]
            assert manager.stats().queued_tasks == 0
            gate.set()
        assert ran == []
