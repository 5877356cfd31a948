"""The process executor: each worker's resource lives in a child process of its own.

`TaskManager.builder().with_executor("process")` keeps the thread manager's API and semantics;
what changes is where `on_create`, the tasks and `on_destroy` run: in one child process per
worker, which owns the resource for its whole life. That buys three things threads cannot give:

- **CPU-bound Python in parallel**: each child has its own interpreter and GIL.
- **Crash isolation**: a child that dies under a task (a segfault in a C extension, `SIGKILL`,
  `os._exit`, the OOM killer) fails that task as unhealthy: the worker is replaced by a fresh
  child with a fresh resource and the task retried (never a once-task); every other worker and
  queued task carries on. After `max_retries` the caller gets `RetriesExhaustedError` chaining
  a [`WorkerCrashedError`][tasker.WorkerCrashedError] that names the exit code or signal.
- **Timeouts that really stop**: an attempt past its timeout has its child killed (after
  `cancel_grace` seconds, if given, in which the task sees `current_task().cancelled`); the
  caller gets `TimeoutError` at once and the worker starts a fresh child.

What crosses the boundary follows [`tasker.serialization`][tasker.serialization]: the hooks
once per child; each task's function and arguments once, when it is submitted (what cannot
cross is a `TypeError` from `submit`, naming the function or the argument); its result or
exception on the way back. A task runs in the child without the submitter's `contextvars`;
`current_task()` there gives its id, attempt, worker and the child's resource, and its
`cancelled` turns `True` when a timeout or `kill()` asks the task to stop.

While a child runs a task, its worker sends it the next queued one, so the child starts that
one as soon as the first returns, not after a round trip through the manager (see
`ProcessPlace.call`, and the executors page for what that task counts as meanwhile).

The default start method is `"spawn"`: a fresh interpreter per child, safe whatever threads the
manager's process runs (forking a process that has threads may copy a lock held by another
thread, and deadlock the child). `"forkserver"` starts children faster on Linux with the same
safety; `"fork"` is fastest and unsafe with threads, which every manager has.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import select
import signal
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any, Literal

from tasker import _validate as validate
from tasker._task import call_in_scope, call_in_task
from tasker.errors import RemoteTaskError, WorkerCrashedError
from tasker.executors import ThreadExecutor
from tasker.serialization import (
    SERIALIZERS,
    EncodedTask,
    RemoteTask,
    Serializer,
    decode_outcome,
    dumps_for,
    encode_error,
    encode_result,
    encode_task,
    failed,
    no_task,
    portable_error,
    task_payload,
)

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from tasker._task import TaskRecord

__all__ = [
    "ProcessExecutor",
    "ProcessOptions",
    "ProcessPlace",
    "RemoteTaskError",
    "portable_error",
]

_START_METHODS = ("spawn", "forkserver", "fork")

# a task message: its attempt's sequence number (for cancellation), task id, attempt, worker id
# (-1: none), flags (1 priority, 2 once); the serialized `(fn, args)` follows
_HEADER = struct.Struct("<QqIqB")
_SEQ = struct.Struct("<Q")
_PRIORITY, _ONCE = 1, 2
_OK_NONE = encode_result(None)
# after a task failed, the child holds the next task until the manager sends this (one byte: a
# task message is longer, an empty one tells the child to stop)
_GO = b"g"
# the largest task sent ahead while the child runs another: both ends could block writing
# into full pipes if a large task went ahead of a large result
_AHEAD_MAX = 32 * 1024


@dataclass(frozen=True, slots=True)
class ProcessOptions:
    """Settings of the process executor.

    Attributes:
        start_method: how children start: `"spawn"` (the default: safe with threads),
            `"forkserver"` or `"fork"` (fast, unsafe once the parent has threads).
        serializer: `"auto"` (cloudpickle when installed, else pickle), `"cloudpickle"` or
            `"pickle"`.
        stop_grace: seconds a child is given to run `on_destroy` and exit before it is killed.
        cancel_grace: seconds a task past its timeout, or running at `kill()`, is given to see
            `current_task().cancelled` and return before its child is killed. `0` (the
            default) kills at once. A task that returns in time keeps its worker's child and
            resource.
        send_ahead: while a child runs a task, send it the next queued one (the default), so
            it starts the moment the first returns. `False` leaves every task in the queue
            until a child is free, so a priority task submitted meanwhile goes first; each
            task then waits for a round trip through the manager.
    """

    start_method: Literal["spawn", "forkserver", "fork"] = "spawn"
    serializer: Serializer = "auto"
    stop_grace: float = 10.0
    cancel_grace: float = 0.0
    send_ahead: bool = True

    def __post_init__(self) -> None:
        if self.start_method not in _START_METHODS:
            raise ValueError(
                f"start_method must be one of {', '.join(map(repr, _START_METHODS))}, "
                f"got {self.start_method!r}"
            )
        if self.serializer not in SERIALIZERS:
            raise ValueError(
                f"serializer must be one of {', '.join(map(repr, SERIALIZERS))}, "
                f"got {self.serializer!r}"
            )
        validate.seconds("stop_grace", self.stop_grace)
        validate.seconds("cancel_grace", self.cancel_grace, allow_zero=True)
        validate.flag("send_ahead", self.send_ahead)


def _describe_exit(process: BaseProcess) -> str:
    code = process.exitcode
    if code is None:
        return "its process is gone"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"its process was killed by {name}"
    return f"its process exited with code {code}"


# ------------------------------------------------------------------------------- the child


class _Cancellation:
    """In the child: which attempts the manager asked to stop (timeout, `kill()`).

    A request may come before its attempt begins (a task sent ahead): it is kept until then.
    """

    __slots__ = ("_all", "_lock", "_requested", "_running", "flag")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._requested: set[int] = set()
        self._all = False
        self.flag = threading.Event()

    def begin(self, seq: int) -> None:
        with self._lock:
            self._running = seq
            requested = self._requested
            if self._all or seq in requested:
                self.flag.set()
            else:
                self.flag.clear()
            if requested:
                self._requested = {later for later in requested if later > seq}

    def request(self, seq: int | None) -> None:
        """Stop attempt `seq` (`None`: whatever runs or comes; the manager went away)."""
        with self._lock:
            if seq is None:
                self._all = True
            elif seq > self._running:
                self._requested.add(seq)
                return
            if seq is None or seq == self._running:
                self.flag.set()

    # what `current_task()` reads through the task's `_core` (see `RunningTask`)
    @property
    def killed(self) -> bool:
        return self.flag.is_set()

    @property
    def runtime(self) -> _Cancellation:
        return self

    def wait_killed(self, seconds: float) -> bool:
        return self.flag.wait(seconds)


def _listen(control: Connection, cancellation: _Cancellation) -> None:  # pragma: no cover
    """The child's cancellation listener: a sequence number per request, EOF when orphaned."""
    while True:
        try:
            message = control.recv_bytes()
        except (EOFError, OSError):
            cancellation.request(None)
            return
        cancellation.request(_SEQ.unpack(message)[0])


