"""Crossing a process boundary: what is serialized, how, and what comes back.

Every executor whose workers' resources live in another process (the process executor, a
cluster executor such as Ray's) follows the same rules, written here once:

- **The serializer**: `"auto"` picks cloudpickle when it is installed (the `tasker-core[process]`
  extra), so lambdas, closures and functions of `__main__` cross by value; otherwise the
  standard `pickle` (module-level functions, by reference). `dumps_for` returns the function.
- **A task is serialized once, when it is submitted** (`encode_task`): what cannot cross is a
  `TypeError` in the submitter, naming the function or the argument at fault, before the task
  is queued, never a hang or a dead worker.
- **Outcomes**: a result that cannot be sent back fails its task with a `TypeError` naming it;
  an exception that cannot be sent back as itself (`portable_error`) arrives as
  [`RemoteTaskError`][tasker.errors.RemoteTaskError], with its type name, message and the
  remote traceback text.
- **The running task**: in the other process, `current_task()` sees a `RemoteTask` carrying
  what the manager sent along (id, attempt, worker, priority, once) and the resource.
- **The crash model**: a place whose process died under a task raises
  [`WorkerCrashedError`][tasker.errors.WorkerCrashedError]; the engine replaces the worker and
  retries the task unless it is a once-task.
"""

from __future__ import annotations

import pickle
import traceback
from collections.abc import Callable
from typing import Any, Literal, Protocol

from tasker.errors import RemoteTaskError

__all__ = [
    "SERIALIZERS",
    "EncodedTask",
    "RemoteTask",
    "RemoteTaskError",
    "Serializer",
    "decode_outcome",
    "dumps_for",
    "encode_error",
    "encode_result",
    "encode_task",
    "failed",
    "no_task",
    "portable_error",
    "task_payload",
]

Serializer = Literal["auto", "cloudpickle", "pickle"]
"""How tasks cross: `"auto"` (cloudpickle when installed, else pickle), or either one."""

SERIALIZERS: tuple[Serializer, ...] = ("auto", "cloudpickle", "pickle")

_PROTOCOL = pickle.HIGHEST_PROTOCOL


def dumps_for(serializer: Serializer) -> Callable[[Any], bytes]:
    """The `dumps` function of `serializer`; `ValueError` if it names an unknown or absent one."""
    if serializer not in SERIALIZERS:
        choices = ", ".join(map(repr, SERIALIZERS))
        raise ValueError(f"serializer must be one of {choices}, got {serializer!r}")
    if serializer == "pickle":
        return _pickle_dumps
    try:
        import cloudpickle  # type: ignore[import-untyped, import-not-found, unused-ignore]  # noqa: PLC0415
    except ImportError:
        if serializer == "cloudpickle":
            raise ValueError(
                'serializer "cloudpickle" needs the cloudpickle package: '
                'pip install "tasker-core[process]"'
            ) from None
        return _pickle_dumps
    dumps: Callable[[Any], bytes] = cloudpickle.dumps
    return dumps


def _pickle_dumps(value: Any) -> bytes:
    return pickle.dumps(value, _PROTOCOL)


def _name(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def encode_task(
    dumps: Callable[[Any], bytes],
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    where: str = "a worker process",
) -> bytes:
    """`(fn, args)` serialized; a `TypeError` naming the part that cannot cross to `where`."""
    try:
        return dumps((fn, args))
    except Exception as error:  # whatever the serializer raises: PicklingError, TypeError...
        raise TypeError(f"{_culprit(dumps, fn, args)} cannot be sent to {where}: {error}") from (
            error
        )


class EncodedTask:
    """A task serialized once, at `submit` (an executor's `prepare_task`).

    The task's record carries it as its only argument; the executor's places send its `data`.
    """

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def task_payload(
    dumps: Callable[[Any], bytes],
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    where: str = "a worker process",
) -> bytes:
    """The task serialized: as `prepare_task` made it at `submit`, else now."""
    if len(args) == 1 and args[0].__class__ is EncodedTask:
        data: bytes = args[0].data
        return data
    return encode_task(dumps, fn, args, where)


def _culprit(dumps: Callable[[Any], bytes], fn: Callable[..., Any], args: tuple[Any, ...]) -> str:
    """Which part of a task does not serialize: its function, or one of its arguments."""
    for position, arg in enumerate(args, start=1):
        try:
            dumps(arg)
        except Exception:
            return f"argument {position} of task {_name(fn)!r}, a {type(arg).__name__},"
    return f"the task function {_name(fn)!r}"


# an outcome on its way back: one status byte, then the pickled result or exception
_OK, _ERROR = b"\x00", b"\x01"


def failed(outcome: bytes) -> bool:
    """Whether an encoded outcome carries an exception (read without unpickling it)."""
    return outcome[0] == 1


def encode_result(value: Any, fn: object = None) -> bytes:
    """The result of task `fn` on its way back; a `TypeError` naming it if it cannot go."""
    try:
        return _OK + pickle.dumps(value, _PROTOCOL)
    except Exception as error:
        of = "" if fn is None else f" of {_name(fn)!r}"
        return encode_error(
            TypeError(
                f"the result{of}, a {type(value).__name__}, cannot be sent back from its "
                f"process: {error}"
            )
        )


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
        return RemoteTaskError(
            f"{kind.__module__}.{kind.__qualname__}",
            str(error),
            "".join(traceback.format_exception(error)),
        )
    return error


def encode_error(error: BaseException) -> bytes:
    """An exception on its way back, as itself or as a `RemoteTaskError`.

    The remote traceback text travels with it as a note, which pickles with the exception.
    """
    portable = portable_error(error)
    if portable is error:
        text = "".join(traceback.format_exception(error))
        error.add_note(f"in the worker process:\n{text.rstrip()}")
        try:
            return _ERROR + pickle.dumps(error, _PROTOCOL)
        except BaseException:
            error.__notes__.pop()
    return _ERROR + pickle.dumps(portable, _PROTOCOL)


def decode_outcome(payload: bytes) -> Any:
    """The result `encode_result` sent, or raise the exception `encode_error` sent."""
    value = pickle.loads(memoryview(payload)[1:])
    if payload[0] == 0:
        return value
    raise value


# ------------------------------------------------------------------ the task, over there


class Cancellation(Protocol):
    """What `current_task()` reads, in the other process, to learn the task should stop.

    (`RunningTask` reads `killed` and `runtime.wait_killed` on the task's `_core`.)
    """

    @property
    def killed(self) -> bool:
        """Whether the running attempt was asked to stop."""

    @property
    def runtime(self) -> Cancellation:
        """Itself: `RunningTask.sleep` waits on it."""

    def wait_killed(self, seconds: float) -> bool:
        """Wait up to `seconds` for a stop request; `True` if one came."""


def no_task(resource: object) -> None:  # pragma: no cover - never called
    """The function of a `RemoteTask` between two tasks."""
    raise RuntimeError("no task")


class RemoteTask:
    """The running task as `current_task()` sees it in the process that runs it.

    One per worker's process, filled in for each task from what the manager sends along.
    """

    __slots__ = (
        "_core",
        "args",
        "attempt",
        "cancel_requested",
        "fn",
        "once",
        "priority",
        "resource",
        "task_id",
        "worker_id",
    )

    def __init__(self, cancellation: Cancellation, resource: Any) -> None:
        self._core = cancellation
        self.resource = resource
        self.cancel_requested = False
        self.fn: Callable[..., Any] = no_task
        self.args: tuple[Any, ...] = ()
        self.task_id = 0
        self.attempt = 0
        self.worker_id: int | None = None
        self.priority = False
        self.once = False
