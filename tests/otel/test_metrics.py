"""The OpenTelemetry collector and the live gauges, recorded into the real SDK."""

from __future__ import annotations

import asyncio
import functools
import math
import subprocess
import sys
import threading
from importlib import metadata
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import HistogramDataPoint

import tasker_otel
from tasker import (
    MetricsCollector,
    QueueFullError,
    TaskExpiredError,
    TaskManager,
    TaskManagerBuilder,
    current_task,
)
from tasker.plugins import Plugins
from tasker.scaling import ScalingSnapshot
from tasker_otel import OTelCollector, names, observe
from tests.drivers import Driver, each_executor
from tests.helpers import builder as base_builder
from tests.helpers import wait_until
from tests.otel.conftest import Metrics, points, total, values


def builder(otel: Metrics, name: str = "jobs", workers: int = 1) -> TaskManagerBuilder[None]:
    return (
        base_builder(workers=workers)
        .with_name(name)
        .with_logger("null")
        .with_metrics("otel", meter_provider=otel.provider, manager=name)
    )


def fail_once() -> Any:
    def task(_: object) -> str:
        running = current_task()
        assert running is not None
        if running.attempt == 1:  # not a list: a child process cannot append to one
            raise ConnectionError("dropped")
        return "ok"

    return task


def echo(value: int, _: object) -> int:
    return value


def boom(_: object) -> None:
    raise KeyError("missing")


MAIN = {names.ATTR_MANAGER: "jobs", names.ATTR_QUEUE: names.QUEUE_MAIN}
PRIORITY = {names.ATTR_MANAGER: "jobs", names.ATTR_QUEUE: names.QUEUE_PRIORITY}


@each_executor
async def test_counters_by_queue_with_the_managers_name(
    driver: Driver, otel_metrics: Metrics
) -> None:
    managed = await driver.build(builder(otel_metrics))
    assert await managed.queue_task(driver.task(lambda r: 1)) == 1
    assert await managed.submit(driver.task(lambda r: 2), priority=True) == 2
    assert await managed.queue_task(driver.task(fail_once())) == "ok"  # retried once
    with pytest.raises(KeyError):
        await managed.queue_task(driver.task(boom))
    assert await managed.stop(10)

    found = otel_metrics.collect()
    assert total(found[names.TASKS_SUBMITTED], MAIN) == 3
    assert total(found[names.TASKS_SUBMITTED], PRIORITY) == 1
    assert total(found[names.TASKS_COMPLETED], MAIN) == 2
    assert total(found[names.TASKS_COMPLETED], PRIORITY) == 1
    assert total(found[names.TASKS_FAILED]) == 1
    assert total(found[names.TASKS_RETRIED]) == 1
    failed = points(found[names.TASKS_FAILED])[0].attributes
    assert failed[names.ATTR_ERROR_TYPE] == "KeyError"
    assert failed[names.ATTR_MANAGER] == "jobs"
    retried = points(found[names.TASKS_RETRIED])[0].attributes
    assert retried[names.ATTR_ERROR_TYPE] == "ConnectionError"


@each_executor
async def test_durations_are_histograms_in_seconds_with_bucket_advice(
    driver: Driver, otel_metrics: Metrics
) -> None:
    managed = await driver.build(builder(otel_metrics))
    for _ in range(3):
        await managed.queue_task(driver.task(lambda r: None))
    with pytest.raises(KeyError):
        await managed.queue_task(driver.task(boom))
    assert await managed.stop(10)

    found = otel_metrics.collect()
    duration, wait = found[names.TASK_DURATION], found[names.TASK_WAIT_TIME]
    assert duration.unit == wait.unit == "s"
    assert duration.description
    assert wait.description
    completed = {**MAIN, names.ATTR_OUTCOME: names.OUTCOME_COMPLETED}
    failed = {**MAIN, names.ATTR_OUTCOME: names.OUTCOME_FAILED, names.ATTR_ERROR_TYPE: "KeyError"}
    assert values(duration, completed) == [3]
    assert values(duration, failed) == [1]
    assert total(wait, MAIN) == 4
    for point in points(duration) + points(wait):
        assert isinstance(point, HistogramDataPoint)
        assert tuple(point.explicit_bounds) == names.DURATION_BUCKETS
        assert 0 <= point.min <= point.max < 10


