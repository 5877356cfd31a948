"""tasker's own strategies, registered through the same hooks as any third-party plugin."""

from __future__ import annotations

from typing import Any

from tasker.executors import AsyncioExecutor, ThreadExecutor
from tasker.health import AlwaysHealthy, UnhealthyOn
from tasker.hookspecs import hookimpl
from tasker.log import NullLogger, StdlibLogger
from tasker.metrics import InMemoryCollector
from tasker.plugins import Registry
from tasker.scaling import AdaptivePolicy, FixedPolicy, LatencyPolicy, QueueDepthPolicy, RatePolicy


@hookimpl
def tasker_register_executors(registry: Registry[Any]) -> None:
    """`"thread"`, `"asyncio"` and `"process"`."""
    registry.register("thread", ThreadExecutor)
    registry.register("asyncio", AsyncioExecutor)
    registry.register("process", _process_executor)


def _process_executor(**settings: Any) -> Any:
    """The process executor, imported only when asked for (`ProcessOptions` fields)."""
    from tasker.process import ProcessExecutor  # noqa: PLC0415 - multiprocessing on demand

    return ProcessExecutor(**settings)


@hookimpl
def tasker_register_policies(registry: Registry[Any]) -> None:
    """`"rate"` (the default), `"queue-depth"`, `"latency"`, `"adaptive"` and `"fixed"`."""
    registry.register("rate", RatePolicy)
    registry.register("queue-depth", QueueDepthPolicy)
    registry.register("latency", LatencyPolicy)
    registry.register("adaptive", AdaptivePolicy)
    registry.register("fixed", FixedPolicy)


@hookimpl
def tasker_register_health_checks(registry: Registry[Any]) -> None:
    """`"always-healthy"` and `"unhealthy-on"` (`types=(ConnectionError, ...)`)."""
    registry.register("always-healthy", AlwaysHealthy)
    registry.register("unhealthy-on", lambda types=(): UnhealthyOn(*types))


@hookimpl
def tasker_register_loggers(registry: Registry[Any]) -> None:
    """`"stdlib"` (`logger=` a `logging.Logger`, default `tasker`) and `"null"`."""
    registry.register("stdlib", StdlibLogger)
    registry.register("null", NullLogger)


@hookimpl
def tasker_register_collectors(registry: Registry[Any]) -> None:
    """`"in-memory"`: another bounded-memory collector (one is always built in)."""
    registry.register("in-memory", InMemoryCollector)
