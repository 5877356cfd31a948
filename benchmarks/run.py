"""Benchmarks: tasker against the standard library (`make bench`).

Scenarios, each comparing tasker with a baseline:

a. Throughput: 100k trivial tasks (x + 1) on 4 workers, submit every task then collect every
   result; `ex.submit(fn, x)` vs `m.submit(fn, x)` (tasker's metrics are always on).
b. Latency of one blocking call: 10k sequential `ex.submit(f).result()` vs `m.queue_task(f)`
   on 4 idle workers, with a ~200 us untimed pause between calls (workers asleep) and
   back-to-back (workers just parked); p50/p99.
c. Blocking tasks: 20k x `time.sleep(0.001)` on 16 workers; wall time against the ideal
   N x 1 ms / 16, and against the same ideal using the sleep actually measured on this machine.
d. Percentiles of 1e6 durations (p95 and p99): keep every duration in a list and sort a copy per
   query (how the Go tasker computes them, reimplemented below) vs `tasker.QuantileSketch`; then
   the built-in collector's hot path, the same durations as 5e5 attempts (a wait and a run each)
   through `InMemoryCollector.record_attempt`, from one thread and from four at once, then
   `metrics()`; recording is reported per duration.
e. Asyncio throughput: 100k trivial coroutines (x + 1) on 4 workers, submit every task then
   await every result; a hand-written pool of 4 worker tasks on one `asyncio.Queue` (the
   baseline) vs `asyncio.gather` with an `asyncio.Semaphore(4)` vs `AsyncTaskManager`, and the
   Queue pool and tasker again on uvloop.
f. Asyncio sleeps: 20k x `await asyncio.sleep(0.001)` on 64 workers (Queue pool, gather with
   `Semaphore(64)`, tasker); wall time against the ideal N x 1 ms / 64, and against the same
   ideal using the asyncio sleep actually measured on this machine.
g. Plugin overhead: scenario a's tasker run, with no plugin passed (the baseline), with one no-op
   plugin implementing every observer hook, and with one implementing `tasker_task_finished`
   only; each row's cost per task over the baseline, in microseconds, next to the spread of the
   timed runs. Installed entry-point plugins load as usual; one more row runs the baseline with
   `TASKER_DISABLE_PLUGIN_AUTOLOAD=1`.

Every variant runs in a fresh interpreter (`--one KEY`), so one variant's heap, threads and
garbage never disturb another's: one warm-up run, then five timed runs, medians. Pools are
built and shut down outside the timed regions, with every worker thread already started (every
worker task already waiting for work); each asyncio run gets a fresh event loop.
The driver prints one comparison table to stdout, progress to stderr, and writes every figure
(medians and raw runs) as JSON to `benchmarks/results/latest.json`.

    python benchmarks/run.py                  # everything, about 3 minutes on 2 cores
    python benchmarks/run.py --quick          # one small pass (a few seconds), for smoke tests
    python benchmarks/run.py --only a.tpe a.tasker
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from array import array
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cache, partial
from pathlib import Path
from typing import Any

from tasker import (
    AsyncTaskManager,
    InMemoryCollector,
    QuantileSketch,
    TaskInfo,
    TaskManager,
    hookimpl,
    hookspecs,
)
from tasker.metrics import COMPLETED

HERE = Path(__file__).resolve().parent

Sample = dict[str, float]
"""The figures one run of a variant produces."""


@dataclass(frozen=True)
class Sizes:
    """How much work each scenario does, and how many times it is repeated."""

    trivial_tasks: int
    latency_calls: int
    sleep_tasks: int
    calibration_sleeps: int
    durations: int
    warmup: int
    runs: int


FULL = Sizes(
    trivial_tasks=100_000,
    latency_calls=10_000,
    sleep_tasks=20_000,
    calibration_sleeps=1_000,
    durations=1_000_000,
    warmup=1,
    runs=5,
)
QUICK = Sizes(
    trivial_tasks=5_000,
    latency_calls=300,
    sleep_tasks=800,
    calibration_sleeps=100,
    durations=50_000,
    warmup=0,
    runs=1,
)

TRIVIAL_WORKERS = 4
LATENCY_WORKERS = 4
IDLE_GAP = 200e-6
SLEEP_WORKERS = 16
SLEEP = 0.001
QUANTILES = (0.95, 0.99)
SKETCH_QUERY_REPS = 200
COLLECTOR_THREADS = 4
ASYNC_TRIVIAL_WORKERS = 4
ASYNC_SLEEP_WORKERS = 64

# targets: tasker / baseline ratios
TARGET_THROUGHPUT = 0.8
LIMIT_THROUGHPUT = 1.0
TARGET_LATENCY_P50 = 1.1
TARGET_SLEEP_WALL = 1.10
TARGET_ASYNC_VS_QUEUE = 2.0
TARGET_ASYNC_VS_GATHER = 0.3
TARGET_ASYNC_SLEEP_WALL = 1.3
# targets: absolute figures of the percentile sketch and the collector
TARGET_RECORD_NS = 150.0  # per duration recorded through the collector
TARGET_QUERY_US = 50.0
TARGET_SKETCH_BYTES = 32 * 1024
TARGET_ERROR = 0.01


# --------------------------------------------------------------------------- shared pieces


def _prestart(ex: ThreadPoolExecutor, workers: int) -> None:
    """Make `ex` start all its threads and leave them idle, so none spawns mid-measurement."""
    barrier = threading.Barrier(workers + 1)
    futures = [ex.submit(barrier.wait) for _ in range(workers)]
    barrier.wait()
    for future in futures:
        future.result()


def _manager(workers: int, plugins: Sequence[object] = ()) -> TaskManager[None]:
    """A tasker manager with a fixed number of workers (no bursting), resource `None`."""
    return (
        TaskManager.builder()
        .with_plugins(*plugins)
        .with_workers(workers)
        .with_policy("fixed")
        .build()
    )


def _order_stats(values: Sequence[float], qs: Sequence[float]) -> list[float]:
    """Exact quantiles: the order statistic of 0-based rank floor(q * (n - 1))."""
    ordered = sorted(values)
    last = len(ordered) - 1
    return [ordered[int(q * last)] for q in qs]


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --------------------------------------------------------------------- a. throughput


def _plus_one(x: int) -> int:
    return x + 1


def _plus_one_on(_resource: None, x: int) -> int:
    return x + 1


def _throughput(n: int, seconds: float, results: list[int]) -> Sample:
    if len(results) != n or results[-1] != n:
        raise AssertionError("wrong results")
    return {"seconds": seconds, "us_per_task": seconds / n * 1e6}


def trivial_tpe(sizes: Sizes) -> Sample:
    n = sizes.trivial_tasks
    with ThreadPoolExecutor(TRIVIAL_WORKERS) as ex:
        _prestart(ex, TRIVIAL_WORKERS)
        gc.collect()
        t0 = time.perf_counter()
        futures = [ex.submit(_plus_one, x) for x in range(n)]
        results = [f.result() for f in futures]
        seconds = time.perf_counter() - t0
    return _throughput(n, seconds, results)


def trivial_tasker(sizes: Sizes, plugins: Sequence[object] = ()) -> Sample:
    n = sizes.trivial_tasks
    manager = _manager(TRIVIAL_WORKERS, plugins)
    try:
        gc.collect()
        t0 = time.perf_counter()
        futures = [manager.submit(_plus_one_on, x) for x in range(n)]
        results = [f.result() for f in futures]
        seconds = time.perf_counter() - t0
    finally:
        manager.stop()
    return _throughput(n, seconds, results)


# ------------------------------------------------------------------------ b. latency


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
    p50, p90, p99 = _order_stats(latencies, (0.5, 0.9, 0.99))
    return {
        "p50_us": p50 * 1e6,
        "p90_us": p90 * 1e6,
        "p99_us": p99 * 1e6,
        "mean_us": statistics.fmean(latencies) * 1e6,
    }


def _latency_tpe(gap: float) -> Callable[[Sizes], Sample]:
    def run(sizes: Sizes) -> Sample:
        with ThreadPoolExecutor(LATENCY_WORKERS) as ex:
            _prestart(ex, LATENCY_WORKERS)
            return _latency(lambda: ex.submit(_one).result(), sizes.latency_calls, gap)

    return run


def _latency_tasker(gap: float) -> Callable[[Sizes], Sample]:
    def run(sizes: Sizes) -> Sample:
        manager = _manager(LATENCY_WORKERS)
        try:
            return _latency(lambda: manager.queue_task(_one_on), sizes.latency_calls, gap)
        finally:
            manager.stop()

    return run


# -------------------------------------------------------------------- c. blocking tasks


def _nap() -> int:
    time.sleep(SLEEP)
    return 1


def _nap_on(_resource: None) -> int:
    time.sleep(SLEEP)
    return 1


def _wall(n: int, seconds: float, results: list[int], workers: int = SLEEP_WORKERS) -> Sample:
    if sum(results) != n:
        raise AssertionError("wrong results")
    ideal = n * SLEEP / workers
    return {"seconds": seconds, "ideal_s": ideal, "over_ideal": seconds / ideal}


def sleep_calibration(sizes: Sizes) -> Sample:
    """How long `time.sleep(0.001)` really takes here, alone, one call after another."""
    n = sizes.calibration_sleeps
    t0 = time.perf_counter()
    for _ in range(n):
        time.sleep(SLEEP)
    actual = (time.perf_counter() - t0) / n
    return {
        "actual_sleep_us": actual * 1e6,
        "adjusted_ideal_s": sizes.sleep_tasks * actual / SLEEP_WORKERS,
    }


def sleep_tpe(sizes: Sizes) -> Sample:
    n = sizes.sleep_tasks
    with ThreadPoolExecutor(SLEEP_WORKERS) as ex:
        _prestart(ex, SLEEP_WORKERS)
        gc.collect()
        t0 = time.perf_counter()
        futures = [ex.submit(_nap) for _ in range(n)]
        results = [f.result() for f in futures]
        seconds = time.perf_counter() - t0
    return _wall(n, seconds, results)


def sleep_tasker(sizes: Sizes) -> Sample:
    n = sizes.sleep_tasks
    manager = _manager(SLEEP_WORKERS)
    try:
        gc.collect()
        t0 = time.perf_counter()
        futures: list[Future[int]] = [manager.submit(_nap_on) for _ in range(n)]
        results = [f.result() for f in futures]
        seconds = time.perf_counter() - t0
    finally:
        manager.stop()
    return _wall(n, seconds, results)


# -------------------------------------------------------------------- d. percentiles


class SortingRecorder:
    """The Go tasker's way: keep every duration; a query sorts a copy and indexes it."""

    __slots__ = ("_durations",)

    def __init__(self) -> None:
        self._durations: list[float] = []

    def add(self, duration: float) -> None:
        self._durations.append(duration)

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        return _order_stats(self._durations, qs)


