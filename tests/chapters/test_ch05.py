"""What chapter 5 teaches, asserted: the notebook's era model is the library's, each deadlock
and race is found under the buggy model and absent under the fixed one on many seeds, and the
exercises' checkers accept the model answers and refuse the bugs."""

from __future__ import annotations

from pathlib import Path

import pytest
from notebook_cells import assert_same_run, run_cells

from labsupport import compute, run, trace_table
from labsupport.analysis import find_races
from labsupport.chapters.ch05.checks import (
    PREDICT_KEYS,
    _fix_d1,
    _fix_d2,
    _lose_wakeup_05,
    _predict_05,
    _predict_answer,
    _recall_05,
)
from labsupport.chapters.ch05.scenarios import (
    R3_LOST_SCHEDULE,
    SCENARIOS,
    d1_program,
    d5_program,
    outcome_table,
    r3_program,
    run_scenario,
)
from labsupport.coroutine import qemu_coroutine_yield
from labsupport.loop import aio_wait_while
from labsupport.present import trace_rows
from labsupport.qemu import aio_context_acquire, aio_context_release

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "05-handlers-take-the-lock.ipynb"
SEEDS = 200


@pytest.fixture(scope="module")
def era_model() -> dict:
    """The notebook's "era-model" cells, run in order in a fresh namespace."""
    return run_cells(NOTEBOOK, "era-model", minimum=3)


@pytest.mark.parametrize("name", list(SCENARIOS))
@pytest.mark.parametrize("fixed", [False, True])
def test_the_notebooks_era_model_gives_the_librarys_traces(era_model, name, fixed):
    factory, cpus = SCENARIOS[name].program, SCENARIOS[name].cpus
    visible = era_model[factory.__name__]
    assert visible is not factory
    for seed in range(30):
        assert_same_run(
            run(visible(fixed), policy="random", seed=seed, cpus=cpus),
            run(factory(fixed), policy="random", seed=seed, cpus=cpus),
        )


def test_the_visible_iothread_and_aio_wait_while_are_the_notebooks_own(era_model):
    from labsupport import qemu

    assert era_model["IOThread"] is not qemu.IOThread
    assert era_model["aio_wait_while"] is not aio_wait_while
    with pytest.raises(ValueError, match="never holds"):
        run(lambda sim: era_model["IOThread"](sim, "x", loop_holds_lock=True))


def test_the_2017_loop_holds_no_lock_and_the_handler_takes_it():
    r = run_scenario("D1", fixed=True, seed=0)
    lock = next(o for o in r.sim.objects if getattr(o, "name", "") == "iothread0.ctx")
    rows = [row for row in trace_rows(r) if row["thread"] == "iothread0"]
    texts = [row["text"] for row in rows]
    # the fd handler is dispatched first, and only then takes the lock itself
    assert texts.index("fd disk-completion") < texts.index("lock iothread0.ctx")
    assert lock.owner is None


def test_d1_deadlocks_as_a_cycle_when_nested_and_never_when_held_once():
    outcomes = outcome_table(SEEDS, names=("D1",))
    assert outcomes[("D1", "buggy")]["deadlock"] >= SEEDS // 2
    assert outcomes[("D1", "fixed")] == {"completed": SEEDS}
    r = run_scenario("D1", fixed=False, seed=0)
    text = r.deadlock.text()
    assert r.deadlock.kind == "cycle"
    assert "iothread0 waits for rec-mutex iothread0.ctx, held by main-loop" in text
    assert (
        "main-loop waits for AioContext main (in AIO_WAIT_WHILE, for iothread0's work), "
        "held by iothread0"
    ) in text
    assert run(d1_program(False), cpus=2, schedule=r.schedule).outcome == "deadlock"
    # the one release left the depth at 1: the main loop still holds it
    lock = next(o for o in r.sim.objects if getattr(o, "name", "") == "iothread0.ctx")
    assert lock.owner.name == "main-loop" and lock.depth == 1


def test_d2_hangs_only_when_the_lock_is_held_across_the_yield():
    outcomes = outcome_table(SEEDS, names=("D2",))
    # a cycle: the IOThread waits for the lock, the lock for the coroutine that holds it across
    # its yield, the coroutine for the drain BH that only the IOThread can run
    assert outcomes[("D2", "buggy")]["deadlock"] >= SEEDS // 4
    assert "stuck" not in outcomes[("D2", "buggy")]
    assert outcomes[("D2", "fixed")] == {"completed": SEEDS}
    r = run_scenario("D2", fixed=False, seed=5)
    text = r.deadlock.text()
    assert r.outcome == "deadlock" and r.deadlock.kind == "cycle"
    assert r.deadlock.cycle == ["main-loop", "coroutine block_resize in main-loop", "iothread0"]
    assert "2 threads and 1 coroutine wait for each other in a cycle" in text
    assert "iothread0 waits for rec-mutex iothread0.ctx, held by main-loop" in text
    assert (
        "main-loop waits for the release of rec-mutex iothread0.ctx (taken in main-loop by a "
        "coroutine that yielded holding it), held by coroutine block_resize in main-loop"
    ) in text
    assert (
        "coroutine block_resize in main-loop waits for bottom half drain in AioContext "
        "iothread0 (it scheduled it and yielded), to be run by iothread0"
    ) in text
    assert "main-loop holds iothread0.ctx" in text
    assert "coroutine block_resize in main-loop holds rec-mutex iothread0.ctx (across a yield)" in (
        text
    )
    co = next(o for o in r.sim.objects if getattr(o, "kind", "") == "coroutine")
    assert co.state == "yielded"
    fixed = run_scenario("D2", fixed=True, seed=5)
    assert fixed.ok and fixed.sim.model.value == 1


