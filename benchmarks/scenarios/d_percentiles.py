"""d. Percentiles of 1e6 durations (p95 and p99): keep every duration in a list and sort a copy
per query (how the Go tasker computes them, reimplemented below) vs `tasker.QuantileSketch`;
then the built-in collector's hot path, the same durations as 5e5 attempts (a wait and a run
each) through `InMemoryCollector.record_attempt`, from one thread and from four at once, then
`metrics()`; recording is reported per duration."""

from __future__ import annotations

import gc
import math
import random
import threading
import time
import tracemalloc
from array import array
from collections.abc import Callable, Sequence
from functools import cache, partial

from harness import Row, Sample, Scenario, Section, Sizes, Target, Variant, When
from scenarios._common import order_stats
from tasker import InMemoryCollector, QuantileSketch
from tasker.metrics import COMPLETED

QUANTILES = (0.95, 0.99)
SKETCH_QUERY_REPS = 200
COLLECTOR_THREADS = 4
TARGET_RECORD_NS = 150.0  # per duration recorded through the collector
TARGET_QUERY_US = 50.0
TARGET_SKETCH_BYTES = 32 * 1024
TARGET_ERROR = 0.01


class SortingRecorder:
    """The Go tasker's way: keep every duration; a query sorts a copy and indexes it."""

    __slots__ = ("_durations",)

    def __init__(self) -> None:
        self._durations: list[float] = []

    def add(self, duration: float) -> None:
        self._durations.append(duration)

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        return order_stats(self._durations, qs)


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
    return tuple(order_stats(_durations(n), QUANTILES))


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
    return tuple(order_stats(_attempts(n)[1], QUANTILES))


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


def _collector_row(key: str, metric: str) -> Row:
    """A collector's row: recording per duration, against its target."""
    return Row(
        key,
        "record {record_ns:.0f} ns per duration, metrics() {time(query_us / 1e6)}, "
        "keeps {bytes(retained_bytes)}, error {max_rel_error * 100:.2f} %",
        # no ratio against a list whose recording cost measured as nothing (below the noise)
        When("d.sort.record_ns > 0", "record {record_ns / d.sort.record_ns:.2f}"),
        targets=(
            Target(
                metric, f"{key}.record_ns", TARGET_RECORD_NS, shown="record <= {at_most:.0f} ns"
            ),
        ),
    )


SORT_RESULT = (
    "record {record_ns:.0f} ns, query {time(query_us / 1e6)}, keeps {bytes(retained_bytes)}, "
    "error {max_rel_error * 100:.2f} %"
)

SCENARIO = Scenario(
    "d",
    {
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
    },
    (
        Section(
            "d. percentiles: record {count(sizes.durations)} durations, "
            "then query p95 + p99 (one query = both)",
            (
                Row("d.sort", SORT_RESULT, "1.00"),
                Row(
                    "d.sketch",
                    SORT_RESULT,
                    "query 1/{d.sort.query_us / query_us:.0f}, "
                    "memory 1/{d.sort.retained_bytes / retained_bytes:.0f}",
                    targets=(
                        Target(
                            "sketch query us",
                            "d.sketch.query_us",
                            TARGET_QUERY_US,
                            shown="query <= {at_most:.0f} us",
                        ),
                        Target(
                            "sketch bytes kept",
                            "d.sketch.retained_bytes",
                            TARGET_SKETCH_BYTES,
                            shown="<= {bytes(at_most)}",
                        ),
                        Target(
                            "sketch relative error",
                            "d.sketch.max_rel_error",
                            TARGET_ERROR,
                            shown="error <= {at_most * 100:.0f} %",
                        ),
                    ),
                    verdicts="list",
                ),
                _collector_row("d.collector", "collector ns per duration"),
                _collector_row("d.collector.threads", "collector ns per duration, threads"),
            ),
        ),
    ),
)
