"""What chapter 7 teaches, asserted: the notebook's era model is the library's, each race
(R4-R7) is found under the buggy model and absent under the fixed one on many seeds, the lock
removal's first step removes chapter 5's deadlock, and the exercises' checkers accept the model
answers and refuse the bugs."""

from __future__ import annotations

from pathlib import Path

import pytest
from notebook_cells import assert_same_run, run_cells

from labsupport import run, trace_table
from labsupport.analysis import find_races
from labsupport.chapters.ch07.checks import (
    MAPPING_VM,
    _fix_r6,
    _mapping_07,
    _recall_07,
    _saturation_07,
    saturation_point,
)
from labsupport.chapters.ch07.scenarios import (
    SCENARIOS,
    aio_co_reschedule_self,
    first_buggy_seed,
    format_outcomes,
    outcome_table,
    r4_program,
    r6_program,
    removal_program,
    run_scenario,
)
from labsupport.coroutine import aio_co_schedule, current_coroutine, qemu_coroutine_yield
from labsupport.kernel import compute
from labsupport.qemu.multiqueue import VM, ReqsCoMutex, ReqsQemuMutex, measure

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "07-removing-the-aiocontext-lock.ipynb"
SEEDS = 200


@pytest.fixture(scope="module")
def era_model() -> dict:
    """The notebook's "era-model" cells, run in order in a fresh namespace."""
    return run_cells(NOTEBOOK, "era-model", minimum=6)


@pytest.mark.parametrize("name", ["R4", "R5", "R7"])
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


@pytest.mark.parametrize("fixed", [False, True])
def test_the_notebooks_r6_misuses_exactly_when_the_librarys_does(era_model, fixed):
    visible = era_model["r6_program"]
    assert visible is not r6_program
    for seed in range(30):
        mine = run_scenario("R6", fixed, seed=seed, program=visible(fixed))
        theirs = run_scenario("R6", fixed, seed=seed)
        assert (mine.outcome, mine.findings) == (theirs.outcome, theirs.findings)
        if mine.result is not None:
            assert_same_run(mine.result, theirs.result)


@pytest.mark.parametrize("stage", ["2017", "no-op", "deleted"])
def test_the_notebooks_removal_stages_are_the_librarys(era_model, stage):
    assert era_model["removal_program"] is not removal_program
    for seed in range(20):
        mine = run(era_model["removal_program"](stage), cpus=2, policy="random", seed=seed)
        assert_same_run(mine, run(removal_program(stage), cpus=2, policy="random", seed=seed))


def test_the_first_step_of_the_removal_turns_d1s_deadlock_into_a_completed_run():
    for seed in range(SEEDS):
        assert (
            run(removal_program("2017"), cpus=2, policy="random", seed=seed).outcome == "deadlock"
        )
        for stage in ("no-op", "deleted"):
            assert (
                run(removal_program(stage), cpus=2, policy="random", seed=seed).outcome
                == "completed"
            )
    r = run(removal_program("no-op"), cpus=2)
    texts = trace_table(r, width=60)
    assert texts.count("aio_context_acquire(iothread0): no-op") == 3
    assert "wait: iothread0.ctx" not in texts
    with pytest.raises(ValueError, match="stage is '2017', 'no-op' or 'deleted'"):
        removal_program("2024")


@pytest.fixture(scope="module")
def table() -> dict:
    return outcome_table(SEEDS)


@pytest.mark.parametrize(
    "name, bug",
    [
        ("R4", "request lost"),
        ("R5", "wrong context"),
        ("R6", "misuse"),
        ("R7", "stale global state"),
    ],
)
def test_each_race_is_found_when_buggy_and_absent_when_fixed(table, name, bug):
    buggy, fixed = table[(name, "buggy")], table[(name, "fixed")]
    assert set(buggy) <= {"ok", bug}
    assert buggy[bug] >= SEEDS // 10, buggy  # seen on a good share of the schedules
    assert buggy["ok"] >= 1  # and it depends on the timing
    assert fixed == {"ok": SEEDS}
    assert f"{name:<9}fixed     {SEEDS}  -" in format_outcomes(table)


def test_r4_the_lost_request_is_reported_as_stuck_and_the_self_trigger_saves_it():
    seed = first_buggy_seed("R4")
    buggy = run_scenario("R4", False, seed=seed)
    assert buggy.result.outcome == "stuck"
    assert "vcpu1 waits for semaphore vcpu1-irq" in buggy.text()
    assert buggy.result.sim.model["seen"]["ignored"] == 1
    assert list(buggy.result.sim.model["ring"]) == ["req0"]
    fixed = run_scenario("R4", True, seed=seed)
    assert fixed.result.outcome == "completed" and fixed.result.sim.model["seen"]["handled"] == 1
    # the request went into the ring before the ioeventfd was assigned (the trace's order)
    text = trace_table(run(r4_program(False), cpus=3, policy="random", seed=seed), width=34)
    assert text.index("kick ignored") > text.index("wait: BQL") and text.index(
        "ioeventfd assigned"
    ) < text.index("kick ignored")


def test_r5_the_bh_runs_in_the_old_context_and_the_fix_reschedules_it():
    seed = first_buggy_seed("R5")
    buggy = run_scenario("R5", False, seed=seed)
    assert "completion BH ran in iothread0, but drive0's node is in iothread1" in buggy.text()
    fixed = run_scenario("R5", True, seed=seed)
    assert "node moved to iothread1: reschedule" in trace_table(fixed.result, width=60)
    assert fixed.result.sim.model["done"].value == 1


