"""Scaling benchmark: every scaling policy under one load profile (`make bench`).

One load profile runs on the thread executor (2 base workers, at most 16, a decision every
100 ms, tasks sleeping 20 ms) under each built-in policy (`rate`, `queue-depth`, `latency`,
`fixed`) and under `go-lifetime`, a reimplementation of the Go tasker's burst manager:

1. ramp: 0 to 150 tasks/s (3 workers' worth);
2. steady at 150 tasks/s;
3. step: 400 tasks/s, which needs ceil(400 x 0.02) = 8 workers;
4. spike: 700 tasks/s for half a second;
5. idle: no arrivals, until the burst workers have retired (at most 5 s).

Arrivals come from a driver thread that follows a precomputed schedule (it sleeps until each
arrival is due and catches up at once when late, so pacing errors never accumulate). Another
thread polls `stats()` every 10 ms to time two events precisely, and every 50 ms records
workers, queue depth and the arrival rate the manager measures, for the flapping count and the
plot. Reported per policy:

- reach: time from the step until `active_workers` first reaches the needed count, also in
  decision intervals; target for `rate`: within 3 intervals;
- p95 queue wait: from `submit()` to the task starting, over every task of the run; tasks
  still queued when the run ends count with their wait so far, and the figure is then shown
  as a lower bound (`>=`); the library's own figure is in the JSON;
- flapping: direction changes of `active_workers` (sampled every 50 ms) during the step's
  steady load, its first second excluded; target for `rate`: at most 2;
- retire: time from the end of the load until `burst_workers` is 0; target for `rate`:
  within 2 s.

Each run ends with `kill()`, so a policy that left a long backlog (`fixed`) does not drain it
for the next minute. The table goes to stdout, progress to stderr; every figure and every
sampled series go to `benchmarks/results/scaling.json`, and the plot (workers, queue depth and
arrival rate over time, one line per policy) to `docs/img/scaling.png` when matplotlib is
installed.

    python benchmarks/scaling.py                  # about a minute
    python benchmarks/scaling.py --quick          # about 2 s per policy, for smoke tests
    python benchmarks/scaling.py --only rate go-lifetime --no-plot
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

from tasker import ScalingPolicy, ScalingSnapshot, TaskManager

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

BASE_WORKERS = 2
MAX_WORKERS = 16
INTERVAL = 0.1
TASK_SECONDS = 0.02
SAMPLE_EVERY = 0.05
POLL_EVERY = 0.01
POLICIES = ("rate", "queue-depth", "latency", "fixed", "go-lifetime")

# targets for "rate"
TARGET_REACH_INTERVALS = 3
TARGET_FLAPS = 2
TARGET_RETIRE_S = 2.0


# --------------------------------------------------------------------------- the Go algorithm


class GoLifetimePolicy:
    """The Go tasker's burst manager, as a `ScalingPolicy`: it sees lifetime averages.

    Every interval the Go manager reads its collector's rates, which are totals divided by the
    time since the collector was created (never a recent window), and:

    - with no completion yet but arrivals, adds one worker;
    - when arrivals > completions, adds `ceil((arrival - completion) / per_worker)` workers,
      where `per_worker = completion / active workers`, capped at the maximum;
    - when completions > arrivals, retires `floor((completion - arrival) / per_worker)` burst
      workers.

    The comparisons are strict, as in the Go source (`tolerance` = 0); a positive `tolerance`
    requires arrivals to exceed completions by that fraction before growing.

    A `ScalingSnapshot` carries only the recent windowed rates, so the policy keeps lifetime
    counters of its own: `bind()` hands it a function returning the manager's totals (tasks
    arrived, tasks finished: completed + failed, from `metrics()`) and the monotonic time the
    manager was created, and the rates are `total / (snapshot.now - created)`, exactly as the
    Go collector computes them (it counts successes only; no task fails here). Until bound, it
    keeps the pool's size.

    Two consequences show in the results. Finished tasks never outnumber arrived ones, so the
    shrink branch cannot fire: burst workers are never retired. And `arrival - completion` is
    `tasks in flight / elapsed`, positive whenever a task is queued or running, so the pool
    grows at every decision taken while any work is in flight, up to the maximum.
    """

    def __init__(self, *, interval: float = INTERVAL, tolerance: float = 0.0) -> None:
        self._interval = interval
        self._tolerance = tolerance
        self._totals: Callable[[], tuple[int, int]] | None = None
        self._created = 0.0

    @property
    def interval(self) -> float:
        """Seconds between two decisions."""
        return self._interval

    def bind(self, totals: Callable[[], tuple[int, int]], created: float) -> None:
        """Read lifetime totals from `totals()`, counted from the monotonic time `created`."""
        self._created = created
        self._totals = totals

    def target_workers(self, snapshot: ScalingSnapshot) -> int:
        """Return the worker count the Go burst manager would move to."""
        s = snapshot
        elapsed = s.now - self._created
        if self._totals is None or elapsed <= 0 or s.workers == 0:
            return s.workers
        arrived, finished = self._totals()
        arrival, completion = arrived / elapsed, finished / elapsed
        per_worker = completion / s.workers
        if per_worker == 0:
            return s.workers + 1 if arrival > 0 else s.workers
        if arrival > completion * (1 + self._tolerance):
            return min(s.max_workers, s.workers + math.ceil((arrival - completion) / per_worker))
        if completion > arrival:
            burst = s.workers - s.base_workers
            return s.workers - min(math.floor((completion - arrival) / per_worker), burst)
        return s.workers

    def __repr__(self) -> str:
        return f"GoLifetimePolicy(interval={self._interval}, tolerance={self._tolerance})"


# --------------------------------------------------------------------------- the load profile


@dataclass(frozen=True)
class Phase:
    """A stretch of the load whose arrival rate moves linearly from `start` to `end`."""

    name: str
    seconds: float
    start: float
    end: float

    def arrivals(self, t: float) -> float:
        """Expected arrivals in the first `t` seconds of the phase."""
        return self.start * t + (self.end - self.start) * t * t / (2 * self.seconds)

    def time_of(self, n: float) -> float:
        """When, into the phase, the expected arrivals reach `n`."""
        a = (self.end - self.start) / (2 * self.seconds)
        if abs(a) < 1e-12:
            return n / self.start
        return (-self.start + math.sqrt(self.start**2 + 4 * a * n)) / (2 * a)

    def rate(self, t: float) -> float:
        """The arrival rate `t` seconds into the phase."""
        return self.start + (self.end - self.start) * t / self.seconds


@dataclass(frozen=True)
class Profile:
    """The load, then how long to watch the idle pool."""

    phases: tuple[Phase, ...]
    settle: float  # seconds after the step left out of the flapping count
    idle_min: float  # the idle phase lasts at least this long (for the plot) ...
    retire_cap: float  # ... and at most this long: bursts not gone by then "did not retire"
    tail: float  # idle time still recorded after the last burst worker retired

    def start_of(self, name: str) -> float:
        t = 0.0
        for phase in self.phases:
            if phase.name == name:
                return t
            t += phase.seconds
        raise KeyError(name)

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)

    @property
    def load_seconds(self) -> float:
        return sum(p.seconds for p in self.phases)

    def rate(self, t: float) -> float:
        """The offered arrival rate at `t` seconds (0 once the load is over)."""
        for phase in self.phases:
            if t < phase.seconds:
                return phase.rate(t)
            t -= phase.seconds
        return 0.0

    def schedule(self) -> list[float]:
        """Every arrival's due time, in seconds from the start of the load."""
        times: list[float] = []
        offset, done = 0.0, 0.0
        for phase in self.phases:
            total = phase.arrivals(phase.seconds)
            k = math.floor(done + 0.5) + 1  # arrival k is due when done + arrivals = k - 0.5
            while k - 0.5 <= done + total:
                times.append(offset + phase.time_of(k - 0.5 - done))
                k += 1
            offset += phase.seconds
            done += total
        return times

    def describe(self) -> str:
        parts = []
        for p in self.phases:
            if p.start == p.end:
                parts.append(f"{p.name} {p.end:.0f}/s for {p.seconds:g} s")
            else:
                parts.append(f"{p.name} {p.start:.0f}->{p.end:.0f}/s over {p.seconds:g} s")
        return ", ".join(parts) + f", then idle (at most {self.retire_cap:g} s)"