def test_units_and_names_follow_the_conventions(otel_metrics: Metrics) -> None:
    instruments = {
        names.TASKS_SUBMITTED: names.UNIT_TASK,
        names.TASKS_COMPLETED: names.UNIT_TASK,
        names.TASKS_FAILED: names.UNIT_TASK,
        names.TASKS_RETRIED: names.UNIT_RETRY,
        names.TASKS_REJECTED: names.UNIT_TASK,
        names.TASKS_SHED: names.UNIT_TASK,
        names.TASK_DURATION: names.UNIT_SECONDS,
        names.TASK_WAIT_TIME: names.UNIT_SECONDS,
        names.QUEUE_DEPTH: names.UNIT_TASK,
        names.WORKER_COUNT: names.UNIT_WORKER,
        names.WORKER_BUSY: names.UNIT_WORKER,
        names.RESOURCE_AVAILABLE: names.UNIT_RESOURCE,
    }
    assert set(instruments) == set(names.METRICS)
    with (
        builder(otel_metrics).build() as manager,
        observe(manager, meter_provider=otel_metrics.provider),
    ):
        manager.queue_task(lambda r: None)
        with pytest.raises(KeyError):
            manager.queue_task(boom)
        manager.run_task(fail_once())  # one retry
        found = otel_metrics.collect()
    overload = {names.TASKS_REJECTED, names.TASKS_SHED}  # only a bounded queue records them
    assert set(found) == set(instruments) - overload
    found.update(overload_metrics(otel_metrics))
    for name, unit in instruments.items():
        assert found[name].unit == unit, name
        assert name == name.lower()
        assert name.startswith("tasker.")
        assert " " not in name
        assert not name.endswith((".total", "_total", ".count_total"))
    for unit in (names.UNIT_TASK, names.UNIT_RETRY, names.UNIT_WORKER, names.UNIT_RESOURCE):
        assert unit.startswith("{")
        assert unit.endswith("}")


def start_and_wait(started: threading.Event, gate: threading.Event, _resource: object) -> bool:
    started.set()
    return gate.wait(10)


def set_event(event: threading.Event, _future: object) -> None:
    event.set()


def overload_metrics(otel: Metrics) -> dict[str, Any]:
    """Reject one submission and shed two tasks; return the counters' metrics."""
    gate = threading.Event()
    overloaded = builder(otel, name="overloaded").with_queue_limit(2).with_max_queue_wait(0.01)
    with overloaded.build() as manager:
        # on a loaded machine the worker may take the blocking task more than 0.01 s after
        # it was queued, and shed it: submit it again until one runs, and count the shed ones
        blockers_shed = 0
        while True:
            started = threading.Event()
            blocker = manager.submit(functools.partial(start_and_wait, started, gate))
            blocker.add_done_callback(functools.partial(set_event, started))
            assert started.wait(10)
            if not blocker.done():
                break
            with pytest.raises(TaskExpiredError):
                blocker.result()
            blockers_shed += 1
        late = [manager.submit(functools.partial(echo, i)) for i in range(2)]
        with pytest.raises(QueueFullError):
            manager.submit(functools.partial(echo, 3), block=False)
        assert not gate.wait(0.03)  # the two queued tasks outlive their allowed wait
        gate.set()
        for future in late:
            with pytest.raises(TaskExpiredError):
                future.result(10)
        metrics = manager.metrics()
    found = otel.collect()
    assert metrics.total_tasks_rejected == total(found[names.TASKS_REJECTED]) == 1
    assert metrics.total_tasks_shed == total(found[names.TASKS_SHED]) == 2 + blockers_shed
    return {name: found[name] for name in (names.TASKS_REJECTED, names.TASKS_SHED)}


def test_rejections_and_shed_tasks_are_counted(otel_metrics: Metrics) -> None:
    found = overload_metrics(otel_metrics)
    shed = points(found[names.TASKS_SHED])[0].attributes
    assert shed == {names.ATTR_MANAGER: "overloaded", names.ATTR_QUEUE: names.QUEUE_MAIN}


def test_the_collector_composes_with_the_built_in_metrics(otel_metrics: Metrics) -> None:
    with builder(otel_metrics, workers=2).build() as manager:
        futures = [manager.submit(functools.partial(echo, i)) for i in range(20)]
        assert [f.result(10) for f in futures] == list(range(20))
        with pytest.raises(KeyError):
            manager.queue_task(boom)
        metrics = manager.metrics()
    found = otel_metrics.collect()
    assert metrics.total_tasks_arrived == total(found[names.TASKS_SUBMITTED]) == 21
    assert metrics.total_tasks_completed == total(found[names.TASKS_COMPLETED]) == 20
    assert metrics.total_tasks_failed == total(found[names.TASKS_FAILED]) == 1
    assert metrics.total_tasks_retried == total(found.get(names.TASKS_RETRIED)) == 0


