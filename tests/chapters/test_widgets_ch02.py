"""The chapter 2 widget, driven without a browser."""

import ipywidgets
import pytest
from notebook_cells import quiet

from labsupport.chapters.ch02.widgets import lab, view


def test_the_first_child_is_the_vcpu_slider_and_moving_it_recomputes():
    w, _ = quiet(lab)
    first = w.children[0]
    assert isinstance(first, ipywidgets.IntSlider) and first.description == "vCPUs"
    before = w.result
    assert before.summary() == quiet(view, 2, 4, 50, 5, "kvm")[0].summary()
    _, printed = quiet(setattr, first, "value", 4)
    assert w.result is not before
    assert w.result.workload.vcpus == 4
    expected, text = quiet(view, 4, 4, 50, 5, "kvm")
    assert w.result.summary() == expected.summary() != before.summary()
    assert w.result.bql_profile == expected.bql_profile
    assert text in printed and "4 vCPU(s) on 4 host CPU(s)" in printed


def test_every_control_reaches_the_pure_function():
    w, _ = quiet(lab)
    controls = {c.description: c for c in w.children if hasattr(c, "description")}
    assert set(controls) >= {
        "vCPUs",
        "host CPUs",
        "guest us between exits",
        "emulation us per exit",
        "era",
    }
    quiet(setattr, controls["vCPUs"], "value", 4)
    quiet(setattr, controls["guest us between exits"], "value", 5)
    assert w.result.exits_per_s > 0.9 * 200_000
    quiet(setattr, controls["emulation us per exit"], "value", 10)
    assert w.result.exits_per_s <= 100_000 * 1.001  # one BQL: one exit per 10 us at most
    quiet(setattr, controls["host CPUs"], "value", 2)
    assert w.result.workload.host_cpus == 2
    quiet(setattr, controls["era"], "value", "tcg-rr")
    assert w.result.era == "tcg-rr"
    assert w.result.summary() == quiet(view, 4, 2, 5, 10, "tcg-rr")[0].summary()


def test_the_printed_text_reports_the_cap_and_the_profile():
    r, text = quiet(view, vcpus=4, host_cpus=4, guest_us=5, mmio_emulation_us=5)
    assert "of at most 200,000/s (one BQL, 5 us per exit)" in text
    assert "kvm: mmio exit" in text and "BQL call site" in text
    assert text.splitlines()[0] == r.summary()


def test_bad_values_are_refused_with_what_is_allowed():
    with pytest.raises(ValueError, match="era must be one of kvm, mttcg, tcg-rr"):
        view(era="dataplane")
    with pytest.raises(ValueError, match="vcpus must be a whole number from 1 to"):
        view(vcpus=0)
    with pytest.raises(ValueError, match="guest_us must be > 0"):
        view(guest_us=0)
