"""The suite's own markers: what `gil` does on an interpreter without the GIL."""

from __future__ import annotations

import sys

import pytest

from tests import conftest


def _marked_gil() -> None:
    """A test body for the items below; never run."""


def _item(request: pytest.FixtureRequest, *, gil: bool) -> pytest.Item:
    parent = request.node.parent
    assert isinstance(parent, pytest.Module | pytest.Class)
    item = pytest.Function.from_parent(parent, name="_marked_gil", callobj=_marked_gil)
    if gil:
        item.add_marker(pytest.mark.gil)
    return item


def test_gil_disabled_follows_the_interpreter() -> None:
    enabled = getattr(sys, "_is_gil_enabled", lambda: True)()
    assert conftest.GIL_DISABLED is (not enabled)


def test_with_the_gil_a_gil_test_is_an_ordinary_test(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conftest, "GIL_DISABLED", False)
    item = _item(request, gil=True)
    conftest.pytest_collection_modifyitems([item])
    assert item.get_closest_marker("xfail") is None


def test_without_the_gil_only_gil_tests_are_expected_to_fail(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conftest, "GIL_DISABLED", True)
    marked, plain = _item(request, gil=True), _item(request, gil=False)
    conftest.pytest_collection_modifyitems([marked, plain])
    xfail = marked.get_closest_marker("xfail")
    assert xfail is not None
    assert xfail.kwargs["strict"] is False
    assert "docs/development.md" in xfail.kwargs["reason"]
    assert plain.get_closest_marker("xfail") is None
