"""The tasker showcase: a flaky database, priority work, bursting under load, and metrics.

A pool of workers, each holding a database connection, serves queries through four acts:

1. a connection drops mid-query: its worker reconnects and the query is retried;
2. a burst of urgent checkouts overtakes a backlog of slow reports;
3. a traffic surge: the pool bursts up to meet it, then shrinks back once it is over,
   with a live stats line every half second;
4. the final metrics.

Run it with `make demo`, `tasker demo` or `python -m tasker demo`; set `TASKER_DEMO_FAST=1`
for a short run.
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass
from functools import partial

from tasker import Event, TaskManager, UnhealthyOn, current_task

__all__ = ["main"]

_print_lock = threading.Lock()

_BROKEN_EVERY = 97  # one query in this many goes to a missing table


def say(message: str = "") -> None:
    """Print a line; several threads print, so lines must not interleave."""
    with _print_lock:
        print(message)


@dataclass(frozen=True)
class Plan:
    """How big each act is. `TASKER_DEMO_FAST=1` picks the short plan (about two seconds)."""

    backlog: int  # slow reports queued ahead of the urgent checkouts
    surge_seconds: float  # how long the traffic surge lasts
    surge_rate: int  # queries per second during the surge
    cool_down: float  # how long to watch the pool shrink back, at most
    tick: float  # seconds between two live stats lines


FULL = Plan(backlog=40, surge_seconds=4.5, surge_rate=160, cool_down=2.5, tick=0.5)
FAST = Plan(backlog=16, surge_seconds=0.6, surge_rate=160, cool_down=1.2, tick=0.25)


# ---------------------------------------------------------------------- the flaky database


class QueryError(Exception):
    """The query itself is wrong: the connection is fine."""


class Database:
    """A pretend database server. Connections drop now and then, as real ones do."""

    def __init__(self, seed: int) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._ids = itertools.count(1)
        self._queries = 0
        self._sabotage_at = 0
        self.opened = 0
        self.closed = 0

    def connect(self) -> Connection:
        with self._lock:
            self.opened += 1
            conn_id = next(self._ids)
            lifetime = self._rng.randint(40, 160)  # queries before the server drops it
        time.sleep(0.005)  # the handshake
        return Connection(self, conn_id, lifetime)

    def disconnect(self, connection: Connection) -> None:
        with self._lock:
            self.closed += 1

    def drop_connection_on_query(self, n: int) -> None:
        """Make the server drop whichever connection runs the `n`-th query from now."""
        with self._lock:
            self._sabotage_at = self._queries + n

    def count_query(self) -> bool:
        """Count one query; return `True` if the server drops its connection now."""
        with self._lock:
            self._queries += 1
            return self._queries == self._sabotage_at


class Connection:
    """One connection: good for a number of queries, then the server closes it."""

    def __init__(self, database: Database, conn_id: int, lifetime: int) -> None:
        self.database = database
        self.conn_id = conn_id
        self.lifetime = lifetime
        self.served = 0

    def execute(self, sql: str, seconds: float) -> int:
        if self.database.count_query() or self.served >= self.lifetime:
            raise ConnectionError(f"connection #{self.conn_id} lost: server closed it")
        if "FROM nowhere" in sql:
            raise QueryError(f'relation "nowhere" does not exist: {sql!r}')
        time.sleep(seconds)
        self.served += 1
        return len(sql)  # as many rows as characters: it is a very accommodating database


@dataclass(frozen=True)
class Answer:
    """What a query task returns: where it ran and on which attempt."""

    label: str
    conn_id: int
    attempt: int


def query(label: str, sql: str, seconds: float, connection: Connection) -> Answer:
    connection.execute(sql, seconds)
    task = current_task()
    return Answer(label, connection.conn_id, task.attempt if task is not None else 1)


class DropLogger:
    """A tasker `Logger` that prints dropped connections as they happen, and nothing else."""

    def log(self, level: int, event: str, /, **fields: object) -> None:
        if event == Event.WORKER_UNHEALTHY:
            say(f"    ! {fields['error']}; worker reconnects, task {fields['task_id']} is retried")


# ------------------------------------------------------------------------------ the acts


def flaky_connection(manager: TaskManager[Connection], database: Database) -> None:
    say("1. A connection drops mid-query")
    database.drop_connection_on_query(4)
    futures = [
        manager.submit(partial(query, f"user {n}", f"SELECT * FROM users WHERE id = {n}", 0.03))
        for n in range(1, 9)
    ]
    for future in futures:
        answer = future.result()
        retried = (
            f"  <- attempt {answer.attempt}, after a dropped connection"
            if answer.attempt > 1
            else ""
        )
        say(f"   {answer.label:<8} ok on connection #{answer.conn_id}{retried}")
    say(f"   {len(futures)} of {len(futures)} queries succeeded; the caller never saw the drop")


def priority_overtakes(manager: TaskManager[Connection], backlog: int) -> None:
    say(f"\n2. {backlog} slow reports are queued; then 5 urgent checkouts arrive with priority")
    order: list[str] = []  # "." for a report, "P" for a checkout, in order of completion

    def track(mark: str, future: Future[Answer]) -> None:
        order.append(mark)

    futures: list[Future[Answer]] = []
    for n in range(backlog):
        sql = f"SELECT sum(total) FROM orders WHERE region = {n}"
        future = manager.submit(partial(query, f"report {n}", sql, 0.04))
        future.add_done_callback(partial(track, "."))
        futures.append(future)
    time.sleep(0.05)
    for n in range(5):
        sql = f"UPDATE carts SET paid = true WHERE id = {n}"
        future = manager.submit(partial(query, f"checkout {n}", sql, 0.01), priority=True)
        future.add_done_callback(partial(track, "P"))
        futures.append(future)
    wait(futures)

    strip = "".join(order)
    last = strip.rindex("P") + 1
    say(f"   completion order (P = checkout, . = report): {strip}")
    say(
        f"   all 5 checkouts were done after {last} tasks; "
        f"{strip[last:].count('.')} reports queued before them were still waiting"
    )


def settle(manager: TaskManager[Connection], timeout: float) -> None:
    """Wait, up to `timeout` seconds, until the idle burst workers have retired."""
    deadline = time.perf_counter() + timeout
    while manager.stats().burst_workers and time.perf_counter() < deadline:
        time.sleep(0.05)


class LiveStats:
    """Prints a one-line summary of the manager every `tick` seconds, from its own thread."""

    def __init__(self, manager: TaskManager[Connection], tick: float) -> None:
        self._manager = manager
        self._tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-stats")
        self._started = time.perf_counter()
        self.peak_workers = 0
        self.peak_arrival_rate = 0.0
        self.peak_completion_rate = 0.0

    def __enter__(self) -> LiveStats:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            s = self._manager.stats()
            m = self._manager.metrics()
            self.peak_workers = max(self.peak_workers, s.active_workers)
            self.peak_arrival_rate = max(self.peak_arrival_rate, m.task_arrival_rate)
            self.peak_completion_rate = max(self.peak_completion_rate, m.task_completion_rate)
            elapsed = time.perf_counter() - self._started
            bar = "#" * s.busy_workers + "." * (s.active_workers - s.busy_workers)
            say(
                f"   {elapsed:4.1f}s  workers {s.active_workers:>2} ({s.burst_workers:>2} burst) "
                f"{bar:<{s.max_workers}}  queued {s.queued_tasks + s.priority_tasks:>3}  "
                f"in {m.task_arrival_rate:5.1f}/s  out {m.task_completion_rate:5.1f}/s"
            )


def surge(manager: TaskManager[Connection], plan: Plan) -> dict[str, int]:
    say(
        f"\n3. A surge ramping up to {plan.surge_rate} queries/s for {plan.surge_seconds:.1f} s, "
        "then quiet  (# busy worker, . idle worker)"
    )
    rng = random.Random(42)
    futures: list[Future[Answer]] = []
    step = 0.02
    started = time.perf_counter()
    owed = 0.0
    while (elapsed := time.perf_counter() - started) < plan.surge_seconds:
        # the traffic ramps up from a quarter of the peak rate to the full rate at half time
        ramp = min(1.0, 0.25 + 1.5 * elapsed / plan.surge_seconds)
        owed += plan.surge_rate * ramp * step
        while owed >= 1:
            owed -= 1
            n = len(futures)
            # now and then, a broken query
            table = "nowhere" if n % _BROKEN_EVERY == _BROKEN_EVERY - 1 else "products"
            sql = f"SELECT * FROM {table} WHERE id = {n}"
            futures.append(manager.submit(partial(query, f"q{n}", sql, rng.uniform(0.02, 0.06))))
        time.sleep(step)
    wait(futures)

    # Quiet again: burst workers that find nothing to do retire, down to the base workers.
    settle(manager, plan.cool_down)
    time.sleep(plan.tick)  # one more live line, showing the pool at rest

    outcomes = {"ok": 0, "failed": 0}
    for future in futures:
        outcomes["ok" if future.exception() is None else "failed"] += 1
    return outcomes


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print a boxed table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        padded = [first.ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    say(f"   {rule}")
    say(f"   {line(header)}")
    say(f"   {rule}")
    for row in rows:
        say(f"   {line(row)}")
    say(f"   {rule}")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def final_metrics(
    manager: TaskManager[Connection], database: Database, live: LiveStats, elapsed: float
) -> None:
    m = manager.metrics()
    say("\n4. Final metrics")
    print_table(
        ["latency", "p50", "p95", "p99", "average"],
        [
            [
                "run time",
                ms(m.p50_execution_time),
                ms(m.p95_execution_time),
                ms(m.p99_execution_time),
                ms(m.average_execution_time),
            ],
            [
                "wait in queue",
                ms(m.p50_wait_time),
                ms(m.p95_wait_time),
                ms(m.p99_wait_time),
                ms(m.average_wait_time),
            ],
        ],
    )
    finished = m.total_tasks_completed + m.total_tasks_failed
    print_table(
        ["totals and rates", ""],
        [
            ["tasks arrived", f"{m.total_tasks_arrived}"],
            ["tasks completed", f"{m.total_tasks_completed}"],
            ["tasks failed (bad queries)", f"{m.total_tasks_failed}"],
            ["retries after a dropped connection", f"{m.total_tasks_retried}"],
            ["success rate", f"{m.success_rate:.1%}"],
            ["average throughput (whole run)", f"{finished / elapsed:.1f} tasks/s"],
            ["peak arrival rate", f"{live.peak_arrival_rate:.1f} tasks/s"],
            ["peak completion rate", f"{live.peak_completion_rate:.1f} tasks/s"],
            ["peak workers", f"{live.peak_workers} of {manager.stats().max_workers}"],
            ["connections opened / closed", f"{database.opened} / {database.closed}"],
        ],
    )


def main() -> None:
    """Run the showcase (about seven seconds; two with `TASKER_DEMO_FAST=1`)."""
    plan = FAST if os.environ.get("TASKER_DEMO_FAST", "") not in ("", "0") else FULL
    database = Database(seed=7)
    started = time.perf_counter()
    say("tasker demo: 2 workers, each holding a database connection, bursting up to 10")
    say()
    manager = (
        TaskManager.builder()
        .with_name("db")
        .with_resource(database.connect, database.disconnect)
        .with_workers(2, max_workers=10)
        .with_resource_pool(0)  # the demo never calls run_task
        .with_health_check(UnhealthyOn(ConnectionError))
        .with_max_retries(3)
        .with_logger(DropLogger())
        .build()
    )
    with manager:
        flaky_connection(manager, database)
        priority_overtakes(manager, plan.backlog)
        settle(manager, plan.cool_down)
        with LiveStats(manager, plan.tick) as live:
            outcomes = surge(manager, plan)
        say(f"   surge done: {outcomes['ok']} queries ok, {outcomes['failed']} bad queries failed")
        elapsed = time.perf_counter() - started
    # The manager is stopped: every worker has exited and every connection is closed.
    final_metrics(manager, database, live, elapsed)
    say(f"\nDone in {time.perf_counter() - started:.1f} s; manager {manager.state}.")


if __name__ == "__main__":
    main()
