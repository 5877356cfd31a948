"""Packaging proof: wheels of the four packages, installed into fresh virtual environments.

- `tasker-core[otel,structlog]` pulls in both adapters and their runtime dependencies only
  (`opentelemetry-api`, not the SDK), and both adapters work by name;
- each adapter, installed alone beside `tasker-core` (plus the test tools), passes its own
  test suite and cannot import the other adapter's dependencies.

- `tasker-ray`'s wheel depends on `tasker-core` and `ray`, registers the executor name `"ray"`,
  and is `tasker-core`'s extra `ray` (its metadata only: Ray's install is too large for a
  test's fresh environment; `tests/ray` runs it from the workspace).

The wheels are `make dist`'s (`tests/integration/conftest.py`); dependencies resolve to the
versions of the workspace's lock file, so the installs come from uv's cache.
"""

from __future__ import annotations

import re
from email.message import Message
from pathlib import Path

import pytest

import tasker_otel
import tasker_structlog
from tests.drivers import CANNOT_APPLY
from tests.integration.wheels import Venvs, run

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("tasker-core", "tasker-otel", "tasker-ray", "tasker-structlog")
TEST_TOOLS = ("pytest", "pytest-timeout")

pytestmark = pytest.mark.timeout(240)


SCRIPT = """
import importlib.util

from structlog.testing import capture_logs

from tasker import TaskManager
from tasker_otel import OTelCollector, OTelTracing, observe
from tasker_structlog import StructlogLogger, task_context

assert importlib.util.find_spec("opentelemetry.sdk") is None  # the API alone is enough
with capture_logs() as entries:
    manager = (
        TaskManager.builder()
        .with_name("proof")
        .with_plugins(OTelTracing(), task_context)
        .with_metrics("otel", manager="proof")
        .with_logger("structlog", service="proof-app")
        .build()
    )
    with manager, observe(manager):
        assert isinstance(manager._core.config.logger, StructlogLogger)
        assert isinstance(manager._core.config.collectors[0], OTelCollector)
        print("result", manager.queue_task(lambda r: 21 * 2))
        print("metrics", manager.metrics().total_tasks_completed)
print("events", sorted({e["event"] for e in entries if e["service"] == "proof-app"}))
"""


def test_the_extras_install_both_adapters_that_work_by_name(venvs: Venvs) -> None:
    core = venvs.wheel("tasker-core")
    python = venvs.create(
        "full",
        f"tasker-core[otel,structlog] @ {core}",
        venvs.wheel("tasker-otel"),
        venvs.wheel("tasker-structlog"),
    )
    installed = venvs.distributions(python)
    assert {"tasker-core", "tasker-otel", "tasker-structlog"} <= installed
    assert {"opentelemetry-api", "structlog", "pluggy"} <= installed
    assert not {"opentelemetry-sdk", "prometheus-client"} & installed
    out = run(python, "-c", SCRIPT, cwd=venvs.root)  # not the repository: the wheels only
    assert "result 42" in out
    assert "metrics 1" in out
    assert "'manager.started'" in out
    assert "'worker.started'" in out
    plugins = run(python, "-m", "tasker", "plugins", cwd=venvs.root)
    assert f"otel  [tasker-otel {tasker_otel.__version__}]" in plugins
    assert f"structlog  [tasker-structlog {tasker_structlog.__version__}]" in plugins


@pytest.mark.parametrize(
    ("adapter", "tests", "extra", "absent"),
    [
        (
            "tasker-otel",
            "tests/otel",
            ("opentelemetry-sdk", "opentelemetry-exporter-prometheus"),
            "structlog",
        ),
        ("tasker-structlog", "tests/structlog", (), "opentelemetry"),
    ],
)
def test_each_adapter_alone_passes_its_tests(
    venvs: Venvs, adapter: str, tests: str, extra: tuple[str, ...], absent: str
) -> None:
    python = venvs.create(
        adapter, venvs.wheel("tasker-core"), venvs.wheel(adapter), *extra, *TEST_TOOLS
    )
    other = "tasker-structlog" if adapter == "tasker-otel" else "tasker-otel"
    assert other not in venvs.distributions(python)
    check = f"import importlib.util as u; print(u.find_spec({absent!r}))"
    assert run(python, "-c", check, cwd=venvs.root).strip() == "None"
    out = run(python, "-m", "pytest", tests, "-q", "-rs", "-p", "no:cacheprovider", timeout=180)
    summary = out.strip().splitlines()[-1]
    passed = re.match(r"(\d+) passed(, \d+ skipped)? in ", summary)
    assert passed, summary  # nothing failed or errored
    assert int(passed.group(1)) >= 20
    # nothing skipped for a missing dependency: only the shared tests that cannot apply to an
    # executor, each for its stated reason
    allowed = {reason for reasons in CANNOT_APPLY.values() for reason in reasons.values()}
    skipped = re.findall(r"^SKIPPED \[\d+\] [^:]+:\d+: (.*)$", out, re.MULTILINE)
    assert set(skipped) <= allowed, skipped


def _metadata(venvs: Venvs, package: str) -> tuple[Message, dict[str, str]]:
    """A wheel's METADATA and its files' text by name ending (`entry_points.txt`)."""
    import zipfile
    from email.parser import Parser
    from urllib.parse import urlparse

    with zipfile.ZipFile(urlparse(venvs.wheel(package)).path) as wheel:
        files = {
            n.rsplit("/", 1)[-1]: wheel.read(n).decode()
            for n in wheel.namelist()
            if ".dist-info/" in n
        }
    return Parser().parsestr(files["METADATA"]), files


def test_the_ray_wheel_registers_its_executor_and_is_the_ray_extra(venvs: Venvs) -> None:
    metadata, files = _metadata(venvs, "tasker-ray")
    requires = metadata.get_all("Requires-Dist") or []
    assert any(r.startswith("tasker-core") for r in requires), requires
    assert any(r.startswith("ray") for r in requires), requires
    entry_points = files["entry_points.txt"]
    assert "[tasker]" in entry_points
    assert "ray = tasker_ray.plugin" in entry_points
    core, _ = _metadata(venvs, "tasker-core")
    extras = [r for r in core.get_all("Requires-Dist") or [] if r.startswith("tasker-ray")]
    assert extras, core.get_all("Requires-Dist")
    assert all("extra == 'ray'" in r or 'extra == "ray"' in r for r in extras), extras


@pytest.mark.parametrize("package", PACKAGES)
def test_each_wheel_carries_its_license_and_a_readme_of_its_own(venvs: Venvs, package: str) -> None:
    import zipfile
    from email.parser import Parser
    from urllib.parse import urlparse

    with zipfile.ZipFile(urlparse(venvs.wheel(package)).path) as wheel:
        names = wheel.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(wheel.read(metadata_name).decode())
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert metadata["License-Expression"] == "MIT"
    description = metadata.get_payload()
    assert f"# {package}" in description
    assert "../" not in description  # no link that only works inside the repository
