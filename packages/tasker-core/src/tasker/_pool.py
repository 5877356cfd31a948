"""The bookkeeping of the resource pool `run_task` borrows from.

The pool only decides; the runtime that owns it creates and destroys the resources (in a thread
or on an event loop), so the same rules serve both executors.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

__all__ = ["PoolSlots"]

R = TypeVar("R")


class PoolSlots(Generic[R]):
    """Up to `capacity` pooled resources, created up front and refilled on demand.

    `reserve()` hands out a pooled resource, or asks the caller to create one that will be
    pooled (a slot freed by an unhealthy resource) or temporary (every pooled resource is busy).
    `give_back()` says whether the caller must destroy what it returns: temporary, unhealthy and
    late (after `close()`) resources are destroyed, so every resource dies exactly once.
    """

    __slots__ = ("_available", "_capacity", "_closed", "_lock", "_owned")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._available: deque[R] = deque()
        self._owned = 0
        self._closed = False

    @property
    def capacity(self) -> int:
        """How many resources the pool keeps."""
        return self._capacity

    def reserve(self) -> tuple[R | None, bool]:
        """Return `(resource, pooled)`; `resource` is `None` when the caller must create one."""
        with self._lock:
            if self._available:
                return self._available.popleft(), True
            pooled = self._owned < self._capacity and not self._closed
            if pooled:
                self._owned += 1
            return None, pooled

    def creation_failed(self, pooled: bool) -> None:
        """The resource the caller was to create for a reserved slot could not be made."""
        if pooled:
            with self._lock:
                self._owned -= 1

    def give_back(self, resource: R, pooled: bool, *, healthy: bool) -> bool:
        """Return a resource; `True` if the caller must destroy it."""
        with self._lock:
            if pooled and healthy and not self._closed:
                self._available.append(resource)
                return False
            if pooled:
                self._owned -= 1
            return True

    def close(self) -> list[R]:
        """Stop pooling; return the available resources, which the caller must destroy."""
        with self._lock:
            self._closed = True
            doomed = list(self._available)
            self._available.clear()
            self._owned -= len(doomed)
        return doomed

    @property
    def available(self) -> int:
        """Pooled resources ready to borrow."""
        return len(self._available)
