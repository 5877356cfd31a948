"""Drive the thread, asyncio, process and Ray managers through one async interface.

Shared behaviour tests are written once, as coroutines, against `Driver`/`Managed`; the thread
and process drivers run blocking calls in helper threads (`asyncio.to_thread`, `wrap_future`)
so the test's own loop stays free. Tasks are written as plain functions of the resource;
`driver.task` adapts them (the asyncio driver wraps them in a coroutine), and `driver.hold`
makes a task that blocks until a gate opens, in the executor's own way of blocking.

State a task or a resource hook touches goes through the driver (`driver.resources()`,
`driver.shared_list()`): plain objects for threads and asyncio, objects of a manager process
for the process and Ray executors, whose tasks and hooks run in other processes. A test that
cannot apply to an executor is skipped by name in `CANNOT_APPLY`, with the reason.

`each_executor` runs a test over `EXECUTORS`; the Ray runs of the same tests are collected in
`tests/ray/test_behaviour.py` (`on_executor`), where the Ray fixtures live.
"""

from __future__ import annotations

import asyncio
import importlib.util
import multiprocessing
import threading
from collections.abc import Awaitable, Callable, Coroutine
from types import ModuleType
from typing import Any, Generic, TypeVar

import pytest

from tasker import AsyncTaskManager, KillReport, TaskManager, TaskManagerBuilder
from tasker.metrics import TaskMetrics
from tasker.stats import ManagerState, TaskStats
from tests.helpers import Resources, SharedResources, shared

R = TypeVar("R")
T = TypeVar("T")

# the shared tests' closures cross to a child with cloudpickle (tasker-core[process]): where it
# is not installed (an adapter tested alone), the process executor is left out
EXECUTORS = ["thread", "asyncio"] + (
    ["process"] if importlib.util.find_spec("cloudpickle") is not None else []
)

_ACROSS_PROCESSES = {
    "test_the_submitters_contextvars_are_visible": (
        "the submitter's contextvars stay in the manager's process"
    ),
    "test_a_healthy_error_reaches_the_caller_unchanged": (
        "an exception crosses back pickled: an equal copy, never the same object"
    ),
    "test_code_in_the_task_sees_the_submitters_bound_values": (
        "the submitter's contextvars (structlog's bound values) stay in the manager's process"
    ),
    "test_attempt_contexts_wrap_the_task_in_its_own_context": (
        "a plugin's attempt context is entered in the manager's process, not in the worker's"
    ),
    "test_the_attempt_span_is_a_child_of_the_submitters_span_and_current_in_the_task": (
        "the attempt span stays in the manager's process: the task in the worker's process "
        "does not see it as its current span"
    ),
}

CANNOT_APPLY: dict[str, dict[str, str]] = {
    "process": _ACROSS_PROCESSES,
    "ray": {
        **_ACROSS_PROCESSES,
        "test_a_timeout_fails_the_caller_and_keeps_the_worker": (
            "a timed-out attempt's actor is killed and the worker gets a fresh one "
            "(tests/ray/test_executor.py)"
        ),
    },
}
"""Per executor, the shared tests that cannot apply to it, and why."""

_REMOTE = ("process", "ray")

# the process driver's children fork from a server that has imported these already
_PRELOAD = ["tasker.process", "tests.helpers", "tests.drivers"]


