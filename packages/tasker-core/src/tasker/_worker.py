"""A worker's life: create a resource, serve tasks, and start afresh when it turns unhealthy."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from tasker._queue import EXIT
from tasker._task import TaskFuture, call_in_task
from tasker.events import Event
from tasker.executors import WorkerHandle
from tasker.metrics import COMPLETED

if TYPE_CHECKING:
    from tasker._core import Core

__all__ = ["Startup", "Worker", "mark_owner", "thread_owner", "worker_main"]

_perf = time.perf_counter
_owner = threading.local()


def mark_owner(core: Core[Any]) -> None:
    """Record that the calling thread belongs to `core` (a worker or its supervisor)."""
    _owner.core = core


def thread_owner() -> Core[Any] | None:
    """The manager core the calling thread belongs to, if any."""
    owner: Core[Any] | None = getattr(_owner, "core", None)
    return owner


class Worker:
    """One worker slot: its id (new after each replacement), resource and current task."""

    __slots__ = ("burst", "current", "handle", "resource", "worker_id")

    def __init__(self, worker_id: int, *, burst: bool) -> None:
        self.worker_id = worker_id
        self.burst = burst
        self.current: TaskFuture[Any] | None = None
        self.resource: Any = None
        self.handle: WorkerHandle | None = None


class Startup:
    """How a new worker's first `on_create` went, for `build()` and the scaler to wait on."""

    __slots__ = ("_done", "error")

    def __init__(self) -> None:
        self._done = threading.Event()
        self.error: BaseException | None = None

    def report(self, error: BaseException | None) -> None:
        """Publish the outcome of the first creation attempt."""
        self.error = error
        self._done.set()

    def wait(self) -> BaseException | None:
        """Block until the outcome is known; return the creation error, if any."""
        self._done.wait()
        return self.error


def worker_main(core: Core[Any], worker: Worker, startup: Startup) -> None:
    """The loop a worker thread runs until it is told to exit, retires, or the manager dies.

    A base worker built with the manager fails fast (`build()` reports the error); every later
    creation, for a replacement or a burst worker, is retried with capped exponential backoff.
    """
    mark_owner(core)
    fail_fast = not worker.burst  # base workers are only started by build()
    try:
        while _acquire(core, worker, startup if fail_fast else None):
            startup.report(None)
            fail_fast = False
            if not _serve(core, worker):
                return
            old = worker.worker_id
            worker.worker_id = core.next_worker_id()
            core.log(
                logging.WARNING,
                Event.WORKER_REPLACED,
                worker_id=worker.worker_id,
                replaced_worker_id=old,
            )
    finally:
        startup.report(startup.error)
        core.worker_exited(worker)


def _acquire(core: Core[Any], worker: Worker, startup: Startup | None) -> bool:
    """Create the worker's resource; `False` if the worker should leave instead."""
    on_create = core.config.on_create
    backoff = core.config.backoff
    failures = 0
    while not core.shutdown.is_set():
        try:
            resource = on_create()
        except Exception as error:
            failures += 1
            core.creation_failed(worker, error, failures)
            if startup is not None:
                startup.report(error)
                return False
            if core.shutdown.wait(backoff.delay(failures)) or core.try_retire(worker):
                return False
            continue
        worker.resource = resource
        core.worker_ready(worker)
        core.log(logging.INFO, Event.WORKER_STARTED, worker_id=worker.worker_id, burst=worker.burst)
        return True
    return False


def _release(core: Core[Any], worker: Worker) -> None:
    resource, worker.resource = worker.resource, None
    core.worker_lost_resource()
    core.destroy_resource(resource)


def _serve(core: Core[Any], worker: Worker) -> bool:
    """Run tasks until told to leave (`False`) or the resource turns unhealthy (`True`)."""
    get = core.queue.get
    timeout = core.config.policy.interval if worker.burst else None
    try:
        while True:
            item = get(timeout)
            if item is None:
                if timeout is not None and core.try_retire(worker):
                    return False
                continue
            if item is EXIT:
                return False
            task: TaskFuture[Any] = item  # type: ignore[assignment]
            if task.attempt == 0 and not task.set_running_or_notify_cancel():
                core.task_done()  # cancelled while queued, after a worker had dequeued it
                continue
            if core.killed:  # dequeued just as kill() drained the queues: do not start it
                task.abandon()
                continue
            if _run(core, worker, task):
                return True
    finally:
        _release(core, worker)
        core.log(logging.INFO, Event.WORKER_STOPPED, worker_id=worker.worker_id)


def _run(core: Core[Any], worker: Worker, task: TaskFuture[Any]) -> bool:
    """Run one attempt of `task`; return `True` if the worker must be replaced."""
    task.attempt += 1
    task.worker_id = worker.worker_id
    task.resource = resource = worker.resource
    worker.current = task
    start = _perf()
    if core.extra is not None:
        core.extra.record_start(task, start - task.queued_at)
    try:
        result = task.context.run(call_in_task, task, resource)
    except BaseException as error:
        elapsed = _perf() - start
        worker.current = None
        return core.attempt_failed(worker, task, error, start - task.queued_at, elapsed)
    elapsed = _perf() - start
    worker.current = None
    if core.killed:  # abandoned by kill(): its caller already has CancelledError
        task.abandon()
        return False
    if core.extra is None:
        core.metrics_collector.record_attempt(start - task.queued_at, elapsed, COMPLETED)
    else:
        core.record_attempt(task, start - task.queued_at, elapsed, COMPLETED)
    task.resolve(result)
    core.task_done()
    return False
