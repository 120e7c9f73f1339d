"""What chapter 5 teaches, asserted: the notebook's era model is the library's, each deadlock,
refused call and race is found under the buggy model and absent under the fixed one on many
seeds, and the exercises' checkers accept the model answers and refuse the bugs."""

from __future__ import annotations

from pathlib import Path

import pytest
from notebook_cells import assert_same_run, run_cell_containing, run_cells

from labsupport import MisuseError, compute, run, sleep, trace_table
from labsupport.analysis import find_races
from labsupport.chapters.ch05.checks import (
    NOTICE_SLACK_US,
    PREDICT_KEYS,
    RECALL_NESTING,
    _fix_d1,
    _fix_d2,
    _lose_wakeup_05,
    _predict_05,
    _predict_answer,
    _recall_05,
    depth_while_waiting,
    nested_save_vmstate,
)
from labsupport.chapters.ch05.scenarios import (
    R3_LOST_SCHEDULE,
    SCENARIOS,
    d1_program,
    d2_program,
    d5_program,
    format_outcomes,
    outcome_table,
    r1_outcome,
    r1_program,
    r3_program,
    run_scenario,
)
from labsupport.coroutine import qemu_coroutine_yield
from labsupport.loop import aio_wait_kick, aio_wait_while, qemu_get_aio_context
from labsupport.present import trace_rows
from labsupport.qemu import aio_context_acquire, aio_context_release

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "05-handlers-take-the-lock.ipynb"
SEEDS = 200


@pytest.fixture(scope="module")
def era_model() -> dict:
    """The notebook's "era-model" cells, run in order in a fresh namespace."""
    return run_cells(NOTEBOOK, "era-model", minimum=3)


def _run_or_refusal(program, seed: int, cpus: int):
    """A seeded run, or the text of the ``MisuseError`` (QEMU's assertion) that stopped it."""
    try:
        return run(program, policy="random", seed=seed, cpus=cpus)
    except MisuseError as e:
        return f"MisuseError: {e}"


def _assert_same(mine, theirs) -> None:
    if isinstance(mine, str) or isinstance(theirs, str):
        assert mine == theirs
    else:
        assert_same_run(mine, theirs)


@pytest.mark.parametrize("name", list(SCENARIOS))
@pytest.mark.parametrize("fixed", [False, True])
def test_the_notebooks_era_model_gives_the_librarys_traces(era_model, name, fixed):
    factory, cpus = SCENARIOS[name].program, SCENARIOS[name].cpus
    visible = era_model[factory.__name__]
    assert visible is not factory
    for seed in range(30):
        _assert_same(
            _run_or_refusal(visible(fixed), seed, cpus), _run_or_refusal(factory(fixed), seed, cpus)
        )


def test_the_notebooks_d5_without_the_assertion_is_the_librarys(era_model):
    visible = era_model["d5_program"]
    for seed in range(30):
        assert_same_run(
            run(visible(False, qemu_assertion=False), policy="random", seed=seed, cpus=2),
            run(d5_program(False, qemu_assertion=False), policy="random", seed=seed, cpus=2),
        )


def test_the_visible_iothread_and_aio_wait_calls_are_the_notebooks_own(era_model):
    from labsupport import qemu

    assert era_model["IOThread"] is not qemu.IOThread
    assert era_model["aio_wait_while"] is not aio_wait_while
    assert era_model["aio_wait_kick"] is not aio_wait_kick
    assert era_model["qemu_get_aio_context"] is qemu_get_aio_context  # the one main context
    with pytest.raises(ValueError, match="never holds"):
        run(lambda sim: era_model["IOThread"](sim, "x", loop_holds_lock=True))


