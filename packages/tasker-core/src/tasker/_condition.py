"""A lean condition variable for task futures.

`threading.Condition` allocates a reentrant lock, a deque and five bound methods per instance;
with one condition per task that dominated both the per-task cost and the garbage collector's
work. This one holds a C reentrant lock and, only while someone waits, a list of waiter locks.
It offers exactly what `concurrent.futures` uses: the context manager, `acquire`/`release`,
`wait`, `notify` and `notify_all`; `lock`, the C lock itself, is entered with no Python call
by the hot paths of `TaskFuture`. It is reentrant because `concurrent.futures.wait()` calls
`Future` methods while holding every future's condition.
"""

from __future__ import annotations

from _thread import RLock, allocate_lock
from contextlib import suppress
from types import TracebackType
from typing import Any

__all__ = ["FutureCondition"]


class FutureCondition:
    """A reentrant condition variable with lazily allocated waiter bookkeeping."""

    __slots__ = ("_waiters", "lock")

    def __init__(self) -> None:
        self.lock = RLock()
        self._waiters: list[Any] | None = None

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the underlying lock."""
        return self.lock.acquire(blocking, timeout)

    def release(self) -> None:
        """Release the underlying lock."""
        self.lock.release()

    def __enter__(self) -> bool:
        return self.lock.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait for a notification or `timeout`, re-acquire; `True` if woken."""
        waiter = allocate_lock()
        waiter.acquire()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        saved = self.lock._release_save()  # type: ignore[attr-defined]  # fully, if nested
        woken = False
        try:
            if timeout is None:
                woken = waiter.acquire()
            elif timeout > 0:
                woken = waiter.acquire(True, timeout)
            else:
                woken = waiter.acquire(False)
            return woken
        finally:
            self.lock._acquire_restore(saved)  # type: ignore[attr-defined]
            if not woken and self._waiters is not None:
                # ValueError: notified between the timeout and re-acquiring the lock
                with suppress(ValueError):
                    self._waiters.remove(waiter)

    def notify(self, n: int = 1) -> None:
        """Wake up to `n` waiters (the caller holds the lock)."""
        waiters = self._waiters
        if waiters:
            for waiter in waiters[:n]:
                waiter.release()
            del waiters[:n]

    def notify_all(self) -> None:
        """Wake every waiter (the caller holds the lock)."""
        waiters = self._waiters
        if waiters:
            self._waiters = None
            for waiter in waiters:
                waiter.release()
