"""The code blocks of Markdown pages, and a runner for them: standard library only.

`tests/test_docs.py` and `tests/test_readme.py` use the parsing in the development environment.
Run as a script, it runs pages in whatever interpreter runs it, which is how the pages are tested
in an environment built from the wheels with only the documented installs:

    python -I tests/markdown_blocks.py README.md docs/getting-started.md ...

How a page's blocks run (`run_page`): every ```` ```python ```` block runs in the order of its
page, in one fresh module per page, so a later block may use what an earlier one defined, like
the cells of a notebook; on a page of `STANDALONE`, every block runs alone, as a reader who copies
one would run it. A block titled like a file, ```` ```python title="my_plugins.py" ````, becomes
the module `my_plugins`, which the blocks after it may import. A `--8<--` snippet directive is
replaced by the file it names, as the site build does. A thread still running after a block (a
manager left running) fails it.
"""

from __future__ import annotations

import re
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STANDALONE = {"docs/plugins.md"}
"""Pages whose every block runs alone, in a fresh module: nothing is carried between them."""

_OPENING = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_SNIPPET = re.compile(r"^[ \t]*--8<--[ \t]+\"(?P<path>[^\"]+)\"[ \t]*$")  # --8<-- "path"
_SNIPPET_BLOCK = re.compile(r"^[ \t]*--8<--[ \t]*$")  # --8<--, then one path a line, then --8<--
_TITLE = re.compile(r"""title=(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)')""")


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it starts, its language, its title and its code."""

    path: Path
    line: int  # 1-based line of the block's first line of code
    lang: str
    title: str | None
    code: str

    @property
    def where(self) -> str:
        path = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{path}:{self.line}"

    @property
    def includes(self) -> list[Path]:
        return [path for path in _expand_lines(self.code.splitlines()) if isinstance(path, Path)]


def _expand_lines(lines: list[str]) -> Iterator[str | Path]:
    """The lines of a block, with each snippet directive replaced by the path it includes."""
    in_block = False
    for line in lines:
        if _SNIPPET_BLOCK.match(line):
            in_block = not in_block
        elif in_block:
            if line.strip():
                yield Path(line.strip())
        elif match := _SNIPPET.match(line):
            yield Path(match["path"])
        else:
            yield line


def fenced_blocks(path: Path, text: str | None = None) -> list[Block]:
    """The fenced code blocks of a Markdown text, indented ones (admonitions, tabs) included."""
    if text is None:
        text = path.read_text(encoding="utf-8")
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _OPENING.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence, info = opening["indent"], opening["fence"], opening["info"].strip()
        closing = re.compile(rf"^{re.escape(indent)}{fence[0]}{{{len(fence)},}}[ \t]*$")
        end = i + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        body = [line.removeprefix(indent) for line in lines[i + 1 : end]]
        words = info.split()
        lang = words[0].strip("{}.").lower() if words else ""
        title = _TITLE.search(info)
        blocks.append(
            Block(
                path,
                i + 2,
                lang,
                (title["dq"] if title["dq"] is not None else title["sq"]) if title else None,
                "\n".join(body) + "\n",
            )
        )
        i = end + 1
    return blocks


def expand(block: Block) -> tuple[str, str, int]:
    """The block's source with its includes expanded, the file name and line to report.

    Snippet directives take either form pymdownx.snippets knows: `--8<-- "path"` on one line, or
    a `--8<--` line, paths one a line, and a closing `--8<--` line (the form to use in Python
    blocks: the one-line form is valid Python, which formatters would rewrite).
    """
    parts = list(_expand_lines(block.code.splitlines()))
    paths = [part for part in parts if isinstance(part, Path)]
    if not paths:
        return block.code, str(block.path), block.line
    if len(parts) == 1:  # the block is one included file: report its own lines
        return (ROOT / paths[0]).read_text(encoding="utf-8"), str(ROOT / paths[0]), 1
    text = [(ROOT / p).read_text(encoding="utf-8") if isinstance(p, Path) else p for p in parts]
    return "\n".join(text) + "\n", block.where, 1  # lines no longer match the page's


def module_name(title: str) -> str:
    """`my_plugins.py` -> `my_plugins`; `pkg/__init__.py` -> `pkg`."""
    assert title.endswith(".py"), f"a Python block's title must be a file name, got {title!r}"
    return title.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def python_blocks(page: Path) -> list[Block]:
    """The blocks of `page` that run."""
    return [block for block in fenced_blocks(page) if block.lang == "python"]


def new_threads(before: set[threading.Thread]) -> list[str]:
    """The threads started since `before` still alive after a short grace (5 s each)."""
    leftover = [t for t in threading.enumerate() if t not in before]
    for thread in leftover:
        thread.join(timeout=5)
    return [t.name for t in leftover if t.is_alive()]


def page_name(page: Path) -> str:
    """The page as `STANDALONE` names it: its path from the repository's root."""
    return page.relative_to(ROOT).as_posix() if page.is_relative_to(ROOT) else page.name


def run_page(
    page: Path,
    register: Callable[[str, types.ModuleType], object] = sys.modules.__setitem__,
    budget: Callable[[str], float] | None = None,
) -> None:
    """Run the page's blocks (see the module docstring); raise on the first that fails.

    `register(name, module)` puts the page's modules in `sys.modules` (a test passes one that
    undoes it afterwards). `budget(source)` limits the seconds of each block.
    """
    name = "docs_" + re.sub(r"\W", "_", page_name(page).removesuffix(".md"))
    standalone = page_name(page) in STANDALONE
    namespace: types.ModuleType | None = None
    for block in python_blocks(page):
        source, filename, line = expand(block)
        code = compile("\n" * (line - 1) + source, filename, "exec", dont_inherit=True)
        if block.title is not None:
            target = types.ModuleType(module_name(block.title))
            target.__file__ = block.title
        elif namespace is None or standalone:
            target = namespace = types.ModuleType(name)
        else:
            target = namespace
        register(target.__name__, target)
        before = set(threading.enumerate())
        started = time.perf_counter()
        exec(code, vars(target))
        elapsed = time.perf_counter() - started
        leftover = new_threads(before)
        assert not leftover, f"{block.where}: threads still running after the block: {leftover}"
        if budget is not None:
            limit = budget(source)
            assert elapsed < limit, f"{block.where}: took {elapsed:.2f} s (> {limit} s)"


def main(argv: list[str], run: Callable[[Path], None] = run_page) -> int:
    """Run each page given; report each, and return 1 if any failed."""
    failed = 0
    for argument in argv:
        page = Path(argument).resolve()
        try:
            run(page)
        except BaseException:
            failed += 1
            print(f"FAILED {page_name(page)}", flush=True)
            traceback.print_exc()
        else:
            print(f"ok {page_name(page)} ({len(python_blocks(page))} blocks)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
