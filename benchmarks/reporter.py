"""The benchmark report: the scenarios' sections filled with the variants' results.

Each scenario declares its rows and targets as data (`harness.Section`, `Row`, `Target`); this
module evaluates their expressions against the medians, renders the table and records every
target as a check, met or missed.

An expression reads figures and computes with them; nothing else is allowed:

- `us_per_task`: the row's variant's median figure; `a.tpe.us_per_task`: variant `a.tpe`'s;
  `peak_rss_mib`: a variant's peak memory (`a.tpe.peak_rss_mib`);
- `runs.us_per_task`: the row's variant's figure in each timed run, a list;
- `sizes.trivial_tasks`: a size of this run (`harness.Sizes`);
- numbers and strings, `+ - * /`, a comparison (`x > 0`), and the functions of `FUNCTIONS`.

A figure of a variant that was not run, or failed, is missing: the piece of a cell, or the
target, that needs it is left out. A figure no variant declares is an error.
"""

from __future__ import annotations

import ast
import operator
import string
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from harness import Cell, Row, Scenario, Section, Sizes, Variant, When

# ------------------------------------------------------------------------ formatting


def time_text(seconds: float) -> str:
    """A duration with a unit that keeps it readable: `24 ns`, `1.5 us`, `20.2 ms`, `1.471 s`."""
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.3f} s"


def bytes_text(n: float) -> str:
    """A size in KiB, or MiB from 1 MiB on."""
    if n < 1024**2:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024**2:.1f} MiB"


def count_text(n: int) -> str:
    """A count, shortened when round: `100k`, `1M`, `300`."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    "count": count_text,
    "time": time_text,
    "bytes": bytes_text,
    "min": min,
    "max": max,
    "len": len,
}
"""The functions an expression may call."""

# ------------------------------------------------------------------------ expressions


class NotMeasuredError(Exception):
    """A figure of a variant that was not run, or failed."""


class Figures:
    """What an expression reads: the results, this run's sizes, and the row's own variant."""

    def __init__(
        self,
        results: Mapping[str, Mapping[str, Any]],
        known: Iterable[str],
        sizes: Sizes,
        own: str | None = None,
        names: Mapping[str, Any] | None = None,
    ) -> None:
        self.results = results
        self.known = frozenset(known)
        self.sizes = sizes
        self.own = own
        self.names = names or {}

    def lookup(self, path: tuple[str, ...]) -> Any:
        head = path[0]
        if len(path) == 1 and head in self.names:
            return self.names[head]
        if head == "sizes" and len(path) == 2:
            return getattr(self.sizes, path[1])
        if head == "runs" and len(path) == 2:
            return [run[path[1]] for run in self._result(self._own(path))["runs"]]
        if len(path) == 1:
            return self.figure(self._own(path), head)
        return self.figure(".".join(path[:-1]), path[-1])

    def _own(self, path: tuple[str, ...]) -> str:
        if self.own is None:
            raise ValueError(f"{'.'.join(path)!r}: no variant here; name one (`a.tpe.seconds`)")
        return self.own

    def _result(self, key: str) -> Mapping[str, Any]:
        if key not in self.known:
            raise ValueError(
                f"no variant {key!r}; the variants are {', '.join(sorted(self.known))}"
            )
        result = self.results.get(key)
        if result is None or "median" not in result:
            raise NotMeasuredError(key)
        return result

    def figure(self, key: str, name: str) -> float:
        result = self._result(key)
        if name == "peak_rss_mib":
            return float(result[name])
        median: Mapping[str, float] = result["median"]
        if name not in median:
            raise ValueError(f"variant {key!r} has no figure {name!r}: it has {', '.join(median)}")
        return median[name]


Expression = Callable[[Figures], Any]

_BINARY: Mapping[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_COMPARE: Mapping[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_UNARY: Mapping[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _path(node: ast.expr) -> tuple[str, ...] | None:
    """`a.tpe.seconds` as `("a", "tpe", "seconds")`; None if `node` is no dotted name."""
    if isinstance(node, ast.Name):
        return (node.id,)
    if isinstance(node, ast.Attribute):
        head = _path(node.value)
        return None if head is None else (*head, node.attr)
    return None


@dataclass(frozen=True)
class Compiled:
    """An expression ready to evaluate, and the dotted names it reads."""

    evaluate: Expression
    paths: tuple[tuple[str, ...], ...]


@cache
def compile_expression(text: str) -> Compiled:
    """Compile `text`; a clear `ValueError` if it is not an expression allowed here."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as error:
        raise ValueError(f"{text!r} is not an expression: {error.msg}") from error
    paths: list[tuple[str, ...]] = []
    return Compiled(_compile(tree, text, paths), tuple(paths))


