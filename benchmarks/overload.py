"""Overload benchmark: a shared downstream of limited capacity, and the policies that size for it.

A simulated downstream is shared by every worker: up to C concurrent calls take 10 ms each;
past C each call takes longer with the excess (`10 ms x (1 + 2 x (n - C) / C)`, queueing
inside the downstream: at 1.5 C a call takes twice as long), and a call past 2 C fails at once
(after 1 ms) with an overload error. Tasks arrive open-loop at 1.5 x what C = 8 calls serve
(1200 tasks/s) through a bounded queue (`with_queue_limit`, submissions refused when full), on
the thread executor, for two phases: C = 8, then C = 4 (the load stays the same).

1. Sweep: a fixed pool of N = 1..32 workers through both phases, to find the best fixed N of
   each phase (goodput = successful tasks per second).
2. Policies: `rate`, `queue-depth`, `latency` and `adaptive`, with 2 base workers and at most
   32, on the same load. Targets for `adaptive`: goodput >= 0.9 x the best fixed N's, p99 run
   time <= 1.3 x the best fixed N's, within 5 s of the start from 2 workers, and within 3 s of
   the capacity drop for C = 4.
3. Memory under sustained overload (a fixed pool at C = 8's best size): the process's resident
   memory over 60 s with the bounded queue (submissions refused when full) and with an
   unbounded one, each in a fresh interpreter.

Goodput and p99 run time are measured over the second half of each phase (steady state);
convergence is the first time a 1 s window's goodput reaches 0.9 x the best fixed N's.
The table goes to stdout, progress to stderr; figures and series go to
`benchmarks/results/overload.json` and the plot to `docs/img/overload.png`.

    python benchmarks/overload.py              # about 6 minutes
    python benchmarks/overload.py --quick      # a few seconds, for smoke tests
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from tasker import QueueFullError, TaskManager

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

BASE_RUN = 0.010  # seconds per call while the downstream is not contended
CONTENTION = 2.0  # each call past the capacity adds this much of a base call per capacity
CAPACITIES = (8, 4)
RATE = 1.5 * CAPACITIES[0] / BASE_RUN  # 1200 tasks/s
QUEUE_LIMIT = 100
BASE_WORKERS = 2
MAX_WORKERS = 32
SAMPLE_EVERY = 0.05
BIN = 0.25  # seconds per goodput bin
POLICIES = ("rate", "queue-depth", "latency", "adaptive")

# targets for "adaptive"
TARGET_GOODPUT = 0.9
TARGET_P99 = 1.3
TARGET_REACH_S = 5.0
TARGET_RECOVER_S = 3.0


class OverloadedError(Exception):
    """The downstream refused a call: more than twice its capacity in flight."""


class Downstream:
    """A shared service of `capacity` useful concurrent calls."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._in_flight = 0

    def call(self) -> None:
        with self._lock:
            self._in_flight += 1
            n, c = self._in_flight, self.capacity
        try:
            if n > 2 * c:
                time.sleep(0.001)
                raise OverloadedError(f"{n} calls in flight, capacity {c}")
            time.sleep(BASE_RUN * (1 + CONTENTION * max(0, n - c) / c))
        finally:
            with self._lock:
                self._in_flight -= 1


@dataclass
class Phase:
    """One capacity's stretch of a run, measured over its second half."""

    capacity: int
    goodput: float = 0.0  # successful tasks per second
    error_rate: float = 0.0  # failed calls / calls
    rejected_per_s: float = 0.0
    p99_run_s: float = 0.0
    workers_min: int = 0
    workers_max: int = 0
    reach_s: float | None = None  # to 0.9 x the best fixed N's goodput (filled in later)


@dataclass
class Run:
    """One pool's run through both phases."""

    name: str
    phases: list[Phase]
    peak_workers: int
    t: list[float] = field(default_factory=list)
    workers: list[int] = field(default_factory=list)
    goodput_t: list[float] = field(default_factory=list)
    goodput: list[float] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)


