"""Metrics: bounded memory, percentiles within 1 %, rates over a recent window."""

from __future__ import annotations

import math
import random
import sys
import threading
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasker import InMemoryCollector, QuantileSketch, TaskManager
from tasker.metrics import _BACKLOG, COMPLETED, FAILED, RETRIED


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Info:
    task_id = 1
    priority = False
    once = False
    attempt = 1


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


# hypothesis tests are module functions: pytest-repeat re-instantiates test classes
@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=1e-6, max_value=1e3, allow_nan=False), min_size=1, max_size=2000),
    st.sampled_from([0.0, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0]),
)
def test_quantiles_are_within_one_percent(values: list[float], q: float) -> None:
    sketch = QuantileSketch(0.01)
    for v in values:
        sketch.add(v)
    want = exact(values, q)
    assert abs(sketch.quantile(q) - want) <= 0.01 * want + 1e-12


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=0, max_value=2**32), st.sampled_from(["lognormal", "pareto"]))
def test_heavy_tailed_distributions(seed: int, shape: str) -> None:
    rng = random.Random(seed)
    if shape == "lognormal":
        values = [rng.lognormvariate(-7, 2) for _ in range(3000)]
    else:
        values = [1e-4 * rng.paretovariate(1.5) for _ in range(3000)]
    sketch = QuantileSketch()
    for v in values:
        sketch.add(v)
    for q, got in zip((0.5, 0.95, 0.99), sketch.quantiles((0.5, 0.95, 0.99)), strict=True):
        want = exact(values, q)
        assert abs(got - want) <= 0.01 * want


# values of every kind: tiny, huge, zero, negative, infinite, and whatever floats hypothesis finds
any_values = st.lists(
    st.one_of(
        st.floats(min_value=1e-6, max_value=1e3),
        st.floats(allow_nan=False),
        st.sampled_from([0.0, -0.0, 1e-12, 86_400.0, 1e6, 3.5e38, math.inf]),
    ),
    min_size=1,
    max_size=600,
)


@settings(max_examples=60, deadline=None)
@given(any_values, st.sampled_from([0.0, 0.01, 0.5, 0.9, 0.99, 1.0]))
def test_add_many_is_add_in_bulk_and_within_one_percent(values: list[float], q: float) -> None:
    one, bulk = QuantileSketch(), QuantileSketch()
    for v in values:
        one.add(v)
    bulk.add_many(values[:7])
    bulk.add_many(values[7:])
    assert one.count == bulk.count == len(values)
    assert one.quantile(q) == bulk.quantile(q)
    assert (one.min, one.max) == (bulk.min, bulk.max) == (min(values), max(values))
    want = exact(values, q)
    got = bulk.quantile(q)
    if 1e-9 <= want <= 86_400:
        assert abs(got - want) <= 0.01 * want
    elif abs(got - want) > 0.01 * abs(want):  # beyond the range, up to the nearest end of it
        assert got == (1e-9 if want < 1e-9 else 86_400.0)


@settings(max_examples=60, deadline=None)
@given(
    any_values,
    st.lists(st.integers(min_value=0, max_value=600), max_size=20),
    st.sampled_from([0.01, 0.001]),
)
def test_nan_of_either_sign_is_ignored(
    values: list[float], where: list[int], accuracy: float
) -> None:
    mixed = list(values)
    for i, at in enumerate(where):
        mixed.insert(at % (len(mixed) + 1), math.copysign(math.nan, -1.0 if i % 2 else 1.0))
    one, bulk, clean = (QuantileSketch(accuracy) for _ in range(3))
    for v in mixed:
        one.add(v)
    bulk.add_many(mixed[:5])
    bulk.add_many(mixed[5:])
    clean.add_many(values)
    qs = [i / 50 for i in range(51)] + [0.99, 0.999]
    for sketch in (one, bulk):
        assert sketch.count == len(values)
        assert (sketch.min, sketch.max) == (min(values), max(values))
        assert sketch.quantiles(qs) == clean.quantiles(qs)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.floats(min_value=1e-6, max_value=1e3), min_size=1, max_size=300),
    st.sampled_from([0.3, 0.05, 0.003, 0.0005]),
)
def test_every_accuracy_holds_its_bound(values: list[float], accuracy: float) -> None:
    sketch = QuantileSketch(accuracy)
    assert sketch.relative_accuracy <= accuracy
    sketch.add_many(values)
    for q in (0.0, 0.5, 0.99, 1.0):
        want = exact(values, q)
        assert abs(sketch.quantile(q) - want) <= sketch.relative_accuracy * want


