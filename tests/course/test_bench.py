"""bench/run.py --check: the figures held to the goals of its GOALS table, on made-up numbers.

Nothing here times anything; the timings are bench/run.py's own business (``make bench``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "run.py"
_spec = importlib.util.spec_from_file_location("bench_run", BENCH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.mark.parametrize(
    "goal, passing, missing",
    [
        ("< 200 (median)", "199.9", "200.0"),
        ("<= 1.5", "1.50", "1.51"),
        ("> 2", "2.01", "2.00"),
        (">= 0.6 (tracing off)", "0.60", "0.59"),
    ],
)
def test_each_comparison_passes_on_its_side_and_misses_on_the_other(goal, passing, missing):
    op, number = bench.parse_goal(goal)
    assert bench.check({"x": passing}, {"x": goal}) == []
    assert bench.check({"x": missing}, {"x": goal}) == [f"FAIL x: {missing}, goal {op} {number:g}"]


def test_a_wildcard_goal_holds_every_chapter_to_it():
    goals = {"widget_update_ms.*": "< 200 (median, one per chapter)"}
    figures = {"widget_update_ms.ch01": "12.0", "widget_update_ms.ch07": "231.0", "other": "9e9"}
    assert bench.check(figures, goals) == ["FAIL widget_update_ms.ch07: 231.0, goal < 200"]


def test_a_goal_no_printed_figure_matches_is_a_miss():
    goals = {"widget_update_ms.*": "< 200", "trace_overhead": "<= 1.5"}
    assert bench.check({"trace_overhead": "1.20"}, goals) == [
        "FAIL widget_update_ms.*: no figure printed, goal < 200"
    ]


def test_a_key_without_a_wildcard_names_one_figure_only():
    goals = {"mutex_handoff_vs_simpy": ">= 0.6"}
    figures = {"mutex_handoff_vs_simpy": "0.80", "mutex_handoff_vs_simpy.traced": "0.10"}
    assert bench.check(figures, goals) == []


def test_not_a_number_misses():
    assert bench.check({"x": "nan"}, {"x": "< 200"}) == ["FAIL x: nan, goal < 200"]


@pytest.mark.parametrize("goal", ["about 200", "200", "== 1", "< fast", ""])
def test_a_goal_that_does_not_open_with_a_comparison_and_a_number_is_refused(goal):
    with pytest.raises(ValueError, match="a goal opens with"):
        bench.check({"x": "1"}, {"x": goal})


def test_the_bench_goals_table_parses_and_a_run_within_it_passes():
    parsed = {k: bench.parse_goal(v) for k, v in bench.GOALS.items()}
    assert parsed["widget_update_ms.*"] == ("<", 200.0)
    # a made-up run one step inside every goal passes; one step outside each misses that one
    inside = {"<": -1, "<=": 0, ">": 1, ">=": 0}
    outside = {"<": 0, "<=": 1, ">": 0, ">=": -1}
    names = {k: k.replace("*", "ch01") for k in bench.GOALS}
    run = {names[k]: str(goal + inside[op]) for k, (op, goal) in parsed.items()}
    assert bench.check(run) == []
    for k, (op, goal) in parsed.items():
        bad = {**run, names[k]: str(goal + outside[op])}
        assert bench.check(bad) == [f"FAIL {names[k]}: {bad[names[k]]}, goal {op} {goal:g}"]
