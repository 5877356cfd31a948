"""The release artifacts of every workspace package, built once per source state; environments."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tools import dist as release

from tests.integration.wheels import Venvs


@pytest.fixture(scope="session")
def dist(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `make dist` builds: an sdist and a wheel of every package.

    The artifacts are kept in the pytest cache under a digest of the packages' sources and of
    the build procedure (`tools.dist.source_digest`): a run with the same sources reuses them,
    any change builds afresh. Without the cache plugin,
    every session builds its own. Tests read this directory and never write into it.
    """
    fresh = tmp_path_factory.mktemp("dist")
    store = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    if store is None:
        release.build(fresh)
        return fresh
    cache = Path(store.mkdir("dist"))
    digest = release.source_digest()
    kept = cache / digest
    if not kept.is_dir():
        release.build(fresh)
        for stale in cache.iterdir():
            shutil.rmtree(stale, ignore_errors=True)
        staging = cache / f".{digest}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(fresh, staging)
        staging.rename(kept)  # whole or not at all: an interrupted copy is never reused
    return kept


@pytest.fixture(scope="session")
def venvs(tmp_path_factory: pytest.TempPathFactory, dist: Path) -> Venvs:
    """Fresh environments that install the session's wheels."""
    return Venvs(tmp_path_factory.mktemp("venvs"), dist)
