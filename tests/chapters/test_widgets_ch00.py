"""The chapter 0 widget, driven without a browser."""

import contextlib
import io

from labsupport.chapters.ch00.scenarios import counter_experiment
from labsupport.chapters.ch00.widgets import counter_lab


def test_moving_a_slider_recomputes_through_the_pure_function():
    w = counter_lab(seed=0, threads=2)
    sliders = {c.description: c for c in w.children if hasattr(c, "description")}
    first = w.result
    assert first.summary() == counter_experiment(0, 2).summary()
    with contextlib.redirect_stdout(io.StringIO()):
        sliders["threads"].value = 4
    assert w.result.threads == 4 and w.result.expected == 8
    assert w.result.summary() == counter_experiment(0, 4).summary()
    assert w.result.summary() != first.summary()
    with contextlib.redirect_stdout(io.StringIO()):
        sliders["seed"].value = 9
    assert w.result.seed == 9 and w.result.schedule == counter_experiment(9, 4).schedule


def test_bad_values_are_refused_with_what_is_allowed():
    import pytest

    with pytest.raises(ValueError, match="threads must be a whole number from 1 to"):
        counter_experiment(0, 0)
    with pytest.raises(ValueError, match="seed"):
        counter_experiment(-1, 2)