class Gate:
    """Something a held task waits on; `open()` releases it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.thread_event = threading.Event()
        self.loop_event = asyncio.Event()
        self.process_event: Any = shared().Event() if kind in _REMOTE else None

    def open(self) -> None:
        self.thread_event.set()
        self.loop_event.set()
        if self.process_event is not None:
            self.process_event.set()


class Managed(Generic[R]):
    """A running manager of either kind, seen through coroutines."""

    def __init__(self, manager: TaskManager[R] | AsyncTaskManager[R]) -> None:
        self.manager = manager

    def submit(self, fn: Callable[..., Any], *args: Any, **options: Any) -> asyncio.Future[Any]:
        if isinstance(self.manager, TaskManager):
            return asyncio.wrap_future(self.manager.submit(fn, *args, **options))
        return self.manager.submit(fn, *args, **options)

    async def queue_task(self, fn: Callable[[R], Any]) -> Any:
        return await self.submit(fn)

    async def run_task(self, fn: Callable[[R], Any], **options: Any) -> Any:
        if isinstance(self.manager, TaskManager):
            manager = self.manager
            return await asyncio.to_thread(lambda: manager.run_task(fn, **options))
        return await self.manager.run_task(fn, **options)

    async def stop(self, timeout: float | None = None) -> bool:
        if isinstance(self.manager, TaskManager):
            return await asyncio.to_thread(self.manager.stop, timeout)
        return await self.manager.stop(timeout)

    async def kill(self) -> KillReport:
        if isinstance(self.manager, TaskManager):
            return self.manager.kill()
        return await self.manager.kill()

    async def join(self, timeout: float | None = 10) -> bool:
        if isinstance(self.manager, TaskManager):
            return await asyncio.to_thread(self.manager.join, timeout)
        return await self.manager.join(timeout)

    def stats(self) -> TaskStats:
        return self.manager.stats()

    def metrics(self) -> TaskMetrics:
        return self.manager.metrics()

    @property
    def state(self) -> ManagerState:
        return self.manager.state


class Driver:
    """Builds managers of one executor kind and adapts tasks to it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        # tasks and resource hooks run in another process, which shares no object with the test
        self.remote = kind in _REMOTE
        # how much longer than threads a drain may take: each replaced worker is a new process
        self.patience = 5 if self.remote else 1
        # an attempt interrupted (a timeout, kill()) takes its place down with it: on Ray its
        # actor is killed, and with it the resource, whose on_destroy never runs
        self.interrupt_kills = kind == "ray"

    def assert_destroyed_after_kill(
        self, resources: Resources | SharedResources, abandoned: int
    ) -> None:
        """Each resource destroyed once; where `kill()` kills places, but the `abandoned`
        tasks' (their process went with them)."""
        if self.interrupt_kills:
            assert isinstance(resources, SharedResources)
            resources.assert_destroyed_once_but(abandoned)
        else:
            resources.assert_all_destroyed_once()

    def many(self, tasks: int) -> int:
        """How many tasks a load test submits: a tenth on Ray, where a new worker is an actor."""
        return max(tasks // 10, 1) if self.kind == "ray" else tasks

    async def build(self, builder: TaskManagerBuilder[R]) -> Managed[R]:
        if self.kind == "thread":
            return Managed(await asyncio.to_thread(builder.build))
        if self.kind == "process":
            multiprocessing.set_forkserver_preload(_PRELOAD)
            # told of a timeout or kill(), a held task returns once its gate opens, as a
            # thread's does: its child, and its resource, stay
            process = builder.with_executor("process", start_method="forkserver", cancel_grace=10)
            return Managed(await asyncio.to_thread(process.build))
        if self.kind == "ray":  # on the Ray the test module connected to; actors fit anywhere
            return Managed(await asyncio.to_thread(builder.with_executor("ray", num_cpus=0).build))
        return Managed(await builder.with_executor("asyncio").build())

    def resources(self, **options: Any) -> Resources | SharedResources:
        """A resource factory that records its calls where this executor's hooks run."""
        return SharedResources(**options) if self.remote else Resources(**options)

    def shared_list(self) -> list[Any]:
        """A list tasks can append to and the test can read, wherever the tasks run."""
        if self.remote:
            proxy: list[Any] = shared().list()
            return proxy
        return []

    def task(self, body: Callable[[R], T]) -> Callable[[R], Any]:
        """The task `body(resource)` in this executor's style."""
        if self.kind != "asyncio":
            return body

        async def run(resource: R) -> T:
            return body(resource)

        return run

    def hold(
        self, gate: Gate, started: asyncio.Event | None = None, result: object = None
    ) -> Callable[[Any], Any]:
        """A task that (optionally) signals `started`, then blocks until `gate` opens."""
        loop = asyncio.get_running_loop()
        if self.remote:
            return _process_hold(gate, started, result)
        if self.kind == "thread":

            def blocking(_: Any) -> object:
                if started is not None:
                    loop.call_soon_threadsafe(started.set)
                assert gate.thread_event.wait(10)
                return result

            return blocking

        async def waiting(_: Any) -> object:
            if started is not None:
                started.set()
            await asyncio.wait_for(gate.loop_event.wait(), 10)
            return result

        return waiting

    def gate(self) -> Gate:
        return Gate(self.kind)


def _process_hold(
    gate: Gate, started: asyncio.Event | None, result: object
) -> Callable[[Any], object]:
    """`hold` for a task in a child: the gate and the start signal are the manager's Events."""
    opened = gate.process_event
    began = shared().Event() if started is not None else None
    if started is not None:
        assert began is not None
        watch = asyncio.ensure_future(asyncio.to_thread(began.wait, 10))
        watch.add_done_callback(lambda _: started.set())

    def blocking(_: Any) -> object:
        if began is not None:
            began.set()
        assert opened.wait(10)
        return result

    return blocking


def _cannot_apply(kind: str, test: str) -> str | None:
    return CANNOT_APPLY.get(kind, {}).get(test)


def each_executor(
    test: Callable[..., Coroutine[Any, Any, None]],
) -> Callable[..., None]:
    """Run an async test `test(driver, **params)` once per executor, on a fresh event loop."""
    run = on_executors(test, EXECUTORS)
    run.behaviour = test  # type: ignore[attr-defined]  # for `behaviour_suite`
    return run


def on_executors(
    test: Callable[..., Coroutine[Any, Any, None]], kinds: list[str]
) -> Callable[..., None]:
    """`test` as a pytest test parametrized over `kinds`, skipping what `CANNOT_APPLY` names."""
    import inspect

    params = [p for name, p in inspect.signature(test).parameters.items() if name != "driver"]

    def run(executor: str, **kwargs: Any) -> None:
        budget = 180 if executor in _REMOTE else 30  # processes start slowly on a loaded machine
        asyncio.run(asyncio.wait_for(test(Driver(executor), **kwargs), budget))

    run.__name__ = test.__name__
    run.__qualname__ = test.__qualname__
    run.__doc__ = test.__doc__
    run.__module__ = test.__module__
    executor_param = inspect.Parameter(
        "executor", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str
    )
    run.__signature__ = inspect.Signature([executor_param, *params])  # type: ignore[attr-defined]
    executors = [
        pytest.param(kind, marks=pytest.mark.skip(reason=reason))
        if (reason := _cannot_apply(kind, test.__name__))
        else kind
        for kind in kinds
    ]
    marked: Callable[..., None] = pytest.mark.parametrize("executor", executors)(run)
    return marked


def behaviour_suite(kind: str, *modules: ModuleType) -> dict[str, Callable[..., None]]:
    """The shared tests of `modules` (those `each_executor` made), run over executor `kind`.

    Each keeps its own marks (its other parameters), as the original test has them.
    """
    suite = {}
    for module in modules:
        for name, test in vars(module).items():
            if not hasattr(test, "behaviour"):
                continue
            run = on_executors(test.behaviour, [kind])
            for mark in getattr(test, "pytestmark", []):
                if not (mark.name == "parametrize" and mark.args[0] == "executor"):
                    run = getattr(pytest.mark, mark.name)(*mark.args, **mark.kwargs)(run)
            suite[name] = run
    return suite


async def settle_all(*futures: Awaitable[Any]) -> list[Any]:
    """Await every future, returning results or exceptions."""
    return list(await asyncio.gather(*futures, return_exceptions=True))
