"""What chapter 4 teaches, asserted: the notebook's era model is the library's, and each claim
the chapter makes holds (D3 and D4 under the buggy model, and not under the fixed ones)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from notebook_cells import run_cell_containing, run_cells

from labsupport import run
from labsupport.analysis import LockOrder, intervals, witness_deadlock
from labsupport.chapters.ch04.checks import (
    P99_GRID,
    P99_LIMIT_US,
    _culprits_04,
    _fixed_04,
    _longest_04,
    _p99_04,
    _predict_04,
    _report_04,
    longest_info_block,
    monitor_p99,
    report_run,
)
from labsupport.chapters.ch04.scenarios import (
    KICK_INFO_BLOCK_US,
    KICK_MONITOR_AT,
    IOThreadVM,
    complete_in_documented_order,
    complete_under_bql,
    complete_via_main_loop,
    d4_program,
    kick_program,
    kick_scene,
    measure_vm,
)
from labsupport.qemu import Workload, run_era

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "04-iothreads-and-the-aiocontext-lock.ipynb"
D3 = IOThreadVM(vcpus=2, io_depth=4, slow_syscall_us=2_000, monitor_per_s=1_000, duration_us=30_000)


@pytest.fixture(scope="module")
def era_model() -> dict:
    """The notebook's "era-model" cells, run in order in a fresh namespace."""
    return run_cells(NOTEBOOK, "era-model", minimum=3)


def _run_cell(ns: dict, containing: str) -> dict:
    return run_cell_containing(
        NOTEBOOK, ns, containing, "from labsupport import run, trace_table, timeline_summary"
    )


# -- The visible model is the library model ---------------------------------------------------


@pytest.mark.parametrize("policy", ["first-come", "random"])
@pytest.mark.parametrize(
    "changes",
    [
        dict(vcpus=1),
        dict(vcpus=4, io_depth=8, io_service_us=20, guest_us=10, seed=1),
        dict(vcpus=6, host_cpus=3, io_depth=2, guest_us=30, seed=5),
    ],
)
def test_the_visible_iothread_is_run_eras_iothread_era(era_model, policy, changes):
    p = IOThreadVM(**changes)
    mine, era = era_model["measure"](p, policy), run_era(p.workload(), "iothread", policy=policy)
    assert (mine.guest_cpus_busy, mine.exits_per_s, mine.io_per_s, mine.bql_wait_us) == (
        era.guest_cpus_busy,
        era.exits_per_s,
        era.io_per_s,
        era.bql_wait_us,
    )
    assert (mine.io_p50_us, mine.io_p99_us) == (era.io_p50_us, era.io_p99_us)
    assert mine.bql_profile == era.bql_profile
    assert (mine.result.schedule, mine.result.steps, mine.result.time) == (
        era.result.schedule,
        era.result.steps,
        era.result.time,
    )


@pytest.mark.parametrize("policy", ["first-come", "random"])
@pytest.mark.parametrize(
    "changes",
    [
        dict(slow_syscall_prob=0.02),
        dict(slow_syscall_prob=0.05, vcpus=4, seed=3),
        dict(slow_syscall_prob=0.01, monitor_takes_context_lock=False, seed=7),
        dict(slow_syscall_prob=0.0, io_depth=16, monitor_per_s=200, seed=2),
    ],
)
def test_the_visible_vm_is_measure_vms(era_model, policy, changes):
    p = D3.replace(**changes)
    mine, lib = era_model["measure"](p, policy), measure_vm(p, policy)
    assert mine.summary() == lib.summary()
    assert mine.monitor_us == lib.monitor_us and mine.monitor_us
    assert mine.ctx_profile == lib.ctx_profile and mine.bql_profile == lib.bql_profile
    assert (mine.result.schedule, mine.result.steps) == (lib.result.schedule, lib.result.steps)
    assert mine.result.sim.trace.same_as(lib.result.sim.trace)


def test_same_seed_same_result_and_bad_parameters_are_refused():
    p = D3.replace(slow_syscall_prob=0.02, seed=4)
    assert measure_vm(p).monitor_us == measure_vm(p).monitor_us
    with pytest.raises(ValueError, match="slow_syscall_prob is a probability from 0 to 1"):
        IOThreadVM(slow_syscall_prob=1.5)
    with pytest.raises(ValueError, match="io_depth must be a whole number"):
        IOThreadVM(io_depth=-1)
    with pytest.raises(ValueError, match="unknown workload field"):
        D3.replace(iothreads=2)