@cache
def _durations(n: int) -> array[float]:
    """Deterministic lognormal durations in seconds (median 100 us, sigma 1).

    Kept in an `array`, so each value read is a fresh float, like a `perf_counter` difference.
    """
    rng = random.Random(20_240_601)
    mu = math.log(100e-6)
    return array("d", (rng.lognormvariate(mu, 1.0) for _ in range(n)))


@cache
def _exact(n: int) -> tuple[float, ...]:
    return tuple(_order_stats(_durations(n), QUANTILES))


def _record_all(store: SortingRecorder | QuantileSketch, data: array[float]) -> None:
    add = store.add
    for x in data:
        add(x)


def _bare_loop(data: array[float]) -> float:
    t0 = time.perf_counter()
    for _ in data:
        pass
    return time.perf_counter() - t0


def _percentile_run(
    make: Callable[[], SortingRecorder | QuantileSketch], query_reps: int, sizes: Sizes
) -> Sample:
    n = sizes.durations
    data = _durations(n)
    exact = _exact(n)
    gc.collect()
    bare = _bare_loop(data)
    store = make()
    t0 = time.perf_counter()
    _record_all(store, data)
    record = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(query_reps):
        answers = store.quantiles(QUANTILES)
    query = (time.perf_counter() - t0) / query_reps
    error = max(abs(a - e) / e for a, e in zip(answers, exact, strict=True))
    return {
        "record_ns": max(record - bare, 0.0) / n * 1e9,
        "record_loop_ns": record / n * 1e9,
        "query_us": query * 1e6,
        "max_rel_error": error,
    }