def test_the_notebooks_kick_does_nothing_without_a_waiter_and_wakes_only_the_main_loop(era_model):
    visible = era_model["d1_program"]
    # the IOThread completes the request before save_vmstate waits: nobody waits, no BH
    early = run(visible(fixed=False), cpus=2, schedule="00000000")
    assert early.ok
    assert not any("aio_wait_kick" in row["text"] for row in trace_rows(early))
    # the main loop waits: the kick is an empty BH that the main loop runs
    waited = run(visible(fixed=True), policy="random", seed=0, cpus=2)
    rows = trace_rows(waited)
    kicks = [(row["thread"], row["text"]) for row in rows if "aio_wait_kick" in row["text"]]
    assert kicks == [("iothread0", "schedule aio_wait_kick"), ("main-loop", "bh aio_wait_kick")]
    # and the kick takes no context: it is a call without arguments
    import inspect

    assert not inspect.signature(era_model["aio_wait_kick"]).parameters


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
    assert (
        "iothread0 waits for iothread0's AioContext lock (rec-mutex iothread0.ctx), held by "
        "main-loop" in text
    )
    assert (
        "main-loop waits for AioContext main (in AIO_WAIT_WHILE, for iothread0's work), "
        "to be woken by iothread0"
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
    assert (
        "iothread0 waits for iothread0's AioContext lock (rec-mutex iothread0.ctx), held by "
        "main-loop" in text
    )
    assert (
        "main-loop waits for the release of iothread0's AioContext lock (rec-mutex "
        "iothread0.ctx) (taken in main-loop by a coroutine that yielded holding it), held by "
        "coroutine block_resize in main-loop"
    ) in text
    assert (
        "coroutine block_resize in main-loop waits for bottom half drain in AioContext "
        "iothread0 (it scheduled it and yielded), to be run by iothread0"
    ) in text
    assert "main-loop holds iothread0.ctx" in text
    assert (
        "coroutine block_resize in main-loop holds iothread0's AioContext lock "
        "(rec-mutex iothread0.ctx) (across a yield)"
    ) in text
    co = next(o for o in r.sim.objects if getattr(o, "kind", "") == "coroutine")
    assert co.state == "yielded"
    fixed = run_scenario("D2", fixed=True, seed=5)
    assert fixed.ok and fixed.sim.model.value == 1


def test_d5_qemu_refuses_a_wait_between_iothreads_and_the_main_loop_route_works():
    assert SCENARIOS["D5"].kind == "misuse"
    outcomes = outcome_table(SEEDS, names=("D5",))
    assert outcomes[("D5", "buggy")] == {"misuse": SEEDS}
    assert outcomes[("D5", "fixed")] == {"completed": SEEDS}
    with pytest.raises(MisuseError) as refused:
        run(d5_program(False), policy="random", seed=0, cpus=2)
    text = str(refused.value)
    assert "iothread-a called AIO_WAIT_WHILE on iothread-b from iothread-a's thread" in text
    assert "home thread or the main loop" in text
    assert "qemu_get_current_aio_context() == qemu_get_aio_context()" in text
    assert "aio_wait_kick() only ever wakes the main loop" in text
    copied, updated = run(d5_program(True), policy="random", seed=0, cpus=2).sim.model
    assert copied.value == 1 and updated.value == 1


def test_d5_without_the_assertion_the_two_iothreads_deadlock_on_every_seed():
    for seed in range(SEEDS):
        r = run(d5_program(False, qemu_assertion=False), policy="random", seed=seed, cpus=2)
        assert r.outcome == "deadlock", seed
    text = r.deadlock.text()
    assert (
        "iothread-b waits for iothread-a's AioContext lock (rec-mutex iothread-a.ctx), held by "
        "iothread-a"
    ) in text
    assert (
        "iothread-a waits for AioContext iothread-a (in AIO_WAIT_WHILE, for iothread-b's "
        "work), to be woken by iothread-b"
    ) in text
    # the fixed program does not depend on the switch
    assert run(d5_program(True, qemu_assertion=False), policy="random", seed=0, cpus=2).ok
    with pytest.raises(ValueError, match="qemu_assertion must be True or False"):
        d5_program(False, qemu_assertion="no")


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


def test_r3s_three_counts_are_two_programs_and_the_prose_says_which():
    # "Seeds 0 to 39 find it (section 8 runs this program on seeds 0 to 199)": 9 of 40 and
    # 51 of 200 are one program, r3_program; 29 of 200 is the other, r3_handshake_program
    from labsupport.chapters.ch05.scenarios import r3_handshake_program

    lost = [
        s
        for s in range(SEEDS)
        if run(r3_program(False), policy="random", seed=s).outcome == "stuck"
    ]
    first40 = [s for s in lost if s < 40]
    assert (len(first40), len(lost)) == (9, 51)
    assert outcome_table(SEEDS, names=("R3",))[("R3", "buggy")]["stuck"] == len(lost)
    written_out = sum(
        run(r3_handshake_program(False), policy="random", seed=s).outcome == "stuck"
        for s in range(SEEDS)
    )
    assert written_out == 29  # "It loses the wake-up on 29 of 200 schedules"
    text = " ".join(_markdown().split())
    assert "Seeds 0 to 39 find it (section 8 runs this program on seeds 0 to 199)" in text
    assert "A second program, `r3_handshake_program`" in text and "29 of 200" in text


def _markdown() -> str:
    import json

    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def test_the_coroutine_primer_stops_in_one_thread_and_goes_on_in_another(era_model):
    ns = run_cell_containing(
        NOTEBOOK, era_model, "def coroutine_demo", "from labsupport import run, trace_table"
    )
    r = run(ns["coroutine_demo"], cpus=2)
    assert r.ok
    rows = [(row["thread"], row["text"]) for row in trace_rows(r)]
    entered = [thread for thread, text in rows if text == "enter request"]
    assert entered == ["main-loop", "iothread0"]  # entered again later, by another thread
    where = {text: thread for thread, text in rows}
    assert where["compute 2 us"] == "main-loop" and where["compute 3 us"] == "iothread0"
    assert rows.index(("main-loop", "request yields")) < rows.index(("iothread0", "enter request"))
    # the primer comes before D2, the first scenario that needs a coroutine
    text = _markdown()
    assert text.index("### Coroutines") < text.index("`block_resize`")
    assert "[coroutine](../GLOSSARY.md#coroutine)" in text


def test_r3_the_model_announces_then_looks_the_2015_2020_order():
    def first_iothread_step(fixed):
        r = run(r3_program(fixed=fixed), schedule=R3_LOST_SCHEDULE)
        return next(row["text"] for row in trace_rows(r) if row["thread"] == "iothread0")

    assert first_iothread_step(True) == "notify_me = 1"  # announce, then look
    assert first_iothread_step(False) == "check for work: none"  # look, then announce


def test_r1_the_restart_coroutine_reads_the_unregistered_member_on_every_seed():
    sc = SCENARIOS["R1"]
    assert (sc.id, sc.chapter, sc.kind) == ("R1", 5, "freed")
    outcomes = outcome_table(SEEDS, names=("R1",))
    assert outcomes[("R1", "buggy")] == {"use-after-free": SEEDS}
    assert outcomes[("R1", "fixed")] == {"completed": SEEDS}
    for seed in range(SEEDS):
        r = run(r1_program(False), policy="random", seed=seed, cpus=2)
        rows = trace_rows(r)
        # why the lock did not help: the coroutine runs only after device_del let go
        released = next(
            row["step"]
            for row in rows
            if row["thread"] == "main-loop" and row["text"] == "unlock iothread0.ctx"
        )
        read = next(
            row["step"] for row in rows if row["text"].startswith("load tgm.throttle_state")
        )
        assert released < read, seed
        assert r1_outcome(r) == "use-after-free" and len(r.sim.model["uaf"]) == 1


def test_r1_the_fix_waits_for_the_restart_before_unregistering():
    for seed in range(SEEDS):
        r = run(r1_program(True), policy="random", seed=seed, cpus=2)
        assert r.ok and r.sim.model["uaf"] == [], seed
        m = r.sim.model
        assert m["throttle_state"].value is None and m["restart_pending"].value == 0
        rows = trace_rows(r)
        read = next(
            row["step"] for row in rows if row["text"] == "load tgm.throttle_state -> 'tg0'"
        )
        gone = next(
            row["step"] for row in rows if row["text"].startswith("store tgm.throttle_state")
        )
        assert read < gone, seed
    # the counter is atomic, as QEMU's qatomic_inc/dec: no race on it
    assert find_races(r) == []


def test_r1_the_prose_step_of_the_unregistering():
    r = run(r1_program(False), policy="random", seed=0, cpus=2)
    [row] = [x for x in trace_rows(r) if x["text"] == "store tgm.throttle_state = None"]
    assert (row["step"], row["thread"]) == (4, "main-loop")  # "unregisters the member (step 4)"


def test_r1_is_in_chapter_8s_catalogue():
    from labsupport.chapters.ch08.scenarios import CATALOGUE

    assert SCENARIOS["R1"] in CATALOGUE and SCENARIOS["D5"] in CATALOGUE


def test_the_chapters_coroutines_meet_no_context_lock_on_entry():
    # aio_co_enter takes no lock in the model: D2's coroutine is entered only in the main
    # loop's context, which has no lock, and R1's (scheduled) takes its context first thing
    d2 = run(d2_program(True), policy="random", seed=5, cpus=2)
    assert qemu_get_aio_context(d2.sim).lock is None
    entries = {row["thread"] for row in trace_rows(d2) if row["text"].startswith("enter ")}
    assert entries == {"main-loop"}
    r1 = run(r1_program(True), policy="random", seed=0, cpus=2)
    rows = [row["text"] for row in trace_rows(r1) if row["thread"] == "iothread0"]
    first = next(i for i, t in enumerate(rows) if t.startswith("enter ")) + 1
    while rows[first].startswith("enter "):
        first += 1
    assert rows[first] == "lock iothread0.ctx"


def test_the_measurement_every_bug_shows_and_no_fix_fails():
    table = outcome_table(SEEDS)
    for name in SCENARIOS:
        assert table[(name, "fixed")] == {"completed": SEEDS}, name
        assert table[(name, "buggy")]["completed"] < SEEDS, name
    text = format_outcomes(table)
    assert "misuse" in text and "use-after-free" in text


def test_runs_are_the_same_for_the_same_seed():
    for name in SCENARIOS:
        if SCENARIOS[name].kind == "misuse":
            with pytest.raises(MisuseError):
                run_scenario(name, False, seed=7)
            continue
        a, b = run_scenario(name, False, seed=7), run_scenario(name, False, seed=7)
        assert trace_table(a) == trace_table(b) and a.schedule == b.schedule


def test_unknown_scenarios_are_refused():
    with pytest.raises(ValueError, match="D1, D2, D5, R3, R1"):
        run_scenario("D9", False)


# -- exercises ---------------------------------------------------------------------------------


def save_vmstate_once(io, main_ctx, in_flight):
    yield aio_context_acquire(io.ctx, "main: save_vmstate")
    yield aio_wait_while(io.ctx, lambda: in_flight.value > 0)
    yield aio_context_release(io.ctx)


def save_vmstate_nested(io, main_ctx, in_flight):
    yield aio_context_acquire(io.ctx, "main: save_vmstate")
    yield aio_context_acquire(io.ctx, "main: bdrv_flush")
    yield aio_wait_while(io.ctx, lambda: in_flight.value > 0)
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
    ok, msg = _fix_d2(block_resize(False))  # held across the yield: taken only once
    assert not ok and "take it before the drain and again after the yield" in msg


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
    held = RECALL_NESTING - 1  # the reason: the wait lets go of one level only
    assert _recall_05({"letter": "b", "depth while waiting": held})[0]
    assert _recall_05({"letter": " B ", "depth while waiting": held})[0]
    for letter in ("a", "c", "d", "e", 2):
        assert not _recall_05({"letter": letter, "depth while waiting": held})[0]
    assert not _recall_05("b")[0]  # the letter alone is not enough


def test_5_5s_depth_is_measured_on_the_model_and_follows_the_one_release():
    for levels in (2, 3, 4):
        assert depth_while_waiting(levels) == levels - 1
    # a caller that holds it once is not stuck at all: nothing to measure
    r = run(d1_program(save_vmstate_body=nested_save_vmstate(1)), cpus=2, seed=0)
    assert r.outcome == "completed"


def test_5_1_refuses_a_wait_for_a_length_of_time():
    def sleeps(io, main_ctx, in_flight):
        yield aio_context_acquire(io.ctx, "main: save_vmstate")
        yield aio_context_release(io.ctx)
        yield sleep(100)
        yield aio_context_acquire(io.ctx, "main: save_vmstate")
        yield aio_context_release(io.ctx)

    ok, msg = _fix_d1(sleeps)
    assert not ok and f"within {NOTICE_SLACK_US:g} us" in msg and "went on 100 us" in msg


def test_5_2_wants_the_resize_after_the_drain_under_the_lock_and_the_lock_let_go():
    def body(drop_for_resize=False, skip_yield=False, keep=False):
        def resize(io, drain_bh, resized):
            yield aio_context_acquire(io.ctx, "qmp: block_resize")
            yield compute(10)
            yield io.ctx.bh_schedule_oneshot(drain_bh, "drain")
            yield aio_context_release(io.ctx)
            if not skip_yield:
                yield qemu_coroutine_yield()
            yield aio_context_acquire(io.ctx, "qmp: block_resize")
            if drop_for_resize:
                yield aio_context_release(io.ctx)
            yield compute(5)
            yield resized.store(1)
            if not drop_for_resize and not keep:
                yield aio_context_release(io.ctx)

        return resize

    assert _fix_d2(body())[0]
    ok, msg = _fix_d2(body(drop_for_resize=True))
    assert not ok and "did not hold iothread0's context" in msg
    ok, msg = _fix_d2(body(skip_yield=True))
    assert not ok and "before the drain's BH had woken the coroutine" in msg
    ok, msg = _fix_d2(body(keep=True))
    assert not ok and "still held by main-loop when the run ends" in msg


def test_a_stub_function_is_not_answered_yet(capsys):
    from labsupport import check

    def save_vmstate(io, main_ctx, in_flight):
        raise NotImplementedError("Your answer here")

    assert check("5.1", save_vmstate) is False
    assert capsys.readouterr().out.startswith("✘ 5.1: not answered yet")


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


def test_r1_the_prose_steps_of_the_fixed_run():
    r = run(r1_program(True), policy="random", seed=0, cpus=2)
    rows = trace_rows(r)
    step = {
        (row["thread"], row["text"]): row["step"]
        for row in rows
        if row["text"]
        in ("wait: main (to be woken by iothread0)", "load tgm.throttle_state -> 'tg0'")
        or row["text"].startswith("store tgm.throttle_state")
    }
    assert step[("main-loop", "wait: main (to be woken by iothread0)")] == 8  # "waits (step 8)"
    assert step[("iothread0", "load tgm.throttle_state -> 'tg0'")] == 12  # "read (step 12)"
    assert step[("main-loop", "store tgm.throttle_state = None")] == 23  # "at step 23"


def test_the_prose_gives_the_reason_for_the_2017_design_and_the_eras_details():
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "notebooks" / "05-handlers-take-the-lock.ipynb"
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    text = " ".join(
        " ".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown").split()
    )
    # Paolo Bonzini's reason: so that the lock could later be narrowed and replaced
    assert "Bonzini's reason" in text and "narrowed and replaced" in text
    # D5 is QEMU's assertion; aio_wait_kick's empty BH is QEMU's own mechanism
    assert "assertion" in text and "QEMU's own mechanism" in text
