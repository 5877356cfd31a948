"""The demo's surge: a live view redrawn in place on a terminal, plain lines everywhere else."""

from __future__ import annotations

import builtins
import io
import re
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console

from tasker import demo


@pytest.fixture(autouse=True)
def fast_and_no_leftover_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TASKER_DEMO_FAST", "1")
    before = set(threading.enumerate())
    yield
    leftover = [t.name for t in threading.enumerate() if t not in before]
    assert leftover == [], f"threads still running after the demo: {leftover}"


def terminal(buffer: io.StringIO) -> Console:
    return Console(file=buffer, force_terminal=True, width=100, color_system="standard")


class TestChoosingTheView:
    def test_a_terminal_with_rich_gets_the_live_view(self) -> None:
        assert isinstance(demo.choose_view(console=terminal(io.StringIO())), demo.LiveView)

    def test_not_a_terminal_gets_plain_lines(self) -> None:
        console = Console(file=io.StringIO(), force_terminal=False)
        assert isinstance(demo.choose_view(console=console), demo.PlainView)

    def test_plain_is_plain_even_on_a_terminal(self) -> None:
        view = demo.choose_view(plain=True, console=terminal(io.StringIO()))
        assert isinstance(view, demo.PlainView)

    def test_without_rich_a_terminal_gets_plain_lines(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        real_import = builtins.__import__

        def no_rich(name: str, *args: Any, **kwargs: Any) -> Any:
            if name == "rich" or name.startswith("rich."):
                raise ImportError(f"No module named {name!r}")
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", no_rich)
        monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
        assert isinstance(demo.choose_view(), demo.PlainView)


@pytest.mark.timeout(60)
def test_the_live_view_redraws_the_pool_in_place(capsys: pytest.CaptureFixture[str]) -> None:
    buffer = io.StringIO()
    demo.main(console=terminal(buffer))
    drawn = buffer.getvalue()
    out = capsys.readouterr().out
    assert "\x1b[1A\x1b[2K" in drawn  # the cursor goes back up: the panel is redrawn in place
    assert re.search(r"\x1b\[[0-9;]*32m█", drawn)  # busy workers, in green
    panels = drawn.count("surge ")
    assert panels >= 3
    for label in ("workers", "queued", "rates", "latency"):
        assert label in drawn
    assert re.search(r"\d+ \( *\d+ burst\)", drawn)
    assert re.search(r"[▁▂▃▄▅▆▇█]+ +\d+\.\d ms", re.sub(r"\x1b\[[0-9;]*m", "", drawn))
    # the plain lines are not printed as well; the rest of the demo is unchanged
    assert not re.search(r"^ +\d+\.\ds  workers", out, re.M)
    assert "surge done:" in out
    assert re.search(r"Done in \d+\.\d s; manager stopped\.$", out.rstrip())


def test_the_command_line_has_a_plain_switch(capsys: pytest.CaptureFixture[str]) -> None:
    from tasker.cli import main

    assert main(["demo", "--plain"]) == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"^ +\d+\.\ds  workers +\d+ \( *\d+ burst\)", out, re.M)) >= 3


def test_sparkline() -> None:
    assert demo.sparkline([]) == ""
    assert demo.sparkline([1.0, 1.0]) == "▁▁"
    assert demo.sparkline([0.0, 0.5, 1.0]) == "▁▅█"
