"""The resource pool `run_task` borrows from."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from tasker.errors import ResourceCreationError

__all__ = ["ResourcePool"]

R = TypeVar("R")


class ResourcePool(Generic[R]):
    """Up to `capacity` pooled resources, created up front and refilled on demand.

    `borrow()` hands out a pooled resource, re-creates a pooled one that was lost to an unhealthy
    task, or, when every pooled resource is in use, creates a temporary one. `give_back()`
    returns pooled resources and destroys temporary, unhealthy or late (after `close()`) ones, so
    every resource is destroyed exactly once.
    """

    __slots__ = ("_available", "_capacity", "_closed", "_create", "_destroy", "_lock", "_owned")

    def __init__(
        self, capacity: int, create: Callable[[], R], destroy: Callable[[R], None]
    ) -> None:
        self._capacity = capacity
        self._create = create
        self._destroy = destroy
        self._lock = threading.Lock()
        self._available: deque[R] = deque()
        self._owned = 0
        self._closed = False

    def fill(self) -> None:
        """Create every pooled resource now, in the calling thread (raises on failure)."""
        while True:
            with self._lock:
                if self._owned >= self._capacity:
                    return
                self._owned += 1
            try:
                resource = self._create()
            except Exception as error:
                with self._lock:
                    self._owned -= 1
                raise ResourceCreationError(
                    f"on_create failed while filling the resource pool: {error!r}"
                ) from error
            self._put_back(resource)

    def borrow(self) -> tuple[R, bool]:
        """Return `(resource, pooled)`; a temporary resource has `pooled=False`."""
        with self._lock:
            if self._available:
                return self._available.popleft(), True
            pooled = self._owned < self._capacity and not self._closed
            if pooled:
                self._owned += 1
        try:
            return self._create(), pooled
        except Exception as error:
            if pooled:
                with self._lock:
                    self._owned -= 1
            raise ResourceCreationError(
                f"on_create failed for a run_task resource: {error!r}"
            ) from error

    def give_back(self, resource: R, pooled: bool, *, healthy: bool) -> None:
        """Return a borrowed resource: kept if pooled and healthy, destroyed otherwise."""
        if pooled and healthy:
            self._put_back(resource)
            return
        if pooled:
            with self._lock:
                self._owned -= 1
        self._destroy(resource)

    def _put_back(self, resource: R) -> None:
        with self._lock:
            if not self._closed:
                self._available.append(resource)
                return
            self._owned -= 1
        self._destroy(resource)

    def close(self) -> None:
        """Destroy every available resource; resources still borrowed die when given back."""
        with self._lock:
            self._closed = True
            doomed = list(self._available)
            self._available.clear()
            self._owned -= len(doomed)
        for resource in doomed:
            self._destroy(resource)

    @property
    def available(self) -> int:
        """Pooled resources ready to borrow."""
        return len(self._available)
