"""Every Python code block of the documentation runs, so a renamed API breaks a test, not a reader.

How the blocks of `docs/**/*.md` are run (what a page's author needs to know):

- Every ```` ```python ```` block runs, in the order of its page, in one namespace per page (a
  fresh module): a later block may use what an earlier block of the same page defined, like the
  cells of a notebook. Pages never share anything.
- A block titled like a file, ```` ```python title="my_plugins.py" ````, does not run in the
  page's namespace: it becomes the module `my_plugins`, which the blocks after it may import.
- A `--8<-- "path"` line (pymdownx.snippets) is replaced by the file, as the site build does.
  Only files that their own tests exercise may be included: `INCLUDED` names the test of each.
- Asynchronous examples call `asyncio.run(...)` themselves; a top-level `await` is an error.
- A block must finish within `BLOCK_BUDGET` seconds (`PROCESS_BLOCK_BUDGET` if it starts child
  interpreters: spawning one takes seconds on a loaded machine) and stop whatever it starts: a
  thread still running after a block fails the page.
- What is not Python to run takes another tag: `toml`, `console`, `text`.
- A page that needs something installed gets it from `PAGE_SETUP` (`plugins.md`: the example
  plugin, laid out as an installed distribution with its entry point).
- On a page of `markdown_blocks.STANDALONE` (`plugins.md`), every block runs alone: a reader can
  copy any one of them and run it as is.

The parsing and the runner live in `tests/markdown_blocks.py` (standard library only), which
`tests/integration/test_docs_in_wheels.py` also runs in an environment built from the wheels
with only the installs the documentation gives.

README.md's blocks are run by `tests/test_readme.py`. The code examples in the packages'
docstrings, which the API reference renders, run here too, given stand-ins for the names they
assume (`connect`, `close`, `open_session`, ...).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import re
import shutil
import sqlite3
import sys
import threading
import tomllib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tasker.plugins import reset_plugins
from tests.markdown_blocks import Block, expand, fenced_blocks, new_threads, run_page

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PACKAGES = ("tasker-core", "tasker-otel", "tasker-structlog", "tasker-ray")
SOURCES = [ROOT / "packages" / name / "src" for name in PACKAGES]
BLOCK_BUDGET = 1.0  # seconds per block
PROCESS_BLOCK_BUDGET = 20.0  # seconds per block that starts child processes


def budget(source: str) -> float:
    """The seconds a block of this source may take."""
    return PROCESS_BLOCK_BUDGET if 'with_executor("process"' in source else BLOCK_BUDGET


INCLUDED: dict[str, tuple[str, str | None]] = {
    "examples/basic.py": ("tests/test_examples.py", 'run_example("basic"'),
    "examples/intermediate.py": ("tests/test_examples.py", 'run_example("intermediate"'),
    "examples/advanced.py": ("tests/test_examples.py", 'run_example("advanced"'),
    "examples/async_fetch.py": ("tests/test_examples.py", 'run_example("async_fetch"'),
    "examples/pinned_executor.py": (
        "tests/core/test_executor_seam.py",
        'load_example("pinned_executor"',
    ),
    "examples/otel_prometheus.py": ("tests/otel/test_prometheus.py", '"otel_prometheus.py"'),
    "examples/plugins/tasker_example_plugins/__init__.py": (
        "tests/core/test_plugins.py",
        '"tasker_example_plugins"',
    ),
    # read by `install_example_plugin` below, whose entry point plugins.md then uses by name
    "examples/plugins/pyproject.toml": ("tests/test_docs.py", None),
}
"""The files a page may include: each with the test that runs it and how that test names it."""

PAGES = sorted(DOCS.rglob("*.md"))
BLOCKS = {page: fenced_blocks(page, page.read_text(encoding="utf-8")) for page in PAGES}
RUNNABLE = {page: [b for b in blocks if b.lang == "python"] for page, blocks in BLOCKS.items()}
PAGES_WITH_CODE = [page for page, blocks in RUNNABLE.items() if blocks]


def page_id(page: Path) -> str:
    return page.relative_to(DOCS).as_posix()


# --------------------------------------------------------------------------- page setup


@contextlib.contextmanager
def install_example_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Lay out `examples/plugins` as `pip install ./examples/plugins` would, entry point and all."""
    source = ROOT / "examples" / "plugins"
    project = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    site = tmp_path / "site-packages"
    shutil.copytree(source / "tasker_example_plugins", site / "tasker_example_plugins")
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n",
        encoding="utf-8",
    )
    points = "".join(f"{k} = {v}\n" for k, v in project["entry-points"]["tasker"].items())
    (info / "entry_points.txt").write_text(f"[tasker]\n{points}", encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    for name in ("TASKER_DISABLE_PLUGIN_AUTOLOAD", "TASKER_BLOCK_PLUGINS", "TASKER_STRICT_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TASKER_STRICT_PLUGINS", "1")  # a plugin that fails to load fails the page
    reset_plugins()
    try:
        yield
    finally:
        reset_plugins()
        for name in [n for n in sys.modules if n.split(".")[0] == "tasker_example_plugins"]:
            del sys.modules[name]


PAGE_SETUP: dict[str, Callable[[Path, pytest.MonkeyPatch], AbstractContextManager[None]]] = {
    "plugins.md": install_example_plugin,
}


# --------------------------------------------------------------------------- running


@pytest.mark.timeout(30)
@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=page_id)
def test_page_code_runs(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = PAGE_SETUP.get(page_id(page))
    with setup(tmp_path, monkeypatch) if setup else contextlib.nullcontext():
        run_page(page, lambda n, m: monkeypatch.setitem(sys.modules, n, m), budget)


# --------------------------------------------------------------------------- the rules


def test_the_docs_have_runnable_code() -> None:
    assert len(PAGES_WITH_CODE) >= 8
    assert sum(map(len, RUNNABLE.values())) >= 30


def test_every_fence_says_what_it_holds() -> None:
    """A block without a language is neither highlighted nor run: say `text` if it is text."""
    untagged = [b.where for blocks in BLOCKS.values() for b in blocks if not b.lang]
    assert not untagged, f"code blocks without a language: {untagged}"


def test_python_blocks_parse_as_python() -> None:
    """A `py`/`python3`/`pycon` block would escape the runner: use `python`."""
    aliases = {"py", "python3", "py3", "pycon", "ipython"}
    odd = [b.where for blocks in BLOCKS.values() for b in blocks if b.lang in aliases]
    assert not odd, f"use ```python for Python blocks: {odd}"
    for blocks in RUNNABLE.values():
        for block in blocks:
            source, filename, _ = expand(block)
            ast.parse(source, filename)


def test_only_tested_files_are_included() -> None:
    for blocks in BLOCKS.values():
        for block in blocks:
            for path in map(Path.as_posix, block.includes):
                assert path in INCLUDED, (
                    f"{block.where} includes {path}, which no test is known to run: include a "
                    "tested example, or add the file and its test to INCLUDED"
                )
                assert (ROOT / path).is_file(), f"{block.where}: {path} does not exist"
    for path, (test, marker) in INCLUDED.items():
        if marker is None:
            continue
        text = (ROOT / test).read_text(encoding="utf-8")
        assert marker in text, f"{test} no longer seems to run {path} (looked for {marker})"


def test_the_site_fetches_nothing_from_elsewhere() -> None:
    """No web fonts, scripts or stylesheets from another host: the site builds and reads offline."""
    from mkdocs.config import load_config

    config = load_config(str(ROOT / "mkdocs.yml"))
    assert config["theme"]["font"] is False
    for asset in [*config["extra_css"], *config["extra_javascript"]]:
        assert "//" not in str(asset), f"external asset: {asset}"
    assert "mermaid" not in (ROOT / "mkdocs.yml").read_text(encoding="utf-8")  # loads from a CDN


def test_every_page_is_in_the_navigation() -> None:
    from mkdocs.config import load_config

    def files(items: object) -> Iterator[str]:
        if isinstance(items, str):
            yield items
        elif isinstance(items, list):
            for item in items:
                yield from files(item)
        elif isinstance(items, dict):
            for value in items.values():
                yield from files(value)

    listed = set(files(load_config(str(ROOT / "mkdocs.yml"))["nav"]))
    assert {page_id(p) for p in PAGES} == listed


def test_the_api_reference_lists_every_public_name() -> None:
    """`reference/tasker.md` orders `tasker`'s names by hand: a new public name must be added."""
    import tasker

    page = (DOCS / "reference" / "tasker.md").read_text(encoding="utf-8")
    directive = page[page.index("::: tasker\n") :]
    listed = re.findall(r"^ +- (\w+)$", directive, flags=re.M)
    assert len(listed) == len(set(listed)), "a name is listed twice"
    external = {"__version__", "CancelledError"}  # not tasker's own: no docstring to render
    assert set(listed) == set(tasker.__all__) - external
    table = page[: page.index("::: tasker\n")]
    missing = [name for name in listed if f"[`{name}`][tasker.{name}]" not in table]
    assert not missing, f"add {missing} to the table of names by topic"


# --------------------------------------------------------------------------- docstrings


def docstring_blocks() -> list[Block]:
    """The ```python examples in the packages' source (their docstrings)."""
    found = []
    for src in SOURCES:
        for path in sorted(src.rglob("*.py")):
            blocks = fenced_blocks(path, path.read_text(encoding="utf-8"))
            found += [block for block in blocks if block.lang == "python"]
    return found


class _Session:
    """Stands in for an async HTTP session in the docstring examples."""

    async def get(self, path: str) -> str:
        await asyncio.sleep(0)
        return f"200 {path}"

    def close(self) -> None:
        pass


def _close(resource: sqlite3.Connection | _Session) -> None:
    resource.close()


async def _open_session() -> _Session:
    return _Session()


async def _close_session(session: _Session) -> None:
    session.close()


async def _fetch(session: _Session) -> str:
    return await session.get("/")


STAND_INS: dict[str, object] = {
    "connect": lambda: sqlite3.connect(":memory:", check_same_thread=False),
    "close": _close,
    "open_session": _open_session,
    "close_session": _close_session,
    "fetch": _fetch,
}
"""The names the docstring examples assume, as an application would define them."""

DOCSTRING_BLOCKS = docstring_blocks()


def test_the_docstrings_have_examples() -> None:
    assert len(DOCSTRING_BLOCKS) >= 4


@pytest.mark.timeout(30)
@pytest.mark.parametrize("block", DOCSTRING_BLOCKS, ids=lambda b: b.where)
def test_docstring_example_runs(block: Block) -> None:
    import tasker

    namespace: dict[str, object] = {"__name__": "docstring_example", **STAND_INS}
    namespace.update((name, getattr(tasker, name)) for name in tasker.__all__)
    code = compile(
        "\n" * (block.line - 1) + block.code,
        str(block.path),
        "exec",
        flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
        dont_inherit=True,
    )
    before = set(threading.enumerate())
    outcome = eval(code, namespace)  # a coroutine when the example awaits
    if inspect.iscoroutine(outcome):
        asyncio.run(outcome)
    manager = namespace.get("manager")
    if isinstance(manager, tasker.TaskManager):
        manager.stop()  # an example that only builds a manager leaves stopping it to its reader
    assert not new_threads(before)


def test_the_plugin_guide_shows_the_example_plugin_as_it_is() -> None:
    """The guide carries the example's files verbatim, readable where Markdown is shown raw."""
    blocks = {b.title: b.code for b in BLOCKS[DOCS / "plugins.md"] if b.title is not None}
    example = ROOT / "examples" / "plugins"
    plugin = (example / "tasker_example_plugins" / "__init__.py").read_text(encoding="utf-8")
    assert blocks["tasker_example_plugins/__init__.py"] == plugin
    toml = (example / "pyproject.toml").read_text(encoding="utf-8")
    assert blocks["examples/plugins/pyproject.toml"] == toml
    assert "--8<--" not in (DOCS / "plugins.md").read_text(encoding="utf-8")


class TestTheReferenceHidesInternals:
    """`tools/check_site.py`, which `make docs-build` runs on the built site."""

    def test_private_bases_and_internal_constructors_are_leaks(self) -> None:
        from tools.check_site import internal_names, leaks

        internal = internal_names()
        assert {"Core", "ManagerBase"} <= internal
        page = (
            '<div class="doc-signature highlight"><code>TaskManager(core: '
            "<span>Core</span>[R], runtime: Any)</code></div>"
            '<p class="doc doc-class-bases">Bases: <code>_Options[R]</code></p>'
            '<p class="doc doc-class-bases">Bases: <code>Future[T]</code>, '
            "<code>Generic[T]</code></p>"
            '<div class="doc-signature"><code>submit(fn, *args, timeout=None)</code></div>'
        )
        assert leaks(page, internal) == [
            "TaskManager(core: Core[R], runtime: Any)",
            "Bases: _Options[R]",
        ]

    def test_the_built_site_is_checked_after_every_build(self) -> None:
        makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
        build = makefile[makefile.index("\ndocs-build:") :]
        assert "$(BIN)/python -m tools.check_site $(DOCS_SITE)" in build.split("\n\n")[0]

    def test_with_policy_names_every_registered_policy(self) -> None:
        from tasker import TaskManagerBuilder
        from tasker.plugins import Plugins

        doc = TaskManagerBuilder.with_policy.__doc__ or ""
        for name in Plugins().registry("policies").names():
            assert f'`"{name}"`' in doc, f"with_policy's docstring does not name {name!r}"


def test_code_blocks_wrap_instead_of_overflowing() -> None:
    """At 1280 px a code block shows about 84 characters; the examples are formatted to 100."""
    from mkdocs.config import load_config

    config = load_config(str(ROOT / "mkdocs.yml"))
    assert "stylesheets/extra.css" in [str(css) for css in config["extra_css"]]
    css = (DOCS / "stylesheets" / "extra.css").read_text(encoding="utf-8")
    assert re.search(r"\.md-typeset pre > code \{[^}]*white-space: pre-wrap;", css)
