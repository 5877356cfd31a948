"""Ray for the tests: started here, on loopback, in a directory of its own, and shut down.

Ray reads some settings from the environment when it is imported, so they are set before any
test module imports it:

- `RAY_USAGE_STATS_ENABLED=0`: no usage-statistics prompt or report;
- `RAY_AUTH_MODE=disabled`: no token generated and written to the home directory;
- `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`: Ray otherwise replaces the node address 127.0.0.1
  by the machine's outward address; with it, every Ray process binds loopback;
- `RAY_TMPDIR` (per module, below): where Ray records the running cluster's address.

One Ray (a head node, started with `ray.cluster_utils.Cluster`) serves every Ray test, as
starting one takes seconds; it is shut down after the last. Each module connects this process
to it and disconnects at its end; the cluster test adds a second node and kills it. Modules skip,
saying why, on an interpreter without Ray.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from ray.cluster_utils import Cluster

for _name, _value in {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}.items():
    os.environ.setdefault(_name, _value)

LOOPBACK = "127.0.0.1"
OBJECT_STORE = 80 * 1024 * 1024  # the smallest Ray accepts is 75 MiB


@contextmanager
def ray_directory() -> Iterator[str]:
    """A temporary directory for Ray's files (short: Ray puts sockets in it)."""
    root = tempfile.mkdtemp(prefix="tasker-ray-")
    ray_dir = os.path.join(root, "ray")
    os.mkdir(ray_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_TMPDIR", root)
        try:
            yield ray_dir
        finally:
            shutil.rmtree(root, ignore_errors=True)


T = TypeVar("T")


def starting(start: Callable[[], T], attempts: int = 2) -> T:
    """`start()`, tried again when Ray's node misses its fixed 30 s registration wait.

    On a loaded machine a node's processes can take longer than Ray waits for them; that is
    Ray not starting, not what the tests test, so a start is tried up to `attempts` times,
    and the tests that need it are then skipped, saying so loudly.
    """
    import ray

    for attempt in range(1, attempts + 1):
        try:
            return start()
        except Exception as error:
            if "timed out during startup" not in str(error):
                raise
            _stop_half_started(error)
            ray.shutdown()
            if attempt == attempts:
                pytest.skip(
                    f"RAY DID NOT START: {attempts} tries, each past Ray's fixed 30 s wait for "
                    f"its node ({error}); the machine is too loaded to run the Ray tests now"
                )
    raise AssertionError("unreachable")


def _stop_half_started(error: BaseException) -> None:
    """Stop the processes of the node whose start raised `error` (no one else holds it)."""
    from ray._private.node import Node

    trace = error.__traceback__
    while trace is not None:
        node = trace.tb_frame.f_locals.get("self")
        if isinstance(node, Node):
            node.kill_all_processes(check_alive=False, allow_graceful=False)
            return
        trace = trace.tb_next


@pytest.fixture(scope="package")
def ray_cluster() -> Iterator[Cluster]:
    """One Ray for every Ray test: a head node (1 CPU, loopback only, no dashboard).

    Starting Ray takes seconds, so the test modules share it: the single-node tests connect to
    it, and the cluster test adds a node of its own to kill.
    """
    from ray.cluster_utils import Cluster

    import ray

    with ray_directory() as directory:
        cluster = starting(
            lambda: Cluster(
                initialize_head=True,
                head_node_args={
                    "node_ip_address": LOOPBACK,
                    "num_cpus": 1,  # Ray starts a worker process per CPU ahead of need
                    "object_store_memory": OBJECT_STORE,
                    "include_dashboard": False,
                    "include_log_monitor": False,  # worker logs stay in their files
                    "temp_dir": directory,
                    "resources": {"room": 16},  # for the cluster test's workers
                },
            )
        )
        try:
            yield cluster
        finally:
            ray.shutdown()
            cluster.shutdown()  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def local_ray(ray_cluster: Cluster) -> Iterator[None]:
    """This process connected to the shared Ray for the module's tests."""
    import ray

    ray.init(address=ray_cluster.address, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def live_actors(class_name: str = "_Holder") -> list[str]:
    """The ids of the cluster's actors of `class_name` that are not dead."""
    import ray

    table: dict[str, Any] = ray._private.state.actors()
    return [
        actor_id
        for actor_id, info in table.items()
        if info.get("State") != "DEAD" and class_name in str(info.get("ActorClassName", ""))
    ]


def wait_until(predicate: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    """Poll `predicate` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what or predicate}")
        time.sleep(0.05)


def no_actor_left(timeout: float = 30) -> None:
    wait_until(lambda: not live_actors(), timeout, "every worker actor gone")


class Ledger:
    """What happened in the actors, written to files the test reads (it crosses the wire)."""

    def __init__(self, folder: Path) -> None:
        self.folder = str(folder)

    def note(self, kind: str, value: object) -> None:
        with open(os.path.join(self.folder, "ledger"), "a") as out:
            out.write(f"{kind} {value}\n")

    def entries(self, kind: str) -> list[str]:
        path = os.path.join(self.folder, "ledger")
        if not os.path.exists(path):
            return []
        with open(path) as lines:
            return [line.split(" ", 1)[1].strip() for line in lines if line.startswith(kind + " ")]

    def counts(self, kind: str) -> Counter[str]:
        return Counter(self.entries(kind))

    def mark(self, name: str) -> None:
        Path(self.folder, name).touch()

    def marked(self, name: str) -> bool:
        return Path(self.folder, name).exists()

    def wait_for(self, name: str, timeout: float = 30) -> bool:
        """Wait, in an actor, until `mark(name)` (bounded: a stuck test still ends)."""
        deadline = time.monotonic() + timeout
        while not self.marked(name):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True


class Tracked:
    """`on_create`/`on_destroy` for the actors: the resource is the actor's pid, noted."""

    def __init__(self, ledger: Ledger, fail_create: bool = False) -> None:
        self.ledger = ledger
        self.fail_create = fail_create

    def create(self) -> int:
        if self.fail_create:
            raise ConnectionError("no backend")
        pid = os.getpid()
        self.ledger.note("created", pid)
        return pid

    def destroy(self, resource: int) -> None:
        self.ledger.note("destroyed", resource)

    def assert_each_destroyed_once(self) -> None:
        created = self.ledger.counts("created")
        assert created, "no resource was created"
        assert self.ledger.counts("destroyed") == created