def _task(_: None, downstream: Downstream, calls: list[tuple[float, float, bool]]) -> None:
    start = time.perf_counter()
    try:
        downstream.call()
    except OverloadedError:
        calls.append((time.perf_counter(), time.perf_counter() - start, False))
        raise
    end = time.perf_counter()
    calls.append((end, end - start, True))


def run_pool(name: str, phase_s: float, *, fixed: int | None = None) -> Run:
    """Drive one pool (a fixed size, or a policy by name) through both capacity phases."""
    builder = TaskManager.builder().with_logger("null").with_queue_limit(QUEUE_LIMIT)
    if fixed is not None:
        builder = builder.with_workers(fixed, max_workers=fixed).with_policy("fixed")
    else:
        builder = builder.with_workers(BASE_WORKERS, max_workers=MAX_WORKERS).with_policy(name)
    manager = builder.build()
    downstream = Downstream(CAPACITIES[0])
    calls: list[tuple[float, float, bool]] = []
    rejected: list[float] = []
    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    t0 = time.perf_counter() + 0.05

    def sample() -> None:
        due = t0
        while not stop.is_set():
            samples.append((time.perf_counter() - t0, manager.stats().active_workers))
            due += SAMPLE_EVERY
            stop.wait(max(0.0, due - time.perf_counter()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    total = phase_s * len(CAPACITIES)
    count = int(total * RATE)
    submit, perf = manager.submit, time.perf_counter
    try:
        for i in range(count):
            due = t0 + i / RATE
            if due >= t0 + phase_s and downstream.capacity == CAPACITIES[0]:
                downstream.capacity = CAPACITIES[1]
            delay = due - perf()
            if delay > 0:
                time.sleep(delay)
            try:
                submit(_task, downstream, calls, block=False)
            except QueueFullError:
                rejected.append(perf() - t0)
        stop.set()
        sampler.join()
    finally:
        manager.kill()
        manager.join(10)
    return _measure(name, phase_s, t0, calls, rejected, samples)


def _measure(  # noqa: PLR0917 - one run's raw figures
    name: str,
    phase_s: float,
    t0: float,
    calls: list[tuple[float, float, bool]],
    rejected: list[float],
    samples: list[tuple[float, int]],
) -> Run:
    phases = []
    for index, capacity in enumerate(CAPACITIES):
        start, end = (index + 0.5) * phase_s, (index + 1) * phase_s
        window = [(r, ok) for e, r, ok in calls if start <= e - t0 < end]
        good = sorted(r for r, ok in window if ok)
        workers = [n for t, n in samples if start <= t < end]
        phases.append(
            Phase(
                capacity=capacity,
                goodput=len(good) / (end - start),
                error_rate=(len(window) - len(good)) / len(window) if window else 0.0,
                rejected_per_s=sum(1 for t in rejected if start <= t < end) / (end - start),
                p99_run_s=good[max(0, math.ceil(0.99 * len(good)) - 1)] if good else math.nan,
                workers_min=min(workers, default=0),
                workers_max=max(workers, default=0),
            )
        )
    bins = int(len(CAPACITIES) * phase_s / BIN)
    good_bins, bad_bins = [0] * bins, [0] * bins
    for end_time, _, ok in calls:
        b = int((end_time - t0) / BIN)
        if 0 <= b < bins:
            (good_bins if ok else bad_bins)[b] += 1
    return Run(
        name=name,
        phases=phases,
        peak_workers=max((n for _, n in samples), default=0),
        t=[t for t, _ in samples],
        workers=[n for _, n in samples],
        goodput_t=[(b + 1) * BIN for b in range(bins)],
        goodput=[g / BIN for g in good_bins],
        errors=[(b / (g + b) if g + b else 0.0) for g, b in zip(good_bins, bad_bins, strict=True)],
    )


def _goodput(run: Run, phase: int) -> float:
    return run.phases[phase].goodput


def reach(run: Run, phase: int, phase_s: float, level: float) -> float | None:
    """Seconds from the phase's start until a 1 s window's goodput first reaches `level`."""
    per_window = round(1.0 / BIN)
    start = phase * phase_s
    for i in range(len(run.goodput) - per_window + 1):
        window_start = run.goodput_t[i] - BIN
        if window_start < start or window_start >= start + phase_s:
            continue
        if sum(run.goodput[i : i + per_window]) / per_window >= level:
            return run.goodput_t[i + per_window - 1] - start
    return None


# --------------------------------------------------------------------------- memory


def memory_run(bounded: bool, seconds: float, workers: int) -> list[tuple[float, float]]:
    """Resident memory (MiB) over `seconds` of 1.5 x overload on a fixed pool."""
    builder = TaskManager.builder().with_logger("null").with_workers(workers, max_workers=workers)
    if bounded:
        builder = builder.with_queue_limit(QUEUE_LIMIT)
    manager = builder.with_policy("fixed").build()
    downstream = Downstream(CAPACITIES[0])
    calls: list[tuple[float, float, bool]] = []
    series: list[tuple[float, float]] = []
    page = os.sysconf("SC_PAGE_SIZE") / 2**20
    t0 = time.perf_counter()
    next_sample = t0
    i = 0
    try:
        while True:
            now = time.perf_counter()
            if now - t0 >= seconds:
                break
            if now >= next_sample:
                with open("/proc/self/statm", encoding="ascii") as statm:
                    series.append((now - t0, int(statm.read().split()[1]) * page))
                next_sample += 0.5
                calls.clear()  # only the queue's growth should show
            due = t0 + i / RATE
            if due > now:
                time.sleep(due - now)
            i += 1
            with contextlib.suppress(QueueFullError):  # refused: the queue is full
                manager.submit(_task, downstream, calls, block=False)
    finally:
        manager.kill()
        manager.join(10)
    return series


# --------------------------------------------------------------------------- report


def render(sweep: Sequence[Run], runs: Sequence[Run], best: Sequence[Run], header: str) -> str:
    out = [header, "", "fixed pools (the sweep): goodput in tasks/s, p99 run time in ms"]
    line = "  N   " + "   ".join(f"C={c}: goodput  p99   errors" for c in CAPACITIES)
    out.append(line)
    for run in sweep:
        cells = [
            f"{p.goodput:12.0f} {p.p99_run_s * 1000:5.1f} {p.error_rate:7.1%}" for p in run.phases
        ]
        out.append(f"  {run.name[6:]:>3} " + "   ".join(cells))
    out += [
        "",
        "best fixed N: "
        + ", ".join(
            f"C={c}: N={b.name[6:]} ({b.phases[i].goodput:.0f}/s, "
            f"p99 {b.phases[i].p99_run_s * 1e3:.1f} ms)"
            for i, (c, b) in enumerate(zip(CAPACITIES, best, strict=True))
        ),
    ]
    out += [
        "",
        "policies (2 base / 32 max workers): goodput vs best fixed N, p99 vs best, errors, "
        "workers, time to 0.9 x best goodput",
    ]
    for run in runs:
        for i, p in enumerate(run.phases):
            b = best[i].phases[i]
            reached = "never" if p.reach_s is None else f"{p.reach_s:.2f} s"
            out.append(
                f"  {run.name:<12} C={p.capacity}: goodput {p.goodput:6.0f}/s "
                f"({p.goodput / b.goodput:5.0%}), p99 {p.p99_run_s * 1e3:5.1f} ms "
                f"({p.p99_run_s / b.p99_run_s:4.2f}x), errors {p.error_rate:5.1%}, "
                f"workers {p.workers_min}-{p.workers_max}, reached in {reached}"
            )
    return "\n".join(out)


def checks(adaptive: Run, best: Sequence[Run]) -> list[tuple[str, str, bool]]:
    found = []
    for i, (p, limit) in enumerate(
        zip(adaptive.phases, (TARGET_REACH_S, TARGET_RECOVER_S), strict=True)
    ):
        b = best[i].phases[i]
        found += [
            (
                f"C={p.capacity}: goodput >= {TARGET_GOODPUT} x best fixed",
                f"{p.goodput / b.goodput:.2f}",
                p.goodput >= TARGET_GOODPUT * b.goodput,
            ),
            (
                f"C={p.capacity}: p99 run time <= {TARGET_P99} x best fixed",
                f"{p.p99_run_s / b.p99_run_s:.2f}",
                p.p99_run_s <= TARGET_P99 * b.p99_run_s,
            ),
            (
                f"C={p.capacity}: 0.9 x best goodput within {limit:g} s",
                "never" if p.reach_s is None else f"{p.reach_s:.2f} s",
                p.reach_s is not None and p.reach_s <= limit,
            ),
        ]
    return found


# --------------------------------------------------------------------------- plot

COLORS = {
    "rate": "#1f77b4",
    "queue-depth": "#ff7f0e",
    "latency": "#2ca02c",
    "adaptive": "#d62728",
    "best fixed": "#7f7f7f",
}


def plot(
    sweep: Sequence[Run],
    runs: Sequence[Run],
    memory: dict[str, list[tuple[float, float]]],
    phase_s: float,
    path: Path,
) -> bool:
    """Draw the figure to `path`; `False` (with a note) when matplotlib is not installed."""
    try:
        import matplotlib as mpl  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        print("note: matplotlib is not installed, no plot drawn", file=sys.stderr)
        return False
    mpl.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    (sweep_ax, memory_ax), (workers_ax, goodput_ax) = axes
    sizes = [int(r.name[6:]) for r in sweep]
    for i, capacity in enumerate(CAPACITIES):
        style = "-" if i == 0 else "--"
        sweep_ax.plot(
            sizes,
            [r.phases[i].goodput for r in sweep],
            style,
            color="0.3",
            marker=".",
            label=f"fixed N, C = {capacity}",
        )
        for run in runs:
            sweep_ax.axhline(
                run.phases[i].goodput,
                color=COLORS[run.name],
                linestyle=style,
                linewidth=1,
                alpha=0.8,
            )
    sweep_ax.set_xlabel("fixed workers N")
    sweep_ax.set_ylabel("goodput, successful tasks/s")
    sweep_ax.set_title("Sweep of fixed N (lines: each policy's goodput)", fontsize=10)
    sweep_ax.legend(fontsize=8)
    sweep_ax.grid(True, alpha=0.3)

    for label, series in memory.items():
        memory_ax.plot(
            [t for t, _ in series],
            [m for _, m in series],
            label=label,
            color="#d62728" if "unbounded" in label else "#1f77b4",
        )
    memory_ax.set_xlabel("seconds of 1.5 x overload")
    memory_ax.set_ylabel("resident memory, MiB")
    memory_ax.set_title("Memory: bounded vs unbounded queue", fontsize=10)
    memory_ax.legend(fontsize=8)
    memory_ax.grid(True, alpha=0.3)

    for run in runs:
        color = COLORS[run.name]
        workers_ax.step(run.t, run.workers, where="post", color=color, label=run.name)
        goodput_ax.plot(run.goodput_t, run.goodput, color=color, label=run.name, linewidth=1.2)
    capacity_t = [0.0, phase_s, phase_s, 2 * phase_s]
    workers_ax.plot(
        capacity_t,
        [CAPACITIES[0]] * 2 + [CAPACITIES[1]] * 2,
        ":",
        color="black",
        label="capacity C",
    )
    for ax in (workers_ax, goodput_ax):
        ax.axvline(phase_s, color="0.5", linewidth=0.8)
        ax.set_xlabel("seconds")
        ax.grid(True, alpha=0.3)
    workers_ax.set_ylabel("active workers")
    workers_ax.set_title("Workers: C drops from 8 to 4 mid-run", fontsize=10)
    workers_ax.legend(fontsize=8, ncol=2)
    goodput_ax.set_ylabel(f"goodput, tasks/s ({BIN * 1000:.0f} ms bins)")
    goodput_ax.set_title("Goodput over time", fontsize=10)
    goodput_ax.legend(fontsize=8, ncol=2)
    fig.suptitle(
        f"A shared downstream (10 ms calls, slower past C, failing past 2C), "
        f"open-loop load {RATE:.0f} tasks/s through a queue of {QUEUE_LIMIT}",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------- the driver


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark tasker under overload.")
    parser.add_argument("--quick", action="store_true", help="a short run (smoke test)")
    parser.add_argument("--output", type=Path, help="where to write the JSON results")
    parser.add_argument("--plot", type=Path, help="where to write the PNG plot")
    parser.add_argument("--no-plot", action="store_true", help="do not draw the plot")
    parser.add_argument("--memory-run", choices=("bounded", "unbounded"), help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=60.0, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=8, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_run:  # one memory scenario, in its own interpreter
        series = memory_run(args.memory_run == "bounded", args.seconds, args.workers)
        print(json.dumps(series))
        return 0

    phase_s, policy_phase_s, memory_s = (1.0, 1.0, 1.0) if args.quick else (3.0, 10.0, 60.0)
    sizes = (4, 8) if args.quick else tuple(range(1, 33))
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    sweep = []
    for n in sizes:
        print(f"fixed N={n}", file=sys.stderr, flush=True)
        sweep.append(run_pool(f"fixed-{n}", phase_s, fixed=n))
    best = [max(sweep, key=partial(_goodput, phase=i)) for i in range(len(CAPACITIES))]
    runs = []
    for name in POLICIES:
        print(name, file=sys.stderr, flush=True)
        run = run_pool(name, policy_phase_s)
        for i, p in enumerate(run.phases):
            p.reach_s = reach(run, i, policy_phase_s, TARGET_GOODPUT * best[i].phases[i].goodput)
        runs.append(run)
    memory: dict[str, list[tuple[float, float]]] = {}
    n_best = int(best[0].name[6:])
    for kind in ("bounded", "unbounded"):
        print(f"memory, {kind} queue", file=sys.stderr, flush=True)
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--memory-run",
                kind,
                "--seconds",
                str(memory_s),
                "--workers",
                str(n_best),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=memory_s + 60,
        )
        label = f"queue limit {QUEUE_LIMIT}" if kind == "bounded" else "unbounded queue"
        memory[label] = [(t, m) for t, m in json.loads(done.stdout)]
    elapsed = time.perf_counter() - started

    header = (
        f"overload{' (quick)' if args.quick else ''}: thread executor, open-loop {RATE:.0f} "
        f"tasks/s, queue limit {QUEUE_LIMIT}, C = {CAPACITIES[0]} then {CAPACITIES[1]} "
        f"({phase_s:g} s each for fixed pools, {policy_phase_s:g} s for policies); CPython "
        f"{platform.python_version()}, {os.cpu_count()} CPUs; {elapsed:.0f} s in all, 1-min load "
        f"average {load_before:.2f} before"
    )
    print(render(sweep, runs, best, header))
    adaptive = next(r for r in runs if r.name == "adaptive")
    found = checks(adaptive, best)
    print('\ntargets for "adaptive":')
    for name, measured, met in found:
        print(f"  {name:<45} {measured:>8}  {'met' if met else 'MISSED'}")
    print(
        "\nmemory after the run: "
        + ", ".join(
            f"{label} {series[-1][1]:.0f} MiB (from {series[0][1]:.0f})"
            for label, series in memory.items()
            if series
        )
    )

    suffix = "-quick" if args.quick else ""
    output: Path = args.output or HERE / "results" / f"overload{suffix}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "quick": args.quick,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "elapsed_s": elapsed,
        "settings": {
            "rate": RATE,
            "queue_limit": QUEUE_LIMIT,
            "capacities": CAPACITIES,
            "phase_s": phase_s,
            "policy_phase_s": policy_phase_s,
        },
        "best_fixed": [b.name for b in best],
        "sweep": [asdict(r) for r in sweep],
        "policies": {r.name: asdict(r) for r in runs},
        "targets": [{"target": n, "measured": m, "met": ok} for n, m, ok in found],
        "memory": memory,
    }
    output.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"\nresults written to {output}", file=sys.stderr)
    if not args.no_plot:
        default = (
            HERE / "results" / "overload-quick.png"
            if args.quick
            else ROOT / "docs/img/overload.png"
        )
        path: Path = args.plot or default
        if plot(sweep, runs, memory, policy_phase_s, path):
            print(f"plot written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
