"""The manager's and the workers' lifecycles are written once; each runtime only performs them."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Generator
from typing import Any, cast

import pytest

from tasker import ResourceCreationError, TaskManager
from tasker._asyncio import AsyncRuntime
from tasker._core import Core
from tasker._lifecycle import ACTIONS, Step, Steps, drive
from tasker._queue import EXIT, TASK
from tasker._threads import ThreadRuntime
from tasker._worker import Worker
from tests.drivers import Driver, each_executor
from tests.helpers import Resource, Resources, build, wait_until


class TestRuntimesPerformEveryAction:
    def test_the_thread_runtime_performs_each_action_by_calling(self) -> None:
        for action in ACTIONS:
            method = getattr(ThreadRuntime, action)
            assert not inspect.iscoroutinefunction(method), action

    def test_the_asyncio_runtime_performs_each_action_by_awaiting(self) -> None:
        for action in ACTIONS:
            assert inspect.iscoroutinefunction(getattr(AsyncRuntime, action)), action


class _Performer:
    """Performs `double` by calling, and fails `boom`."""

    def double(self, n: int) -> int:
        return 2 * n

    def boom(self) -> None:
        raise ValueError("boom")

    def perform(self, step: Step) -> Generator[Any, Any, Any]:
        yield from ()
        return getattr(self, step.action)(*step.args)


class TestDrive:
    def test_the_outcome_of_each_step_is_sent_back_and_the_lifecycle_returns(self) -> None:
        def lifecycle() -> Steps[int]:
            a: int = yield Step("double", (2,))
            b: int = yield Step("double", (a,))
            return b + 1

        with pytest.raises(StopIteration) as done:
            drive(lifecycle(), _Performer().perform).send(None)
        assert done.value.value == 9

    def test_a_failed_step_is_thrown_into_the_lifecycle_which_decides(self) -> None:
        seen: list[BaseException] = []

        def lifecycle() -> Steps[str]:
            try:
                yield Step("boom")
            except ValueError as error:
                seen.append(error)
            return "recovered"

        with pytest.raises(StopIteration) as done:
            drive(lifecycle(), _Performer().perform).send(None)
        assert done.value.value == "recovered"
        assert [str(e) for e in seen] == ["boom"]

    def test_an_undecided_failure_leaves_the_driver(self) -> None:
        def lifecycle() -> Steps[None]:
            yield Step("boom")

        with pytest.raises(ValueError, match="boom"):
            drive(lifecycle(), _Performer().perform).send(None)


@each_executor
async def test_a_failing_pool_fill_fails_the_build_alike_and_destroys_what_was_made(
    driver: Driver,
) -> None:
    resources = driver.resources()
    resources.fail_create = lambda n: n == 2
    with pytest.raises(
        ResourceCreationError, match="on_create failed while filling the resource pool"
    ) as caught:
        await driver.build(
            TaskManager.builder()
            .with_resource(resources.create, resources.destroy)
            .with_resource_pool(3)
        )
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert len(resources.created) == 1
    resources.assert_all_destroyed_once()


def test_the_asyncio_lifecycle_awaits_without_blocking_the_loop() -> None:
    asyncio.run(asyncio.wait_for(_build_and_stop_while_the_loop_ticks(), 30))


async def _build_and_stop_while_the_loop_ticks() -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.get_running_loop().create_task(tick())
    try:
        resources = Resources()

        async def slow_create() -> Resource:
            await asyncio.sleep(0.01)
            return resources.create()

        manager = await (
            TaskManager.builder()
            .with_executor("asyncio")
            .with_resource(slow_create, resources.destroy)
            .with_workers(2, max_workers=2)
            .build()
        )
        assert await manager.stop(10)
    finally:
        ticker.cancel()
    assert ticks > 2
    resources.assert_all_destroyed_once()


def _leaves(core: Core[Any], worker: Worker, token: object) -> bool:
    """Whether `worker`, handed `token` with nothing queued, is told to leave."""
    assert core.next_task(worker, token) is None
    return worker.leaving


class TestRetirementNeverDropsAToken:
    """What a worker does with each token is decided once, in the core, for every runtime."""

    def test_a_task_token_never_retires_a_burst_worker_even_when_one_may_retire(self) -> None:
        # a task token is not the worker's parked wait running out: a worker that retired
        # holding it would leave its task queued with no token, never run
        with TaskManager.builder().with_resource(object).build() as manager:
            core = manager._core
            worker = _parkable(Worker(0, burst=True))
            core._retire_quota = 1  # the policy asks one idle burst worker to leave
            assert not _leaves(core, worker, TASK)  # its task was cancelled meanwhile
            assert core.workforce.retiring
            assert core.parking.park(worker)
            assert core.parking.unpark(worker)  # its wait ran out: it may leave now
            assert core.workforce.try_retire(worker)
            assert not core.workforce.retiring

    def test_an_idle_worker_stays_when_no_retirement_is_asked(self) -> None:
        with TaskManager.builder().with_resource(object).build() as manager:
            core = manager._core
            worker = _parkable(Worker(0, burst=True))
            assert core.parking.park(worker)
            assert core.parking.unpark(worker)
            assert not core.workforce.try_retire(worker)

    def test_an_exit_token_makes_any_worker_leave(self) -> None:
        with TaskManager.builder().with_resource(object).build() as manager:
            worker = Worker(0, burst=False)
            assert _leaves(manager._core, worker, EXIT)


def _parkable(worker: Worker) -> Worker:
    """`worker`, given the wait a thread worker parks on, as its serve loop would."""
    worker.wakeup = threading.Lock()
    worker.wakeup.acquire()
    return worker


def _woken(core: Core[Any], worker: Worker) -> Any:
    """What `worker`, back from its parked wait, was woken with."""
    return core.parking.woken(worker)


def _run_handed(core: Core[Any], worker: Worker, handed: Any) -> None:
    """`worker` wakes once, with `handed`, and runs it as its serve loop would."""
    assert worker.wakeup.acquire(False)  # woken once...
    assert _woken(core, worker) is handed  # ...with the task
    assert not worker.parked
    core.attempt_succeeded(worker, handed, 3, core.attempt_started(handed, worker))
    assert handed.result(0) == 3


def _plus_one(_resource: object, n: int) -> int:
    return n + 1


def _take(core: Core[Any]) -> Callable[[], object]:
    runtime = core.runtime
    assert isinstance(runtime, ThreadRuntime)
    return runtime.take_token


class TestAWorkerEndingATaskClaimsItsNext:
    """A thread worker that completes a task while others wait claims the next one at once,
    in the same step (one trip of the lock): never a moment where kill() could miss it."""

    @pytest.fixture
    def busy(self) -> Generator[tuple[TaskManager[Any], Any], None, None]:
        """A one-worker manager whose worker is held busy; the test plays a second worker."""
        gate = threading.Event()
        manager = build()
        held = manager.submit(lambda _resource: gate.wait(10))
        assert wait_until(lambda: manager.stats().busy_workers == 1)
        try:
            yield manager, held
        finally:
            gate.set()
            manager.stop(10)

    def _running(self, manager: TaskManager[Any], *, burst: bool = False) -> Any:
        """A second worker of `manager`, and a task started on it as its serve loop would.

        Returns the core, the worker, the task and the attempt's start.
        """
        core = manager._core
        worker = _parkable(core.workforce.new_worker(burst=burst))
        future: Any = manager.submit(_plus_one, 1)
        task = core.next_task(worker, _take(core)())
        assert task is future
        return core, worker, task, core.attempt_started(task, worker)

    def test_the_next_queued_task_is_claimed_as_the_last_one_completes(
        self, busy: tuple[TaskManager[Any], Any]
    ) -> None:
        manager, held = busy
        core, worker, task, start = self._running(manager)
        following: Any = manager.submit(_plus_one, 2)
        claimed = core.attempt_succeeded(worker, task, 2, start, _take(core))
        assert task.result(0) == 2
        assert worker.current is claimed
        assert following.running()
        report = manager.kill()  # the claimed task counts as abandoned, not lost
        assert report.abandoned_tasks == 2
        assert report.cancelled_tasks == 0
        assert following.cancelled()
        assert held.cancelled()
        assert claimed is following

    def _ended_with_nothing_queued(
        self, manager: TaskManager[Any], *, burst: bool = False
    ) -> tuple[Core[Any], Any]:
        """A second worker of `manager` that has just completed a task with nothing queued.

        The worker is untyped, as `_running`'s: the tests watch its flags change.
        """
        core, worker, task, start = self._running(manager, burst=burst)
        assert core.attempt_succeeded(worker, task, 2, start, _take(core)) is None
        return core, worker

    def test_nothing_is_claimed_when_nothing_waits(
        self, busy: tuple[TaskManager[Any], Any]
    ) -> None:
        _, worker = self._ended_with_nothing_queued(busy[0])
        assert worker.current is None
        assert not worker.leaving

    def test_a_worker_finding_nothing_queued_is_parked_in_the_same_step(
        self, busy: tuple[TaskManager[Any], Any]
    ) -> None:
        manager, _ = busy
        core, worker = self._ended_with_nothing_queued(manager)
        assert worker.parked  # its next step is to wait: a submission now is handed to it
        handed: Any = manager.submit(_plus_one, 2)
        assert worker.current is handed
        assert handed.running()  # its worker's from now on: no cancellation takes it back
        _run_handed(core, worker, handed)
        queued: Any = manager.submit(_plus_one, 3)
        assert not queued.running()  # nobody is parked any more: it is queued
        assert core.queue.main_depth == 1

    def _two_parked(self, manager: TaskManager[Any]) -> tuple[Core[Any], Any, Any]:
        """Two more workers of `manager`, parked in turn as each ends a task."""
        core, first, first_task, first_start = self._running(manager)
        _, second, second_task, second_start = self._running(manager)
        assert core.attempt_succeeded(first, first_task, 2, first_start, _take(core)) is None
        assert core.attempt_succeeded(second, second_task, 2, second_start, _take(core)) is None
        return core, first, second

    def test_the_worker_parked_longest_is_handed_the_next_task(
        self, busy: tuple[TaskManager[Any], Any]
    ) -> None:
        # the one parked last may not be asleep yet: waking it would wait for it to get there
        manager, _ = busy
        core, first, second = self._two_parked(manager)
        handed: Any = manager.submit(_plus_one, 2)
        assert first.current is handed
        assert second.current is None
        _run_handed(core, first, handed)

    def test_tokens_sent_as_a_worker_parks_wake_it(
        self, busy: tuple[TaskManager[Any], Any]
    ) -> None:
        # `kill()` and the finish send their EXIT tokens, then wake parked workers: a worker
        # parking at that moment, having found the channel empty, must not be missed
        manager, _ = busy
        core = manager._core
        late = _parkable(core.workforce.new_worker(burst=False))
        with core._lock:  # as `park` holds it, between its look at the channel and its append
            sender = threading.Thread(target=core.parking.tokens_sent)
            sender.start()
            sender.join(0.2)
            assert sender.is_alive()  # it waits for the lock, whatever it saw
            core._parked.append(late)
            late.parked = True
        sender.join(10)
        assert late.wakeup.acquire(False)  # woken, to take a token
        assert _woken(core, late) is None

    def test_a_worker_leaving_its_wait_passes_a_look_on(
        self, busy: tuple[TaskManager[Any], Any]
    ) -> None:
        manager, _ = busy
        core, first, second = self._two_parked(manager)
        core.parking.tokens_sent()  # wakes the first...
        core.parking.leave(first)  # ...which leaves without taking a token: the second goes
        assert second.wakeup.acquire(False)
        assert _woken(core, second) is None
        assert not core._parked

    def test_a_worker_that_exits_parked_is_handed_nothing(
        self, busy: tuple[TaskManager[Any], Any]
    ) -> None:
        manager, _ = busy
        core, worker = self._ended_with_nothing_queued(manager)
        core.workforce.exited(worker)
        assert not worker.parked
        assert not core._parked
        assert not cast(Any, manager.submit(_plus_one, 2)).running()  # queued for the living

    def test_a_parked_worker_retired_gets_nothing_handed(
        self, busy: tuple[TaskManager[Any], Any]
    ) -> None:
        manager, _ = busy
        core, worker = self._ended_with_nothing_queued(manager, burst=True)
        assert worker.parked
        core._retire_quota = 1
        assert core.workforce.try_retire(worker)
        assert not worker.parked
        assert not cast(Any, manager.submit(_plus_one, 2)).running()  # never for a worker gone

    def test_a_parked_worker_woken_as_its_wait_runs_out_takes_its_task(
        self, busy: tuple[TaskManager[Any], Any]
    ) -> None:
        manager, _ = busy
        core, worker = self._ended_with_nothing_queued(manager, burst=True)
        handed: Any = manager.submit(_plus_one, 2)
        core._retire_quota = 1
        assert not core.parking.unpark(worker)  # its wake-up is due: the task is its own
        assert not core.workforce.try_retire(worker)
        _run_handed(core, worker, handed)

    def test_a_handed_task_ended_before_its_worker_woke_never_starts(
        self, busy: tuple[TaskManager[Any], Any]
    ) -> None:
        manager, held = busy
        core, worker = self._ended_with_nothing_queued(manager)
        handed: Any = manager.submit(_plus_one, 2)
        report = manager.kill()  # it is running as far as kill() can tell: abandoned, counted
        assert report.abandoned_tasks == 2
        assert handed.cancelled()
        assert held.cancelled()
        assert worker.wakeup.acquire(False)
        assert _woken(core, worker) is None  # nothing to start
        assert worker.current is None

    def test_a_task_handed_to_a_worker_leaving_its_wait_is_queued_again(
        self, busy: tuple[TaskManager[Any], Any]
    ) -> None:
        manager, _ = busy
        core, worker = self._ended_with_nothing_queued(manager)
        handed: Any = manager.submit(_plus_one, 2)
        core.parking.leave(worker)  # interrupted in its wait, as a thread can be
        assert worker.current is None
        assert not worker.parked
        assert core.queue.main_depth == 1  # unstarted, at the front of its queue
        report = manager.kill()
        assert report.cancelled_tasks == 1  # queued, so cancelled; never lost
        assert handed.cancelled()

    def test_an_exit_token_taken_on_the_way_makes_the_worker_leave(
        self, busy: tuple[TaskManager[Any], Any]
    ) -> None:
        manager, _ = busy
        core, worker, task, start = self._running(manager)
        core.queue.send(EXIT)
        waiting = manager.submit(_plus_one, 2)
        assert core.attempt_succeeded(worker, task, 2, start, _take(core)) is None
        assert worker.leaving
        assert not waiting.running()  # its token is still there for another worker

    def test_a_burst_worker_asked_to_retire_claims_nothing(
        self, busy: tuple[TaskManager[Any], Any]
    ) -> None:
        manager, _ = busy
        core, worker, task, start = self._running(manager, burst=True)
        waiting = manager.submit(_plus_one, 2)
        core._retire_quota = 1
        assert core.attempt_succeeded(worker, task, 2, start, _take(core)) is None
        assert core.workforce.try_retire(worker)  # it leaves; the task stays queued for the others
        assert not waiting.running()

    def test_a_task_claimed_ahead_starts_as_the_current_one_completes(
        self, busy: tuple[TaskManager[Any], Any]
    ) -> None:
        manager, _ = busy
        core, worker, task, start = self._running(manager)
        ahead: Any = manager.submit(_plus_one, 2)
        manager.submit(_plus_one, 3)  # queued too: the task claimed ahead still goes first
        claimed = core.ahead.claim(worker, _take(core))
        following = core.attempt_succeeded(worker, task, 2, start, _take(core))
        assert following is not None
        assert worker.current is following
        assert worker.ahead is None
        core.attempt_succeeded(worker, following, 3, core.attempt_started(following, worker))
        assert ahead.result(0) == 3
        assert claimed is ahead
        assert following is ahead

    @pytest.mark.parametrize("after", ["success", "failure"])
    def test_a_task_claimed_ahead_and_ended_by_kill_never_starts(
        self, busy: tuple[TaskManager[Any], Any], after: str
    ) -> None:
        manager, _ = busy
        core, worker, task, start = self._running(manager)
        ahead: Any = manager.submit(_plus_one, 2)
        claimed = core.ahead.claim(worker, _take(core))
        report = manager.kill()
        assert report.abandoned_tasks == 3  # the held task, the current one, the one ahead
        assert ahead.cancelled()
        if after == "success":
            assert core.attempt_succeeded(worker, task, 2, start, _take(core)) is None
        else:  # the worker's loop promotes the task ahead after a failed attempt
            assert core.ahead.promote(worker) is None
        assert worker.current is None
        assert worker.ahead is None
        assert claimed is ahead
