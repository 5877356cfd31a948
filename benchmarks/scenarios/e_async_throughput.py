"""e. Asyncio throughput: 100k trivial coroutines (x + 1) on 4 workers, submit every task then
await every result; a hand-written pool of 4 worker tasks on one `asyncio.Queue` (the baseline)
vs `asyncio.gather` with an `asyncio.Semaphore(4)` vs `AsyncTaskManager`, and the Queue pool and
tasker again on uvloop.

Each asyncio run gets a fresh event loop; its pool is built before, and stopped after, the
timed region, with every worker task already waiting for work. Scenario f uses the same pools.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any

from harness import Row, Sample, Scenario, Section, Sizes, Target, Variant
from scenarios._common import throughput
from tasker import AsyncTaskManager

WORKERS = 4
TARGET_VS_QUEUE = 2.0  # tasker / the Queue pool
TARGET_VS_GATHER = 0.3  # tasker / gather + Semaphore

AsyncRun = Coroutine[Any, Any, tuple[float, list[int]]]
"""One timed asyncio run: the seconds it took and every task's result."""


def on_loop(run: AsyncRun, *, uvloop: bool = False) -> tuple[float, list[int]]:
    """Await `run` on a fresh event loop (asyncio's own, or uvloop's); set-up is untimed."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if uvloop:
        import uvloop as uv  # only the uvloop variants need it

        factory = uv.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(run)


async def _async_plus_one(x: int) -> int:
    return x + 1


async def _async_plus_one_on(_resource: None, x: int) -> int:
    return x + 1


class QueuePool:
    """The usual hand-written asyncio pool: worker tasks pulling jobs from one `asyncio.Queue`.

    `submit` returns a future for `fn(x)`; the workers start at once and wait for work.
    """

    __slots__ = ("_loop", "_queue", "_workers")

    def __init__(self, workers: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[
            tuple[Callable[[int], Awaitable[int]], int, asyncio.Future[int]] | None
        ] = asyncio.Queue()
        self._workers = [self._loop.create_task(self._work()) for _ in range(workers)]

    def submit(self, fn: Callable[[int], Awaitable[int]], x: int) -> asyncio.Future[int]:
        future = self._loop.create_future()
        self._queue.put_nowait((fn, x, future))
        return future

    async def _work(self) -> None:
        get = self._queue.get
        while (job := await get()) is not None:
            fn, x, future = job
            try:
                future.set_result(await fn(x))
            except Exception as error:
                future.set_exception(error)

    async def close(self) -> None:
        for _ in self._workers:
            self._queue.put_nowait(None)
        await asyncio.gather(*self._workers)


async def queue_pool(
    fn: Callable[[int], Awaitable[int]], workers: int, n: int
) -> tuple[float, list[int]]:
    pool = QueuePool(workers)
    try:
        await asyncio.sleep(0)  # every worker reaches `queue.get()` and waits there
        gc.collect()
        t0 = time.perf_counter()
        futures = [pool.submit(fn, x) for x in range(n)]
        results = [await f for f in futures]
        seconds = time.perf_counter() - t0
    finally:
        await pool.close()
    return seconds, results


async def gather_semaphore(
    fn: Callable[[int], Awaitable[int]], limit: int, n: int
) -> tuple[float, list[int]]:
    semaphore = asyncio.Semaphore(limit)

    async def limited(x: int) -> int:
        async with semaphore:
            return await fn(x)

    gc.collect()
    t0 = time.perf_counter()
    results = await asyncio.gather(*[limited(x) for x in range(n)])
    seconds = time.perf_counter() - t0
    return seconds, results


async def async_tasker(
    fn: Callable[[None, int], Awaitable[int]], workers: int, n: int
) -> tuple[float, list[int]]:
    manager = await (
        AsyncTaskManager.builder()
        .with_workers(workers, max_workers=workers)
        .with_policy("fixed")
        .build()
    )
    try:
        await asyncio.sleep(0)  # every worker waits for work
        gc.collect()
        t0 = time.perf_counter()
        futures = [manager.submit(fn, x) for x in range(n)]
        results = [await f for f in futures]
        seconds = time.perf_counter() - t0
    finally:
        await manager.stop()
    return seconds, results


def _trivial(
    pattern: Callable[[int], AsyncRun], *, uvloop: bool = False
) -> Callable[[Sizes], Sample]:
    def run(sizes: Sizes) -> Sample:
        n = sizes.trivial_tasks
        return throughput(n, *on_loop(pattern(n), uvloop=uvloop))

    return run


QUEUE = partial(queue_pool, _async_plus_one, WORKERS)
GATHER = partial(gather_semaphore, _async_plus_one, WORKERS)
TASKER = partial(async_tasker, _async_plus_one_on, WORKERS)
RESULT = "{us_per_task:.2f} us/task ({seconds:.3f} s, peak RSS {peak_rss_mib:.0f} MiB)"
VS_QUEUE = "{us_per_task / e.queue.us_per_task:.2f}"

SCENARIO = Scenario(
    "e",
    {
        "e.queue": Variant(
            f"asyncio.Queue + {WORKERS} worker tasks", _trivial(QUEUE), "us_per_task"
        ),
        "e.gather": Variant(
            f"asyncio.gather + Semaphore({WORKERS})", _trivial(GATHER), "us_per_task"
        ),
        "e.tasker": Variant("tasker AsyncTaskManager", _trivial(TASKER), "us_per_task"),
        "e.uvloop.queue": Variant(
            f"uvloop: asyncio.Queue + {WORKERS} worker tasks",
            _trivial(QUEUE, uvloop=True),
            "us_per_task",
        ),
        "e.uvloop.tasker": Variant(
            "uvloop: tasker AsyncTaskManager", _trivial(TASKER, uvloop=True), "us_per_task"
        ),
    },
    (
        Section(
            f"e. asyncio throughput: {{count(sizes.trivial_tasks)}} trivial coroutines (x + 1), "
            f"{WORKERS} workers, submit all then await all",
            (
                Row("e.queue", RESULT, "1.00"),
                Row("e.gather", RESULT, VS_QUEUE),
                Row(
                    "e.tasker",
                    RESULT,
                    (VS_QUEUE, ", {us_per_task / e.gather.us_per_task:.2f} vs gather"),
                    targets=(
                        Target(
                            "tasker/Queue pool us per task",
                            "e.tasker.us_per_task / e.queue.us_per_task",
                            TARGET_VS_QUEUE,
                        ),
                        Target(
                            "tasker/gather+Semaphore us per task",
                            "e.tasker.us_per_task / e.gather.us_per_task",
                            TARGET_VS_GATHER,
                            shown="<= {at_most} vs gather",
                            suffix=" vs gather",
                        ),
                    ),
                ),
                Row("e.uvloop.queue", RESULT, VS_QUEUE),
                Row(
                    "e.uvloop.tasker",
                    RESULT,
                    "{us_per_task / e.uvloop.queue.us_per_task:.2f} vs uvloop Queue pool",
                ),
            ),
        ),
    ),
)
