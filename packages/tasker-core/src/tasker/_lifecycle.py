"""The lifecycles of a manager and of its workers, written once for both runtimes.

Each lifecycle is a generator of steps. It decides, with the core, what happens next and yields
what it needs done: a wait, or a call into user code, as a `Step`. A runtime performs each step
(the thread runtime by calling, the asyncio runtime by awaiting) and `drive` sends the outcome
back in, or throws the exception, where the lifecycle decides again. Only the waits, the calls
and the hot loop that serves tasks are the runtime's.

The actions a runtime performs, each a method of that name (a coroutine on asyncio):

- `create_resource()` → a resource: call `on_create` (a pooled or `run_task` resource).
- `destroy_resource(resource)`: call `on_destroy`, if there is one.
- `open_place()` → a place: make a worker's place (see `tasker.executors`), create its resource.
- `close_place(place)`: destroy the resource of a worker's place.
- `call(task, resource)` → the result: run a `run_task` call on `resource`, in the caller.
- `pause(seconds)` → whether the shutdown came: wait for it, `seconds` at most.
- `serve(worker)` → whether the worker must be replaced: run tasks until told to leave.
- `start_worker(worker)` → a startup: start the worker's loop.
- `started(startup)` → the error or `None`: wait until a new worker's first creation ended.
- `start_supervisor()`: start the supervisor's loop (`supervise_steps`).
- `wait_wake()`: sleep until the supervisor has something to look at, an interval at most.
- `join_workers(workers)`: wait until every one of `workers` has exited.
- `calls_finished()`: wait until no `run_task` call holds a resource.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

from tasker.errors import ResourceCreationError

if TYPE_CHECKING:
    from tasker._core import Core
    from tasker._worker import Worker

__all__ = [
    "ACTIONS",
    "Step",
    "Steps",
    "drive",
    "finish_steps",
    "start_steps",
    "supervise_steps",
    "worker_steps",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Step:
    """One thing a runtime does for a lifecycle: `runtime.<action>(*args)`."""

    action: str
    args: tuple[Any, ...] = ()


Steps = Generator[Step, Any, T]

ACTIONS: Final = frozenset(
    {
        "call",
        "calls_finished",
        "close_place",
        "create_resource",
        "destroy_resource",
        "join_workers",
        "open_place",
        "pause",
        "serve",
        "start_supervisor",
        "start_worker",
        "started",
        "wait_wake",
    }
)
"""Every action a runtime must perform."""

CREATE_RESOURCE: Final = Step("create_resource")
OPEN_PLACE: Final = Step("open_place")
START_SUPERVISOR: Final = Step("start_supervisor")
WAIT_WAKE: Final = Step("wait_wake")
CALLS_FINISHED: Final = Step("calls_finished")


def drive(
    steps: Steps[T], perform: Callable[[Step], Generator[Any, Any, Any]]
) -> Generator[Any, Any, T]:
    """Run a lifecycle, performing each of its steps with `perform`; return what it returns.

    `perform(step)` is a generator: the thread runtime's returns at once, the asyncio runtime's
    yields what it awaits, so this one loop serves both (asyncio awaits the driver itself).
    """
    outcome: Any = None
    failure: BaseException | None = None
    while True:
        try:
            step = steps.send(outcome) if failure is None else steps.throw(failure)
        except StopIteration as done:
            result: T = done.value
            return result
        try:
            outcome, failure = (yield from perform(step)), None
        except BaseException as error:  # handed to the lifecycle, which decides
            outcome, failure = None, error


def destroy(core: Core[Any], step: Step, worker: Worker | None = None) -> Steps[None]:
    """Perform a destroying step; an error it raises is logged, never raised."""
    try:
        yield step
    except asyncio.CancelledError:
        raise
    except BaseException as error:  # user code: logged, never raised
        core.telemetry.destroy_failed(worker.worker_id if worker else None, error)


# ---------------------------------------------------------------------- manager


def start_steps(core: Core[Any]) -> Steps[None]:
    """Fill the pool, start the base workers, then the supervisor; raise if any part fails.

    Every base worker must create its resource: if one cannot, the manager finishes (every
    resource made so far is destroyed) and the build raises `ResourceCreationError`.
    """
    yield from _fill_pool(core)
    cfg = core.config
    startups = []
    for _ in range(cfg.workers):
        startups.append((yield Step("start_worker", (core.workforce.new_worker(burst=False),))))
    failures = []
    for startup in startups:
        error = yield Step("started", (startup,))
        if error is not None:
            failures.append(error)
    if failures:
        yield from finish_steps(core)
        raise ResourceCreationError(
            f"on_create failed for {len(failures)} of {cfg.workers} base workers while "
            f"building manager {cfg.name!r}: {failures[0]!r}"
        ) from failures[0]
    core.opened()
    yield START_SUPERVISOR


def _fill_pool(core: Core[Any]) -> Steps[None]:
    pool = core.pool
    created = []
    failure: BaseException | None = None
    for _ in range(pool.capacity):
        _, pooled = pool.reserve()
        try:
            created.append(((yield CREATE_RESOURCE), pooled))
        except BaseException as error:  # user code: any exception is a failed creation
            pool.creation_failed(pooled)
            failure = error
            break
    for resource, pooled in created:
        if pool.give_back(resource, pooled, healthy=failure is None):
            yield from destroy(core, Step("destroy_resource", (resource,)))
    if isinstance(failure, asyncio.CancelledError):
        raise failure
    if failure is not None:
        raise ResourceCreationError(
            f"on_create failed while filling the resource pool: {failure!r}"
        ) from failure


def supervise_steps(core: Core[Any]) -> Steps[None]:
    """Scale while the manager runs; once it is stopped or killed, finish it."""
    while True:
        yield WAIT_WAKE
        grow = core.workforce.supervisor_tick()
        if grow is None:
            break
        for _ in range(grow):
            yield Step("start_worker", (core.workforce.new_worker(burst=True),))
    yield from finish_steps(core)


def finish_steps(core: Core[Any]) -> Steps[None]:
    """Release every worker, destroy the pool, wait for the workers and the `run_task` calls."""
    workers = core.shutdown.finish_begin()
    for resource in core.pool.close():
        yield from destroy(core, Step("destroy_resource", (resource,)))
    yield Step("join_workers", (workers,))
    yield CALLS_FINISHED
    core.shutdown.finish_end()


# ---------------------------------------------------------------------- workers


def worker_steps(
    core: Core[Any], worker: Worker, started: Callable[[BaseException | None], None]
) -> Steps[None]:
    """A worker: create its resource, serve tasks, start afresh when it turns unhealthy.

    A base worker built with the manager fails fast (`build()` reports the error to `started`);
    any later creation, for a replacement or a burst worker, is retried with capped backoff.
    `started` hears how the first creation went; later reports are ignored.
    """
    fail_fast = not worker.burst
    try:
        while True:
            if not (yield from _open(core, worker, started if fail_fast else None)):
                return
            started(None)
            fail_fast = False
            replace = False
            try:
                replace = yield Step("serve", (worker,))
            finally:
                place = core.workforce.releasing(worker)
                yield from destroy(core, Step("close_place", (place,)), worker)
            if not replace:
                return
            core.workforce.replaced(worker)
    finally:
        started(None)
        core.workforce.exited(worker)


def _open(
    core: Core[Any], worker: Worker, started: Callable[[BaseException | None], None] | None
) -> Steps[bool]:
    """Create the worker's resource; `False` if the worker should leave instead."""
    backoff = core.config.backoff
    failures = 0
    while not core.shutdown.leaving.is_set():
        try:
            place = yield OPEN_PLACE
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # user code: any exception is a failed creation
            failures += 1
            core.workforce.creation_failed(worker, error, failures)
            if started is not None:
                started(error)
                return False
            if (yield Step("pause", (backoff.delay(failures),))) or core.workforce.try_retire(
                worker
            ):
                return False
            continue
        core.workforce.ready(worker, place)
        return True
    return False
