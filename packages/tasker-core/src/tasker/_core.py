"""The engine behind both managers: lifecycle, submission, failures, scaling and shutdown.

Every decision lives here once; a runtime (`_threads`, `_asyncio`) only supplies the workers'
loops, the waits and the calls into user code, and asks the core what to do at each step.

Locking: one lock (`Core._lock`) guards the lifecycle flags, the pending-task count and the
worker list. The queues are lock-free deques (see `_queue`). Nothing slow (user code, resource
hooks, collectors, loggers) ever runs under the lock, and the lock is never held across an
`await`, so the asyncio runtime never blocks its loop on it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from tasker import _validate as validate
from tasker._admission import Admission, Line
from tasker._outcome import FailureDecision, decide_failure
from tasker._pool import PoolSlots
from tasker._queue import EXIT, TASK, TaskQueue
from tasker._scaler import Scaler
from tasker._task import ENDED, TaskRecord, TaskState, release
from tasker._telemetry import Telemetry
from tasker._worker import Worker
from tasker.errors import (
    ManagerBrokenError,
    ManagerClosedError,
    QueueFullError,
    TaskExpiredError,
    WorkerCrashedError,
)
from tasker.events import Event
from tasker.metrics import COMPLETED as METRIC_COMPLETED
from tasker.metrics import FAILED as METRIC_FAILED
from tasker.metrics import RETRIED, TaskMetrics
from tasker.stats import KillReport, ManagerState, TaskStats

if TYPE_CHECKING:
    from tasker._config import Config
    from tasker._runtime import Runtime

__all__ = ["Core"]

R = TypeVar("R")
T = TypeVar("T")

_perf = time.perf_counter
_BOOL: type = bool  # what callers may pass as a flag, whatever the annotations say

QUEUED = TaskState.QUEUED
RUNNING = TaskState.RUNNING
COMPLETED = TaskState.COMPLETED
FAILED = TaskState.FAILED
TIMED_OUT = TaskState.TIMED_OUT
CANCELLED = TaskState.CANCELLED


class Core(Generic[R]):
    """Shared state and decisions of one manager. Runtimes call into it."""

    def __init__(self, config: Config[R], runtime: Runtime) -> None:
        self.config = config
        self.runtime = runtime
        # every event goes out through telemetry; the hot paths read its parts directly
        self.telemetry = telemetry = Telemetry(config)
        self.log = telemetry.log
        self.observers = telemetry.observers
        self._collector = telemetry.collector
        self._counted_only = telemetry.counted_only
        self._scaler = Scaler(config, telemetry)
        self.queue = TaskQueue(runtime.channel)
        self._new_record = runtime.new_record
        self.pool: PoolSlots[R] = PoolSlots(config.pool_size)
        self._lock = threading.Lock()
        self._task_ids = itertools.count(1)
        self._worker_ids = itertools.count(1)
        self.workers: list[Worker] = []
        self._pending = 0  # submitted to the queues and not yet ended
        self._ready = 0  # workers holding a resource
        self._retire_quota = 0  # idle burst workers asked to leave
        self._idle = 0  # workers waiting for a task token
        self._claimed = 0  # queued tasks claimed by an idle worker on submission
        self._calls = 0  # run_task calls under way, each holding a resource
        self.calls_done = runtime.calls_done  # set while no run_task call holds a resource
        self.calls_done.set()
        # the lifecycle: one state, moved only by `_move`, which also keeps the three reads
        # the hot paths make (`accepting`, `closing`, `killed`) in step with it
        self._state = ManagerState.STARTING
        self.accepting = False
        self.closing = False
        self.killed = False
        self._failing_since: float | None = None
        self._last_create_error: BaseException | None = None
        self.shutdown = runtime.shutdown  # workers must leave: drained, killed, failed build
        self.killed_signal = runtime.killed_signal
        self.terminated = runtime.terminated
        self.wake = runtime.wake  # the supervisor has something to look at
        # an executor whose tasks cross a boundary readies each one as it is submitted
        self._prepare: Callable[[Callable[..., Any], tuple[Any, ...]], tuple[Any, ...]] | None = (
            getattr(config.executor, "prepare_task", None)
        )
        # overload: at most `_limit` tasks queued, submissions waiting for room in `_line`;
        # tasks that waited longer than `_max_wait` are shed when a worker takes them
        self._limit = config.queue_limit
        self._line = Line()
        self._max_wait = config.max_queue_wait
        self._overload = self._limit is not None or self._max_wait is not None

    # ----------------------------------------------------------------- start

    def new_worker(self, *, burst: bool) -> Worker:
        """Register a worker; the runtime starts its loop."""
        worker = Worker(next(self._worker_ids), burst=burst)
        with self._lock:
            self.workers.append(worker)
        return worker

    def opened(self) -> None:
        """Every base worker is up: start accepting work."""
        with self._lock:
            self._move(ManagerState.RUNNING)
        self.telemetry.manager_started()

    # ------------------------------------------------------------- submission

    def submit(  # noqa: PLR0917 - every task's path: a positional call is cheaper
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
        and gets the `Admission` its runtime waits on (then `admitted`, `gave_up` when its
        patience runs out, or `interrupted`). A task that finds a worker idle is claimed for
        it: a later `cancel_queued` leaves it to run, as it would had the worker already
        picked it up.
        """
        if not callable(fn):
            raise TypeError(f"task must be callable, got {type(fn).__name__}")
        if priority.__class__ is not _BOOL or once.__class__ is not _BOOL:  # hostile input
            validate.flags(priority, once)
        if not self.accepting:
            raise self.refusal()
        if timeout is None:
            timeout = self.config.timeout
        else:  # math.inf: no limit for this task, whatever the manager's default
            timeout = validate.time_limit("timeout", timeout)
        if self._prepare is not None:  # raises what cannot cross, in the submitter
            args = self._prepare(fn, args)
        task = self._new_record(self, fn, args, next(self._task_ids), priority, once, timeout)
        with self._lock:
            if not self.accepting:
                raise self.refusal()
            queued: TaskRecord[Any] | Admission | None
            if self._limit is not None and self._full():
                queued = self._line_up(task, patience)
            else:  # `_enqueue`, written out: this is every task's path
                self._pending += 1
                if self._idle > self._claimed:
                    task.claimed = True
                    self._claimed += 1
                self.queue.put(task)
                self._collector.record_arrival(task)  # counted before a worker can finish it
                queued = task
        if queued is None:
            raise self._rejected(task)
        if queued is task and (self.telemetry.extra is not None or self.observers.task_queued):
            self.telemetry.task_queued(task)
        return queued

    def _line_up(self, task: TaskRecord[Any], patience: float | None) -> Admission | None:
        """The queues are full: line `task` up if it may wait, else `None` (under the lock)."""
        if patience == 0:
            return None
        admission = Admission(task, self.runtime.new_waiter(), patience)
        self._line.join(admission)
        return admission

    def _enqueue(self, task: TaskRecord[Any]) -> None:
        """Queue a task admitted from the line (under the lock), as `submit` does."""
        self._pending += 1
        if self._idle > self._claimed:
            task.claimed = True
            self._claimed += 1
        self.queue.put(task)
        self._collector.record_arrival(task)

    def _full(self) -> bool:
        """Whether the queues hold `queue_limit` tasks (under the lock; a limit is set)."""
        assert self._limit is not None
        return self.queue.main_depth + self.queue.priority_depth >= self._limit

    def _rejected(self, task: TaskRecord[Any]) -> QueueFullError:
        """Count a submission refused for want of room; return the error its caller gets."""
        self.telemetry.task_rejected(task, self._limit)
        return QueueFullError(
            f"cannot submit a task: the queue of manager {self.config.name!r} is full "
            f"({self._limit} tasks)"
        )

    def _admit(self) -> list[Admission]:
        """Queue waiting submissions while there is room (under the lock); return them."""
        line = self._line
        admitted = []
        while line.waiting and not self._full():
            admission = line.first()
            task = admission.task
            task.queued_at = _perf()  # its queue wait starts now, not when it lined up
            self._enqueue(task)
            admission.admitted = True
            admitted.append(admission)
        return admitted

    def _refuse_line(self) -> list[Admission]:
        """The manager no longer accepts work: refuse every waiting submission (under the lock)."""
        refused = self._line.clear()
        for admission in refused:
            admission.error = self.refusal()
        return refused

    def _wake(self, admissions: list[Admission]) -> None:
        """Release the callers of admissions just decided (outside the lock)."""
        for admission in admissions:
            if admission.admitted:
                self.telemetry.task_queued(admission.task)
            admission.waiter.wake()

    def admitted(self, admission: Admission) -> TaskRecord[Any]:
        """A waiting submission was woken: its queued task, or the manager's refusal raised."""
        if admission.error is not None:
            raise admission.error
        return admission.task

    def gave_up(self, admission: Admission) -> TaskRecord[Any]:
        """A waiting submission's wait ran out: `QueueFullError`, unless decided meanwhile."""
        with self._lock:
            waiting = admission.waiting
            if waiting:
                self._line.leave(admission)
        if waiting:
            raise self._rejected(admission.task)
        return self.admitted(admission)

    def interrupted(self, admission: Admission) -> None:
        """A waiting submission's caller was interrupted: leave the line, or cancel its task."""
        with self._lock:
            waiting = admission.waiting
            if waiting:
                self._line.leave(admission)
        if not waiting and admission.admitted:
            self.discard(admission.task)  # nobody will hold its future: do not run it

    def check_open(self, action: str) -> None:
        """Raise `ManagerClosedError` if the manager was stopped or killed."""
        if self.closing or self.killed:
            state = self.state.value
            raise ManagerClosedError(f"cannot {action} manager {self.config.name!r}: it is {state}")

    def refusal(self) -> RuntimeError:
        """The error explaining why work is refused right now."""
        if self._state is ManagerState.BROKEN:
            error = ManagerBrokenError(
                f"manager {self.config.name!r} is broken: no worker could create its resource "
                f"for {self.config.backoff.broken_after} s; last error: "
                f"{self._last_create_error!r}"
            )
            error.__cause__ = self._last_create_error
            return error
        state = self._state.value
        return ManagerClosedError(
            f"cannot submit tasks: manager {self.config.name!r} was {state}"
            if state == "killed"
            else f"cannot submit tasks: manager {self.config.name!r} is {state}"
        )

    def discard(self, task: TaskRecord[Any]) -> bool:
        """Its caller cancels a task: end it as cancelled if it is still queued.

        O(1): the record stays in its deque, ended; the worker that meets it skips it.
        """
        with self._lock:
            if task.state is not QUEUED:
                return False
            task.state = CANCELLED
            self.queue.forget(task)
            self._pending -= 1
            wake = self.closing and not self._pending
            admitted = self._admit() if self._line.waiting else None
        release(task)
        self._conclude(task, CANCELLED)
        if admitted:
            self._wake(admitted)
        if wake:
            self.wake.set()
        return True

    def cancel_running(self, task: TaskRecord[Any]) -> bool:
        """Its caller cancels a running task (asyncio): answer it now, interrupt the attempt."""
        with self._lock:
            if task.state is not RUNNING:
                return False
            task.state = CANCELLED
            task.cancel_requested = True
        self.runtime.interrupt(task)
        self._conclude(task, CANCELLED)
        return True

    def idle_begin(self) -> None:
        """A worker starts waiting for a task token."""
        with self._lock:
            self._idle += 1

    def idle_end(self) -> None:
        """A worker stops waiting for a task token."""
        with self._lock:
            self._idle -= 1

    def task_done(self) -> None:
        """One pending task ended; wake the supervisor when a stop was waiting for it."""
        with self._lock:
            self._pending -= 1
            if self._pending or not self.closing:
                return
        self.wake.set()

    def next_task(
        self, worker: Worker, token: object = TASK, waited: bool = False
    ) -> TaskRecord[Any] | None:
        """A worker took `token`: claim the next queued task for it, or `None` (nothing to run).

        `waited`: the worker waited for the token, counted idle since `idle_begin`; it no
        longer is.

        `None` with `worker.leaving` set means the worker must leave: the token was `EXIT`, or
        its wait ran out (`IDLE`) and the policy retires it. Taking and claiming happen under
        the lock, so `kill()` sees every task either queued or running, never in between. Tasks
        that waited longer than `max_queue_wait` are shed on the way; the room taken tasks free
        goes to submissions waiting for it.
        """
        if token is not TASK:  # never a task's token: a worker leaving must not hold one
            if waited:
                self.idle_end()
            worker.leaving = token is EXIT or self.try_retire(worker)
            return None
        with self._lock:
            if waited:
                self._idle -= 1
            task = self.queue.take()
            if self._overload:  # a queue limit or a maximum wait: shed, admit
                shed, task, admitted = self._make_room(task)
            if task is not None:
                self._claim(worker, task)
        if self._overload:
            if admitted:
                self._wake(admitted)
            if shed:
                self._fail_shed(shed)
        return task

    def _claim(self, worker: Worker, task: TaskRecord[Any], ahead: bool = False) -> None:
        """`worker` takes `task`, just taken off the queue, as its current one (under the lock).

        `ahead`: as the one to run after its current one (see `claim_ahead`).
        """
        task.state = RUNNING
        if ahead:
            worker.ahead = task
        else:
            worker.current = task
        if task.claimed:
            self._claimed -= 1
        if task.attempt == 0:  # its future leaves PENDING before kill() can end it
            task.set_running_or_notify_cancel()

    def claim_ahead(self, worker: Worker, take: Callable[[], object]) -> TaskRecord[Any] | None:
        """While its current task runs, `worker` claims the next queued one to run after it.

        For places that send a task ahead (`sends_ahead`), so their process starts it as soon
        as the current one returns. `take` is the runtime's non-blocking take of a token
        (`NO_TOKEN` when there is none); an `EXIT` token taken sets `worker.leaving`. The task
        is running as far as `kill()` and `stop()` are concerned; its attempt starts, and is
        counted, when `attempt_succeeded` (or `promote`) makes it the current one; `withdraw`
        queues it again if it never starts. Nothing is claimed ahead with a queue limit or a
        maximum queue wait (the room and the wait are those of the queue), nor by a burst
        worker the policy may retire.
        """
        with self._lock:
            queue = self.queue
            if (
                self.killed
                or self._overload
                or not (queue.main_depth or queue.priority_depth)
                or (worker.burst and self._retire_quota > 0)
            ):
                return None
            token = take()
            if token is TASK:
                task = queue.take()
                if task is not None:
                    self._claim(worker, task, ahead=True)
                return task
            if token is EXIT:
                worker.leaving = True
            return None

    def promote(self, worker: Worker) -> TaskRecord[Any] | None:
        """The task `worker` claimed ahead becomes its current one, about to start.

        `None` if it ended meanwhile (`kill()`): it never starts.
        """
        with self._lock:
            return self._promote(worker)

    def _promote(self, worker: Worker) -> TaskRecord[Any] | None:
        """`promote`, under the lock."""
        task = worker.ahead
        worker.ahead = None
        if task is not None and task.state is not RUNNING:
            task = None
        worker.current = task
        return task

    def withdraw(self, worker: Worker) -> None:
        """`worker` leaves the task it claimed ahead unstarted: queue it again, at the front.

        No attempt of it ran: none is counted.
        """
        with self._lock:
            self._withdraw(worker)

    def _withdraw(self, worker: Worker) -> None:
        """`withdraw`, under the lock."""
        task = worker.ahead
        worker.ahead = None
        if task is not None and task.state is RUNNING:  # else it ended meanwhile (kill)
            task.state = QUEUED
            self.queue.put_front(task)

    def _make_room(
        self, task: TaskRecord[Any] | None
    ) -> tuple[list[TaskRecord[Any]], TaskRecord[Any] | None, list[Admission]]:
        """A task was taken: shed it and the next if they waited too long, admit waiting ones.

        Under the lock; returns the shed tasks, the task to run (if any), and the admitted
        submissions.
        """
        shed: list[TaskRecord[Any]] = []
        if task is not None and self._max_wait is not None:
            shed, task = self._shed(task)
        admitted = self._admit() if self._line.waiting else []
        return shed, task, admitted

    def _shed(self, task: TaskRecord[Any]) -> tuple[list[TaskRecord[Any]], TaskRecord[Any] | None]:
        """Shed `task`, just taken, and the next ones while they waited too long.

        Under the lock; returns the shed tasks and the first task still in time, if any. The
        worker took one token for several tasks: the tokens of the shed ones are skipped
        later, as a cancelled task's are.
        """
        assert self._max_wait is not None
        oldest = _perf() - self._max_wait
        shed: list[TaskRecord[Any]] = []
        taken: TaskRecord[Any] | None = task
        while taken is not None and taken.queued_at < oldest:
            taken.state = FAILED
            if taken.claimed:
                self._claimed -= 1
            shed.append(taken)
            taken = self.queue.take()
        self._pending -= len(shed)
        return shed, taken

    def _fail_shed(self, shed: list[TaskRecord[Any]]) -> None:
        """Fail tasks shed for waiting too long (outside the lock)."""
        max_wait = self._max_wait
        assert max_wait is not None
        now = _perf()
        for task in shed:
            release(task)
            waited = now - task.queued_at
            self.telemetry.task_shed(task, waited, max_wait)
            error = TaskExpiredError(
                f"task {task.task_id} was shed: it waited {waited:.3f} s in the queue, longer "
                f"than the {max_wait} s allowed",
                waited=waited,
                max_wait=max_wait,
            )
            self._conclude(task, FAILED, error, record=False)
        if self.closing:
            with self._lock:
                wake = not self._pending
            if wake:
                self.wake.set()

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
        it took was `EXIT`). Every task then costs two trips of the lock, not three. A task
        the worker claimed ahead (`claim_ahead`) is its next one, whatever `take`.
        """
        elapsed = _perf() - start
        release(task)
        with self._lock:
            if worker.ahead is None:
                following = worker.current = None
            else:  # a task claimed ahead starts, whatever else
                following = self._promote(worker)
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
                    and (queue.main_depth or queue.priority_depth)
                ):
                    token = take()
                    if token is TASK:
                        following = queue.take()
                        if following is not None:
                            self._claim(worker, following)
                    elif token is EXIT:
                        worker.leaving = True
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

    def attempt_cancelled(self, worker: Worker, task: TaskRecord[Any]) -> None:
        """A running attempt was interrupted because its caller cancelled it (asyncio)."""
        release(task)
        if self._end_attempt(worker, task, CANCELLED):
            self._conclude(task, CANCELLED)

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
                    self._withdraw(worker)
                self.queue.put_front(task)
        if ended_elsewhere:
            release(task)
            if not self.killed:
                self.task_done()
            return True
        self.telemetry.task_retried(task, error, elapsed, self.config.max_retries)
        return True

    # --------------------------------------------------------------- run_task

    def run_task_record(self, fn: Callable[[R], Any], *, once: bool) -> TaskRecord[Any]:
        """Start a `run_task` call: check the state, make and count its record."""
        if not callable(fn):
            raise TypeError(f"task must be callable, got {type(fn).__name__}")
        validate.flag("once", once)
        with self._lock:
            if self.closing or self.killed:
                raise self.refusal()
            self._calls += 1
            self.calls_done.clear()
        task = self._new_record(self, fn, (), next(self._task_ids), False, once, None)
        task.state = RUNNING
        task.set_running_or_notify_cancel()
        self.telemetry.arrival(task)
        return task

    def run_task_returned(self) -> None:
        """A `run_task` call has given back (or destroyed) its resource.

        The shutdown's last step waits for every call to get here, so `stop()` never reports
        a manager stopped while a resource is still open.
        """
        with self._lock:
            self._calls -= 1
            if self._calls:
                return
        self.calls_done.set()

    def run_task_failed(
        self, task: TaskRecord[Any], error: BaseException, start: float
    ) -> tuple[bool, BaseException | None]:
        """Settle a failed `run_task` attempt.

        Returns `(unhealthy, error_to_raise)`: an unhealthy resource must be destroyed, and
        `error_to_raise` is `None` when the task is to be retried on a fresh one.
        """
        elapsed = _perf() - start
        decision = self._decide(task, error)
        if decision.retry and not self.killed:
            self.telemetry.record_attempt(task, 0.0, elapsed, RETRIED, error)
            self.telemetry.task_retried(task, error, elapsed, self.config.max_retries)
            return True, None
        final = decision.error if decision.error is not None else error
        self._settle(task, FAILED, final, 0.0, elapsed)
        return decision.replace_worker, final

    def run_task_unavailable(self, task: TaskRecord[Any], error: BaseException) -> None:
        """No resource could be made for a `run_task` call."""
        self.telemetry.record_attempt(task, 0.0, 0.0, METRIC_FAILED, error)

    def deadline_passed(self, task: TaskRecord[Any], attempt: int, elapsed: float) -> None:
        """Attempt `attempt` of a thread task outlived its timeout: time it out if it still runs.

        The task is told to stop (`current_task().cancelled`); its worker is not replaced and
        picks up the next task once the overdue one returns.
        """
        with self._lock:
            if task.attempt != attempt or task.state is not RUNNING:
                return
            task.state = TIMED_OUT
            task.cancel_requested = True
        self.runtime.interrupt(task)  # a place that can stop the attempt does so now
        self._conclude(
            task, TIMED_OUT, self._timeout_error(task), task.started_at - task.queued_at, elapsed
        )

    def _timeout_error(self, task: TaskRecord[Any]) -> TimeoutError:
        return TimeoutError(f"task {task.task_id} timed out after {task.timeout} s")

    def attempt_expired(self, worker: Worker, task: TaskRecord[Any], start: float) -> None:
        """An attempt was cancelled by its timeout (asyncio): settle it, keep the worker."""
        elapsed = _perf() - start
        release(task)
        task.cancel_requested = True
        if self._end_attempt(worker, task, TIMED_OUT):
            self._conclude(
                task, TIMED_OUT, self._timeout_error(task), start - task.queued_at, elapsed
            )

    def run_task_succeeded(self, task: TaskRecord[Any], start: float) -> None:
        """Count a successful `run_task` attempt (the caller gets the result directly)."""
        self._settle(task, COMPLETED, None, 0.0, _perf() - start)

    # -------------------------------------------------------------- resources

    def destroy_failed(self, error: BaseException, worker: Worker | None = None) -> None:
        """`on_destroy` raised: log it (it is never raised)."""
        self.telemetry.destroy_failed(worker.worker_id if worker else None, error)

    def creation_failed(self, worker: Worker, error: BaseException, failures: int) -> None:
        """A worker's `on_create` failed; declare the manager broken if nothing is alive."""
        self.telemetry.create_failed(worker.worker_id, failures, error)
        with self._lock:
            self._last_create_error = error
            # broken only counts while running or stopping with nobody alive: a stop must not
            # wait for queued tasks that no worker will ever run
            state = self._state
            if self._ready or not (state is ManagerState.RUNNING or state is ManagerState.STOPPING):
                return
            now = time.monotonic()
            if self._failing_since is None:
                self._failing_since = now
                return
            if now - self._failing_since < self.config.backoff.broken_after:
                return
            refused: list[Admission] = []
            if state is ManagerState.RUNNING:
                self._move(ManagerState.BROKEN)
                refused = self._refuse_line()
            elif not self.queue.main_depth + self.queue.priority_depth:
                return  # stopping, and the queues were failed already
            doomed = self.queue.drain()
            for task in doomed:
                task.state = FAILED
            self._pending -= len(doomed)
            wake = self.closing and not self._pending
        self.log(logging.ERROR, Event.MANAGER_BROKEN, failed_tasks=len(doomed), error=error)
        self._wake(refused)
        for task in doomed:
            release(task)
            broken = ManagerBrokenError(
                f"task {task.task_id} cannot run: manager {self.config.name!r} is broken "
                f"(no worker could create its resource): {error!r}"
            )
            broken.__cause__ = error
            self._conclude(task, FAILED, broken, record=False)
        if wake:
            self.wake.set()

    def worker_ready(self, worker: Worker, place: Any) -> None:
        """A worker's place created its resource (see `tasker.executors.Place`)."""
        worker.place = place
        worker.resource = place.resource
        if worker.starting_since is not None:  # what a new worker costs, for the policy
            self._scaler.started(time.monotonic() - worker.starting_since)
            worker.starting_since = None
        with self._lock:
            self._ready += 1
            self._failing_since = None
            recovered = self._state is ManagerState.BROKEN
            if recovered:
                self._move(ManagerState.RUNNING)
        self.telemetry.worker_started(worker.worker_id, worker.burst)
        if recovered:
            self.log(logging.INFO, Event.MANAGER_RECOVERED, worker_id=worker.worker_id)

    def worker_releasing(self, worker: Worker) -> Any:
        """A worker is about to destroy its resource; return its place."""
        place, worker.place, worker.resource = worker.place, None, None
        with self._lock:
            self._ready -= 1
        return place

    def worker_replaced(self, worker: Worker) -> None:
        """A worker whose resource turned unhealthy starts afresh, under a new id."""
        old = worker.worker_id
        worker.worker_id = next(self._worker_ids)
        worker.starting_since = time.monotonic()
        self.telemetry.worker_replaced(worker.worker_id, old)

    def worker_exited(self, worker: Worker) -> None:
        """A worker's loop returned."""
        with self._lock:
            self.workers.remove(worker)
        self.telemetry.worker_stopped(worker.worker_id)

    @property
    def retiring(self) -> bool:
        """Whether the policy wants burst workers to leave (a cheap read for worker loops)."""
        return self._retire_quota > 0

    def try_retire(self, worker: Worker) -> bool:
        """An idle burst worker asks whether it should leave."""
        if not worker.burst:
            return False
        with self._lock:
            if self._retire_quota <= 0 or self.shutdown.is_set():
                return False
            self._retire_quota -= 1
            return True

    # ---------------------------------------------------------------- scaling

    def supervisor_tick(self) -> int | None:
        """One supervisor step: `None` when it is time to finish, else the workers to add."""
        if self.killed:
            return None
        if self.closing:
            with self._lock:
                if not self._pending:
                    return None
        return self._plan_scaling()

    def _plan_scaling(self) -> int:
        queued = self.queue.main_depth + self.queue.priority_depth
        target = self._scaler.target(list(self.workers), queued)
        if target is None:
            return 0
        with self._lock:
            if self.shutdown.is_set():
                return 0
            live = len(self.workers)
            if self.closing:  # winding down: idle bursts may leave, none are added
                target = min(target, live)
            grow = target - live
            previous_quota = self._retire_quota
            self._retire_quota = max(0, -grow)
        if grow > 0 or (grow < 0 and self._retire_quota != previous_quota):
            self.telemetry.scaled(live, target)
        return max(grow, 0)

    # --------------------------------------------------------------- shutdown

    def begin_stop(self) -> None:
        """Refuse new work; the supervisor finishes the shutdown once everything has drained."""
        with self._lock:
            if self.closing:
                return
            self._move(ManagerState.STOPPING)
            pending = self._pending
            refused = self._refuse_line()
        self.log(logging.INFO, Event.MANAGER_STOPPING, pending_tasks=pending)
        self._wake(refused)
        self.wake.set()

    def cancel_queued(self) -> int:
        """Stop gracefully, but cancel every queued task first; return how many were cancelled.

        Running tasks finish as usual, and so do tasks claimed by an idle worker when they were
        submitted (`Executor.shutdown(cancel_futures=True)`).
        """
        self.begin_stop()
        with self._lock:
            queued = self.queue.drain(keep_claimed=True)
            for task in queued:
                task.state = CANCELLED
            self._pending -= len(queued)
        for task in queued:
            release(task)
            self._conclude(task, CANCELLED)
        self.wake.set()  # the supervisor checks whether anything is left to wait for
        return len(queued)

    def kill(self) -> KillReport:
        """Refuse new work, cancel queued tasks, abandon running ones, tear everything down.

        Every task that has not ended is ended here, under the lock: queued ones count as
        cancelled, running ones (their worker's current task) as abandoned.
        """
        with self._lock:
            if self._state is ManagerState.KILLED or self._state is ManagerState.STOPPED:
                return KillReport(cancelled_tasks=0, abandoned_tasks=0)
            self._move(ManagerState.KILLED)
            self.shutdown.set()
            refused = self._refuse_line()
            queued = self.queue.drain()
            running = [
                task
                for w in self.workers
                for task in (w.current, w.ahead)
                if task is not None and task.state is RUNNING
            ]
            for task in queued:
                task.state = CANCELLED
            for task in running:
                task.state = CANCELLED
                task.cancel_requested = True
            self._pending = 0
            live = len(self.workers)
        self._wake(refused)
        for task in queued:
            release(task)
        for task in running:
            self.runtime.interrupt(task)
        self.killed_signal.set()
        for task in queued:
            self._conclude(task, CANCELLED)
        for task in running:
            self._conclude(task, CANCELLED)
            self.telemetry.task_abandoned(task)
        self.queue.send(EXIT, live)
        self.wake.set()
        report = KillReport(cancelled_tasks=len(queued), abandoned_tasks=len(running))
        self.log(
            logging.WARNING,
            Event.MANAGER_KILLED,
            cancelled_tasks=report.cancelled_tasks,
            abandoned_tasks=report.abandoned_tasks,
        )
        return report

    def finish_begin(self) -> list[Worker]:
        """The supervisor's last act begins: release every worker; return them to join."""
        with self._lock:
            self.shutdown.set()
            workers = list(self.workers)
        # one EXIT per worker; after kill() this repeats its tokens, which is harmless and
        # reaches a burst worker started while kill() was taking its snapshot
        self.queue.send(EXIT, len(workers))
        return workers

    def finish_end(self) -> None:
        """Every worker has exited and every resource is destroyed."""
        with self._lock:
            if not self.killed:
                self._move(ManagerState.STOPPED)
        self.telemetry.manager_stopped(self.killed)
        self.terminated.set()

    # -------------------------------------------------------------- snapshots

    @property
    def state(self) -> ManagerState:
        """The lifecycle state."""
        return self._state

    _MOVES: Final = {
        ManagerState.STARTING: {ManagerState.RUNNING, ManagerState.STOPPED, ManagerState.KILLED},
        ManagerState.RUNNING: {ManagerState.BROKEN, ManagerState.STOPPING, ManagerState.KILLED},
        ManagerState.BROKEN: {ManagerState.RUNNING, ManagerState.STOPPING, ManagerState.KILLED},
        ManagerState.STOPPING: {ManagerState.STOPPED, ManagerState.KILLED},
        ManagerState.STOPPED: set(),
        ManagerState.KILLED: set(),
    }
    """Every move the lifecycle allows: `build()` opens, a failed build or `stop()` closes,
    `kill()` ends any state that is not final, broken and running alternate."""

    def _move(self, to: ManagerState) -> None:
        """The one transition of the manager's state (held under `_lock`)."""
        if to not in self._MOVES[self._state]:
            raise AssertionError(f"manager state cannot move from {self._state} to {to}")
        self._state = to
        self.accepting = to is ManagerState.RUNNING
        self.closing = to in (ManagerState.STOPPING, ManagerState.STOPPED, ManagerState.KILLED)
        self.killed = to is ManagerState.KILLED

    def stats(self) -> TaskStats:
        """A live snapshot of workers, queues and pool."""
        workers = list(self.workers)
        return TaskStats(
            base_workers=self.config.workers,
            active_workers=len(workers),
            burst_workers=sum(1 for w in workers if w.burst),
            max_workers=self.config.max_workers,
            busy_workers=sum(1 for w in workers if w.current is not None),
            queued_tasks=self.queue.main_depth,
            priority_tasks=self.queue.priority_depth,
            available_resources=self.pool.available,
            state=self.state,
            queue_limit=self._limit,
            waiting_submissions=self._line.waiting,
        )

    def metrics(self) -> TaskMetrics:
        """The built-in collector's snapshot."""
        return self._collector.metrics()
