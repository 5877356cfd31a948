"""The process executor against ProcessPoolExecutor and loky: CPU-bound work, overhead, crashes.

    python benchmarks/process.py            # the full run (about a minute on 2 cores)
    python benchmarks/process.py --quick    # small sizes, for the smoke test

Scenarios, each against its baselines in the same run:

- cpu: 2,000 tasks of ~5 ms of pure-Python work on 2 workers: tasker's process executor,
  the same with `send_ahead=False` (each child waits for a round trip through the manager
  between two tasks), `ProcessPoolExecutor`, loky's reusable executor, and tasker's thread
  executor (the GIL's cost).
- trivial: per-task overhead of a task that returns at once, 2 workers.

Both run three rounds, the variants in turn (the order rotated each round), and report medians:
one run of each in a row would hand the machine's passing moods to whichever ran then.
- crash: 4 workers, 2,000 short tasks, one worker process killed with SIGKILL mid-run: tasks
  lost, and the time until a fresh process serves; `ProcessPoolExecutor` in the same scenario.
- hung: a task that never returns, with a 0.2 s timeout: how soon its caller is answered.
- burst: 1 base worker, up to 8, the queue-depth policy (one more worker per 0.1 s while work
  waits); a burst of CPU tasks arrives at once, twice with an idle gap: burst processes started
  and the wall time, for the policy as shipped (no step while the last one is still starting)
  and for the same policy blind to start-up.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import loky  # type: ignore[import-untyped]

from tasker import QueueDepthPolicy, ScalingSnapshot, TaskManager, hookimpl

WORKERS = 2
ROUNDS = 3  # rounds of the cpu and trivial scenarios, their variants in turn


def burn(_: object, n: int) -> int:
    """Pure-Python CPU work: about `n` loop turns."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def burn_plain(n: int) -> int:
    return burn(None, n)


def pid_of(_: object) -> int:
    return os.getpid()


def nothing(_: object) -> int:
    return 1


def nothing_plain() -> int:
    return 1


def hang(_: object) -> None:
    while True:
        pass


def calibrate(seconds: float) -> int:
    """Loop turns that take about `seconds` here."""
    n = 10_000
    while True:
        started = time.perf_counter()
        burn(None, n)
        took = time.perf_counter() - started
        if took > 0.02:
            return max(1, int(n * seconds / took))
        n *= 2


