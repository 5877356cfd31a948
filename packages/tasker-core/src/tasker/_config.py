"""The validated settings a builder hands to the engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tasker._backoff import Backoff
from tasker.executors import Executor
from tasker.health import HealthChecker
from tasker.log import Logger
from tasker.metrics import MetricsCollector
from tasker.plugins import Plugins
from tasker.scaling import ScalingPolicy

__all__ = ["Config"]

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Config(Generic[R]):
    """Everything a manager needs; built and validated by `TaskManagerBuilder`."""

    name: str
    on_create: Callable[[], R]
    on_destroy: Callable[[R], Any] | None
    workers: int
    max_workers: int
    policy: ScalingPolicy
    health_check: HealthChecker
    max_retries: int
    pool_size: int
    logger: Logger
    collectors: tuple[MetricsCollector, ...]
    executor: Executor
    backoff: Backoff
    plugins: Plugins
    timeout: float | None = None
    queue_limit: int | None = None  # tasks queued at most (both queues), None: no limit
    max_queue_wait: float | None = None  # seconds a task may wait before it is shed