def _compile(node: ast.expr, text: str, paths: list[tuple[str, ...]]) -> Expression:
    path = _path(node)
    if path is not None:
        paths.append(path)
        return lambda figures: figures.lookup(path)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str):
        value = node.value
        return lambda _: value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        binary = _BINARY[type(node.op)]
        left, right = _compile(node.left, text, paths), _compile(node.right, text, paths)
        return lambda figures: binary(left(figures), right(figures))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        unary = _UNARY[type(node.op)]
        operand = _compile(node.operand, text, paths)
        return lambda figures: unary(operand(figures))
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        compare = _COMPARE[type(node.ops[0])]
        left = _compile(node.left, text, paths)
        right = _compile(node.comparators[0], text, paths)
        return lambda figures: compare(left(figures), right(figures))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in FUNCTIONS
        and not node.keywords
    ):
        function = FUNCTIONS[node.func.id]
        arguments = [_compile(argument, text, paths) for argument in node.args]
        return lambda figures: function(*(argument(figures) for argument in arguments))
    raise ValueError(
        f"{text!r}: {ast.unparse(node)!r} is not allowed; an expression has figures, numbers, "
        f"+ - * /, one comparison and the functions {', '.join(FUNCTIONS)}"
    )


@dataclass(frozen=True)
class Template:
    """Text with `{expression:format}` fields."""

    pieces: tuple[tuple[str, Compiled | None, str], ...]
    """Literal text, then a field and its format (None and "" after the last field)."""

    @property
    def paths(self) -> Iterator[tuple[str, ...]]:
        for _, compiled, _ in self.pieces:
            if compiled is not None:
                yield from compiled.paths

    def fill(self, figures: Figures) -> str:
        out: list[str] = []
        for literal, compiled, spec in self.pieces:
            out.append(literal)
            if compiled is not None:
                out.append(format(compiled.evaluate(figures), spec))
        return "".join(out)


@cache
def compile_template(text: str) -> Template:
    """Compile `text`; a clear `ValueError` if a field is not an expression allowed here."""
    pieces: list[tuple[str, Compiled | None, str]] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as error:
        raise ValueError(f"{text!r} is not a template: {error}") from error
    for literal, name, spec, conversion in parsed:
        if conversion is not None:
            raise ValueError(f"{text!r}: no `!{conversion}` conversions in a template")
        compiled = None if name is None else compile_expression(name)
        pieces.append((literal, compiled, spec or ""))
    return Template(tuple(pieces))


def _pieces(cell: Cell) -> tuple[str | When, ...]:
    return cell if isinstance(cell, tuple) else (cell,)


def fill_cell(cell: Cell, figures: Figures) -> str:
    """The cell's text: each piece whose figures are there (and whose condition holds), end to
    end; a piece after one left out loses its leading ", "."""
    out: list[str] = []
    for piece in _pieces(cell):
        try:
            if isinstance(piece, When):
                if compile_expression(piece.condition).evaluate(figures):
                    out.append(compile_template(piece.text).fill(figures))
            else:
                out.append(compile_template(piece).fill(figures))
        except NotMeasuredError:
            continue
    return "".join(out).removeprefix(", ")  # what follows a piece left out


# ------------------------------------------------------------------------ validation


def _row_expressions(row: Row) -> Iterator[Compiled | Template]:
    for cell in (row.result, row.ratio):
        for piece in _pieces(cell):
            if isinstance(piece, When):
                yield compile_expression(piece.condition)
                yield compile_template(piece.text)
            else:
                yield compile_template(piece)
    if row.label is not None:
        yield compile_template(row.label)
    for target in row.targets:
        yield compile_expression(target.value)
        if target.shown is not None:
            yield compile_template(target.shown)  # reads at_most and limit


def validate(scenarios: Sequence[Scenario]) -> None:
    """Compile every template and expression, and check every variant they name exists.

    Raises `ValueError` naming the scenario and what is wrong.
    """
    known = {key for scenario in scenarios for key in scenario.variants}
    for scenario in scenarios:
        for section in scenario.sections:
            try:
                compiled: list[Compiled | Template] = [compile_template(section.title)]
                for row in section.rows:
                    if row.key is not None and row.key not in known:
                        raise ValueError(f"a row shows variant {row.key!r}, which is not declared")
                    compiled.extend(_row_expressions(row))
                for item in compiled:
                    for path in item.paths:
                        head = path[0]
                        if head in ("sizes", "runs") or len(path) == 1:
                            continue
                        if ".".join(path[:-1]) not in known:
                            raise ValueError(f"{'.'.join(path)!r} names no declared variant")
            except ValueError as error:
                raise ValueError(f"scenario {scenario.name}: {error}") from error


