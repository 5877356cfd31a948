"""structlog logging for tasker.

- `StructlogLogger`, registered as `"structlog"`: tasker's events, with their stable names and
  structured fields, through the application's structlog configuration,
  `.with_logger("structlog")`;
- `task_context`, an opt-in plugin: events logged about a task from worker threads carry the
  values its submitter bound with `structlog.contextvars`, its `queue` and the attempt's
  `duration`, `.with_plugins(task_context)`.
"""

from __future__ import annotations

from tasker_structlog import task_context
from tasker_structlog._version import __version__
from tasker_structlog.logger import ATTEMPT_EVENTS, StructlogLogger, method_for

__all__ = ["ATTEMPT_EVENTS", "StructlogLogger", "__version__", "method_for", "task_context"]
