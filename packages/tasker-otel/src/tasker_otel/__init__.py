"""OpenTelemetry metrics and traces for tasker.

- `OTelCollector`, registered as `"otel"`: task counters and duration histograms,
  `.with_metrics("otel", manager="ingest")`;
- `observe(manager)`: queue depth, workers and resources as observed up-down counters;
- `OTelTracing`: a plugin starting a `tasker.task` span around every attempt, a child of the
  submitter's span, `.with_plugins(OTelTracing())`.

Every instrument, attribute and span name is a constant in `tasker_otel.names`. Only
`opentelemetry-api` is required: the application brings the SDK and its exporters.
"""

from __future__ import annotations

from tasker_otel import names
from tasker_otel._version import __version__
from tasker_otel.metrics import ManagerObservation, ObservableManager, OTelCollector, observe
from tasker_otel.tracing import AttemptSpan, OTelTracing

__all__ = [
    "AttemptSpan",
    "ManagerObservation",
    "OTelCollector",
    "OTelTracing",
    "ObservableManager",
    "__version__",
    "names",
    "observe",
]
