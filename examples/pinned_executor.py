"""An executor of your own: every worker's resource lives on a thread pinned to it.

Some clients must be used from the thread that made them, yet a task may want to run on
another (a caller's, a timer's). Here each worker's place owns one dedicated thread: the
resource is created, called and destroyed there, and nowhere else. The same shape serves a
resource in another process or on another machine: `create`, `call`, `interrupt` and `destroy`
are the whole contract, and raising `WorkerCrashedError` from `call` reports a place that died.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from tasker import TaskManager, WorkerCrashedError, hookimpl
from tasker.executors import ThreadExecutor, run_here
from tasker.plugins import Registry


class PinnedPlace:
    """One worker's resource, on a thread of its own."""

    def __init__(
        self, on_create: Callable[[], Any], on_destroy: Callable[[Any], object] | None
    ) -> None:
        self._on_create, self._on_destroy = on_create, on_destroy
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="pinned")
        self.resource: Any = None
        self.alive = True

    def create(self) -> None:
        self.resource = self._thread.submit(self._on_create).result()

    def call(self, task: Any) -> Any:
        if not self.alive:
            raise WorkerCrashedError("the pinned thread is gone")
        return self._thread.submit(run_here, task, self.resource).result()

    def interrupt(self) -> None:
        """A thread cannot be stopped from outside: the task sees `current_task().cancelled`."""

    def destroy(self) -> None:
        try:
            if self._on_destroy is not None:
                self._thread.submit(self._on_destroy, self.resource).result()
        finally:
            self._thread.shutdown()


class PinnedExecutor(ThreadExecutor):
    """Worker loops on threads, as usual; each resource on a pinned thread of its own."""

    @property
    def name(self) -> str:
        return "pinned"

    @property
    def kind(self) -> Literal["thread"]:
        return "thread"

    def place(  # type: ignore[override]
        self, on_create: Callable[[], Any], on_destroy: Callable[[Any], object] | None
    ) -> PinnedPlace:
        return PinnedPlace(on_create, on_destroy)


@hookimpl
def tasker_register_executors(registry: Registry[Any]) -> None:
    """Make it available by name: `.with_executor("pinned")`."""
    registry.register("pinned", PinnedExecutor)


def main() -> None:
    made_on: list[str] = []

    def connect() -> str:
        made_on.append(threading.current_thread().name)
        return "connection"

    manager = (
        TaskManager.builder()
        .with_plugins(sys.modules[__name__])
        .with_executor("pinned")
        .with_resource(connect)
        .with_workers(2, max_workers=2)
        .with_resource_pool(0)  # run_task's pooled resources stay in the caller's process
        .build()
    )
    with manager:
        ran_on = manager.queue_task(lambda conn: threading.current_thread().name)
    print(f"created on {made_on}, a task ran on {ran_on!r}")
    assert ran_on.startswith("pinned")
    assert all(name.startswith("pinned") for name in made_on)


if __name__ == "__main__":
    main()
