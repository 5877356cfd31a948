"""`run_task`: its steps, written once for both runtimes, and the books of the calls under way.

`run_task_steps` is a lifecycle (see `_lifecycle`): it decides everything (which resource, retry
or raise, keep or destroy) and yields the calls into user code it needs as steps, which the
thread runtime performs by calling and the asyncio runtime by awaiting.

`Calls` counts the calls under way, each holding a resource, so that the shutdown's last step
waits for them, and settles each call's task record as the queued tasks' are (`Core._settle`):
the metrics, the log and the observers see a `run_task` call as one more task.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tasker import _validate as validate
from tasker._lifecycle import CREATE_RESOURCE, Step, Steps, destroy
from tasker._task import TaskState
from tasker.errors import ResourceCreationError
from tasker.metrics import FAILED as METRIC_FAILED
from tasker.metrics import RETRIED

if TYPE_CHECKING:
    from tasker._core import Core
    from tasker._task import TaskRecord

__all__ = ["Calls", "run_task_steps"]

_perf = time.perf_counter

RUNNING = TaskState.RUNNING
COMPLETED = TaskState.COMPLETED
FAILED = TaskState.FAILED


def run_task_steps(core: Core[Any], fn: Callable[[Any], Any], *, once: bool) -> Steps[Any]:
    """Borrow a pooled or temporary resource, run `fn` on it, retry on a fresh one if unhealthy.

    The shutdown's last step waits for every call to give back (or destroy) its resource, so
    `stop()` never reports a manager stopped while a resource is still open.
    """
    task = core.calls.record(fn, once=once)
    try:
        while True:
            resource, pooled = core.pool.reserve()
            if resource is None:
                try:
                    resource = yield CREATE_RESOURCE
                except asyncio.CancelledError:  # the caller gave up while its resource was made
                    core.pool.creation_failed(pooled)
                    raise
                except BaseException as error:  # user code: any exception is a failed creation
                    core.pool.creation_failed(pooled)
                    unavailable = ResourceCreationError(
                        f"on_create failed for a run_task resource: {error!r}"
                    )
                    core.calls.unavailable(task, unavailable)
                    raise unavailable from error
            task.resource = resource
            start = core.attempt_started(task, None)
            try:
                result = yield Step("call", (task, resource))
            except asyncio.CancelledError:  # the caller gave up: nothing to decide
                if core.pool.give_back(resource, pooled, healthy=True):
                    yield from destroy(core, Step("destroy_resource", (resource,)))
                raise
            except BaseException as error:
                unhealthy, final = core.calls.failed(task, error, start)
                if core.pool.give_back(resource, pooled, healthy=not unhealthy):
                    yield from destroy(core, Step("destroy_resource", (resource,)))
                if final is None:
                    continue
                if final is error:
                    raise
                raise final from error
            if core.pool.give_back(resource, pooled, healthy=True):
                yield from destroy(core, Step("destroy_resource", (resource,)))
            core.calls.succeeded(task, start)
            return result
    finally:
        core.calls.returned()


class Calls:
    """The `run_task` calls of one manager: how many hold a resource, and each one's outcome."""

    __slots__ = ("_core", "_count", "done")

    def __init__(self, core: Core[Any]) -> None:
        self._core = core
        self._count = 0  # calls under way, each holding a resource (under the core's lock)
        self.done = core.runtime.calls_done  # set while no call holds a resource
        self.done.set()

    def record(self, fn: Callable[[Any], Any], *, once: bool) -> TaskRecord[Any]:
        """Start a call: check the state, make and count its record."""
        if not callable(fn):
            raise TypeError(f"task must be callable, got {type(fn).__name__}")
        validate.flag("once", once)
        core = self._core
        with core._lock:
            if core.closing or core.killed:
                raise core.shutdown.refusal()
            self._count += 1
            self.done.clear()
        task = core._new_record(core, fn, (), next(core._task_ids), False, once, None)
        task.state = RUNNING
        task.set_running_or_notify_cancel()
        core.telemetry.arrival(task)
        return task

    def returned(self) -> None:
        """A call has given back (or destroyed) its resource.

        The shutdown's last step waits for every call to get here, so `stop()` never reports
        a manager stopped while a resource is still open.
        """
        with self._core._lock:
            self._count -= 1
            if self._count:
                return
        self.done.set()

    def failed(
        self, task: TaskRecord[Any], error: BaseException, start: float
    ) -> tuple[bool, BaseException | None]:
        """Settle a failed attempt.

        Returns `(unhealthy, error_to_raise)`: an unhealthy resource must be destroyed, and
        `error_to_raise` is `None` when the task is to be retried on a fresh one.
        """
        core = self._core
        elapsed = _perf() - start
        decision = core._decide(task, error)
        if decision.retry and not core.killed:
            core.telemetry.record_attempt(task, 0.0, elapsed, RETRIED, error)
            core.telemetry.task_retried(task, error, elapsed, core.config.max_retries)
            return True, None
        final = decision.error if decision.error is not None else error
        core._settle(task, FAILED, final, 0.0, elapsed)
        return decision.replace_worker, final

    def unavailable(self, task: TaskRecord[Any], error: BaseException) -> None:
        """No resource could be made for a call."""
        self._core.telemetry.record_attempt(task, 0.0, 0.0, METRIC_FAILED, error)

    def succeeded(self, task: TaskRecord[Any], start: float) -> None:
        """Count a successful attempt (the caller gets the result directly)."""
        self._core._settle(task, COMPLETED, None, 0.0, _perf() - start)
