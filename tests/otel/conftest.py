"""OpenTelemetry fixtures: a real SDK meter provider and tracer provider, read in memory."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@dataclass
class Metrics:
    """A meter provider and the reader that collects it."""

    provider: MeterProvider
    reader: InMemoryMetricReader

    def collect(self) -> dict[str, Metric]:
        """Every metric of the last collection, by name."""
        data = self.reader.get_metrics_data()
        if data is None:
            return {}
        return {
            metric.name: metric
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }


def points(metric: Metric) -> list[Any]:
    """The data points of a metric."""
    return list(metric.data.data_points)


def values(metric: Metric, match: Mapping[str, object] | None = None) -> list[float]:
    """Values (sums, or histogram counts) of the points whose attributes include `match`."""
    found: list[float] = []
    for point in points(metric):
        attributes = dict(point.attributes or {})
        if all(attributes.get(key) == value for key, value in (match or {}).items()):
            if isinstance(point, HistogramDataPoint):
                found.append(point.count)
            else:
                assert isinstance(point, NumberDataPoint)
                found.append(point.value)
    return found


def total(metric: Metric | None, match: Mapping[str, object] | None = None) -> float:
    """The sum of `values(metric, match)`; 0 for a metric never recorded."""
    return 0.0 if metric is None else sum(values(metric, match))


@pytest.fixture
def otel_metrics() -> Iterator[Metrics]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield Metrics(provider, reader)
    provider.shutdown()


@dataclass
class Traces:
    """A tracer provider exporting synchronously to memory."""

    provider: TracerProvider
    exporter: InMemorySpanExporter

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans() if span.name == name]


@pytest.fixture
def otel_traces() -> Iterator[Traces]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Traces(provider, exporter)
    provider.shutdown()