def test_r6_the_early_entry_names_both_threads():
    seed = first_buggy_seed("R6")
    buggy = run_scenario("R6", False, seed=seed)
    assert buggy.result is None
    assert (
        "iothread0 entered coroutine moving_co while it is still running in main-loop"
        in buggy.text()
    )
    for s in range(SEEDS):
        fixed = run_scenario("R6", True, seed=s, trace=False)
        assert fixed.result.sim.model["where"] == ["iothread0"]


def test_r7_eraser_names_both_accesses_on_every_seed_and_none_when_fixed():
    for seed in range(SEEDS):
        buggy = run_scenario("R7", False, seed=seed)
        (report,) = find_races(buggy.result)
        assert report.variable == "drive0.node"
        pair = {(a.thread, a.op, a.locks) for a in (report.access, report.previous)}
        assert ("vcpu0", "write", frozenset({"BQL"})) in pair
        assert ("iothread0", "read", frozenset()) in pair
        fixed = run_scenario("R7", True, seed=seed)
        assert find_races(fixed.result) == []
    stale = run_scenario("R7", False, seed=first_buggy_seed("R7"))
    assert "resized node-A, but drive0 is now node-B" in stale.text()


def test_scenario_names_are_checked():
    with pytest.raises(ValueError, match="scenario must be one of R4, R5, R6, R7"):
        run_scenario("R8", False)


# -- the multi-queue model in the notebook ---------------------------------------------------


def test_the_notebooks_request_locks_measure_the_same_as_the_librarys(era_model):
    locks = era_model["REQS_LOCKS"]
    assert locks["CoMutex"] is not ReqsCoMutex and locks["QemuMutex"] is not ReqsQemuMutex
    assert era_model["aio_context_acquire"] is not None
    for kind in ("CoMutex", "QemuMutex"):
        vm = VM(iothreads=4, reqs_lock=kind)
        for seed in range(3):
            mine = measure(vm, seed=seed, locks=locks)
            theirs = measure(vm, seed=seed)
            assert (mine.iops, mine.latencies, mine.cross_thread_wakes) == (
                theirs.iops,
                theirs.latencies,
                theirs.cross_thread_wakes,
            )


# -- the exercises ------------------------------------------------------------------------------


def test_7_1_accepts_an_even_mapping_and_refuses_lopsided_or_invalid_ones():
    even = [{"iothread": f"iothread{i}", "vqs": [i, i + 4]} for i in range(4)]
    assert _mapping_07(even)[0]
    assert _mapping_07([{"iothread": f"iothread{i}"} for i in range(4)])[0]
    ok, msg = _mapping_07(
        [
            {"iothread": "iothread0", "vqs": [0, 1, 2, 3, 4, 5]},
            {"iothread": "iothread1", "vqs": [6, 7]},
        ]
    )
    assert not ok and "below 90%" in msg
    ok, msg = _mapping_07([{"iothread": "iothread0", "vqs": [0, 1]}])
    assert not ok and "this mapping is refused" in msg
    assert MAPPING_VM.iothreads == 4 and MAPPING_VM.num_queues == 8


def test_7_2_accepts_the_reschedule_from_a_bh_and_refuses_the_early_schedule():
    assert _fix_r6(aio_co_reschedule_self)[0]

    def early(new_ctx, old_ctx):
        yield aio_co_schedule(new_ctx, current_coroutine(old_ctx.sim))
        yield compute(2)
        yield qemu_coroutine_yield()

    ok, msg = _fix_r6(early)
    assert not ok and "misuse" in msg

    def stays(new_ctx, old_ctx):
        yield compute(1)

    ok, msg = _fix_r6(stays)
    assert not ok and "must really move" in msg
    assert not _fix_r6("aio_co_reschedule_self")[0]


def test_7_3_wants_the_short_lock_and_measures_why():
    ok, msg = _recall_07("b")
    assert ok and "cross-thread hand-offs" in msg
    for letter in "acd":
        assert not _recall_07(letter)[0]
    assert not _recall_07("e")[0]


def test_7_4_the_saturation_point_is_computed_from_the_model():
    n = saturation_point()
    assert n == 3  # a drive that serves 4 at once caps the rate at 400k: 3 IOThreads reach it
    assert _saturation_07(n)[0]
    assert not _saturation_07(n + 1)[0] and not _saturation_07(0)[0]


def test_the_published_figure_is_labelled_as_qemus_and_quoted_raw_in_the_chapter():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    prose = [c.source for c in nb.cells if c.cell_type == "markdown"]
    (cell,) = [p for p in prose if "254k IOPS before, 517k IOPS after" in p]
    assert "QEMU's measurement" in cell and "+104%" in cell and "+203%" in cell
    assert "2.03 times" not in cell
    plots = [c.source for c in nb.cells if c.cell_type == "code" and "PUBLISHED" in c.source]
    assert plots and "QEMU's measurement" in plots[0] and "This model" in plots[0]
    title = nb.cells[0].source.splitlines()[0]
    assert title == (
        "# Chapter 7 — Removing the AioContext lock and the multi-queue block layer (QEMU 9.0)"
    )
    assert "08-retrospective.ipynb" in prose[-1]


def test_the_one_shot_bh_hand_over_completes_without_any_lock_or_race(era_model):
    from labsupport.chapters.ch07.scenarios import handover_program

    assert era_model["handover_program"] is not handover_program
    for seed in range(SEEDS):
        r = run(handover_program(), cpus=2, policy="random", seed=seed)
        assert r.outcome == "completed" and r.sim.model.value == 1
        assert find_races(r) == []
        if seed < 20:
            mine = run(era_model["handover_program"](), cpus=2, policy="random", seed=seed)
            assert_same_run(mine, r)
    text = trace_table(run(handover_program(), cpus=2), width=40)
    assert "ctx" not in text.replace("iothread0", "")  # no context lock anywhere
    assert "bh complete requests" in text and "bh aio_wait_kick" in text
