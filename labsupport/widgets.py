"""Sliders over pure functions: the notebook's knobs, thin enough to test without a browser.

A workshop host moves a slider on the projector; the callback calls one labsupport function
and prints what it returns. Nothing is computed in the widget itself, so every number it shows
is also what a test gets by calling the same function (``counter_experiment`` for chapter 0).

Layer 7 (widgets): imports the layers below; ipywidgets only when a widget is built.
"""

from __future__ import annotations

from typing import Any

from .demos import CounterOutcome, counter_experiment
from .present import trace_table


def int_slider(
    value: int, lo: int, hi: int, description: str, step: int = 1, label_width: str = "200px"
) -> Any:
    """The course's slider: updates on release (a run per drag would flood the kernel)."""
    import ipywidgets as w

    return w.IntSlider(
        value=value,
        min=lo,
        max=hi,
        step=step,
        description=description,
        continuous_update=False,
        layout=w.Layout(width="500px"),
        style={"description_width": label_width},
    )


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
        counter_view,
        seed=w.IntSlider(value=seed, min=0, max=99, description="seed", continuous_update=False),
        threads=w.IntSlider(
            value=threads, min=1, max=6, description="threads", continuous_update=False
        ),
        increments=w.fixed(increments),
        table=w.fixed(True),
    )
