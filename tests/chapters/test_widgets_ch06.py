"""The chapter 6 widget, driven without a browser.

How fast an update is, is a budget that ``make bench`` checks (widget_update_ms.ch06), not a
test here.
"""

import ipywidgets
import matplotlib
import pytest
from notebook_cells import quiet

from labsupport.chapters.ch06.widgets import lab, lab_config, view

matplotlib.use("Agg")


def test_the_first_child_is_the_reader_rate_slider_and_moving_it_recomputes():
    w, _ = quiet(lab)
    first = w.children[0]
    assert isinstance(first, ipywidgets.IntSlider) and first.description == "reads per ms"
    before = w.result
    assert before.summary() == quiet(view, 40, 2, plot=False)[0].summary()
    _, printed = quiet(setattr, first, "value", 150)
    assert w.result is not before and w.result.cfg.rate_per_ms == 150
    expected, text = quiet(view, 150, 2, plot=False)
    assert w.result.summary() == expected.summary() != before.summary()
    assert text in printed


def test_every_control_reaches_the_pure_function():
    w, _ = quiet(lab)
    controls = {c.description: c for c in w.children if hasattr(c, "description")}
    quiet(setattr, controls["reads per ms"], "value", 150)
    with_drain = w.result.writer_wait_us
    quiet(setattr, controls["writer drains first (no-poll)"], "value", False)
    assert w.result.writer_wait_us > 10 * with_drain
    quiet(setattr, controls["writer drains first (no-poll)"], "value", True)
    quiet(setattr, controls["D6: writer polls with has_writer=1"], "value", True)
    assert w.result.outcome == "deadlock"
    quiet(setattr, controls["D6: writer polls with has_writer=1"], "value", False)
    quiet(setattr, controls["D7: drain under the write lock"], "value", True)
    assert w.result.outcome == "deadlock"  # a cycle through the request asleep in the queue
    quiet(setattr, controls["IOThreads"], "value", 3)
    assert w.result.cfg.iothreads == 3


def test_the_printed_text_reports_wait_throughput_and_outcome_and_the_report():
    g, text = quiet(view, reader_rate=40, plot=False)
    assert text.splitlines()[0] == f"outcome: completed at t={g.result.time:,.0f} us"
    assert "writer wait:" in text and "per ms" in text
    _, hung = quiet(view, d6=True, plot=False)
    assert "DEADLOCK" in hung and "graph lock: has_writer=1" in hung


def test_bad_values_are_refused_with_what_is_allowed():
    with pytest.raises(ValueError, match="reader_rate is a whole number of reads per ms"):
        lab_config(-1, 2, True, False, False)
    with pytest.raises(ValueError, match="iothreads is a whole number from 1 to 8"):
        lab_config(40, 0, True, False, False)
    with pytest.raises(ValueError, match="d6 is True or False"):
        lab_config(40, 2, True, "yes", False)