# -- Section 3: one slow request, one monitor command, one MMIO exit ---------------------------


def test_a_slow_request_holds_up_info_block_and_through_the_bql_a_vcpu(era_model):
    ns = _run_cell(era_model, "def one_slow_request")
    r = ns["stall"]
    assert r.ok and r.sim.model == {"info block": 50, "vcpu1 exit": 53}
    ivs = intervals(r)
    ctx = [
        (iv.start, iv.end)
        for iv in ivs
        if iv.thread == "iothread0" and iv.what == "hold" and iv.obj == "iothread0.ctx"
    ]
    assert (0, 45) in ctx  # the IOThread held its lock through the 40 us in the kernel
    waits = {(iv.thread, iv.obj): iv.length for iv in ivs if iv.what == "blocked"}
    assert waits[("main-loop", "iothread0.ctx")] == 35 and waits[("vcpu1", "BQL")] == 35


def test_the_2015_loop_holds_its_lock_while_dispatching_and_drops_it_to_wait(era_model):
    r = era_model["measure"](IOThreadVM(vcpus=2, io_depth=4, duration_us=5_000)).result
    ivs = [iv for iv in intervals(r) if iv.thread == "iothread0"]
    holds = [iv for iv in ivs if iv.what == "hold" and iv.obj == "iothread0.ctx"]
    sleeps = [iv for iv in ivs if iv.what == "blocked" and iv.obj == "iothread0"]
    runs = [iv for iv in ivs if iv.what == "run"]
    assert holds and sleeps and runs
    for s in sleeps:  # asleep in poll: never holding the lock
        assert not any(h.start < s.end and s.start < h.end for h in holds)
    for x in runs:  # every handler ran under the lock
        assert any(h.start <= x.start and x.end <= h.end for h in holds)


def test_the_stall_traces_contention_callback_runs_in_the_main_loop_and_wakes_nobody(era_model):
    ns = _run_cell(era_model, "def one_slow_request")
    r = ns["stall"]
    sim = r.sim
    names = [t.name for t in sim.threads]
    calls = [
        (ev.time, names[ev.thread])
        for ev in sim.trace
        if ev.kind == "op" and sim.objects[ev.obj].name == "contention callback"
    ]
    assert calls[0] == (10, "main-loop")  # the monitor's wait, while iothread0 is in the kernel
    assert r.sim.model["info block"] == 50  # the kick did not shorten the stall


# -- Section 3: the kick, in the 2014 loop and the 2015 loop ----------------------------------


def _kick_rows():
    return {
        "2014": kick_scene(2014),
        "2014, no callback": kick_scene(2014, callback=False),
        "2014, no callback, request at 50": kick_scene(2014, callback=False, request_at=50),
        "2014, no callback, + aio_notify at 100": kick_scene(
            2014, callback=False, request_at=50, notify_at=100
        ),
        "2015": kick_scene(2015),
        "2015, no callback": kick_scene(2015, callback=False),
    }


def test_2014_the_kick_lets_the_monitor_in_and_the_trace_shows_it():
    k = kick_scene(2014)
    assert k.outcome == "completed" and k.info_block_waited_us == 0
    assert k.contentions == 2 and k.kicks == 1
    sim = k.result.sim
    names = [t.name for t in sim.threads]
    rows = [
        (ev.time, names[ev.thread], ev.kind, sim.objects[ev.obj].name)
        for ev in sim.trace
        if ev.thread >= 0
    ]
    at = KICK_MONITOR_AT
    kick = rows.index((at, "main-loop", "op", "contention callback"))
    rest = rows[kick:]
    order = [
        rest.index((at, "iothread0", "op", "aio_poll: no progress")),
        rest.index((at, "iothread0", "release", "iothread0.ctx")),
        rest.index((at, "main-loop", "acquire", "iothread0.ctx")),
        rest.index((at + KICK_INFO_BLOCK_US, "iothread0", "acquire", "iothread0.ctx")),
    ]
    assert order == sorted(order)


