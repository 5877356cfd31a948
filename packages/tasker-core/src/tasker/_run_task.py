"""The steps of `run_task`, written once for both runtimes.

`run_task_steps` is a generator that decides everything (which resource, retry or raise, keep
or destroy) and yields the side effects it needs as `Create`, `Call` and `Destroy` steps. The
thread runtime performs them by calling, the asyncio runtime by awaiting; each sends the outcome
back in (or throws the exception).
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from tasker._core import Core
from tasker._task import TaskRecord
from tasker.errors import ResourceCreationError

__all__ = ["Call", "Create", "Destroy", "Step", "run_task_steps"]


@dataclass(frozen=True, slots=True)
class Create:
    """Call `on_create()` and send the resource back."""


@dataclass(frozen=True, slots=True)
class Call:
    """Run the task on `resource` (inside its context) and send its result back."""

    resource: Any


@dataclass(frozen=True, slots=True)
class Destroy:
    """Call `on_destroy(resource)`; errors are logged by the performer, never thrown back."""

    resource: Any


Step = Create | Call | Destroy
_CREATE = Create()


def run_task_steps(core: Core[Any], task: TaskRecord[Any]) -> Generator[Step, Any, Any]:
    """Borrow a pooled or temporary resource, run the task, retry on a fresh one if unhealthy."""
    while True:
        resource, pooled = core.pool.reserve()
        if resource is None:
            try:
                resource = yield _CREATE
            except asyncio.CancelledError:  # the caller gave up while its resource was made
                core.pool.creation_failed(pooled)
                raise
            except BaseException as error:  # user code: any exception is a failed creation
                core.pool.creation_failed(pooled)
                unavailable = ResourceCreationError(
                    f"on_create failed for a run_task resource: {error!r}"
                )
                core.run_task_unavailable(task, unavailable)
                raise unavailable from error
        task.resource = resource
        start = core.attempt_started(task, None)
        try:
            result = yield Call(resource)
        except asyncio.CancelledError:  # the caller gave up: nothing to decide
            if core.pool.give_back(resource, pooled, healthy=True):
                yield Destroy(resource)
            raise
        except BaseException as error:
            unhealthy, final = core.run_task_failed(task, error, start)
            if core.pool.give_back(resource, pooled, healthy=not unhealthy):
                yield Destroy(resource)
            if final is None:
                continue
            if final is error:
                raise
            raise final from error
        if core.pool.give_back(resource, pooled, healthy=True):
            yield Destroy(resource)
        core.run_task_succeeded(task, start)
        return result
