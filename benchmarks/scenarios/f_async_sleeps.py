"""f. Asyncio sleeps: 20k x `await asyncio.sleep(0.001)` on 64 workers (the Queue pool, gather
with `Semaphore(64)`, tasker, as in scenario e); wall time against the ideal N x 1 ms / 64, and
against the same ideal using the asyncio sleep actually measured on this machine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from functools import partial

from harness import Sample, Scenario, Section, Sizes, Variant
from scenarios._common import SLEEP, wall, walls
from scenarios.e_async_throughput import (
    AsyncRun,
    async_tasker,
    gather_semaphore,
    on_loop,
    queue_pool,
)

WORKERS = 64
TARGET_WALL = 1.3  # tasker's wall time / the ideal


async def _async_nap(_x: int) -> int:
    await asyncio.sleep(SLEEP)
    return 1


async def _async_nap_on(_resource: None, _x: int) -> int:
    await asyncio.sleep(SLEEP)
    return 1


def _sleeps(pattern: Callable[[int], AsyncRun]) -> Callable[[Sizes], Sample]:
    def run(sizes: Sizes) -> Sample:
        n = sizes.sleep_tasks
        return wall(n, *on_loop(pattern(n)), workers=WORKERS)

    return run


def async_sleep_calibration(sizes: Sizes) -> Sample:
    """How long `await asyncio.sleep(0.001)` really takes here, alone, one after another."""

    async def sleeps(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            await asyncio.sleep(SLEEP)
        return (time.perf_counter() - t0) / n

    actual = asyncio.run(sleeps(sizes.calibration_sleeps))
    return {
        "actual_sleep_us": actual * 1e6,
        "adjusted_ideal_s": sizes.sleep_tasks * actual / WORKERS,
    }


SCENARIO = Scenario(
    "f",
    {
        "f.calibration": Variant(
            "asyncio.sleep(0.001) alone", async_sleep_calibration, "actual_sleep_us"
        ),
        "f.queue": Variant(
            f"asyncio.Queue + {WORKERS} worker tasks",
            _sleeps(partial(queue_pool, _async_nap, WORKERS)),
            "seconds",
        ),
        "f.gather": Variant(
            f"asyncio.gather + Semaphore({WORKERS})",
            _sleeps(partial(gather_semaphore, _async_nap, WORKERS)),
            "seconds",
        ),
        "f.tasker": Variant(
            "tasker AsyncTaskManager",
            _sleeps(partial(async_tasker, _async_nap_on, WORKERS)),
            "seconds",
        ),
    },
    (
        Section(
            f"f. asyncio sleeps: {{count(sizes.sleep_tasks)}} x asyncio.sleep(0.001), {WORKERS} "
            "workers, wall time vs ideal",
            walls(
                "f",
                WORKERS,
                ("f.queue", "f.gather", "f.tasker"),
                base_name="Queue pool",
                target=TARGET_WALL,
            ),
        ),
    ),
)
