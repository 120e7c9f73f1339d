"""Chapter 8's lab: every era on one workload, with the workload on sliders.

The retrospective's table answers "what did each step buy?" for one workload; the sliders
change that workload (how often an ``io_submit`` blocks, how deep the guest's queue is, how often
a monitor asks ``info block``) and ``view`` runs every era on it again
(``scenarios.measure_eras``) and prints the table. Nothing is computed in the widget.

Layer 9 (chapters): imports the layers below; ipywidgets only when a widget is built.
"""

from __future__ import annotations

from typing import Any

from labsupport import validate
from labsupport.widgets import budgeted, int_slider

from .scenarios import COMMON, EraRow, format_rows, measure_eras

#: Simulated time per slider move: short enough to feel instant with six eras to run.
DURATION_US = 10_000


def view(
    slow_per_10000: int = 20, io_depth: int = 32, monitor_per_s: int = 1000, seed: int = 0
) -> list[EraRow]:
    """Run every era on the common workload changed as given, print the table, return the rows.

    ``slow_per_10000``: how many ``io_submit`` calls in ten thousand block for 2 ms.
    """
    validate.whole("slow_per_10000", slow_per_10000, 0, 10_000, verb="is")
    w = COMMON.replace(
        slow_syscall_prob=slow_per_10000 / 10_000,
        io_depth=io_depth,
        monitor_per_s=monitor_per_s,
        duration_us=DURATION_US,
        seed=seed,
    )
    rows = measure_eras(w)
    print(
        f"{DURATION_US / 1000:g} ms simulated; slow io_submit {slow_per_10000} in 10000, "
        f"I/O depth {io_depth}, info block {monitor_per_s}/s"
    )
    print(format_rows(rows))
    best = max(rows, key=lambda r: r.guest_cpus_busy)
    if monitor_per_s:
        fastest = min(rows, key=lambda r: r.monitor_p99_us)
        print(
            f"most guest time: {best.era.run_era_name}; quickest info block: "
            f"{fastest.era.run_era_name}"
        )
    else:
        print(f"most guest time: {best.era.run_era_name}; no monitor commands")
    return rows


def lab(slow_per_10000: int = 20, io_depth: int = 32, monitor_per_s: int = 1000) -> Any:
    """Sliders for slow calls (the first), I/O depth and monitor rate over ``view``;
    ``.result`` holds the last list of rows."""
    import ipywidgets as w

    return w.interactive(
        budgeted(view),
        slow_per_10000=int_slider(
            slow_per_10000, 0, 200, "slow io_submit per 10000", name="slow_per_10000"
        ),
        io_depth=int_slider(io_depth, 1, 64, "I/O depth", name="io_depth"),
        monitor_per_s=int_slider(
            monitor_per_s, 0, 2000, "info block per second", 50, name="monitor_per_s"
        ),
        seed=w.fixed(0),
    )
