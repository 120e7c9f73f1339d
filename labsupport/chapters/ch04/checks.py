"""Chapter 4's exercises: IOThreads and the AioContext lock, judged by running the answers.

The machine of these exercises is chapter 4's: a disk served by an IOThread whose loop holds its
AioContext lock (an RFifoLock) while it dispatches, a main loop that holds the BQL while it runs
monitor commands, and vCPUs that need the BQL for MMIO exits. The rules of 2014: only a thread
that holds the BQL may acquire another thread's AioContext, and the BQL comes before any other
lock; an IOThread handler that takes the BQL while its loop holds the context breaks that order.

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from labsupport import validate
from labsupport.analysis.lockdep import LockOrder
from labsupport.exercises import judge_fix, register
from labsupport.kernel import RunResult, Simulation, compute, run, sleep
from labsupport.loop import aio_poll
from labsupport.qemu.bql import BQL, RetakeAt
from labsupport.qemu.iothread import (
    IOThread,
    aio_context_acquire,
    aio_context_release,
    qemu_get_aio_context,
)

from ... import tracebuf as tb
from .scenarios import IOThreadVM, d4_program, measure_vm

# -- 4.1 Predict the trace ---------------------------------------------------------------------


def predict_program(sim: Simulation) -> dict[str, Any]:
    """Exercise 4.1: a slow request on the IOThread, ``info block`` and an MMIO exit.

    vcpu0 kicks the disk at t=0: the IOThread's handler computes 4 us, then ``io_submit``
    blocks 30 us in the host kernel. The monitor's ``info block`` arrives at t=6 (the main loop
    runs it under the BQL; 3 us of work under the context lock). vcpu1 runs guest code for 8 us,
    then an MMIO exit: 2 us under the BQL.
    """
    bql = BQL(sim)
    main_ctx = qemu_get_aio_context(sim)
    io = IOThread(sim, "iothread0")
    done: dict[str, float] = {}

    def submit():
        yield compute(4)
        yield sleep(30)  # io_submit blocks in the host kernel
        yield compute(1)

    bh = io.ctx.bh_new(submit, "virtio_blk_handle_vq")

    def info_block():
        yield aio_context_acquire(io.ctx, "monitor: info block")
        yield compute(3)
        yield aio_context_release(io.ctx)
        done["info_block_us"] = sim.now - 6

    main_ctx.timer_new(info_block, "info block").arm(6)

    def main_loop():
        yield bql.lock("main loop")
        while True:
            yield aio_poll(main_ctx, True, drop=RetakeAt(bql, "main loop"))

    def vcpu0():
        yield bh.schedule()

    def vcpu1():
        yield compute(8)
        yield bql.lock("kvm: mmio exit")
        yield compute(2)
        yield bql.unlock()
        done["vcpu1_exit_done_at"] = sim.now

    sim.spawn("main-loop", main_loop, daemon=True)
    sim.spawn("vcpu0", vcpu0)
    sim.spawn("vcpu1", vcpu1)
    return done


def predict_run() -> RunResult:
    """The run of exercise 4.1 (four host CPUs, first come first served)."""
    return run(predict_program, cpus=4)


#: How far a predicted time in 4.1 may be from the run's, in microseconds: the clock of this run
#: moves in whole microseconds, so a prediction is exact or wrong.
PREDICT_TOLERANCE_US = 1e-6


def _predict_04(answer: Any) -> tuple[bool, str]:
    keys = {"info_block_us", "vcpu1_exit_done_at"}
    if not isinstance(answer, dict) or set(answer) != keys:
        return False, (
            "answer with a dict: {'info_block_us': ..., 'vcpu1_exit_done_at': ...} (microseconds)"
        )
    for k, v in answer.items():
        if not validate.is_number(v):
            return False, f"{k} must be a number of microseconds, not {v!r}"
    truth = predict_run().sim.model
    wrong = sorted(k for k in keys if abs(answer[k] - truth[k]) > PREDICT_TOLERANCE_US)
    if not wrong:
        return True, (
            f"info block took {truth['info_block_us']:g} us, all but 3 of them waiting "
            f"for the IOThread's slow io_submit; vcpu1, which never touched the disk, "
            f"finished its exit at t={truth['vcpu1_exit_done_at']:g} because the main "
            f"loop held the BQL all that time"
        )
    return False, (
        f"{' and '.join(wrong)}: not what this run produces (a time must be exact, to within "
        f"{PREDICT_TOLERANCE_US:g} us)"
    )


# -- 4.2 Find the seed that makes info block wait longest --------------------------------------

#: Exercise 4.2's VM: 20 ms, info block 500 times a second, 2% of io_submit calls slow (for
#: 2 ms each), 2 vCPUs with 4 requests in flight (the chapter's defaults).
SEED_VM_04 = IOThreadVM(slow_syscall_prob=0.02, monitor_per_s=500, duration_us=20_000)
SEEDS_04 = range(40)


def longest_info_block(seed: int) -> float:
    """Exercise 4.2's measurement: the longest ``info block`` (us) of the VM run with ``seed``."""
    return _monitor(SEED_VM_04.replace(seed=seed))[0]