FULL = Profile(
    phases=(
        Phase("ramp", 1.5, 0.0, 150.0),
        Phase("steady", 1.0, 150.0, 150.0),
        Phase("step", 3.5, 400.0, 400.0),
        Phase("spike", 0.5, 700.0, 700.0),
    ),
    settle=1.0,
    idle_min=2.5,
    retire_cap=5.0,
    tail=0.5,
)
QUICK = Profile(
    phases=(
        Phase("ramp", 0.25, 0.0, 150.0),
        Phase("steady", 0.15, 150.0, 150.0),
        Phase("step", 0.6, 400.0, 400.0),
        Phase("spike", 0.15, 700.0, 700.0),
    ),
    settle=0.2,
    idle_min=0.2,
    retire_cap=1.0,
    tail=0.1,
)


def needed_workers(rate: float) -> int:
    """Workers that keep up with `rate` tasks/s of `TASK_SECONDS` each."""
    return math.ceil(rate * TASK_SECONDS - 1e-9)


# --------------------------------------------------------------------------- one run


def _work(starts: list[float], index: int, _resource: None) -> None:
    starts[index] = time.perf_counter()
    time.sleep(TASK_SECONDS)


@dataclass
class Sample:
    """The pool and the manager's view of the load, at `t` seconds from the start of the load."""

    t: float
    workers: int
    bursts: int
    busy: int
    queued: int
    arrival_rate: float
    completion_rate: float


