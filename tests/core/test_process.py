"""The process executor: resources in child processes, crashes isolated, timeouts that stop."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from tasker import (
    RetriesExhaustedError,
    TaskFuture,
    TaskManager,
    UnhealthyOn,
    WorkerCrashedError,
    current_task,
)
from tasker.executors import ThreadExecutor
from tasker.process import ProcessExecutor, ProcessOptions, RemoteTaskError
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(120)


# Tasks and hooks are module-level functions: they cross to the children with plain pickle.


def make_resource() -> dict[str, int]:
    return {"pid": os.getpid()}


def pid_of(resource: dict[str, int]) -> int:
    return resource["pid"]


def where(resource: dict[str, int]) -> int:
    return os.getpid()


def pid_and_place(resource: dict[str, int]) -> tuple[int, int]:
    return resource["pid"], os.getpid()


def exit_hard(resource: dict[str, int], marker: str) -> int:
    if not Path(marker).exists():  # only the first attempt dies
        Path(marker).touch()
        os._exit(3)
    return os.getpid()


def kill_self(resource: dict[str, int]) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def segfault(resource: dict[str, int]) -> None:
    ctypes.string_at(0)


def spin(resource: dict[str, int]) -> None:
    while True:
        pass


def pid_and(resource: dict[str, int], anything: object) -> int:
    return os.getpid()


def unpicklable_result(resource: dict[str, int]) -> Any:
    return threading.Lock()


class Unpicklable(Exception):
    def __init__(self, lock: Any) -> None:
        super().__init__("holds a lock")
        self.lock = lock

    def __reduce__(self) -> Any:
        raise TypeError("no")


def raise_unpicklable(resource: dict[str, int]) -> None:
    raise Unpicklable(threading.Lock())


def raise_plain(resource: dict[str, int]) -> None:
    raise ValueError("bad input")


def about_me(resource: dict[str, int]) -> tuple[int, int, int | None, bool, bool, int]:
    task = current_task()
    assert task is not None
    pid = task.resource["pid"]
    return task.task_id, task.attempt, task.worker_id, task.priority, task.once, pid


def wait_for_cancellation(resource: dict[str, int], folder: str) -> int:
    """Mark the start, sleep until told to stop, leave a mark, return: the child is kept."""
    task = current_task()
    assert task is not None
    Path(folder, f"started-{task.task_id}").touch()
    if task.sleep(60):
        Path(folder, f"cancelled-{task.task_id}").touch()
    return os.getpid()


def record_destroy(resource: dict[str, int], folder: str) -> None:
    Path(folder, f"destroyed-{os.getpid()}").touch()


class Destroyer:
    """A picklable `on_destroy` that leaves a file per child it ran in."""

    def __init__(self, folder: Path) -> None:
        self.folder = str(folder)

    def __call__(self, resource: dict[str, int]) -> None:
        record_destroy(resource, self.folder)


def wait_for(resource: dict[str, int], go: str, then: str = "return") -> int:
    """Wait until the file `go` exists; then return the child's pid, or as `then` says:
    `"exit"` (only the first time), `"raise"`, or a number of seconds to sleep first."""
    deadline = time.monotonic() + 60
    while not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.005)  # the test creates the file: no event crosses to a child
    if then == "exit" and not Path(f"{go}.died").exists():
        Path(f"{go}.died").touch()
        os._exit(3)
    if then == "raise":
        raise ValueError("broken")
    if then not in ("return", "exit"):
        time.sleep(float(then))
    return os.getpid()


def count_run(resource: dict[str, int], log: str) -> int:
    """Leave a line in `log` for each run; return the attempt."""
    with Path(log).open("a") as runs:
        runs.write(f"{os.getpid()}\n")
    task = current_task()
    assert task is not None
    return task.attempt


def append(resource: dict[str, int], log: str, line: str) -> None:
    with Path(log).open("a") as lines:
        lines.write(f"{line}\n")


def task_id_of(future: Future[Any]) -> int:
    assert isinstance(future, TaskFuture)
    return future.task_id


@pytest.fixture
def no_orphans() -> Iterator[None]:
    before = set(multiprocessing.active_children())
    yield
    left = [p for p in multiprocessing.active_children() if p not in before]
    assert not left, f"child processes outlived the manager: {left}"


def manager_for(workers: int = 1, **options: Any) -> TaskManager[dict[str, int]]:
    builder = (
        TaskManager.builder()
        .with_executor(
            "process", start_method="spawn", cancel_grace=options.pop("cancel_grace", 0.0)
        )
        .with_resource(make_resource, options.pop("on_destroy", None))
        .with_workers(workers, max_workers=workers)
        .with_resource_pool(0)
        .with_policy("fixed")
        .with_backoff(initial=0.01, maximum=0.05)
        .with_max_retries(options.pop("max_retries", 2))
    )
    if "timeout" in options:
        builder = builder.with_timeout(options.pop("timeout"))
    if "health_check" in options:
        builder = builder.with_health_check(options.pop("health_check"))
    return builder.build()


def graceful_manager(tmp_path: Path) -> tuple[TaskManager[dict[str, int]], int]:
    """A one-child manager giving a killed task 30 s to stop, and its child's pid."""
    manager = manager_for(cancel_grace=30, on_destroy=Destroyer(tmp_path))
    return manager, manager.queue_task(pid_of)


