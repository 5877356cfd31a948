"""b. Latency of one blocking call: 10k sequential `ex.submit(f).result()` vs `m.queue_task(f)`
on 4 idle workers, with a ~200 us untimed pause between calls (workers asleep) and back-to-back
(workers just parked); p50/p99."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from harness import Row, Sample, Scenario, Section, Sizes, Target, Variant
from scenarios._common import manager, order_stats, prestart

WORKERS = 4
IDLE_GAP = 200e-6
TARGET_P50 = 1.1  # tasker / ThreadPoolExecutor


def _one() -> int:
    return 1


def _one_on(_resource: None) -> int:
    return 1


def _latency(call: Callable[[], int], calls: int, gap: float) -> Sample:
    clock, pause = time.perf_counter, time.sleep
    latencies: list[float] = []
    record = latencies.append
    time.sleep(0.01)  # let the workers park
    gc.collect()
    for _ in range(calls):
        if gap:
            pause(gap)
        t0 = clock()
        value = call()
        record(clock() - t0)
        if value != 1:
            raise AssertionError("wrong result")
    p50, p90, p99 = order_stats(latencies, (0.5, 0.9, 0.99))
    return {
        "p50_us": p50 * 1e6,
        "p90_us": p90 * 1e6,
        "p99_us": p99 * 1e6,
        "mean_us": statistics.fmean(latencies) * 1e6,
    }


def _latency_tpe(gap: float) -> Callable[[Sizes], Sample]:
    def run(sizes: Sizes) -> Sample:
        with ThreadPoolExecutor(WORKERS) as ex:
            prestart(ex, WORKERS)
            return _latency(lambda: ex.submit(_one).result(), sizes.latency_calls, gap)

    return run


def _latency_tasker(gap: float) -> Callable[[Sizes], Sample]:
    def run(sizes: Sizes) -> Sample:
        m = manager(WORKERS)
        try:
            return _latency(lambda: m.queue_task(_one_on), sizes.latency_calls, gap)
        finally:
            m.stop()

    return run


def _section(mode: str, detail: str, prefix: str) -> Section:
    base, ours = f"{prefix}.tpe", f"{prefix}.tasker"
    result = "p50 {p50_us:.1f} us, p90 {p90_us:.1f} us, p99 {p99_us:.1f} us"
    return Section(
        f"b. blocking-call latency, {mode}: {{count(sizes.latency_calls)}} sequential calls of "
        f"a trivial task, {WORKERS} idle workers ({detail})",
        (
            Row(base, result, "1.00"),
            Row(
                ours,
                result,
                f"p50 {{p50_us / {base}.p50_us:.2f}}, p99 {{p99_us / {base}.p99_us:.2f}}",
                targets=(
                    Target(
                        f"tasker/TPE p50 latency, {mode}",
                        f"{ours}.p50_us / {base}.p50_us",
                        TARGET_P50,
                        shown="p50 <= {at_most}",
                    ),
                ),
            ),
        ),
    )


SCENARIO = Scenario(
    "b",
    {
        "b.idle.tpe": Variant(
            "ThreadPoolExecutor submit(f).result()", _latency_tpe(IDLE_GAP), "p50_us"
        ),
        "b.idle.tasker": Variant("tasker queue_task(f)", _latency_tasker(IDLE_GAP), "p50_us"),
        "b.b2b.tpe": Variant("ThreadPoolExecutor submit(f).result()", _latency_tpe(0.0), "p50_us"),
        "b.b2b.tasker": Variant("tasker queue_task(f)", _latency_tasker(0.0), "p50_us"),
    },
    (
        _section("idle", f"~{IDLE_GAP * 1e6:.0f} us untimed pause between calls", "b.idle"),
        _section("back-to-back", "no pause between calls", "b.b2b"),
    ),
)
