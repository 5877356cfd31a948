"""Test helpers: a resource factory that counts what it creates and destroys."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Resource:
    """A fake connection: `broken` marks it as unhealthy."""

    rid: int
    created_in: str
    broken: bool = False


@dataclass
class Resources:
    """Creates `Resource`s and records every create and destroy, thread-safely."""

    fail_create: Callable[[int], bool] = lambda n: False
    fail_destroy: bool = False
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    created: list[Resource] = field(default_factory=list)
    destroyed: Counter[int] = field(default_factory=Counter)
    create_calls: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)

    def create(self) -> Resource:
        try:
            with self._lock:
                self.create_calls += 1
                n = self.create_calls
            if self.fail_create(n):
                raise ConnectionError(f"cannot connect (attempt {n})")
            resource = Resource(next(self._ids), threading.current_thread().name)
            with self._lock:
                self.created.append(resource)
            return resource
        finally:
            with self.changed:
                self.changed.notify_all()

    def destroy(self, resource: Resource) -> None:
        with self._lock:
            self.destroyed[resource.rid] += 1
        with self.changed:
            self.changed.notify_all()
        if self.fail_destroy:
            raise OSError(f"cannot close {resource.rid}")

    @property
    def live(self) -> int:
        with self._lock:
            return len(self.created) - sum(1 for r in self.created if self.destroyed[r.rid])

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    def assert_all_destroyed_once(self) -> None:
        with self._lock:
            ids = [r.rid for r in self.created]
            assert sorted(self.destroyed) == sorted(ids), "some resource never destroyed"
            assert all(n == 1 for n in self.destroyed.values()), dict(self.destroyed)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.005) -> bool:
    """Poll a condition the code under test offers no event for (stats, metrics)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def settle(*futures: Future[Any], timeout: float = 10.0) -> None:
    """Wait for every future's result (raising the first exception met)."""
    for future in futures:
        future.result(timeout=timeout)
