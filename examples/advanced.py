"""Advanced usage: bursting, run_task, at-most-once tasks, kill vs stop, custom logger and metrics.

The workers own clients of a remote API. The example walks through:

1. a traffic spike: the pool bursts from 2 to up to 8 workers, then shrinks back when idle;
2. `run_task`: urgent calls that skip the queue and borrow a client from the resource pool;
3. `queue_task` vs `queue_task_once` when a connection drops mid-request;
4. `stop()`: finish everything queued, then release every resource;
5. `kill()`: cancel everything, now;

with a custom `Logger` printing the manager's scaling and health events, and a custom
`MetricsCollector` keeping its own per-queue counts.

Run it with `python examples/advanced.py`.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import partial

from tasker import (
    CancelledError,
    Event,
    TaskInfo,
    TaskManager,
    UnhealthyOn,
    current_task,
)

_print_lock = threading.Lock()
_started = time.perf_counter()


def say(message: str) -> None:
    """Print a line; workers print from their own threads, so lines must not interleave."""
    with _print_lock:
        print(message)


def clock() -> str:
    return f"+{time.perf_counter() - _started:4.2f}s"


# ----------------------------------------------------------------------------- the resource


class ApiClient:
    """A client for a remote API: slow to open, so each worker keeps one open."""

    _ids = itertools.count(1)

    def __init__(self) -> None:
        self.client_id = next(self._ids)

    def request(self, path: str, seconds: float = 0.03) -> str:
        time.sleep(seconds)
        return f"GET {path} -> 200 (client #{self.client_id})"


opened: list[int] = []
still_open: set[int] = set()


def open_client() -> ApiClient:
    client = ApiClient()
    opened.append(client.client_id)
    still_open.add(client.client_id)
    return client


def close_client(client: ApiClient) -> None:
    still_open.discard(client.client_id)


def fetch(path: str, client: ApiClient) -> str:
    return client.request(path)


def quote(client: ApiClient) -> int:
    client.request("/quote", 0.05)
    return client.client_id


# ------------------------------------------------------------------- a custom logger


class ConsoleLogger:
    """A tasker `Logger`: anything with `log(level, event, /, **fields)` fits.

    tasker logs structured events (see `tasker.Event`); this one prints the interesting ones.
    """

    QUIET = frozenset({Event.WORKER_STARTED, Event.WORKER_STOPPED})

    def log(self, level: int, event: str, /, **fields: object) -> None:
        if level < logging.INFO or event in self.QUIET:
            return
        details = [f"{key}={value}" for key, value in fields.items() if key != "manager"]
        say(" ".join([f"    [log {clock()}]", f"{logging.getLevelName(level):7}", event, *details]))


# ------------------------------------------------------- a custom metrics collector


class QueueCollector:
    """A tasker `MetricsCollector`: counts outcomes per kind of task and finds the slowest.

    tasker calls it from worker threads, concurrently, on every task's path: it must be
    thread-safe, quick and must not raise. The built-in metrics keep working alongside it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.arrived: Counter[str] = Counter()
        self.completed: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.retried = 0
        self.slowest = (0, 0.0)  # (task id, seconds)

    @staticmethod
    def kind(task: TaskInfo) -> str:
        if task.priority:
            return "priority"
        return "once" if task.once else "normal"

    def record_arrival(self, task: TaskInfo) -> None:
        with self._lock:
            self.arrived[self.kind(task)] += 1

    def record_start(self, task: TaskInfo, wait_time: float) -> None:
        pass

    def record_completion(self, task: TaskInfo, execution_time: float) -> None:
        with self._lock:
            self.completed[self.kind(task)] += 1
            if execution_time > self.slowest[1]:
                self.slowest = (task.task_id, execution_time)

    def record_failure(self, task: TaskInfo, execution_time: float, error: BaseException) -> None:
        with self._lock:
            self.failed[self.kind(task)] += 1

    def record_retry(self, task: TaskInfo, error: BaseException) -> None:
        with self._lock:
            self.retried += 1

    def report(self) -> None:
        with self._lock:
            say(f"  {'kind':<10}{'arrived':>9}{'completed':>11}{'failed':>8}")
            for kind in sorted(self.arrived):
                say(
                    f"  {kind:<10}{self.arrived[kind]:>9}"
                    f"{self.completed[kind]:>11}{self.failed[kind]:>8}"
                )
            say(f"  retries: {self.retried}")
            task_id, seconds = self.slowest
            say(f"  slowest task: #{task_id} ({seconds * 1000:.0f} ms)")


# ------------------------------------------------------------------------ the walkthrough


def print_stats(manager: TaskManager[ApiClient], note: str = "") -> None:
    s = manager.stats()
    say(
        f"  {clock()}  workers {s.active_workers} ({s.burst_workers} burst)  "
        f"busy {s.busy_workers}  queued {s.queued_tasks + s.priority_tasks:>3}  {note}"
    )


def spike(manager: TaskManager[ApiClient]) -> None:
    say("\n1. A traffic spike: 40 requests every 0.1 s, far more than 2 workers can serve")
    futures: list[Future[str]] = []
    for wave in range(8):
        if wave % 2:
            print_stats(manager, "(load)")
        futures += [
            manager.submit(partial(fetch, f"/items/{n}")) for n in range(wave * 40, wave * 40 + 40)
        ]
        time.sleep(0.1)

    pending = set(futures)
    while pending:
        _, pending = wait(pending, timeout=0.2)
        print_stats(manager, "(draining)")

    # Idle now: burst workers that find nothing to do retire, down to the base 2.
    for _ in range(10):
        time.sleep(0.2)
        print_stats(manager, "(idle)")
        if manager.stats().burst_workers == 0:
            break
    workers = manager.stats().active_workers
    say(f"  {len(futures)} requests served; the pool is back to {workers} workers")


