"""Coroutine tasks on the asyncio executor: one "HTTP session" per worker, real cancellation.

Each worker opens a session with an async hook and keeps it; a session that drops is replaced
and the request retried; a slow request hits its timeout; a caller that gives up cancels its
request only; the submitter's context (a request id) reaches every task.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tasker import AsyncTaskManager, UnhealthyOn, current_task

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_session_ids = itertools.count(1)


class SessionDroppedError(ConnectionError):
    """The server closed the session."""


@dataclass
class Session:
    """A stand-in for an HTTP client session."""

    sid: int = field(default_factory=lambda: next(_session_ids))
    requests: int = 0
    closed: bool = False
    dropped_once: ClassVar[bool] = False

    async def get(self, path: str) -> str:
        await asyncio.sleep(0.005)  # network latency
        self.requests += 1
        if path == "/flaky" and not Session.dropped_once:
            Session.dropped_once = True
            raise SessionDroppedError(f"session {self.sid} dropped")
        if path == "/slow":
            await asyncio.sleep(10)
        return f"200 OK {path} via session {self.sid} [{request_id.get()}]"


async def open_session() -> Session:
    await asyncio.sleep(0.001)  # TLS handshake
    return Session()


async def close_session(session: Session) -> None:
    await asyncio.sleep(0)
    session.closed = True
    print(f"  closed session {session.sid} after {session.requests} requests")


def fetch(path: str) -> Callable[[Session], Coroutine[Any, Any, str]]:
    async def task(session: Session) -> str:
        return await session.get(path)

    return task


async def fetch_flaky(session: Session) -> str:
    task = current_task()
    attempt = task.attempt if task else 0
    return f"{await session.get('/flaky')} (attempt {attempt})"


async def main_async() -> None:
    print("--- asyncio executor: coroutine tasks, one session per worker ---")
    async with (
        AsyncTaskManager.builder()
        .with_name("http")
        .with_resource(open_session, close_session)
        .with_workers(2, max_workers=4)
        .with_resource_pool(0)
        .with_health_check(UnhealthyOn(SessionDroppedError))
        .with_timeout(1.0)
        .build() as manager
    ):
        request_id.set("req-1")
        pages = await asyncio.gather(*(manager.queue_task(fetch(f"/page/{i}")) for i in range(4)))
        for page in pages:
            print(" ", page)

        print(" ", await manager.queue_task(fetch_flaky))

        try:
            await manager.submit(fetch("/slow"), timeout=0.05)
        except TimeoutError as error:
            print(f"  /slow: {error}")

        impatient = asyncio.create_task(manager.queue_task(fetch("/slow")))
        await asyncio.sleep(0.02)
        impatient.cancel()
        try:
            await impatient
        except asyncio.CancelledError:
            print("  /slow: the caller gave up; the worker carries on")

        print(" ", await manager.queue_task_with_priority(fetch("/health")))
        metrics = manager.metrics()
        print(
            f"  completed={metrics.total_tasks_completed} failed={metrics.total_tasks_failed} "
            f"retried={metrics.total_tasks_retried} p95={metrics.p95_execution_time * 1000:.1f} ms"
        )
    print(f"  manager {manager.name}: {manager.state}")


def main() -> None:
    asyncio.run(main_async())


if __name__ == "__main__":
    main()
