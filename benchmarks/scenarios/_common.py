"""Pieces several scenarios share: pools ready to measure, trivial tasks, checked figures."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from harness import Row, Sample, Target
from tasker import TaskManager

SLEEP = 0.001
"""What each task of the sleeping scenarios (c and f) sleeps, in seconds."""


def prestart(ex: ThreadPoolExecutor, workers: int) -> None:
    """Make `ex` start all its threads and leave them idle, so none spawns mid-measurement."""
    barrier = threading.Barrier(workers + 1)
    futures = [ex.submit(barrier.wait) for _ in range(workers)]
    barrier.wait()
    for future in futures:
        future.result()


def manager(workers: int, plugins: Sequence[object] = ()) -> TaskManager[None]:
    """A tasker manager with a fixed number of workers (no bursting), resource `None`."""
    return (
        TaskManager.builder()
        .with_plugins(*plugins)
        .with_workers(workers)
        .with_policy("fixed")
        .build()
    )


def order_stats(values: Sequence[float], qs: Sequence[float]) -> list[float]:
    """Exact quantiles: the order statistic of 0-based rank floor(q * (n - 1))."""
    ordered = sorted(values)
    last = len(ordered) - 1
    return [ordered[int(q * last)] for q in qs]


def plus_one(x: int) -> int:
    return x + 1


def plus_one_on(_resource: None, x: int) -> int:
    return x + 1


def throughput(n: int, seconds: float, results: list[int]) -> Sample:
    """The figures of `n` trivial tasks (x + 1) that took `seconds`, checking their results."""
    if len(results) != n or results[-1] != n:
        raise AssertionError("wrong results")
    return {"seconds": seconds, "us_per_task": seconds / n * 1e6}


def wall(n: int, seconds: float, results: list[int], workers: int) -> Sample:
    """The figures of `n` sleeping tasks on `workers` that took `seconds`, against the ideal."""
    if sum(results) != n:
        raise AssertionError("wrong results")
    ideal = n * SLEEP / workers
    return {"seconds": seconds, "ideal_s": ideal, "over_ideal": seconds / ideal}


def walls(
    scenario: str, workers: int, keys: Sequence[str], *, base_name: str, target: float
) -> tuple[Row, ...]:
    """The rows of a sleeping-tasks scenario: both ideals, then `keys`, the baseline first.

    The ideal is N x `SLEEP` / `workers`; `<scenario>.calibration` measures the sleep really
    taken, for the adjusted ideal; `<scenario>.tasker` should be within `target` x either.
    """
    ideal = f"sizes.sleep_tasks * {SLEEP} / {workers}"
    calibration, ours, base = f"{scenario}.calibration", f"{scenario}.tasker", keys[0]
    rows = [
        Row(None, f"{{{ideal}:.3f}} s", "1.00 ideal", label=f"ideal: N x 1 ms / {workers}"),
        Row(
            calibration,
            "{adjusted_ideal_s:.3f} s",
            f"{{adjusted_ideal_s / ({ideal}):.2f}} ideal",
            label="ideal with the measured sleep ({actual_sleep_us:.0f} us)",
        ),
    ]
    for key in keys:
        compared = () if key == base else (f" ({{seconds / {base}.seconds:.2f}} x {base_name})",)
        targets = (
            Target(
                "tasker wall / ideal", f"{ours}.over_ideal", target, shown="<= {at_most:.2f} ideal"
            ),
            Target(
                "tasker wall / adjusted ideal",
                f"{ours}.seconds / {calibration}.adjusted_ideal_s",
                target,
                shown=None,
                suffix=" vs adjusted",
            ),
        )
        rows.append(
            Row(
                key,
                ("{seconds:.3f} s", *compared),
                (
                    "{over_ideal:.2f} ideal",
                    f", {{seconds / {calibration}.adjusted_ideal_s:.2f}} adjusted",
                ),
                targets=targets if key == ours else (),
            )
        )
    return tuple(rows)
