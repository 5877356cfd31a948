"""Logging: silent by default, structured events, stable names."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tasker import Event, NullLogger, StdlibLogger


def test_nothing_is_printed_unless_the_application_configures_logging() -> None:
    script = textwrap.dedent(
        """
        from tasker import TaskManager

        def destroy(resource):
            raise OSError("close failed")

        manager = TaskManager.builder().with_resource(object, destroy).build()
        manager.queue_task(lambda r: None)
        manager.stop()
        print("done")
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert run.stdout.strip() == "done"
    assert run.stderr == ""


def test_event_names_are_stable_strings() -> None:
    assert str(Event.TASK_RETRIED) == "task.retried"
    assert str(Event.WORKER_REPLACED) == "worker.replaced"
    assert all(name.value.count(".") == 1 for name in Event)


def test_stdlib_logger_renders_fields_and_skips_disabled_levels() -> None:
    import logging

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    target = logging.getLogger("tasker.test.render")
    target.propagate = False
    target.addHandler(Keep())
    target.setLevel(logging.INFO)
    logger = StdlibLogger(target)
    logger.log(logging.DEBUG, "task.failed", task_id=1)
    logger.log(logging.WARNING, "task.retried", task_id=7, attempt=2, error=ValueError("x"))
    assert len(records) == 1
    assert records[0].getMessage() == "task.retried task_id=7 attempt=2 error=ValueError('x')"
    assert records[0].event == "task.retried"  # type: ignore[attr-defined]
    NullLogger().log(logging.ERROR, "anything", x=1)
