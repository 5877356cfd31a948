"""The OpenTelemetry adapter over the process executor: metrics, gauges and spans."""

from __future__ import annotations

import os

import pytest
from opentelemetry.trace import StatusCode

from tasker import TaskManagerBuilder, current_task
from tasker_otel import OTelTracing, names, observe
from tests.helpers import builder as base_builder
from tests.otel.conftest import Metrics, Traces, total

pytestmark = pytest.mark.timeout(120)

MAIN = {names.ATTR_MANAGER: "procs", names.ATTR_QUEUE: names.QUEUE_MAIN}


def pid(_: object) -> int:
    return os.getpid()


def fails_first(_: object) -> str:
    task = current_task()
    assert task is not None
    if task.attempt == 1:
        raise ConnectionError("dropped")  # unhealthy: a fresh child, a retry
    return "ok"


def boom(_: object) -> None:
    raise KeyError("missing")


def builder() -> TaskManagerBuilder[None]:
    return base_builder().with_name("procs").with_executor("process").with_logger("null")


def test_metrics_and_gauges_count_process_tasks(otel_metrics: Metrics) -> None:
    manager = builder().with_metrics("otel", meter_provider=otel_metrics.provider).build()
    with manager, observe(manager, meter_provider=otel_metrics.provider):
        assert manager.queue_task(pid) != os.getpid()
        assert manager.queue_task(fails_first) == "ok"
        with pytest.raises(KeyError):
            manager.queue_task(boom)
        found = otel_metrics.collect()
        assert total(found[names.WORKER_COUNT]) == 1
    assert total(found[names.TASKS_SUBMITTED], MAIN) == 3
    assert total(found[names.TASKS_COMPLETED], MAIN) == 2
    assert total(found[names.TASKS_FAILED]) == 1
    assert total(found[names.TASKS_RETRIED]) == 1
    metrics = manager.metrics()
    assert (metrics.total_tasks_completed, metrics.total_tasks_failed) == (2, 1)
    assert manager.stats().active_workers == 0


def test_an_attempt_span_covers_each_round_trip_under_the_submitters_span(
    otel_traces: Traces,
) -> None:
    tracer = otel_traces.provider.get_tracer("app")
    manager = builder().with_plugins(OTelTracing(tracer_provider=otel_traces.provider)).build()
    with manager, tracer.start_as_current_span("request"):
        assert manager.queue_task(fails_first) == "ok"
        with pytest.raises(KeyError):
            manager.queue_task(boom)
    (request,) = otel_traces.named("request")
    request_context = request.get_span_context()
    assert request_context is not None
    attempts = otel_traces.named(names.SPAN_TASK)
    assert len(attempts) == 3  # two attempts of the first task, one of the second
    for span in attempts:
        assert span.parent is not None
        assert span.parent.span_id == request_context.span_id
    assert [span.status.status_code for span in attempts] == [
        StatusCode.ERROR,
        StatusCode.UNSET,
        StatusCode.ERROR,
    ]
