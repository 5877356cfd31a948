"""The README's Python code blocks run as written, so a renamed API breaks a test, not a reader."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_python_examples() -> None:
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(BLOCKS[index], f"README.md[block {index}]", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "TaskStats(" in out  # every block shows the manager's stats
    if "bind_contextvars(request_id=" in BLOCKS[index]:
        # a reader sees the bound value on what the task and a worker log about the task
        assert re.sub(r"\x1b\[[0-9;]*m", "", out).count("request_id=r-42") >= 2, out


PACKAGES = Path(__file__).resolve().parent.parent / "packages"
PACKAGE_BLOCKS = [
    (readme.parent.name, index, block)
    for readme in sorted(PACKAGES.glob("*/README.md"))
    for index, block in enumerate(
        re.findall(r"```python\n(.*?)```", readme.read_text(encoding="utf-8"), flags=re.S)
    )
]


@pytest.mark.parametrize(("package", "index", "block"), PACKAGE_BLOCKS)
def test_package_readme_block_runs(package: str, index: int, block: str) -> None:
    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile(block, f"{package}/README.md[block {index}]", "exec"), namespace)
    manager = namespace.get("manager")
    stop = getattr(manager, "stop", None)
    if callable(stop) and getattr(manager, "state", "stopped") != "stopped":
        stop()  # the adapters' snippets build a manager and leave it to the reader


def test_every_package_has_a_license_file() -> None:
    for package in sorted(PACKAGES.iterdir()):
        if (package / "pyproject.toml").exists():
            assert (package / "LICENSE").read_text() == (PACKAGES.parent / "LICENSE").read_text()
