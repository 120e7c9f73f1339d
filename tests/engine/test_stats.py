"""The one percentile: nearest rank, the same function wherever a p50 or a p99 is printed."""

import importlib
import math
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

import labsupport
from labsupport.stats import percentile


def test_nearest_rank_examples():
    assert percentile([1, 2, 3, 4], 50) == 2  # not 2.5: never between two samples
    assert percentile([4, 1, 3, 2], 75) == 3
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile(list(range(1, 201)), 99) == 198
    assert percentile([10, 20], 99) == 20 and percentile([10, 20], 50) == 10
    assert percentile([7], 1) == 7 and percentile([3, 1], 100) == 3
    assert math.isnan(percentile([], 50))


@given(st.lists(st.integers(-1000, 1000), min_size=1, max_size=60), st.integers(1, 100))
def test_the_smallest_value_with_at_least_p_percent_at_or_below_it(values, p):
    v = percentile(values, p)
    at_or_below = sum(x <= v for x in values)
    assert v in values and at_or_below * 100 >= p * len(values)
    smaller = [x for x in values if x < v]
    if smaller:  # the next smaller value does not have p percent at or below it
        assert sum(x <= max(smaller) for x in values) * 100 < p * len(values)


def test_there_is_one_percentile_and_analysis_re_exports_it():
    metrics = importlib.import_module("labsupport.analysis.metrics")  # the package's ``metrics``
    assert metrics.percentile is percentile and labsupport.percentile is percentile  # is a function
    root = Path(labsupport.__file__).parent
    others = [
        f"{path.relative_to(root)}: {m.group()}"
        for path in root.rglob("*.py")
        if path.name != "stats.py"
        # (``pct`` alone is the explorer's probabilistic concurrency testing, not a percentile)
        for m in re.finditer(r"def _?(pct\w+|percentile|quantile)\w*\(", path.read_text())
    ]
    assert not others, others