class TestSketch:
    def test_memory_does_not_grow_with_the_count(self) -> None:
        tracemalloc.start()
        try:
            sketch = QuantileSketch()
            allocated = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        size = sketch.nbytes
        assert size <= allocated <= 32 * 1024  # the buckets and every object holding them
        values = [(i % 997 + 1) * 1e-5 for i in range(200_000)]
        for v in values:
            sketch.add(v)
        sketch.add_many([1e-3] * 100_000)  # one bucket's byte wraps hundreds of times
        values += [1e-3] * 100_000
        assert sketch.nbytes == size
        assert sketch.count == 300_000
        for q in (0.1, 0.5, 0.9, 1.0):
            assert sketch.quantile(q) == pytest.approx(exact(values, q), rel=0.01)

    def test_counts_past_a_byte_and_past_32_bits(self) -> None:
        sketch = QuantileSketch()
        sketch.add_many([0.5] * 1000 + [2.0] * 10)
        assert sketch.quantiles((0.5, 0.995, 1.0)) == pytest.approx([0.5, 2.0, 2.0], rel=0.01)
        # a bucket that has carried 2**32 times (2**40 values) widens its carry counts
        index = max(range(len(sketch._high)), key=sketch._high.__getitem__)
        sketch._high[index] = 2**32 - 1
        sketch.add_many([0.5] * 256)
        assert sketch._high.typecode == "Q"
        assert sketch._high[index] == 2**32

    def test_values_outside_the_range(self) -> None:
        sketch = QuantileSketch()
        sketch.add_many([-1.0, 0.0, 1e-12, math.inf, 1e300, -1e300, 5.0])
        assert sketch.count == 7
        assert sketch.quantiles((0.0, 0.5, 0.7, 1.0)) == pytest.approx(
            [1e-9, 1e-9, 5.0, 86_400.0], rel=0.01
        )
        assert (sketch.min, sketch.max) == (-1e300, math.inf)

    def test_nan_is_ignored(self) -> None:
        sketch = QuantileSketch()
        sketch.add_many([math.nan, 5.0, 0.25])
        assert (sketch.count, sketch.min, sketch.max) == (2, 0.25, 5.0)
        assert sketch.quantiles((0.0, 1.0)) == pytest.approx([0.25, 5.0], rel=0.01)
        sketch = QuantileSketch()
        sketch.add(math.nan)
        assert sketch.count == 0
        sketch.add(2.0)
        assert (sketch.count, sketch.min, sketch.max) == (1, 2.0, 2.0)
        # a NaN with its sign bit set is a NaN like any other, not a value below the range
        sketch = QuantileSketch()
        sketch.add_many([-math.nan, 1.0, math.copysign(math.nan, -1.0)])
        assert (sketch.count, sketch.min, sketch.max) == (1, 1.0, 1.0)
        assert sketch.quantile(0.0) == pytest.approx(1.0, rel=0.01)
        # NaN in a batch that holds no new minimum or maximum
        sketch.add_many([1.5, math.nan, 1.25])
        assert (sketch.count, sketch.min, sketch.max) == (3, 1.0, 1.5)
        assert sketch.quantile(1.0) == pytest.approx(1.5, rel=0.01)
        # nothing but NaN records nothing
        sketch = QuantileSketch()
        sketch.add_many([math.nan, -math.nan])
        sketch.add(math.nan)
        assert sketch.count == 0
        assert math.isnan(sketch.min)
        assert math.isnan(sketch.max)
        assert math.isnan(sketch.quantile(0.5))

    def test_range_must_fit_the_buckets(self) -> None:
        for kwargs in (
            {"min_value": 1e-40},
            {"min_value": 2.0**-126},
            {"max_value": 1e39},
            {"max_value": 2.0**127},
            {"max_value": math.inf},
        ):
            (name,) = kwargs
            with pytest.raises(ValueError, match=rf"{name} must lie in \[2\*\*-125, 2\*\*127\)"):
                QuantileSketch(**kwargs)
        # the widest range accepted keeps its accuracy up to both ends
        sketch = QuantileSketch(min_value=2.0**-125, max_value=math.nextafter(2.0**127, 0.0))
        values = [2.0**-125, 3e-38, 1.0, 1e38, 1.7e38]
        sketch.add_many(values)
        for q in (0.0, 0.25, 0.5, 0.75, 1.0):
            assert sketch.quantile(q) == pytest.approx(exact(values, q), rel=0.01)

    def test_empty_sketch_and_bad_quantiles(self) -> None:
        sketch = QuantileSketch()
        assert math.isnan(sketch.quantile(0.5))
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            sketch.quantile(1.5)

    def test_merge(self) -> None:
        a, b = QuantileSketch(), QuantileSketch()
        for i in range(1, 101):
            (a if i % 2 else b).add(i / 1000)
        a.merge(b)
        assert a.count == 100
        assert abs(a.quantile(0.5) - 0.050) <= 0.01 * 0.050
        assert (a.min, a.max) == (0.001, 0.1)

    def test_merge_carries_like_recording_everything_in_one(self) -> None:
        rng = random.Random(7)
        values = [rng.lognormvariate(-9, 1) for _ in range(20_000)] + [1e-4] * 700
        a, b, whole = QuantileSketch(), QuantileSketch(), QuantileSketch()
        a.add_many(values[::2])
        b.add_many(values[1::2])
        whole.add_many(values)
        a.merge(b)
        assert (a._low, a._high, a._carries) == (whole._low, whole._high, whole._carries)
        with pytest.raises(ValueError, match="same parameters"):
            a.merge(QuantileSketch(0.05))

    @pytest.mark.parametrize("repeat", [200, 1000])
    def test_merging_itself_or_its_equal_is_recording_everything_twice(self, repeat: int) -> None:
        values = [0.5] * repeat + [2.0] * 10  # the byte of 0.5's bucket wraps when doubled
        qs = (0.5, 0.96, 0.99, 0.996, 1.0)
        twice = QuantileSketch()
        twice.add_many(values + values)
        same, equal, other = QuantileSketch(), QuantileSketch(), QuantileSketch()
        for sketch in (same, equal, other):
            sketch.add_many(values)
        same.merge(same)
        equal.merge(other)
        for sketch in (same, equal):
            assert sketch.count == twice.count == 2 * len(values)
            assert sketch.quantiles(qs) == twice.quantiles(qs)
            assert (sketch.min, sketch.max) == (0.5, 2.0)
            assert (sketch._low, sketch._high, sketch._carries) == (
                twice._low,
                twice._high,
                twice._carries,
            )
        for q in qs:
            assert same.quantile(q) == pytest.approx(exact(values + values, q), rel=0.01)

    def test_clear(self) -> None:
        sketch = QuantileSketch()
        sketch.add_many([0.001] * 1000)
        sketch.clear()
        assert sketch.count == 0
        assert math.isnan(sketch.quantile(0.5))
        assert math.isnan(sketch.min)
        sketch.add(0.25)
        assert sketch.quantile(0.5) == pytest.approx(0.25, rel=0.01)
        assert sketch.min == sketch.max == 0.25


