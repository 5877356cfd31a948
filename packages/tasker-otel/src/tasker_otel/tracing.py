"""OpenTelemetry traces: a `tasker.task` span around every task attempt."""

from __future__ import annotations

from contextvars import ContextVar, Token
from types import TracebackType

from opentelemetry import context, trace
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace import TracerProvider as TracerProviderAPI
from opentelemetry.util.types import AttributeValue

from tasker import hookimpl
from tasker.metrics import TaskInfo
from tasker_otel import names
from tasker_otel._util import error_type
from tasker_otel._version import __version__

__all__ = ["OTelTracing"]

# the span of a task's previous attempt, kept in the task's own context between attempts
_previous: ContextVar[tuple[str, int, SpanContext] | None] = ContextVar(
    "tasker_otel_previous_attempt", default=None
)


class OTelTracing:
    """A tasker plugin: one `tasker.task` span per task attempt.

    The span is started inside the task's own context — a copy of the submitter's — so it is a
    child of the span that was current when the task was submitted, and it is the current span
    while the task runs: spans the task's code starts are its children. It carries
    `tasker.manager`, `tasker.task.id`, `tasker.task.attempt`, `tasker.queue`,
    `tasker.worker.id` (absent under `run_task`) and `tasker.task.once`. A failed attempt
    records its exception, `error.type` and an error status; a retry is a sibling span whose
    attempt number is one higher, linked to the attempt before it.

    Pass it to the builder: `.with_plugins(OTelTracing())`. Managers without it pay nothing.

    Args:
        tracer_provider: where spans go; the global provider by default (looked up when spans
            start, so an application may set it after creating the plugin).
    """

    def __init__(self, *, tracer_provider: TracerProviderAPI | None = None) -> None:
        self._tracer = trace.get_tracer(
            names.INSTRUMENTATION_SCOPE, __version__, tracer_provider=tracer_provider
        )

    @hookimpl
    def tasker_task_attempt_context(
        self, manager: str, task: TaskInfo, worker_id: int | None
    ) -> AttemptSpan:
        """Wrap the attempt in a span (the hook tasker calls before every attempt)."""
        return AttemptSpan(self._tracer, manager, task, worker_id)


class AttemptSpan:
    """The context manager around one attempt: starts, makes current, and ends its span."""

    __slots__ = ("_manager", "_span", "_task", "_token", "_tracer", "_worker_id")

    def __init__(self, tracer: Tracer, manager: str, task: TaskInfo, worker_id: int | None) -> None:
        self._tracer = tracer
        self._manager = manager
        self._task = task
        self._worker_id = worker_id
        self._span: Span | None = None
        self._token: Token[context.Context] | None = None

    def __enter__(self) -> Span:
        task, manager = self._task, self._manager
        attributes: dict[str, AttributeValue] = {
            names.ATTR_MANAGER: manager,
            names.ATTR_TASK_ID: task.task_id,
            names.ATTR_ATTEMPT: task.attempt,
            names.ATTR_QUEUE: names.QUEUE_PRIORITY if task.priority else names.QUEUE_MAIN,
            names.ATTR_ONCE: task.once,
        }
        if self._worker_id is not None:
            attributes[names.ATTR_WORKER_ID] = self._worker_id
        links: list[Link] = []
        previous = _previous.get()
        if previous is not None and previous[0] == manager and previous[1] == task.task_id:
            links.append(Link(previous[2], {names.ATTR_ATTEMPT: task.attempt - 1}))
        span = self._tracer.start_span(
            names.SPAN_TASK, kind=SpanKind.INTERNAL, attributes=attributes, links=links
        )
        self._span = span
        self._token = context.attach(trace.set_span_in_context(span))
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span, token = self._span, self._token
        if span is None or token is None:
            return
        self._span = self._token = None
        try:
            if exc is not None:
                span.record_exception(exc, escaped=True)
                span.set_attribute(names.ATTR_ERROR_TYPE, error_type(exc))
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__qualname__}: {exc}"))
            _previous.set((self._manager, self._task.task_id, span.get_span_context()))
        finally:
            span.end()
            context.detach(token)
