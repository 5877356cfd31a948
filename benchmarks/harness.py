"""The benchmark harness: what a scenario declares, where scenarios are found, how a variant runs.

A scenario is one module of `benchmarks/scenarios/` (its name starts with the scenario's letter,
`a_throughput.py`; modules starting with `_` are shared pieces) defining `SCENARIO`, a
`Scenario`: its variants, each a function doing one full run, and its table sections, whose
rows and targets are data the reporter (`reporter.py`) evaluates. Adding a scenario is adding
one such module.

Every variant runs in a fresh interpreter (`run.py --one KEY`), so one variant's heap, threads
and garbage never disturb another's: the warm-up runs, then the timed runs, then the medians.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

HERE = Path(__file__).resolve().parent
ENTRY = HERE / "run.py"
"""The script `spawn` runs with `--one KEY`."""

Sample = dict[str, float]
"""The figures one run of a variant produces."""


@dataclass(frozen=True)
class Sizes:
    """How much work each scenario does, and how many times it is repeated."""

    trivial_tasks: int
    latency_calls: int
    sleep_tasks: int
    calibration_sleeps: int
    durations: int
    warmup: int
    runs: int


FULL = Sizes(
    trivial_tasks=100_000,
    latency_calls=10_000,
    sleep_tasks=20_000,
    calibration_sleeps=1_000,
    durations=1_000_000,
    warmup=1,
    runs=5,
)
QUICK = Sizes(
    trivial_tasks=5_000,
    latency_calls=300,
    sleep_tasks=800,
    calibration_sleeps=100,
    durations=50_000,
    warmup=0,
    runs=1,
)


# ------------------------------------------------------------------ what a scenario declares


@dataclass(frozen=True)
class Variant:
    """One measured thing: `run` performs one full run and returns its figures."""

    label: str
    run: Callable[[Sizes], Sample]
    headline: str
    """The figure the progress lines show."""
    once: Callable[[Sizes], Sample] | None = None
    """Extra figures measured once, after the timed runs (e.g. retained memory)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Environment variables set for the variant's process."""


@dataclass(frozen=True)
class When:
    """A piece of a cell shown only when `condition`, an expression, holds."""

    condition: str
    text: str


Cell = str | When | tuple[str | When, ...]
"""A table cell: templates put end to end. A template is text with `{expression:format}`
fields; a piece whose figures are missing (a variant not run, or failed) is left out, and the
cell never starts with the ", " of a piece that followed it.

Expressions (see `reporter.py`) read figures: `us_per_task` is the row's variant's median,
`a.tpe.us_per_task` another variant's, `peak_rss_mib` a variant's peak memory,
`runs.us_per_task` the row's variant's figure in each timed run, `sizes.trivial_tasks` a size;
with numbers, `+ - * /`, comparisons and the functions `count`, `time`, `bytes`, `min`, `max`,
`len`.
"""


@dataclass(frozen=True)
class Target:
    """A figure that should be at most `at_most`: `value`, an expression over the medians."""

    metric: str
    """Its name in the JSON report's checks."""
    value: str
    at_most: float
    limit: float | None = None
    """Beyond the target but within the limit is a lesser miss."""
    shown: str | None = "<= {at_most}"
    """How the target column shows it (a template that may use `at_most` and `limit`)."""
    suffix: str = ""
    """After its verdict in the verdict column, e.g. " vs gather"."""


@dataclass(frozen=True)
class Row:
    """One line of the table: a variant, or (`key` None) figures only, e.g. an ideal."""

    key: str | None
    result: Cell
    ratio: Cell = ()
    label: str | None = None
    """A template; by default the variant's label."""
    targets: tuple[Target, ...] = ()
    verdicts: Literal["nested", "list"] = "nested"
    """How the verdict column joins several: `met (MISSED vs x)`, or `met` if every target is
    met and else each verdict, comma-separated."""


@dataclass(frozen=True)
class Section:
    """A part of the table: a title line (a template) and its rows, shown if any of its
    variants was run."""

    title: str
    rows: tuple[Row, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(row.key for row in self.rows if row.key is not None)


@dataclass(frozen=True)
class Scenario:
    """A scenario: its letter, its variants (each key starts with the letter and a dot) and its
    sections."""

    name: str
    variants: Mapping[str, Variant]
    sections: tuple[Section, ...]


# ------------------------------------------------------------------------- discovery


@cache
def scenarios() -> tuple[Scenario, ...]:
    """Every scenario of `benchmarks/scenarios/`, in the order of their module names."""
    found: list[Scenario] = []
    seen: dict[str, str] = {}
    for module in sorted(pkgutil.iter_modules([str(HERE / "scenarios")]), key=lambda m: m.name):
        if module.name.startswith("_"):
            continue
        scenario = importlib.import_module(f"scenarios.{module.name}").SCENARIO
        if not isinstance(scenario, Scenario):
            raise TypeError(f"scenarios/{module.name}.py: SCENARIO is not a Scenario")
        if not module.name.startswith(f"{scenario.name}_"):
            raise ValueError(
                f"scenarios/{module.name}.py: the module name must start with the scenario's "
                f"name, {scenario.name!r}, and an underscore"
            )
        for key in scenario.variants:
            if not key.startswith(f"{scenario.name}."):
                raise ValueError(
                    f"scenarios/{module.name}.py: variant {key!r} must start with "
                    f"{scenario.name!r} and a dot"
                )
            if key in seen:
                raise ValueError(
                    f"variant {key!r} is declared twice: {seen[key]} and {module.name}"
                )
            seen[key] = module.name
        found.append(scenario)
    return tuple(found)


def variants() -> dict[str, Variant]:
    """Every variant of every scenario, by key, in the order they run."""
    return {key: v for scenario in scenarios() for key, v in scenario.variants.items()}


# --------------------------------------------------------------------------- running


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_one(key: str, sizes: Sizes) -> dict[str, Any]:
    """Child process: warm up, time every run, return the medians and the raw runs."""
    variant = variants()[key]

    def progress(phase: str, sample: Sample) -> None:
        value = sample[variant.headline]
        print(f"    {key} {phase}: {variant.headline} = {value:.3f}", file=sys.stderr, flush=True)

    for i in range(sizes.warmup):
        progress(f"warm-up {i + 1}/{sizes.warmup}", variant.run(sizes))
    runs: list[Sample] = []
    for i in range(sizes.runs):
        runs.append(variant.run(sizes))
        progress(f"run {i + 1}/{sizes.runs}", runs[-1])
    median = {name: statistics.median(r[name] for r in runs) for name in runs[0]}
    if variant.once is not None:
        median.update(variant.once(sizes))
    return {"median": median, "runs": runs, "peak_rss_mib": _peak_rss_mib()}


def spawn(key: str, *, quick: bool, timeout: float) -> dict[str, Any]:
    """Run one variant in a fresh interpreter; its progress goes straight to our stderr."""
    command = [sys.executable, str(ENTRY), "--one", key]
    if quick:
        command.append("--quick")
    env = {**os.environ, **variants()[key].env}
    try:
        done = subprocess.run(
            command, stdout=subprocess.PIPE, text=True, env=env, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        return {"error": f"exit code {done.returncode} (traceback above)"}
    lines = done.stdout.strip().splitlines()
    if not lines:
        return {"error": "no output"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result
