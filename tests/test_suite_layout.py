"""The suite's own layout: what several test modules share lives in tests/helpers.py."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent


def _imported_modules(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                package = path.relative_to(TESTS.parent).parent.parts[: 1 - node.level or None]
                names.append(".".join([*package, node.module or ""]))
            else:
                names.append(node.module or "")
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def test_no_test_module_imports_another_test_module() -> None:
    offenders = {
        str(path.relative_to(TESTS)): imported
        for path in sorted(TESTS.rglob("test_*.py"))
        if (
            imported := [
                m for m in _imported_modules(path) if m.rsplit(".", 1)[-1].startswith("test_")
            ]
        )
    }
    assert offenders == {}, "move what they share into tests/helpers.py (or the package's conftest)"
