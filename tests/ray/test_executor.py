"""The Ray executor on one node: resources in actors, errors across the wire, lost actors."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray", reason="Ray is not installed for this interpreter: no Ray tests")

from tasker import (
    RetriesExhaustedError,
    TaskManager,
    TaskManagerBuilder,
    UnhealthyOn,
    WorkerCrashedError,
    current_task,
)
from tasker.errors import CancelledError, ResourceCreationError
from tasker.process import RemoteTaskError
from tasker_ray import AsyncRayExecutor, RayExecutor, RayOptions
from tests.ray.conftest import Ledger, Tracked, live_actors, no_actor_left

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("local_ray")]


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path)


def builder(tracked: Tracked, workers: int = 1, **options: Any) -> TaskManagerBuilder[int]:
    return (
        TaskManager.builder()
        .with_executor("ray", num_cpus=0, **options)
        .with_resource(tracked.create, tracked.destroy)
        .with_workers(workers, max_workers=workers)
        .with_resource_pool(0)
        .with_policy("fixed")
        .with_health_check(UnhealthyOn(ConnectionError))
        .with_backoff(initial=0.01, maximum=0.05)
    )


def run(manager: TaskManager[int], fn: Any, *args: Any, once: bool = False) -> Any:
    """The task's outcome (`queue_task` with arguments)."""
    return manager.submit(fn, *args, once=once).result(60)


def pid_of(resource: int) -> int:
    return resource


def here(resource: int) -> int:
    return os.getpid()


class Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("holds a lock")
        self.lock = threading.Lock()


def test_each_worker_holds_its_resource_in_an_actor(ledger: Ledger) -> None:
    tracked = Tracked(ledger)
    with builder(tracked, workers=2).build() as manager:
        resources = {manager.queue_task(pid_of) for _ in range(10)}
        ran_in = {f.result(30) for f in [manager.submit(here) for _ in range(10)]}
        assert os.getpid() not in resources
        assert ran_in <= resources
        assert len(live_actors()) == 2
    assert {int(p) for p in ledger.entries("created")} >= resources
    tracked.assert_each_destroyed_once()
    no_actor_left()


def test_arguments_results_and_errors_cross_the_wire(ledger: Ledger) -> None:
    with builder(Tracked(ledger)).build() as manager:
        assert run(manager, lambda r, a, b: (a, b), 1, {"k": [2]}) == (1, {"k": [2]})
        with pytest.raises(ValueError, match="bad input"):
            manager.queue_task(lambda r: int("bad input"))
        with pytest.raises(RemoteTaskError, match="Unpicklable: holds a lock") as remote:
            manager.queue_task(lambda r: (_ for _ in ()).throw(Unpicklable()))
        assert "holds a lock" in remote.value.remote_traceback
        arrived = manager.metrics().total_tasks_arrived
        with pytest.raises(  # refused at submit, naming the culprit: nothing is queued
            TypeError, match=r"argument 1 of task '.*<lambda>', a lock, cannot be sent to a Ray"
        ):
            manager.submit(lambda r, lock: None, threading.Lock())
        with pytest.raises(TypeError, match=r"the task function '.*<lambda>' cannot be sent"):
            lock = threading.Lock()
            manager.submit(lambda r: lock)
        assert manager.metrics().total_tasks_arrived == arrived
        with pytest.raises(TypeError, match="cannot be sent back from its Ray actor"):
            manager.queue_task(lambda r: threading.Lock())
        with pytest.raises(KeyboardInterrupt):  # a BaseException comes back as itself
            manager.queue_task(lambda r: (_ for _ in ()).throw(KeyboardInterrupt()))
        assert manager.queue_task(pid_of) == int(ledger.entries("created")[0])  # same actor
    no_actor_left()


def test_an_unhealthy_error_replaces_the_actor_and_retries(ledger: Ledger) -> None:
    tracked = Tracked(ledger)

    def flaky(resource: int, marker: str) -> int:
        if not os.path.exists(marker):
            Path(marker).touch()
            raise ConnectionError("reset")
        return resource

    with builder(tracked).build() as manager:
        first = manager.queue_task(pid_of)
        second = run(manager, flaky, str(Path(ledger.folder, "failed-once")))
        assert second != first
        assert ledger.counts("destroyed")[str(first)] == 1
    tracked.assert_each_destroyed_once()
    no_actor_left()


def exit_first(resource: int, marker: str) -> int:
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(3)
    return resource


def test_a_lost_actor_fails_its_task_as_unhealthy_and_is_replaced(ledger: Ledger) -> None:
    with builder(Tracked(ledger)).with_max_retries(2).build() as manager:
        first = manager.queue_task(pid_of)
        again = run(manager, exit_first, str(Path(ledger.folder, "died")))
        assert again != first
        assert manager.metrics().total_tasks_retried == 1
        # a once-task is not retried: its caller learns the actor was lost
        with pytest.raises(WorkerCrashedError, match="Ray actor was lost"):
            run(manager, exit_first, str(Path(ledger.folder, "died-too")), once=True)
        assert manager.queue_task(pid_of) not in (first, again)
    no_actor_left()