def _retained(make: Callable[[], SortingRecorder | QuantileSketch], sizes: Sizes) -> Sample:
    """Bytes the store keeps after recording every duration, traced by tracemalloc."""
    data = _durations(sizes.durations)
    gc.collect()
    tracemalloc.start()
    try:
        store = make()
        _record_all(store, data)
        retained = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del store
    return {"retained_bytes": float(retained)}


@cache
def _attempts(n: int) -> tuple[array[float], array[float]]:
    """The `n` durations as `n // 2` attempts: a wait and an execution time each."""
    data = _durations(n)
    return data[0::2], data[1::2]


@cache
def _exact_executions(n: int) -> tuple[float, ...]:
    return tuple(_order_stats(_attempts(n)[1], QUANTILES))


def _record_attempts(
    collector: InMemoryCollector, waits: Sequence[float], executions: Sequence[float]
) -> None:
    record = collector.record_attempt
    for wait, execution in zip(waits, executions, strict=True):
        record(wait, execution, COMPLETED)


def _bare_attempts(waits: array[float], executions: array[float]) -> float:
    t0 = time.perf_counter()
    for _wait, _execution in zip(waits, executions, strict=True):
        pass
    return time.perf_counter() - t0


def _collector_figures(collector: InMemoryCollector, n: int, seconds: float, bare: float) -> Sample:
    """Per-duration recording cost, then the cost and the error of `metrics()`."""
    t0 = time.perf_counter()
    for _ in range(SKETCH_QUERY_REPS):
        m = collector.metrics()
    query = (time.perf_counter() - t0) / SKETCH_QUERY_REPS
    answers = (m.p95_execution_time, m.p99_execution_time)
    exact = _exact_executions(n)
    return {
        "record_ns": max(seconds - bare, 0.0) / n * 1e9,
        "record_loop_ns": seconds / n * 1e9,
        "query_us": query * 1e6,
        "max_rel_error": max(abs(a - e) / e for a, e in zip(answers, exact, strict=True)),
    }


def collector_run(sizes: Sizes) -> Sample:
    """One thread records every attempt."""
    n = sizes.durations
    waits, executions = _attempts(n)
    gc.collect()
    bare = _bare_attempts(waits, executions)
    collector = InMemoryCollector()
    t0 = time.perf_counter()
    _record_attempts(collector, waits, executions)
    seconds = time.perf_counter() - t0
    return _collector_figures(collector, n, seconds, bare)


def collector_threads_run(sizes: Sizes) -> Sample:
    """`COLLECTOR_THREADS` threads record a share of the attempts each, all at once."""
    n = sizes.durations
    waits, executions = _attempts(n)
    k = COLLECTOR_THREADS
    gc.collect()
    bare = _bare_attempts(waits, executions)
    collector = InMemoryCollector()
    start = threading.Barrier(k + 1)

    def work(i: int) -> None:
        mine = waits[i::k], executions[i::k]
        start.wait()
        _record_attempts(collector, *mine)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(k)]
    for thread in threads:
        thread.start()
    start.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - t0
    return _collector_figures(collector, n, seconds, bare)


def _collector_retained(sizes: Sizes) -> Sample:
    """Bytes the collector keeps after recording every attempt, traced by tracemalloc."""
    waits, executions = _attempts(sizes.durations)
    gc.collect()
    tracemalloc.start()
    try:
        collector = InMemoryCollector()
        _record_attempts(collector, waits, executions)
        retained = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del collector
    return {"retained_bytes": float(retained)}


# ----------------------------------------------------------- e. and f. asyncio

AsyncRun = Coroutine[Any, Any, tuple[float, list[int]]]
"""One timed asyncio run: the seconds it took and every task's result."""


def _on_loop(run: AsyncRun, *, uvloop: bool = False) -> tuple[float, list[int]]:
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


async def _async_nap(_x: int) -> int:
    await asyncio.sleep(SLEEP)
    return 1


async def _async_nap_on(_resource: None, _x: int) -> int:
    await asyncio.sleep(SLEEP)
    return 1


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