def test_several_managers_are_told_apart(otel_metrics: Metrics) -> None:
    with (
        builder(otel_metrics, name="ingest").build() as ingest,
        builder(otel_metrics, name="export").build() as export,
    ):
        for _ in range(3):
            ingest.queue_task(lambda r: None)
        export.queue_task(lambda r: None)
    completed = otel_metrics.collect()[names.TASKS_COMPLETED]
    assert total(completed, {names.ATTR_MANAGER: "ingest"}) == 3
    assert total(completed, {names.ATTR_MANAGER: "export"}) == 1


def test_a_collector_made_by_name_learns_its_managers_name_and_observes_it(
    otel_metrics: Metrics,
) -> None:
    manager = (
        TaskManager.builder()
        .with_name("bound")
        .with_metrics("otel", meter_provider=otel_metrics.provider)
        .with_logger("null")
        .build()
    )
    with manager:
        manager.queue_task(lambda r: None)
        seen = gauges(otel_metrics)
        assert key("bound", **{names.ATTR_QUEUE: names.QUEUE_MAIN}) in seen[names.QUEUE_DEPTH]
        # observing it again by hand adds no duplicate series
        assert observe(manager, meter_provider=otel_metrics.provider).manager == "bound"
        assert len(gauges(otel_metrics)[names.QUEUE_DEPTH]) == 2
    for point in points(otel_metrics.collect()[names.TASKS_SUBMITTED]):
        assert dict(point.attributes or {})[names.ATTR_MANAGER] == "bound"


def test_gauges_can_be_left_out(otel_metrics: Metrics) -> None:
    collector = OTelCollector(meter_provider=otel_metrics.provider, gauges=False)
    with TaskManager.builder().with_metrics(collector).with_logger("null").build() as manager:
        manager.queue_task(lambda r: None)
        assert collector.observation is None
        assert names.QUEUE_DEPTH not in otel_metrics.collect()


def test_concurrent_recording_loses_nothing(otel_metrics: Metrics) -> None:
    submitters, each = 8, 200
    with builder(otel_metrics, workers=4).build() as manager:

        def submit_many() -> None:
            for future in [manager.submit(lambda r: None) for _ in range(each)]:
                future.result(10)

        threads = [threading.Thread(target=submit_many) for _ in range(submitters)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    found = otel_metrics.collect()
    assert total(found[names.TASKS_SUBMITTED]) == submitters * each
    assert total(found[names.TASKS_COMPLETED]) == submitters * each
    assert total(found[names.TASK_DURATION]) == submitters * each


def test_the_collector_satisfies_the_protocol_and_is_registered_by_name() -> None:
    assert isinstance(OTelCollector(), MetricsCollector)
    registry = Plugins().registry("collectors")
    assert "otel" in registry
    assert registry.owner("otel") == "otel"  # the entry point's name
    assert isinstance(registry.create("otel", manager="m"), OTelCollector)


def test_the_entry_point_plugin_adds_no_observer_work() -> None:
    """Installing tasker-otel costs nothing to managers that do not use it."""
    from tasker_otel import plugin

    hooks = sorted(name for name in vars(plugin) if name.startswith("tasker_"))
    assert hooks == ["tasker_register_collectors"]


def test_the_global_meter_provider_is_the_default() -> None:
    script = """
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from tasker import TaskManager

manager = TaskManager.builder().with_name("global").with_metrics("otel").build()  # before set
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
with manager:
    manager.queue_task(lambda r: None)
    manager.queue_task(lambda r: None)
data = reader.get_metrics_data()
for scope in data.resource_metrics[0].scope_metrics:
    for metric in scope.metrics:
        if metric.name == "tasker.task.completed":
            print(scope.scope.name, [p.value for p in metric.data.data_points])
"""
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert run.stdout.strip() == "tasker [2]", run.stderr


class Target:
    """A policy asking for a fixed number of workers, changeable at run time."""

    interval = 0.01

    def __init__(self, target: int) -> None:
        self.target = target

    def target_workers(self, snapshot: ScalingSnapshot) -> int:
        return self.target


def gauges(otel: Metrics) -> dict[str, dict[tuple[tuple[str, Any], ...], float]]:
    """The observed up-down counters: name -> sorted attributes -> value."""
    found = otel.collect()
    result: dict[str, dict[tuple[tuple[str, Any], ...], float]] = {}
    for name in (
        names.QUEUE_DEPTH,
        names.WORKER_COUNT,
        names.WORKER_BUSY,
        names.RESOURCE_AVAILABLE,
    ):
        metric = found.get(name)
        result[name] = {
            tuple(sorted(dict(p.attributes or {}).items())): p.value
            for p in (points(metric) if metric else [])
        }
    return result


def key(manager: str, **attributes: str) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted({names.ATTR_MANAGER: manager, **attributes}.items()))