@pytest.mark.usefixtures("no_orphans")
class TestProcesses:
    def test_each_worker_owns_a_child_that_holds_its_resource(self, tmp_path: Path) -> None:
        manager = manager_for(workers=2, on_destroy=Destroyer(tmp_path))
        with manager:
            pairs = {manager.queue_task(pid_and_place) for _ in range(20)}
            pairs |= {manager.submit(pid_and_place).result(30) for _ in range(20)}
        pids = {created for created, _ in pairs}
        assert os.getpid() not in pids
        assert all(created == ran for created, ran in pairs)  # in the child holding its resource
        assert len(pids) <= 2
        destroyed = {int(p.name.split("-")[1]) for p in tmp_path.glob("destroyed-*")}
        assert pids <= destroyed  # on_destroy ran in each child

    @pytest.mark.parametrize("crash", ["exit", "sigkill", "segfault"])
    def test_a_dying_child_fails_its_task_as_unhealthy_and_is_replaced(
        self, crash: str, tmp_path: Path
    ) -> None:
        with manager_for(max_retries=2) as manager:
            first = manager.queue_task(pid_of)
            if crash == "exit":
                marker = str(tmp_path / "died-once")
                assert manager.submit(exit_hard, marker).result(60) != first
            else:
                task = kill_self if crash == "sigkill" else segfault
                with pytest.raises(RetriesExhaustedError) as raised:
                    manager.queue_task(task)
                cause = raised.value.__cause__
                assert isinstance(cause, WorkerCrashedError)
                assert ("SIGKILL" if crash == "sigkill" else "SIGSEGV") in str(cause)
            assert manager.queue_task(pid_of) != first  # a fresh child serves on

    def test_a_once_task_on_a_dying_child_is_not_retried(self) -> None:
        with manager_for() as manager:
            with pytest.raises(WorkerCrashedError, match="SIGKILL"):
                manager.queue_task_once(kill_self)
            assert manager.metrics().total_tasks_retried == 0

    def test_a_timeout_stops_the_attempt_for_real(self) -> None:
        with manager_for(timeout=0.2) as manager:
            first = manager.queue_task(pid_of)
            with pytest.raises(TimeoutError):
                manager.queue_task(spin)
            assert manager.queue_task(pid_of) != first  # the spinning child is gone

    def test_what_cannot_cross_is_refused_at_submit_naming_it(self) -> None:
        lock = threading.Lock()
        with manager_for() as manager:
            with pytest.raises(
                TypeError, match=r"argument 1 of task 'pid_and', a lock, cannot be sent"
            ):
                manager.submit(pid_and, lock)
            with pytest.raises(TypeError, match=r"the task function '.*<lambda>' cannot be sent"):
                manager.submit(lambda r: lock)
            assert manager.metrics().total_tasks_arrived == 0  # nothing was queued
            assert manager.queue_task(pid_of) > 0

    def test_the_task_knows_itself_in_the_child(self) -> None:
        with manager_for() as manager:
            future = manager.submit(about_me, priority=True, once=True)
            task_id, attempt, worker_id, priority, once, pid = future.result(60)
            assert (task_id, attempt, priority, once) == (task_id_of(future), 1, True, True)
            assert worker_id is not None
            assert pid == manager.queue_task(pid_of)  # the child's own resource

    def test_a_timeout_tells_the_task_in_the_child_and_keeps_a_cooperative_child(
        self, tmp_path: Path
    ) -> None:
        with manager_for(cancel_grace=30) as manager:
            first = manager.queue_task(pid_of)
            future = manager.submit(wait_for_cancellation, str(tmp_path), timeout=0.2)
            with pytest.raises(TimeoutError):
                future.result(60)
            assert manager.queue_task(pid_of) == first  # returned in time: the child stays
            assert (tmp_path / f"cancelled-{task_id_of(future)}").exists()
            assert manager.metrics().total_tasks_failed == 1

    def test_a_task_that_ignores_the_grace_is_killed_after_it(self) -> None:
        with manager_for(cancel_grace=0.1, timeout=0.2) as manager:
            first = manager.queue_task(pid_of)
            with pytest.raises(TimeoutError):
                manager.queue_task(spin)
            assert manager.queue_task(pid_of) != first

    def test_kill_tells_the_running_task_and_its_child_runs_on_destroy(
        self, tmp_path: Path
    ) -> None:
        manager, pid = graceful_manager(tmp_path)
        started = manager.submit(wait_for_cancellation, str(tmp_path))
        assert wait_until((tmp_path / f"started-{task_id_of(started)}").exists)  # in its child
        assert manager.kill().abandoned_tasks == 1
        assert manager.join(60)
        assert (tmp_path / f"cancelled-{task_id_of(started)}").exists()
        assert (tmp_path / f"destroyed-{pid}").exists()

    def test_what_cannot_come_back_is_a_clear_error(self) -> None:
        with manager_for() as manager:
            with pytest.raises(TypeError, match="cannot be sent back from its process"):
                manager.queue_task(unpicklable_result)
            with pytest.raises(RemoteTaskError, match="Unpicklable: holds a lock") as raised:
                manager.queue_task(raise_unpicklable)
            assert "raise_unpicklable" in raised.value.remote_traceback
            with pytest.raises(ValueError, match="bad input") as plain:
                manager.queue_task(raise_plain)
            (note,) = plain.value.__notes__
            assert note.startswith("in the worker process:")
            assert "raise_plain" in note
            assert manager.queue_task(pid_of) > 0  # the worker survived all of it

    def test_run_task_runs_in_the_callers_process_on_a_resource_made_there(self) -> None:
        with manager_for() as manager:  # no pool: a temporary resource per call
            assert manager.run_task(pid_of) == os.getpid()
            assert manager.queue_task(pid_of) != os.getpid()

    def test_kill_answers_every_caller_and_leaves_no_child(self) -> None:
        manager = manager_for(workers=2)
        futures = [manager.submit(spin) for _ in range(6)]
        report = manager.kill()
        assert report.cancelled_tasks + report.abandoned_tasks == 6
        assert all(f.cancelled() for f in futures)
        assert manager.join(30)


