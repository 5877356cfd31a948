"""g. Plugin overhead: scenario a's tasker run, with no plugin passed (the baseline), with one
no-op plugin implementing every observer hook, and with one implementing `tasker_task_finished`
only; each row's cost per task over the baseline, in microseconds, next to the spread of the
timed runs. Installed entry-point plugins load as usual; one more row runs the baseline with
`TASKER_DISABLE_PLUGIN_AUTOLOAD=1`."""

from __future__ import annotations

from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from typing import Any

from harness import Row, Sample, Scenario, Section, Sizes, Variant, When
from scenarios.a_throughput import WORKERS, trivial_tasker
from tasker import TaskInfo, hookimpl, hookspecs

OBSERVER_HOOKS = tuple(
    sorted(
        name
        for name in vars(hookspecs)
        if name.startswith("tasker_") and not name.startswith("tasker_register_")
    )
)
"""Every observer hook tasker specifies (the `tasker_register_*` hooks are discovery hooks)."""


class NoOpObserver:
    """A plugin implementing every observer hook, with every parameter, doing nothing."""

    @hookimpl
    def tasker_task_queued(self, manager: str, task: TaskInfo) -> None:
        pass

    @hookimpl
    def tasker_task_started(self, manager: str, task: TaskInfo, worker_id: int | None) -> None:
        pass

    @hookimpl
    def tasker_task_attempt_context(
        self, manager: str, task: TaskInfo, worker_id: int | None
    ) -> AbstractContextManager[Any] | None:
        return None

    @hookimpl
    def tasker_task_finished(
        self, manager: str, task: TaskInfo, outcome: str, error: BaseException | None
    ) -> None:
        pass

    @hookimpl
    def tasker_task_retried(self, manager: str, task: TaskInfo, error: BaseException) -> None:
        pass

    @hookimpl
    def tasker_worker_started(self, manager: str, worker_id: int, burst: bool) -> None:
        pass

    @hookimpl
    def tasker_worker_stopped(self, manager: str, worker_id: int) -> None:
        pass

    @hookimpl
    def tasker_worker_replaced(self, manager: str, worker_id: int, replaced_worker_id: int) -> None:
        pass

    @hookimpl
    def tasker_scaled_up(self, manager: str, workers: int, target: int) -> None:
        pass

    @hookimpl
    def tasker_scaled_down(self, manager: str, workers: int, target: int) -> None:
        pass

    @hookimpl
    def tasker_manager_started(self, manager: str) -> None:
        pass

    @hookimpl
    def tasker_manager_stopped(self, manager: str, killed: bool) -> None:
        pass


class NoOpFinished:
    """A plugin implementing `tasker_task_finished` only, doing nothing."""

    @hookimpl
    def tasker_task_finished(
        self, manager: str, task: TaskInfo, outcome: str, error: BaseException | None
    ) -> None:
        pass


def _plugged_tasker(
    make: Callable[[], object], hooks: Collection[str]
) -> Callable[[Sizes], Sample]:
    """Scenario a's tasker run with one plugin, `make()`, which must implement exactly `hooks`.

    A misspelt hook would be silently ignored (and cost nothing), hence the check.
    """

    def run(sizes: Sizes) -> Sample:
        plugin = make()
        implemented = {name for name in dir(plugin) if name.startswith("tasker_")}
        if implemented != set(hooks):
            raise AssertionError(f"the plugin implements {sorted(implemented)}, not {hooks}")
        return trivial_tasker(sizes, (plugin,))

    return run


RESULT = (
    "{us_per_task:.2f} us/task ({seconds:.3f} s",
    # the spread, to set the differences against
    When(
        "len(runs.us_per_task) > 1",
        ", runs {min(runs.us_per_task):.1f}-{max(runs.us_per_task):.1f}",
    ),
    ")",
)
OVER_NONE = (
    "{us_per_task / g.none.us_per_task:.2f}, {us_per_task - g.none.us_per_task:+.2f} us/task"
)

SCENARIO = Scenario(
    "g",
    {
        "g.none": Variant("tasker, no plugin passed", trivial_tasker, "us_per_task"),
        "g.observer": Variant(
            f"tasker + no-op plugin, all {len(OBSERVER_HOOKS)} observer hooks",
            _plugged_tasker(NoOpObserver, OBSERVER_HOOKS),
            "us_per_task",
        ),
        "g.finished": Variant(
            "tasker + no-op plugin, tasker_task_finished only",
            _plugged_tasker(NoOpFinished, ("tasker_task_finished",)),
            "us_per_task",
        ),
        "g.noautoload": Variant(
            "tasker, no plugin passed, TASKER_DISABLE_PLUGIN_AUTOLOAD=1",
            trivial_tasker,
            "us_per_task",
            env={"TASKER_DISABLE_PLUGIN_AUTOLOAD": "1"},
        ),
    },
    (
        Section(
            f"g. plugin overhead: {{count(sizes.trivial_tasks)}} trivial tasks (x + 1), {WORKERS} "
            "workers, submit all then collect all; cost per task over no plugin",
            (
                Row("g.none", RESULT, "1.00"),
                Row("g.observer", RESULT, OVER_NONE),
                Row("g.finished", RESULT, OVER_NONE),
                Row("g.noautoload", RESULT, OVER_NONE),
            ),
        ),
    ),
)
