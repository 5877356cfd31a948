"""a. Throughput: 100k trivial tasks (x + 1) on 4 workers, submit every task then collect every
result; `ex.submit(fn, x)` vs `m.submit(fn, x)` (tasker's metrics are always on)."""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from harness import Row, Sample, Scenario, Section, Sizes, Target, Variant
from scenarios._common import manager, plus_one, plus_one_on, prestart, throughput

WORKERS = 4


def trivial_tpe(sizes: Sizes) -> Sample:
    n = sizes.trivial_tasks
    with ThreadPoolExecutor(WORKERS) as ex:
        prestart(ex, WORKERS)
        gc.collect()
        t0 = time.perf_counter()
        futures = [ex.submit(plus_one, x) for x in range(n)]
        results = [f.result() for f in futures]
        seconds = time.perf_counter() - t0
    return throughput(n, seconds, results)


def trivial_tasker(sizes: Sizes, plugins: Sequence[object] = ()) -> Sample:
    n = sizes.trivial_tasks
    m = manager(WORKERS, plugins)
    try:
        gc.collect()
        t0 = time.perf_counter()
        futures = [m.submit(plus_one_on, x) for x in range(n)]
        results = [f.result() for f in futures]
        seconds = time.perf_counter() - t0
    finally:
        m.stop()
    return throughput(n, seconds, results)


RESULT = "{us_per_task:.2f} us/task ({seconds:.3f} s, peak RSS {peak_rss_mib:.0f} MiB)"

SCENARIO = Scenario(
    "a",
    {
        "a.tpe": Variant("ThreadPoolExecutor", trivial_tpe, "us_per_task"),
        "a.tasker": Variant("tasker (metrics on)", trivial_tasker, "us_per_task"),
    },
    (
        Section(
            f"a. throughput: {{count(sizes.trivial_tasks)}} trivial tasks (x + 1), {WORKERS} "
            "workers, submit all then collect all",
            (
                Row("a.tpe", RESULT, "1.00"),
                Row(
                    "a.tasker",
                    RESULT,
                    "{us_per_task / a.tpe.us_per_task:.2f}",
                    targets=(
                        Target(
                            "tasker/TPE us per task",
                            "a.tasker.us_per_task / a.tpe.us_per_task",
                            0.8,
                            limit=1.0,
                            shown="<= {at_most} (limit {limit})",
                        ),
                    ),
                ),
            ),
        ),
    ),
)
