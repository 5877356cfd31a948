"""`make dist`: a wheel and an sdist of every package, checked before they could ship."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
from tools import dist as release

pytestmark = pytest.mark.timeout(240)


def test_every_package_gets_a_wheel_and_an_sdist_that_pass_the_checks(dist: Path) -> None:
    built = release.check(dist)  # twine check --strict, versions: raises on any problem
    members = {path.name for path in release.members()}
    assert set(built) == members
    assert {"tasker-core", "tasker-otel", "tasker-structlog"} <= members
    for item in built.values():
        assert item.wheel.name.startswith(f"{item.name.replace('-', '_')}-{item.version}-")
        assert item.sdist.name == f"{item.name.replace('-', '_')}-{item.version}.tar.gz"


def test_a_package_without_its_sdist_is_refused(dist: Path, tmp_path: Path) -> None:
    for path in dist.glob("*.whl"):
        shutil.copy(path, tmp_path)
    with pytest.raises(release.DistError, match="tasker-core: expected one wheel and one sdist"):
        release.check(tmp_path)


def rewrite(wheel: Path, member: str, change: tuple[str, str]) -> None:
    """Replace text in one member file of a wheel, in place."""
    with zipfile.ZipFile(wheel) as archive:
        files = {info: archive.read(info) for info in archive.infolist()}
    with zipfile.ZipFile(wheel, "w") as archive:
        for info, data in files.items():
            changed = (
                data.decode().replace(*change).encode() if info.filename.endswith(member) else data
            )
            archive.writestr(info, changed)


def test_inconsistent_versions_are_refused(dist: Path, tmp_path: Path) -> None:
    for path in dist.iterdir():
        shutil.copy(path, tmp_path)
    (otel,) = tmp_path.glob("tasker_otel-*.whl")
    rewrite(
        otel,
        ".dist-info/METADATA",
        ("Requires-Dist: tasker-core", "Requires-Dist: tasker-core>=99,"),
    )
    (core,) = tmp_path.glob("tasker_core-*.whl")
    rewrite(core, "tasker/_version.py", ('__version__ = "', '__version__ = "9'))
    problems = "\n".join(release.check_versions(release.artifacts(tmp_path)))
    assert "tasker-otel requires 'tasker-core" in problems
    assert "which the" in problems
    assert "tasker-core: __version__ = '9" in problems