@cache
def _monitor(vm: IOThreadVM) -> tuple[float, float]:
    """(longest, p99) ``info block`` latency (us) of ``vm``: a run is deterministic, so each VM
    is run once however often the checkers ask."""
    m = measure_vm(vm, trace=False)
    return m.monitor_max_us, m.monitor_p99_us


def _longest_04(answer: Any) -> tuple[bool, str]:
    if not validate.is_whole(answer) or answer not in SEEDS_04:
        return False, f"answer with a seed from 0 to {SEEDS_04[-1]}, not {answer!r}"
    mine = longest_info_block(answer)
    bound = max(longest_info_block(s) for s in SEEDS_04)
    if mine >= bound:
        return True, (
            f"seed {answer}: one info block waited {mine:,.0f} us, the longest of all "
            f"{len(SEEDS_04)} seeds; more than one slow io_submit "
            f"({SEED_VM_04.slow_syscall_us:,.0f} us) came between the command and "
            f"the context lock"
            if mine > SEED_VM_04.slow_syscall_us + 100
            else f"seed {answer}: {mine:,.0f} us, the longest of all {len(SEEDS_04)} seeds"
        )
    return False, (
        f"seed {answer}: the longest info block took {mine:,.0f} us; another seed does better"
    )


# -- 4.3 Read a lockdep report -----------------------------------------------------------------


def report_program(sim: Simulation) -> dict[str, Any]:
    """Exercise 4.3: two IOThreads, a main loop, two vCPUs; one run that does not deadlock.

    Who does what is for the learner to read from the lock-order report.
    """
    bql = BQL(sim)
    main_ctx = qemu_get_aio_context(sim)
    io0 = IOThread(sim, "iothread0")
    io1 = IOThread(sim, "iothread1")

    def request0():  # iothread0: plain requests
        yield compute(6)

    def request1():  # iothread1: the completion updates BQL-protected accounting
        yield compute(4)
        yield bql.lock("iothread: completion")
        yield compute(1)
        yield bql.unlock()

    bh0 = io0.ctx.bh_new(request0, "request")
    bh1 = io1.ctx.bh_new(request1, "request")

    def stats():  # a main-loop timer that reads global state under the BQL only
        yield compute(2)

    main_ctx.timer_new(stats, "stats").arm(3)

    def main_loop():
        yield bql.lock("main loop")
        while True:
            yield aio_poll(main_ctx, True, drop=RetakeAt(bql, "main loop"))

    def vcpu0():
        for _ in range(2):
            yield bh0.schedule()
            yield compute(5)
            yield bql.lock("kvm: mmio exit")
            yield compute(2)
            yield bql.unlock()

    def vcpu1():
        yield bh1.schedule()
        yield compute(40)
        yield bql.lock("kvm: mmio exit")  # a register write that resets the disk on iothread1
        yield aio_context_acquire(io1.ctx, "virtio: reset")
        yield compute(3)
        yield aio_context_release(io1.ctx)
        yield bql.unlock()

    sim.spawn("main-loop", main_loop, daemon=True)
    sim.spawn("vcpu0", vcpu0)
    sim.spawn("vcpu1", vcpu1)
    return {"bql": bql}


def report_run() -> RunResult:
    """The run whose lock-order report exercise 4.3 prints."""
    return run(report_program, cpus=4)


def report_text() -> str:
    """Exercise 4.3's lockdep-style report."""
    return LockOrder().learn(report_run()).report()


def _culprits_04() -> dict[str, str]:
    order = LockOrder().learn(report_run())
    return {
        "holds AioContext, takes BQL": order.deps[("AioContext", "BQL")].thread,
        "holds BQL, takes AioContext": order.deps[("BQL", "AioContext")].thread,
    }


def _report_04(answer: Any) -> tuple[bool, str]:
    truth = _culprits_04()
    if not isinstance(answer, dict) or set(answer) != set(truth):
        return False, f"answer with a dict with the keys {sorted(truth)}, each a thread's name"
    wrong = sorted(k for k in truth if answer[k] != truth[k])
    if not wrong:
        return True, (
            f"{truth['holds AioContext, takes BQL']} took the BQL inside a handler "
            f"that its loop ran under the context lock (against the order); "
            f"{truth['holds BQL, takes AioContext']} took the context lock while it "
            f"held the BQL (the documented order): together, an AB-BA"
        )
    return False, f"{' and '.join(repr(k) for k in wrong)}: not the thread the report names"


# -- 4.4 Measure and explain -------------------------------------------------------------------

#: Exercise 4.4's VM and grid: 100 ms, 1000 info block/s, p from 0 to 2% in steps of 0.1%.
P99_VM_04 = IOThreadVM(
    vcpus=2, io_depth=4, slow_syscall_us=2_000, monitor_per_s=1_000, duration_us=100_000
)
P99_LIMIT_US = 1_000
P99_GRID = tuple(round(k * 0.001, 3) for k in range(21))


