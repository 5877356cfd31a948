"""run_task: now, in the caller's thread, on a pooled or temporary resource."""

from __future__ import annotations

import threading

import pytest

from tasker import ResourceCreationError, RetriesExhaustedError
from tests.helpers import Resource, Resources, build


class TestRunTask:
    def test_it_runs_in_the_callers_thread_on_a_pooled_resource(self, resources: Resources) -> None:
        with build(resources, pool=1, max_retries=1) as manager:
            pooled = resources.created[0]
            thread, rid = manager.run_task(lambda r: (threading.current_thread(), r.rid))
            assert thread is threading.current_thread()
            assert rid == pooled.rid
            assert manager.stats().available_resources == 1  # given back
            assert resources.destroyed[pooled.rid] == 0

    def test_a_temporary_resource_is_created_and_destroyed_when_the_pool_is_busy(
        self, resources: Resources
    ) -> None:
        with build(resources, pool=1, max_retries=1) as manager:
            outer_rid = manager.run_task(
                lambda outer: (outer.rid, manager.run_task(lambda inner: inner.rid))
            )
            pooled_rid, temporary_rid = outer_rid
            assert temporary_rid not in (pooled_rid, resources.created[1].rid)
            assert resources.destroyed[temporary_rid] == 1  # destroyed right after
            assert resources.destroyed[pooled_rid] == 0
        resources.assert_all_destroyed_once()

    def test_without_a_pool_every_call_gets_a_temporary_resource(
        self, resources: Resources
    ) -> None:
        with build(resources, pool=0, max_retries=1) as manager:
            rids = [manager.run_task(lambda r: r.rid) for _ in range(3)]
            assert len(set(rids)) == 3
            assert all(resources.destroyed[rid] == 1 for rid in rids)

    def test_errors_propagate_unchanged(self, resources: Resources) -> None:
        with build(resources, pool=1, max_retries=1) as manager, pytest.raises(ZeroDivisionError):
            manager.run_task(lambda r: 1 / 0)
        resources.assert_all_destroyed_once()

    def test_an_unhealthy_pooled_resource_is_replaced_and_the_task_retried(
        self, resources: Resources
    ) -> None:
        seen: list[int] = []

        def task(resource: Resource) -> int:
            seen.append(resource.rid)
            if len(seen) == 1:
                raise ConnectionError("reset")
            return resource.rid

        with build(resources, pool=1, max_retries=1) as manager:
            assert manager.run_task(task) == seen[1]
            assert resources.destroyed[seen[0]] == 1
            assert manager.stats().available_resources == 1  # the pool refilled
            with pytest.raises(RetriesExhaustedError):
                manager.run_task(lambda r: (_ for _ in ()).throw(ConnectionError("down")))
            with pytest.raises(ConnectionError):
                manager.run_task(
                    lambda r: (_ for _ in ()).throw(ConnectionError("down")), once=True
                )
        resources.assert_all_destroyed_once()

    def test_a_failing_on_create_raises_resource_creation_error(self, resources: Resources) -> None:
        with build(resources, pool=0, max_retries=1) as manager:
            resources.fail_create = lambda n: True
            with pytest.raises(ResourceCreationError) as caught:
                manager.run_task(lambda r: r)
            assert isinstance(caught.value.__cause__, ConnectionError)
            assert manager.metrics().total_tasks_failed == 1
            resources.fail_create = lambda n: False

    def test_run_task_is_counted_in_metrics(self, resources: Resources) -> None:
        with build(resources, pool=1, max_retries=1) as manager:
            for _ in range(5):
                manager.run_task(lambda r: None)
            metrics = manager.metrics()
            assert metrics.total_tasks_arrived == 5
            assert metrics.total_tasks_completed == 5
