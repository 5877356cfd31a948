"""Fresh virtual environments built from the workspace's wheels, for the integration tests.

The wheels and sdists come from `tools.dist.build`, the code behind `make dist`, built once per
state of the packages' sources and kept in the pytest cache (`tests/integration/conftest.py`).
Third-party dependencies resolve to the versions of the workspace's lock file, so their installs
come from uv's cache; the workspace's own packages always come from those wheels, whatever an
index may hold under the same names.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).parent / "uv"


def clean_env() -> dict[str, str]:
    """The environment without the workspace's own virtual environment settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH", "PYTHONHOME"}
        and not key.startswith("TASKER_")
    }
    env["UV_PYTHON_DOWNLOADS"] = "never"
    return env


def run(*command: str | Path, cwd: Path = ROOT, timeout: float = 120) -> str:
    """Run `command` in the clean environment; return its output, failing on a non-zero exit."""
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


class Venvs:
    """The workspace's wheels (in `wheels`), and fresh environments to install them into."""

    def __init__(self, root: Path, wheels: Path) -> None:
        self.root = root
        self.wheels = wheels
        self.constraints = root / "constraints.txt"
        pins = run(
            UV,
            "export",
            "--frozen",
            "--no-hashes",
            "--no-emit-workspace",
            "--all-packages",
            "--no-header",
            "--no-annotate",
        )
        own = "".join(
            f"{wheel.name.split('-')[0].replace('_', '-')} @ {wheel.as_uri()}\n"
            for wheel in sorted(wheels.glob("*.whl"))
        )
        self.constraints.write_text(pins + own, encoding="utf-8")

    def wheel(self, package: str) -> str:
        """The URL of `package`'s wheel."""
        (found,) = self.wheels.glob(f"{package.replace('-', '_')}-*.whl")
        return found.as_uri()

    def create(self, name: str, *requirements: str) -> Path:
        """A fresh environment with `requirements`; return its python."""
        python = self.empty(name)
        self.install(python, *requirements)
        return python

    def empty(self, name: str) -> Path:
        """A fresh environment with nothing installed; return its python."""
        venv = self.root / name
        run(UV, "venv", "--quiet", "--clear", "--python", sys.executable, venv)
        return venv / "bin" / "python"

    def install(self, python: Path, *arguments: str, cwd: Path = ROOT) -> None:
        """`pip install *arguments` into `python`'s environment, with the lock's versions."""
        run(
            UV,
            "pip",
            "install",
            "--quiet",
            "--python",
            python,
            "--constraints",
            self.constraints,
            *arguments,
            cwd=cwd,
        )

    def distributions(self, python: Path) -> set[str]:
        """The names of the distributions installed in `python`'s environment."""
        listing = run(UV, "pip", "list", "--python", python, "--format", "json")
        return {item["name"] for item in json.loads(listing)}
