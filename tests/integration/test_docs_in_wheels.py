"""Every code block of the README and the docs runs after exactly the installs they document.

The development environment has everything installed, so a block that needs a package its page
never asks for would pass there and fail for a reader. Here, a fresh environment gets only the
`pip install` commands of the documentation's ```` ```console ```` blocks, run as written with
tasker's packages taken from the wheels `make dist` builds (`--find-links dist`), and then every
page runs in it (`tests/markdown_blocks.py`, in isolated mode: nothing of the repository is on
its path). The third-party packages the commands name come from the package index through uv,
at the lock's versions, so a warm cache makes this quick.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.wheels import ROOT, Venvs, clean_env, run
from tests.markdown_blocks import fenced_blocks, python_blocks

pytestmark = pytest.mark.timeout(300)

PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "packages").glob("*/README.md")),
    *sorted((ROOT / "docs").rglob("*.md")),
]
RUNNER = ROOT / "tests" / "markdown_blocks.py"
UNREACHABLE = ("Failed to fetch", "error sending request", "dns error", "Network is unreachable")
"""What uv says when the index cannot be reached (and the cache does not have the package)."""


def documented_installs() -> list[list[str]]:
    """The arguments of every `pip install` line in the pages' console blocks, in page order."""
    commands: list[list[str]] = []
    for page in PAGES:
        for block in fenced_blocks(page):
            if block.lang != "console":
                continue
            for line in block.code.replace("\\\n", " ").splitlines():  # continued lines
                command = line.removeprefix("$ ")
                if not command.startswith("pip install "):
                    continue
                arguments = shlex.split(command, comments=True)[2:]
                if arguments not in commands:
                    commands.append(arguments)
    return commands


def test_the_docs_say_what_to_install() -> None:
    installs = documented_installs()
    assert ["--find-links", "dist", "tasker-core"] in installs
    adapters = ["--find-links", "dist", "tasker-core[otel,structlog]", "opentelemetry-sdk"]
    assert adapters in installs  # the README's adapter example needs the SDK: the app's choice
    assert ["./examples/plugins"] in installs
    assert ["--find-links", "dist", "tasker-core[ray]"] in installs  # the Ray pages run too
    run = {page.relative_to(ROOT).as_posix() for page in PAGES if python_blocks(page)}
    assert {"packages/tasker-ray/README.md", "docs/ray.md"} <= run


@pytest.fixture(scope="module")
def documented_env(venvs: Venvs, dist: Path) -> Path:
    """An environment with the documented installs and nothing else; its python."""
    python = venvs.empty("documented")
    for arguments in documented_installs():
        try:
            venvs.install(python, *[str(dist) if a == "dist" else a for a in arguments])
        except AssertionError as error:
            if any(sign in str(error) for sign in UNREACHABLE):
                pytest.skip(f"SKIPPED LOUDLY: the package index is unreachable: {error}")
            raise
    return python


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.name)
def test_every_page_runs_in_the_documented_environment(documented_env: Path, page: Path) -> None:
    env = {**clean_env(), "TASKER_STRICT_PLUGINS": "1"}  # a plugin failing to load fails a page
    done = subprocess.run(  # one interpreter per page: pages never share anything
        [str(documented_env), "-I", str(RUNNER), str(page)],
        cwd=documented_env.parent,  # not the repository: the installed packages only
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert f"ok {page.relative_to(ROOT).as_posix()} (" in done.stdout
    if page.name == "README.md" and page.parent == ROOT:
        # the adapter example shows its request_id on what the task and a worker log about it
        assert done.stdout.count("request_id=r-42") >= 2, done.stdout


def test_the_pages_run_in_the_documented_environment_are_all_of_them() -> None:
    assert len([p for p in PAGES if python_blocks(p)]) >= 10


def test_each_package_reports_the_version_it_was_installed_as(documented_env: Path) -> None:
    script = (
        "import importlib.metadata as m, tasker, tasker_otel, tasker_structlog\n"
        "for name, module in [('tasker-core', tasker), ('tasker-otel', tasker_otel),"
        " ('tasker-structlog', tasker_structlog)]:\n"
        "    assert module.__version__ == m.version(name), (name, module.__version__)\n"
        "    assert module.__file__ and 'site-packages' in module.__file__, module.__file__\n"
        "print('versions ok')\n"
    )
    assert "versions ok" in run(documented_env, "-I", "-c", script, cwd=documented_env.parent)


def test_the_runner_reports_a_failing_block(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```python\nraise RuntimeError('boom')\n```\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-I", str(RUNNER), str(page)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "FAILED page.md" in done.stdout
    assert "RuntimeError: boom" in done.stderr
