"""Chapter 0's widgets: seed and thread-count sliders over the lost-update counter, and a
level in which the learner is the scheduler and has to lose an update.

Layer 9 (chapters).
"""

from __future__ import annotations

from typing import Any

from ... import stepper
from ...present import trace_table
from ...stepper import Level
from ...widgets import budgeted, int_slider
from .classics import lost_update
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


# -- be the scheduler --------------------------------------------------------------------------


def _lost(result: Any) -> str | None:
    x = result.sim.model.value
    return f"x ends at {x}, so one of the two increments was lost" if x < 2 else None


def scheduler_level() -> Level:
    """Two threads each add 1 to ``x`` (load, then store): make the counter end at 1."""
    return Level(
        "the lost update",
        lost_update(2, 1),
        "two threads each add 1 to x, which starts at 0: choose the order of their steps so "
        "that x ends at 1",
        _lost,
    )


def scheduler_lab() -> Any:
    """Chapter 0's level of ``labsupport.stepper``, as a widget."""
    return stepper.lab(scheduler_level())
