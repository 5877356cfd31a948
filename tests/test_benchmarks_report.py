"""The benchmark scenarios are found by file, and their targets are data the reporter evaluates."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.append(str(BENCHMARKS))  # last: the benchmarks' modules never shadow another's

from harness import QUICK, Row, Scenario, Section, Target, Variant, When, scenarios  # noqa: E402
from reporter import Report, compile_expression, validate  # noqa: E402


def _never(_sizes: object) -> dict[str, float]:
    raise AssertionError("the reporter never runs a variant")


def _scenario(*rows: Row) -> Scenario:
    variants = {key: Variant(key.upper(), _never, "s") for key in ("z.base", "z.ours")}
    return Scenario("z", variants, (Section("z. {count(sizes.trivial_tasks)} tasks", rows),))


def _result(**median: float) -> dict[str, Any]:
    return {"median": median, "runs": [median], "peak_rss_mib": 40.0}


RATIO = Target("ours/base", "z.ours.s / z.base.s", 0.8, limit=1.0, shown="<= {at_most}")


def _report(results: dict[str, dict[str, Any]], *rows: Row) -> Report:
    report = Report(results, QUICK, (_scenario(*rows),))
    report.build()
    return report


class TestScenarioDiscovery:
    def test_every_module_of_the_scenarios_folder_is_a_scenario(self) -> None:
        modules = sorted(
            path.stem for path in (BENCHMARKS / "scenarios").glob("*.py") if path.stem[0] != "_"
        )
        assert [s.name for s in scenarios()] == [name.split("_")[0] for name in modules]
        assert [s.name for s in scenarios()] == ["a", "b", "c", "d", "e", "f", "g", "h"]

    def test_every_row_and_target_of_the_scenarios_names_declared_variants(self) -> None:
        validate(scenarios())
        for scenario in scenarios():
            assert all(key.startswith(f"{scenario.name}.") for key in scenario.variants)


class TestTargets:
    @pytest.mark.parametrize(
        ("ours", "verdict"),
        [(0.5, "met"), (0.9, "MISSED (within limit)"), (1.5, "FAILED (over limit)")],
    )
    def test_a_target_is_evaluated_from_the_medians(self, ours: float, verdict: str) -> None:
        results = {"z.base": _result(s=1.0), "z.ours": _result(s=ours)}
        report = _report(results, Row("z.base", "{s:.1f} s"), Row("z.ours", "x", targets=(RATIO,)))
        (check,) = report.checks
        assert (check.scenario, check.metric, check.value, check.verdict) == (
            "z",
            "ours/base",
            ours,
            verdict,
        )
        (title, lines) = report.sections[0]
        assert title == "z. 5k tasks"
        assert (lines[1].target, lines[1].verdict) == ("<= 0.8", verdict)

    def test_without_its_baseline_a_target_is_left_out(self) -> None:
        results = {"z.ours": _result(s=0.5)}
        report = _report(
            results,
            Row("z.base", "{s:.1f} s"),
            Row("z.ours", ("{s:.1f} s", " ({s / z.base.s:.2f} x)"), targets=(RATIO,)),
        )
        assert report.checks == []
        base, ours = report.sections[0][1]
        assert (base.variant, base.result) == ("Z.BASE", "(not run)")
        assert (ours.result, ours.target, ours.verdict) == ("0.5 s", "", "")

    def test_a_failed_variant_shows_its_error(self) -> None:
        results = {"z.base": {"error": "timed out after 60 s"}, "z.ours": _result(s=0.5)}
        report = _report(results, Row("z.base", "{s:.1f} s"), Row("z.ours", "{s:.1f} s"))
        assert report.sections[0][1][0].result == "ERROR: timed out after 60 s"

    def test_several_targets_share_a_row(self) -> None:
        results = {"z.base": _result(s=1.0), "z.ours": _result(s=0.5, e=0.02)}
        error = Target("error", "z.ours.e", 0.01, shown="error <= {at_most}", suffix=" on error")
        report = _report(results, Row("z.ours", "x", targets=(RATIO, error)))
        line = report.sections[0][1][0]
        assert (line.target, line.verdict) == ("<= 0.8, error <= 0.01", "met (MISSED on error)")

    def test_a_conditional_piece_shows_only_when_its_condition_holds(self) -> None:
        spread = When("len(runs.s) > 1", ", runs {min(runs.s)}-{max(runs.s)}")
        results = {"z.ours": {**_result(s=2.0), "runs": [{"s": 1.0}, {"s": 3.0}]}}
        report = _report(results, Row("z.ours", ("{s}", spread)))
        assert report.sections[0][1][0].result == "2.0, runs 1.0-3.0"
        results = {"z.ours": _result(s=2.0)}
        assert _report(results, Row("z.ours", ("{s}", spread))).sections[0][1][0].result == "2.0"


class TestValidation:
    def test_a_misspelt_variant_is_refused_naming_the_scenario(self) -> None:
        row = Row("z.ours", "{s / z.bsae.s:.2f}")
        with pytest.raises(ValueError, match=r"scenario z: 'z\.bsae\.s' names no declared variant"):
            validate((_scenario(row),))

    @pytest.mark.parametrize("expression", ["__import__('os')", "z.ours.s ** 2", "[1, 2]"])
    def test_only_figures_arithmetic_and_a_few_functions_are_allowed(self, expression: str) -> None:
        with pytest.raises(ValueError, match="is not allowed"):
            compile_expression(expression)
