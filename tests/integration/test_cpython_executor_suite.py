"""`as_executor()` passes CPython's own executor tests.

The `ExecutorTest` and `ExecutorShutdownTest` mixins of `test.test_concurrent_futures` are
loaded from an installed CPython (3.12 or newer ships them as a package) and run, in that
interpreter, against a `TaskManager`'s executor view. Nothing of them is copied here: the
interpreter's own files are imported where they are installed.
"""

from __future__ import annotations

import glob
import os
import subprocess
from pathlib import Path

import pluggy
import pytest

import tasker

# Tests that start a new interpreter and import the executor class by name from
# concurrent.futures: they cannot name a class that is not in the standard library.
NOT_APPLICABLE = {
    "test_interpreter_shutdown": "imports the executor class from concurrent.futures by name",
    "test_submit_after_interpreter_shutdown": "imports the executor class by name",
    "test_hang_gh83386": "imports the executor class by name",
}

RUNNER = """
import sys
import unittest

from test.test_concurrent_futures import executor as executor_tests
from test.test_concurrent_futures import test_shutdown as shutdown_tests
from test.test_concurrent_futures.util import BaseTestCase, ExecutorMixin

from tasker import TaskManager

SKIPPED = set(sys.argv[1:])


def tasker_executor(max_workers=None, **kwargs):
    if max_workers is not None and max_workers <= 0:
        raise ValueError("max_workers must be greater than 0")
    workers = max_workers or 5
    manager = (
        TaskManager.builder()
        .with_workers(workers, max_workers=workers)
        .with_policy("fixed")
        .with_resource_pool(0)
        .build()
    )
    return manager.as_executor()


class TaskerMixin(ExecutorMixin):
    executor_type = staticmethod(tasker_executor)

    def setUp(self):
        if self._testMethodName in SKIPPED:
            self.skipTest("not applicable to an executor outside concurrent.futures")
        super().setUp()


class TaskerExecutorTest(TaskerMixin, executor_tests.ExecutorTest, BaseTestCase):
    pass


class TaskerShutdownTest(TaskerMixin, shutdown_tests.ExecutorShutdownTest, BaseTestCase):
    pass


loader = unittest.TestLoader()
suite = unittest.TestSuite(
    [loader.loadTestsFromTestCase(case) for case in (TaskerExecutorTest, TaskerShutdownTest)]
)
result = unittest.TextTestRunner(verbosity=2).run(suite)
print(f"ran={result.testsRun} skipped={len(result.skipped)}")
sys.exit(0 if result.wasSuccessful() else 1)
"""


def _cpython_with_the_suite() -> str | None:
    """An installed CPython >= 3.12 whose standard library includes the executor tests."""
    candidates = [os.environ.get("TASKER_CPYTHON_TESTS_PYTHON", "")]
    home = Path.home()
    for lib in sorted(
        glob.glob(str(home / ".pyenv/versions/3.1[2-9]*/lib/python3.*")), reverse=True
    ):
        candidates.append(str(Path(lib).parents[1] / "bin" / "python3"))
    for python in candidates:
        if not python or not Path(python).exists():
            continue
        probe = subprocess.run(
            [python, "-c", "import test.test_concurrent_futures.executor"],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return python
    return None


@pytest.mark.timeout(300)
def test_as_executor_passes_cpythons_executor_and_shutdown_tests() -> None:
    python = _cpython_with_the_suite()
    if python is None:
        pytest.skip(
            "SKIPPED LOUDLY: no CPython >= 3.12 with test.test_concurrent_futures installed "
            "(set TASKER_CPYTHON_TESTS_PYTHON to one)"
        )
    paths = [
        str(Path(tasker.__file__).parents[1]),  # tasker-core's source tree
        str(Path(pluggy.__file__).parents[1]),  # its one dependency, pure Python
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    done = subprocess.run(
        [python, "-c", RUNNER, *NOT_APPLICABLE],
        capture_output=True,
        text=True,
        env=env,
        timeout=280,
        check=False,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    counts = report.split("ran=")[1].split()
    assert int(counts[0]) >= 16, report  # the two mixins hold 16 tests as of CPython 3.13
    assert counts[1] == f"skipped={len(NOT_APPLICABLE)}", report
