"""The chapter 8 widget, driven without a browser."""

import ipywidgets
import pytest
from notebook_cells import quiet

from labsupport.chapters.ch08.widgets import lab, view


def _summary(rows):
    return [(r.era.run_era_name, r.io_per_s, r.monitor_p99_us, r.guest_cpus_busy) for r in rows]


def test_the_first_child_is_the_slow_call_slider_and_moving_it_recomputes():
    w, _ = quiet(lab)
    first = w.children[0]
    assert isinstance(first, ipywidgets.IntSlider)
    assert first.description == "slow io_submit per 10000"
    before = w.result
    assert _summary(before) == _summary(quiet(view, 20, 32, 1000)[0])
    _, printed = quiet(setattr, first, "value", 0)
    expected, text = quiet(view, 0, 32, 1000)
    assert _summary(w.result) == _summary(expected) != _summary(before)
    assert text in printed and "slow io_submit 0 in 10000" in printed


def test_the_controls_reach_the_eras():
    w, _ = quiet(lab)
    controls = {c.description: c for c in w.children if hasattr(c, "description")}
    quiet(setattr, controls["slow io_submit per 10000"], "value", 100)
    by = {r.era.run_era_name: r for r in w.result}
    assert by["iothread-2017"].monitor_p99_us > 1_000 > by["iothread-9.0"].monitor_p99_us
    quiet(setattr, controls["info block per second"], "value", 0)
    assert all(r.monitor_p99_us != r.monitor_p99_us for r in w.result)  # NaN: no commands
    _, text = quiet(view, 100, 32, 0)
    assert "no monitor commands" in text
    quiet(setattr, controls["I/O depth"], "value", 1)
    assert max(r.io_per_s for r in w.result) < max(r.io_per_s for r in quiet(view, 100, 32, 0)[0])


def test_bad_values_are_refused_with_what_is_allowed():
    with pytest.raises(ValueError, match="slow_per_10000 is a whole number from 0 to 10000"):
        view(slow_per_10000=-1)
    with pytest.raises(ValueError, match="io_depth must be a whole number"):
        view(io_depth=300)
