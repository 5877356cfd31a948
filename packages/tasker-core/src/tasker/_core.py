"""The engine behind both managers: one task's way from submission to its one outcome.

A runtime (`_threads`, `_asyncio`) only supplies the workers' loops, the waits and the calls
into user code, and asks the engine what to do at each step. `Core` holds the engine's books
and decides every task's path: submit, claim by a worker, attempt, and the one conclusion of
each outcome (complete, fail, retry). Each other part of the engine is a component of its
own, made by `Core` and holding it:

- `Overload` (`_overload`): the queue limit, the submissions waiting for room, shedding.
- `Ahead` (`_ahead`): a worker's next task, claimed while its current one runs.
- `Parking` (`_parking`): idle workers, each waiting for a task handed to it.
- `Cancellation` (`_cancellation`): tasks ended by their caller or their timeout.
- `Workforce` (`_workforce`): the workers' starts and exits, the broken manager, scaling
  (with `Scaler`, `_scaler`) and retirement.
- `Shutdown` (`_shutdown`): the manager's state and its one transition function; stop,
  cancel, kill, finish.
- `Calls` (`_run_task`): the `run_task` calls under way.
- `Telemetry` (`_telemetry`): where every event goes (metrics, collectors, observers, log).

One lock, one set of books: `Core._lock` guards the manager's state, the pending-task count,
the parked workers, the retirement quota and the worker list, which all live on
`Core`; a component changes them only under that lock, and keeps under it the little it holds
of its own. The queues are lock-free deques (see `_queue`). Every step decides under the lock
and does its I/O outside it: nothing slow (user code, resource hooks, collectors, loggers)
ever runs under the lock, and the lock is never held across an `await`, so the asyncio
runtime never blocks its loop on it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from tasker import _validate as validate
from tasker._admission import Admission
from tasker._ahead import Ahead
from tasker._cancellation import Cancellation
from tasker._outcome import FailureDecision, decide_failure
from tasker._overload import Overload
from tasker._parking import Parking
from tasker._pool import PoolSlots
from tasker._queue import EXIT, TASK, TaskQueue
from tasker._run_task import Calls
from tasker._shutdown import Shutdown
from tasker._task import ENDED, TaskRecord, TaskState, release
from tasker._telemetry import Telemetry
from tasker._workforce import Workforce
from tasker.errors import WorkerCrashedError
from tasker.metrics import COMPLETED as METRIC_COMPLETED
from tasker.metrics import RETRIED
from tasker.stats import ManagerState

if TYPE_CHECKING:
    from tasker._config import Config
    from tasker._runtime import Runtime
    from tasker._worker import Worker

__all__ = ["Core"]

R = TypeVar("R")
T = TypeVar("T")

_perf = time.perf_counter
_BOOL: type = bool  # what callers may pass as a flag, whatever the annotations say

QUEUED = TaskState.QUEUED
RUNNING = TaskState.RUNNING
COMPLETED = TaskState.COMPLETED
FAILED = TaskState.FAILED
CANCELLED = TaskState.CANCELLED


class Core(Generic[R]):
    """The books and the task decisions of one manager, and its components. Runtimes call in."""

    def __init__(self, config: Config[R], runtime: Runtime) -> None:
        self.config = config
        self.runtime = runtime
        # every event goes out through telemetry; the hot paths read its parts directly
        self.telemetry = telemetry = Telemetry(config)
        self.log = telemetry.log
        self.observers = telemetry.observers
        self._collector = telemetry.collector
        self._counted_only = telemetry.counted_only
        self.queue = TaskQueue(runtime.channel)
        self._new_record = runtime.new_record
        self.pool: PoolSlots[R] = PoolSlots(config.pool_size)
        # the books: the worker list and the counts change under the lock only
        self._lock = threading.Lock()
        self._task_ids = itertools.count(1)
        self.workers: list[Worker] = []
        self._pending = 0  # submitted to the queues and not yet ended
        self._retire_quota = 0  # idle burst workers asked to leave
        # idle workers, each waiting for a task handed to it, longest-waiting first
        self._parked: deque[Worker] = deque()
        # the lifecycle: one state, moved only by `Shutdown.move`, which also keeps the three
        # reads the hot paths make (`accepting`, `closing`, `killed`) in step with it
        self._state = ManagerState.STARTING
        self.accepting = False
        self.closing = False
        self.killed = False
        self.wake = runtime.wake  # the supervisor has something to look at
        # an executor whose tasks cross a boundary readies each one as it is submitted
        self._prepare: Callable[[Callable[..., Any], tuple[Any, ...]], tuple[Any, ...]] | None = (
            getattr(config.executor, "prepare_task", None)
        )
        # with a queue limit or a maximum queue wait, `overload` takes part in taking tasks
        self._limit = config.queue_limit
        self._overload = self._limit is not None or config.max_queue_wait is not None
        # the components, each deciding one part of the engine on these books
        self.overload = Overload(self)
        self.ahead = Ahead(self)
        self.parking = Parking(self)
        self.cancellation = Cancellation(self)
        self.workforce = Workforce(self)
        self.shutdown = Shutdown(self)
        self.calls = Calls(self)

    def opened(self) -> None:
        """Every base worker is up: start accepting work."""
        with self._lock:
            self.shutdown.move(ManagerState.RUNNING)
        self.telemetry.manager_started()

    @property
    def state(self) -> ManagerState:
        """The lifecycle state."""
        return self._state

    # ------------------------------------------------------------- submission

    def submit(  # noqa: PLR0912, PLR0917 - every task's path, written out, called positionally
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        priority: bool,
        once: bool,
        timeout: float | None,
        patience: float | None = 0.0,
    ) -> TaskRecord[Any] | Admission:
        """Queue `fn(resource, *args)`; raise at once if the manager does not accept work.

        When the queues are full (`with_queue_limit`), a submission with no `patience` raises
        `QueueFullError`; one that may wait (seconds, `None`: as long as it takes) lines up
        and gets the `Admission` its runtime waits on (then `Overload.admitted`,
        `Overload.gave_up` when its patience runs out, or `Overload.interrupted`). A task that
        finds a worker parked is handed to it (see `_parking`): it is running from then on,
        and a later `cancel_queued` leaves it to run. The token, or the parked worker's wake-up,
        goes out last, outside the lock, after observers have heard the task queued.
        """
        if not callable(fn):
            raise TypeError(f"task must be callable, got {type(fn).__name__}")
        if priority.__class__ is not _BOOL or once.__class__ is not _BOOL:  # hostile input
            validate.flags(priority, once)
        if not self.accepting:
            raise self.shutdown.refusal()
        # math.inf: no limit for this task, whatever the manager's default
        timeout = (
            self.config.timeout if timeout is None else validate.time_limit("timeout", timeout)
        )
        if self._prepare is not None:  # raises what cannot cross, in the submitter
            args = self._prepare(fn, args)
        task = self._new_record(self, fn, args, next(self._task_ids), priority, once, timeout)
        # once the task is queued or handed over, its token or its worker's wake-up goes out
        # whatever happens (`finally`), last, outside the lock: the worker it wakes finds
        # nothing left to do in this thread but wait for the outcome
        wakeup = None  # the wake-up of the parked worker the task is handed to
        queued = False
        try:
            with self._lock:
                if not self.accepting:
                    raise self.shutdown.refusal()
                full = self._limit is not None and self.overload.full()
                if full:
                    admission = self.overload.line_up(task, patience)
                else:  # `Overload._enqueue`, written out: this is every task's path
                    self._pending += 1
                    self._collector.record_arrival(task)  # counted before a worker ends it
                    parked = self._parked
                    if parked:
                        worker = parked.popleft()
                        self._claim(worker, task)
                        worker.handoff = task
                        wakeup = worker.wakeup
                    else:
                        self.queue.add(task)
                    queued = True
            if full:
                return self.overload.lined_up(task, admission)
            if self.telemetry.extra is not None or self.observers.task_queued:
                self.telemetry.task_queued(task)
        finally:
            if queued:
                if wakeup is None:
                    self.queue.channel.put_nowait(TASK)
                else:
                    wakeup.release()
        return task

    def task_done(self) -> None:
        """One pending task ended; wake the supervisor when a stop was waiting for it."""
        with self._lock:
            self._pending -= 1
            if self._pending or not self.closing:
                return
        self.wake.set()

    def next_task(self, worker: Worker, token: object = TASK) -> TaskRecord[Any] | None:
        """A worker took `token`: claim the next queued task for it, or `None` (nothing to run).

        `None` with `worker.leaving` set means the worker must leave: the token was `EXIT`.
        Only `EXIT` makes a worker leave here: one that left holding a task's token would leave
        its task queued with nobody woken for it (an idle burst worker retires from its parked
        wait instead, see `tasker._parking`). Taking and claiming happen under the lock, so
        `kill()` sees every task either queued or running, never in between. Tasks that waited
        longer than `max_queue_wait` are shed on the way; the room taken tasks free goes to
        submissions waiting for it.
        """
        if token is not TASK:
            worker.leaving = token is EXIT
            return None
        with self._lock:
            task = self.queue.take()
            if self._overload:  # a queue limit or a maximum wait: shed, admit
                shed, task, admitted = self.overload.make_room(task)
            if task is not None:
                self._claim(worker, task)
        if self._overload:
            if admitted:
                self.overload.wake(admitted)
            if shed:
                self.overload.fail_shed(shed)
        return task

    def _claim(self, worker: Worker, task: TaskRecord[Any], ahead: bool = False) -> None:
        """`worker` takes `task`, just taken off the queue, as its current one (under the lock).

        `ahead`: as the one to run after its current one (see `Ahead.claim`).
        """
        task.state = RUNNING
        if ahead:
            worker.ahead = task
        else:
            worker.current = task
        if task.attempt == 0:  # its future leaves PENDING before kill() can end it
            task.set_running_or_notify_cancel()

    def attempt_started(self, task: TaskRecord[Any], worker: Worker | None) -> float:
        """Mark an attempt as begun; return its start time (for the wait and run durations)."""
        task.attempt += 1
        if worker is not None:
            task.worker_id = worker.worker_id
            task.resource = worker.resource
        task.started_at = start = _perf()
        telemetry = self.telemetry
        if telemetry.extra is not None or self.observers.task_started:
            if worker is None:
                telemetry.attempt_started(task, None, 0.0)
            else:
                telemetry.attempt_started(task, worker.worker_id, start - task.queued_at)
        return start

    # --------------------------------------------------------------- outcomes

    def _conclude(
        self,
        task: TaskRecord[Any],
        state: TaskState,
        value: Any = None,
        wait: float = 0.0,
        elapsed: float = 0.0,
        *,
        record: bool = True,
    ) -> None:
        """The terminal steps of a task that just moved to `state`, performed once.

        Telemetry first (metrics, the log, the observers), then the caller: whoever sees the
        outcome finds it counted already. `value` is the result or the error; `record=False`
        leaves out the attempt metrics (no attempt ran).
        """
        if state is COMPLETED and record and self._counted_only:  # every plain task's path
            self._collector.record_attempt(wait, elapsed, METRIC_COMPLETED)
        else:
            self.telemetry.task_finished(task, state, value, wait, elapsed, record=record)
        if state is COMPLETED:
            task._resolve(value)
        elif state is CANCELLED:
            task._abandon()
        else:
            task._fail(value)

    def _settle(
        self,
        task: TaskRecord[Any],
        state: TaskState,
        value: Any = None,
        wait: float = 0.0,
        elapsed: float = 0.0,
    ) -> bool:
        """Move a task that has not ended to `state` and conclude it; `False` if it had ended."""
        with self._lock:
            if task.state in ENDED:
                return False
            task.state = state
        self._conclude(task, state, value, wait, elapsed)
        return True

    def _end_attempt(self, worker: Worker, task: TaskRecord[Any], state: TaskState) -> bool:
        """The worker's attempt returned: free the worker; `True` if the task moved to `state`."""
        with self._lock:
            worker.current = None
            ended = task.state is RUNNING
            if ended:
                task.state = state
            if self.killed:
                return ended
            self._pending -= 1
            if self._pending or not self.closing:
                return ended
        self.wake.set()
        return ended

    def attempt_succeeded(
        self,
        worker: Worker,
        task: TaskRecord[Any],
        result: object,
        start: float,
        take: Callable[[], object] | None = None,
    ) -> TaskRecord[Any] | None:
        """A worker's attempt returned `result`: complete the task unless it ended meanwhile.

        With `take` (the runtime's non-blocking take of a token, `NO_TOKEN` when there is
        none), the worker also claims its next task in the same lock trip, while tasks are
        queued, and gets it back; `None` otherwise (and `worker.leaving` set when the token
        it took was `EXIT`). Every task then costs two trips of the lock, not three. When
        nothing is queued, the worker is parked in that same trip, as `Parking.park` would:
        its next step is to wait for a task handed to it. A task the worker claimed ahead
        (`Ahead.claim`) is its next one, whatever `take`.
        """
        elapsed = _perf() - start
        release(task)
        with self._lock:
            if worker.ahead is None:
                following = worker.current = None
            else:  # a task claimed ahead starts, whatever else
                following = self.ahead.promote_locked(worker)
            ended = task.state is RUNNING
            if ended:
                task.state = COMPLETED
            wake = False
            if not self.killed:
                self._pending -= 1
                wake = self.closing and not self._pending
                queue = self.queue
                if (
                    take is not None
                    and following is None
                    and not self._overload  # shedding and admission: `next_task` does them
                    and not (worker.burst and self._retire_quota > 0)  # it may have to leave
                ):
                    if queue.main_depth or queue.priority_depth:
                        token = take()
                        if token is TASK:
                            following = queue.take()
                            if following is not None:
                                self._claim(worker, following)
                        elif token is EXIT:
                            worker.leaving = True
                    elif queue.channel.empty():  # else a token (EXIT) is there to take
                        self._parked.append(worker)
                        worker.parked = True
        if ended:
            self._conclude(task, COMPLETED, result, start - task.queued_at, elapsed)
        if wake:
            self.wake.set()
        return following

    def attempt_failed(
        self, worker: Worker, task: TaskRecord[Any], error: BaseException, start: float
    ) -> bool:
        """A worker's attempt raised; return `True` if the worker must be replaced.

        The worker keeps the task as its current one while the health check decides, so a
        `kill()` from inside the check finds it running and cancels it.
        """
        elapsed = _perf() - start
        wait_time = start - task.queued_at
        if task.state is not RUNNING:  # answered elsewhere (kill, timeout, cancellation)
            release(task)
            self._end_attempt(worker, task, FAILED)
            # an interrupted place (a timeout, kill()) may have been torn down with its task
            return isinstance(error, WorkerCrashedError)
        decision = self._decide(task, error)
        if decision.replace_worker:
            self.telemetry.worker_unhealthy(worker.worker_id, task, error)
        if decision.retry and self._requeue(worker, task, error, wait_time, elapsed):
            return True
        final = decision.error if decision.error is not None else error
        release(task)
        if self._end_attempt(worker, task, FAILED):
            self._conclude(task, FAILED, final, wait_time, elapsed)
        return decision.replace_worker

    def _decide(self, task: TaskRecord[Any], error: BaseException) -> FailureDecision:
        cfg = self.config
        return decide_failure(
            task,
            error,
            health_check=cfg.health_check,
            max_retries=cfg.max_retries,
            log=self.log,
        )

    def _requeue(
        self,
        worker: Worker,
        task: TaskRecord[Any],
        error: BaseException,
        wait_time: float,
        elapsed: float,
    ) -> bool:
        """Queue a retry at the front of its queue; `False` if the manager can no longer run it.

        Also `True` when the task ended meanwhile (a `kill()` from the health check): there is
        nothing left to deliver.
        """
        # counted before the retry is visible, so metrics() never lags what callers can see
        self.telemetry.record_attempt(task, wait_time, elapsed, RETRIED, error)
        with self._lock:
            if task.state is not RUNNING:
                worker.current = None
                ended_elsewhere = True
            else:
                ended_elsewhere = False
                if self._state is ManagerState.KILLED or self._state is ManagerState.BROKEN:
                    return False
                worker.current = None
                task.state = QUEUED
                task.queued_at = _perf()
                if worker.ahead is not None:  # taken after the retry: it goes back behind it
                    self.ahead.withdraw_locked(worker)
                self.queue.put_front(task)
                if self._parked:
                    self.parking.look_locked()
        if ended_elsewhere:
            release(task)
            if not self.killed:
                self.task_done()
            return True
        self.telemetry.task_retried(task, error, elapsed, self.config.max_retries)
        return True
