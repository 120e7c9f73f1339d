"""The stepper: a level's rules, its moves, and its widget driven by buttons and keys."""

from __future__ import annotations

import pytest

from labsupport.chapters.ch00.classics import lost_update
from labsupport.stepper import Level, Stepper, lab


def lost(result):
    return "lost" if result.sim.model.value < 2 else None


LEVEL = Level("lost update", lost_update(2, 1), "make x end at 1", lost)


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("name", "", "name"),
        ("program", 3, "program"),
        ("goal", None, "goal"),
        ("reached", "x", "reached"),
        ("run_options", [], "run_options"),
        ("opaque", "yes", "opaque"),
    ],
)
def test_a_level_with_a_bad_field_is_refused_naming_it(field, value, says):
    fields = dict(name="n", program=lost_update(2, 1), goal="g", reached=lost)
    fields[field] = value
    with pytest.raises((TypeError, ValueError), match=says):
        Level(**fields)


def test_moves_undo_and_reset_keep_the_schedule():
    s = Stepper(LEVEL)
    assert s.step("0").schedule == "0"
    assert s.step("1").schedule == "01"
    assert s.undo().schedule == "0"
    assert s.reset().schedule == "" and s.view.status == "choose"


def test_a_bad_schedule_is_refused_and_the_state_kept():
    s = Stepper(LEVEL)
    s.step("1")
    for bad in ("01x!", "0000000000"):
        with pytest.raises(ValueError, match="schedule"):
            s.load(bad)
        assert s.schedule == "1" and s.view.status == "choose"
    with pytest.raises(TypeError, match="schedule"):
        s.load(7)


def test_a_step_after_the_end_is_refused():
    s = Stepper(LEVEL)
    s.show_me()
    with pytest.raises(ValueError, match="the run has ended"):
        s.step("0")


def test_a_level_nobody_can_win_says_so_for_show_me():
    hopeless = Level("never", lost_update(2, 1), "make x end at 5", lambda r: None)
    with pytest.raises(ValueError, match="no schedule reaches the goal"):
        Stepper(hopeless).show_me()


def test_the_widget_plays_by_keys_and_buttons_and_shows_refusals():
    box = lab(LEVEL)
    assert "make x end at 1" in box.children[0].value
    box.key_box.value = "0"  # a key steps the thread with that character
    assert box.stepper.schedule == "0" and box.key_box.value == ""
    box.key_box.value = "9"  # an illegal move: a message, not an exception
    assert "cannot move now" in box.message.value and box.stepper.schedule == "0"
    box.key_box.value = "u"
    assert box.stepper.schedule == "" and box.message.value == ""
    box.buttons["1"].click()
    assert box.stepper.schedule == "1" and not box.undo_button.disabled
    box.key_box.value = "r"
    assert box.stepper.schedule == ""
    box.show_button.click()
    assert "goal reached" in box.output.value and "shortest schedule" in box.output.value
    assert all(b.disabled for b in box.buttons.values())
    box.key_box.value = "s"
    assert "goal reached" in box.output.value
