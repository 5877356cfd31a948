"""A real two-node Ray cluster on this machine: one node dies under load, no task is lost."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray", reason="Ray is not installed for this interpreter: no Ray tests")

from ray.cluster_utils import Cluster
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from tasker import TaskManager
from tests.ray.conftest import (
    LOOPBACK,
    OBJECT_STORE,
    Ledger,
    live_actors,
    no_actor_left,
    starting,
    wait_until,
)

pytestmark = pytest.mark.timeout(240)

TASKS = 24  # plain tasks under load, and as many once-tasks
WORKERS = 4


@pytest.fixture
def cluster(ray_cluster: Cluster) -> Iterator[Cluster]:
    """The shared head node, with this process not connected: the executor connects itself."""
    import ray

    ray.shutdown()
    try:
        yield ray_cluster
    finally:
        ray.shutdown()


def node_of_actor() -> str:
    """`on_create`: the resource is the id of the node the actor runs on."""
    import ray

    node: str = ray.get_runtime_context().get_node_id()
    return node


def work(node: str, key: str, ledger: Ledger, doomed: str) -> str:
    """A task: note where each run starts and finishes. On the doomed node it is still
    running when the node dies (bounded: were the node to live on, the test still ends)."""
    ledger.note("started", f"{key} {node}")
    if node == doomed:
        ledger.wait_for("the node lives on", 20)
    else:
        time.sleep(0.05)  # the work itself
    ledger.note("finished", f"{key} {node}")
    return node


def runs(ledger: Ledger, kind: str) -> dict[str, list[str]]:
    """Per task key, the nodes its runs `kind` (started, finished) on, in order."""
    seen: dict[str, list[str]] = {}
    for entry in ledger.entries(kind):
        key, node = entry.split()
        seen.setdefault(key, []).append(node)
    return seen


def test_a_node_lost_under_load_loses_no_task(cluster: Cluster, tmp_path: Path) -> None:
    doomed = starting(
        lambda: cluster.add_node(
            node_ip_address=LOOPBACK,
            num_cpus=1,
            object_store_memory=OBJECT_STORE,
            resources={"room": WORKERS // 2},
        )
    )
    ledger = Ledger(tmp_path)
    # half the workers fit on the doomed node, which they prefer; the rest, and every
    # replacement once it is gone, go to the head node
    prefer_doomed = NodeAffinitySchedulingStrategy(
        doomed.node_id, soft=True, _spill_on_unavailable=True
    )
    options: dict[str, Any] = {
        "address": cluster.address,
        "init": {"log_to_driver": False},
        "num_cpus": 0,
        "resources": {"room": 1},
        "scheduling_strategy": prefer_doomed,
    }

    def started_on() -> list[tuple[str, str]]:
        return [tuple(e.split()) for e in ledger.entries("started")]  # type: ignore[misc]

    manager = (
        TaskManager.builder()
        .with_executor("ray", **options)
        .with_resource(node_of_actor)
        .with_workers(WORKERS, max_workers=WORKERS)
        .with_resource_pool(0)
        .with_policy("fixed")
        .with_max_retries(3)
        .with_backoff(initial=0.05, maximum=0.5, broken_after=60)
        .build()
    )
    with manager:
        nodes = {manager.queue_task(lambda node: node) for _ in range(WORKERS * 4)}
        plain: list[Future[str]] = [
            manager.submit(work, f"p{i}", ledger, doomed.node_id) for i in range(TASKS)
        ]
        once = [
            manager.submit(work, f"o{i}", ledger, doomed.node_id, once=True) for i in range(TASKS)
        ]
        wait_until(
            lambda: any(node == doomed.node_id for _, node in started_on()),
            60,
            "a task running on the doomed node",
        )
        cluster.remove_node(doomed, allow_graceful=False)
        plain_outcomes = [f.result(120) for f in plain]  # every plain task completes
        once_outcomes: list[Any] = []
        for future in once:
            try:
                once_outcomes.append(future.result(120))
            except Exception as error:  # a once-task on the lost node fails, unretried
                once_outcomes.append(error)
        retried = manager.metrics().total_tasks_retried

    head: str = cluster.head_node.node_id  # type: ignore[attr-defined]  # set by the fixture
    assert nodes == {head, doomed.node_id}, "the workers were not spread over both nodes"
    started, finished = runs(ledger, "started"), runs(ledger, "finished")
    # every caller was answered; every plain task completed, on a live node
    assert len(plain_outcomes) == TASKS
    assert len(once_outcomes) == TASKS
    lost_once = [o for o in once_outcomes if isinstance(o, BaseException)]
    assert all("Ray actor was lost" in str(lost) for lost in lost_once)
    for i, node in enumerate(plain_outcomes):
        assert finished[f"p{i}"][-1] == node
    # the tasks that ran on the lost node were retried on the other one
    cut_short = [k for k, nodes_run in started.items() if len(nodes_run) > 1]
    assert cut_short or lost_once, "no task was running on the node when it died"
    assert retried >= len(cut_short)
    for key in cut_short:
        assert all(node == doomed.node_id for node in started[key][:-1])
        assert started[key][-1] == head
    # a once-task runs at most once; a plain task runs again only after a run cut short
    for i in range(TASKS):
        assert len(started.get(f"o{i}", [])) <= 1
    assert not live_actors()
    no_actor_left()
