"""The kernel's pause at a choice point: a run that stops, lets the caller choose, and goes on."""

from __future__ import annotations

import pytest

from labsupport.chapters.ch00.classics import lost_update
from labsupport.kernel import Pause, Replay, Simulation, run


def paused_sim(program, **options):
    sim = Simulation(policy=Pause(), **options)
    sim.model = program(sim)
    return sim


@pytest.mark.parametrize("pick", ["first", "last"])
def test_choosing_at_each_pause_is_the_run_replay_gives(pick):
    sim = paused_sim(lost_update(3, 2))
    r = sim.run()
    pauses = 0
    while r.outcome == "paused":
        ready = sim.paused
        assert len(ready) > 1 and r.schedule == sim.schedule
        sim.choose(ready[0] if pick == "first" else ready[-1].char)
        pauses += 1
        r = sim.run()
    assert r.outcome == "completed" and pauses == len(r.schedule)
    again = run(lost_update(3, 2), schedule=str(r.schedule))
    assert again.schedule == r.schedule and again.sim.model.value == sim.model.value


def test_a_run_asked_to_go_on_without_a_choice_stays_paused_where_it_was():
    sim = paused_sim(lost_update(2, 1))
    first = sim.run()
    second = sim.run()
    assert first.outcome == second.outcome == "paused"
    assert second.schedule == "" and [t.char for t in sim.paused] == ["0", "1"]


def test_a_choice_of_a_thread_that_cannot_move_is_refused_naming_those_that_can():
    sim = paused_sim(lost_update(2, 1))
    sim.run()
    with pytest.raises(ValueError, match=r"who: thread '7' cannot move now.*0 \(T0\), 1 \(T1\)"):
        sim.choose("7")
    assert sim.paused  # still paused, nothing chosen


def test_choose_outside_a_pause_is_refused():
    sim = paused_sim(lost_update(2, 1))
    with pytest.raises(ValueError, match="not paused"):
        sim.choose("0")
    r = sim.run()
    while r.outcome == "paused":
        sim.choose("0")
        r = sim.run()
    with pytest.raises(ValueError, match="has ended"):
        sim.choose("0")


def test_a_replayed_prefix_then_a_pause():
    sim = Simulation(policy=Replay("01", then=Pause(), strict_end=False))
    sim.model = lost_update(2, 1)(sim)
    r = sim.run()
    assert r.outcome == "paused" and r.schedule == "01"
