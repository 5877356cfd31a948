"""Plugins: discovery by entry point, names in the builder, observers, and every fault."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tasker
from tasker import Event, TaskManager, UnhealthyOn, hookspecs
from tasker.executors import AsyncioExecutor, ThreadExecutor
from tasker.metrics import InMemoryCollector
from tasker.plugins import OBSERVER_HOOKS, PluginError, Plugins, Registry, reset_plugins
from tests.drivers import Driver, each_executor
from tests.helpers import EventLog, SwitchPolicy, missing_key, wait_until

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugins" / "tasker_example_plugins"
HOOKS = sorted(name for name in vars(hookspecs) if name.startswith("tasker_"))


@pytest.fixture(autouse=True)
def fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("TASKER_DISABLE_PLUGIN_AUTOLOAD", "TASKER_BLOCK_PLUGINS", "TASKER_STRICT_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    reset_plugins()
    yield
    reset_plugins()


def install(site: Path, name: str, module: str, source: str | Path, dist: str) -> None:
    """Lay out an installed distribution with a `tasker` entry point under `site`."""
    if isinstance(source, Path):
        shutil.copytree(source, site / module)
    else:
        (site / f"{module}.py").write_text(source, encoding="utf-8")
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(f"[tasker]\n{name} = {module}\n", encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.fixture
def example_plugin(site: Path) -> Iterator[Path]:
    install(site, "example", "tasker_example_plugins", EXAMPLE, "tasker-example-plugins")
    yield site
    sys.modules.pop("tasker_example_plugins", None)


class TestHookSpecifications:
    def test_every_hook_is_prefixed_and_documented_in_one_shape(self) -> None:
        assert HOOKS
        for name in HOOKS:
            doc = inspect.getdoc(getattr(hookspecs, name))
            assert doc, f"{name} has no docstring"
            assert "Args:" in doc, f"{name}: document the parameters"
            assert "Returns:" in doc, f"{name}: say what the result is and who wins"

    def test_every_hook_is_in_the_plugin_guide(self) -> None:
        guide = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
        missing = [name for name in HOOKS if f"`{name}`" not in guide]
        assert not missing, f"docs/plugins.md does not describe {missing}"

    def test_observer_hooks_are_all_specified(self) -> None:
        assert set(OBSERVER_HOOKS) <= set(HOOKS)


class TestEntryPoints:
    def test_an_installed_plugin_is_used_by_name(self, example_plugin: Path) -> None:
        manager = (
            TaskManager.builder()
            .with_workers(1, max_workers=3)
            .with_policy("queue-threshold", threshold=0, step=2)
            .with_health_check("status-5xx")
            .build()
        )
        with manager:
            assert type(manager._core.config.policy).__name__ == "QueueThresholdPolicy"

            class ServerError(Exception):
                status = 503

            calls: list[int] = []

            def flaky(_: None) -> str:
                calls.append(1)
                if len(calls) == 1:
                    raise ServerError
                return "ok"

            assert manager.queue_task(flaky) == "ok"  # 5xx: unhealthy, retried
            assert manager.metrics().total_tasks_retried == 1
        assert sys.modules["tasker_example_plugins"].outcomes["completed"] >= 1

    def test_the_cli_lists_plugins_distributions_versions_and_names(
        self, example_plugin: Path
    ) -> None:
        run = subprocess.run(
            [sys.executable, "-m", "tasker", "plugins"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env={"PYTHONPATH": str(example_plugin), "PATH": ""},
        )
        assert "tasker  [tasker-core" in run.stdout
        assert "example  [tasker-example-plugins 1.2.3]" in run.stdout
        assert "policies: queue-threshold" in run.stdout
        assert "health checks: status-5xx" in run.stdout

    def test_autoload_can_be_disabled(
        self, example_plugin: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TASKER_DISABLE_PLUGIN_AUTOLOAD", "1")
        with pytest.raises(ValueError, match="unknown policy 'queue-threshold'; known policies"):
            TaskManager.builder().with_policy("queue-threshold").build()

    def test_a_plugin_can_be_blocked(
        self, example_plugin: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TASKER_BLOCK_PLUGINS", "other,example")
        with pytest.raises(ValueError, match="unknown health check 'status-5xx'"):
            TaskManager.builder().with_health_check("status-5xx").build()

    def test_a_plugin_that_fails_to_import_is_reported_and_skipped(
        self, site: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        install(
            site, "broken", "tasker_broken_plugin", "raise ImportError('no deps')\n", "bad-dist"
        )
        with (
            caplog.at_level(logging.ERROR, logger="tasker.plugins"),
            TaskManager.builder().with_policy("fixed").build() as manager,
        ):
            assert manager.queue_task(lambda r: 1) == 1
        messages = [r.getMessage() for r in caplog.records]
        assert any("'broken'" in m and "'bad-dist'" in m and "no deps" in m for m in messages)

    def test_strict_mode_raises_on_a_plugin_that_fails_to_import(
        self, site: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        install(site, "broken", "tasker_broken_plugin2", "raise ImportError('no deps')\n", "bad")
        monkeypatch.setenv("TASKER_STRICT_PLUGINS", "1")
        with pytest.raises(PluginError, match=r"'broken'.*'bad'"):
            TaskManager.builder().with_policy("fixed")

    def test_the_cli_and_an_unknown_name_tell_about_a_plugin_that_failed_to_load(
        self, site: Path
    ) -> None:
        install(site, "broken", "tasker_broken_plugin3", "raise ImportError('no deps')\n", "bad")
        run = subprocess.run(
            [sys.executable, "-m", "tasker", "plugins"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env={"PYTHONPATH": str(site), "PATH": ""},
        )
        assert run.returncode == 1
        assert "broken  [FAILED TO LOAD] ImportError('no deps')" in run.stdout
        with pytest.raises(ValueError, match=r"failed to load .*'broken': ImportError"):
            TaskManager.builder().with_policy("queue-threshold").build()

    def test_an_adapter_name_without_its_package_says_what_to_install(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TASKER_DISABLE_PLUGIN_AUTOLOAD", "1")
        with pytest.raises(ValueError, match=r'pip install "tasker-core\[otel\]"'):
            TaskManager.builder().with_metrics("otel").build()
        with pytest.raises(ValueError, match=r'pip install "tasker-core\[structlog\]"'):
            TaskManager.builder().with_logger("structlog").build()

    def test_the_cli_prints_its_version_and_help(self) -> None:
        from tasker import __version__
        from tasker.cli import main

        with pytest.raises(SystemExit):
            main(["--version"])
        assert main([]) == 0
        assert __version__

    def test_entry_points_load_once(self, site: Path) -> None:
        install(site, "counted", "tasker_counted_plugin", "LOADS = []\nLOADS.append(1)\n", "c")
        for _ in range(3):
            TaskManager.builder().with_policy("fixed")
        assert sys.modules["tasker_counted_plugin"].LOADS == [1]


class Named:
    """A plugin object registering one policy under a given name."""

    def __init__(self, name: str) -> None:
        self.policy_name = name

    @tasker.hookimpl
    def tasker_register_policies(self, registry: Registry[Any]) -> None:
        registry.register(self.policy_name, lambda: SwitchPolicy(1))


class TestRegistries:
    def test_explicit_plugin_objects(self) -> None:
        with TaskManager.builder().with_plugins(Named("mine")).with_policy("mine").build() as m:
            assert isinstance(m._core.config.policy, SwitchPolicy)

    def test_two_plugins_registering_one_name_is_an_error_naming_both(self) -> None:
        first, second = Named("same"), Named("same")
        with pytest.raises(PluginError, match=r"'same' is registered by both plugin .* and plugin"):
            TaskManager.builder().with_plugins(first, second).with_policy("fixed")

    def test_a_plugin_clashing_with_a_builtin_is_an_error(self) -> None:
        with pytest.raises(PluginError, match="'rate' is registered by both plugin") as raised:
            Plugins([Named("rate")])
        assert "'tasker'" in str(raised.value)

    def test_builtins_are_registered_like_any_plugin(self) -> None:
        plugins = Plugins()
        assert plugins.registry("policies").names() == [
            "adaptive",
            "fixed",
            "latency",
            "queue-depth",
            "rate",
        ]
        executors = plugins.registry("executors")
        builtin = [name for name in executors.names() if executors.owner(name) == "tasker"]
        assert builtin == ["asyncio", "process", "thread"]  # installed adapters add theirs
        assert plugins.registry("policies").owner("rate") == "tasker"

    def test_names_for_every_kind_with_options(self) -> None:
        with (
            TaskManager.builder()
            .with_health_check("unhealthy-on", types=(ConnectionError,))
            .with_logger("null")
            .with_metrics("in-memory")
            .with_executor("thread")
            .build() as manager
        ):
            assert isinstance(manager._core.config.health_check, UnhealthyOn)

    @pytest.mark.parametrize(
        ("method", "message"),
        [
            ("with_health_check", "unknown health check 'nope'; known health checks: "),
            ("with_logger", "unknown logger 'nope'; known loggers: 'null', 'stdlib'"),
            (
                "with_metrics",
                "unknown metrics collector 'nope'; known metrics collectors: 'in-memory'",
            ),
        ],
    )
    def test_unknown_names_list_the_known_ones(self, method: str, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            getattr(TaskManager.builder(), method)("nope").build()

    def test_a_plugin_failing_in_a_discovery_hook_is_skipped(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        class Broken:
            @tasker.hookimpl
            def tasker_register_policies(self, registry: Registry[Any]) -> None:
                raise RuntimeError("plugin bug")

        with caplog.at_level(logging.ERROR, logger="tasker.plugins"):
            plugins = Plugins([Broken()])
        assert "rate" in plugins.registry("policies")
        assert "plugin bug" in caplog.text


class Everything:
    """A plugin object registering one strategy of each kind under the name `mine`."""

    @tasker.hookimpl
    def tasker_register_policies(self, registry: Registry[Any]) -> None:
        registry.register("mine", lambda: SwitchPolicy(1))

    @tasker.hookimpl
    def tasker_register_health_checks(self, registry: Registry[Any]) -> None:
        registry.register("mine", lambda: UnhealthyOn(KeyError))

    @tasker.hookimpl
    def tasker_register_loggers(self, registry: Registry[Any]) -> None:
        registry.register("mine", EventLog)

    @tasker.hookimpl
    def tasker_register_collectors(self, registry: Registry[Any]) -> None:
        registry.register("mine", InMemoryCollector)

    @tasker.hookimpl
    def tasker_register_executors(self, registry: Registry[Any]) -> None:
        registry.register("mine", ThreadExecutor)
        registry.register("mine-async", AsyncioExecutor)


class TestPluginMistakes:
    """A plugin pluggy would silently ignore is refused where it is given, saying why."""

    def test_a_misspelled_hook_is_refused_with_the_known_hooks(self) -> None:
        class Misspelled:
            @tasker.hookimpl
            def tasker_register_policy(self, registry: Registry[Any]) -> None:
                registry.register("mine", lambda: SwitchPolicy(1))

        with pytest.raises(PluginError) as raised:
            TaskManager.builder().with_plugins(Misspelled())
        message = str(raised.value)
        assert "tasker_register_policy is not a tasker hook" in message
        assert "did you mean tasker_register_policies?" in message
        assert f"Known hooks: {', '.join(HOOKS)}" in message

    def test_a_hook_without_hookimpl_is_refused(self) -> None:
        class Undecorated:
            def tasker_register_policies(self, registry: Registry[Any]) -> None:
                registry.register("mine", lambda: SwitchPolicy(1))

        with pytest.raises(PluginError, match=r"not decorated with @tasker\.hookimpl"):
            TaskManager.builder().with_plugins(Undecorated())

    def test_a_module_without_any_hook_is_refused(self) -> None:
        with pytest.raises(PluginError, match="implements no tasker hook"):
            TaskManager.builder().with_plugins(functools)

    def test_a_hook_with_wrong_parameters_is_refused(self) -> None:
        class WrongArgs:
            @tasker.hookimpl
            def tasker_register_policies(self, registy: Registry[Any]) -> None: ...

        expected = r"tasker_register_policies takes 'registy', which the hook does not pass"
        with pytest.raises(PluginError, match=rf"WrongArgs.*{expected} \(it passes 'registry'\)"):
            TaskManager.builder().with_plugins(WrongArgs())

    def test_an_installed_plugin_with_a_misspelled_hook_is_reported_as_failed(
        self, site: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        source = (
            "import tasker\n\n"
            "@tasker.hookimpl\n"
            "def tasker_register_polices(registry):\n"
            "    registry.register('typo', object)\n"
        )
        install(site, "typo", "tasker_typo_plugin", source, "typo-dist")
        run = subprocess.run(
            [sys.executable, "-m", "tasker", "plugins"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env={"PYTHONPATH": str(site), "PATH": ""},
        )
        assert run.returncode == 1
        assert "typo  [FAILED TO LOAD]" in run.stdout
        assert "did you mean tasker_register_policies?" in run.stdout
        with pytest.raises(ValueError, match=r"unknown policy 'typo'.*failed to load"):
            TaskManager.builder().with_policy("typo").build()
        reset_plugins()
        monkeypatch.setenv("TASKER_STRICT_PLUGINS", "1")
        with pytest.raises(PluginError, match="tasker_register_polices is not a tasker hook"):
            TaskManager.builder().build()


class TestOptionOrder:
    """Names resolve at `build()`, so a plugin may be given after the options naming it."""

    def test_plugins_after_every_named_option(self) -> None:
        manager = (
            TaskManager.builder()
            .with_policy("mine")
            .with_health_check("mine")
            .with_logger("mine")
            .with_metrics("mine")
            .with_executor("mine")
            .with_plugins(Everything())
            .build()
        )
        with manager:
            config = manager._core.config
            assert isinstance(config.policy, SwitchPolicy)
            assert isinstance(config.health_check, UnhealthyOn)
            assert isinstance(config.logger, EventLog)
            assert isinstance(config.collectors[0], InMemoryCollector)
            assert manager.queue_task(lambda r: 7) == 7

    def test_a_name_no_plugin_brings_fails_at_build_listing_the_known_ones(self) -> None:
        builder = TaskManager.builder().with_policy("mine", step=2)
        known = "known policies: 'adaptive', 'fixed'"
        with pytest.raises(ValueError, match=f"unknown policy 'mine'; {known}"):
            builder.build()

    def test_options_of_a_known_name_are_still_checked_where_they_are_given(self) -> None:
        with pytest.raises(TypeError, match=r"unknown option 'intervall'; valid options: "):
            TaskManager.builder().with_policy("rate", intervall=1)

    def test_options_of_a_late_name_are_checked_at_build(self) -> None:
        builder = TaskManager.builder().with_policy("mine", bogus=1).with_plugins(Everything())
        with pytest.raises(TypeError, match="policy 'mine': unknown option 'bogus'"):
            builder.build()

    def test_a_late_asyncio_executor_on_a_thread_builder_says_which_builder_to_use(self) -> None:
        builder = TaskManager.builder().with_executor("mine-async").with_plugins(Everything())
        with pytest.raises(ValueError, match=r"AsyncTaskManager\.builder\(\)\.with_executor"):
            builder.build()

    def test_a_late_asyncio_executor_on_the_async_builder(self) -> None:
        async def scenario() -> int:
            async with (
                tasker.AsyncTaskManager.builder()
                .with_executor("mine-async")
                .with_plugins(Everything())
                .build() as manager
            ):

                async def seven(_: None) -> int:
                    return 7

                return await manager.queue_task(seven)

        assert asyncio.run(scenario()) == 7


class Recorder:
    """An observer implementing every observer hook."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def _add(self, hook: str, **fields: Any) -> None:
        with self.lock:
            self.events.append((hook, fields))

    def names(self) -> list[str]:
        with self.lock:
            return [hook for hook, _ in self.events]

    @tasker.hookimpl
    def tasker_task_queued(self, manager: str, task: Any) -> None:
        self._add("task_queued", manager=manager, task_id=task.task_id)

    @tasker.hookimpl
    def tasker_task_started(self, task: Any, worker_id: int | None) -> None:
        self._add("task_started", attempt=task.attempt, worker_id=worker_id)

    @tasker.hookimpl
    def tasker_task_attempt_context(self, task: Any) -> Any:
        self._add("task_attempt_context", attempt=task.attempt)
        return contextlib.nullcontext()

    @tasker.hookimpl
    def tasker_task_finished(self, task: Any, outcome: str, error: BaseException | None) -> None:
        self._add("task_finished", outcome=outcome, error=error)

    @tasker.hookimpl
    def tasker_task_retried(self, task: Any, error: BaseException) -> None:
        self._add("task_retried", attempt=task.attempt)

    @tasker.hookimpl
    def tasker_worker_started(self, worker_id: int, burst: bool) -> None:
        self._add("worker_started", burst=burst)

    @tasker.hookimpl
    def tasker_worker_stopped(self, worker_id: int) -> None:
        self._add("worker_stopped")

    @tasker.hookimpl
    def tasker_worker_replaced(self, worker_id: int, replaced_worker_id: int) -> None:
        self._add("worker_replaced", old=replaced_worker_id, new=worker_id)

    @tasker.hookimpl
    def tasker_scaled_up(self, workers: int, target: int) -> None:
        self._add("scaled_up", workers=workers, target=target)

    @tasker.hookimpl
    def tasker_scaled_down(self, workers: int, target: int) -> None:
        self._add("scaled_down", workers=workers, target=target)

    @tasker.hookimpl
    def tasker_manager_started(self, manager: str) -> None:
        self._add("manager_started", manager=manager)

    @tasker.hookimpl
    def tasker_manager_stopped(self, killed: bool) -> None:
        self._add("manager_stopped", killed=killed)


