"""Be the scheduler, in every chapter that teaches a bug: each level can be won by playing it
(a scripted learner that steps and undoes, as the buttons do), can also be lost, refuses an
illegal move, and "show me" plays a schedule that wins."""

from __future__ import annotations

import importlib

import pytest

from labsupport.kernel import run
from labsupport.stepper import Stepper

CHAPTERS = (0, 2, 4, 5, 6, 7)


def level(chapter: int):
    return importlib.import_module(f"labsupport.chapters.ch{chapter:02d}.widgets").scheduler_level()


def play(s: Stepper, win: bool = True, budget: int = 400, order: int = 1) -> str | None:
    """A learner who tries the threads in order (``order=-1``: the other way round), depth
    first, and undoes a move that led nowhere, until a run ends that reaches the goal
    (``win``) or does not: its schedule, or None if there is none in ``budget`` runs."""
    runs = 0

    def go() -> str | None:
        nonlocal runs
        view = s.view
        if view.status != "choose":
            runs += 1
            return view.schedule if bool(view.won) == win else None
        for c, _name in view.movable[::order]:
            if runs >= budget:
                return None
            s.step(c)
            found = go()
            if found is not None:
                return found
            s.undo()
        return None

    return go()


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_a_scripted_learner_wins_the_level_and_can_lose_it(chapter):
    s = Stepper(level(chapter))
    won = play(s)
    assert won is not None, f"chapter {chapter}: no win in the runs tried"
    assert s.view.won and "goal reached" in s.view.announcement()
    assert repr(won) in s.view.announcement()  # the win message gives the schedule
    # the learner's schedule, replayed outside the stepper, reaches the goal too
    lvl = s.level
    assert lvl.reached(run(lvl.program, schedule=won, **lvl.run_options)) is not None
    # and some schedule does not: the level is a choice, not a demonstration
    s.reset()
    lost = play(s, win=False) or (s.reset() and play(s, win=False, order=-1))
    assert lost is not None and not s.view.won
    assert "the goal is not reached" in s.view.announcement()
    assert lvl.reached(run(lvl.program, schedule=lost, **lvl.run_options)) is None


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_an_illegal_move_is_refused_clearly(chapter):
    s = Stepper(level(chapter))
    movable = [c for c, _ in s.view.movable]
    assert len(movable) >= 2
    stuck = next(c for c in "0123456789" if c not in movable)
    with pytest.raises(ValueError, match=rf"thread '{stuck}' cannot move now; the ones that can"):
        s.step(stuck)
    assert s.schedule == ""  # nothing happened


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_show_me_plays_a_schedule_that_wins(chapter):
    s = Stepper(level(chapter))
    view = s.show_me()
    assert view.won and view.status != "choose"
    assert view.schedule == s.shortest() and "shortest schedule" in view.note
    assert s.level.reached(run(s.level.program, schedule=view.schedule, **s.level.run_options))
