"""The chapter 1 widget, driven without a browser: every number it shows comes from ``view``."""

import contextlib
import io

import pytest

from labsupport.chapters.ch01.widgets import LAB_WORKLOAD, describe, lab, view
from labsupport.qemu import run_era


def _quiet(fn, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        value = fn(*args, **kwargs)
    return value, out.getvalue()


def test_the_first_child_is_the_vcpus_slider():
    w, _ = _quiet(lab)
    first = w.children[0]
    assert type(first).__name__ == "IntSlider" and first.description == "vCPUs"
    assert (first.min, first.max, first.value) == (1, 8, 3)


def test_moving_each_slider_recomputes_through_the_pure_function():
    w, _ = _quiet(lab)
    sliders = {c.description: c for c in w.children if hasattr(c, "description")}
    first = w.result
    assert first.summary() == _quiet(view, 3, 200, 0)[0].summary()
    for name, value, args in (
        ("vCPUs", 6, (6, 200, 0)),
        ("time slice (us)", 1000, (6, 1000, 0)),
        ("extra handler cost (us)", 250, (6, 1000, 250)),
    ):
        before = w.result.summary()
        _quiet(setattr, sliders[name], "value", value)
        expected, printed = _quiet(view, *args)
        assert w.result.summary() == expected.summary() != before
        assert printed == describe(expected) + "\n"
    assert w.result.workload == LAB_WORKLOAD.replace(vcpus=6, slice_us=1000, handler_us=250)


def test_view_is_the_one_thread_era_on_the_lab_workload():
    r, printed = _quiet(view, 4, 500, 100)
    same = run_era(LAB_WORKLOAD.replace(vcpus=4, slice_us=500, handler_us=100), "one-thread")
    assert r.summary() == same.summary()
    assert "3 computing vCPU(s)" in printed and "p99" in printed


def test_the_printout_copes_with_every_corner_of_the_sliders():
    _, one = _quiet(view, 1, 200, 0)
    assert "the only vCPU waits for its disk" in one
    _, starved = _quiet(view, 8, 2000, 500)  # a round is longer than the whole run
    assert "no request completed" in starved


def test_bad_values_are_refused_with_what_is_allowed():
    with pytest.raises(ValueError, match="vcpus must be a whole number from 1 to 32"):
        view(0, 200, 0)
    with pytest.raises(ValueError, match="slice_us must be > 0"):
        view(3, 0, 0)
