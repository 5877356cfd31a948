"""Builders: configure and validate a manager, then `build()` it.

Every option is checked when it is given, so a mistake raises at the line that made it, with the
parameter's name and what it accepts. A registered name that no plugin offers yet waits for
`build()`, after every `with_plugins(...)`: the order of the options never matters.
`TaskManagerBuilder` builds the thread manager; `.with_executor("asyncio")` (or
`AsyncTaskManager.builder()`) switches to `AsyncTaskManagerBuilder`, whose `build()` is awaited.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, Self, TypeVar, cast, overload

from tasker import _validate as validate
from tasker._backoff import Backoff
from tasker._config import Config
from tasker._core import Core
from tasker._threads import ThreadRuntime
from tasker.executors import Executor
from tasker.health import AlwaysHealthy, HealthChecker
from tasker.log import Logger, as_logger
from tasker.manager import TaskManager
from tasker.metrics import MetricsCollector
from tasker.plugins import Plugins, check_plugin, default_plugins
from tasker.scaling import ScalingPolicy

if TYPE_CHECKING:
    from tasker.async_manager import AsyncTaskManager

__all__ = ["AsyncBuild", "AsyncTaskManagerBuilder", "TaskManagerBuilder"]

R = TypeVar("R")
R2 = TypeVar("R2")
T = TypeVar("T")

_names = itertools.count(1)


def _no_resource() -> None:
    return None


@dataclass(frozen=True)
class _ByName(Generic[T]):
    """A registered name no plugin offered when it was given: resolved by `build()`."""

    kind: str
    name: str
    options: dict[str, Any]
    check: Callable[[Any], T]


class _Options(Generic[R]):
    """The options both builders share; every `with_*` returns the builder itself."""

    def __init__(self) -> None:
        self._name: str | None = None
        self._on_create: Callable[[], Any] = _no_resource
        self._on_destroy: Callable[[Any], Any] | None = None
        self._workers = 1
        self._max_workers: int | None = None
        self._policy: ScalingPolicy | _ByName[ScalingPolicy] | None = None
        self._health: HealthChecker | _ByName[HealthChecker] = AlwaysHealthy()
        self._max_retries = 3
        self._pool_size: int | None = None
        self._logger: Logger | _ByName[Logger] = as_logger(None)
        self._collectors: list[MetricsCollector | _ByName[MetricsCollector]] = []
        self._executor: Executor | _ByName[Executor] | None = None
        self._backoff = Backoff()
        self._timeout: float | None = None
        self._queue_limit: int | None = None
        self._max_queue_wait: float | None = None
        self._plugin_objects: list[object] = []
        self._plugins: Plugins | None = None

    def with_plugins(self, *plugins: object) -> Self:
        """Use these plugin objects too (modules or objects with `tasker.hookimpl` functions).

        They may come before or after the options that name what they register. Entry-point
        plugins are always loaded (unless `TASKER_DISABLE_PLUGIN_AUTOLOAD` is set).

        Raises:
            PluginError: a plugin pluggy would silently ignore: a function named like a hook
                but not decorated with `@tasker.hookimpl`, a `@tasker.hookimpl` whose name is
                no hook (the message lists the hooks), or no hook at all.
        """
        for plugin in plugins:
            check_plugin(validate.plugin(plugin))
        self._plugin_objects.extend(plugins)
        self._plugins = None
        return self

    def _plugin_set(self) -> Plugins:
        if self._plugins is None:
            self._plugins = (
                Plugins(self._plugin_objects) if self._plugin_objects else default_plugins()
            )
        return self._plugins

    def _registry(self, kind: str) -> Any:
        return self._plugin_set().registry(kind)

    def _named(
        self,
        kind: str,
        label: str,
        value: object,
        options: dict[str, Any],
        check: Callable[[Any], T],
    ) -> T | _ByName[T]:
        """Resolve a registered name with options, or pass an object through (no options then).

        A name no plugin offers yet is kept for `build()`: a plugin given later may bring it.
        """
        if isinstance(value, str):
            registry = self._registry(kind)
            if value not in registry:
                if not value:
                    registry.create(value)  # the registry's own error for an empty name
                return _ByName(kind, value, dict(options), check)
            return check(registry.create(value, **options))
        if options:
            raise ValueError(f"{label}: options can only be given with a registered name")
        return check(value)

    def _resolve(self, value: T | _ByName[T]) -> T:
        """The strategy itself: a name kept for `build()` is created now, or fails naming it."""
        if isinstance(value, _ByName):
            return value.check(self._registry(value.kind).create(value.name, **value.options))
        return value

    def with_name(self, name: str) -> Self:
        """Name the manager (logs, metrics attributes, thread names). Default `tasker-N`."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        self._name = name
        return self

    def with_workers(self, workers: int, *, max_workers: int | None = None) -> Self:
        """Set the base worker count (>= 1) and the ceiling with bursts (default 2 × base)."""
        _require_int("workers", workers, minimum=1)
        if max_workers is not None:
            _require_int("max_workers", max_workers, minimum=1)
            if max_workers < workers:
                raise ValueError(f"max_workers must be >= workers ({workers}), got {max_workers}")
        self._workers = workers
        self._max_workers = max_workers
        return self

    def with_policy(self, policy: ScalingPolicy | str, **options: Any) -> Self:
        """Choose the scaling policy: a `ScalingPolicy`, or a registered name with options.

        Built-in names (`tasker plugins` lists them with the ones plugins add):

        - `"rate"` (the default): bursts when tasks arrive faster than they complete;
        - `"queue-depth"`: one worker per `tasks_per_worker` queued tasks;
        - `"latency"`: adds workers while the queue wait exceeds a target;
        - `"adaptive"`: holds the pool where a shared downstream's run time starts to rise;
        - `"fixed"`: never bursts.

        Options go with the name: `.with_policy("rate", interval=0.2)`.
        """
        self._policy = self._named("policies", "policy", policy, options, _check_policy)
        return self

    def with_health_check(self, check: HealthChecker | str, **options: Any) -> Self:
        """Decide which exceptions mean the worker's resource is broken.

        `check(exc)` returns `True` for healthy. For example
        `lambda exc: not isinstance(exc, ConnectionError)`, `UnhealthyOn(ConnectionError)`, or
        a registered name: `.with_health_check("unhealthy-on", types=(ConnectionError,))`.
        """
        self._health = self._named("health_checks", "health_check", check, options, _check_health)
        return self

    def with_max_retries(self, retries: int) -> Self:
        """How many times a task is retried after unhealthy failures (>= 0, default 3)."""
        _require_int("max_retries", retries, minimum=0)
        self._max_retries = retries
        return self

    def with_resource_pool(self, size: int) -> Self:
        """How many resources to pre-create for `run_task` (>= 0, default: the base workers)."""
        _require_int("resource_pool", size, minimum=0)
        self._pool_size = size
        return self

    def with_timeout(self, seconds: float | None) -> Self:
        """Default time limit of one attempt, in seconds (`None`, the default, or `math.inf`: none).

        An attempt that runs longer ends with `TimeoutError` for its caller; the worker
        survives. `submit(fn, timeout=...)` overrides it per task.
        """
        self._timeout = None if seconds is None else validate.time_limit("timeout", seconds)
        return self

    def with_queue_limit(self, limit: int | None) -> Self:
        """Queue at most `limit` tasks (>= 1; `None`, the default: no limit).

        The limit counts the tasks waiting in both queues, priority ones included; running
        tasks do not count, and a task queued again for a retry is always taken back. When
        the queues are full, a submission waits for room by default (`TaskManager.submit`
        blocks, `AsyncTaskManager.put` and `queue_task*` await), or fails at once with
        `QueueFullError`, or waits up to a timeout: see `submit(block=...)`. Waiting priority
        tasks take the room that frees up before waiting normal ones. `stop()` and `kill()`
        wake every waiting submission with `ManagerClosedError`.
        """
        if limit is not None:
            _require_int("queue_limit", limit, minimum=1)
        self._queue_limit = limit
        return self

    def with_max_queue_wait(self, seconds: float | None) -> Self:
        """Shed tasks that waited in the queue longer than `seconds` (`None`, the default: never).

        A worker that takes such a task fails it with `TaskExpiredError` instead of running
        it late; `metrics().total_tasks_shed` counts them. A retry's wait counts from when it
        was queued again.
        """
        self._max_queue_wait = (
            None if seconds is None else validate.seconds("max_queue_wait", seconds)
        )
        return self

    def with_logger(self, logger: Logger | logging.Logger | str, **options: Any) -> Self:
        """Send events to a stdlib `logging.Logger`, any `Logger`, or a registered name.

        Built-in names: `"stdlib"` (the default, `logger=` to choose the stdlib logger) and
        `"null"`; plugins add more (`"structlog"` with tasker-structlog installed).
        """
        self._logger = self._named("loggers", "logger", logger, options, as_logger)
        return self

    def with_metrics(self, collector: MetricsCollector | str, **options: Any) -> Self:
        """Also send every task event to `collector`, or to a registered one by name.

        Call again to add more. `manager.metrics()` keeps working: the built-in collector
        always runs alongside. Plugins add names (`"otel"` with tasker-otel installed).
        """
        self._collectors.append(
            self._named("collectors", "metrics", collector, options, _check_collector)
        )
        return self

    def with_backoff(
        self,
        *,
        initial: float = 0.05,
        maximum: float = 2.0,
        broken_after: float = 10.0,
    ) -> Self:
        """Tune how failing `on_create` calls are retried for replacement and burst workers.

        Delays grow from `initial` to `maximum` seconds. When no worker at all has been alive
        for `broken_after` seconds, the manager is broken: queued and new tasks fail with
        `ManagerBrokenError` until a worker manages to start again.
        """
        self._backoff = Backoff(initial=initial, maximum=maximum, broken_after=broken_after)
        return self

    def _set_resource(self, on_create: Callable[[], Any], on_destroy: Any) -> None:
        _require_callable("on_create", on_create)
        if on_destroy is not None:
            _require_callable("on_destroy", on_destroy)
        self._on_create = on_create
        self._on_destroy = on_destroy

    def _copy_to(self, other: _Options[Any]) -> None:
        other.__dict__.update({k: v for k, v in self.__dict__.items() if k != "_executor"})

    def _config(self, default_executor: str) -> Config[R]:
        workers = self._workers
        return Config(
            name=self._name if self._name is not None else f"tasker-{next(_names)}",
            on_create=cast("Callable[[], R]", self._on_create),
            on_destroy=self._on_destroy,
            workers=workers,
            max_workers=self._max_workers if self._max_workers is not None else 2 * workers,
            policy=self._resolve(self._policy or _ByName("policies", "rate", {}, _check_policy)),
            health_check=self._resolve(self._health),
            max_retries=self._max_retries,
            pool_size=self._pool_size if self._pool_size is not None else workers,
            logger=self._resolve(self._logger),
            collectors=tuple(self._resolve(c) for c in self._collectors),
            executor=self._resolve(
                self._executor or _ByName("executors", default_executor, {}, _check_executor)
            ),
            backoff=self._backoff,
            plugins=self._plugin_set(),
            timeout=self._timeout,
            queue_limit=self._queue_limit,
            max_queue_wait=self._max_queue_wait,
        )