def test_2014_without_the_callback_the_monitor_waits_for_another_reason_or_forever():
    never = kick_scene(2014, callback=False)
    assert never.outcome == "stuck" and never.info_block_waited_us is None
    assert never.kicks == 0 and never.contentions == 1
    io = never.result.sim.model["iothread"]
    assert io.lock.mutex.owner is io.thread and io.thread.blocked_on is io.ctx
    busy = kick_scene(2014, callback=False, request_at=50)
    assert busy.outcome == "stuck" and busy.info_block_waited_us is None
    late = kick_scene(2014, callback=False, request_at=50, notify_at=100)
    assert late.outcome == "completed" and late.info_block_waited_us == 100 - KICK_MONITOR_AT
    assert kick_scene(2014, request_at=50, notify_at=100).info_block_waited_us == 0


@pytest.mark.parametrize("callback", [True, False])
def test_2015_nobody_needs_kicking(callback):
    k = kick_scene(2015, callback=callback, request_at=50)
    assert k.outcome == "completed" and k.info_block_waited_us == 0
    assert k.contentions == 0 and k.kicks == 0


def test_the_kick_scene_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="loop_year must be 2014 or 2015"):
        kick_program(2013)
    with pytest.raises(ValueError, match="notify_at"):
        kick_program(2014, notify_at=-1)
    with pytest.raises(ValueError, match="callback"):
        kick_program(2014, callback="yes")


def test_the_kick_section_prints_and_says_what_it_computes(era_model):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    ns = _run_cell(era_model, "kicked = kick_scene(2014)")
    assert ns["kicked"].kicks == 1
    ns = run_cell_containing(NOTEBOOK, ns, "scenes = {")
    rows = {
        name: (k.outcome, k.info_block_waited_us, k.contentions, k.kicks)
        for name, k in ns["scenes"].items()
    }
    assert rows == {
        name: (k.outcome, k.info_block_waited_us, k.contentions, k.kicks)
        for name, k in _kick_rows().items()
    }
    text = next(c.source for c in nb.cells if c.cell_type == "markdown" and "**90 µs**" in c.source)
    old, late, new = rows["2014"], rows["2014, no callback, + aio_notify at 100"], rows["2015"]
    assert f"**{old[1]:g} µs**" in text and f"**{old[2]}**" in text and f"**{old[3]}**" in text
    assert f"**{late[1]:g} µs**" in text and f"with **{new[2]}** contentions" in text
    assert rows["2014, no callback"][0] == "stuck" and "run ends stuck" in text
    assert rows["2015, no callback"] == new


def test_every_sentence_about_the_loop_and_the_callback_names_its_year():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    flat = " ".join(text.split())
    for sentence in flat.split(". "):
        s = sentence.lower()
        if "dropped only around" in s or "drops it only around" in s:
            raise AssertionError(f"an undated claim about the loop: {sentence!r}")
        if ("around the blocking wait" in s or "around the wait" in s) and "aio_poll" in s:
            assert "2015" in s or "2014" in s, sentence
    assert "`drop` is the model's" in flat
    assert "reference/" not in text and "qemu-history" not in text


def test_in_section_5_the_p99_is_the_worst_because_a_run_has_fewer_than_100_commands():
    # "Each run has 80 commands, and the p99 of fewer than 100 values ... is the largest one"
    base = IOThreadVM(
        vcpus=2, io_depth=4, slow_syscall_us=2_000, monitor_per_s=1_000, duration_us=100_000
    )
    for p in (0.0, 0.01):
        for lock in (True, False):
            r = measure_vm(base.replace(slow_syscall_prob=p, monitor_takes_context_lock=lock))
            assert len(r.monitor_us) == 80
            assert r.monitor_p99_us == r.monitor_max_us == max(r.monitor_us)
    from labsupport import percentile

    assert percentile(list(range(1, 100)), 99) == 99  # 99 values: the largest
    assert percentile(list(range(1, 201)), 99) == 198  # 200: no longer the largest


def test_bql_waits_are_summed_over_threads_and_can_exceed_the_run():
    w = Workload(vcpus=8, host_cpus=4, io_depth=8, io_service_us=20, guest_us=10)
    r = run_era(w.replace(duration_us=20_000), "kvm", trace=False)
    assert r.bql_wait_us > w.replace(duration_us=20_000).duration_us  # "can exceed 20 ms"


# -- Section 4: I/O leaves the BQL -------------------------------------------------------------