def monitor_p99(prob: float) -> float:
    """Exercise 4.4's measurement: p99 ``info block`` latency (us) at slow-call probability."""
    return _monitor(P99_VM_04.replace(slow_syscall_prob=prob))[1]


#: How far an answer to 4.4 may be from a grid value (float noise, not a different answer).
P99_TOLERANCE = 1e-9


def _p99_04(answer: Any) -> tuple[bool, str]:
    if (
        not validate.is_number(answer)
        or round(answer, 3) not in P99_GRID
        or abs(answer - round(answer, 3)) > P99_TOLERANCE
    ):
        return False, (
            f"answer with a probability from the grid 0, 0.001, ..., 0.02 (exactly, to within "
            f"{P99_TOLERANCE:g}); not {answer!r}"
        )
    answer = round(answer, 3)
    first = next((p for p in P99_GRID if monitor_p99(p) > P99_LIMIT_US), None)
    if answer == first:
        return True, (
            f"p={first}: p99 {monitor_p99(first):,.0f} us; once more than one command in "
            f"a hundred arrives during a 2 ms stall, the stall is in the p99"
        )
    here = monitor_p99(answer)
    if here <= P99_LIMIT_US:
        return False, f"at p={answer} the p99 is {here:,.0f} us, not above {P99_LIMIT_US} us"
    return False, f"at p={answer} the p99 is {here:,.0f} us, but a smaller p already crosses"


# -- 4.5 Fix the AB-BA -------------------------------------------------------------------------

#: Exercise 4.5's search: the model data (request and command times) of this many seeds, and
#: this many explorer runs on each (D4's buggy handler deadlocks on the data of seed 4).
FIX_DATA_SEEDS_04 = 6
FIX_RUNS_04 = 100


def _stats_writes_without_bql(r: RunResult) -> int:
    """How many writes to ``blk.stats`` happened while the writer did not hold the BQL."""
    sim = r.sim
    dev = sim.model["dev"]
    bql_oid, stats_oid = dev.bql.mutex.oid, dev.stats.oid
    holder = None
    bad = 0
    for _t, k, tid, oid, a in zip(*sim.trace.columns(), strict=True):
        if oid == bql_oid and k == tb.ACQUIRE:
            holder = tid
        elif oid == bql_oid and k == tb.RELEASE and a == 0:
            holder = None
        elif oid == stats_oid and k == tb.WRITE and holder != tid:
            bad += 1
    return bad


def _fixed_04(answer: Any) -> tuple[bool, str]:
    if not callable(answer):
        return False, "answer with a completion handler: a generator function of (dev)"
    order = LockOrder()

    def judge(r: RunResult) -> str | None:
        m = r.sim.model
        if m["dev"].stats.value != m["requests"]:
            return (
                f"blk.stats = {m['dev'].stats.value} after {m['requests']} requests: every "
                f"completion must count once"
            )
        if _stats_writes_without_bql(r):
            return "blk.stats was written without the BQL held"
        order.learn(r)
        return None

    ok, message = judge_fix(
        d4_program(answer),
        judge,
        cpus=2,
        opaque=True,  # the contexts' BH lists are plain attributes
        data_seeds=FIX_DATA_SEEDS_04,
        max_runs=FIX_RUNS_04,
        because=", every update under the BQL, and the lock order learned from the runs has "
        "no cycle",
    )
    if ok and order.reports():
        return False, "no run deadlocked, but the lock order still has a cycle:\n" + order.report()
    return ok, message


register(
    "4.1",
    _predict_04,
    [
        "who holds the IOThread's context lock from the start, and until when?",
        "the IOThread holds its context lock for its whole handler; the main loop takes the BQL "
        "when the command arrives and then waits for the context lock, and vcpu1's exit waits "
        "for the BQL",
        "add up the handler's steps to find when the context lock comes free, add the command's "
        "3 us of work, and see when the main loop lets go of the BQL for vcpu1's 2 us",
    ],
)
register(
    "4.2",
    _longest_04,
    [
        "what must happen just before an info block arrives for it to wait long?",
        "measure the longest info block of every seed in the range the exercise gives",
        "answer with the seed whose measurement is the largest of all",
    ],
)
register(
    "4.3",
    _report_04,
    [
        "which lines of the report say who took which lock while holding which?",
        "each arrow line names a thread, the lock class it took, and the lock class it held at "
        "the time",
        "match each key to the arrow line whose held and taken lock classes fit it, and answer "
        "with that line's thread",
    ],
)
register(
    "4.4",
    _p99_04,
    [
        "does the p99 latency of info block grow or shrink as more io_submit calls are slow?",
        "measure the p99 at each probability of the grid, from the smallest up",
        "answer with the first grid value whose p99 is above the limit, exactly as the grid "
        "writes it",
    ],
)
register(
    "4.5",
    _fixed_04,
    [
        "read the lockdep report: which two locks are taken in both orders, and by whom?",
        "one global order removes the cycle: which lock does QEMU say comes first?",
        "either hand the work that needs the BQL to the main loop (a one-shot BH there), or let "
        "go of the context, take the BQL, then take the context again",
    ],
)
