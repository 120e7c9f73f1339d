"""Sliders over pure functions: the notebook's knobs, thin enough to test without a browser.

A workshop host moves a slider on the projector; the callback calls one labsupport function
and prints what it returns. Nothing is computed in the widget itself, so every number it shows
is also what a test gets by calling the same function. Each chapter's own sliders live in
``labsupport.chapters.chNN.widgets``.

Layer 7 (widgets): imports the layers below; ipywidgets only when a widget is built.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from . import validate
from .kernel import RunawayError, time_budget

_F = TypeVar("_F", bound=Callable[..., Any])

#: The wall-clock budget of each run behind a widget, in seconds: a slider position that made
#: a run loop for ever would freeze the notebook; this way it prints why within seconds.
WIDGET_TIME_LIMIT_S = 5.0


def budgeted(view: _F) -> _F:
    """``w.interactive(budgeted(view), ...)``: every run that ``view`` starts gets
    ``WIDGET_TIME_LIMIT_S`` seconds (``time_budget``); a run that does not finish in time, or
    spins, prints why instead of a traceback. The chapters' ``lab()`` wrap each callback so."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with time_budget(WIDGET_TIME_LIMIT_S):
            try:
                return view(*args, **kwargs)
            except RunawayError as e:
                print(f"this setting did not finish: {e}")
                return None

    return wrapper  # type: ignore[return-value]


def int_slider(
    value: int,
    lo: int,
    hi: int,
    description: str,
    step: int = 1,
    label_width: str | None = "200px",
    width: str | None = "500px",
    name: str | None = None,
) -> Any:
    """The course's slider: updates on release (a run per drag would flood the kernel).
    ``label_width`` and ``width`` size the label and the whole slider (None: ipywidgets'
    default; ``label_width="initial"``: as wide as the label). ``value`` must lie in ``lo`` to
    ``hi``: ipywidgets would silently clamp ``counter_lab(seed=500)`` to 99, so it is refused,
    naming ``name`` (the lab's parameter; default: the description) and the slider's range."""
    validate.whole("lo", lo)
    validate.whole("hi", hi, lo)
    validate.whole("step", step, 1)
    validate.whole(name or description, value, lo, hi)
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
    """``fraction`` (0 to 1) as a bar of ``width`` characters: ``[#####...............]``.
    A fraction outside 0 to 1 is drawn as an empty or a full bar (it is a measurement, such as
    a load above 100 %, not a setting)."""
    validate.number("fraction", fraction)
    validate.whole("width", width, 1, 200)
    filled = max(0, min(width, round(fraction * width)))
    return "[" + "#" * filled + "." * (width - filled) + "]"