class TaskManagerBuilder(_Options[R]):
    """Fluent configuration for a [`TaskManager`][tasker.TaskManager] (thread workers).

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
    every exception healthy, 3 retries, a resource pool as large as the base worker count, no
    timeout, the `tasker` stdlib logger, the thread executor.
    """

    def with_resource(
        self, on_create: Callable[[], R2], on_destroy: Callable[[R2], object] | None = None
    ) -> TaskManagerBuilder[R2]:
        """Give every worker a resource: `on_create()` makes one, `on_destroy(r)` releases it.

        Each worker calls `on_create` in its own thread and keeps the resource for its whole
        life; `on_destroy` is called exactly once per resource created, and its exceptions are
        logged, never raised.
        """
        self._set_resource(on_create, on_destroy)
        return cast("TaskManagerBuilder[R2]", self)

    @overload
    def with_executor(
        self, executor: Literal["asyncio"], **options: Any
    ) -> AsyncTaskManagerBuilder[R]: ...

    @overload
    def with_executor(
        self, executor: Literal["thread"] | str | Executor, **options: Any
    ) -> TaskManagerBuilder[R]: ...

    def with_executor(
        self, executor: str | Executor, **options: Any
    ) -> TaskManagerBuilder[R] | AsyncTaskManagerBuilder[R]:
        """Choose where workers and their resources live: a registered name, or an `Executor`.

        Built in: `"thread"` (the default) and `"asyncio"`; plugins register more, with their
        options (`.with_executor("name", option=...)`). `"asyncio"` (or any asyncio executor)
        returns an `AsyncTaskManagerBuilder` carrying every option given so far: tasks are then
        coroutine functions and `build()` is awaited. (An asyncio executor that a plugin given
        later registers cannot switch the builder: start from `AsyncTaskManager.builder()`.)
        """
        resolved = self._named("executors", "executor", executor, options, _check_executor)
        if isinstance(resolved, _ByName):  # a plugin given later: it must be a thread executor
            self._executor = _ByName(resolved.kind, resolved.name, resolved.options, _check_sync)
            return self
        if resolved.kind == "asyncio":
            other: AsyncTaskManagerBuilder[R] = AsyncTaskManagerBuilder()
            self._copy_to(other)
            other._executor = resolved
            return other
        self._executor = resolved
        return self

    def build(self) -> TaskManager[R]:
        """Create the pool's resources and the base workers, and return the running manager.

        Returns once every base worker holds its resource. If any `on_create` fails, whatever
        was created is destroyed and `ResourceCreationError` is raised, chaining the cause.
        """
        config = self._config("thread")
        runtime = ThreadRuntime(config.executor)
        core = Core(config, runtime)
        runtime.start(core)
        manager = TaskManager(core, runtime)
        core.telemetry.bind(manager)
        return manager


