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
- **Timeouts that really stop**: an attempt past its timeout has its child terminated; the
  caller gets `TimeoutError` and the worker starts a fresh child.

What crosses the boundary is serialized: the hooks once per child, each task's function and
arguments on the way in, its result or exception on the way out. With `cloudpickle` installed
(the `tasker-core[process]` extra) lambdas and closures cross too; otherwise the standard
`pickle` applies (module-level functions only). A task whose function, arguments or result
cannot cross fails with `TypeError` naming what could not; an exception that cannot be pickled
back arrives as [`RemoteTaskError`][tasker.process.RemoteTaskError], carrying its type name,
message and the child's traceback text. A task runs in the child without the submitter's
`contextvars` and without `current_task()`.

The default start method is `"spawn"`: a fresh interpreter per child, safe whatever threads the
manager's process runs (forking a process that has threads may copy a lock held by another
thread, and deadlock the child). `"forkserver"` starts children faster on Linux with the same
safety; `"fork"` is fastest and unsafe with threads, which every manager has.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any, Literal

from tasker import _validate as validate
from tasker.errors import TaskerError, WorkerCrashedError
from tasker.executors import ThreadExecutor

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


class RemoteTaskError(TaskerError):
    """A task raised in its child process an exception that could not be sent back as itself.

    Attributes:
        type_name: the qualified name of the exception's type.
        remote_traceback: the traceback text, as the child printed it.
    """

    def __init__(self, type_name: str, message: str, remote_traceback: str) -> None:
        super().__init__(f"{type_name}: {message}\n\nin the worker process:\n{remote_traceback}")
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback

    def __reduce__(self) -> tuple[Any, tuple[str, str, str]]:
        return (type(self), (self.type_name, self.message, self.remote_traceback))


@dataclass(frozen=True, slots=True)
class ProcessOptions:
    """Settings of the process executor.

    Attributes:
        start_method: how children start: `"spawn"` (the default: safe with threads),
            `"forkserver"` or `"fork"` (fast, unsafe once the parent has threads).
        serializer: `"auto"` (cloudpickle when installed, else pickle), `"cloudpickle"` or
            `"pickle"`.
        stop_grace: seconds a child is given to run `on_destroy` and exit before it is killed.
    """

    start_method: Literal["spawn", "forkserver", "fork"] = "spawn"
    serializer: Literal["auto", "cloudpickle", "pickle"] = "auto"
    stop_grace: float = 10.0

    def __post_init__(self) -> None:
        if self.start_method not in _START_METHODS:
            raise ValueError(
                f"start_method must be one of {', '.join(map(repr, _START_METHODS))}, "
                f"got {self.start_method!r}"
            )
        if self.serializer not in ("auto", "cloudpickle", "pickle"):
            raise ValueError(
                f"serializer must be 'auto', 'cloudpickle' or 'pickle', got {self.serializer!r}"
            )
        validate.seconds("stop_grace", self.stop_grace)


def _dumps_for(serializer: str) -> Callable[[Any], bytes]:
    if serializer == "pickle":
        return pickle.dumps
    try:
        import cloudpickle  # type: ignore[import-untyped, import-not-found, unused-ignore]  # noqa: PLC0415
    except ImportError:
        if serializer == "cloudpickle":
            raise ValueError(
                'serializer "cloudpickle" needs the cloudpickle package: '
                'pip install "tasker-core[process]"'
            ) from None
        return pickle.dumps
    dumps: Callable[[Any], bytes] = cloudpickle.dumps
    return dumps


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


def _child_main(conn: Connection, hooks: bytes) -> None:  # pragma: no cover - in the child
    """A worker's child: make the resource, serve calls, destroy it, exit."""
    try:
        on_create, on_destroy = pickle.loads(hooks)
        resource = on_create()
    except BaseException as error:
        conn.send_bytes(_failure(error))
        return
    conn.send_bytes(pickle.dumps(("ok", None)))
    while True:
        try:
            message = conn.recv_bytes()
        except EOFError:  # the manager went away
            message = b""
        if not message:
            break
        try:
            fn, args = pickle.loads(message)
            result = fn(resource, *args)
        except BaseException as error:
            conn.send_bytes(_failure(error))
            continue
        try:
            reply = pickle.dumps(("ok", result))
        except Exception as error:
            reply = _failure(
                TypeError(
                    f"the result of {getattr(fn, '__qualname__', fn)!r}, a "
                    f"{type(result).__name__}, cannot be sent back from its process: {error}"
                )
            )
        conn.send_bytes(reply)
    if on_destroy is not None:
        try:
            on_destroy(resource)
        except BaseException as error:
            conn.send_bytes(_failure(error))
            return
    conn.send_bytes(pickle.dumps(("ok", None)))


def _failure(error: BaseException) -> bytes:  # pragma: no cover - in the child
    """The error as itself if it pickles (and unpickles), else as a `RemoteTaskError`."""
    return pickle.dumps(("error", portable_error(error)))


