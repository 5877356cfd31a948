"""Stable names of the events tasker logs.

Loggers receive one of these names plus structured fields (`task_id`, `worker_id`, `attempt`,
`error`, ...). The names are part of the public contract: match on them, not on message text.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Event"]


class Event(StrEnum):
    """Every event tasker emits, as `<subject>.<what happened>`."""

    MANAGER_STARTED = "manager.started"
    MANAGER_STOPPING = "manager.stopping"
    MANAGER_STOPPED = "manager.stopped"
    MANAGER_KILLED = "manager.killed"
    MANAGER_BROKEN = "manager.broken"
    MANAGER_RECOVERED = "manager.recovered"

    WORKER_STARTED = "worker.started"
    WORKER_STOPPED = "worker.stopped"
    WORKER_REPLACED = "worker.replaced"
    WORKER_UNHEALTHY = "worker.unhealthy"

    TASK_FAILED = "task.failed"
    TASK_RETRIED = "task.retried"
    TASK_ABANDONED = "task.abandoned"
    TASK_TIMED_OUT = "task.timed_out"
    TASK_REJECTED = "task.rejected"
    TASK_SHED = "task.shed"

    RESOURCE_CREATE_FAILED = "resource.create_failed"
    RESOURCE_DESTROY_FAILED = "resource.destroy_failed"

    SCALED_UP = "scaling.up"
    SCALED_DOWN = "scaling.down"
    POLICY_FAILED = "scaling.policy_failed"

    HEALTH_CHECK_FAILED = "health.check_failed"
    CALLBACK_FAILED = "callback.failed"
    COLLECTOR_FAILED = "metrics.collector_failed"
    PLUGIN_FAILED = "plugin.hook_failed"
    BIND_FAILED = "manager.bind_failed"
