"""c. Blocking tasks: 20k x `time.sleep(0.001)` on 16 workers; wall time against the ideal
N x 1 ms / 16, and against the same ideal using the sleep actually measured on this machine."""

from __future__ import annotations

import gc
import time
from concurrent.futures import Future, ThreadPoolExecutor

from harness import Sample, Scenario, Section, Sizes, Variant
from scenarios._common import SLEEP, manager, prestart, wall, walls

WORKERS = 16
TARGET_WALL = 1.10  # tasker's wall time / the ideal


def _nap() -> int:
    time.sleep(SLEEP)
    return 1


def _nap_on(_resource: None) -> int:
    time.sleep(SLEEP)
    return 1


def sleep_calibration(sizes: Sizes) -> Sample:
    """How long `time.sleep(0.001)` really takes here, alone, one call after another."""
    n = sizes.calibration_sleeps
    t0 = time.perf_counter()
    for _ in range(n):
        time.sleep(SLEEP)
    actual = (time.perf_counter() - t0) / n
    return {
        "actual_sleep_us": actual * 1e6,
        "adjusted_ideal_s": sizes.sleep_tasks * actual / WORKERS,
    }


def sleep_tpe(sizes: Sizes) -> Sample:
    n = sizes.sleep_tasks
    with ThreadPoolExecutor(WORKERS) as ex:
        prestart(ex, WORKERS)
        gc.collect()
        t0 = time.perf_counter()
        futures = [ex.submit(_nap) for _ in range(n)]
        results = [f.result() for f in futures]
        seconds = time.perf_counter() - t0
    return wall(n, seconds, results, WORKERS)


def sleep_tasker(sizes: Sizes) -> Sample:
    n = sizes.sleep_tasks
    m = manager(WORKERS)
    try:
        gc.collect()
        t0 = time.perf_counter()
        futures: list[Future[int]] = [m.submit(_nap_on) for _ in range(n)]
        results = [f.result() for f in futures]
        seconds = time.perf_counter() - t0
    finally:
        m.stop()
    return wall(n, seconds, results, WORKERS)


SCENARIO = Scenario(
    "c",
    {
        "c.calibration": Variant("time.sleep(0.001) alone", sleep_calibration, "actual_sleep_us"),
        "c.tpe": Variant("ThreadPoolExecutor", sleep_tpe, "seconds"),
        "c.tasker": Variant("tasker", sleep_tasker, "seconds"),
    },
    (
        Section(
            f"c. blocking tasks: {{count(sizes.sleep_tasks)}} x time.sleep(0.001), {WORKERS} "
            "workers, wall time vs ideal",
            walls("c", WORKERS, ("c.tpe", "c.tasker"), base_name="TPE", target=TARGET_WALL),
        ),
    ),
)
