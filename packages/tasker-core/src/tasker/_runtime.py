"""What the core needs from a runtime (`_threads`, `_asyncio`), as protocols.

The lifecycles (`_lifecycle`) need more: the actions they list, which each runtime performs.

Each runtime owns its primitives, typed as its own kind (a `threading.Event`, an
`asyncio.Event`); the core sees them only as `Signal`s and a `Channel`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tasker._admission import Waiter
    from tasker._queue import Channel
    from tasker._task import TaskRecord

__all__ = ["Runtime", "Signal"]


class Signal(Protocol):
    """A flag that can be set from the engine (`threading.Event` or `asyncio.Event`)."""

    def set(self) -> None:
        """Raise the flag and wake whoever waits on it."""

    def is_set(self) -> bool:
        """Whether the flag is raised."""
        ...

    def clear(self) -> None:
        """Lower the flag."""


class Runtime(Protocol):
    """What the core needs from an executor's runtime."""

    @property
    def channel(self) -> Channel:
        """The token channel of the task queues."""
        ...

    @property
    def shutdown(self) -> Signal:
        """Set when workers must leave: drained, killed, or a failed build."""
        ...

    @property
    def killed_signal(self) -> Signal:
        """Set by `kill()`."""
        ...

    @property
    def terminated(self) -> Signal:
        """Set once every worker has exited and every resource is destroyed."""
        ...

    @property
    def wake(self) -> Signal:
        """Set when the supervisor has something to look at."""
        ...

    @property
    def calls_done(self) -> Signal:
        """Set while no `run_task` call holds a resource."""
        ...

    @property
    def new_record(self) -> Callable[..., TaskRecord[Any]]:
        """Make a task record (a future) of the runtime's kind.

        Called as `(core, fn, args, task_id, priority, once, timeout)`.
        """
        ...

    def new_waiter(self) -> Waiter:
        """Make what a submission waiting for room in a full queue blocks or awaits on."""
        ...

    def interrupt(self, task: TaskRecord[Any]) -> None:
        """Stop a running task now if the runtime can (asyncio: cancel its attempt)."""

    def wait_killed(self, seconds: float) -> bool:
        """Sleep up to `seconds` in a thread task; `True` as soon as the manager is killed."""
        ...