def test_retries_exhausted_chain_the_crash(ledger: Ledger) -> None:
    with builder(Tracked(ledger)).with_max_retries(1).build() as manager:
        with pytest.raises(RetriesExhaustedError) as exhausted:
            manager.queue_task(lambda r: os._exit(1))
        assert isinstance(exhausted.value.__cause__, WorkerCrashedError)
        assert manager.queue_task(lambda r: "alive") == "alive"
    no_actor_left()


def test_a_timeout_kills_the_actor_and_the_worker_gets_a_fresh_one(ledger: Ledger) -> None:
    tracked = Tracked(ledger)
    with builder(tracked).with_timeout(1.0).build() as manager:
        first = manager.queue_task(pid_of)
        with pytest.raises(TimeoutError):
            manager.queue_task(lambda r: ledger.wait_for("never", 60))
        assert manager.queue_task(pid_of) != first
        assert len(live_actors()) == 1
    no_actor_left()


def test_kill_answers_every_caller_and_kills_every_actor(ledger: Ledger) -> None:
    manager = builder(Tracked(ledger), workers=2).build()
    running = [
        manager.submit(lambda r, i: (ledger.mark(f"started-{i}"), ledger.wait_for("open", 60)), i)
        for i in range(2)
    ]
    queued = [manager.submit(pid_of) for _ in range(3)]
    for i in range(2):
        assert Ledger(Path(ledger.folder)).wait_for(f"started-{i}")
    report = manager.kill()
    assert (report.cancelled_tasks, report.abandoned_tasks) == (3, 2)
    for future in running + queued:
        with pytest.raises(CancelledError):
            future.result(30)
    assert manager.join(30)
    no_actor_left()
    assert not ledger.marked("open")


def test_a_failing_on_create_fails_build_with_its_error(ledger: Ledger) -> None:
    with pytest.raises(ResourceCreationError) as failed:
        builder(Tracked(ledger, fail_create=True)).build()
    assert isinstance(failed.value.__cause__, ConnectionError)
    no_actor_left()


def test_an_actor_that_finds_no_room_fails_creation_after_create_timeout(ledger: Ledger) -> None:
    with pytest.raises(ResourceCreationError) as failed:
        builder(Tracked(ledger), num_gpus=1, create_timeout=1.0).build()
    assert isinstance(failed.value.__cause__, TimeoutError)
    assert "num_gpus" in str(failed.value.__cause__)
    no_actor_left()