@pytest.mark.usefixtures("no_orphans")
class TestTaskSentAhead:
    """A worker sends its next task to its child while the current one runs."""

    @staticmethod
    def behind(manager: TaskManager[Any], go: Path, then: str = "return") -> Future[Any]:
        """Submit a task that waits for `go` and return it once the next one was sent ahead."""
        first = manager.submit(wait_for, str(go), then)
        ahead = manager.submit(about_me)
        assert wait_until(ahead.running)  # claimed while the first one runs
        return first

    def test_it_starts_when_the_one_before_returns_knowing_itself(self, tmp_path: Path) -> None:
        with manager_for() as manager:
            first = manager.submit(wait_for, str(tmp_path / "go"))
            ahead = manager.submit(about_me)
            assert wait_until(ahead.running)
            (tmp_path / "go").touch()
            task_id, attempt, worker_id, _, _, pid = ahead.result(60)
            assert (task_id, attempt, pid) == (task_id_of(ahead), 1, first.result(60))
            assert worker_id is not None

    def test_a_large_task_is_claimed_ahead_and_sent_when_it_starts(self, tmp_path: Path) -> None:
        with manager_for() as manager:
            first = manager.submit(wait_for, str(tmp_path / "go"))
            large = manager.submit(pid_and, b"x" * 100_000)
            assert wait_until(large.running)
            (tmp_path / "go").touch()
            assert large.result(60) == first.result(60)

    def test_without_it_a_priority_task_submitted_meanwhile_goes_first(
        self, tmp_path: Path
    ) -> None:
        manager = (
            TaskManager.builder()
            .with_executor("process", start_method="spawn", send_ahead=False)
            .with_resource(make_resource)
            .with_workers(1, max_workers=1)
            .with_resource_pool(0)
            .with_policy("fixed")
            .build()
        )
        log = tmp_path / "runs"
        with manager:
            first = manager.submit(wait_for, str(tmp_path / "go"))
            assert wait_until(first.running)
            normal = manager.submit(append, str(log), "normal")
            urgent = manager.submit(append, str(log), "urgent", priority=True)
            (tmp_path / "go").touch()
            for future in (first, normal, urgent):
                future.result(60)
            assert log.read_text().split() == ["urgent", "normal"]

    def test_a_child_dying_before_it_started_gives_it_back_uncounted(self, tmp_path: Path) -> None:
        with manager_for(max_retries=1) as manager:
            first = manager.submit(wait_for, str(tmp_path / "go"), "exit")
            ahead = manager.submit(about_me)
            assert wait_until(ahead.running)
            (tmp_path / "go").touch()
            fresh = first.result(60)  # retried on a fresh child
            _, attempt, _, _, _, pid = ahead.result(60)
            assert (attempt, pid) == (1, fresh)  # never ran in the child that died
            assert manager.metrics().total_tasks_retried == 1

    @pytest.mark.parametrize("healthy", [True, False])
    def test_it_waits_for_the_verdict_on_a_failure_before_it(
        self, healthy: bool, tmp_path: Path
    ) -> None:
        check = UnhealthyOn(KeyError) if healthy else UnhealthyOn(ValueError)
        with manager_for(max_retries=0, health_check=check) as manager:
            child = manager.queue_task(pid_of)
            first = manager.submit(wait_for, str(tmp_path / "go"), "raise")
            log = tmp_path / "runs"
            ahead = manager.submit(count_run, str(log))
            assert wait_until(ahead.running)
            (tmp_path / "go").touch()
            with pytest.raises((ValueError, RetriesExhaustedError)):
                first.result(60)
            assert ahead.result(60) == 1
            # it ran once: in the same child after a healthy failure, never in the child of an
            # unhealthy one
            (pid,) = map(int, log.read_text().split())
            assert (pid == child) is healthy

    def test_its_timeout_counts_from_its_start(self, tmp_path: Path) -> None:
        with manager_for() as manager:
            first = manager.submit(wait_for, str(tmp_path / "go"), "1.5")
            ahead = manager.submit(pid_of, timeout=1.0)
            assert wait_until(ahead.running)
            (tmp_path / "go").touch()
            assert ahead.result(60) == first.result(60)

    def test_kill_counts_it_as_running(self, tmp_path: Path) -> None:
        manager = manager_for()
        first = manager.submit(wait_for, str(tmp_path / "never"))
        ahead = manager.submit(pid_of)
        assert wait_until(ahead.running)
        assert manager.kill().abandoned_tasks == 2
        assert first.cancelled()
        assert ahead.cancelled()
        assert manager.join(60)

    def test_kill_tells_it_to_stop_when_the_one_before_returns_in_the_grace(
        self, tmp_path: Path
    ) -> None:
        manager, pid = graceful_manager(tmp_path)
        first = manager.submit(wait_for_cancellation, str(tmp_path))
        ahead = manager.submit(wait_for_cancellation, str(tmp_path))
        assert wait_until(ahead.running)
        assert manager.kill().abandoned_tasks == 2
        assert manager.join(60)
        for task in (first, ahead):  # both saw the request and returned: the child was kept
            assert (tmp_path / f"cancelled-{task_id_of(task)}").exists()
        assert (tmp_path / f"destroyed-{pid}").exists()

    def test_stop_runs_it(self, tmp_path: Path) -> None:
        manager = manager_for()
        first = manager.submit(wait_for, str(tmp_path / "go"))
        ahead = manager.submit(pid_of)
        assert wait_until(ahead.running)
        assert not manager.stop(timeout=0)  # under way
        (tmp_path / "go").touch()
        assert manager.join(60)
        assert ahead.result(0) == first.result(0)