@pytest.mark.parametrize("vcpus", [2, 3, 4, 6, 8])
def test_io_leaves_the_bql_on_an_iothread(vcpus):
    w = Workload(
        host_cpus=4, io_depth=8, io_service_us=20, guest_us=10, duration_us=20_000, vcpus=vcpus
    )
    kvm, iot = run_era(w, "kvm"), run_era(w, "iothread")
    assert iot.bql_wait_us < 0.7 * kvm.bql_wait_us
    assert iot.guest_cpus_busy > 3 * kvm.guest_cpus_busy
    assert iot.io_per_s >= kvm.io_per_s
    main_held = kvm.result.sim.model["bql"].sites["main loop"].hold_us
    assert main_held > 0.5 * w.duration_us  # in the KVM era the main loop holds it most
    assert iot.result.sim.model["bql"].sites["main loop"].hold_us == 0


def test_kvm_io_rate_sags_with_vcpus_and_the_iothreads_holds_up_to_host_cpus():
    def era(name, n):
        w = Workload(
            host_cpus=4, io_depth=8, io_service_us=20, guest_us=10, duration_us=20_000, vcpus=n
        )
        return run_era(w, name)

    kvm = [era("kvm", n).io_per_s for n in (2, 4, 8)]
    iot = [era("iothread", n).io_per_s for n in (2, 3, 4)]
    assert kvm[0] > kvm[1] > kvm[2]
    assert len(set(iot)) == 1


# -- Section 5: D3 -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_d3_info_block_stalls_behind_a_slow_request_and_not_without_the_context_lock(seed):
    buggy = measure_vm(D3.replace(slow_syscall_prob=0.02, seed=seed), trace=False)
    fixed = measure_vm(
        D3.replace(slow_syscall_prob=0.02, seed=seed, monitor_takes_context_lock=False), trace=False
    )
    assert buggy.monitor_max_us > 0.5 * D3.slow_syscall_us
    assert fixed.monitor_max_us < 3 * D3.info_block_us
    assert fixed.bql_wait_us < buggy.bql_wait_us  # the vCPUs paid for the stall too


def test_d3_the_monitors_p99_grows_with_the_slow_syscall_probability():
    def p99(p, lock=True):
        return measure_vm(
            D3.replace(slow_syscall_prob=p, duration_us=100_000, monitor_takes_context_lock=lock),
            trace=False,
        )

    rows = {p: p99(p) for p in (0.0, 0.001, 0.005, 0.01, 0.05)}
    assert rows[0.0].monitor_p99_us < 50
    assert rows[0.001].monitor_p50_us < 30 < 500 < rows[0.001].monitor_p99_us
    assert rows[0.005].monitor_p99_us > 0.9 * D3.slow_syscall_us
    assert rows[0.01].monitor_p50_us > 100 and rows[0.05].monitor_p99_us > D3.slow_syscall_us
    assert rows[0.05].io_per_s < 0.5 * rows[0.0].io_per_s
    assert max(p99(p, lock=False).monitor_p99_us for p in (0.01, 0.05)) < 3 * D3.info_block_us


def test_d3_the_context_lock_profile_names_the_monitor_as_the_waiter():
    r = measure_vm(D3.replace(slow_syscall_prob=0.01))
    first = r.ctx_profile.splitlines()[1]
    assert first.startswith("monitor: info block")
    assert r.result.sim.model["iothread"].lock.sites["monitor: info block"].wait_us > 1_000


# -- Section 6: D4 -----------------------------------------------------------------------------


def test_d4_lockdep_reports_the_cycle_from_a_run_that_did_not_deadlock():
    calm = run(d4_program(complete_under_bql), cpus=2)
    assert calm.ok and calm.sim.model["dev"].stats.value == 2
    reports = LockOrder().learn(calm).reports()
    assert len(reports) == 1 and sorted(reports[0].cycle) == ["AioContext", "BQL"]
    text = reports[0].text()
    assert "WARNING: possible circular locking dependency detected" in text
    assert "main-loop is trying to acquire lock:\n  (AioContext)" in text
    assert "taken by iothread0 while holding (AioContext)" in text and "*** DEADLOCK ***" in text


