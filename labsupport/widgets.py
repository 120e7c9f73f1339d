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
    value: int,
    lo: int,
    hi: int,
    description: str,
    step: int = 1,
    label_width: str | None = "200px",
    width: str | None = "500px",
) -> Any:
    """The course's slider: updates on release (a run per drag would flood the kernel).
    ``label_width`` and ``width`` size the label and the whole slider (None: ipywidgets'
    default; ``label_width="initial"``: as wide as the label)."""
    import ipywidgets as w

    extra: dict[str, Any] = {}
    if label_width is not None:
        extra["style"] = {"description_width": label_width}
    if width is not None:
        extra["layout"] = w.Layout(width=width)
    return w.IntSlider(
        value=value,
        min=lo,
        max=hi,
        step=step,
        description=description,
        continuous_update=False,
        **extra,
    )


def text_bar(fraction: float, width: int = 20) -> str:
    """``fraction`` (0 to 1) as a bar of ``width`` characters: ``[#####...............]``."""
    filled = max(0, min(width, round(fraction * width)))
    return "[" + "#" * filled + "." * (width - filled) + "]"