def test_gauges_show_queues_workers_and_resources(otel_metrics: Metrics) -> None:
    policy = Target(1)
    gate, started = threading.Event(), threading.Event()
    manager = (
        TaskManager.builder()
        .with_name("gauged")
        .with_workers(1, max_workers=2)
        .with_policy(policy)
        .with_resource_pool(3)
        .with_logger("null")
        .build()
    )
    with manager, observe(manager, meter_provider=otel_metrics.provider) as observation:
        assert observation.manager == "gauged"
        blocker = manager.submit(lambda r: (started.set(), gate.wait(10)))
        assert started.wait(10)
        queued = [manager.submit(lambda r: None) for _ in range(2)]
        urgent = manager.submit(lambda r: None, priority=True)
        seen = gauges(otel_metrics)
        assert seen[names.QUEUE_DEPTH] == {
            key("gauged", **{names.ATTR_QUEUE: names.QUEUE_MAIN}): 2,
            key("gauged", **{names.ATTR_QUEUE: names.QUEUE_PRIORITY}): 1,
        }
        assert seen[names.WORKER_COUNT] == {
            key("gauged", **{names.ATTR_WORKER_KIND: names.WORKER_BASE}): 1,
            key("gauged", **{names.ATTR_WORKER_KIND: names.WORKER_BURST}): 0,
        }
        assert seen[names.WORKER_BUSY] == {key("gauged"): 1}
        assert seen[names.RESOURCE_AVAILABLE] == {key("gauged"): 3}

        policy.target = 2  # a burst worker joins and drains the queues
        assert wait_until(lambda: manager.stats().burst_workers == 1)
        seen = gauges(otel_metrics)
        assert seen[names.WORKER_COUNT][key("gauged", **{names.ATTR_WORKER_KIND: "burst"})] == 1
        gate.set()
        for done in [*queued, urgent]:
            done.result(10)
        blocker.result(10)
        assert wait_until(lambda: manager.stats().busy_workers == 0)
        seen = gauges(otel_metrics)
        assert sum(seen[names.QUEUE_DEPTH].values()) == 0
        assert seen[names.WORKER_BUSY] == {key("gauged"): 0}


def test_a_stopped_or_closed_manager_is_no_longer_observed(otel_metrics: Metrics) -> None:
    first = TaskManager.builder().with_name("first").with_logger("null").build()
    second = TaskManager.builder().with_name("second").with_logger("null").build()
    observe(first, meter_provider=otel_metrics.provider)
    observed = observe(second, meter_provider=otel_metrics.provider)
    managers = {dict(k)[names.ATTR_MANAGER] for k in gauges(otel_metrics)[names.WORKER_BUSY]}
    assert managers == {"first", "second"}
    first.stop()
    observed.close()
    observed.close()  # idempotent
    assert gauges(otel_metrics)[names.WORKER_BUSY] == {}
    second.stop()


def test_gauges_observe_an_async_manager(otel_metrics: Metrics) -> None:
    async def scenario() -> dict[str, dict[tuple[tuple[str, Any], ...], float]]:
        started, gate = asyncio.Event(), asyncio.Event()

        async def hold(_: None) -> None:
            started.set()
            await gate.wait()

        async def noop(_: None) -> None:
            return None

        async with (
            TaskManager.builder()
            .with_name("aio")
            .with_logger("null")
            .with_executor("asyncio")
            .build() as manager
        ):
            held = manager.submit(hold)
            await asyncio.wait_for(started.wait(), 10)
            queued = manager.submit(noop)
            with observe(manager, meter_provider=otel_metrics.provider):
                # collected from another thread, as a metric reader's thread would
                seen = await asyncio.to_thread(gauges, otel_metrics)
            gate.set()
            await asyncio.wait_for(asyncio.gather(held, queued), 10)
        return seen

    seen = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert seen[names.QUEUE_DEPTH][key("aio", **{names.ATTR_QUEUE: "main"})] == 1
    assert seen[names.WORKER_BUSY] == {key("aio"): 1}


def test_the_package_says_what_it_is() -> None:
    assert tasker_otel.__version__ == metadata.version("tasker-otel")
    for name in tasker_otel.__all__:
        assert getattr(tasker_otel, name).__doc__, name


@pytest.mark.parametrize(
    "buckets", [[], [math.nan], [math.inf], [-1.0], [True], [0.1, 0.1], [0.2, 0.1], ["1"]]
)
def test_bucket_boundaries_are_finite_and_increasing(buckets: list[Any]) -> None:
    with pytest.raises(ValueError, match="buckets must be"):
        OTelCollector(buckets=buckets)


def test_gauges_is_a_flag() -> None:
    with pytest.raises(TypeError, match="gauges must be True or False"):
        OTelCollector(gauges="no")  # type: ignore[arg-type]