class Sampler(threading.Thread):
    """Polls `stats()` every 10 ms for the two timed events; records a `Sample` every 50 ms."""

    def __init__(
        self, manager: TaskManager[None], t0: float, step_at: float, needed: int, load_end: float
    ) -> None:
        super().__init__(name="bench-sampler", daemon=True)
        self.manager = manager
        self.t0 = t0
        self.step_at = step_at
        self.needed = needed
        self.load_end = load_end
        self.samples: list[Sample] = []
        self.reached_after: float | None = None
        self.retired_after: float | None = None
        self.retired = threading.Event()
        self.peak_workers = 0
        self.peak_bursts = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        manager = self.manager
        every = round(SAMPLE_EVERY / POLL_EVERY)
        tick = 0
        due = self.t0
        while not self.stopping.is_set():
            now = time.perf_counter()
            t = now - self.t0
            stats = manager.stats()
            self.peak_workers = max(self.peak_workers, stats.active_workers)
            self.peak_bursts = max(self.peak_bursts, stats.burst_workers)
            reached = t >= self.step_at and stats.active_workers >= self.needed
            if self.reached_after is None and reached:
                self.reached_after = t - self.step_at
            if self.retired_after is None and t >= self.load_end and stats.burst_workers == 0:
                self.retired_after = t - self.load_end
                self.retired.set()
            if tick % every == 0:
                metrics = manager.metrics()
                self.samples.append(
                    Sample(
                        t=t,
                        workers=stats.active_workers,
                        bursts=stats.burst_workers,
                        busy=stats.busy_workers,
                        queued=stats.queued_tasks + stats.priority_tasks,
                        arrival_rate=metrics.task_arrival_rate,
                        completion_rate=metrics.task_completion_rate,
                    )
                )
            tick += 1
            due += POLL_EVERY
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:  # fell behind (a busy machine): resume the grid from now
                due = time.perf_counter()


def drive(
    manager: TaskManager[None],
    schedule: Sequence[float],
    t0: float,
    submitted: list[float],
    starts: list[float],
) -> None:
    """Submit every task of `schedule` on time: sleep until it is due, submit late ones at once."""
    perf_counter, sleep, submit = time.perf_counter, time.sleep, manager.submit
    for index, due in enumerate(schedule):
        delay = t0 + due - perf_counter()
        if delay > 0:
            sleep(delay)
        submitted[index] = perf_counter()
        submit(partial(_work, starts, index))


@dataclass
class Result:
    """One policy's run."""

    policy: str
    description: str
    reach_s: float | None  # None: never reached the needed count during the step
    p95_wait_s: float
    p95_wait_is_lower_bound: bool
    library_p95_wait_s: float
    direction_changes: int
    worker_moves: int
    steady_workers_min: int
    steady_workers_max: int
    retire_s: float | None  # None: bursts still alive `retire_cap` seconds after the load
    peak_workers: int
    peak_bursts: int
    tasks: int
    never_started: int
    submit_lag_max_s: float
    samples: list[Sample] = field(default_factory=list)


def build_manager(name: str) -> tuple[TaskManager[None], ScalingPolicy | str]:
    builder = (
        TaskManager.builder()
        .with_workers(BASE_WORKERS, max_workers=MAX_WORKERS)
        .with_logger("null")
    )
    if name == "go-lifetime":
        policy = GoLifetimePolicy(interval=INTERVAL)
        created = time.monotonic()
        manager = builder.with_policy(policy).build()

        def totals() -> tuple[int, int]:
            m = manager.metrics()
            return m.total_tasks_arrived, m.total_tasks_completed + m.total_tasks_failed

        policy.bind(totals, created)
        return manager, policy
    manager = builder.with_policy(name, interval=INTERVAL).build()
    return manager, name


