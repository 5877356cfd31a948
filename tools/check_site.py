"""Check the built documentation site: the API reference shows nothing internal.

`make docs-build` runs `python -m tools.check_site site` after `mkdocs build`. In the pages under
`reference/`, a signature or a "Bases:" line must not name a private object (`_Options`, a
`_private` module's path) or a class that only a private module defines (`Core`, `ManagerBase`):
those are how tasker is built, not how it is used.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KNOWN = {
    # what a `Place` is asked to run (`task.fn`, `task.args`, docs/executors.md): the executor
    # seam hands executors tasker's own task record
    "TaskRecord",
}
"""Internal names the reference may show, each for the reason given."""
_WATCHED = ("doc-signature", "doc-class-bases")
_PRIVATE = re.compile(r"(?<![\w.])_[A-Za-z]\w*|\._[A-Za-z]\w*")


class _Snippets(HTMLParser):
    """The text of every signature and "Bases:" element of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._depth = 0  # > 0 inside a watched element: the depth of nested tags in it
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"br", "img", "hr", "input", "meta", "link", "wbr"}:
            return
        classes = (dict(attrs).get("class") or "").split()
        if self._depth:
            self._depth += 1
        elif any(name in classes for name in _WATCHED):
            self._depth = 1

    def handle_endtag(self, tag: str) -> None:
        if tag in {"br", "img", "hr", "input", "meta", "link", "wbr"} or not self._depth:
            return
        self._depth -= 1
        if not self._depth:
            self.found.append(" ".join("".join(self._text).split()))
            self._text.clear()

    def handle_data(self, data: str) -> None:
        if self._depth:
            self._text.append(data)


def internal_names(root: Path = ROOT) -> set[str]:
    """Classes defined at the top of private modules and exported by no package."""
    defined: set[str] = set()
    exported: set[str] = set()
    for package in (root / "packages").glob("*/src/*"):
        for module in package.glob("*.py"):
            tree = ast.parse(module.read_text(encoding="utf-8"))
            if module.name.startswith("_") and module.name != "__init__.py":
                defined |= {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
                continue  # what a private module exports is still internal
            for node in tree.body:
                if (
                    isinstance(node, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
                    and isinstance(node.value, ast.List | ast.Tuple)
                ):
                    exported |= {
                        e.value
                        for e in node.value.elts
                        if isinstance(e, ast.Constant) and isinstance(e.value, str)
                    }
    return {name for name in defined - exported - KNOWN if not name.startswith("_")}


def leaks(html: str, internal: set[str]) -> list[str]:
    """Each signature or bases line of `html` that names something internal."""
    parser = _Snippets()
    parser.feed(html)
    words = re.compile(rf"\b({'|'.join(map(re.escape, sorted(internal)))})\b") if internal else None
    return [
        text
        for text in parser.found
        if _PRIVATE.search(text.replace("__", "")) or (words and words.search(text))
    ]


def check(site: Path) -> list[str]:
    """Every leak in the reference pages of the built `site`, as `page: text`."""
    internal = internal_names()
    problems = []
    pages = sorted((site / "reference").rglob("*.html"))
    if not pages:
        return [f"{site}/reference: no page found: build the site first"]
    for page in pages:
        for text in leaks(page.read_text(encoding="utf-8"), internal):
            problems.append(f"{page.relative_to(site)}: {text}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Check the site built in the directory given (default `site`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    problems = check(Path(args[0] if args else "site"))
    for problem in problems:
        print(f"internal name in the API reference: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
