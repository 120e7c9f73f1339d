"""Summary statistics of measured samples: the one definition of a percentile in the course.

Chapters report a p50 and a p99 for I/O and monitor latencies from several places: the era
models and the multiqueue model (layer 4), chapter 4's VM (layer 9) and the analyses
(``analysis.metrics``, layer 5). If each computed its own percentile they could disagree
(nearest rank in one, interpolation in another) and a p99 printed in chapter 7 would not be the
same quantity as one printed in chapter 8. So there is one function, here in layer 1 (it
imports nothing from labsupport) where every layer can import it; ``analysis.metrics``
re-exports it as ``metrics.percentile``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from . import validate


def percentile(values: Iterable[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of ``values``; NaN if there are none.

    Nearest rank: the smallest of the values with at least ``p`` percent of all the values at or
    below it, i.e. the ``ceil(p / 100 * n)``-th smallest (the smallest for ``p`` near 0). It is
    always one of the measured values, never an interpolation between two of them: the p99 of
    100 latencies is the 99th smallest, the p50 of ``[1, 2, 3, 4]`` is 2.
    """
    validate.number("p", p, low=0, high=100, low_open=True, kind="a percentage")
    s = sorted(validate.numbers("values", values))
    if not s:
        return math.nan
    k = max(1, math.ceil(p * len(s) / 100))  # p * n first: exact for a whole p (7% of 100 is 7)
    return s[min(k, len(s)) - 1]