# ------------------------------------------------------------------------ the report


@dataclass
class Line:
    """One rendered line of the table."""

    variant: str
    result: str
    ratio: str = ""
    target: str = ""
    verdict: str = ""


@dataclass
class Check:
    """A target, for the JSON report."""

    scenario: str
    metric: str
    value: float
    target: float
    limit: float | None
    verdict: str


def verdict(value: float, target: float, limit: float | None = None) -> str:
    """`met` at or below the target; beyond it, whether it is within the limit, if any."""
    if value <= target:
        return "met"
    if limit is None:
        return "MISSED"
    return "MISSED (within limit)" if value <= limit else "FAILED (over limit)"


@dataclass
class Report:
    """The table sections and target checks of the scenarios that were run."""

    results: Mapping[str, Mapping[str, Any]]
    sizes: Sizes
    scenarios: Sequence[Scenario]
    sections: list[tuple[str, list[Line]]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def build(self) -> None:
        """Fill every section any of whose variants was run (all of them unless `--only`)."""
        variants: dict[str, Variant] = {}
        for scenario in self.scenarios:
            variants.update(scenario.variants)
        for scenario in self.scenarios:
            for section in scenario.sections:
                if any(key in self.results for key in section.keys):
                    self.sections.append(self._section(scenario.name, section, variants))

    def _figures(self, variants: Mapping[str, Variant], own: str | None) -> Figures:
        return Figures(self.results, variants, self.sizes, own)

    def _section(
        self, scenario: str, section: Section, variants: Mapping[str, Variant]
    ) -> tuple[str, list[Line]]:
        title = compile_template(section.title).fill(self._figures(variants, None))
        lines: list[Line] = []
        for row in section.rows:
            result = self.results.get(row.key) if row.key is not None else None
            if row.key is not None and (result is None or "median" not in result):
                shown = "(not run)" if result is None else f"ERROR: {result.get('error')}"
                lines.append(Line(variants[row.key].label, shown))
                continue
            figures = self._figures(variants, row.key)
            label = variants[row.key].label if row.key is not None else ""
            if row.label is not None:
                label = compile_template(row.label).fill(figures)
            line = Line(label, fill_cell(row.result, figures), fill_cell(row.ratio, figures))
            self._targets(scenario, row, figures, line)
            lines.append(line)
        return title, lines

    def _targets(self, scenario: str, row: Row, figures: Figures, line: Line) -> None:
        """Evaluate the row's targets whose figures are there: checks, target and verdict."""
        shown: list[str] = []
        verdicts: list[str] = []
        for target in row.targets:
            try:
                value = float(compile_expression(target.value).evaluate(figures))
            except NotMeasuredError:
                continue
            outcome = verdict(value, target.at_most, target.limit)
            self.checks.append(
                Check(scenario, target.metric, value, target.at_most, target.limit, outcome)
            )
            verdicts.append(outcome + target.suffix)
            if target.shown is not None:
                names = {"at_most": target.at_most, "limit": target.limit}
                shown.append(compile_template(target.shown).fill(self._named(figures, names)))
        line.target = ", ".join(shown)
        if row.verdicts == "list":
            line.verdict = "met" if all(v == "met" for v in verdicts) else ", ".join(verdicts)
        else:
            line.verdict = "".join([*verdicts[:1], *(f" ({v})" for v in verdicts[1:])])

    @staticmethod
    def _named(figures: Figures, names: Mapping[str, Any]) -> Figures:
        return Figures(figures.results, figures.known, figures.sizes, figures.own, names)

    def render(self, header: str) -> str:
        columns = ("variant", "result", "vs baseline", "target", "verdict")
        cells = [
            (f"  {r.variant}", r.result, r.ratio, r.target, r.verdict)
            for _, lines in self.sections
            for r in lines
        ]
        widths = [max(len(c[i]) for c in [columns, *cells]) for i in range(len(columns))]

        def line(values: Sequence[str]) -> str:
            return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

        out = [header, "", line(columns), line(["-" * w for w in widths])]
        for title, lines in self.sections:
            out.append(title)
            out.extend(
                line((f"  {r.variant}", r.result, r.ratio, r.target, r.verdict)) for r in lines
            )
        return "\n".join(out)
