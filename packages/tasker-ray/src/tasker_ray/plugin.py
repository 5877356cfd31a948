"""The `ray` entry point: registers the `"ray"` executor, and nothing else.

Ray itself is imported only when a manager built with `"ray"` starts its first worker, so
installing tasker-ray costs nothing to the managers that do not use it.
"""

from __future__ import annotations

from typing import Any

from tasker import hookimpl
from tasker.plugins import Registry

__all__ = ["tasker_register_executors"]


@hookimpl
def tasker_register_executors(registry: Registry[Any]) -> None:
    """`"ray"`: `RayExecutor(**RayOptions fields)`; an async builder takes its asyncio form."""
    registry.register("ray", _ray_executor)


def _ray_executor(**settings: Any) -> Any:
    from tasker_ray.executor import RayExecutor  # noqa: PLC0415 - imported when asked for

    return RayExecutor(**settings)
