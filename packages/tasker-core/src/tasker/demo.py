"""The tasker showcase: a flaky database, priority work, bursting under load, and metrics.

A pool of workers, each holding a database connection, serves queries through four acts:

1. a connection drops mid-query: its worker reconnects and the query is retried;
2. a burst of urgent checkouts overtakes a backlog of slow reports;
3. a traffic surge: the pool bursts up to meet it, then shrinks back once it is over;
4. the final metrics.

On a terminal, with rich installed (`pip install "tasker-core[cli]"`), the surge is a live view
redrawn in place: workers and their busy bars, the queue, the rates, a latency sparkline. Where
the output is not a terminal (a pipe, a CI log), or without rich, or with `--plain`, it is a
stats line every half second.

Run it with `make demo`, `tasker demo` or `python -m tasker demo`; set `TASKER_DEMO_FAST=1`
for a short run.
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

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


@dataclass(frozen=True)
class Sample:
    """The pool at one tick of the live stats."""

    elapsed: float
    active: int
    burst: int
    busy: int
    max_workers: int
    queued: int
    rate_in: float
    rate_out: float
    latency: float | None  # mean seconds from submission to outcome, of the tasks done this tick


class View(Protocol):
    """Shows each sample: `PlainView` or `LiveView`."""

    def __enter__(self) -> object: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def show(self, sample: Sample) -> None: ...


class PlainView:
    """One stats line per tick: for pipes, logs, and terminals without rich."""

    def __enter__(self) -> PlainView:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def show(self, s: Sample) -> None:
        bar = "#" * s.busy + "." * (s.active - s.busy)
        say(
            f"   {s.elapsed:4.1f}s  workers {s.active:>2} ({s.burst:>2} burst) "
            f"{bar:<{s.max_workers}}  queued {s.queued:>3}  "
            f"in {s.rate_in:5.1f}/s  out {s.rate_out:5.1f}/s"
        )


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float]) -> str:
    """`values` as bars of eight heights, from the smallest to the largest."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(SPARKS[round((v - low) / span * (len(SPARKS) - 1))] for v in values)


class LiveView:
    """A panel redrawn in place on a terminal, with colour (rich)."""

    def __init__(self, console: Any) -> None:
        from rich.live import Live  # noqa: PLC0415 - rich is optional: only for this view

        self._live = Live(console=console, refresh_per_second=8, transient=False)
        self._latencies: deque[float] = deque(maxlen=40)

    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._live.stop()

    def show(self, s: Sample) -> None:
        if s.latency is not None:
            self._latencies.append(s.latency)
        self._live.update(self._render(s), refresh=True)

    def _render(self, s: Sample) -> Any:
        from rich.panel import Panel  # noqa: PLC0415
        from rich.table import Table  # noqa: PLC0415
        from rich.text import Text  # noqa: PLC0415

        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", justify="right")
        table.add_column()
        workers = Text(f"{s.active:>2} ({s.burst:>2} burst)  ")
        workers.append("█" * s.busy, style="bold green")
        workers.append("█" * (s.active - s.busy), style="grey50")
        workers.append("·" * (s.max_workers - s.active), style="grey35")
        table.add_row("workers", workers)
        queue = Text(f"{s.queued:>3}  ")
        queue.append("▮" * min(s.queued, 40), style="yellow")
        table.add_row("queued", queue)
        table.add_row("rates", f"in {s.rate_in:5.1f}/s   out {s.rate_out:5.1f}/s")
        latency = Text(sparkline(self._latencies), style="magenta")
        if self._latencies:
            latency.append(f"  {ms(self._latencies[-1])}")
        table.add_row("latency", latency)
        legend = Text("█ busy", style="bold green")
        legend.append("  █ idle", style="grey50")
        legend.append("  · room to burst", style="grey35")
        table.add_row("", legend)
        return Panel(table, title=f"surge  {s.elapsed:4.1f}s", border_style="blue", expand=False)


def choose_view(*, plain: bool = False, console: Any = None) -> View:
    """The live view on a terminal with rich installed; the plain lines otherwise."""
    if plain:
        return PlainView()
    try:
        from rich.console import Console  # noqa: PLC0415 - an optional dependency
    except ImportError:
        return PlainView()
    console = Console() if console is None else console
    return LiveView(console) if console.is_terminal else PlainView()


class LiveStats:
    """Samples the manager every `tick` seconds, from its own thread, and shows each sample."""

    def __init__(self, manager: TaskManager[Connection], tick: float, view: View) -> None:
        self._manager = manager
        self._tick = tick
        self._view = view
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-stats")
        self._started = time.perf_counter()
        self._lock = threading.Lock()
        self._latencies: list[float] = []
        self.peak_workers = 0
        self.peak_arrival_rate = 0.0
        self.peak_completion_rate = 0.0

    def __enter__(self) -> LiveStats:
        self._view.__enter__()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._view.__exit__(*exc_info)

    def timed(self, future: Future[Answer]) -> None:
        """Count `future`'s latency, from now to its outcome, in the tick it ends in."""
        submitted = time.perf_counter()

        def done(_: Future[Answer]) -> None:
            with self._lock:
                self._latencies.append(time.perf_counter() - submitted)

        future.add_done_callback(done)

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            s = self._manager.stats()
            m = self._manager.metrics()
            with self._lock:
                latencies, self._latencies = self._latencies, []
            self.peak_workers = max(self.peak_workers, s.active_workers)
            self.peak_arrival_rate = max(self.peak_arrival_rate, m.task_arrival_rate)
            self.peak_completion_rate = max(self.peak_completion_rate, m.task_completion_rate)
            self._view.show(
                Sample(
                    elapsed=time.perf_counter() - self._started,
                    active=s.active_workers,
                    burst=s.burst_workers,
                    busy=s.busy_workers,
                    max_workers=s.max_workers,
                    queued=s.queued_tasks + s.priority_tasks,
                    rate_in=m.task_arrival_rate,
                    rate_out=m.task_completion_rate,
                    latency=sum(latencies) / len(latencies) if latencies else None,
                )
            )


def surge(manager: TaskManager[Connection], plan: Plan, live: LiveStats) -> dict[str, int]:
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
            future = manager.submit(partial(query, f"q{n}", sql, rng.uniform(0.02, 0.06)))
            live.timed(future)
            futures.append(future)
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


def main(*, plain: bool = False, console: Any = None) -> None:
    """Run the showcase (about seven seconds; two with `TASKER_DEMO_FAST=1`).

    Args:
        plain: print stats lines even on a terminal, instead of the live view.
        console: the `rich.console.Console` to draw the live view on (default: standard
            output's); the view is live only if it is a terminal and rich is installed.
    """
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
        say(
            f"\n3. A surge ramping up to {plan.surge_rate} queries/s for "
            f"{plan.surge_seconds:.1f} s, then quiet  (# busy worker, . idle worker)"
        )
        with LiveStats(manager, plan.tick, choose_view(plain=plain, console=console)) as live:
            outcomes = surge(manager, plan, live)
        say(f"   surge done: {outcomes['ok']} queries ok, {outcomes['failed']} bad queries failed")
        elapsed = time.perf_counter() - started
    # The manager is stopped: every worker has exited and every connection is closed.
    final_metrics(manager, database, live, elapsed)
    say(f"\nDone in {time.perf_counter() - started:.1f} s; manager {manager.state}.")


if __name__ == "__main__":
    main()
