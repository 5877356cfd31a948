"""Benchmarks: tasker against the standard library (`make bench`).

Each scenario compares tasker with a baseline and is one module of `benchmarks/scenarios/`
(its docstring says what it measures): a. throughput of trivial tasks, b. latency of one
blocking call, c. blocking tasks, d. percentiles and the metrics collector, e. asyncio
throughput, f. asyncio sleeps, g. plugin overhead, h. cancelling queued tasks. A module declares
its variants, and its table rows and targets as data; adding a scenario is adding a module
(see `harness.py`).

Every variant runs in a fresh interpreter (`--one KEY`), so one variant's heap, threads and
garbage never disturb another's: one warm-up run, then five timed runs, medians. Pools are
built and shut down outside the timed regions, with every worker thread already started (every
worker task already waiting for work); each asyncio run gets a fresh event loop.
The driver prints one comparison table to stdout (`reporter.py`), progress to stderr, and
writes every figure (medians and raw runs) and every target's check as JSON to
`benchmarks/results/latest.json`.

    python benchmarks/run.py                  # everything, 3-4 minutes on 2 cores
    python benchmarks/run.py --quick          # one small pass (a few seconds), for smoke tests
    python benchmarks/run.py --only a.tpe a.tasker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import FULL, HERE, QUICK, run_one, scenarios, spawn, variants
from reporter import Report, validate


def main(argv: Sequence[str] | None = None) -> int:
    known = variants()
    parser = argparse.ArgumentParser(description="Benchmark tasker against the standard library.")
    parser.add_argument("--quick", action="store_true", help="one run at small sizes (smoke test)")
    parser.add_argument("--output", type=Path, help="where to write the JSON results")
    parser.add_argument("--only", nargs="+", choices=sorted(known), help="run these variants")
    parser.add_argument("--one", choices=sorted(known), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL

    if args.one is not None:
        print(json.dumps(run_one(args.one, sizes)))
        return 0

    validate(scenarios())
    keys: list[str] = args.only or list(known)
    timeout = 60.0 if args.quick else 300.0
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    for i, key in enumerate(keys, 1):
        print(f"[{i}/{len(keys)}] {key}: {known[key].label}", file=sys.stderr, flush=True)
        results[key] = spawn(key, quick=args.quick, timeout=timeout)
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()[0]

    report = Report(results, sizes, scenarios())
    report.build()
    runs = (
        f"median of {sizes.runs} runs after {sizes.warmup} warm-up"
        if sizes.runs > 1
        else f"{sizes.runs} run, no warm-up"
    )
    header = (
        f"tasker vs standard library{' (quick)' if args.quick else ''}: CPython "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, {platform.system()}; "
        f"{runs}, each variant in its own process; {elapsed:.0f} s in all, "
        f"1-min load average {load_before:.2f} before, {load_after:.2f} after"
    )
    print(report.render(header), flush=True)

    output: Path = args.output or HERE / "results" / ("quick.json" if args.quick else "latest.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "quick": args.quick,
        "sizes": asdict(sizes),
        "elapsed_s": elapsed,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "variants": {
            key: {
                "label": known[key].label,
                **({"env": dict(known[key].env)} if known[key].env else {}),
                **r,
            }
            for key, r in results.items()
        },
        "checks": [asdict(c) for c in report.checks],
    }
    output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults written to {output}", file=sys.stderr)
    failed = [key for key, r in results.items() if "error" in r]
    if failed:
        print(f"variants that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
