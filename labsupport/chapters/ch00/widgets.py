"""Chapter 0's widget: seed and thread-count sliders over the lost-update counter.

Layer 9 (chapters).
"""

from __future__ import annotations

from typing import Any

from ...present import trace_table
from ...widgets import budgeted, int_slider
from .scenarios import CounterOutcome, counter_experiment


def counter_view(
    seed: int, threads: int, increments: int = 2, table: bool = True
) -> CounterOutcome:
    """What the chapter 0 widget shows for one setting: the outcome, and its trace table."""
    out = counter_experiment(seed=seed, threads=threads, increments=increments)
    print(out.summary())
    if table:
        print(trace_table(out.result, max_rows=40))
    return out


def counter_lab(seed: int = 0, threads: int = 2, increments: int = 2) -> Any:
    """Seed and thread-count sliders over ``counter_experiment``; ``.result`` holds the outcome."""
    import ipywidgets as w

    return w.interactive(
        budgeted(counter_view),
        seed=int_slider(seed, 0, 99, "seed", label_width=None, width=None, name="seed"),
        threads=int_slider(threads, 1, 6, "threads", label_width=None, width=None, name="threads"),
        increments=w.fixed(increments),
        table=w.fixed(True),
    )
