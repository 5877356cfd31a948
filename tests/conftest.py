"""Shared fixtures; a guard fails any test that leaves tasker threads behind."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.helpers import Resources


@pytest.fixture
def resources() -> Resources:
    return Resources()


def _tasker_threads() -> list[threading.Thread]:
    return [
        t for t in threading.enumerate() if t.name.startswith("tasker-") or "-worker-" in t.name
    ]


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = set(_tasker_threads())
    yield
    leaked = [t for t in _tasker_threads() if t not in before]
    for t in leaked:
        t.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"threads outlived the test: {still}"
