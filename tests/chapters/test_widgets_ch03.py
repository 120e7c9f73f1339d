"""The chapter 3 lab, driven without a browser: every number it shows comes from compare()."""

import contextlib
import io

import pytest

from labsupport.chapters.ch03.widgets import GUEST_US, compare, lab, view


def _set(slider, value):
    with contextlib.redirect_stdout(io.StringIO()):
        slider.value = value


def test_the_first_slider_is_the_io_depth_and_moving_it_recomputes():
    with contextlib.redirect_stdout(io.StringIO()):
        w = lab()
    first = w.children[0]
    assert type(first).__name__ == "IntSlider" and first.description == "I/O depth"
    assert w.result.summary() == compare().summary()
    before = w.result.summary()
    _set(first, 1)
    assert w.result.summary() != before
    assert w.result.summary() == compare(io_depth=1).summary()
    assert w.result.bql.workload.io_depth == 1 == w.result.dataplane.workload.io_depth


def test_every_slider_reaches_the_pure_function():
    with contextlib.redirect_stdout(io.StringIO()):
        w = lab()
    sliders = {c.description: c for c in w.children if hasattr(c, "description")}
    assert set(sliders) >= {"I/O depth", "vCPUs", "guest us per exit", "block layer us"}
    _set(sliders["vCPUs"], 2)
    _set(sliders["guest us per exit"], 200)
    _set(sliders["block layer us"], 0)
    expected = compare(io_depth=8, vcpus=2, guest_us=200, block_layer_us=0)
    assert w.result.summary() == expected.summary()
    assert w.result.advantage == expected.advantage


def test_view_prints_both_paths_and_returns_what_it_printed(capsys):
    out = view(io_depth=4)
    text = capsys.readouterr().out
    assert text.strip() == out.summary()
    assert "BQL path (main loop)" in text and "dataplane thread" in text
    assert out.bql.era == "kvm" and out.dataplane.era == "dataplane"
    assert out.dataplane.io_per_s > out.bql.io_per_s


def test_bad_settings_are_refused_with_what_is_allowed():
    with pytest.raises(ValueError, match="guest_us must be one of"):
        lab(guest_us=7)
    with pytest.raises(ValueError, match="io_depth must be a whole number from 0 to 256"):
        compare(io_depth=-1)
    with pytest.raises(ValueError, match="vcpus must be a whole number from 1 to 32"):
        compare(vcpus=0)
    assert GUEST_US == tuple(sorted(GUEST_US))