def _child_main(  # pragma: no cover - in the child
    conn: Connection, hooks: bytes, control: Connection | None
) -> None:
    """A worker's child: make the resource, serve calls, destroy it, exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the manager decides when children stop
    cancellation = _Cancellation()
    if control is not None:
        threading.Thread(
            target=_listen, args=(control, cancellation), name="tasker-cancel", daemon=True
        ).start()
    try:
        on_create, on_destroy = pickle.loads(hooks)
        resource = on_create()
    except BaseException as error:
        conn.send_bytes(encode_error(error))
        return
    conn.send_bytes(_OK_NONE)
    _serve(conn, RemoteTask(cancellation, resource), cancellation)
    if on_destroy is not None:
        try:
            on_destroy(resource)
        except BaseException as error:
            with contextlib.suppress(OSError):
                conn.send_bytes(encode_error(error))
            return
    with contextlib.suppress(OSError):
        conn.send_bytes(_OK_NONE)


def _serve(  # pragma: no cover - in the child
    conn: Connection, task: RemoteTask, cancellation: _Cancellation
) -> None:
    """Run the tasks the manager sends, one after the other, until it says stop or goes away."""
    resource = task.resource
    header_size = _HEADER.size
    recv, send = conn.recv_bytes, conn.send_bytes
    hold = False  # the last task failed: the next one waits for the manager's go
    held = b""
    while True:
        try:
            message = recv()
        except (EOFError, OSError):  # the manager went away
            message = b""
        if not message:
            return  # a task held is dropped: the manager queued it again
        if hold:
            if message != _GO:
                held = message
                continue
            hold, message, held = False, held, b""
        seq, task.task_id, task.attempt, worker_id, flags = _HEADER.unpack_from(message)
        task.worker_id = None if worker_id < 0 else worker_id
        task.priority, task.once = bool(flags & _PRIORITY), bool(flags & _ONCE)
        cancellation.begin(seq)
        try:
            task.fn, task.args = pickle.loads(memoryview(message)[header_size:])
            reply = encode_result(call_in_task(task, resource), task.fn)  # type: ignore[arg-type]
        except BaseException as error:
            reply = encode_error(error)
        task.fn, task.args = no_task, ()
        hold = failed(reply)
        try:
            send(reply)
        except OSError:  # the manager went away
            return


# ------------------------------------------------------------------------------ the place


class ProcessPlace:
    """One worker's child process, driven by the worker's thread in the manager."""

    resource = None  # the resource lives in the child

    def __init__(
        self,
        options: ProcessOptions,
        dumps: Callable[[Any], bytes],
        on_create: Callable[[], Any],
        on_destroy: Callable[[Any], object] | None,
    ) -> None:
        self._options = options
        self._dumps = dumps
        self.sends_ahead = options.send_ahead  # `call` takes a `claim` (see `call`)
        self._hooks = (on_create, on_destroy)
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._control: Connection | None = None  # cancellation requests, with a grace
        self._wake: tuple[Connection, Connection] | None = None  # interrupt -> the worker
        self._poll: Callable[[float | None], list[object]] = self._wait_any
        self._lock = threading.Lock()
        self._seq = 0
        self._running = 0  # the attempt under way (its seq), 0 between attempts
        self._kill_at: float | None = None
        # the task taken ahead (see `call`): its seq once sent, 0 while it waits in the manager
        self._ahead: TaskRecord[Any] | None = None
        self._ahead_seq = 0
        self._hold = False  # the last task failed: the child waits for `_GO` to run the next

    # -------------------------------------------------------------- lifecycle

    def create(self) -> None:
        """Start the child; it runs `on_create`."""
        options = self._options
        context: Any = multiprocessing.get_context(options.start_method)
        try:
            hooks = self._dumps(self._hooks)
        except Exception as error:
            raise TypeError(f"on_create/on_destroy cannot be sent to a process: {error}") from error
        parent, child = context.Pipe()
        control_in: Connection | None = None
        if options.cancel_grace > 0:
            control_in, self._control = context.Pipe(duplex=False)
            self._wake = context.Pipe(duplex=False)
        process = context.Process(target=_child_main, args=(child, hooks, control_in), daemon=True)
        process.start()
        child.close()
        if control_in is not None:
            control_in.close()
        self._process, self._conn = process, parent
        self._poll = self._poller(parent, process.sentinel)
        decode_outcome(self._receive())  # on_create's outcome: raises what it raised

    def _poller(self, conn: Connection, sentinel: int) -> Callable[[float | None], list[object]]:
        """A wait on the reply, the child's death and (with a grace) an interrupt."""
        watched: list[Any] = [conn, sentinel]
        if self._wake is not None:
            watched.append(self._wake[0])
        if not hasattr(select, "poll"):  # pragma: no cover - not on Linux
            return self._wait_any
        poller = select.poll()
        by_fd: dict[int, object] = {}
        for item in watched:
            fd = item if isinstance(item, int) else item.fileno()
            poller.register(fd, select.POLLIN)
            by_fd[fd] = item

        def poll(timeout: float | None) -> list[object]:
            ready = poller.poll(None if timeout is None else max(0.0, timeout) * 1000)
            return [by_fd[fd] for fd, _ in ready]

        return poll

    def _wait_any(self, timeout: float | None) -> list[object]:  # pragma: no cover - fallback
        assert self._conn is not None
        assert self._process is not None
        watched: list[Any] = [self._conn, self._process.sentinel]
        if self._wake is not None:
            watched.append(self._wake[0])
        return list(wait(watched, timeout))

    def destroy(self) -> None:
        """Ask the child to run `on_destroy` and exit; kill it if it does not in time."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if process is None or conn is None:
            return
        # a task sent ahead and never called (kill() ended it) runs unless the child holds it
        # (the one before failed): it is asked to stop, as a running task is at kill()
        dropped = 0 if self._hold else self._ahead_seq
        self._ahead, self._ahead_seq = None, 0
        try:
            if process.is_alive():
                if dropped and self._control is not None:
                    with contextlib.suppress(OSError):
                        self._control.send_bytes(_SEQ.pack(dropped))
                try:
                    conn.send_bytes(b"")
                except OSError:
                    pass
                else:
                    self._await_destroy(process, conn, dropped)
        finally:
            process.join(self._options.stop_grace)
            if process.is_alive():
                process.kill()
                process.join()
            conn.close()
            for end in (self._control, *(self._wake or ())):
                if end is not None:
                    end.close()
            process.close()

    def _await_destroy(self, process: BaseProcess, conn: Connection, dropped: int) -> None:
        """Wait for `on_destroy`'s outcome; first for the reply of a `dropped` task, if any.

        A dropped task has the cancel grace to return (it was asked to stop), else its child
        is killed.
        """
        options = self._options
        watched: list[Any] = [conn, process.sentinel]
        try:
            if dropped:
                if not wait(watched, options.cancel_grace or options.stop_grace):
                    process.kill()
                    return
                conn.recv_bytes()
            if not wait(watched, options.stop_grace):
                return
            payload = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the child died on the way out: nothing to report
        decode_outcome(payload)  # raises on_destroy's exception

    # ------------------------------------------------------------------ calls

    def call(
        self,
        task: TaskRecord[Any],
        claim: Callable[[], TaskRecord[Any] | None] | None = None,
    ) -> Any:
        """Send the task to the child and wait for its outcome, or for the child's death.

        With `claim`, once the task is on its way the place takes the worker's next task
        (`claim()`, `None` if there is none) and sends it ahead, so the child starts it as soon
        as this one returns. That task must be the task of the next `call`, unless the place is
        destroyed first: the child then drops it if it had not started it (it holds the task
        behind one that failed until the next `call`), else runs it before `on_destroy`. A
        child that dies before this task's outcome is back never started the next one.

        Plugins' attempt scopes (a tracing span) wrap the whole round trip, in the manager.
        """
        if task._core.observers.task_attempt_context:
            # the scope hands its second argument (a place's resource) on: here, `claim`
            return task.context.run(call_in_scope, task, claim, task.worker_id, self._remote)
        return self._remote(task, claim)

    def _remote(
        self, task: TaskRecord[Any], claim: Callable[[], TaskRecord[Any] | None] | None = None
    ) -> Any:
        conn = self._conn
        if conn is None:
            raise WorkerCrashedError("the worker's process is gone")
        try:
            if task is self._ahead and self._ahead_seq:  # on its way already
                seq, self._ahead, self._ahead_seq = self._ahead_seq, None, 0
            else:
                assert not self._ahead_seq, "the task sent ahead must be the next call's"
                self._ahead = None
                seq = self._send(conn, task, task.attempt, task.worker_id)
            with self._lock:
                self._running = seq
                self._kill_at = None
            if self._hold:
                self._hold = False
                conn.send_bytes(_GO)
            if claim is not None:
                self._take_ahead(conn, task, claim)
        except OSError as error:
            raise self._crashed() from error
        if task.cancel_requested:  # a timeout or kill() came before the attempt was under way
            self.interrupt()
        try:
            payload = self._receive()
        finally:
            with self._lock:
                self._running = 0
        if payload[0]:  # failed: the child holds the next task until told to go on
            self._hold = True
        return decode_outcome(payload)

    def _send(self, conn: Connection, task: TaskRecord[Any], attempt: int, worker: Any) -> int:
        """Send a task message; return its seq."""
        payload = task_payload(self._dumps, task.fn, task.args)
        self._seq = seq = self._seq + 1
        conn.send_bytes(
            _HEADER.pack(
                seq,
                task.task_id,
                attempt,
                -1 if worker is None else worker,
                (_PRIORITY if task.priority else 0) | (_ONCE if task.once else 0),
            )
            + payload
        )
        return seq

    def _take_ahead(
        self,
        conn: Connection,
        task: TaskRecord[Any],
        claim: Callable[[], TaskRecord[Any] | None],
    ) -> None:
        """Claim the worker's next task and send it behind `task`, if it is small enough."""
        ahead = claim()
        if ahead is None:
            return
        self._ahead = ahead
        args = ahead.args
        if len(args) == 1 and args[0].__class__ is EncodedTask and len(args[0].data) <= _AHEAD_MAX:
            # its attempt is the next one, on this worker (the engine counts it when it starts)
            self._ahead_seq = self._send(conn, ahead, ahead.attempt + 1, task.worker_id)

    def _receive(self) -> bytes:
        conn, process = self._conn, self._process
        assert conn is not None
        assert process is not None
        sentinel, poll = process.sentinel, self._poll
        wake = self._wake[0] if self._wake is not None else None
        timeout: float | None = None
        while True:
            ready = poll(timeout)
            if conn in ready:
                try:
                    return conn.recv_bytes()
                except (EOFError, OSError) as error:
                    raise self._crashed() from error
            if sentinel in ready:
                raise self._crashed()
            if wake is not None and wake in ready:
                wake.recv_bytes()
            kill_at = self._kill_at
            if kill_at is not None:
                timeout = kill_at - time.monotonic()
                if timeout <= 0:  # the grace is over: the child goes (its sentinel follows)
                    timeout = None
                    self._kill_at = None
                    process.kill()

    def _crashed(self) -> WorkerCrashedError:
        process = self._process
        if process is not None:
            process.join(1)
        return WorkerCrashedError(
            f"the worker's place died: {_describe_exit(process) if process else 'no process'}"
        )

    def interrupt(self) -> None:
        """Stop the running attempt: tell the task, then kill the child (after the grace).

        A fresh child replaces a killed one; a task that returns within the grace keeps its.
        """
        grace = self._options.cancel_grace
        with self._lock:
            process, seq = self._process, self._running
            if process is None or not seq:
                return
            if grace <= 0:
                with contextlib.suppress(ValueError):  # closed meanwhile
                    process.kill()
                return
            self._kill_at = time.monotonic() + grace
            with contextlib.suppress(OSError):
                assert self._control is not None
                self._control.send_bytes(_SEQ.pack(seq))
            with contextlib.suppress(OSError):
                assert self._wake is not None
                self._wake[1].send_bytes(b"")

    def __repr__(self) -> str:
        pid = self._process.pid if self._process is not None else None
        return f"ProcessPlace(pid={pid})"


class ProcessExecutor(ThreadExecutor):
    """Worker loops on threads of the manager; each worker's resource in a child process."""

    __slots__ = ("_dumps", "options")

    def __init__(self, options: ProcessOptions | None = None, **settings: Any) -> None:
        if options is not None and settings:
            raise TypeError("give either a ProcessOptions or its settings as keywords, not both")
        self.options = options if options is not None else ProcessOptions(**settings)
        self._dumps = dumps_for(self.options.serializer)

    @property
    def name(self) -> str:
        """`"process"`."""
        return "process"

    def prepare_task(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, ...]:
        """Serialize the task once, as it is submitted: a `TypeError` names what cannot cross."""
        return (EncodedTask(encode_task(self._dumps, fn, args)),)

    def place(  # type: ignore[override]
        self, on_create: Callable[[], Any], on_destroy: Callable[[Any], object] | None
    ) -> ProcessPlace:
        """A child process for one worker."""
        return ProcessPlace(self.options, self._dumps, on_create, on_destroy)

    def __repr__(self) -> str:
        return f"ProcessExecutor({self.options!r})"
