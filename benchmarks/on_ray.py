"""The Ray executor against `ray.util.ActorPool`: per-task overhead, recovery, the async manager.

    python benchmarks/on_ray.py            # the full run (a few minutes on 2 cores)
    python benchmarks/on_ray.py --quick    # small sizes

It starts its own Ray on 127.0.0.1 (own temporary directory, no dashboard, no usage report,
no token), as the tests do, and shuts it down at the end. Scenarios, each against its baseline
in the same run:

- overhead: a task that returns at once, on 2 actors of tasker's own actor class: tasker's
  thread manager and `ActorPool` over actors of the same class, each called sequentially (one
  call at a time) and in batches of 1,000 calls; the ratio tasker / ActorPool of time per task.
- recovery: 4 actors under load, one of them killed (its process exits) mid-run: the time
  from the kill until a replacement actor (a process not seen before) serves, and tasks lost
  (submitted and never answered with a value).
- async: 64 actors (0.01 CPU each) driven from one event loop by the `AsyncTaskManager`, then
  by the thread `TaskManager` (64 worker threads): the driver's CPU time per task.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

for _name, _value in {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}.items():
    os.environ.setdefault(_name, _value)

from ray.util import ActorPool  # noqa: E402

import ray  # noqa: E402
from ray import cloudpickle  # noqa: E402
from tasker import AsyncTaskManager, TaskManager  # noqa: E402
from tasker_ray.executor import _holder  # noqa: E402 - the actor class tasker uses

OBJECT_STORE = 80 * 1024 * 1024


def nothing(_: object) -> int:
    return 0


def pid_of(_: object) -> int:
    return os.getpid()


def exit_once(_: object, marker: str) -> int:
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(3)
    return os.getpid()


def make_resource() -> int:
    return 0


def manager(workers: int, num_cpus: float = 0) -> TaskManager[int]:
    return (
        TaskManager.builder()
        .with_executor("ray", num_cpus=num_cpus)
        .with_resource(make_resource)
        .with_workers(workers, max_workers=workers)
        .with_resource_pool(0)
        .with_policy("fixed")
        .with_max_retries(3)
        .with_backoff(initial=0.01, maximum=0.05)
        .build()
    )


def overhead(sequential: int, batches: int) -> dict[str, Any]:
    actors = [_holder().options(num_cpus=0).remote() for _ in range(2)]
    ray.get([a.create.remote(make_resource, None) for a in actors])
    pool = ActorPool(actors)
    dumps: Callable[[Any], bytes] = cloudpickle.dumps
    payload = dumps((nothing, ()))  # what the actor's `call` takes, made once
    about = (1, 1, 1, False, False)  # and what `current_task()` shows in the actor

    def call(actor: Any, _: object) -> Any:
        return actor.call.remote(payload, about)

    def pool_sequential() -> None:
        for _ in range(sequential):
            pool.submit(call, None)
            pool.get_next()

    def pool_batches() -> None:
        for _ in range(batches):
            list(pool.map(call, [None] * 1000))

    results: dict[str, Any] = {}
    with manager(2) as tasks:
        tasks.queue_task(nothing)  # warm

        def tasker_sequential() -> None:
            for _ in range(sequential):
                tasks.queue_task(nothing)

        def tasker_batches() -> None:
            for _ in range(batches):
                for future in [tasks.submit(nothing) for _ in range(1000)]:
                    future.result()

        pool_sequential()  # warm
        for name, count, base, ours in (
            ("sequential", sequential, pool_sequential, tasker_sequential),
            ("batches of 1,000", batches * 1000, pool_batches, tasker_batches),
        ):
            timings: dict[str, list[float]] = {"ActorPool": [], "tasker": []}
            for _ in range(3):  # interleaved, the best of 3 each
                for label, run in (("ActorPool", base), ("tasker", ours)):
                    start = time.perf_counter()
                    run()
                    timings[label].append((time.perf_counter() - start) / count * 1e6)
            best = {label: min(values) for label, values in timings.items()}
            results[name] = {
                "us_per_task": {k: round(v, 1) for k, v in best.items()},
                "ratio": round(best["tasker"] / best["ActorPool"], 2),
            }
    for actor in actors:
        ray.kill(actor)
    return results


def recovery(tasks_count: int, folder: str) -> dict[str, Any]:
    marker = os.path.join(folder, "killed")
    with manager(4) as tasks:
        before = {tasks.queue_task(pid_of) for _ in range(40)}
        served: list[tuple[float, int]] = []  # (when, by which actor's process)

        def note(future: Any) -> None:
            if future.exception() is None:
                served.append((time.perf_counter(), future.result()))

        killed_at = time.perf_counter()
        victim = tasks.submit(exit_once, marker)  # runs at once: its actor's process exits
        futures = [tasks.submit(pid_of) for _ in range(tasks_count)]
        for future in futures:
            future.add_done_callback(note)
        victim.result(120)  # retried on another actor
        answered = 1 + sum(isinstance(future.result(120), int) for future in futures)
        lost = len(futures) + 1 - answered
        fresh = [when for when, pid in list(served) if pid not in before]
        metrics = tasks.metrics()
    return {
        "actors": 4,
        "tasks": len(futures) + 1,
        "replacement_serves_after_s": round(min(fresh) - killed_at, 2) if fresh else None,
        "tasks_lost": lost,
        "retried": metrics.total_tasks_retried,
    }


async def async_driver(count: int, workers: int) -> float:
    built = (
        AsyncTaskManager.builder()
        .with_executor("ray", num_cpus=0.01)
        .with_resource(make_resource)
        .with_workers(workers, max_workers=workers)
        .with_resource_pool(0)
        .with_policy("fixed")
        .build()
    )
    async with await built as tasks:
        await asyncio.gather(*(tasks.queue_task(nothing) for _ in range(workers)))  # type: ignore[arg-type]
        start = time.process_time()
        await asyncio.gather(*(tasks.queue_task(nothing) for _ in range(count)))  # type: ignore[arg-type]
        return (time.process_time() - start) / count * 1e6


def thread_driver(count: int, workers: int) -> float:
    with manager(workers, num_cpus=0.01) as tasks:
        for future in [tasks.submit(nothing) for _ in range(workers)]:  # warm
            future.result()
        start = time.process_time()
        for future in [tasks.submit(nothing) for _ in range(count)]:
            future.result()
        return (time.process_time() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    quick = parser.parse_args().quick
    root = tempfile.mkdtemp(prefix="tasker-ray-")
    os.environ["RAY_TMPDIR"] = root
    ray_dir = os.path.join(root, "ray")
    os.mkdir(ray_dir)
    try:
        ray.init(
            _node_ip_address="127.0.0.1",
            num_cpus=2,
            object_store_memory=OBJECT_STORE,
            include_dashboard=False,
            _temp_dir=ray_dir,
            log_to_driver=False,
        )
        report: dict[str, Any] = {}
        report["overhead"] = overhead(200 if quick else 2000, 1 if quick else 3)
        print(json.dumps({"overhead": report["overhead"]}), flush=True)
        report["recovery"] = recovery(200 if quick else 2000, root)
        print(json.dumps({"recovery": report["recovery"]}), flush=True)
        count = 640 if quick else 6400
        thread = thread_driver(count, 64)
        asynchronous = asyncio.run(async_driver(count, 64))
        report["async"] = {
            "actors": 64,
            "tasks": count,
            "driver_cpu_us_per_task": {
                "AsyncTaskManager": round(asynchronous, 1),
                "TaskManager": round(thread, 1),
            },
        }
        print(json.dumps({"async": report["async"]}), flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
