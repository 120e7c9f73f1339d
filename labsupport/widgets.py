"""Sliders over pure functions: the notebook's knobs, thin enough to test without a browser.

A workshop host moves a slider on the projector; the callback calls one labsupport function
and prints what it returns. Nothing is computed in the widget itself, so every number it shows
is also what a test gets by calling the same function. Each chapter's own sliders live in
``labsupport.chapters.chNN.widgets``.

Layer 7 (widgets): imports the layers below; ipywidgets only when a widget is built.
"""

from __future__ import annotations

from typing import Any


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
