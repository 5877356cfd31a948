"""The release artifacts of every workspace package, built once per session, and environments."""

from __future__ import annotations

from pathlib import Path

import pytest
from tools import dist as release

from tests.integration.wheels import Venvs


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `make dist` builds: an sdist and a wheel of every package, in a fresh directory."""
    out = tmp_path_factory.mktemp("dist")
    release.build(out)
    return out


@pytest.fixture(scope="session")
def venvs(tmp_path_factory: pytest.TempPathFactory, dist: Path) -> Venvs:
    """Fresh environments that install the session's wheels."""
    return Venvs(tmp_path_factory.mktemp("venvs"), dist)