def immediate(manager: TaskManager[ApiClient]) -> None:
    say("\n2. run_task: urgent calls that bypass the queue")
    backlog = [manager.submit(lambda client: client.request("/reports", 0.05)) for _ in range(20)]
    say(f"  20 slow requests queued; pooled clients ready: {manager.stats().available_resources}")

    def urgent(n: int) -> str:
        started = time.perf_counter()
        # run_task runs in the calling thread, on a client borrowed from the pool; when the
        # pool is empty, a temporary client is opened for the call and closed right after.
        client_id = manager.run_task(quote)
        elapsed = (time.perf_counter() - started) * 1000
        kind = "pooled" if client_id in still_open else "temporary"
        return f"  urgent call {n}: {elapsed:3.0f} ms on {kind} client #{client_id}"

    with ThreadPoolExecutor(max_workers=3) as callers:
        for line in callers.map(urgent, range(1, 4)):
            say(line)
    say(f"  meanwhile, {sum(not f.done() for f in backlog)} of the 20 queued requests still wait")
    wait(backlog)


def at_most_once(manager: TaskManager[ApiClient]) -> None:
    say("\n3. A connection drops mid-request")

    def flaky(path: str) -> str:
        task = current_task()
        assert task is not None  # we run inside a tasker task
        if task.attempt == 1:
            raise ConnectionError(f"connection reset while calling {path}")
        return f"{path} succeeded on attempt {task.attempt}"

    # A read is safe to repeat: the worker gets a fresh client and the task is retried.
    say(f"  queue_task:      {manager.queue_task(lambda _client: flaky('/balance'))}")

    # A payment is not: with queue_task_once the error goes straight back to the caller,
    # who can check whether the charge went through before trying again.
    try:
        manager.queue_task_once(lambda _client: flaky("/charge"))
    except ConnectionError as error:
        say(f"  queue_task_once: not retried: {error}")


def stop_gracefully(manager: TaskManager[ApiClient]) -> None:
    say("\n4. stop() finishes every queued task")
    futures = [manager.submit(lambda client: client.request("/export", 0.05)) for _ in range(6)]
    started = time.perf_counter()
    manager.stop()
    elapsed = time.perf_counter() - started
    done = sum(f.done() and f.exception() is None for f in futures)
    say(f"  stop() returned after {elapsed:.2f} s; {done} of {len(futures)} exports completed")


def kill_now() -> None:
    say("\n5. kill() cancels queued tasks and abandons running ones, at once")

    def long_job(_client: ApiClient) -> str:
        task = current_task()
        assert task is not None
        # A long task cooperates with kill(): task.sleep() wakes up early when cancelled
        # (a busy loop would check `task.cancelled` instead).
        if task.sleep(5.0):
            time.sleep(0.05)  # save a checkpoint before giving up
            return "interrupted"
        return "finished"

    jobs = (
        TaskManager.builder()
        .with_name("jobs")
        .with_resource(open_client, close_client)
        .with_workers(2, max_workers=2)
        .with_resource_pool(0)
        .build()
    )
    futures = [jobs.submit(long_job) for _ in range(6)]
    while jobs.stats().busy_workers < 2:  # let both workers pick up their first job
        time.sleep(0.01)
    started = time.perf_counter()
    report = jobs.kill()
    jobs.join()
    elapsed = time.perf_counter() - started
    cancelled = 0
    for future in futures:
        try:
            future.result()
        except CancelledError:
            cancelled += 1
    say(f"  kill() + join() took {elapsed:.2f} s instead of running 6 jobs of 5 s each")
    say(
        f"  {report.cancelled_tasks} queued jobs cancelled, {report.abandoned_tasks} running "
        f"jobs abandoned: {cancelled} of {len(futures)} callers got CancelledError"
    )


def main() -> None:
    say("--- Advanced usage ---")
    collector = QueueCollector()
    manager = (
        TaskManager.builder()
        .with_name("api")
        .with_resource(open_client, close_client)
        .with_workers(2, max_workers=8)
        .with_policy("rate", interval=0.1, cooldown=0.3)
        .with_resource_pool(2)
        .with_health_check(UnhealthyOn(ConnectionError))
        .with_max_retries(2)
        .with_logger(ConsoleLogger())
        .with_metrics(collector)
        .build()
    )
    try:
        spike(manager)
        immediate(manager)
        at_most_once(manager)
        stop_gracefully(manager)
    finally:
        manager.stop()  # a no-op if already stopped: never leave a manager running
    kill_now()

    say("\n--- The custom collector's view ---")
    collector.report()
    metrics = manager.metrics()
    say("\n--- The built-in metrics ---")
    say(
        f"  {metrics.total_tasks_completed} completed, {metrics.total_tasks_failed} failed, "
        f"{metrics.total_tasks_retried} retried; success rate {metrics.success_rate:.1%}"
    )
    say(
        f"  run time p50 {metrics.p50_execution_time * 1000:.0f} ms, "
        f"p99 {metrics.p99_execution_time * 1000:.0f} ms; "
        f"wait p99 {metrics.p99_wait_time * 1000:.0f} ms"
    )
    say(f"  API clients opened: {len(opened)}, still open: {len(still_open)}")
    say("Advanced usage example finished.")


if __name__ == "__main__":
    main()
