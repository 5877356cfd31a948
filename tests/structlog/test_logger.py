"""tasker's events as structlog events, through the real structlog."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator
from importlib import metadata
from typing import Any

import pytest
from structlog.contextvars import bind_contextvars, clear_contextvars, merge_contextvars
from structlog.testing import LogCapture, capture_logs
from structlog.typing import EventDict, WrappedLogger

import structlog
import tasker_structlog
from tasker import Event, Logger, TaskManagerBuilder, current_task
from tasker.plugins import Plugins
from tasker_structlog import StructlogLogger, task_context
from tests.drivers import Driver, each_executor
from tests.helpers import builder as base_builder


@pytest.fixture(autouse=True)
def clean_structlog() -> Iterator[None]:
    structlog.reset_defaults()
    clear_contextvars()
    yield
    clear_contextvars()
    structlog.reset_defaults()


def builder(name: str = "jobs") -> TaskManagerBuilder[None]:
    return base_builder().with_name(name).with_logger("structlog")


def flaky() -> Any:
    def task(_: None) -> str:
        running = current_task()
        assert running is not None
        if running.attempt == 1:  # not a list: a child process cannot append to one
            raise ConnectionError("dropped")
        return "ok"

    return task


def boom(_: None) -> None:
    raise KeyError("missing")


def named(entries: list[EventDict], event: str) -> list[EventDict]:
    return [entry for entry in entries if entry["event"] == event]


@each_executor
async def test_tasker_events_become_structlog_events(driver: Driver) -> None:
    with capture_logs() as entries:
        managed = await driver.build(builder())
        assert await managed.queue_task(driver.task(flaky())) == "ok"
        with pytest.raises(KeyError):
            await managed.queue_task(driver.task(boom))
        assert await managed.stop(10)

    events = {entry["event"] for entry in entries}
    assert {
        Event.WORKER_STARTED,
        Event.MANAGER_STARTED,
        Event.WORKER_UNHEALTHY,
        Event.TASK_RETRIED,
        Event.WORKER_REPLACED,
        Event.TASK_FAILED,
        Event.MANAGER_STOPPING,
        Event.MANAGER_STOPPED,
    } <= events
    assert all(entry["manager"] == "jobs" for entry in entries)
    (retried,) = named(entries, Event.TASK_RETRIED)
    assert retried["log_level"] == "warning"
    assert retried["task_id"] == 1
    assert retried["attempt"] == 1
    assert retried["max_retries"] == 3
    assert isinstance(retried["error"], ConnectionError)
    (failed,) = named(entries, Event.TASK_FAILED)
    assert failed["log_level"] == "debug"
    assert failed["task_id"] == 2
    assert failed["worker_id"] == 2  # the replacement
    assert failed["attempt"] == 1
    assert isinstance(failed["error"], KeyError)
    assert "exc_info" not in failed  # tracebacks only from ERROR up
    started = named(entries, Event.WORKER_STARTED)
    assert [(e["log_level"], e["worker_id"], e["burst"]) for e in started] == [
        ("info", 1, False),
        ("info", 2, False),
    ]


@pytest.mark.parametrize(
    ("level", "method"),
    [
        (1, "debug"),
        (logging.DEBUG, "debug"),
        (15, "debug"),
        (logging.INFO, "info"),
        (25, "info"),
        (logging.WARNING, "warning"),
        (logging.ERROR, "error"),
        (45, "error"),
        (logging.CRITICAL, "critical"),
        (60, "critical"),
    ],
)
def test_levels_map_to_the_nearest_level_at_or_below(level: int, method: str) -> None:
    with capture_logs() as entries:
        StructlogLogger().log(level, "custom.event", answer=42)
    assert entries == [{"event": "custom.event", "answer": 42, "log_level": method}]


def test_errors_keep_the_exception_and_add_a_traceback_from_error_up() -> None:
    error = OSError("cannot close")
    with capture_logs() as entries:
        log = StructlogLogger()
        log.log(logging.ERROR, Event.RESOURCE_DESTROY_FAILED, worker_id=3, error=error)
        log.log(logging.WARNING, Event.TASK_RETRIED, error=error)
    assert entries[0]["error"] is error
    assert entries[0]["exc_info"] is error
    assert "exc_info" not in entries[1]


def test_the_applications_configuration_is_respected() -> None:
    capture = LogCapture()

    def stamp(_: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        event_dict["stamped"] = method
        return event_dict

    structlog.configure(
        processors=[merge_contextvars, structlog.processors.add_log_level, stamp, capture],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    bind_contextvars(request_id="r-7")
    with (
        builder()
        .with_workers(1)
        .with_logger("structlog", logger_name="svc", service="billing")
        .build() as manager
    ):
        assert manager.run_task(flaky()) == "ok"  # retried in this very thread
    levels = {entry["level"] for entry in capture.entries}
    assert levels == {"warning"}  # info events filtered out by the application's logger
    (retried,) = named(capture.entries, Event.TASK_RETRIED)
    assert retried["stamped"] == "warning"
    assert retried["service"] == "billing"  # bound through the builder's options
    assert retried["request_id"] == "r-7"  # merged by the application's processor
    assert retried["manager"] == "jobs"


def test_a_stdlib_backed_configuration_gets_the_logger_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    structlog.configure(
        processors=[structlog.stdlib.render_to_log_kwargs],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    with caplog.at_level(logging.INFO, logger="svc.tasks"):
        StructlogLogger(logger_name="svc.tasks").log(logging.INFO, "manager.started", workers=2)
    (record,) = caplog.records
    assert record.name == "svc.tasks"
    assert record.levelno == logging.INFO
    assert record.getMessage() == "manager.started"


@each_executor
async def test_code_in_the_task_sees_the_submitters_bound_values(driver: Driver) -> None:
    managed = await driver.build(builder())

    def work(_: None) -> None:
        structlog.get_logger().info("inside", step=1)

    with capture_logs(processors=[merge_contextvars]) as entries:
        bind_contextvars(request_id="r-1")
        await managed.queue_task(driver.task(work))
        clear_contextvars()
    assert await managed.stop(10)
    (inside,) = named(entries, "inside")
    assert inside["request_id"] == "r-1"


@each_executor
async def test_with_task_context_worker_side_events_carry_the_submitters_values(
    driver: Driver,
) -> None:
    managed = await driver.build(builder().with_plugins(task_context))
    with capture_logs(processors=[merge_contextvars]) as entries:
        bind_contextvars(request_id="r-2")
        assert await managed.queue_task(driver.task(flaky())) == "ok"
        bind_contextvars(request_id="r-3")
        with pytest.raises(KeyError):
            await managed.submit(driver.task(boom), priority=True)
        clear_contextvars()
        assert await managed.stop(10)

    (unhealthy,) = named(entries, Event.WORKER_UNHEALTHY)
    (retried,) = named(entries, Event.TASK_RETRIED)
    (failed,) = named(entries, Event.TASK_FAILED)
    for entry in (unhealthy, retried):
        assert entry["request_id"] == "r-2"
        assert entry["queue"] == "main"
        assert 0 <= entry["duration"] < 10
    assert failed["request_id"] == "r-3"
    assert failed["queue"] == "priority"
    assert 0 <= failed["duration"] < 10
    for entry in named(entries, Event.WORKER_STARTED) + named(entries, Event.MANAGER_STOPPED):
        assert "request_id" not in entry  # not about a task: no submitter


@each_executor
async def test_without_task_context_worker_side_events_have_only_tasker_fields(
    driver: Driver,
) -> None:
    managed = await driver.build(builder())
    with capture_logs(processors=[merge_contextvars]) as entries:
        bind_contextvars(request_id="r-4")
        with pytest.raises(KeyError):
            await managed.queue_task(driver.task(boom))
        clear_contextvars()
    assert await managed.stop(10)
    (failed,) = named(entries, Event.TASK_FAILED)
    assert "request_id" not in failed
    assert failed["queue"] == "main"  # the core names the queue itself


def test_events_after_the_end_of_a_task_still_carry_its_context() -> None:
    gate = threading.Event()
    manager = builder().with_plugins(task_context).with_timeout(0.05).build()
    with capture_logs(processors=[merge_contextvars]) as entries:
        bind_contextvars(request_id="r-5")
        slow = manager.submit(lambda r: gate.wait(10))
        with pytest.raises(TimeoutError):
            slow.result(10)
        held = manager.submit(lambda r: gate.wait(10), timeout=None)
        clear_contextvars()
        gate.set()
        held.result(10)
        manager.stop(10)
    (timed_out,) = named(entries, Event.TASK_TIMED_OUT)
    assert timed_out["request_id"] == "r-5"
    assert timed_out["duration"] >= 0.05


def test_task_context_forgets_tasks_once_they_are_gone() -> None:
    with builder().with_plugins(task_context).build() as manager:
        bind_contextvars(request_id="r-6")
        futures = [manager.submit(lambda r: None) for _ in range(50)]
        for future in futures:
            future.result(10)
        assert task_context.tracked() == 50
        del futures, future
        gc.collect()
        # with their futures, while the manager runs (an idle worker may hold its last task)
        assert task_context.tracked() <= 1
        kept = manager.submit(lambda r: None)
        kept.result(10)
        assert 1 <= task_context.tracked() <= 2
    assert task_context.tracked() == 0  # every task of a stopped manager
    assert kept.done()


def test_a_broken_configuration_never_breaks_the_manager() -> None:
    def explode(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        raise RuntimeError("processor bug")

    structlog.configure(processors=[explode])
    log = StructlogLogger()
    log.log(logging.ERROR, "anything", error=ValueError("x"))  # does not raise
    with builder().build() as manager:
        assert manager.queue_task(lambda r: 5) == 5


def test_the_logger_is_registered_by_name_and_satisfies_the_protocol() -> None:
    assert isinstance(StructlogLogger(), Logger)
    registry = Plugins().registry("loggers")
    assert "structlog" in registry
    assert registry.owner("structlog") == "structlog"
    assert isinstance(registry.create("structlog", service="x"), StructlogLogger)


def test_the_plugins_implement_only_what_they_must() -> None:
    """The entry point adds no observer work; `task_context` is opt-in per manager."""
    from tasker_structlog import plugin

    def hooks(module: object) -> list[str]:
        return sorted(name for name in vars(module) if name.startswith("tasker_"))

    assert hooks(plugin) == ["tasker_register_loggers"]
    assert hooks(task_context) == [
        "tasker_manager_stopped",
        "tasker_task_queued",
        "tasker_task_started",
    ]


def test_the_package_says_what_it_is() -> None:
    assert tasker_structlog.__version__ == metadata.version("tasker-structlog")
    for name in tasker_structlog.__all__:
        assert getattr(tasker_structlog, name).__doc__, name