def test_d4_the_witnessed_deadlock_replays_identically():
    seen = witness_deadlock(d4_program(complete_under_bql), ["AioContext", "BQL"], cpus=2)
    assert seen is not None and seen.outcome == "deadlock"
    assert sorted(seen.deadlock.cycle) == ["iothread0", "main-loop"]
    text = seen.deadlock.text()
    assert "iothread0 waits for mutex BQL, held by main-loop" in text
    assert (
        "main-loop waits for iothread0's AioContext lock (rfifolock iothread0.ctx), held by "
        "iothread0"
    ) in text
    again = run(d4_program(complete_under_bql), schedule=seen.schedule, seed=seen.sim.seed, cpus=2)
    assert again.outcome == "deadlock" and again.sim.trace.same_as(seen.sim.trace)
    assert again.deadlock.text() == text


def test_d4_deadlocks_under_the_bug_and_never_under_either_fix():
    def tally(handler):
        order, outcomes = LockOrder(), []
        for seed in range(200):
            r = run(d4_program(handler), policy="random", seed=seed, cpus=2)
            order.learn(r)
            ok = r.outcome == "completed" and r.sim.model["dev"].stats.value == 2
            outcomes.append("ok" if ok else r.outcome)
        return outcomes, order.reports()

    bug, bug_cycles = tally(complete_under_bql)
    assert bug.count("deadlock") > 20 and len(bug_cycles) == 1
    for fix in (complete_via_main_loop, complete_in_documented_order):
        outcomes, cycles = tally(fix)
        assert outcomes == ["ok"] * 200 and cycles == []


# -- The notebook says what it must ------------------------------------------------------------


def test_the_notebook_presents_d4_as_derived_and_links_on():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "(derived)" in text and "derivation" in text
    assert "Fam Zheng" in text and "[qemu-devel, 2020-09-17, Fam Zheng" in text
    assert "05-handlers-take-the-lock.ipynb" in text
    assert "04-iothreads-and-the-aiocontext-lock-exercises.ipynb" in text
    assert "QEMU AioContext removal and how it was done" in text
    assert "http://blog.vmsplice.net/2024/01/qemu-aiocontext-removal-and-how-it-was.html" in text
    for source in ("[qemu.git aio-posix.c @ 05e514b1]", "[QEMU source: async.c, c. 2014 version]"):
        assert source in text
    assert "be8d8537668c9be7a8dee6aed94b2b3f9fcd4a9f" in text  # the 2014 loop
    checked = [c for c in nb.cells if "nbval-check-output" in c.metadata.get("tags", [])]
    assert len(checked) >= 8


# -- Exercises ---------------------------------------------------------------------------------


def test_exercise_checkers_accept_the_answers_and_refuse_others():
    assert _predict_04({"info_block_us": 32, "vcpu1_exit_done_at": 40})[0]
    assert not _predict_04({"info_block_us": 3, "vcpu1_exit_done_at": 10})[0]
    assert not _predict_04(32)[0]
    best = max(range(40), key=longest_info_block)
    assert _longest_04(best)[0]
    assert not _longest_04(min(range(40), key=longest_info_block))[0]
    assert not _longest_04(99)[0]
    assert _culprits_04() == {
        "holds AioContext, takes BQL": "iothread1",
        "holds BQL, takes AioContext": "vcpu1",
    }
    assert report_run().ok
    assert _report_04(_culprits_04())[0]
    assert not _report_04(
        {"holds AioContext, takes BQL": "iothread0", "holds BQL, takes AioContext": "vcpu1"}
    )[0]
    first = next(p for p in P99_GRID if monitor_p99(p) > P99_LIMIT_US)
    assert _p99_04(first)[0] and not _p99_04(0.0)[0] and not _p99_04(0.02)[0]
    assert not _p99_04(0.0005)[0]
    ok, msg = _p99_04(first + 0.0004)  # rounds to the right grid value, but is not it
    assert not ok and "exactly" in msg
    assert not _p99_04(first - 0.0004)[0]


def test_the_fix_checker_takes_both_fixes_and_refuses_the_bug_and_a_lockless_update():
    assert _fixed_04(complete_via_main_loop)[0]
    assert _fixed_04(complete_in_documented_order)[0]
    ok, why = _fixed_04(complete_under_bql)
    assert not ok and "deadlock" in why

    def no_lock(dev):
        yield dev.stats.increment()

    ok, why = _fixed_04(no_lock)
    assert not ok and "without the BQL" in why
