"""The chapter 7 widget, driven without a browser.

How fast an update is, is a budget that ``make bench`` checks (widget_update_ms.ch07), not a
test here.
"""

import ipywidgets
import matplotlib
import pytest
from notebook_cells import quiet

from labsupport.chapters.ch07.widgets import MAPPINGS, lab, mapping_for, view
from labsupport.qemu.multiqueue import VM, measure

matplotlib.use("Agg")


def controls(w):
    return {c.description: c for c in w.children if hasattr(c, "description")}


def test_the_first_child_is_the_iothreads_slider_and_moving_it_recomputes():
    w, _ = quiet(lab)
    first = w.children[0]
    assert isinstance(first, ipywidgets.IntSlider) and first.description == "IOThreads"
    before = w.result
    assert before.iops == measure(VM(iothreads=4)).iops
    _, printed = quiet(setattr, first, "value", 1)
    assert w.result is not before and w.result.vm.iothreads == 1
    assert w.result.iops < before.iops / 3
    expected, text = quiet(view, 1, plot=False)
    assert w.result.iops == expected.iops
    assert text in printed and "on 1 IOThread(s)" in printed


def test_every_control_reaches_the_pure_function():
    w, _ = quiet(lab)
    c = controls(w)
    assert set(c) >= {"IOThreads", "virtqueues", "iothread-vq-mapping", "reqs_lock", "I/O depth"}
    quiet(setattr, c["reqs_lock"], "value", "CoMutex")
    assert w.result.vm.reqs_lock == "CoMutex"
    assert w.result.iops < 0.7 * measure(VM(iothreads=4)).iops
    quiet(setattr, c["I/O depth"], "value", 8)
    assert w.result.vm.iodepth == 8
    quiet(setattr, c["virtqueues"], "value", 2)
    assert w.result.vm.num_queues == 2
    quiet(setattr, c["iothread-vq-mapping"], "value", "all on iothread0")
    assert set(w.result.vm.vq_map.values()) == {"iothread0"}
    assert w.result.iothread_busy["iothread3"] == 0.0


def test_the_printed_text_reports_rate_latency_and_per_iothread_load():
    r, text = quiet(view, plot=False)
    lines = text.splitlines()
    assert lines[0] == r.vm.describe()
    assert f"{r.iops / 1000:,.0f}k IOPS (simulated time)" in lines[1]
    assert "limited by IOThreads" in lines[1]
    for name in ("iothread0", "iothread1", "iothread2", "iothread3"):
        assert any(line.strip().startswith(name) and "busy" in line for line in lines)
    assert "host CPUs" in text and "disk" in text


def test_the_mapping_presets_are_valid_for_every_setting():
    for choice in MAPPINGS:
        for n in range(1, 9):
            for q in (1, 2, 5, 8, 16):
                VM(iothreads=n, num_queues=q, mapping=mapping_for(choice, n, q))
    half = mapping_for("first half / second half", 4, 8)
    assert half == [
        {"iothread": "iothread0", "vqs": [0, 1, 2, 3]},
        {"iothread": "iothread1", "vqs": [4, 5, 6, 7]},
    ]


def test_bad_values_are_refused_with_what_is_allowed():
    with pytest.raises(ValueError, match="mapping is one of round-robin"):
        view(mapping="random", plot=False)
    with pytest.raises(ValueError, match="reqs_lock is one of QemuMutex, CoMutex"):
        view(reqs_lock="RWLock", plot=False)
    with pytest.raises(ValueError, match="iothreads is a whole number from 1 to 64"):
        view(iothreads=0, plot=False)


def test_the_plot_is_drawn_with_labels_and_a_white_face():
    import matplotlib.pyplot as plt

    r, _ = quiet(view, plot=False)
    from labsupport.chapters.ch07.widgets import draw

    fig = draw(r)
    ax = fig.axes[0]
    assert fig.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(r.iothread_busy)
    # the value is written, not only coloured
    assert any(t.get_text().endswith("%") for t in ax.texts)
    plt.close(fig)
