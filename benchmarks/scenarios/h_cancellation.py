"""h. Cancellation: 100k tasks queued behind one busy worker, then each cancelled with
`future.cancel()`, in random order; `ThreadPoolExecutor` vs tasker."""

from __future__ import annotations

import gc
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from harness import Row, Sample, Scenario, Section, Sizes, Variant
from scenarios._common import manager, plus_one, plus_one_on


def _cancel_all(futures: list[Future[Any]]) -> Sample:
    random.Random(7).shuffle(futures)
    gc.collect()
    t0 = time.perf_counter()
    for future in futures:
        future.cancel()
    seconds = time.perf_counter() - t0
    if not all(f.cancelled() for f in futures):
        raise AssertionError("a queued task was not cancelled")
    return {"seconds": seconds, "us_per_cancel": seconds / len(futures) * 1e6}


def cancel_tpe(sizes: Sizes) -> Sample:
    gate = threading.Event()
    with ThreadPoolExecutor(1) as ex:
        ex.submit(gate.wait)
        futures = [ex.submit(plus_one, x) for x in range(sizes.trivial_tasks)]
        sample = _cancel_all(futures)
        gate.set()
    return sample


def cancel_tasker(sizes: Sizes) -> Sample:
    gate = threading.Event()
    m = manager(1, ())
    try:
        m.submit(lambda _: gate.wait())
        futures = [m.submit(plus_one_on, x) for x in range(sizes.trivial_tasks)]
        sample = _cancel_all(futures)
        gate.set()
    finally:
        m.stop()
    return sample


RESULT = "{us_per_cancel:.2f} us/cancel ({seconds:.3f} s in all)"

SCENARIO = Scenario(
    "h",
    {
        "h.tpe": Variant("ThreadPoolExecutor future.cancel()", cancel_tpe, "us_per_cancel"),
        "h.tasker": Variant("tasker future.cancel()", cancel_tasker, "us_per_cancel"),
    },
    (
        Section(
            "h. cancellation: {count(sizes.trivial_tasks)} queued tasks behind one busy worker, "
            "each cancelled, in random order",
            (
                Row("h.tpe", RESULT, "1.00"),
                Row("h.tasker", RESULT, "{us_per_cancel / h.tpe.us_per_cancel:.2f}"),
            ),
        ),
    ),
)
