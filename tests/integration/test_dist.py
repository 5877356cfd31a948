"""`make dist`: a wheel and an sdist of every package, checked before they could ship."""

from __future__ import annotations

import shutil
import subprocess
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


def test_the_source_digest_changes_with_any_file_a_build_reads(tmp_path: Path) -> None:
    package = tmp_path / "packages" / "one"
    package.mkdir(parents=True)
    (package / "pyproject.toml").write_text("[project]\nname = 'one'\n", encoding="utf-8")
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "dist.py").write_text("# build\n", encoding="utf-8")
    (tmp_path / ".gitignore").write_text("__pycache__/\n", encoding="utf-8")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    first = release.source_digest(tmp_path)
    assert release.source_digest(tmp_path) == first  # stable while nothing changes

    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "m.pyc").write_bytes(b"ignored")
    assert release.source_digest(tmp_path) == first  # what git ignores is not built

    (package / "module.py").write_text("x = 1\n", encoding="utf-8")  # new, untracked
    added = release.source_digest(tmp_path)
    assert added != first
    (package / "module.py").write_text("x = 2\n", encoding="utf-8")
    edited = release.source_digest(tmp_path)
    assert edited not in {first, added}
    (tmp_path / "tools" / "dist.py").write_text("# built otherwise\n", encoding="utf-8")
    assert release.source_digest(tmp_path) not in {first, added, edited}
