"""The steps of `run_task`, written once for both runtimes.

`run_task_steps` is a lifecycle (see `_lifecycle`): it decides everything (which resource, retry
or raise, keep or destroy) and yields the calls into user code it needs as steps, which the
thread runtime performs by calling and the asyncio runtime by awaiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tasker._core import Core
from tasker._lifecycle import CREATE_RESOURCE, Step, Steps, destroy
from tasker.errors import ResourceCreationError

__all__ = ["run_task_steps"]


def run_task_steps(core: Core[Any], fn: Callable[[Any], Any], *, once: bool) -> Steps[Any]:
    """Borrow a pooled or temporary resource, run `fn` on it, retry on a fresh one if unhealthy.

    The shutdown's last step waits for every call to give back (or destroy) its resource, so
    `stop()` never reports a manager stopped while a resource is still open.
    """
    task = core.run_task_record(fn, once=once)
    try:
        while True:
            resource, pooled = core.pool.reserve()
            if resource is None:
                try:
                    resource = yield CREATE_RESOURCE
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
                result = yield Step("call", (task, resource))
            except asyncio.CancelledError:  # the caller gave up: nothing to decide
                if core.pool.give_back(resource, pooled, healthy=True):
                    yield from destroy(core, Step("destroy_resource", (resource,)))
                raise
            except BaseException as error:
                unhealthy, final = core.run_task_failed(task, error, start)
                if core.pool.give_back(resource, pooled, healthy=not unhealthy):
                    yield from destroy(core, Step("destroy_resource", (resource,)))
                if final is None:
                    continue
                if final is error:
                    raise
                raise final from error
            if core.pool.give_back(resource, pooled, healthy=True):
                yield from destroy(core, Step("destroy_resource", (resource,)))
            core.run_task_succeeded(task, start)
            return result
    finally:
        core.run_task_returned()