def run_policy(name: str, profile: Profile) -> Result:
    manager, policy = build_manager(name)
    schedule = profile.schedule()
    submitted = [math.nan] * len(schedule)
    starts = [math.nan] * len(schedule)
    step_at = profile.start_of("step")
    step = profile.phase("step")
    load_end = profile.load_seconds
    try:
        gc.collect()
        t0 = time.perf_counter() + 0.05
        sampler = Sampler(manager, t0, step_at, needed_workers(step.end), load_end)
        driver = threading.Thread(
            target=drive,
            args=(manager, schedule, t0, submitted, starts),
            name="bench-driver",
            daemon=True,
        )
        sampler.start()
        driver.start()
        driver.join()
        # idle: watch the bursts retire, then keep recording for the plot
        until = t0 + load_end + profile.retire_cap
        sampler.retired.wait(max(0.0, until - time.perf_counter()))
        idle = profile.retire_cap
        if sampler.retired_after is not None:
            idle = min(
                profile.retire_cap, max(profile.idle_min, sampler.retired_after + profile.tail)
            )
        time.sleep(max(0.0, t0 + load_end + idle - time.perf_counter()))
        ended = time.perf_counter()
        library_p95 = manager.metrics().p95_wait_time
        sampler.stopping.set()
        sampler.join()
    finally:
        manager.kill()
        manager.join(10)

    waits = sorted(
        (s if not math.isnan(s) else ended) - q for q, s in zip(submitted, starts, strict=True)
    )
    censored = [ended - q for q, s in zip(submitted, starts, strict=True) if math.isnan(s)]
    p95 = waits[max(0, math.ceil(0.95 * len(waits)) - 1)]
    steady = [
        s.workers
        for s in sampler.samples
        if step_at + profile.settle <= s.t < step_at + step.seconds
    ]
    changes, moves = direction_changes(steady)
    return Result(
        policy=name,
        description=repr(policy) if not isinstance(policy, str) else policy,
        reach_s=sampler.reached_after,
        p95_wait_s=p95,
        p95_wait_is_lower_bound=bool(censored) and min(censored) <= p95,
        library_p95_wait_s=library_p95,
        direction_changes=changes,
        worker_moves=moves,
        steady_workers_min=min(steady, default=0),
        steady_workers_max=max(steady, default=0),
        retire_s=sampler.retired_after,
        peak_workers=sampler.peak_workers,
        peak_bursts=sampler.peak_bursts,
        tasks=len(schedule),
        never_started=len(censored),
        submit_lag_max_s=max(q - (t0 + due) for q, due in zip(submitted, schedule, strict=True)),
        samples=sampler.samples,
    )


def direction_changes(workers: Sequence[int]) -> tuple[int, int]:
    """How often the worker count turns around (up then down, or down then up), and moves."""
    signs = [1 if b > a else -1 for a, b in pairwise(workers) if b != a]
    turns = sum(1 for a, b in pairwise(signs) if a != b)
    return turns, len(signs)


# --------------------------------------------------------------------------- report


@dataclass
class Check:
    """A `rate` target and whether it was met."""

    name: str
    target: str
    measured: str
    met: bool


def checks_for(result: Result, profile: Profile) -> list[Check]:
    needed = needed_workers(profile.phase("step").end)
    reach_limit = TARGET_REACH_INTERVALS * INTERVAL
    return [
        Check(
            "reach",
            f"{needed} workers within {TARGET_REACH_INTERVALS} intervals "
            f"({reach_limit:.2f} s) of the step",
            _reach(result),
            result.reach_s is not None and result.reach_s <= reach_limit + 1e-9,
        ),
        Check(
            "flapping",
            f"<= {TARGET_FLAPS} direction changes under steady load",
            str(result.direction_changes),
            result.direction_changes <= TARGET_FLAPS,
        ),
        Check(
            "retire",
            f"bursts retired within {TARGET_RETIRE_S:g} s of idle",
            _retire(result, profile),
            result.retire_s is not None and result.retire_s <= TARGET_RETIRE_S,
        ),
    ]


def _reach(r: Result) -> str:
    if r.reach_s is None:
        return "never"
    return f"{r.reach_s:.2f} s ({r.reach_s / INTERVAL:.1f} int.)"