def test_the_name_ray_serves_both_managers() -> None:
    from tasker import AsyncTaskManager

    thread = TaskManager.builder().with_executor("ray", num_gpus=0.5)
    assert isinstance(thread._executor, RayExecutor)
    assert thread._executor.options.num_gpus == 0.5
    async_builder = AsyncTaskManager.builder().with_executor("ray", num_cpus=0)
    assert isinstance(async_builder._executor, AsyncRayExecutor)
    assert async_builder._executor.options.num_cpus == 0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"num_cpus": -1}, "num_cpus must be"),
        ({"num_gpus": "one"}, "num_gpus must be"),
        ({"resources": {"slot": -1}}, r"resources\['slot'\] must be"),
        ({"resources": ["slot"]}, "resources must be a mapping"),
        ({"runtime_env": "pip"}, "runtime_env must be a mapping"),
        ({"create_timeout": 0}, "create_timeout must be"),
        ({"stop_grace": -1}, "stop_grace must be"),
        ({"address": 6379}, "address must be"),
    ],
)
def test_bad_options_are_refused_by_name(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RayOptions(**settings)


def test_unknown_options_and_mixed_forms_are_type_errors() -> None:
    with pytest.raises(TypeError):
        TaskManager.builder().with_executor("ray", num_gpu=1)
    with pytest.raises(TypeError, match="not both"):
        RayExecutor(RayOptions(), num_gpus=1)


def test_actor_options_carry_only_what_was_set() -> None:
    options = RayOptions(num_gpus=1, resources={"slot": 1}, actor_options={"name": None})
    assert options._actor_options() == {
        "num_gpus": 1,
        "resources": {"slot": 1},
        "name": None,
        "max_concurrency": 1,
        "max_restarts": 0,
        "max_task_retries": 0,
    }


# ------------------------------------------------------------------ the async manager


def async_builder(tracked: Tracked, workers: int = 1, **options: Any) -> Any:
    from tasker import AsyncTaskManager

    return (
        AsyncTaskManager.builder()
        .with_executor("ray", num_cpus=0, **options)
        .with_resource(tracked.create, tracked.destroy)
        .with_workers(workers, max_workers=workers)
        .with_resource_pool(0)
        .with_policy("fixed")
        .with_health_check(UnhealthyOn(ConnectionError))
        .with_backoff(initial=0.01, maximum=0.05)
        .with_max_retries(2)
    )


async def actor_pid(resource: int) -> int:
    """A coroutine task: it runs on the actor's own event loop."""
    await asyncio.sleep(0)
    return os.getpid()


def kill_once(resource: int, marker: str) -> int:
    """The first call SIGKILLs its actor's process; every other returns the process id."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return os.getpid()
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def test_the_async_manager_awaits_its_actors_without_holding_threads(ledger: Ledger) -> None:
    tracked = Tracked(ledger)

    async def scenario() -> None:
        threads = threading.active_count()
        async with async_builder(tracked, workers=3).build() as manager:
            pids = await asyncio.gather(*(manager.queue_task(actor_pid) for _ in range(30)))
            assert set(pids) <= {int(p) for p in ledger.entries("created")}
            assert os.getpid() not in pids
            assert len(live_actors()) == 3
            assert threading.active_count() == threads  # the workers are asyncio tasks
            assert await manager.submit(lambda r, n: r + n, 1) - 1 in pids  # plain functions too
            with pytest.raises(TypeError, match="a lock, cannot be sent to a Ray actor"):
                manager.submit(lambda r, lock: None, threading.Lock())  # refused at submit
            # an actor killed (SIGKILL) while tasks wait: every caller still gets its value
            killed = str(Path(ledger.folder, "killed"))
            load = [manager.submit(kill_once, killed) for _ in range(30)]
            served = await asyncio.gather(*load)
            assert len(served) == 30
            assert manager.metrics().total_tasks_retried == 1
            assert len(live_actors()) == 3

    asyncio.run(asyncio.wait_for(scenario(), 120))
    # every resource destroyed once, but the killed actor's: it died with its process
    destroyed = ledger.counts("destroyed")
    assert set(destroyed.values()) == {1}
    assert len(set(ledger.counts("created")) - set(destroyed)) == 1
    no_actor_left()


def test_async_timeouts_cancellations_and_lost_actors_replace_the_actor(ledger: Ledger) -> None:
    tracked = Tracked(ledger)

    async def scenario() -> None:
        async with async_builder(tracked).build() as manager:
            first = await manager.queue_task(actor_pid)
            # a timeout kills the actor: the next task runs on a fresh one
            with pytest.raises(TimeoutError):
                await manager.submit(lambda r: ledger.wait_for("never", 60), timeout=1.0)
            second = await manager.queue_task(actor_pid)
            assert second != first
            # so does the caller's cancellation of a running task
            running = manager.submit(lambda r: (ledger.mark("started"), ledger.wait_for("no", 60)))
            await asyncio.to_thread(ledger.wait_for, "started")
            running.cancel()
            third = await manager.queue_task(actor_pid)
            assert third not in (first, second)
            assert manager.metrics().total_tasks_retried == 0  # no task paid for a dead actor
            # a lost actor fails its attempt as unhealthy: retried on a fresh actor
            fourth = await manager.submit(exit_first, str(Path(ledger.folder, "died")))
            assert fourth not in (first, second, third)
            assert manager.metrics().total_tasks_retried == 1
            assert len(live_actors()) == 1

    asyncio.run(asyncio.wait_for(scenario(), 150))
    no_actor_left()


def test_async_kill_answers_every_caller_and_kills_every_actor(ledger: Ledger) -> None:
    async def scenario() -> None:
        manager = await async_builder(Tracked(ledger), workers=2).build()
        running = [
            manager.submit(lambda r, i: (ledger.mark(f"go-{i}"), ledger.wait_for("open", 60)), i)
            for i in range(2)
        ]
        queued = [manager.submit(actor_pid) for _ in range(3)]
        for i in range(2):
            assert await asyncio.to_thread(ledger.wait_for, f"go-{i}")
        report = await manager.kill()
        assert (report.cancelled_tasks, report.abandoned_tasks) == (3, 2)
        outcomes = await asyncio.gather(*running, *queued, return_exceptions=True)
        assert all(isinstance(o, asyncio.CancelledError | CancelledError) for o in outcomes)
        assert await manager.join(30)

    asyncio.run(asyncio.wait_for(scenario(), 120))
    no_actor_left()


def about_itself(resource: int) -> tuple[Any, ...]:
    task = current_task()
    assert task is not None
    return task.task_id, task.attempt, task.worker_id, task.priority, task.once, task.resource


async def about_itself_later(resource: int) -> tuple[Any, ...]:
    await asyncio.sleep(0)
    return about_itself(resource)


def test_current_task_tells_a_task_about_itself_in_its_actor(ledger: Ledger) -> None:
    tracked = Tracked(ledger)
    with builder(tracked).build() as manager:
        future = manager.submit(about_itself, priority=True, once=True)
        task_id, attempt, worker_id, priority, once, resource = future.result(60)
        assert (attempt, priority, once) == (1, True, True)
        assert task_id == 1  # the manager's first task
        assert worker_id == 1  # on its only worker
        assert resource == manager.queue_task(pid_of)
        # a coroutine run to its end in the actor sees it too
        later: Any = manager.submit(about_itself_later).result(60)
        assert later[1] == 1
    tracked.assert_each_destroyed_once()
