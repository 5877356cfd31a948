"""Test helpers: a resource factory that counts what it creates and destroys, an event log,
the manager most tests start from, small tasks and policies the suites share, and waits for
states the code under test offers no event for."""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing import managers
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from tasker import TaskManager, TaskManagerBuilder, UnhealthyOn
from tasker.scaling import ScalingSnapshot

if TYPE_CHECKING:
    import pytest


class EventLog:
    """A `Logger` keeping every event, for assertions."""

    def __init__(self) -> None:
        self.events: list[tuple[int, str, dict[str, object]]] = []
        self._lock = threading.Lock()

    def log(self, level: int, event: str, /, **fields: object) -> None:
        with self._lock:
            self.events.append((level, event, fields))

    def named(self, event: str) -> list[dict[str, object]]:
        with self._lock:
            return [fields for _, name, fields in self.events if name == event]


def missing_key(*_: object) -> None:
    """A task (or a task's body) failing with an error no health check counts as unhealthy."""
    raise KeyError("missing")


class SwitchPolicy:
    """A policy the test steers by hand: `target` is the number of workers it asks for."""

    interval = 0.01

    def __init__(self, target: int) -> None:
        self.target = target

    def target_workers(self, snapshot: ScalingSnapshot) -> int:
        return self.target


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


def builder(
    resources: Resources | SharedResources | None = None,
    workers: int = 1,
    *,
    max_workers: int | None = None,
    pool: int = 0,
    policy: str = "fixed",
    max_retries: int = 3,
    backoff_max: float = 0.01,
    broken_after: float = 5,
    log: EventLog | None = None,
) -> TaskManagerBuilder[Any]:
    """The manager most tests start from: `workers` fixed workers (none above them unless
    `max_workers`), each on a resource of `resources` (tasks get `None` without), no pool, a
    `ConnectionError` unhealthy, a quick backoff. Chain `.with_...` for the rest."""
    made: TaskManagerBuilder[Any] = TaskManager.builder()
    if resources is not None:
        made = made.with_resource(resources.create, resources.destroy)
    made = (
        made.with_workers(workers, max_workers=max_workers or workers)
        .with_resource_pool(pool)
        .with_policy(policy)
        .with_health_check(UnhealthyOn(ConnectionError))
        .with_max_retries(max_retries)
        .with_backoff(initial=0.001, maximum=backoff_max, broken_after=broken_after)
    )
    return made.with_logger(log) if log is not None else made


def build(
    resources: Resources | SharedResources | None = None, workers: int = 1, **options: Any
) -> TaskManager[Any]:
    """`builder(resources, workers, **options)`, built: a running thread manager."""
    return builder(resources, workers, **options).build()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.005) -> bool:
    """Poll a condition the code under test offers no event for (stats, metrics)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait, without blocking the loop, for a condition the code under test offers no event for."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the condition never became true"
        await asyncio.sleep(0.002)


def settle(*futures: Future[Any], timeout: float = 10.0) -> None:
    """Wait for every future's result (raising the first exception met)."""
    for future in futures:
        future.result(timeout=timeout)


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
"""The repository's examples/ folder."""


