"""`TaskManagerBuilder`: configure and validate a manager, then `build()` it.

Every option is checked when it is given, so a mistake raises at the line that made it, with the
parameter's name and what it accepts.
"""

from __future__ import annotations

import itertools
import logging
import numbers
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from tasker._backoff import Backoff
from tasker._config import Config
from tasker._core import Core
from tasker._threads import ThreadRuntime
from tasker.executors import Executor, resolve_executor
from tasker.health import AlwaysHealthy, HealthChecker
from tasker.log import Logger, as_logger
from tasker.manager import TaskManager
from tasker.metrics import MetricsCollector
from tasker.scaling import ScalingPolicy, resolve_policy

__all__ = ["TaskManagerBuilder"]

R = TypeVar("R")
R2 = TypeVar("R2")

_names = itertools.count(1)


def _no_resource() -> None:
    return None


class TaskManagerBuilder(Generic[R]):
    """Fluent configuration for a [`TaskManager`][tasker.TaskManager].

    ```python
    manager = (
        TaskManager.builder()
        .with_resource(connect, close)
        .with_workers(4, max_workers=8)
        .with_health_check(UnhealthyOn(ConnectionError))
        .build()
    )
    ```

    Defaults: no resource (tasks receive `None`), 1 worker bursting to 2, the `"rate"` policy,
    every exception healthy, 3 retries, a resource pool as large as the base worker count, the
    `tasker` stdlib logger, the thread executor.
    """

    def __init__(self) -> None:
        self._name: str | None = None
        self._on_create: Callable[[], Any] = _no_resource
        self._on_destroy: Callable[[Any], Any] | None = None
        self._workers = 1
        self._max_workers: int | None = None
        self._policy: ScalingPolicy | None = None
        self._health: HealthChecker = AlwaysHealthy()
        self._max_retries = 3
        self._pool_size: int | None = None
        self._logger: Logger = as_logger(None)
        self._collectors: list[MetricsCollector] = []
        self._executor: Executor | None = None
        self._backoff = Backoff()

    def with_name(self, name: str) -> TaskManagerBuilder[R]:
        """Name the manager (logs, metrics attributes, thread names). Default `tasker-N`."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        self._name = name
        return self

    def with_resource(
        self, on_create: Callable[[], R2], on_destroy: Callable[[R2], object] | None = None
    ) -> TaskManagerBuilder[R2]:
        """Give every worker a resource: `on_create()` makes one, `on_destroy(r)` releases it.

        Each worker calls `on_create` in its own thread and keeps the resource for its whole
        life; `on_destroy` is called exactly once per resource created, and its exceptions are
        logged, never raised.
        """
        _require_callable("on_create", on_create)
        if on_destroy is not None:
            _require_callable("on_destroy", on_destroy)
        self._on_create = on_create
        self._on_destroy = on_destroy
        return cast("TaskManagerBuilder[R2]", self)

    def with_workers(
        self, workers: int, *, max_workers: int | None = None
    ) -> TaskManagerBuilder[R]:
        """Set the base worker count (>= 1) and the ceiling with bursts (default 2 × base)."""
        _require_int("workers", workers, minimum=1)
        if max_workers is not None:
            _require_int("max_workers", max_workers, minimum=1)
            if max_workers < workers:
                raise ValueError(f"max_workers must be >= workers ({workers}), got {max_workers}")
        self._workers = workers
        self._max_workers = max_workers
        return self

    def with_policy(self, policy: ScalingPolicy | str, **options: Any) -> TaskManagerBuilder[R]:
        """Choose the scaling policy: a `ScalingPolicy`, or a registered name with options.

        Built-in names: `"rate"` (default) and `"fixed"`, e.g. `.with_policy("rate", interval=0.2)`.
        """
        self._policy = resolve_policy(policy, **options)
        return self

    def with_health_check(self, check: HealthChecker) -> TaskManagerBuilder[R]:
        """Decide which exceptions mean the worker's resource is broken.

        `check(exc)` returns `True` for healthy. For example
        `lambda exc: not isinstance(exc, ConnectionError)` or `UnhealthyOn(ConnectionError)`.
        """
        _require_callable("health_check", check)
        self._health = check
        return self

    def with_max_retries(self, retries: int) -> TaskManagerBuilder[R]:
        """How many times a task is retried after unhealthy failures (>= 0, default 3)."""
        _require_int("max_retries", retries, minimum=0)
        self._max_retries = retries
        return self

    def with_resource_pool(self, size: int) -> TaskManagerBuilder[R]:
        """How many resources to pre-create for `run_task` (>= 0, default: the base workers)."""
        _require_int("resource_pool", size, minimum=0)
        self._pool_size = size
        return self

    def with_logger(self, logger: Logger | logging.Logger) -> TaskManagerBuilder[R]:
        """Send events to a stdlib `logging.Logger` or any `Logger` (structured events)."""
        self._logger = as_logger(logger)
        return self

    def with_metrics(self, collector: MetricsCollector) -> TaskManagerBuilder[R]:
        """Also send every task event to `collector` (call again to add more).

        `manager.metrics()` keeps working: the built-in collector always runs alongside.
        """
        if not isinstance(collector, MetricsCollector):
            raise TypeError(
                "metrics collector must implement record_arrival, record_start, "
                "record_completion, record_failure and record_retry, got "
                f"{type(collector).__name__}"
            )
        self._collectors.append(collector)
        return self

    def with_executor(self, executor: Executor | str) -> TaskManagerBuilder[R]:
        """Choose what workers run on: `"thread"` (the default) or an `Executor`."""
        self._executor = resolve_executor(executor)
        return self

    def with_backoff(
        self,
        *,
        initial: float = 0.05,
        maximum: float = 2.0,
        broken_after: float = 10.0,
    ) -> TaskManagerBuilder[R]:
        """Tune how failing `on_create` calls are retried for replacement and burst workers.

        Delays grow from `initial` to `maximum` seconds. When no worker at all has been alive
        for `broken_after` seconds, the manager is broken: queued and new tasks fail with
        `ManagerBrokenError` until a worker manages to start again.
        """
        self._backoff = Backoff(initial=initial, maximum=maximum, broken_after=broken_after)
        return self

    def build(self) -> TaskManager[R]:
        """Create the pool's resources and the base workers, and return the running manager.

        Returns once every base worker holds its resource. If any `on_create` fails, whatever
        was created is destroyed and `ResourceCreationError` is raised, chaining the cause.
        """
        workers = self._workers
        max_workers = self._max_workers if self._max_workers is not None else 2 * workers
        config: Config[R] = Config(
            name=self._name if self._name is not None else f"tasker-{next(_names)}",
            on_create=cast("Callable[[], R]", self._on_create),
            on_destroy=self._on_destroy,
            workers=workers,
            max_workers=max_workers,
            policy=self._policy if self._policy is not None else resolve_policy("rate"),
            health_check=self._health,
            max_retries=self._max_retries,
            pool_size=self._pool_size if self._pool_size is not None else workers,
            logger=self._logger,
            collectors=tuple(self._collectors),
            executor=self._executor if self._executor is not None else resolve_executor("thread"),
            backoff=self._backoff,
        )
        runtime = ThreadRuntime(config.executor)
        core = Core(config, runtime)
        runtime.start(core)
        return TaskManager(core, runtime)


def _require_callable(name: str, value: object) -> None:
    if not callable(value):
        raise ValueError(f"{name} must be callable, got {type(value).__name__}: {value!r}")


def _require_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