def echo(value: int, _resource: object) -> int:
    return value


class Exploding:
    """An observer that raises from every hook it implements."""

    @tasker.hookimpl
    def tasker_task_finished(self) -> None:
        raise RuntimeError("observer bug")

    @tasker.hookimpl
    def tasker_task_started(self) -> None:
        raise RuntimeError("observer bug")


def _wait_on(_resource: object, gate: threading.Event) -> bool:
    return gate.wait(10)


class SlowToReport(Recorder):
    """Takes its time reporting a task queued: long enough for a worker handed the task
    meanwhile to start it, and report that first."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition(self.lock)
        self.started_ids: set[int] = set()

    @tasker.hookimpl
    def tasker_task_queued(self, manager: str, task: Any) -> None:
        with self.changed:
            self.changed.wait_for(lambda: task.task_id in self.started_ids, timeout=0.2)
            self.events.append(("task_queued", {"task_id": task.task_id}))

    @tasker.hookimpl
    def tasker_task_started(self, task: Any, worker_id: int | None) -> None:
        with self.changed:
            self.events.append(("task_started", {"task_id": task.task_id}))
            self.started_ids.add(task.task_id)
            self.changed.notify_all()

    def assert_queued_before_started(self, tasks: int) -> None:
        order = [(h, f["task_id"]) for h, f in self.events if h in ("task_queued", "task_started")]
        for task_id in {i for _, i in order}:
            assert [h for h, i in order if i == task_id] == ["task_queued", "task_started"]
        assert len(order) == 2 * tasks


class TestObservers:
    def test_observers_see_the_whole_lifecycle(self) -> None:
        recorder = Recorder()
        policy = SwitchPolicy(target=2)
        manager = (
            TaskManager.builder()
            .with_name("observed")
            .with_plugins(recorder)
            .with_workers(1, max_workers=2)
            .with_policy(policy)
            .with_health_check(UnhealthyOn(ConnectionError))
            .build()
        )
        calls: list[int] = []

        def flaky(_: None) -> str:
            calls.append(1)
            if len(calls) == 1:
                raise ConnectionError("reset")
            return "ok"

        with manager:
            assert manager.queue_task(flaky) == "ok"
            with pytest.raises(ValueError, match="bad"):
                manager.queue_task(lambda r: (_ for _ in ()).throw(ValueError("bad")))
            for _ in range(500):  # the burst worker the policy asked for is up
                names = recorder.names()
                if "scaled_up" in names and "worker_started" in names[names.index("scaled_up") :]:
                    break
                threading.Event().wait(0.01)
            policy.target = 1
            for _ in range(500):
                if "scaled_down" in recorder.names():
                    break
                threading.Event().wait(0.01)
        names = recorder.names()
        for hook in OBSERVER_HOOKS:
            assert hook.removeprefix("tasker_") in names, f"{hook} never called"
        assert names[0] == "worker_started"
        assert names[-1] == "manager_stopped"
        finished = [f for h, f in recorder.events if h == "task_finished"]
        assert [f["outcome"] for f in finished] == ["completed", "failed"]
        assert recorder.events[names.index("task_queued")][1]["manager"] == "observed"

    def test_a_cancelled_queued_task_is_reported_finished(self) -> None:
        recorder = Recorder()
        with TaskManager.builder().with_plugins(recorder).with_policy("fixed").build() as manager:
            started, gate = threading.Event(), threading.Event()
            held = manager.submit(lambda r: (started.set(), gate.wait(10)))
            assert started.wait(10)
            doomed = manager.submit(lambda r: None)
            assert doomed.cancel()
            gate.set()
            held.result(timeout=10)
        outcomes = [f["outcome"] for h, f in recorder.events if h == "task_finished"]
        assert sorted(outcomes) == ["cancelled", "completed"]

    def test_a_task_is_reported_queued_before_any_worker_starts_it(self) -> None:
        """The task's token goes out after its queued event: an idle worker cannot start it
        (and report it started) while the submitter is still reporting it queued."""
        recorder = SlowToReport()
        with TaskManager.builder().with_plugins(recorder).with_workers(2).build() as manager:
            for _ in range(2):
                assert manager.queue_task(lambda r: 1) == 1
        recorder.assert_queued_before_started(2)

    def test_a_task_admitted_from_a_full_queue_is_reported_queued_before_it_starts(
        self,
    ) -> None:
        recorder = SlowToReport()
        gates = [threading.Event() for _ in range(3)]
        manager = (
            TaskManager.builder()
            .with_plugins(recorder)
            .with_workers(3)
            .with_policy("fixed")
            .with_queue_limit(1)
            .build()
        )
        with manager:
            held = [manager.submit(_wait_on, gate) for gate in gates]
            assert wait_until(lambda: manager.stats().busy_workers == 3)
            queued = manager.submit(lambda r: 2)  # the queue is full
            late: list[Any] = []
            waiting = threading.Thread(target=lambda: late.append(manager.submit(lambda r: 3)))
            waiting.start()
            assert wait_until(lambda: manager.stats().waiting_submissions == 1)
            # two workers free up: the one admitting the waiting submission reports it
            # queued while the other could start it
            gates[1].set()
            gates[2].set()
            waiting.join(10)
            assert [queued.result(10), late[0].result(10)] == [2, 3]
            gates[0].set()
            assert all(h.result(10) for h in held)
        recorder.assert_queued_before_started(5)

    def test_a_raising_observer_is_logged_and_breaks_nothing(self) -> None:
        recorder, log = Recorder(), EventLog()
        manager = TaskManager.builder().with_plugins(Exploding(), recorder).with_logger(log).build()
        with manager:
            assert [manager.queue_task(functools.partial(echo, i)) for i in range(3)] == [0, 1, 2]
        failures = log.named(Event.PLUGIN_FAILED)
        assert failures
        assert all("Exploding" in str(f["plugin"]) for f in failures)
        assert recorder.names().count("task_finished") == 3  # the other plugin still ran

    def test_no_observer_means_no_observer_work(self) -> None:
        with TaskManager.builder().build() as manager:
            observers = manager._core.observers
            assert not any(
                getattr(observers, hook.removeprefix("tasker_")) for hook in OBSERVER_HOOKS
            )


span: contextvars.ContextVar[str] = contextvars.ContextVar("span", default="none")


class Tracer:
    """Wraps every attempt in a "span": a contextvar the task's code can see."""

    def __init__(self) -> None:
        self.closed: list[tuple[str, str | None]] = []

    @tasker.hookimpl
    def tasker_task_attempt_context(self, task: Any) -> Any:
        tracer = self

        @contextlib.contextmanager
        def scope() -> Iterator[None]:
            token = span.set(f"task-{task.task_id}#{task.attempt}")
            try:
                yield
            except BaseException as error:
                tracer.closed.append((span.get(), type(error).__name__))
                raise
            else:
                tracer.closed.append((span.get(), None))
            finally:
                span.reset(token)

        return scope()


class BrokenScope:
    @tasker.hookimpl
    def tasker_task_attempt_context(self) -> Any:
        class Bad:
            def __enter__(self) -> None:
                raise RuntimeError("enter bug")

            def __exit__(self, *exc: object) -> None:
                return None

        return Bad()


@each_executor
async def test_attempt_contexts_wrap_the_task_in_its_own_context(driver: Driver) -> None:
    tracer = Tracer()
    managed = await driver.build(
        TaskManager.builder().with_plugins(tracer, BrokenScope()).with_logger("null")
    )
    assert await managed.queue_task(driver.task(lambda r: span.get())) == "task-1#1"
    with pytest.raises(KeyError):
        await managed.queue_task(driver.task(missing_key))
    assert await managed.run_task(driver.task(lambda r: span.get())) == "task-3#1"
    assert await managed.stop(10)
    assert span.get() == "none"  # nothing leaked into the submitter's context
    assert tracer.closed == [("task-1#1", None), ("task-2#1", "KeyError"), ("task-3#1", None)]
