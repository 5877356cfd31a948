"""A span per task attempt, parented by the submitter's span, recorded by the real SDK."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from tasker import TaskManagerBuilder, current_task
from tasker_otel import OTelTracing, names
from tests.drivers import Driver, each_executor
from tests.helpers import builder as base_builder
from tests.otel.conftest import Traces


def builder(traces: Traces) -> TaskManagerBuilder[None]:
    return (
        base_builder()
        .with_name("traced")
        .with_plugins(OTelTracing(tracer_provider=traces.provider))
        .with_logger("null")
    )


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    context = span.get_span_context()
    assert context is not None
    return context.span_id


def attempt_of(span: ReadableSpan) -> int:
    attempt = dict(span.attributes or {})[names.ATTR_ATTEMPT]
    assert isinstance(attempt, int)
    return attempt


def trace_id(span: ReadableSpan) -> int:
    context = span.get_span_context()
    assert context is not None
    return context.trace_id


@each_executor
async def test_the_attempt_span_is_a_child_of_the_submitters_span_and_current_in_the_task(
    driver: Driver, otel_traces: Traces
) -> None:
    tracer = otel_traces.provider.get_tracer("app")
    managed = await driver.build(builder(otel_traces))

    def work(_: None) -> str:
        with tracer.start_as_current_span("inside"):
            return "done"

    with tracer.start_as_current_span("request") as request:
        assert await managed.queue_task(driver.task(work)) == "done"
        assert trace.get_current_span() is request  # nothing leaked back into the caller
    assert await managed.stop(10)

    (outer,) = otel_traces.named("request")
    (attempt,) = otel_traces.named(names.SPAN_TASK)
    (inside,) = otel_traces.named("inside")
    assert parent_id(inside) == span_id(attempt)
    assert parent_id(attempt) == span_id(outer)
    assert trace_id(inside) == trace_id(attempt) == trace_id(outer)
    assert attempt.kind is SpanKind.INTERNAL
    assert attempt.status.status_code is StatusCode.UNSET
    attributes = dict(attempt.attributes or {})
    assert attributes[names.ATTR_MANAGER] == "traced"
    assert attributes[names.ATTR_TASK_ID] == 1
    assert attributes[names.ATTR_ATTEMPT] == 1
    assert attributes[names.ATTR_QUEUE] == names.QUEUE_MAIN
    assert attributes[names.ATTR_WORKER_ID] == 1
    assert attributes[names.ATTR_ONCE] is False
    assert attempt.instrumentation_scope is not None
    assert attempt.instrumentation_scope.name == names.INSTRUMENTATION_SCOPE


@each_executor
async def test_a_failed_attempt_records_its_exception(driver: Driver, otel_traces: Traces) -> None:
    managed = await driver.build(builder(otel_traces))

    def boom(_: None) -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError):
        await managed.submit(driver.task(boom), priority=True)
    assert await managed.stop(10)
    (attempt,) = otel_traces.named(names.SPAN_TASK)
    assert attempt.status.status_code is StatusCode.ERROR
    assert attempt.status.description is not None
    assert "KeyError" in attempt.status.description
    assert dict(attempt.attributes or {})[names.ATTR_ERROR_TYPE] == "KeyError"
    assert dict(attempt.attributes or {})[names.ATTR_QUEUE] == names.QUEUE_PRIORITY
    (event,) = attempt.events
    assert event.name == "exception"
    assert dict(event.attributes or {})["exception.type"] == "KeyError"


@each_executor
async def test_retries_are_sibling_spans_linked_to_the_attempt_before(
    driver: Driver, otel_traces: Traces
) -> None:
    tracer = otel_traces.provider.get_tracer("app")
    managed = await driver.build(builder(otel_traces))

    def flaky(_: None) -> str:
        task = current_task()
        assert task is not None
        if task.attempt < 3:  # the attempt, not a list: a child process cannot append to one
            raise ConnectionError("dropped")
        return "ok"

    with tracer.start_as_current_span("request"):
        assert await managed.queue_task(driver.task(flaky)) == "ok"
    assert await managed.stop(10)

    (outer,) = otel_traces.named("request")
    attempts = sorted(otel_traces.named(names.SPAN_TASK), key=attempt_of)
    assert [attempt_of(s) for s in attempts] == [1, 2, 3]
    assert {parent_id(s) for s in attempts} == {span_id(outer)}
    assert [s.status.status_code for s in attempts] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    assert [dict(s.attributes or {})[names.ATTR_WORKER_ID] for s in attempts] == [1, 2, 3]
    assert list(attempts[0].links) == []
    for before, after in itertools.pairwise(attempts):
        (link,) = after.links
        assert link.context.span_id == span_id(before)


@each_executor
async def test_run_task_spans_have_no_worker(driver: Driver, otel_traces: Traces) -> None:
    tracer = otel_traces.provider.get_tracer("app")
    managed = await driver.build(builder(otel_traces))
    with tracer.start_as_current_span("caller"):
        assert await managed.run_task(driver.task(lambda r: 7)) == 7
    assert await managed.stop(10)
    (outer,) = otel_traces.named("caller")
    (attempt,) = otel_traces.named(names.SPAN_TASK)
    assert parent_id(attempt) == span_id(outer)
    assert names.ATTR_WORKER_ID not in dict(attempt.attributes or {})


def test_a_task_submitted_outside_any_span_starts_a_trace(otel_traces: Traces) -> None:
    with builder(otel_traces).build() as manager:
        manager.queue_task(lambda r: None)
        inner = manager.submit(lambda r: manager.submit(lambda r2: None))
        inner.result(10).result(10)
    spans = otel_traces.named(names.SPAN_TASK)
    assert len(spans) == 3
    by_task = {dict(s.attributes or {})[names.ATTR_TASK_ID]: s for s in spans}
    assert by_task[1].parent is None
    assert by_task[2].parent is None
    assert parent_id(by_task[3]) == span_id(by_task[2])  # submitted from inside task 2
    assert list(by_task[3].links) == []


def test_the_global_tracer_provider_is_the_default() -> None:
    script = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tasker import TaskManager
from tasker_otel import OTelTracing

tracing = OTelTracing()  # made before the application sets its provider
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
with TaskManager.builder().with_plugins(tracing).build() as manager:
    manager.queue_task(lambda r: None)
print([span.name for span in exporter.get_finished_spans()])
"""
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert run.stdout.strip() == "['tasker.task']", run.stderr


def test_the_tracing_plugin_implements_only_the_attempt_hook() -> None:
    hooks = sorted(name for name in dir(OTelTracing) if name.startswith("tasker_"))
    assert hooks == ["tasker_task_attempt_context"]
