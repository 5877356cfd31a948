"""Under a randomized mix of faults, every task ends exactly once and every resource dies once."""

from __future__ import annotations

import logging
import random
import threading
from concurrent.futures import Future
from typing import Any

import pytest

from tasker import (
    CancelledError,
    ManagerBrokenError,
    ManagerClosedError,
    ResourceCreationError,
    RetriesExhaustedError,
    TaskManager,
)
from tests.helpers import Resource, Resources


class Unhealthy(ConnectionError):
    pass


class Oops(ValueError):
    pass


def make_task(rng: random.Random) -> Any:
    roll = rng.random()

    def task(resource: Resource) -> int:
        if roll < 0.10:
            raise Unhealthy("connection reset")
        if roll < 0.20:
            raise Oops("bad input")
        if roll < 0.22:
            threading.Event().wait(0.002)
        return resource.rid

    return task


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", range(6))
def test_every_task_ends_exactly_once_under_faults(
    seed: int, resources: Resources, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="tasker")
    rng = random.Random(seed)
    create_faults = random.Random(seed + 1000)
    resources.fail_create = lambda n: n > 4 and create_faults.random() < 0.2
    resources.fail_destroy = seed % 2 == 0
    ending = "kill" if seed % 3 == 2 else "stop"
    manager = (
        TaskManager.builder()
        .with_resource(resources.create, resources.destroy)
        .with_workers(3, max_workers=6)
        .with_resource_pool(2)
        .with_policy("rate", interval=0.01, cooldown=0.05)
        .with_health_check(lambda exc: not isinstance(exc, Unhealthy))
        .with_max_retries(2)
        .with_backoff(initial=0.001, maximum=0.005, broken_after=5)
        .build()
    )
    futures: list[Future[int]] = []
    lock = threading.Lock()
    refused = 0

    def submitter(sub_seed: int) -> None:
        nonlocal refused
        local = random.Random(sub_seed)
        for _ in range(600):
            try:
                if local.random() < 0.05:
                    manager.run_task(make_task(local), once=local.random() < 0.5)
                    continue
                future = manager.submit(
                    make_task(local), priority=local.random() < 0.3, once=local.random() < 0.2
                )
            except (ManagerClosedError, ManagerBrokenError):
                with lock:
                    refused += 1
                continue
            except (Unhealthy, Oops, RetriesExhaustedError, ResourceCreationError):
                continue
            if local.random() < 0.05:
                future.add_done_callback(lambda f: 1 / 0)
            if local.random() < 0.05:
                future.cancel()
            with lock:
                futures.append(future)

    threads = [threading.Thread(target=submitter, args=(rng.random(),)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if ending == "kill":
        manager.kill()
        assert manager.join(30)
    else:
        assert manager.stop(timeout=60)

    outcomes = {"result": 0, "error": 0, "cancelled": 0}
    for future in futures:
        assert future.done(), "a task was left without an outcome"
        if future.cancelled():
            outcomes["cancelled"] += 1
            continue
        error = future.exception()
        if error is None:
            outcomes["result"] += 1
        elif isinstance(error, CancelledError):
            outcomes["cancelled"] += 1
        else:
            assert isinstance(error, Unhealthy | Oops | RetriesExhaustedError | ManagerBrokenError)
            outcomes["error"] += 1
    assert sum(outcomes.values()) == len(futures)
    if ending == "stop":
        assert outcomes["result"] > 0
    resources.assert_all_destroyed_once()
