"""Chapter 5's level: D1 on the stepper, and its widget with the recorded schedule, headless.

How fast a move is, is a budget that ``make bench`` checks (widget_update_ms.ch05), not a test
here.
"""

from __future__ import annotations

import pytest

from labsupport.chapters.ch05.widgets import RECORDED_D1, lab, scheduler_level
from labsupport.stepper import Stepper


def stepper() -> Stepper:
    return Stepper(scheduler_level())


def test_the_stepper_starts_at_a_choice_between_both_threads():
    s = stepper()
    assert s.schedule == "" and s.view.status == "choose"
    assert s.view.movable == [("0", "iothread0"), ("1", "main-loop")]


def test_stepping_the_recorded_schedule_ends_in_the_d1_deadlock():
    s = stepper()
    for c in RECORDED_D1:
        view = s.step(c)
    assert view.status == "deadlock" and s.schedule == RECORDED_D1 and view.won
    assert (
        "iothread0 waits for iothread0's AioContext lock (rec-mutex iothread0.ctx), held by "
        "main-loop"
    ) in view.report
    assert "goal reached: D1, deadlock" in view.announcement()
    with pytest.raises(ValueError, match="has ended"):
        s.step("0")


def test_letting_the_iothread_finish_first_completes_and_does_not_win():
    s = stepper()
    view = s.view
    while view.status == "choose":
        view = s.step("0")
    assert view.status == "completed" and "store in_flight = 0" in view.trace
    assert not view.won and "not reached" in view.announcement()


def test_undo_reset_load_and_refusals():
    s = stepper()
    s.step("1")
    s.step("1")
    assert s.undo().schedule == "1" and s.schedule == "1"
    assert s.reset().schedule == "" and s.view.status == "choose"
    assert s.load("1101").schedule == "1101"
    with pytest.raises(ValueError, match="cannot move now"):
        s.step("7")
    with pytest.raises(ValueError, match="cannot be played here"):
        s.load("9")
    assert s.schedule == "1101"  # a refused load keeps the old state


def test_the_trace_grows_with_each_step():
    s = stepper()
    lengths = [len(s.step(c).trace.splitlines()) for c in "110"]
    assert lengths == sorted(lengths) and lengths[0] < lengths[-1]


def test_the_widget_first_child_is_the_slider_and_it_replays_the_recording():
    box = lab()
    slider = box.children[0]
    assert type(slider).__name__ == "IntSlider" and slider.max == len(RECORDED_D1)
    slider.value = slider.max
    assert box.stepper.schedule == RECORDED_D1
    assert "deadlock" in box.output.value and "goal reached" in box.output.value
    assert all(b.disabled for b in box.buttons.values())
    slider.value = 2
    assert box.stepper.schedule == "11" and "choose who moves next" in box.output.value


def test_the_buttons_step_undo_and_reset():
    box = lab()
    box.buttons["1"].click()
    box.buttons["1"].click()
    assert box.stepper.schedule == "11"
    box.undo_button.click()
    assert box.stepper.schedule == "1"
    box.reset_button.click()
    assert box.stepper.schedule == "" and box.undo_button.disabled