class TestCollector:
    def test_totals_rates_and_success_rate(self) -> None:
        clock = FakeClock()
        c = InMemoryCollector(clock=clock)
        for _ in range(10):
            c.record_arrival(Info())
        for _ in range(8):
            c.record_attempt(0.001, 0.010, COMPLETED)
        c.record_attempt(0.001, 0.020, RETRIED)
        c.record_attempt(0.001, 0.030, FAILED)
        clock.now += 0.5
        m = c.metrics()
        assert (m.total_tasks_arrived, m.total_tasks_completed) == (10, 8)
        assert (m.total_tasks_failed, m.total_tasks_retried) == (1, 1)
        assert m.success_rate == pytest.approx(8 / 9)
        assert m.failure_rate == pytest.approx(1 / 9)
        assert m.task_arrival_rate == pytest.approx(10 / 0.5)
        assert m.min_execution_time == pytest.approx(0.010)
        assert m.max_execution_time == pytest.approx(0.030)
        assert m.p50_execution_time == pytest.approx(0.010, rel=0.01)

    def test_rates_fall_to_zero_after_the_load_stops(self) -> None:
        clock = FakeClock()
        c = InMemoryCollector(window=1.0, clock=clock)
        for _ in range(50):  # 10 s of steady load at 100 tasks/s, observed every 100 ms
            for _ in range(10):
                c.record_arrival(Info())
                c.record_completion(Info(), 0.01)
            clock.now += 0.1
            c.rates()
        arrival, completion = c.rates()
        assert arrival == pytest.approx(100, rel=0.15)
        assert completion == pytest.approx(100, rel=0.15)
        for _ in range(15):  # 1.5 s idle
            clock.now += 0.1
            c.rates()
        assert c.rates() == (0.0, 0.0)

    def test_recent_activity_covers_the_window_only(self) -> None:
        clock = FakeClock()
        c = InMemoryCollector(window=1.0, clock=clock)
        for _ in range(10):  # an old second: slow successes
            c.record_attempt(0.0, 0.5, COMPLETED)
            clock.now += 0.1
            c.recent()
        for _ in range(10):  # the last second: fast successes, one in five attempts raising
            c.record_attempt(0.0, 0.01, COMPLETED)
            c.record_attempt(0.0, 0.01, COMPLETED)
            c.record_attempt(0.0, 0.01, COMPLETED)
            c.record_attempt(0.0, 9.0, FAILED)  # a failure's run time is not a success's
            c.record_attempt(0.0, 0.0, RETRIED)
            clock.now += 0.1
            c.recent()
        recent = c.recent(window=1.0)
        assert recent.execution_time == pytest.approx(0.01)
        assert recent.error_ratio == pytest.approx(2 / 5)
        assert recent.completion_rate == pytest.approx(40, rel=0.15)  # successes and failures
        assert c.rates(window=1.0) == (recent.arrival_rate, recent.completion_rate)

    def test_recent_activity_is_zero_when_nothing_ended(self) -> None:
        clock = FakeClock()
        c = InMemoryCollector(clock=clock)
        clock.now += 0.5
        recent = c.recent()
        assert (recent.execution_time, recent.error_ratio) == (0.0, 0.0)

    def test_protocol_methods_match_record_attempt(self) -> None:
        c = InMemoryCollector()
        c.record_start(Info(), 0.5)
        c.record_completion(Info(), 0.25)
        c.record_failure(Info(), 0.75, ValueError())
        c.record_retry(Info(), ValueError())
        m = c.metrics()
        assert m.average_wait_time == pytest.approx(0.5)
        assert m.average_execution_time == pytest.approx(0.5)
        assert m.total_tasks_retried == 1

    def test_memory_is_bounded_whatever_the_task_count(self) -> None:
        import tracemalloc

        c = InMemoryCollector()
        c.record_attempt(0.001, 0.001, COMPLETED)
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for i in range(50_000):
            c.record_attempt(i * 1e-6, (i % 1000 + 1) * 1e-5, COMPLETED)
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
        assert grown < 16 * 1024

    @pytest.mark.gil
    def test_concurrent_recording_loses_nothing(self) -> None:
        c = InMemoryCollector()

        def hammer() -> None:
            for _ in range(5000):
                c.record_arrival(Info())
                c.record_attempt(0.0, 0.001, COMPLETED)

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        m = c.metrics()
        assert m.total_tasks_arrived == m.total_tasks_completed == 20_000

    @pytest.mark.gil
    def test_threads_recording_and_reading_at_once_lose_no_event(self) -> None:
        # every duration is a multiple of 2**-10 s, so every sum is exact in any order
        threads, attempts = 6, 15_000
        c = InMemoryCollector()
        start = threading.Barrier(threads + 2)
        done = threading.Event()

        def record(t: int) -> None:
            start.wait()
            for i in range(attempts):
                c.record_arrival(Info())
                execution = (t * attempts + i + 1) / 1024
                c.record_attempt(i / 1024, execution, (COMPLETED, FAILED, RETRIED)[i % 3])
                if i % 10 == 0:
                    c.record_start(Info(), 1 / 1024)
                    c.record_completion(Info(), 1 / 1024)
                    c.record_failure(Info(), 2 / 1024, ValueError())
                    c.record_retry(Info(), ValueError())

        def read() -> None:  # queries fold too, racing with the recorders' folds
            start.wait()
            while not done.is_set():
                c.metrics()
                c.rates()

        workers = [threading.Thread(target=record, args=(t,)) for t in range(threads)]
        readers = [threading.Thread(target=read) for _ in range(2)]
        switch = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads as often as possible
        try:
            for thread in workers + readers:
                thread.start()
            for thread in workers:
                thread.join()
        finally:
            done.set()
            for thread in readers:
                thread.join()
            sys.setswitchinterval(switch)
        m = c.metrics()

        extra = threads * len(range(0, attempts, 10))  # each of the four protocol calls
        per_outcome = threads * attempts // 3
        assert m.total_tasks_arrived == threads * attempts
        assert m.total_tasks_completed == per_outcome + extra
        assert m.total_tasks_failed == per_outcome + extra
        assert m.total_tasks_retried == per_outcome + extra
        executions = [
            (t * attempts + i + 1) / 1024
            for t in range(threads)
            for i in range(attempts)
            if i % 3 != 2
        ] + [1 / 1024, 2 / 1024] * extra
        waits = [i / 1024 for _ in range(threads) for i in range(attempts)] + [1 / 1024] * extra
        assert m.min_execution_time == 1 / 1024
        assert m.max_execution_time == max(executions)
        assert m.average_execution_time == sum(executions) / len(executions)
        assert m.average_wait_time == sum(waits) / len(waits)
        assert m.p50_execution_time == pytest.approx(exact(executions, 0.5), rel=0.01)
        assert m.p99_wait_time == pytest.approx(exact(waits, 0.99), rel=0.01)

    @pytest.mark.gil
    def test_buffers_stay_bounded_while_a_fold_is_under_way(self) -> None:
        c = InMemoryCollector()
        held, release = threading.Event(), threading.Event()

        def fold_for_long() -> None:  # stands for a folding thread the GIL has paused
            with c._lock:
                held.set()
                release.wait()

        holder = threading.Thread(target=fold_for_long)
        holder.start()
        held.wait()
        for _ in range(_BACKLOG - 1):  # every batch finds the fold busy: the buffers grow
            c.record_attempt(0.001, 0.002, COMPLETED)
        assert len(c._waits) == len(c._completions) == _BACKLOG - 1
        release.set()
        c.record_attempt(0.001, 0.002, COMPLETED)  # the backlog is full: wait, then fold
        holder.join()
        assert c._waits == c._completions == []
        assert c.metrics().total_tasks_completed == _BACKLOG

    def test_buffers_are_folded_by_queries(self) -> None:
        c = InMemoryCollector()
        c.record_attempt(0.002, 0.004, COMPLETED)
        c.record_attempt(0.001, 0.008, FAILED)
        c.record_arrival(Info())
        m = c.metrics()  # well under one batch: the query folds them
        assert (m.total_tasks_arrived, m.total_tasks_completed, m.total_tasks_failed) == (1, 1, 1)
        assert (m.min_execution_time, m.max_execution_time) == (0.004, 0.008)
        assert m.average_wait_time == pytest.approx(0.0015)
        empty = InMemoryCollector().metrics()
        assert (empty.min_execution_time, empty.max_execution_time) == (0.0, 0.0)