class AsyncTaskManagerBuilder(_Options[R]):
    """Fluent configuration for an [`AsyncTaskManager`][tasker.AsyncTaskManager].

    ```python
    async with (
        AsyncTaskManager.builder()
        .with_resource(open_session, close_session)  # sync or async hooks
        .with_workers(8)
        .build() as manager
    ):
        page = await manager.queue_task(fetch)
    ```

    The defaults are the thread builder's, with the asyncio executor.
    """

    def with_resource(
        self,
        on_create: Callable[[], Awaitable[R2]] | Callable[[], R2],
        on_destroy: Callable[[R2], object] | None = None,
    ) -> AsyncTaskManagerBuilder[R2]:
        """Give every worker a resource; both hooks may be plain or `async` functions.

        Plain hooks run on the event loop, so they must be quick; `async` ones are awaited.
        `on_destroy` is called exactly once per resource created; its exceptions are logged.
        """
        self._set_resource(on_create, on_destroy)
        return cast("AsyncTaskManagerBuilder[R2]", self)

    def with_executor(self, executor: str | Executor, **options: Any) -> Self:
        """Choose an asyncio `Executor`, by name with options (the default is `"asyncio"`).

        A thread executor that also serves async managers (such as `"ray"`) gives its asyncio
        form through its `for_asyncio()` method.
        """
        self._executor = self._named(
            "executors", "executor", executor, options, _check_async_executor
        )
        return self

    def build(self) -> AsyncBuild[R]:
        """Start building on the running event loop: `await` it, or `async with` it.

        The manager is returned once every base worker holds its resource; if any `on_create`
        fails, whatever was created is destroyed and `ResourceCreationError` is raised.
        `async with builder.build() as manager:` also stops the manager on exit.

        Raises:
            RuntimeError: no event loop is running in this thread.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "an AsyncTaskManager must be built inside a running event loop: "
                "call `await builder.build()` from a coroutine (for example under asyncio.run)"
            ) from None
        return AsyncBuild(self._config("asyncio"))


class AsyncBuild(Generic[R]):
    """An `AsyncTaskManager` under construction: `await` it, or use it as `async with`.

    Returned by `AsyncTaskManagerBuilder.build()`; `async with` also stops the manager on exit.
    """

    __slots__ = ("_config", "_manager")

    def __init__(self, config: Config[R]) -> None:
        self._config = config
        self._manager: AsyncTaskManager[R] | None = None

    async def _build(self) -> AsyncTaskManager[R]:
        from tasker._asyncio import AsyncRuntime  # noqa: PLC0415 - only for async managers
        from tasker.async_manager import AsyncTaskManager  # noqa: PLC0415 - import cycle

        runtime = AsyncRuntime(self._config.executor)
        core = Core(self._config, runtime)
        await runtime.start(core)
        manager = AsyncTaskManager(core, runtime)
        core.telemetry.bind(manager)
        return manager

    def __await__(self) -> Generator[Any, None, AsyncTaskManager[R]]:
        return self._build().__await__()

    async def __aenter__(self) -> AsyncTaskManager[R]:
        self._manager = await self._build()
        return self._manager

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._manager is not None:
            await self._manager.stop()


def _check_policy(policy: object) -> ScalingPolicy:
    if not isinstance(policy, ScalingPolicy):
        raise TypeError(
            "policy must be a registered name or have an interval and a "
            f"target_workers(snapshot) method, got {type(policy).__name__}"
        )
    validate.seconds(f"{type(policy).__name__}.interval", policy.interval)
    return policy


def _check_health(check: object) -> HealthChecker:
    _require_callable("health_check", check)
    return cast("HealthChecker", check)


def _check_collector(collector: object) -> MetricsCollector:
    if not isinstance(collector, MetricsCollector):
        raise TypeError(
            "metrics collector must implement record_arrival, record_start, "
            f"record_completion, record_failure and record_retry, got {type(collector).__name__}"
        )
    return collector


def _check_executor(executor: object) -> Executor:
    if not isinstance(executor, Executor):
        raise TypeError(
            f"executor must be a registered name or an Executor, got {type(executor).__name__}"
        )
    return executor


def _check_sync(executor: object) -> Executor:
    checked = _check_executor(executor)
    if checked.kind == "asyncio":
        raise ValueError(
            f"executor: {checked.name!r} is an asyncio executor, which a TaskManager cannot use; "
            f"build with AsyncTaskManager.builder().with_executor({checked.name!r})"
        )
    return checked


def _check_async_executor(executor: object) -> Executor:
    checked = _check_executor(executor)
    for_asyncio = getattr(checked, "for_asyncio", None)
    if checked.kind != "asyncio" and for_asyncio is not None:
        checked = _check_executor(for_asyncio())
    if checked.kind != "asyncio":
        raise ValueError(
            f"executor: an async manager needs an asyncio executor, got {checked.name!r}; "
            "build a TaskManager for thread executors"
        )
    return checked


def _require_callable(name: str, value: object) -> None:
    if not callable(value):
        raise ValueError(f"{name} must be callable, got {type(value).__name__}: {value!r}")


def _require_int(name: str, value: object, *, minimum: int) -> None:
    validate.integer(name, value, minimum=minimum)
