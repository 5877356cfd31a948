"""The `structlog` entry point: registers the `"structlog"` logger, and nothing else.

It implements no observer hook, so installing tasker-structlog costs nothing to managers that
do not use it. The per-task context is opt-in per manager:
`.with_plugins(tasker_structlog.task_context)`.
"""

from __future__ import annotations

from typing import Any

from tasker import hookimpl
from tasker.plugins import Registry
from tasker_structlog.logger import StructlogLogger

__all__ = ["tasker_register_loggers"]


@hookimpl
def tasker_register_loggers(registry: Registry[Any]) -> None:
    """`"structlog"`: `StructlogLogger(logger=None, logger_name="tasker", **bound)`."""
    registry.register("structlog", StructlogLogger)