def portable_error(
    error: BaseException, dumps: Callable[[Any], bytes] = pickle.dumps
) -> BaseException:
    """`error` if it survives `dumps` then `pickle.loads`, else a `RemoteTaskError` describing it.

    What a place that runs tasks in another process sends back for a task's exception, so the
    caller gets the exception itself whenever it can cross, and its type name, message and
    traceback text when it cannot. Give `dumps` the serializer the transport uses.
    """
    try:
        pickle.loads(dumps(error))
    except BaseException:
        kind = type(error)
        text = "".join(traceback.format_exception(error))
        return RemoteTaskError(f"{kind.__module__}.{kind.__qualname__}", str(error), text)
    return error


# ------------------------------------------------------------------------------ the place


class ProcessPlace:
    """One worker's child process, driven by the worker's thread in the manager."""

    resource = None  # the resource lives in the child

    def __init__(
        self,
        options: ProcessOptions,
        on_create: Callable[[], Any],
        on_destroy: Callable[[Any], object] | None,
    ) -> None:
        self._options = options
        self._dumps = _dumps_for(options.serializer)
        self._hooks = (on_create, on_destroy)
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None

    def create(self) -> None:
        """Start the child; it runs `on_create`."""
        context: Any = multiprocessing.get_context(self._options.start_method)
        try:
            hooks = self._dumps(self._hooks)
        except Exception as error:
            raise TypeError(f"on_create/on_destroy cannot be sent to a process: {error}") from error
        parent, child = context.Pipe()
        process = context.Process(target=_child_main, args=(child, hooks), daemon=True)
        process.start()
        child.close()
        self._process, self._conn = process, parent
        self._receive()  # on_create's outcome: raises what it raised

    def call(self, task: TaskRecord[Any]) -> Any:
        """Send the task to the child and wait for its outcome, or for the child's death."""
        try:
            message = self._dumps((task.fn, task.args))
        except Exception as error:
            raise TypeError(
                f"task {getattr(task.fn, '__qualname__', task.fn)!r} or its arguments cannot be "
                f"sent to a worker process: {error}"
            ) from error
        conn = self._conn
        if conn is None:
            raise WorkerCrashedError("the worker's process is gone")
        try:
            conn.send_bytes(message)
        except OSError as error:
            raise self._crashed() from error
        return self._receive()

    def _receive(self) -> Any:
        conn, process = self._conn, self._process
        assert conn is not None
        assert process is not None
        while True:
            ready = wait([conn, process.sentinel])
            if conn in ready:
                try:
                    payload = conn.recv_bytes()
                except (EOFError, OSError) as error:
                    raise self._crashed() from error
                break
            if process.sentinel in ready:
                raise self._crashed()
        try:
            status, value = pickle.loads(payload)
        except Exception as error:
            raise TypeError(
                f"a task's result cannot be received from its process: {error}"
            ) from error
        if status == "error":
            raise value
        return value

    def _crashed(self) -> WorkerCrashedError:
        process = self._process
        if process is not None:
            process.join(1)
        return WorkerCrashedError(
            f"the worker's place died: {_describe_exit(process) if process else 'no process'}"
        )

    def interrupt(self) -> None:
        """Terminate the child: the attempt stops now, and the worker starts a fresh child."""
        process = self._process
        if process is not None and process.is_alive():
            process.kill()

    def destroy(self) -> None:
        """Ask the child to run `on_destroy` and exit; kill it if it does not in time."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if process is None or conn is None:
            return
        try:
            if process.is_alive():
                try:
                    conn.send_bytes(b"")
                except OSError:
                    pass
                else:
                    self._await_destroy(process, conn)
        finally:
            process.join(self._options.stop_grace)
            if process.is_alive():
                process.kill()
                process.join()
            conn.close()
            process.close()

    def _await_destroy(self, process: BaseProcess, conn: Connection) -> None:
        if not wait([conn, process.sentinel], self._options.stop_grace):
            return
        try:
            status, value = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return  # the child died on the way out: nothing to report
        if status == "error":
            raise value

    def __repr__(self) -> str:
        pid = self._process.pid if self._process is not None else None
        return f"ProcessPlace(pid={pid})"


class ProcessExecutor(ThreadExecutor):
    """Worker loops on threads of the manager; each worker's resource in a child process."""

    __slots__ = ("options",)

    def __init__(self, options: ProcessOptions | None = None, **settings: Any) -> None:
        if options is not None and settings:
            raise TypeError("give either a ProcessOptions or its settings as keywords, not both")
        self.options = options if options is not None else ProcessOptions(**settings)

    @property
    def name(self) -> str:
        """`"process"`."""
        return "process"

    def place(  # type: ignore[override]
        self, on_create: Callable[[], Any], on_destroy: Callable[[Any], object] | None
    ) -> ProcessPlace:
        """A child process for one worker."""
        return ProcessPlace(self.options, on_create, on_destroy)

    def __repr__(self) -> str:
        return f"ProcessExecutor({self.options!r})"