class TestSerializers:
    def test_closures_cross_with_cloudpickle(self) -> None:
        offset = 1000
        with manager_for() as manager:
            assert manager.queue_task(lambda r: r["pid"] + offset) > offset

    def test_plain_pickle_refuses_a_lambda_clearly(self) -> None:
        manager = (
            TaskManager.builder()
            .with_executor("process", serializer="pickle")
            .with_resource(make_resource)
            .with_workers(1, max_workers=1)
            .with_resource_pool(0)
            .with_policy("fixed")
            .build()
        )
        with manager:
            with pytest.raises(TypeError, match="cannot be sent to a worker process"):
                manager.submit(lambda r: 1)  # refused at once, never queued
            assert manager.queue_task(pid_of) > 0


class TestOptions:
    def test_the_start_method_is_checked(self) -> None:
        with pytest.raises(ValueError, match="start_method must be one of"):
            ProcessOptions(start_method="thread")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="unexpected keyword"):
            TaskManager.builder().with_executor("process", start_methd="spawn")

    def test_sending_ahead_is_a_flag(self) -> None:
        with pytest.raises(TypeError, match="send_ahead must be True or False"):
            ProcessOptions(send_ahead="no")  # type: ignore[arg-type]

    def test_the_grace_is_checked(self) -> None:
        with pytest.raises(ValueError, match="cancel_grace"):
            ProcessOptions(cancel_grace=-1)

    def test_only_executors_that_cross_a_boundary_prepare_tasks(self) -> None:
        assert not hasattr(ThreadExecutor(), "prepare_task")  # the thread path pays nothing
        assert hasattr(ProcessExecutor(), "prepare_task")

    def test_the_executor_names_itself(self) -> None:
        assert ProcessExecutor().name == "process"
        assert ProcessExecutor(start_method="forkserver").options.start_method == "forkserver"


def test_portable_error_keeps_what_crosses_and_describes_what_cannot() -> None:
    from tasker.process import portable_error

    plain = ValueError("bad input")
    assert portable_error(plain) is plain
    described = portable_error(Unpicklable(threading.Lock()))
    assert isinstance(described, RemoteTaskError)
    assert described.type_name.endswith("Unpicklable")
    assert described.message == "holds a lock"
    assert "Unpicklable: holds a lock" in described.remote_traceback


def test_a_stop_request_for_an_attempt_not_begun_waits_for_it() -> None:
    from tasker.process import _Cancellation

    cancellation = _Cancellation()
    cancellation.begin(1)
    cancellation.request(2)  # for the task sent ahead: the running one carries on
    assert not cancellation.flag.is_set()
    cancellation.request(1)
    assert cancellation.flag.is_set()
    cancellation.begin(2)  # the request was kept for it
    assert cancellation.flag.is_set()
    cancellation.begin(3)
    assert not cancellation.flag.is_set()
    cancellation.request(None)  # the manager went away: this one and any later one stop
    assert cancellation.flag.is_set()
    cancellation.begin(4)
    assert cancellation.flag.is_set()
