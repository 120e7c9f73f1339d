"""Chapter 5's figure: the bugs of the years when handlers took the lock, buggy against fixed.

From 2017 the loop no longer held its context's lock; every handler and coroutine entry took it
itself, and ``AIO_WAIT_WHILE`` polled with it dropped once. The chapter reproduces five bugs of
those years (the recursive-depth hang D1, the lock held across a yield D2, the wait between two
IOThreads D5, the lost wake-up R3, the freed throttle group R1) and runs each, buggy and fixed,
on many seeded schedules: the figure counts the runs that failed, one pair of bars per bug,
each named by its catalogue entry. The cell prints the outcome table beside it.

Layer 9 (chapters): imports the layers below; matplotlib only when a figure is drawn.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

from labsupport.present import FONT_SIZE, PALETTE, label_bars, new_figure

from .scenarios import SCENARIOS


def bug_label(name: str) -> str:
    """A bug's bar label: its id, its kind and what it is (``SCENARIOS``), over a few lines."""
    sc = SCENARIOS[name]
    return textwrap.fill(f"{name} ({sc.kind}): {sc.what}", 38)


def failed_runs(table: Mapping[tuple[str, str], Mapping[str, int]], seeds: int) -> Any:
    """For each bug of ``table`` (``outcome_table(seeds)``: the outcomes of each bug's buggy
    and fixed variant), how many of the ``seeds`` runs did not end the way a correct run
    does; a horizontal pair of bars per bug, each bar with its count."""
    names = list(dict.fromkeys(name for name, _variant in table))
    failed = {
        v: [seeds - table[(n, v)][SCENARIOS[n].ok] for n in names] for v in ("buggy", "fixed")
    }
    fig, ax = new_figure(figsize=(9, 1.2 + 0.8 * len(names)))
    ys = range(len(names))
    for variant, shift, color, hatch in (
        ("buggy", -0.2, PALETTE[0], "//"),
        ("fixed", 0.2, PALETTE[1], ""),
    ):
        bars = ax.barh(
            [y + shift for y in ys],
            failed[variant],
            height=0.4,
            color=color,
            hatch=hatch,
            edgecolor="black",
            label=variant,
        )
        label_bars(ax, bars)
    ax.set_yticks(list(ys), [bug_label(n) for n in names], fontsize=FONT_SIZE)
    ax.invert_yaxis()
    ax.set_xlim(0, seeds * 1.4)  # room for the counts and the legend
    ax.set_xlabel(f"runs that failed (of {seeds} seeded schedules)")
    ax.set_title("Hangs, assertions and use-after-free, buggy and fixed")
    ax.legend(loc="lower right", fontsize=FONT_SIZE)
    fig.tight_layout()
    return fig


__all__ = ["bug_label", "failed_runs"]
