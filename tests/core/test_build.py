"""Building a thread manager, past what every executor shares; bad input rejected early."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tasker import (
    FixedPolicy,
    TaskManager,
    UnhealthyOn,
)
from tests.helpers import Resources


class TestBuild:
    def test_each_base_worker_creates_its_resource_in_its_own_thread(
        self, resources: Resources
    ) -> None:
        manager = (
            TaskManager.builder()
            .with_resource(resources.create, resources.destroy)
            .with_workers(3)
            .with_resource_pool(2)
            .build()
        )
        with manager:
            # 2 pooled (created by the builder's thread) + 3 workers, each in its own thread
            assert len(resources.created) == 5
            worker_threads = {r.created_in for r in resources.created} - {
                threading.current_thread().name
            }
            assert len(worker_threads) == 3

    def test_without_a_resource_tasks_receive_none(self) -> None:
        with TaskManager.builder().build() as manager:
            assert manager.queue_task(lambda r: r) is None

    def test_default_max_workers_is_twice_the_base(self) -> None:
        with TaskManager.builder().with_workers(3).build() as manager:
            assert manager.stats().max_workers == 6

    def test_managers_get_distinct_names_unless_named(self) -> None:
        with TaskManager.builder().build() as a, TaskManager.builder().with_name("db").build() as b:
            assert a.name.startswith("tasker-")
            assert b.name == "db"


class TestValidation:
    """Bad input raises at the builder call that made it, naming the parameter."""

    @pytest.mark.parametrize("workers", [0, -1])
    def test_non_positive_workers(self, workers: int) -> None:
        with pytest.raises(ValueError, match="workers must be an integer >= 1"):
            TaskManager.builder().with_workers(workers)

    @pytest.mark.parametrize("workers", [1.5, "2", True, None])
    def test_non_integer_workers(self, workers: Any) -> None:
        with pytest.raises(ValueError, match="workers"):
            TaskManager.builder().with_workers(workers)

    def test_max_workers_below_workers(self) -> None:
        with pytest.raises(ValueError, match=r"max_workers must be >= workers \(4\), got 3"):
            TaskManager.builder().with_workers(4, max_workers=3)

    def test_negative_retries(self) -> None:
        with pytest.raises(ValueError, match="max_retries must be an integer >= 0"):
            TaskManager.builder().with_max_retries(-1)

    def test_negative_pool_size(self) -> None:
        with pytest.raises(ValueError, match="resource_pool must be an integer >= 0"):
            TaskManager.builder().with_resource_pool(-2)

    def test_non_callable_on_create(self) -> None:
        with pytest.raises(ValueError, match="on_create must be callable"):
            TaskManager.builder().with_resource("not callable")  # type: ignore[arg-type]

    def test_non_callable_on_destroy(self) -> None:
        with pytest.raises(ValueError, match="on_destroy must be callable"):
            TaskManager.builder().with_resource(object, 42)  # type: ignore[arg-type]

    def test_non_callable_health_check(self) -> None:
        with pytest.raises(ValueError, match="health_check must be callable"):
            TaskManager.builder().with_health_check(True)  # type: ignore[arg-type]

    def test_unknown_policy_lists_the_known_ones(self) -> None:
        known = "'adaptive', 'fixed', 'latency', 'queue-depth', 'rate'"
        with pytest.raises(ValueError, match=f"unknown policy 'fast'; known policies: {known}$"):
            TaskManager.builder().with_policy("fast").build()

    def test_policy_options_are_validated(self) -> None:
        with pytest.raises(ValueError, match="interval must be a finite number of seconds > 0"):
            TaskManager.builder().with_policy("rate", interval=0)

    def test_unknown_policy_option(self) -> None:
        with pytest.raises(TypeError, match="bogus"):
            TaskManager.builder().with_policy("rate", bogus=1)

    def test_policy_object_is_accepted(self) -> None:
        with TaskManager.builder().with_policy(FixedPolicy()).build() as manager:
            assert manager.queue_task(lambda r: 1) == 1

    def test_unknown_executor(self) -> None:
        with pytest.raises(ValueError, match=r"unknown executor 'fibers'.*'thread'"):
            TaskManager.builder().with_executor("fibers").build()

    def test_bad_logger(self) -> None:
        with pytest.raises(TypeError, match="logger"):
            TaskManager.builder().with_logger(42)  # type: ignore[arg-type]

    def test_bad_collector(self) -> None:
        with pytest.raises(TypeError, match="record_arrival"):
            TaskManager.builder().with_metrics(object())  # type: ignore[arg-type]

    def test_bad_backoff(self) -> None:
        with pytest.raises(ValueError, match="broken_after must be a finite number of seconds > 0"):
            TaskManager.builder().with_backoff(broken_after=0)

    def test_unhealthy_on_needs_exception_types(self) -> None:
        with pytest.raises(TypeError, match="exception types"):
            UnhealthyOn(int)  # type: ignore[arg-type]

    def test_bad_input_creates_nothing(self, resources: Resources) -> None:
        builder = TaskManager.builder().with_resource(resources.create, resources.destroy)
        with pytest.raises(ValueError, match="workers"):
            builder.with_workers(0)
        assert resources.create_calls == 0
