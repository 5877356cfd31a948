"""The `otel` entry point: registers the `"otel"` metrics collector, and nothing else.

It implements no observer hook, so installing tasker-otel costs nothing to managers that do
not use it. Tracing is opt-in per manager: `.with_plugins(tasker_otel.OTelTracing())`.
"""

from __future__ import annotations

from typing import Any

from tasker import hookimpl
from tasker.plugins import Registry
from tasker_otel.metrics import OTelCollector

__all__ = ["tasker_register_collectors"]


@hookimpl
def tasker_register_collectors(registry: Registry[Any]) -> None:
    """`"otel"`: `OTelCollector(meter_provider=None, manager=None, buckets=...)`."""
    registry.register("otel", OTelCollector)
