"""The shared behaviour suite over the Ray executor: what every executor does, done on actors.

The tests are those of the per-executor modules below, run here because the Ray fixtures live
in this package; `tests.drivers.CANNOT_APPLY` names the few that cannot apply, and why.
"""

from __future__ import annotations

import pytest

pytest.importorskip("ray", reason="Ray is not installed for this interpreter: no Ray tests")

from tests.core import test_executors, test_lifecycle, test_overload, test_worker_lifecycle
from tests.drivers import behaviour_suite

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("local_ray")]

globals().update(
    behaviour_suite("ray", test_executors, test_lifecycle, test_overload, test_worker_lifecycle)
)