async def _queue_pool(
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


async def _gather_semaphore(
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


async def _async_tasker(
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


def _async_trivial(
    pattern: Callable[[int], AsyncRun], *, uvloop: bool = False
) -> Callable[[Sizes], Sample]:
    def run(sizes: Sizes) -> Sample:
        n = sizes.trivial_tasks
        return _throughput(n, *_on_loop(pattern(n), uvloop=uvloop))

    return run


def _async_sleeps(pattern: Callable[[int], AsyncRun]) -> Callable[[Sizes], Sample]:
    def run(sizes: Sizes) -> Sample:
        n = sizes.sleep_tasks
        return _wall(n, *_on_loop(pattern(n)), workers=ASYNC_SLEEP_WORKERS)

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
        "adjusted_ideal_s": sizes.sleep_tasks * actual / ASYNC_SLEEP_WORKERS,
    }


# ------------------------------------------------------------------ g. plugin overhead

OBSERVER_HOOKS = tuple(
    sorted(
        name
        for name in vars(hookspecs)
        if name.startswith("tasker_") and not name.startswith("tasker_register_")
    )
)
"""Every observer hook tasker specifies (the `tasker_register_*` hooks are discovery hooks)."""


class NoOpObserver:
    """A plugin implementing every observer hook, with every parameter, doing nothing."""

    @hookimpl
    def tasker_task_queued(self, manager: str, task: TaskInfo) -> None:
        pass

    @hookimpl
    def tasker_task_started(self, manager: str, task: TaskInfo, worker_id: int | None) -> None:
        pass

    @hookimpl
    def tasker_task_attempt_context(
        self, manager: str, task: TaskInfo, worker_id: int | None
    ) -> AbstractContextManager[Any] | None:
        return None

    @hookimpl
    def tasker_task_finished(
        self, manager: str, task: TaskInfo, outcome: str, error: BaseException | None
    ) -> None:
        pass

    @hookimpl
    def tasker_task_retried(self, manager: str, task: TaskInfo, error: BaseException) -> None:
        pass

    @hookimpl
    def tasker_worker_started(self, manager: str, worker_id: int, burst: bool) -> None:
        pass

    @hookimpl
    def tasker_worker_stopped(self, manager: str, worker_id: int) -> None:
        pass

    @hookimpl
    def tasker_worker_replaced(self, manager: str, worker_id: int, replaced_worker_id: int) -> None:
        pass

    @hookimpl
    def tasker_scaled_up(self, manager: str, workers: int, target: int) -> None:
        pass

    @hookimpl
    def tasker_scaled_down(self, manager: str, workers: int, target: int) -> None:
        pass

    @hookimpl
    def tasker_manager_started(self, manager: str) -> None:
        pass

    @hookimpl
    def tasker_manager_stopped(self, manager: str, killed: bool) -> None:
        pass


class NoOpFinished:
    """A plugin implementing `tasker_task_finished` only, doing nothing."""

    @hookimpl
    def tasker_task_finished(
        self, manager: str, task: TaskInfo, outcome: str, error: BaseException | None
    ) -> None:
        pass


def _plugged_tasker(
    make: Callable[[], object], hooks: Collection[str]
) -> Callable[[Sizes], Sample]:
    """Scenario a's tasker run with one plugin, `make()`, which must implement exactly `hooks`.

    A misspelt hook would be silently ignored (and cost nothing), hence the check.
    """

    def run(sizes: Sizes) -> Sample:
        plugin = make()
        implemented = {name for name in dir(plugin) if name.startswith("tasker_")}
        if implemented != set(hooks):
            raise AssertionError(f"the plugin implements {sorted(implemented)}, not {hooks}")
        return trivial_tasker(sizes, (plugin,))

    return run


# ----------------------------------------------------------------------- the variants


# ------------------------------------------------------------------ h. cancellation


def _cancel_all(futures: list[Future[Any]]) -> Sample:
    random.Random(7).shuffle(futures)
    gc.collect()
    t0 = time.perf_counter()
    for future in futures:
        future.cancel()
    seconds = time.perf_counter() - t0
    if not all(f.cancelled() for f in futures):
        raise AssertionError("a queued task was not cancelled")
    return {"seconds": seconds, "us_per_cancel": seconds / len(futures) * 1e6}


def cancel_tpe(sizes: Sizes) -> Sample:
    gate = threading.Event()
    with ThreadPoolExecutor(1) as ex:
        ex.submit(gate.wait)
        futures = [ex.submit(_plus_one, x) for x in range(sizes.trivial_tasks)]
        sample = _cancel_all(futures)
        gate.set()
    return sample


def cancel_tasker(sizes: Sizes) -> Sample:
    gate = threading.Event()
    manager = _manager(1, ())
    try:
        manager.submit(lambda _: gate.wait())
        futures = [manager.submit(_plus_one_on, x) for x in range(sizes.trivial_tasks)]
        sample = _cancel_all(futures)
        gate.set()
    finally:
        manager.stop()
    return sample


@dataclass(frozen=True)
class Variant:
    """One measured thing: `run` performs one full run and returns its figures."""

    label: str
    run: Callable[[Sizes], Sample]
    headline: str
    once: Callable[[Sizes], Sample] | None = None
    """Extra figures measured once, after the timed runs (e.g. retained memory)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Environment variables set for the variant's process."""


VARIANTS: dict[str, Variant] = {
    "a.tpe": Variant("ThreadPoolExecutor", trivial_tpe, "us_per_task"),
    "a.tasker": Variant("tasker (metrics on)", trivial_tasker, "us_per_task"),
    "b.idle.tpe": Variant(
        "ThreadPoolExecutor submit(f).result()", _latency_tpe(IDLE_GAP), "p50_us"
    ),
    "b.idle.tasker": Variant("tasker queue_task(f)", _latency_tasker(IDLE_GAP), "p50_us"),
    "b.b2b.tpe": Variant("ThreadPoolExecutor submit(f).result()", _latency_tpe(0.0), "p50_us"),
    "b.b2b.tasker": Variant("tasker queue_task(f)", _latency_tasker(0.0), "p50_us"),
    "c.calibration": Variant("time.sleep(0.001) alone", sleep_calibration, "actual_sleep_us"),
    "c.tpe": Variant("ThreadPoolExecutor", sleep_tpe, "seconds"),
    "c.tasker": Variant("tasker", sleep_tasker, "seconds"),
    "d.sort": Variant(
        "list, sort a copy per query (Go tasker)",
        partial(_percentile_run, SortingRecorder, 1),
        "query_us",
        once=partial(_retained, SortingRecorder),
    ),
    "d.sketch": Variant(
        "tasker.QuantileSketch (1 % accuracy)",
        partial(_percentile_run, QuantileSketch, SKETCH_QUERY_REPS),
        "query_us",
        once=partial(_retained, QuantileSketch),
    ),
    "d.collector": Variant(
        "tasker InMemoryCollector.record_attempt",
        collector_run,
        "record_ns",
        once=_collector_retained,
    ),
    "d.collector.threads": Variant(
        f"tasker InMemoryCollector.record_attempt, {COLLECTOR_THREADS} threads",
        collector_threads_run,
        "record_ns",
        once=_collector_retained,
    ),
    "e.queue": Variant(
        f"asyncio.Queue + {ASYNC_TRIVIAL_WORKERS} worker tasks",
        _async_trivial(partial(_queue_pool, _async_plus_one, ASYNC_TRIVIAL_WORKERS)),
        "us_per_task",
    ),
    "e.gather": Variant(
        f"asyncio.gather + Semaphore({ASYNC_TRIVIAL_WORKERS})",
        _async_trivial(partial(_gather_semaphore, _async_plus_one, ASYNC_TRIVIAL_WORKERS)),
        "us_per_task",
    ),
    "e.tasker": Variant(
        "tasker AsyncTaskManager",
        _async_trivial(partial(_async_tasker, _async_plus_one_on, ASYNC_TRIVIAL_WORKERS)),
        "us_per_task",
    ),
    "e.uvloop.queue": Variant(
        f"uvloop: asyncio.Queue + {ASYNC_TRIVIAL_WORKERS} worker tasks",
        _async_trivial(partial(_queue_pool, _async_plus_one, ASYNC_TRIVIAL_WORKERS), uvloop=True),
        "us_per_task",
    ),
    "e.uvloop.tasker": Variant(
        "uvloop: tasker AsyncTaskManager",
        _async_trivial(
            partial(_async_tasker, _async_plus_one_on, ASYNC_TRIVIAL_WORKERS), uvloop=True
        ),
        "us_per_task",
    ),
    "f.calibration": Variant(
        "asyncio.sleep(0.001) alone", async_sleep_calibration, "actual_sleep_us"
    ),
    "f.queue": Variant(
        f"asyncio.Queue + {ASYNC_SLEEP_WORKERS} worker tasks",
        _async_sleeps(partial(_queue_pool, _async_nap, ASYNC_SLEEP_WORKERS)),
        "seconds",
    ),
    "f.gather": Variant(
        f"asyncio.gather + Semaphore({ASYNC_SLEEP_WORKERS})",
        _async_sleeps(partial(_gather_semaphore, _async_nap, ASYNC_SLEEP_WORKERS)),
        "seconds",
    ),
    "f.tasker": Variant(
        "tasker AsyncTaskManager",
        _async_sleeps(partial(_async_tasker, _async_nap_on, ASYNC_SLEEP_WORKERS)),
        "seconds",
    ),
    "h.tpe": Variant("ThreadPoolExecutor future.cancel()", cancel_tpe, "us_per_cancel"),
    "h.tasker": Variant("tasker future.cancel()", cancel_tasker, "us_per_cancel"),
    "g.none": Variant("tasker, no plugin passed", trivial_tasker, "us_per_task"),
    "g.observer": Variant(
        f"tasker + no-op plugin, all {len(OBSERVER_HOOKS)} observer hooks",
        _plugged_tasker(NoOpObserver, OBSERVER_HOOKS),
        "us_per_task",
    ),
    "g.finished": Variant(
        "tasker + no-op plugin, tasker_task_finished only",
        _plugged_tasker(NoOpFinished, ("tasker_task_finished",)),
        "us_per_task",
    ),
    "g.noautoload": Variant(
        "tasker, no plugin passed, TASKER_DISABLE_PLUGIN_AUTOLOAD=1",
        trivial_tasker,
        "us_per_task",
        env={"TASKER_DISABLE_PLUGIN_AUTOLOAD": "1"},
    ),
}


def run_one(key: str, sizes: Sizes) -> dict[str, Any]:
    """Child process: warm up, time every run, return the medians and the raw runs."""
    variant = VARIANTS[key]

    def progress(phase: str, sample: Sample) -> None:
        value = sample[variant.headline]
        print(f"    {key} {phase}: {variant.headline} = {value:.3f}", file=sys.stderr, flush=True)

    for i in range(sizes.warmup):
        progress(f"warm-up {i + 1}/{sizes.warmup}", variant.run(sizes))
    runs: list[Sample] = []
    for i in range(sizes.runs):
        runs.append(variant.run(sizes))
        progress(f"run {i + 1}/{sizes.runs}", runs[-1])
    median = {name: statistics.median(r[name] for r in runs) for name in runs[0]}
    if variant.once is not None:
        median.update(variant.once(sizes))
    return {"median": median, "runs": runs, "peak_rss_mib": _peak_rss_mib()}


def spawn(key: str, *, quick: bool, timeout: float) -> dict[str, Any]:
    """Run one variant in a fresh interpreter; its progress goes straight to our stderr."""
    command = [sys.executable, str(Path(__file__).resolve()), "--one", key]
    if quick:
        command.append("--quick")
    env = {**os.environ, **VARIANTS[key].env}
    try:
        done = subprocess.run(
            command, stdout=subprocess.PIPE, text=True, env=env, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        return {"error": f"exit code {done.returncode} (traceback above)"}
    lines = done.stdout.strip().splitlines()
    if not lines:
        return {"error": "no output"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# --------------------------------------------------------------------------- the table


@dataclass
class Row:
    """One line of the table: a variant and how it compares."""

    variant: str
    result: str
    ratio: str = ""
    target: str = ""
    verdict: str = ""


@dataclass
class Section:
    """A scenario: a title line and its rows."""

    title: str
    rows: list[Row] = field(default_factory=list)


@dataclass
class Check:
    """A target, for the JSON report."""

    scenario: str
    metric: str
    value: float
    target: float
    limit: float | None
    verdict: str


def _verdict(value: float, target: float, limit: float | None = None) -> str:
    if value <= target:
        return "met"
    if limit is None:
        return "MISSED"
    return "MISSED (within limit)" if value <= limit else "FAILED (over limit)"


def _time(seconds: float) -> str:
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.3f} s"


def _bytes(n: float) -> str:
    if n < 1024**2:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024**2:.1f} MiB"


def _count(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


class Report:
    """Turns the variants' results into table sections and target checks."""

    def __init__(self, results: dict[str, dict[str, Any]], sizes: Sizes) -> None:
        self.results = results
        self.sizes = sizes
        self.sections: list[Section] = []
        self.checks: list[Check] = []

    def median(self, key: str) -> Sample | None:
        median: Sample | None = self.results.get(key, {}).get("median")
        return median

    def missing(self, key: str) -> Row:
        if key not in self.results:
            return Row(VARIANTS[key].label, "(not run)")
        return Row(VARIANTS[key].label, f"ERROR: {self.results[key].get('error')}")

    def check(
        self, scenario: str, metric: str, value: float, target: float, limit: float | None = None
    ) -> str:
        verdict = _verdict(value, target, limit)
        self.checks.append(Check(scenario, metric, value, target, limit, verdict))
        return verdict

    def build(self) -> None:
        """Build the sections of the scenarios that were run (all of them unless `--only`)."""
        if self.ran("a."):
            self.throughput()
        if self.ran("b.idle."):
            self.latency("idle", f"~{IDLE_GAP * 1e6:.0f} us untimed pause between calls", "b.idle")
        if self.ran("b.b2b."):
            self.latency("back-to-back", "no pause between calls", "b.b2b")
        if self.ran("c."):
            self.blocking()
        if self.ran("d."):
            self.percentiles()
        if self.ran("e."):
            self.async_throughput()
        if self.ran("f."):
            self.async_sleeps()
        if self.ran("g."):
            self.plugin_overhead()
        if self.ran("h."):
            self.cancellation()

    def ran(self, prefix: str) -> bool:
        return any(key.startswith(prefix) for key in self.results)

    def throughput(self) -> None:
        n = self.sizes.trivial_tasks
        section = Section(
            f"a. throughput: {_count(n)} trivial tasks (x + 1), {TRIVIAL_WORKERS} workers, "
            "submit all then collect all"
        )
        self.sections.append(section)
        base, ours = self.median("a.tpe"), self.median("a.tasker")
        for key, med in (("a.tpe", base), ("a.tasker", ours)):
            if med is None:
                section.rows.append(self.missing(key))
                continue
            rss = self.results[key]["peak_rss_mib"]
            result = (
                f"{med['us_per_task']:.2f} us/task ({med['seconds']:.3f} s, peak RSS {rss:.0f} MiB)"
            )
            row = Row(VARIANTS[key].label, result)
            if key == "a.tpe":
                row.ratio = "1.00"
            elif base is not None:
                ratio = med["us_per_task"] / base["us_per_task"]
                row.ratio = f"{ratio:.2f}"
                row.target = f"<= {TARGET_THROUGHPUT} (limit {LIMIT_THROUGHPUT})"
                row.verdict = self.check(
                    "a", "tasker/TPE us per task", ratio, TARGET_THROUGHPUT, LIMIT_THROUGHPUT
                )
            section.rows.append(row)

    def latency(self, mode: str, detail: str, prefix: str) -> None:
        section = Section(
            f"b. blocking-call latency, {mode}: {_count(self.sizes.latency_calls)} sequential "
            f"calls of a trivial task, {LATENCY_WORKERS} idle workers ({detail})"
        )
        self.sections.append(section)
        base_key, our_key = f"{prefix}.tpe", f"{prefix}.tasker"
        base, ours = self.median(base_key), self.median(our_key)
        for key, med in ((base_key, base), (our_key, ours)):
            if med is None:
                section.rows.append(self.missing(key))
                continue
            result = (
                f"p50 {med['p50_us']:.1f} us, p90 {med['p90_us']:.1f} us, "
                f"p99 {med['p99_us']:.1f} us"
            )
            row = Row(VARIANTS[key].label, result)
            if key == base_key:
                row.ratio = "1.00"
            elif base is not None:
                p50 = med["p50_us"] / base["p50_us"]
                p99 = med["p99_us"] / base["p99_us"]
                row.ratio = f"p50 {p50:.2f}, p99 {p99:.2f}"
                row.target = f"p50 <= {TARGET_LATENCY_P50}"
                row.verdict = self.check(
                    "b", f"tasker/TPE p50 latency, {mode}", p50, TARGET_LATENCY_P50
                )
            section.rows.append(row)

    def blocking(self) -> None:
        section = Section(
            f"c. blocking tasks: {_count(self.sizes.sleep_tasks)} x time.sleep(0.001), "
            f"{SLEEP_WORKERS} workers, wall time vs ideal"
        )
        self.sections.append(section)
        self.walls(
            section,
            "c",
            SLEEP_WORKERS,
            ("c.tpe", "c.tasker"),
            base_name="TPE",
            target=TARGET_SLEEP_WALL,
        )

    def walls(
        self,
        section: Section,
        scenario: str,
        workers: int,
        keys: Sequence[str],
        *,
        base_name: str,
        target: float,
    ) -> None:
        """The rows of a sleeping-tasks scenario: both ideals, then `keys`, the baseline first.

        The calibration variant is `<scenario>.calibration` and tasker's `<scenario>.tasker`.
        """
        ideal = self.sizes.sleep_tasks * SLEEP / workers
        section.rows.append(Row(f"ideal: N x 1 ms / {workers}", f"{ideal:.3f} s", "1.00 ideal"))
        calibration_key, our_key = f"{scenario}.calibration", f"{scenario}.tasker"
        calibration = self.median(calibration_key)
        adjusted: float | None = None
        if calibration is None:
            section.rows.append(self.missing(calibration_key))
        else:
            adjusted = calibration["adjusted_ideal_s"]
            section.rows.append(
                Row(
                    f"ideal with the measured sleep ({calibration['actual_sleep_us']:.0f} us)",
                    f"{adjusted:.3f} s",
                    f"{adjusted / ideal:.2f} ideal",
                )
            )
        base = self.median(keys[0])
        for key in keys:
            med = self.median(key)
            if med is None:
                section.rows.append(self.missing(key))
                continue
            result = f"{med['seconds']:.3f} s"
            if key != keys[0] and base is not None:
                result += f" ({med['seconds'] / base['seconds']:.2f} x {base_name})"
            ratio = f"{med['over_ideal']:.2f} ideal"
            if adjusted is not None:
                ratio += f", {med['seconds'] / adjusted:.2f} adjusted"
            row = Row(VARIANTS[key].label, result, ratio)
            if key == our_key:
                row.target = f"<= {target:.2f} ideal"
                row.verdict = self.check(scenario, "tasker wall / ideal", med["over_ideal"], target)
                if adjusted is not None:
                    against_adjusted = self.check(
                        scenario, "tasker wall / adjusted ideal", med["seconds"] / adjusted, target
                    )
                    row.verdict += f" ({against_adjusted} vs adjusted)"
            section.rows.append(row)

    def percentiles(self) -> None:
        section = Section(
            f"d. percentiles: record {_count(self.sizes.durations)} durations, "
            "then query p95 + p99 (one query = both)"
        )
        self.sections.append(section)
        base = self.median("d.sort")
        for key in ("d.sort", "d.sketch"):
            med = self.median(key)
            if med is None:
                section.rows.append(self.missing(key))
                continue
            result = (
                f"record {med['record_ns']:.0f} ns, query {_time(med['query_us'] / 1e6)}, "
                f"keeps {_bytes(med['retained_bytes'])}, error {med['max_rel_error'] * 100:.2f} %"
            )
            row = Row(VARIANTS[key].label, result)
            if key == "d.sort":
                row.ratio = "1.00"
                section.rows.append(row)
                continue
            if base is not None:
                row.ratio = (
                    f"query 1/{base['query_us'] / med['query_us']:.0f}, "
                    f"memory 1/{base['retained_bytes'] / med['retained_bytes']:.0f}"
                )
            row.target = (
                f"query <= {TARGET_QUERY_US:.0f} us, <= {_bytes(TARGET_SKETCH_BYTES)}, "
                f"error <= {TARGET_ERROR * 100:.0f} %"
            )
            verdicts = [
                self.check("d", "sketch query us", med["query_us"], TARGET_QUERY_US),
                self.check("d", "sketch bytes kept", med["retained_bytes"], TARGET_SKETCH_BYTES),
                self.check("d", "sketch relative error", med["max_rel_error"], TARGET_ERROR),
            ]
            row.verdict = "met" if verdicts == ["met"] * 3 else ", ".join(verdicts)
            section.rows.append(row)
        for key in ("d.collector", "d.collector.threads"):
            self.collector_row(section, key, base)

    def collector_row(self, section: Section, key: str, base: Sample | None) -> None:
        """A collector's row in d: recording per duration, against its target."""
        med = self.median(key)
        if med is None:
            section.rows.append(self.missing(key))
            return
        result = (
            f"record {med['record_ns']:.0f} ns per duration, "
            f"metrics() {_time(med['query_us'] / 1e6)}, keeps {_bytes(med['retained_bytes'])}, "
            f"error {med['max_rel_error'] * 100:.2f} %"
        )
        row = Row(VARIANTS[key].label, result)
        if base is not None and base["record_ns"] > 0:  # 0: no cost above the loop's noise
            row.ratio = f"record {med['record_ns'] / base['record_ns']:.2f}"
        row.target = f"record <= {TARGET_RECORD_NS:.0f} ns"
        metric = "collector ns per duration" + (", threads" if key.endswith("threads") else "")
        row.verdict = self.check("d", metric, med["record_ns"], TARGET_RECORD_NS)
        section.rows.append(row)

    def async_throughput(self) -> None:
        n = self.sizes.trivial_tasks
        section = Section(
            f"e. asyncio throughput: {_count(n)} trivial coroutines (x + 1), "
            f"{ASYNC_TRIVIAL_WORKERS} workers, submit all then await all"
        )
        self.sections.append(section)
        queue, gather = self.median("e.queue"), self.median("e.gather")
        uvloop_queue = self.median("e.uvloop.queue")
        for key in ("e.queue", "e.gather", "e.tasker", "e.uvloop.queue", "e.uvloop.tasker"):
            med = self.median(key)
            if med is None:
                section.rows.append(self.missing(key))
                continue
            rss = self.results[key]["peak_rss_mib"]
            us = med["us_per_task"]
            row = Row(
                VARIANTS[key].label,
                f"{us:.2f} us/task ({med['seconds']:.3f} s, peak RSS {rss:.0f} MiB)",
            )
            if key == "e.queue":
                row.ratio = "1.00"
            elif key in ("e.gather", "e.uvloop.queue") and queue is not None:
                row.ratio = f"{us / queue['us_per_task']:.2f}"
            elif key == "e.uvloop.tasker" and uvloop_queue is not None:
                row.ratio = f"{us / uvloop_queue['us_per_task']:.2f} vs uvloop Queue pool"
            elif key == "e.tasker":
                self.async_targets(row, us, queue, gather)
            section.rows.append(row)

    def async_targets(
        self, row: Row, us: float, queue: Sample | None, gather: Sample | None
    ) -> None:
        """Tasker's row in e: its ratios to the Queue pool and to gather + Semaphore."""
        ratios: list[str] = []
        targets: list[str] = []
        verdicts: list[str] = []
        for base, name, metric, target in (
            (queue, "", "tasker/Queue pool us per task", TARGET_ASYNC_VS_QUEUE),
            (gather, " vs gather", "tasker/gather+Semaphore us per task", TARGET_ASYNC_VS_GATHER),
        ):
            if base is None:
                continue
            ratio = us / base["us_per_task"]
            ratios.append(f"{ratio:.2f}{name}")
            targets.append(f"<= {target}{name}")
            verdicts.append(self.check("e", metric, ratio, target) + name)
        row.ratio = ", ".join(ratios)
        row.target = ", ".join(targets)
        row.verdict = "".join([*verdicts[:1], *(f" ({v})" for v in verdicts[1:])])

    def async_sleeps(self) -> None:
        section = Section(
            f"f. asyncio sleeps: {_count(self.sizes.sleep_tasks)} x asyncio.sleep(0.001), "
            f"{ASYNC_SLEEP_WORKERS} workers, wall time vs ideal"
        )
        self.sections.append(section)
        self.walls(
            section,
            "f",
            ASYNC_SLEEP_WORKERS,
            ("f.queue", "f.gather", "f.tasker"),
            base_name="Queue pool",
            target=TARGET_ASYNC_SLEEP_WALL,
        )

    def plugin_overhead(self) -> None:
        n = self.sizes.trivial_tasks
        section = Section(
            f"g. plugin overhead: {_count(n)} trivial tasks (x + 1), {TRIVIAL_WORKERS} workers, "
            "submit all then collect all; cost per task over no plugin"
        )
        self.sections.append(section)
        base = self.median("g.none")
        for key in ("g.none", "g.observer", "g.finished", "g.noautoload"):
            med = self.median(key)
            if med is None:
                section.rows.append(self.missing(key))
                continue
            us = med["us_per_task"]
            result = f"{us:.2f} us/task ({med['seconds']:.3f} s"
            runs = [r["us_per_task"] for r in self.results[key]["runs"]]
            if len(runs) > 1:  # the spread, to set the differences against
                result += f", runs {min(runs):.1f}-{max(runs):.1f}"
            row = Row(VARIANTS[key].label, result + ")")
            if key == "g.none":
                row.ratio = "1.00"
            elif base is not None:
                row.ratio = (
                    f"{us / base['us_per_task']:.2f}, {us - base['us_per_task']:+.2f} us/task"
                )
            section.rows.append(row)

    def cancellation(self) -> None:
        n = self.sizes.trivial_tasks
        section = Section(
            f"h. cancellation: {_count(n)} queued tasks behind one busy worker, each cancelled, "
            "in random order"
        )
        self.sections.append(section)
        base = self.median("h.tpe")
        for key in ("h.tpe", "h.tasker"):
            med = self.median(key)
            if med is None:
                section.rows.append(self.missing(key))
                continue
            row = Row(
                VARIANTS[key].label,
                f"{med['us_per_cancel']:.2f} us/cancel ({med['seconds']:.3f} s in all)",
            )
            if key == "h.tpe":
                row.ratio = "1.00"
            elif base is not None:
                row.ratio = f"{med['us_per_cancel'] / base['us_per_cancel']:.2f}"
            section.rows.append(row)

    def render(self, header: str) -> str:
        columns = ("variant", "result", "vs baseline", "target", "verdict")
        cells = [
            (f"  {r.variant}", r.result, r.ratio, r.target, r.verdict)
            for s in self.sections
            for r in s.rows
        ]
        widths = [max(len(c[i]) for c in [columns, *cells]) for i in range(len(columns))]

        def line(values: Sequence[str]) -> str:
            return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

        out = [header, "", line(columns), line(["-" * w for w in widths])]
        for section in self.sections:
            out.append(section.title)
            out.extend(
                line((f"  {r.variant}", r.result, r.ratio, r.target, r.verdict))
                for r in section.rows
            )
        return "\n".join(out)


# --------------------------------------------------------------------------- the driver


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark tasker against the standard library.")
    parser.add_argument("--quick", action="store_true", help="one run at small sizes (smoke test)")
    parser.add_argument("--output", type=Path, help="where to write the JSON results")
    parser.add_argument("--only", nargs="+", choices=sorted(VARIANTS), help="run these variants")
    parser.add_argument("--one", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL

    if args.one is not None:
        print(json.dumps(run_one(args.one, sizes)))
        return 0

    keys: list[str] = args.only or list(VARIANTS)
    timeout = 60.0 if args.quick else 300.0
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    for i, key in enumerate(keys, 1):
        print(f"[{i}/{len(keys)}] {key}: {VARIANTS[key].label}", file=sys.stderr, flush=True)
        results[key] = spawn(key, quick=args.quick, timeout=timeout)
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()[0]

    report = Report(results, sizes)
    report.build()
    runs = (
        f"median of {sizes.runs} runs after {sizes.warmup} warm-up"
        if sizes.runs > 1
        else f"{sizes.runs} run, no warm-up"
    )
    header = (
        f"tasker vs standard library{' (quick)' if args.quick else ''}: CPython "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, {platform.system()}; "
        f"{runs}, each variant in its own process; {elapsed:.0f} s in all, "
        f"1-min load average {load_before:.2f} before, {load_after:.2f} after"
    )
    print(report.render(header), flush=True)

    output: Path = args.output or HERE / "results" / ("quick.json" if args.quick else "latest.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "quick": args.quick,
        "sizes": asdict(sizes),
        "elapsed_s": elapsed,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "variants": {
            key: {
                "label": VARIANTS[key].label,
                **({"env": dict(VARIANTS[key].env)} if VARIANTS[key].env else {}),
                **r,
            }
            for key, r in results.items()
        },
        "checks": [asdict(c) for c in report.checks],
    }
    output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults written to {output}", file=sys.stderr)
    failed = [key for key, r in results.items() if "error" in r]
    if failed:
        print(f"variants that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
