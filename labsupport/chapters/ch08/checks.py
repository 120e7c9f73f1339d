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

#: 8.1: two eras whose guest time differs by less than this (vCPUs' worth) tie, and may come
#: in either order.
TIE = 1e-9
#: 8.2's grid of slow-call probabilities and its threshold. The answer is a point of the grid,
#: exactly (no tolerance: the checker compares it with the grid's values).
SLOW_GRID = (0.0, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01)
THRESHOLD_US = 1_000.0
#: 8.2's workload: the common one, 100 ms long so that the p99 rests on about 100 commands.
WORKLOAD_82 = COMMON.replace(duration_us=100_000)


def _order_81(answer: Any) -> tuple[bool, str]:
    names = [e.run_era_name for e in CHAPTER_ERAS]
    if not isinstance(answer, (list, tuple)) or not all(isinstance(n, str) for n in answer):
        return False, f"answer with a list of the era names (strings), each once: {names}"
    unknown = [n for n in answer if n not in names]
    if unknown:
        return False, f"{', '.join(map(repr, unknown))}: not an era name; the names are {names}"
    twice = sorted({n for n in answer if answer.count(n) > 1})
    missing = [n for n in names if n not in answer]
    if twice or missing:
        said = [f"{', '.join(twice)} more than once"] if twice else []
        said += [f"{', '.join(missing)} missing"] if missing else []
        return False, f"every era once: {'; '.join(said)}"
    rows = {r.era.run_era_name: r.guest_cpus_busy for r in measure_eras(COMMON)}
    got = [rows[n] for n in answer]
    if all(a >= b - TIE for a, b in zip(got, got[1:])):
        table = ", ".join(f"{n} {rows[n]:.2f}" for n in answer)
        return True, f"most guest time first: {table}"
    for a, b in zip(answer, answer[1:]):
        if rows[a] < rows[b] - TIE:
            return False, (
                f"{b} ({rows[b]:.2f} vCPUs' worth) leaves the guest more time than "
                f"{a} ({rows[a]:.2f}), which your order puts before it"
            )
    return False, "the order is not by guest time"  # pragma: no cover (the loop finds a pair)


def p99_2017(prob: float) -> float:
    """info block p99 (us) in the 2017 IOThread era on 8.2's workload at ``prob``."""
    return run_era(
        WORKLOAD_82.replace(slow_syscall_prob=prob), "iothread-2017", trace=False
    ).monitor_p99_us


def _threshold_82(answer: Any) -> tuple[bool, str]:
    if not validate.is_number(answer) or answer not in SLOW_GRID:
        return False, (
            f"answer with one of the probabilities on the grid, exactly as it is written "
            f"there: {SLOW_GRID}; not {answer!r}"
        )
    i = SLOW_GRID.index(answer)
    here = p99_2017(answer)
    if here <= THRESHOLD_US:
        return False, (
            f"at {answer} the p99 is {here:,.0f} us, not above the threshold of "
            f"{THRESHOLD_US:,.0f} us"
        )
    if i > 0:
        before = p99_2017(SLOW_GRID[i - 1])
        if before > THRESHOLD_US:
            return False, (
                f"at {answer} the p99 is {here:,.0f} us, above the threshold, but it is above "
                f"it at a smaller probability of the grid too: {answer} is not the first"
            )
    return True, (
        f"at {answer} the p99 is {here:,.0f} us, and not above {THRESHOLD_US:,.0f} us "
        f"at the grid's previous point"
    )


register(
    "8.1",
    _order_81,
    [
        "in which eras does a vCPU wait for a lock that the I/O work holds?",
        "the table of the eras has a column for the guest's CPU time: compare your order with "
        "it, era by era",
        "measure the eras on the common workload and sort their names by the guest's CPU "
        "time, largest first",
    ],
)
register(
    "8.2",
    _threshold_82,
    [
        "does the p99 grow or shrink as slow calls get more likely?",
        "measure the p99 at each probability of the grid, from the smallest up",
        "walk the grid in order and stop at the first probability whose p99 is above the threshold",
    ],
)