class TestManagerMetrics:
    def test_metrics_count_a_task_before_its_caller_sees_the_result(self) -> None:
        with TaskManager.builder().with_workers(2).build() as manager:
            for i in range(200):
                manager.queue_task(lambda r: None)
                assert manager.metrics().total_tasks_completed == i + 1

    def test_collectors_and_loggers_that_ask_are_bound_to_their_manager(self) -> None:
        class Binding:
            def __init__(self) -> None:
                self.bound: list[str] = []

            def bind(self, manager: TaskManager[None]) -> None:
                self.bound.append(f"{manager.name}:{manager.stats().active_workers}")

            def record_arrival(self, task: object) -> None: ...
            def record_start(self, task: object, wait_time: float) -> None: ...
            def record_completion(self, task: object, execution_time: float) -> None: ...
            def record_failure(
                self, task: object, execution_time: float, error: BaseException
            ) -> None: ...
            def record_retry(self, task: object, error: BaseException) -> None: ...
            def log(self, level: int, event: str, /, **fields: object) -> None: ...

        class Broken(Binding):
            def bind(self, manager: TaskManager[None]) -> None:
                raise RuntimeError("bind bug")

        collector, logger = Binding(), Binding()
        manager = (
            TaskManager.builder()
            .with_name("bound")
            .with_metrics(Broken())
            .with_metrics(collector)
            .with_logger(logger)
            .build()
        )
        with manager:
            assert manager.queue_task(lambda r: 1) == 1  # a failing bind breaks nothing
        assert collector.bound == ["bound:1"]
        assert logger.bound == ["bound:1"]

    def test_custom_collectors_receive_every_event_and_failures_are_isolated(self) -> None:
        class Recorder:
            def __init__(self) -> None:
                self.calls: list[str] = []

            def record_arrival(self, task: object) -> None:
                self.calls.append("arrival")

            def record_start(self, task: object, wait_time: float) -> None:
                self.calls.append("start")

            def record_completion(self, task: object, execution_time: float) -> None:
                self.calls.append("completion")

            def record_failure(
                self, task: object, execution_time: float, error: BaseException
            ) -> None:
                self.calls.append("failure")

            def record_retry(self, task: object, error: BaseException) -> None:
                self.calls.append("retry")

        class Broken(Recorder):
            def record_completion(self, task: object, execution_time: float) -> None:
                raise RuntimeError("collector bug")

        good, bad = Recorder(), Broken()
        in_flight: list[list[str]] = []
        manager = TaskManager.builder().with_metrics(bad).with_metrics(good).build()
        with manager:
            assert manager.queue_task(lambda r: in_flight.append(list(good.calls))) is None
            with pytest.raises(ValueError, match="invalid literal"):
                manager.queue_task(lambda r: int("not a number"))
            assert manager.metrics().total_tasks_completed == 1
        assert in_flight == [["arrival", "start"]]  # record_start comes as the attempt begins
        assert good.calls == ["arrival", "start", "completion", "arrival", "start", "failure"]