def test_d5_an_iothread_waiting_for_another_deadlocks_and_the_main_loop_route_does_not():
    outcomes = outcome_table(SEEDS, names=("D5",))
    assert outcomes[("D5", "buggy")] == {"deadlock": SEEDS}
    assert outcomes[("D5", "fixed")] == {"completed": SEEDS}
    r = run(d5_program(False), policy="random", seed=0, cpus=2)
    text = r.deadlock.text()
    assert "iothread-b waits for rec-mutex iothread-a.ctx, held by iothread-a" in text
    assert (
        "iothread-a waits for AioContext iothread-a (in AIO_WAIT_WHILE, for iothread-b's "
        "work), held by iothread-b"
    ) in text
    copied, updated = run(d5_program(True), policy="random", seed=0, cpus=2).sim.model
    assert copied.value == 1 and updated.value == 1


def test_r3_a_seeded_schedule_loses_the_wakeup_and_the_handshake_never_does():
    outcomes = outcome_table(SEEDS, names=("R3",))
    assert outcomes[("R3", "buggy")]["stuck"] > 0
    assert outcomes[("R3", "fixed")] == {"completed": SEEDS}
    r = run(r3_program(fixed=False), schedule=R3_LOST_SCHEDULE)
    assert r.outcome == "stuck"
    assert "iothread0 waits for AioContext iothread0 (in aio_poll)" in r.deadlock.text()
    assert run(r3_program(fixed=True), schedule=R3_LOST_SCHEDULE).ok
    # not a data race: the lockset detector has nothing to report
    assert find_races(r) == []


def test_runs_are_the_same_for_the_same_seed():
    for name in SCENARIOS:
        a, b = run_scenario(name, False, seed=7), run_scenario(name, False, seed=7)
        assert trace_table(a) == trace_table(b) and a.schedule == b.schedule


def test_unknown_scenarios_are_refused():
    with pytest.raises(ValueError, match="D1, D2, D5, R3"):
        run_scenario("D9", False)


# -- exercises ---------------------------------------------------------------------------------


def save_vmstate_once(io, main_ctx, in_flight):
    yield aio_context_acquire(io.ctx, "main: save_vmstate")
    yield aio_wait_while(io.ctx, lambda: in_flight.value > 0, io.lock, main_ctx)
    yield aio_context_release(io.ctx)


def save_vmstate_nested(io, main_ctx, in_flight):
    yield aio_context_acquire(io.ctx, "main: save_vmstate")
    yield aio_context_acquire(io.ctx, "main: bdrv_flush")
    yield aio_wait_while(io.ctx, lambda: in_flight.value > 0, io.lock, main_ctx)
    yield aio_context_release(io.ctx)
    yield aio_context_release(io.ctx)


def save_vmstate_no_wait(io, main_ctx, in_flight):
    yield aio_context_acquire(io.ctx, "main: save_vmstate")
    yield aio_context_release(io.ctx)


def test_exercise_5_1_fix_d1():
    assert _fix_d1(save_vmstate_once)[0]
    ok, msg = _fix_d1(save_vmstate_nested)
    assert not ok and "deadlock" in msg
    ok, msg = _fix_d1(save_vmstate_no_wait)
    assert not ok and "in_flight was still 1" in msg
    assert not _fix_d1(3)[0]


def block_resize(drop):
    def body(io, drain_bh, resized):
        yield aio_context_acquire(io.ctx, "qmp: block_resize")
        yield compute(10)
        yield io.ctx.bh_schedule_oneshot(drain_bh, "drain")
        if drop:
            yield aio_context_release(io.ctx)
        yield qemu_coroutine_yield()
        if drop:
            yield aio_context_acquire(io.ctx, "qmp: block_resize")
        yield compute(5)
        yield resized.store(1)
        yield aio_context_release(io.ctx)

    return body


def test_exercise_5_2_fix_d2():
    assert _fix_d2(block_resize(True))[0]
    ok, msg = _fix_d2(block_resize(False))
    assert not ok and "deadlock" in msg and "coroutine block_resize" in msg


def test_exercise_5_3_predict():
    want = _predict_answer()
    assert want == {PREDICT_KEYS[0]: 1, PREDICT_KEYS[1]: 0, PREDICT_KEYS[2]: 13}
    assert _predict_05(want)[0]
    assert not _predict_05({**want, PREDICT_KEYS[1]: 1})[0]
    assert not _predict_05([1, 0, 13])[0]


def test_exercise_5_4_and_5_5():
    assert _lose_wakeup_05(R3_LOST_SCHEDULE)[0]
    assert not _lose_wakeup_05("1")[0]
    assert not _lose_wakeup_05("x")[0]
    assert _recall_05("b")[0] and _recall_05(" B ")[0]
    assert not any(_recall_05(x)[0] for x in ("a", "c", "d", "e", 2))


def test_r3_written_out_the_race_detector_flags_every_buggy_run_and_no_fixed_one():
    from collections import Counter

    from labsupport.analysis import find_races
    from labsupport.chapters.ch05.scenarios import r3_handshake_program

    for fixed in (False, True):
        outcomes, flagged = Counter(), 0
        for seed in range(200):
            r = run(r3_handshake_program(fixed), policy="random", seed=seed)
            outcomes[r.outcome] += 1
            flagged += bool(find_races(r))
            if outcomes["completed"] and r.outcome == "completed":
                assert r.sim.model["ran"] == ["complete"]
        if fixed:
            assert outcomes == Counter(completed=200) and flagged == 0
        else:
            assert 0 < outcomes["stuck"] < 200 and flagged == 200
    lucky = run(r3_handshake_program(False), policy="random", seed=0)
    assert lucky.outcome == "completed"
    assert {rep.variable for rep in find_races(lucky)} == {"notify_me", "bh.scheduled"}
