"""The chapter 4 widget, driven without a browser."""

import ipywidgets
import pytest
from notebook_cells import quiet

from labsupport.chapters.ch04.widgets import lab, view


def test_the_first_child_is_the_vcpu_slider_and_moving_it_recomputes():
    w, _ = quiet(lab)
    first = w.children[0]
    assert isinstance(first, ipywidgets.IntSlider) and first.description == "vCPUs"
    before = w.result
    assert before.summary() == quiet(view, 2, 4, 10, 500)[0].summary()
    _, printed = quiet(setattr, first, "value", 3)
    assert w.result is not before and w.result.vm.vcpus == 3
    expected, text = quiet(view, 3, 4, 10, 500)
    assert w.result.summary() == expected.summary() != before.summary()
    assert w.result.ctx_profile == expected.ctx_profile
    assert text in printed and "3 vCPU(s) on 4 host CPU(s)" in printed


def test_every_control_reaches_the_pure_function():
    w, _ = quiet(lab)
    controls = {c.description: c for c in w.children if hasattr(c, "description")}
    assert set(controls) >= {
        "vCPUs",
        "I/O depth",
        "slow io_submit per 1000",
        "info block per second",
    }
    quiet(setattr, controls["slow io_submit per 1000"], "value", 0)
    assert w.result.monitor_p99_us < 100
    quiet(setattr, controls["slow io_submit per 1000"], "value", 50)
    assert w.result.monitor_p99_us > 1_000
    quiet(setattr, controls["I/O depth"], "value", 8)
    assert w.result.vm.io_depth == 8
    quiet(setattr, controls["info block per second"], "value", 0)
    assert w.result.monitor_us == []
    assert w.result.summary() == quiet(view, 2, 8, 50, 0)[0].summary()


def test_the_printed_text_reports_latency_and_both_profiles():
    r, text = quiet(view, vcpus=2, io_depth=4, slow_syscall_permille=10, monitor_per_s=500)
    assert text.splitlines()[0] == r.summary()
    assert "info block p50" in text and "iothread0.ctx call site" in text
    assert "monitor: info block" in text and "BQL call site" in text
    assert "no monitor commands" in quiet(view, monitor_per_s=0)[1]


def test_bad_values_are_refused_with_what_is_allowed():
    with pytest.raises(ValueError, match="slow_syscall_permille is a whole number from 0 to 1000"):
        view(slow_syscall_permille=2000)
    with pytest.raises(ValueError, match="vcpus must be a whole number from 1 to"):
        view(vcpus=0)
    with pytest.raises(ValueError, match="monitor_per_s is a rate from 0 to 100000"):
        view(monitor_per_s=-1)
