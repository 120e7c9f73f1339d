"""Chapter 8's exercises: reading the retrospective's table, judged by measuring.

8.1 asks for the eras in order of the guest CPU time they leave the guest on the common
workload (a prediction, checked against a fresh measurement, not a stored answer). 8.2 asks for
the smallest slow-``io_submit`` probability, on a given grid, at which a monitor command in the
2017 IOThread era waits more than a millisecond at the 99th percentile; the checker measures
the learner's probability and its neighbour on the grid.

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

from typing import Any

from labsupport import validate
from labsupport.exercises import register
from labsupport.qemu.eras import run_era

from .scenarios import CHAPTER_ERAS, COMMON, measure_eras

#: 8.2's grid of slow-call probabilities and its threshold.
SLOW_GRID = (0.0, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01)
THRESHOLD_US = 1_000.0
#: 8.2's workload: the common one, 100 ms long so that the p99 rests on about 100 commands.
WORKLOAD_82 = COMMON.replace(duration_us=100_000)


def _order_81(answer: Any) -> tuple[bool, str]:
    names = [e.run_era_name for e in CHAPTER_ERAS]
    if not isinstance(answer, (list, tuple)) or sorted(map(str, answer)) != sorted(names):
        return False, f"answer with a list of the era names, each once: {names}"
    rows = {r.era.run_era_name: r.guest_cpus_busy for r in measure_eras(COMMON)}
    right = sorted(names, key=lambda n: (-rows[n], names.index(n)))
    got = [rows[n] for n in answer]
    if all(a >= b - 1e-9 for a, b in zip(got, got[1:])):
        table = ", ".join(f"{n} {rows[n]:.2f}" for n in answer)
        return True, f"most guest time first: {table}"
    for a, b in zip(answer, answer[1:]):
        if rows[a] < rows[b] - 1e-9:
            return False, (
                f"{b} ({rows[b]:.2f} vCPUs' worth) leaves the guest more time than "
                f"{a} ({rows[a]:.2f}); one right order is {right}"
            )
    return False, f"one right order is {right}"  # pragma: no cover (the loop finds the pair)


def p99_2017(prob: float) -> float:
    """info block p99 (us) in the 2017 IOThread era on 8.2's workload at ``prob``."""
    return run_era(
        WORKLOAD_82.replace(slow_syscall_prob=prob), "iothread-2017", trace=False
    ).monitor_p99_us


def _threshold_82(answer: Any) -> tuple[bool, str]:
    if not validate.is_number(answer) or answer not in SLOW_GRID:
        return False, f"answer with one of the probabilities on the grid {SLOW_GRID}"
    i = SLOW_GRID.index(answer)
    here = p99_2017(answer)
    if here <= THRESHOLD_US:
        return False, (
            f"at {answer} the p99 is {here:,.0f} us, not above {THRESHOLD_US:,.0f} "
            f"us yet: look further along the grid"
        )
    if i > 0:
        before = p99_2017(SLOW_GRID[i - 1])
        if before > THRESHOLD_US:
            return False, (
                f"{SLOW_GRID[i - 1]} already gives {before:,.0f} us: the first "
                f"probability above the threshold is smaller than {answer}"
            )
    return True, (
        f"at {answer} the p99 is {here:,.0f} us, and not above {THRESHOLD_US:,.0f} us "
        f"at the grid's previous point"
    )


register(
    "8.1",
    _order_81,
    "measure_eras(COMMON) gives guest_cpus_busy for each era; sort the "
    "era names by it, largest first",
)
register(
    "8.2",
    _threshold_82,
    "loop over SLOW_GRID, measure p99_2017(p) for each and return the "
    "first p whose p99 is above 1000 us",
)