def load_example(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import `examples/<name>.py` by path, under a private module name."""
    path = EXAMPLES / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"tasker_example_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the module is being executed
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


class _Portable:
    """A proxy that reaches its manager from any process of this machine.

    A proxy unpickled in a process `multiprocessing` did not start (a Ray worker) would present
    that process's own random key and be refused; this one carries the manager's key along.
    """

    _authkey: Any

    def __reduce__(self) -> tuple[Any, ...]:
        reduced: Any = super().__reduce__()
        rebuild, (proxy_type, token, serializer, options) = reduced
        return rebuild, (
            proxy_type,
            token,
            serializer,
            {**options, "authkey": bytes(self._authkey)},
        )


_proxies: Any = managers  # the type stubs leave some proxies out


def _portable(name: str, proxy: Any) -> Any:
    """A portable subclass of `proxy`, found by its module and name when unpickled."""
    return type(name, (_Portable, proxy), {"__module__": __name__})


_PortableList = _portable("_PortableList", _proxies.ListProxy)
_PortableDict = _portable("_PortableDict", _proxies.DictProxy)
_PortableLock = _portable("_PortableLock", _proxies.AcquirerProxy)
_PortableEvent = _portable("_PortableEvent", _proxies.EventProxy)
_PortableValue = _portable("_PortableValue", _proxies.ValueProxy)


class _SharedManager(managers.SyncManager):
    """A `SyncManager` whose proxies work in any local process (see `_Portable`)."""


_SharedManager.register("list", list, _PortableList)
_SharedManager.register("dict", dict, _PortableDict)
_SharedManager.register("Lock", threading.Lock, _PortableLock)
_SharedManager.register("Event", threading.Event, _PortableEvent)
_SharedManager.register("Value", _proxies.Value, _PortableValue)

_SHARED: Any = None


def shared() -> Any:
    """A manager process holding state that worker processes and the test both see.

    Started once, on first use; `multiprocessing` shuts it down when the test run ends. Its
    proxies work in child processes and in Ray's workers alike.
    """
    global _SHARED  # noqa: PLW0603 - one per test run
    if _SHARED is None:
        import multiprocessing

        _SHARED = _SharedManager(ctx=multiprocessing.get_context("spawn"))
        _SHARED.start()
    return _SHARED


class SharedResources:
    """`Resources` whose records live in the `shared()` manager: on_create may run in a child.

    Offers what the shared behaviour tests read: `created`, `destroyed`, `create_calls`,
    `assert_all_destroyed_once()`.
    """

    def __init__(
        self, fail_create: Callable[[int], bool] = lambda n: False, fail_destroy: bool = False
    ) -> None:
        manager = shared()
        self.fail_create = fail_create
        self.fail_destroy = fail_destroy
        self._lock = manager.Lock()
        self._created = manager.list()
        self._destroyed = manager.dict()
        self._calls = manager.Value("i", 0)

    def create(self) -> Resource:
        with self._lock:
            self._calls.value += 1
            n = self._calls.value
        if self.fail_create(n):
            raise ConnectionError(f"cannot connect (attempt {n})")
        with self._lock:
            resource = Resource(len(self._created) + 1, threading.current_thread().name)
            self._created.append(resource)
        return resource

    def destroy(self, resource: Resource) -> None:
        with self._lock:
            self._destroyed[resource.rid] = self._destroyed.get(resource.rid, 0) + 1
        if self.fail_destroy:
            raise OSError(f"cannot close {resource.rid}")

    @property
    def create_calls(self) -> int:
        return int(self._calls.value)

    @create_calls.setter
    def create_calls(self, value: int) -> None:
        self._calls.value = value

    @property
    def created(self) -> list[Resource]:
        return list(self._created)

    @property
    def destroyed(self) -> Counter[int]:
        return Counter(dict(self._destroyed))

    @property
    def live(self) -> int:
        destroyed = self.destroyed
        return sum(1 for r in self.created if not destroyed[r.rid])

    def assert_all_destroyed_once(self) -> None:
        ids = [r.rid for r in self.created]
        destroyed = self.destroyed
        assert sorted(destroyed) == sorted(ids), "some resource never destroyed"
        assert all(n == 1 for n in destroyed.values()), dict(destroyed)

    def assert_destroyed_once_but(self, lost: int) -> None:
        """Each resource destroyed once, but for at most `lost` gone with a killed process."""
        ids = [r.rid for r in self.created]
        destroyed = self.destroyed
        assert all(n == 1 for n in destroyed.values()), dict(destroyed)
        assert set(destroyed) <= set(ids), "a resource destroyed that was never created"
        assert len(ids) - len(destroyed) <= lost, f"{len(ids) - len(destroyed)} never destroyed"