def manager(executor: str, workers: int, **options: Any) -> TaskManager[None]:
    settings: dict[str, Any] = {}
    if executor == "process":
        settings = {"start_method": "spawn", "send_ahead": options.get("send_ahead", True)}
    builder = (
        TaskManager.builder()
        .with_executor(executor, **settings)
        .with_workers(workers, max_workers=workers)
        .with_resource_pool(0)
        .with_policy("fixed")
    )
    if "timeout" in options:
        builder = builder.with_timeout(options["timeout"])
    return builder.build()


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def interleaved(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Each variant's median over `rounds` rounds, the order rotated each round.

    One run per variant swings with whatever else the machine does at that moment; rounds in
    turn spread that over every variant alike.
    """
    names = list(variants)
    runs: dict[str, list[float]] = {name: [] for name in names}
    for turn in range(rounds):
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            runs[name].append(variants[name]())
    return {name: statistics.median(values) for name, values in runs.items()}


def on_tasker(
    executor: str, tasks: int, fn: Callable[..., Any], *args: Any, **options: Any
) -> float:
    """Seconds for `tasks` submissions of `fn(resource, *args)` on a started manager."""
    with manager(executor, WORKERS, **options) as m:
        m.queue_task(pid_of)  # started
        return timed(lambda: [f.result() for f in [m.submit(fn, *args) for _ in range(tasks)]])


def on_pool(
    pool: concurrent.futures.Executor, tasks: int, fn: Callable[..., Any], *args: Any
) -> float:
    """Seconds for `tasks` submissions of `fn(*args)` on a started pool."""
    list(pool.map(nothing_plain_, range(WORKERS)))
    return timed(lambda: [f.result() for f in [pool.submit(fn, *args) for _ in range(tasks)]])


def on_process_pool(tasks: int, fn: Callable[..., Any], *args: Any) -> float:
    with ProcessPoolExecutor(WORKERS) as pool:
        return on_pool(pool, tasks, fn, *args)


def on_loky(tasks: int, fn: Callable[..., Any], *args: Any) -> float:
    pool = loky.get_reusable_executor(max_workers=WORKERS)
    try:
        return on_pool(pool, tasks, fn, *args)
    finally:
        pool.shutdown(wait=True)


def cpu(tasks: int, n: int, rounds: int) -> dict[str, float]:
    return interleaved(
        {
            "tasker process": lambda: on_tasker("process", tasks, burn, n),
            "tasker, none ahead": lambda: on_tasker("process", tasks, burn, n, send_ahead=False),
            "tasker thread": lambda: on_tasker("thread", tasks, burn, n),
            "ProcessPoolExecutor": lambda: on_process_pool(tasks, burn_plain, n),
            "loky": lambda: on_loky(tasks, burn_plain, n),
        },
        rounds,
    )


def nothing_plain_(_: object) -> int:
    return 1


def trivial(tasks: int, rounds: int) -> dict[str, float]:
    per_task = 1e6 / tasks
    return interleaved(
        {
            "tasker process": lambda: on_tasker("process", tasks, nothing) * per_task,
            "ProcessPoolExecutor": lambda: on_process_pool(tasks, nothing_plain) * per_task,
        },
        rounds,
    )


def crash(tasks: int, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with manager("process", 4) as m:
        pids = {m.queue_task(pid_of) for _ in range(40)}
        futures = [m.submit(burn, n) for _ in range(tasks)]
        time.sleep(0.2)  # mid-run: a benchmark, not a test
        victim = next(iter(pids))
        killed_at = time.perf_counter()
        os.kill(victim, signal.SIGKILL)
        answered = 0
        for f in futures:
            f.exception()
            answered += 1
        failed = sum(1 for f in futures if f.exception() is not None)
        # a fresh process serving: a task lands on a pid that was not there before
        for _ in range(1000):  # bounded: each round sends one task to some worker
            if m.queue_task(pid_of) not in pids:
                break
        out["tasker lost"] = tasks - answered
        out["tasker failed"] = failed
        out["tasker replacement serving after (s)"] = time.perf_counter() - killed_at
    pool = ProcessPoolExecutor(4)
    list(pool.map(nothing_plain_, range(4)))
    futures2: list[Future[int]] = [pool.submit(burn_plain, n) for _ in range(tasks)]
    time.sleep(0.2)
    processes = list(pool._processes.values())
    processes[0].kill()  # SIGKILL
    broken = 0
    for future in futures2:
        with contextlib.suppress(concurrent.futures.TimeoutError):
            if isinstance(future.exception(timeout=30), BrokenProcessPool):
                broken += 1
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:  # a broken pool may leave its workers behind
        if process.is_alive():
            process.kill()
        process.join(5)
    out["ProcessPoolExecutor failed with BrokenProcessPool"] = broken
    return out


def hung() -> dict[str, float]:
    with manager("process", 1, timeout=0.2) as m:
        m.queue_task(pid_of)
        started = time.perf_counter()
        with contextlib.suppress(TimeoutError):
            m.queue_task(hang)
        answered = time.perf_counter() - started
        first = time.perf_counter()
        m.queue_task(pid_of)
        return {
            "caller answered after (s)": answered,
            "next task served after (s)": time.perf_counter() - first,
        }


class StartupBlind(QueueDepthPolicy):
    """The queue-depth policy as it was before it accounted for start-up: it never sees any."""

    def target_workers(self, snapshot: ScalingSnapshot) -> int:
        blind = dataclasses.replace(snapshot, starting_workers=0, startup_time=0.0)
        return super().target_workers(blind)


class Workers:
    """Counts burst workers started (a plugin)."""

    def __init__(self) -> None:
        self.started = 0

    @hookimpl
    def tasker_worker_started(self, manager: str, worker_id: int, burst: bool) -> None:
        self.started += burst


def burst(tasks: int, n: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, policy in (
        ("start-up aware", QueueDepthPolicy(threshold=0, interval=0.1, cooldown=0.5)),
        ("start-up blind", StartupBlind(threshold=0, interval=0.1, cooldown=0.5)),
    ):
        count = Workers()
        with (
            TaskManager.builder()
            .with_executor("process", start_method="spawn")
            .with_workers(1, max_workers=8)
            .with_resource_pool(0)
            .with_policy(policy)
            .with_plugins(count)
            .build() as m
        ):
            m.queue_task(pid_of)
            started = time.perf_counter()
            for round_ in range(2):
                for future in [m.submit(burn, n) for _ in range(tasks)]:
                    future.result()
                if round_ == 0:
                    time.sleep(1.0)  # idle: the bursts may retire
            wall = time.perf_counter() - started
        out[name] = {"burst processes started": count.started, "wall (s)": wall}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--output", type=Path, help="where to write the JSON results")
    args = parser.parse_args(argv)
    tasks = 100 if args.quick else 2_000
    rounds = 1 if args.quick else ROUNDS
    n = calibrate(0.005)
    report: dict[str, Any] = {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "rounds": rounds,
        "cpu": cpu(tasks, n, rounds),
        "trivial_us_per_task": trivial(200 if args.quick else 5_000, rounds),
        "crash": crash(tasks, max(1, n // 5)),
        "hung": hung(),
        "burst": burst(tasks // 4, n),
    }
    cpu_times = report["cpu"]
    print(f"process executor: CPython {report['python']}, {report['cpus']} CPUs")
    print(
        f"cpu: {tasks} x ~5 ms of Python on {WORKERS} workers (seconds, median of {rounds} "
        "rounds in turn)"
    )
    for name, seconds in cpu_times.items():
        print(f"  {name:<22} {seconds:7.3f} s")
    print(
        f"  tasker process / ProcessPoolExecutor: "
        f"{cpu_times['tasker process'] / cpu_times['ProcessPoolExecutor']:.2f}; / loky: "
        f"{cpu_times['tasker process'] / cpu_times['loky']:.2f}; thread / process: "
        f"{cpu_times['tasker thread'] / cpu_times['tasker process']:.2f}; none ahead / "
        f"process: {cpu_times['tasker, none ahead'] / cpu_times['tasker process']:.2f}"
    )
    print(f"trivial tasks (us per task, median of {rounds} rounds in turn):")
    for name, us in report["trivial_us_per_task"].items():
        print(f"  {name:<22} {us:7.1f}")
    print("crash: one of 4 worker processes SIGKILLed mid-run:")
    for name, value in report["crash"].items():
        print(f"  {name}: {value if isinstance(value, int) else round(value, 3)}")
    print("hung task, 0.2 s timeout:")
    for name, value in report["hung"].items():
        print(f"  {name}: {value:.3f}")
    print(f"burst: 1 base worker, up to 8, queue-depth; {tasks // 4} x ~5 ms tasks at once, twice:")
    for name, row in report["burst"].items():
        cells = ", ".join(f"{key} {round(value, 2)}" for key, value in row.items())
        print(f"  {name:<16} {cells}")
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