def _retire(r: Result, profile: Profile) -> str:
    if r.retire_s is None:
        return f"not within {profile.retire_cap:g} s"
    if r.peak_bursts == 0:
        return "no bursts"
    return f"{r.retire_s:.2f} s"


def _wait(r: Result) -> str:
    text = f"{r.p95_wait_s * 1000:.0f} ms" if r.p95_wait_s < 1 else f"{r.p95_wait_s:.2f} s"
    return (">= " if r.p95_wait_is_lower_bound else "") + text


def render(results: Sequence[Result], profile: Profile, header: str) -> str:
    needed = needed_workers(profile.phase("step").end)
    columns = (
        "policy",
        f"reach {needed} after step",
        "p95 queue wait",
        "direction changes",
        "steady workers",
        "bursts retired",
        "peak",
        "verdict",
    )
    rows: list[tuple[str, ...]] = []
    rate_checks: list[Check] = []
    for r in results:
        verdict = ""
        if r.policy == "rate":
            rate_checks = checks_for(r, profile)
            verdict = ", ".join(f"{c.name} {'met' if c.met else 'MISSED'}" for c in rate_checks)
        rows.append(
            (
                r.policy,
                _reach(r),
                _wait(r),
                str(r.direction_changes),
                f"{r.steady_workers_min}-{r.steady_workers_max}",
                _retire(r, profile),
                str(r.peak_workers),
                verdict,
            )
        )
    widths = [max(len(row[i]) for row in [columns, *rows]) for i in range(len(columns))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    out = [header, "", line(columns), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    if rate_checks:
        out += ["", 'targets for "rate":']
        width = max(len(c.target) for c in rate_checks)
        out += [
            f"  {c.target.ljust(width)}  {c.measured:<16}  {'met' if c.met else 'MISSED'}"
            for c in rate_checks
        ]
    censored = [r for r in results if r.never_started]
    if censored:
        out.append("")
        out += [
            f"{r.policy}: {r.never_started} of {r.tasks} tasks had not started when the run "
            "ended; their wait so far counts towards the p95"
            for r in censored
        ]
    return "\n".join(out)


# --------------------------------------------------------------------------- plot

COLORS = {
    "rate": "#1f77b4",
    "queue-depth": "#ff7f0e",
    "latency": "#2ca02c",
    "fixed": "#7f7f7f",
    "go-lifetime": "#d62728",
}


def plot(results: Sequence[Result], profile: Profile, path: Path) -> bool:
    """Draw the plot to `path`; `False` (with a note) when matplotlib is not installed."""
    try:
        import matplotlib as mpl  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        print(
            "note: matplotlib is not installed, no plot drawn "
            "(install it, or pass --no-plot to silence this note)",
            file=sys.stderr,
        )
        return False
    mpl.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]

    end = max((s.t for r in results for s in r.samples), default=profile.load_seconds)
    grid = [i * 0.01 for i in range(int(end / 0.01) + 1)]
    offered = [profile.rate(t) for t in grid]
    needed = [max(BASE_WORKERS, needed_workers(rate)) for rate in offered]

    fig, (top, middle, bottom) = plt.subplots(
        3, 1, sharex=True, figsize=(11, 9), gridspec_kw={"height_ratios": [1.3, 1, 1]}
    )
    (needed_line,) = top.step(
        grid,
        needed,
        where="post",
        color="black",
        linestyle=":",
        linewidth=1.5,
        label="needed: ceil(offered rate x 20 ms)",
    )
    bottom.plot(grid, offered, color="black", linestyle="--", linewidth=1.2, label="offered load")
    lines = []
    for r in results:
        t = [s.t for s in r.samples]
        color = COLORS.get(r.policy)
        (line,) = top.step(
            t,
            [s.workers for s in r.samples],
            where="post",
            color=color,
            label=r.policy,
            linewidth=1.6,
        )
        lines.append(line)
        middle.plot(t, [s.queued for s in r.samples], color=color, linewidth=1.4)
        bottom.plot(t, [s.arrival_rate for s in r.samples], color=color, linewidth=1.4)

    top.set_ylabel("active workers")
    top.set_ylim(0, MAX_WORKERS + 1.5)
    top.set_yticks(range(0, MAX_WORKERS + 1, 2))
    middle.set_ylabel("queued tasks\n(symmetric log scale)")
    middle.set_yscale("symlog", linthresh=10)
    middle.set_ylim(bottom=0)
    bottom.set_ylabel("arrival rate, tasks/s\n(measured over 1 s)")
    bottom.set_xlabel("seconds from the start of the load")
    bottom.set_xlim(0, end)
    bottom.set_ylim(0, max(offered, default=0) * 1.15 + 1)
    bottom.text(
        0.99,
        0.62,
        "every policy gets the same arrivals: their lines overlap",
        transform=bottom.transAxes,
        ha="right",
        fontsize=9,
        color="0.3",
    )

    edges = [0.0]
    for phase in profile.phases:
        edges.append(edges[-1] + phase.seconds)
    names = [p.name for p in profile.phases] + ["idle"]
    spans = list(zip(edges, [*edges[1:], end], strict=True))
    for axis in (top, middle, bottom):
        axis.grid(True, alpha=0.3)
        for i, (a, b) in enumerate(spans):
            if i % 2:
                axis.axvspan(a, b, color="0.93", zorder=0)
    for name, (a, b) in zip(names, spans, strict=True):
        top.text((a + b) / 2, MAX_WORKERS + 0.75, name, ha="center", va="center", fontsize=10)

    top.legend(handles=[needed_line], loc="center right", fontsize=9, framealpha=0.9)
    bottom.legend(loc="upper right", fontsize=9, framealpha=0.9)
    fig.legend(
        lines,
        [r.policy for r in results],
        loc="upper center",
        ncol=len(results),
        frameon=False,
        fontsize=11,
        bbox_to_anchor=(0.5, 0.96),
    )
    fig.suptitle(
        f"Scaling policies: {BASE_WORKERS} base / {MAX_WORKERS} max workers, "
        f"{TASK_SECONDS * 1000:.0f} ms tasks, a decision every {INTERVAL * 1000:.0f} ms",
        y=0.99,
        fontsize=13,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------- the driver


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark tasker's scaling policies.")
    parser.add_argument("--quick", action="store_true", help="a short profile (smoke test)")
    parser.add_argument("--only", nargs="+", choices=POLICIES, help="run these policies")
    parser.add_argument("--output", type=Path, help="where to write the JSON results")
    parser.add_argument("--plot", type=Path, help="where to write the PNG plot")
    parser.add_argument("--no-plot", action="store_true", help="do not draw the plot")
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else FULL
    names: list[str] = args.only or list(POLICIES)

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    results: list[Result] = []
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name}", file=sys.stderr, flush=True)
        results.append(run_policy(name, profile))
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()[0]

    header = (
        f"scaling policies{' (quick)' if args.quick else ''}: thread executor, "
        f"{BASE_WORKERS} base / {MAX_WORKERS} max workers, {TASK_SECONDS * 1000:.0f} ms tasks, "
        f"a decision every {INTERVAL * 1000:.0f} ms; CPython {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.system()}; {elapsed:.0f} s in all, 1-min load "
        f"average {load_before:.2f} before, {load_after:.2f} after; arrivals at most "
        f"{max(r.submit_lag_max_s for r in results) * 1000:.1f} ms behind schedule\n"
        f"load: {profile.describe()}\n"
        f"reach: step to active_workers >= needed (polled every {POLL_EVERY * 1000:.0f} ms); "
        f"direction changes: active_workers every {SAMPLE_EVERY * 1000:.0f} ms during the step, "
        f"its first {profile.settle:g} s excluded; bursts retired: end of load to "
        "burst_workers == 0"
    )
    print(render(results, profile, header), flush=True)

    suffix = "-quick" if args.quick else ""
    output: Path = args.output or HERE / "results" / f"scaling{suffix}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    rate = next((r for r in results if r.policy == "rate"), None)
    document: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "quick": args.quick,
        "elapsed_s": elapsed,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "settings": {
            "base_workers": BASE_WORKERS,
            "max_workers": MAX_WORKERS,
            "interval_s": INTERVAL,
            "task_s": TASK_SECONDS,
            "sample_every_s": SAMPLE_EVERY,
            "poll_every_s": POLL_EVERY,
        },
        "profile": asdict(profile),
        "targets": {
            "rate": [asdict(c) for c in checks_for(rate, profile)] if rate is not None else []
        },
        "policies": {r.policy: asdict(r) for r in results},
    }
    output.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"\nresults written to {output}", file=sys.stderr)

    if not args.no_plot:
        default = (
            HERE / "results" / "scaling-quick.png" if args.quick else ROOT / "docs/img/scaling.png"
        )
        path: Path = args.plot or default
        if plot(results, profile, path):
            print(f"plot written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
