"""Nonsense is refused at once, and the refusal names the parameter.

One table of bad calls across the public API (outside the kernel and the presentation layer,
which have their own tests): wrong types, NaN, infinities, booleans for numbers, strings for
booleans, values out of range and unknown names. Each row is ``(call, exception, parameter)``:
the call must raise that exception, and its message must name the parameter. Generators (a
thread's step such as ``aio_poll``) check their arguments on their first step, so their rows
take that step with ``first(...)``.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import pytest

from labsupport import catalogue, exercises, stats, stepper, validate
from labsupport.analysis import lockdep, tsa
from labsupport.annotations import (
    GuardedAttr,
    declare_capability,
    declared_capability,
    guarded_by,
    no_tsa,
    requires,
    set_tsa_mode,
    tsa_report,
    tsa_violations,
)
from labsupport.coroutine import (
    CoMutex,
    CoQueue,
    Coroutine,
    aio_co_enter,
    aio_co_schedule,
    aio_co_wake,
    current_coroutine,
    qemu_coroutine_enter,
)
from labsupport.kernel import MAX_THREADS, Simulation, compute
from labsupport.loop import (
    QEMUBH,
    AioContext,
    EventNotifier,
    QEMUTimer,
    aio_poll,
    aio_wait_kick,
    aio_wait_while,
)
from labsupport.qemu import dataplane, eras, graphlock, iothread, multiqueue, vcpu
from labsupport.qemu.block import BlockDriverState, Disk, VirtioBlk
from labsupport.qemu.bql import BQL, ProfiledLock, RetakeAt
from labsupport.qemu.workload import ERAS, Workload
from labsupport.shared import Shared
from labsupport.sync import (
    QemuCond,
    QemuEvent,
    QemuMutex,
    QemuRecMutex,
    QemuSemaphore,
    RFifoLock,
    RWLock,
)
from labsupport.widgets import int_slider, text_bar

NAN, INF = math.nan, math.inf


def sim() -> Simulation:
    return Simulation()


def ctx() -> AioContext:
    return AioContext(sim(), "ctx")


def first(gen: Any) -> Any:
    """Take a generator's first step: where a thread's step checks its arguments."""
    return next(iter(gen))


def body():
    yield compute(1)


def ch(n: int, module: str) -> Any:
    """A chapter's module, imported when a row runs (a chapter imports lazily)."""
    return importlib.import_module(f"labsupport.chapters.ch{n:02d}.{module}")


VM = multiqueue.VM
metrics = importlib.import_module("labsupport.analysis.metrics")  # the package re-exports
# a function of the same name

# (call, exception, the parameter the message must name)
CASES = [
    # -- validate's own helpers ------------------------------------------------------------
    (lambda: validate.label("name", ""), ValueError, "name"),
    (lambda: validate.labels("cycle", 3), TypeError, "cycle"),
    (lambda: validate.labels("cycle", ["BQL", ""]), ValueError, "cycle"),
    (lambda: validate.labels("era", ["x"], ["kvm"]), ValueError, "era"),
    (lambda: validate.numbers("values", 4), TypeError, "values"),
    (lambda: validate.numbers("values", "123"), TypeError, "values"),
    (lambda: validate.numbers("values", [1, NAN]), ValueError, "values[1]"),
    (lambda: validate.items("values", 4), TypeError, "values"),
    (lambda: validate.instance("sim", "x", Simulation), TypeError, "sim"),
    (lambda: validate.function("cb", 3), TypeError, "cb"),
    # -- stats -----------------------------------------------------------------------------
    (lambda: stats.percentile([1, 2, 3], p=150), ValueError, "p"),
    (lambda: stats.percentile([1, 2, 3], p=0), ValueError, "p"),
    (lambda: stats.percentile([1, 2, 3], p=NAN), ValueError, "p"),
    (lambda: stats.percentile([1, 2, 3], p=True), ValueError, "p"),
    (lambda: stats.percentile([1, 2, 3], p="99"), ValueError, "p"),
    (lambda: stats.percentile(4, p=50), TypeError, "values"),
    (lambda: stats.percentile([1, "2"], p=50), ValueError, "values[1]"),
    (lambda: stats.percentile([1, INF], p=50), ValueError, "values[1]"),
    # -- sync ------------------------------------------------------------------------------
    (lambda: QemuEvent(sim(), "e", is_set="no"), ValueError, "is_set"),
    (lambda: QemuEvent(sim(), "e", is_set=1), ValueError, "is_set"),
    (lambda: QemuMutex("x", sim()), TypeError, "sim"),
    (lambda: QemuMutex(None, "m"), TypeError, "sim"),
    (lambda: QemuMutex(sim(), ""), ValueError, "name"),
    (lambda: QemuMutex(sim(), 3), ValueError, "name"),
    (lambda: QemuMutex(sim(), "m", lock_class=""), ValueError, "lock_class"),
    (lambda: QemuRecMutex(sim(), None), ValueError, "name"),
    (lambda: RFifoLock(sim(), "r", on_contention=3), TypeError, "on_contention"),
    (lambda: QemuCond(sim(), ""), ValueError, "name"),
    (lambda: QemuCond(sim(), "c").wait("m"), TypeError, "mutex"),
    (lambda: QemuSemaphore(sim(), "s", count=-1), ValueError, "count"),
    (lambda: QemuSemaphore(sim(), "s", count=1.5), ValueError, "count"),
    (lambda: QemuSemaphore(sim(), "s", count=True), ValueError, "count"),
    (lambda: QemuSemaphore("s", sim()), TypeError, "sim"),
    (lambda: RWLock(sim(), "   "), ValueError, "name"),
    # -- shared ----------------------------------------------------------------------------
    (lambda: Shared(sim(), ""), ValueError, "name"),
    (lambda: Shared("x", "y"), TypeError, "sim"),
    (lambda: Shared(sim(), "x", atomic="yes"), ValueError, "atomic"),
    (lambda: Shared(sim(), "x").qatomic_add(NAN), ValueError, "n"),
    (lambda: Shared(sim(), "x").increment("1"), ValueError, "n"),
    (lambda: Shared(sim(), "x").increment(1, expand="no"), ValueError, "expand"),
    # -- annotations -----------------------------------------------------------------------
    (lambda: requires(None), TypeError, "lock"),
    (lambda: requires(3), TypeError, "lock"),
    (lambda: no_tsa(3), TypeError, "fn"),
    (lambda: declare_capability("sim", "graph_lock", object()), TypeError, "sim"),
    (lambda: declare_capability(sim(), "", object()), ValueError, "name"),
    (lambda: declare_capability(sim(), "a.b", object()), ValueError, "name"),
    (lambda: declare_capability(sim(), "x", None), ValueError, "lock"),
    (lambda: declared_capability(sim(), 3), ValueError, "name"),
    (lambda: GuardedAttr(""), ValueError, "lock"),
    (lambda: GuardedAttr("not a name"), ValueError, "lock"),
    (lambda: guarded_by("m")(Shared(sim(), "x")), TypeError, "lock"),
    (lambda: set_tsa_mode("record", sim()), TypeError, "sim"),
    (lambda: tsa_violations("a run"), TypeError, "where"),
    (lambda: tsa_report(None), TypeError, "where"),
    # -- loop ------------------------------------------------------------------------------
    (lambda: EventNotifier("sim", "n"), TypeError, "sim"),
    (lambda: EventNotifier(sim(), ""), ValueError, "name"),
    (lambda: AioContext(sim(), ""), ValueError, "name"),
    (lambda: AioContext(sim(), "c", notify_me_handshake=0), ValueError, "notify_me_handshake"),
    (lambda: AioContext(sim(), "c", home="main"), TypeError, "home"),
    (lambda: AioContext(sim(), "c", order=("bh", "fd")), ValueError, "order"),
    (lambda: AioContext(sim(), "c", order=3), ValueError, "order"),
    (lambda: QEMUBH("ctx", lambda: None, "bh"), TypeError, "ctx"),
    (lambda: ctx().bh_new(3), TypeError, "cb"),
    (lambda: ctx().bh_new(lambda: None, ""), ValueError, "name"),
    (lambda: QEMUTimer(ctx(), None, "t"), TypeError, "cb"),
    (lambda: ctx().timer_new(lambda: None).arm(-1), ValueError, "when_us"),
    (lambda: ctx().timer_new(lambda: None).mod(NAN), ValueError, "when_us"),
    (lambda: ctx().set_event_notifier("n", lambda: None), TypeError, "notifier"),
    (lambda: ctx().set_event_notifier(EventNotifier(sim(), "n"), 3), TypeError, "io_read"),
    (lambda: first(aio_poll("ctx", True)), TypeError, "ctx"),
    (lambda: first(aio_poll(ctx(), "yes")), ValueError, "blocking"),
    (lambda: first(aio_wait_while(ctx(), True)), TypeError, "cond"),
    (lambda: first(aio_wait_while(ctx(), lambda: False, "yes")), ValueError, "unlocked"),
    (lambda: first(aio_wait_while(ctx(), lambda: False, poll_ctx="main")), TypeError, "poll_ctx"),
    (lambda: aio_wait_kick(None), TypeError, "argument"),
    # -- coroutine -------------------------------------------------------------------------
    (lambda: Coroutine("sim", body), TypeError, "sim"),
    (lambda: Coroutine(sim(), 3), TypeError, "fn"),
    (lambda: Coroutine(sim(), body, name=3), TypeError, "name"),
    (lambda: current_coroutine(None), TypeError, "sim"),
    (lambda: first(qemu_coroutine_enter("co")), TypeError, "co"),
    (lambda: aio_co_schedule("ctx", Coroutine(sim(), body)), TypeError, "ctx"),
    (lambda: aio_co_schedule(ctx(), "co"), TypeError, "co"),
    (lambda: first(aio_co_enter(ctx(), None)), TypeError, "co"),
    (lambda: first(aio_co_wake(None)), TypeError, "co"),
    (lambda: CoMutex(sim(), ""), ValueError, "name"),
    (lambda: CoQueue("sim", "q"), TypeError, "sim"),
    (lambda: first(CoQueue(sim(), "q").wait(QemuMutex(sim(), "m"))), TypeError, "mutex"),
    # -- qemu: workload, eras --------------------------------------------------------------
    (lambda: Workload(vcpus=0), ValueError, "vcpus"),
    (lambda: Workload(vcpus=2.5), ValueError, "vcpus"),
    (lambda: Workload(seed=True), ValueError, "seed"),
    (lambda: Workload(slow_syscall_prob=NAN), ValueError, "slow_syscall_prob"),
    (lambda: Workload(guest_us=INF), ValueError, "guest_us"),
    (lambda: Workload(monitor_takes_context_lock="no"), ValueError, "monitor_takes_context_lock"),
    (lambda: Workload().replace(vcpu=2), ValueError, "vcpu"),
    (lambda: eras.run_era(Workload(), "kvm-2010"), ValueError, "era"),
    (lambda: eras.run_era(Workload(), ["kvm"]), ValueError, "era"),
    (lambda: eras.run_era("w", "kvm"), TypeError, "w"),
    (lambda: eras.run_era(Workload(), "kvm", trace="yes"), ValueError, "trace"),
    (lambda: eras.run_era(Workload(), "dataplane", dataplane="raw"), TypeError, "dataplane"),
    (lambda: eras.era_program(Workload(), "9.0"), ValueError, "era"),
    # -- qemu: multiqueue ------------------------------------------------------------------
    (lambda: multiqueue.sweep(VM(), "iodepth", values=4), TypeError, "values"),
    (lambda: multiqueue.sweep(VM(), "iodepth", values="16"), TypeError, "values"),
    (lambda: multiqueue.sweep(VM(), "iodepth", values=[]), ValueError, "values"),
    (lambda: multiqueue.sweep(VM(), "costs", [1]), ValueError, "iothreads"),
    (lambda: multiqueue.sweep("vm", "iodepth", [1]), TypeError, "vm"),
    (lambda: multiqueue.sweep(VM(), "iodepth", [1], seed=-0.5), ValueError, "seed"),
    (lambda: multiqueue.measure(VM(), seed="0"), ValueError, "seed"),
    (lambda: multiqueue.measure(VM(), locks={"RWLock": object}), ValueError, "locks"),
    (lambda: multiqueue.measure(VM(), locks=["CoMutex"]), TypeError, "locks"),
    (lambda: VM(vcpus=64, iothreads=10), ValueError, "iodepth) + iothreads"),
    (lambda: VM(vcpus=32, iothreads=30, monitor_rate_hz=10), ValueError, "iothreads"),
    (lambda: VM(iothreads=0), ValueError, "iothreads"),
    (lambda: VM(reqs_lock="RWLock"), ValueError, "reqs_lock"),
    (lambda: VM(monitor_rate_hz=NAN), ValueError, "monitor_rate_hz"),
    (lambda: VM(duration_us=-1), ValueError, "duration_us"),
    (lambda: VM(costs={"handle_us": 1}), ValueError, "costs"),
    (lambda: multiqueue.MQCosts(handle_us=-1), ValueError, "handle_us"),
    (lambda: multiqueue.iothread_vq_mapping(None, "iothread0", 2), TypeError, "iothreads"),
    (lambda: multiqueue.iothread_vq_mapping(None, ["iothread0"], 0), ValueError, "num_queues"),
    (lambda: multiqueue.NVMeDisk(sim(), 0, 8), ValueError, "service_us"),
    (lambda: multiqueue.NVMeDisk(sim(), 10, 0), ValueError, "parallelism"),
    (lambda: multiqueue.ReqsCoMutex(sim(), "l", None), TypeError, "costs"),
    (lambda: multiqueue.format_sweep("iodepht", []), ValueError, "name"),
    (lambda: multiqueue.format_sweep("iodepth", 3), TypeError, "results"),
    # -- qemu: bql, block, iothread, vcpu, dataplane, graphlock ----------------------------
    (lambda: BQL("sim"), TypeError, "sim"),
    (lambda: ProfiledLock("BQL"), TypeError, "mutex"),
    (lambda: first(BQL(sim()).lock(3)), ValueError, "site"),
    (lambda: RetakeAt(QemuMutex(sim(), "m"), "site"), TypeError, "lock"),
    (lambda: RetakeAt(BQL(sim()), ""), ValueError, "site"),
    (lambda: Disk(sim(), -1, 4), ValueError, "service_us"),
    (lambda: Disk(sim(), 10, 0), ValueError, "queue_depth"),
    (lambda: VirtioBlk(sim(), {}, Disk(sim(), 10, 1)), TypeError, "w"),
    (lambda: VirtioBlk(sim(), Workload(), "disk"), TypeError, "disk"),
    (lambda: BlockDriverState(sim(), "bs", "ctx"), TypeError, "ctx"),
    (lambda: iothread.IOThread(sim(), "io", lock_kind="mutex"), ValueError, "lock_kind"),
    (lambda: iothread.IOThread(sim(), ""), ValueError, "name"),
    (lambda: iothread.IOThread(sim(), "io", loop_holds_lock=1), ValueError, "loop_holds_lock"),
    (lambda: iothread.aio_context_new_lock("ctx"), TypeError, "ctx"),
    (lambda: iothread.aio_context_new_lock(ctx(), "mutex"), ValueError, "AioContext lock"),
    (lambda: iothread.aio_context_acquire(None), TypeError, "ctx"),
    (lambda: iothread.aio_context_release("ctx"), TypeError, "ctx"),
    (lambda: iothread.iothread_get_aio_context("io"), TypeError, "iothread"),
    (lambda: iothread.qemu_get_aio_context(None), TypeError, "sim"),
    (lambda: first(iothread.info_block(BQL(sim()), 3)), TypeError, "contexts"),
    (lambda: first(iothread.info_block(BQL(sim()), [], cost_us=-1)), ValueError, "cost_us"),
    (lambda: vcpu.CPUState(sim(), -1, BQL(sim())), ValueError, "index"),
    (lambda: vcpu.CPUState(sim(), 0, "bql"), TypeError, "bql"),
    (lambda: first(vcpu.qemu_cpu_kick(0)), TypeError, "cpu"),
    (lambda: first(vcpu.run_on_cpu(vcpu.CPUState(sim(), 0, BQL(sim())), 3)), TypeError, "fn"),
    (lambda: first(vcpu.vcpu_thread_fn("cpu0", 10, 100)), TypeError, "cpu"),
    (lambda: dataplane.Dataplane(image_format=""), ValueError, "image_format"),
    (lambda: dataplane.Dataplane(throttling="off"), ValueError, "throttling"),
    (lambda: dataplane.HandlerGuard(sim(), ""), ValueError, "handler"),
    (lambda: dataplane.r2_program(fixed="yes"), ValueError, "fixed"),
    (lambda: dataplane.r2_program(requests=0), ValueError, "requests"),
    (lambda: graphlock.BdrvGraphLock(sim(), "main", BQL(sim())), TypeError, "main_ctx"),
    (lambda: graphlock.BdrvGraphLock(sim(), ctx(), BQL(sim()), d6_bug=1), ValueError, "d6_bug"),
    (lambda: graphlock.get_graph_lock("sim"), TypeError, "sim"),
    (lambda: first(graphlock.bdrv_drained_end("bs")), TypeError, "bs"),
    # -- analysis --------------------------------------------------------------------------
    (lambda: lockdep.witness_deadlock(lambda s: None, cycle=3), TypeError, "cycle"),
    (lambda: lockdep.witness_deadlock(lambda s: None, cycle=["BQL", ""]), ValueError, "cycle"),
    (lambda: lockdep.witness_deadlock(lambda s: None, seeds=5), TypeError, "seeds"),
    (lambda: lockdep.witness_deadlock(lambda s: None, seeds=[-1]), ValueError, "seeds[0]"),
    (lambda: lockdep.witness_deadlock("program"), TypeError, "program"),
    (lambda: lockdep.LockOrder().learn("run"), TypeError, "x"),
    (lambda: metrics.metrics(None), TypeError, "x"),
    (lambda: metrics.intervals(3), TypeError, "x"),
    (lambda: metrics.MarkStats("m", 0, 0.0).p(101), ValueError, "q"),
    (lambda: tsa.check_function(3), TypeError, "fn"),
    # -- widgets ---------------------------------------------------------------------------
    (lambda: int_slider(500, 0, 99, "seed"), ValueError, "seed"),
    (lambda: int_slider(-1, 0, 99, "reads", name="reader_rate"), ValueError, "reader_rate"),
    (lambda: int_slider(5, 0, 99, "reads", step=0), ValueError, "step"),
    (lambda: text_bar(NAN), ValueError, "fraction"),
    (lambda: text_bar(0.5, width=0), ValueError, "width"),
    # -- exercises, catalogue --------------------------------------------------------------
    (lambda: exercises.reset(None), TypeError, "path"),
    (lambda: exercises.reset(""), ValueError, "path"),
    (lambda: exercises.reset("x.ipynb", pristine_dir=3), TypeError, "pristine_dir"),
    (lambda: exercises.backup(3), TypeError, "path"),
    (lambda: exercises.committed_copy(None), TypeError, "path"),
    (lambda: exercises.check(2.3, 1), TypeError, "qid"),
    (lambda: exercises.check("9.9", 1), ValueError, "qid"),
    (lambda: exercises.check("0.1", 1, quiet="yes"), ValueError, "quiet"),
    (lambda: exercises.hint(None), TypeError, "qid"),
    (lambda: exercises.load_chapter(True), ValueError, "number"),
    (lambda: exercises.load_chapter("1"), ValueError, "number"),
    (lambda: exercises.register("9.1", lambda a: (True, ""), ""), ValueError, "hint"),
    (lambda: exercises.attempt(0, 3), TypeError, "call"),
    (lambda: exercises.attempt(-0.5, lambda: None), ValueError, "seed"),
    (lambda: exercises.ended_badly(0, "deadlock"), TypeError, "r"),
    (lambda: catalogue.Scenario("X", 3, "crash", "w", program=lambda f: None), ValueError, "kind"),
    (lambda: catalogue.Scenario("", 3, "race", "w", program=lambda f: None), ValueError, "id"),
    (
        lambda: catalogue.Scenario("X", 12, "race", "w", program=lambda f: None),
        ValueError,
        "chapter",
    ),
    (lambda: catalogue.Scenario("X", 3, "race", "w", program=3), TypeError, "program"),
    (lambda: catalogue.Scenario("X", 3, "race", "w", lambda f: None, cpus=0), ValueError, "cpus"),
    (lambda: catalogue.Scenario("X", 3, "race", "w", lambda f: None, trace=1), ValueError, "trace"),
    (lambda: catalogue.hunt([], seeds=0), ValueError, "seeds"),
    (lambda: catalogue.hunt(["D1"], seeds=1), TypeError, "scenarios"),
    (lambda: catalogue.outcome_table([], seeds=1), TypeError, "scenarios"),
    (lambda: catalogue.outcome_table({}, seeds=2.5), ValueError, "seeds"),
    # -- chapters: scenarios ---------------------------------------------------------------
    (lambda: ch(0, "scenarios").counter_experiment(seed=-1), ValueError, "seed"),
    (lambda: ch(0, "scenarios").counter_experiment(threads=MAX_THREADS + 1), ValueError, "threads"),
    (lambda: ch(0, "scenarios").first_losing_seed(seeds=5), TypeError, "seeds"),
    (lambda: ch(0, "scenarios").abba_program(work_us=NAN), ValueError, "work_us"),
    (lambda: ch(1, "checks").bh_pass_program(("bh", "fd", "later")), ValueError, "order"),
    (lambda: ch(4, "scenarios").measure_vm(Workload()), TypeError, "p"),
    (lambda: ch(4, "scenarios").IOThreadVM(vcpus=33), ValueError, "vcpus"),
    (lambda: ch(4, "scenarios").run_d4(completion="bql"), TypeError, "completion"),
    (lambda: ch(5, "scenarios").run_scenario("D9", False), ValueError, "name"),
    (lambda: ch(5, "scenarios").run_scenario("D1", "no"), ValueError, "fixed"),
    (lambda: ch(5, "scenarios").outcome_table(2, names=("D1", "D9")), ValueError, "names"),
    (lambda: ch(6, "scenarios").GraphConfig(iothreads=9), ValueError, "iothreads"),
    (lambda: ch(6, "scenarios").GraphConfig(drain="after"), ValueError, "drain"),
    (lambda: ch(6, "scenarios").GraphConfig(rate_per_ms=NAN), ValueError, "rate_per_ms"),
    (lambda: ch(6, "scenarios").run_graph("config"), TypeError, "cfg"),
    (lambda: ch(6, "scenarios").run_scenario("D9", True), ValueError, "name"),
    (lambda: ch(6, "scenarios").outcome_table(1, names=3), TypeError, "names"),
    (lambda: ch(6, "scenarios").run_blind_spot(variant=["x"]), ValueError, "variant"),
    (lambda: ch(7, "scenarios").run_scenario("R9", False), ValueError, "name"),
    (lambda: ch(7, "scenarios").first_buggy_seed("R4", limit=0), ValueError, "limit"),
    (lambda: ch(7, "scenarios").removal_program(stage="2020"), ValueError, "stage"),
    (lambda: ch(7, "checks").saturation_point(most=1), ValueError, "most"),
    (lambda: ch(8, "scenarios").measure_eras(eras="kvm"), TypeError, "eras"),
    (lambda: ch(8, "scenarios").hunt(seeds=0), ValueError, "seeds"),
    # -- chapters: widgets (a function called directly refuses; it does not clamp) ---------
    (lambda: ch(0, "widgets").counter_lab(seed=500), ValueError, "seed"),
    (lambda: ch(0, "widgets").counter_lab(threads=0), ValueError, "threads"),
    (lambda: ch(1, "widgets").lab(vcpus=20), ValueError, "vcpus"),
    (lambda: ch(1, "widgets").lab(slice_us=10), ValueError, "slice_us"),
    (lambda: ch(1, "widgets").view(vcpus=0), ValueError, "vcpus"),
    (lambda: ch(2, "widgets").lab(host_cpus=17), ValueError, "host_cpus"),
    (lambda: ch(2, "widgets").view(era="kvm-2010"), ValueError, "era"),
    (lambda: ch(3, "widgets").lab(io_depth=33), ValueError, "io_depth"),
    (lambda: ch(3, "widgets").lab(guest_us=7), ValueError, "guest_us"),
    (lambda: ch(4, "widgets").lab(monitor_per_s=5000), ValueError, "monitor_per_s"),
    (
        lambda: ch(4, "widgets").view(slow_syscall_permille=1001),
        ValueError,
        "slow_syscall_permille",
    ),
    (lambda: ch(5, "widgets").lab(recorded=""), ValueError, "recorded"),
    (lambda: stepper.Stepper("D1"), TypeError, "level"),
    (lambda: stepper.Stepper(ch(5, "widgets").scheduler_level(), width=3), ValueError, "width"),
    (lambda: stepper.Stepper(ch(5, "widgets").scheduler_level()).step(None), ValueError, "char"),
    (lambda: stepper.lab(ch(0, "widgets").scheduler_level(), recorded=""), ValueError, "recorded"),
    (lambda: ch(5, "scenarios").SCENARIOS["D1"].level("", seed=0), ValueError, "goal"),
    (lambda: ch(5, "scenarios").SCENARIOS["D1"].level("g", seed=-1), ValueError, "seed"),
    (lambda: ch(6, "widgets").lab(reader_rate=1000), ValueError, "reader_rate"),
    (lambda: ch(6, "widgets").lab(iothreads=5), ValueError, "iothreads"),
    (lambda: ch(6, "widgets").lab_config(40, 2, "yes", False, False), ValueError, "drain_first"),
    (lambda: ch(7, "widgets").lab(iodepth=256), ValueError, "iodepth"),
    (lambda: ch(7, "widgets").lab(mapping="random"), ValueError, "mapping"),
    (lambda: ch(7, "widgets").lab(reqs_lock="RWLock"), ValueError, "reqs_lock"),
    (lambda: ch(7, "widgets").mapping_for("round-robin", 0, 8), ValueError, "iothreads"),
    (lambda: ch(7, "widgets").draw("result"), TypeError, "r"),
    (lambda: ch(8, "widgets").lab(slow_per_10000=300), ValueError, "slow_per_10000"),
    (lambda: ch(8, "widgets").view(slow_per_10000=-1), ValueError, "slow_per_10000"),
]


def _id(case: tuple) -> str:
    import inspect

    src = inspect.getsource(case[0]).strip()
    start = src.index("lambda:") + len("lambda:")
    return src[start:].split("), ", 1)[0].strip()[:70] + ")"


@pytest.mark.parametrize("call, error, parameter", CASES, ids=[_id(c) for c in CASES])
def test_bad_input_is_refused_naming_the_parameter(call, error, parameter):
    with pytest.raises(error) as e:
        call()
    assert parameter in str(e.value), f"{parameter!r} not named in: {e.value}"


def test_there_are_enough_cases():
    assert len(CASES) >= 120


# -- the known cases, beyond "it raises" ---------------------------------------------------


def test_a_string_cycle_is_one_lock_class_not_its_letters():
    from labsupport.chapters.ch00.scenarios import abba_program

    r = lockdep.witness_deadlock(abba_program(), cycle="A", seeds=range(50))
    assert r is not None and r.outcome == "deadlock"
    assert lockdep.witness_deadlock(abba_program(), cycle="AB", seeds=range(50)) is None


def test_messages_show_the_value_and_what_is_allowed():
    with pytest.raises(ValueError, match=r"p must be a percentage > 0 and <= 100; got 150"):
        stats.percentile([1], 150)
    with pytest.raises(ValueError, match=r"is_set must be True or False; got 'no'"):
        QemuEvent(sim(), "e", is_set="no")
    with pytest.raises(TypeError, match=r"sim must be a Simulation; got 'x'"):
        QemuMutex("x", sim())
    with pytest.raises(ValueError, match=r"seed must be a whole number from 0 to 99; got 500"):
        ch(0, "widgets").counter_lab(seed=500)
    with pytest.raises(ValueError, match=r"unknown era 'kvm-2010'; era must be one of one-thread"):
        eras.run_era(Workload(), "kvm-2010")
    with pytest.raises(TypeError, match=r"values must be a list of values to try; got 4"):
        multiqueue.sweep(VM(), "iodepth", values=4)


def test_valid_input_at_the_edges_is_accepted():
    assert stats.percentile([3, 1, 2], 100) == 3
    assert stats.percentile((x for x in [5, 6]), 50) == 5  # any iterable of numbers
    assert QemuEvent(sim(), "e", is_set=True).is_set is True
    assert validate.labels("cycle", "BQL") == ("BQL",)
    assert validate.labels("cycle", {"BQL", "AioContext"}) == tuple({"BQL", "AioContext"})
    assert int_slider(99, 0, 99, "seed").value == 99
    assert text_bar(1.5) == "[" + "#" * 20 + "]"  # a measurement above 100 % is a full bar
    assert ERAS and all(isinstance(e, str) for e in ERAS)


# -- limits agree across layers: what a config accepts, the kernel can run -----------------


def test_a_vm_the_kernel_could_not_run_is_refused_when_it_is_built():
    with pytest.raises(ValueError, match=f"must be at most {MAX_THREADS} threads"):
        VM(vcpus=40, iothreads=30)
    vm = VM(vcpus=32, iothreads=30, num_queues=30, duration_us=400, warmup_us=100)
    assert vm.threads == MAX_THREADS
    assert multiqueue.measure(vm).completed > 0  # the largest VM accepted runs
    # a vCPU with nothing in flight runs no thread, so many vCPUs at a low depth are fine
    assert VM(vcpus=64, iothreads=8, iodepth=8).threads == 16


def test_the_largest_workload_and_chapter_configs_fit_the_kernel():
    big = Workload(vcpus=32, io_depth=4, monitor_per_s=1000, timer_period_us=100, duration_us=200)
    for era in ERAS:
        assert len(eras.run_era(big, era, trace=False).result.sim.threads) <= MAX_THREADS
    s4 = ch(4, "scenarios")
    vm = s4.IOThreadVM(vcpus=32, monitor_per_s=1000, duration_us=200)
    assert len(s4.measure_vm(vm, trace=False).result.sim.threads) <= MAX_THREADS
    s6 = ch(6, "scenarios")
    cfg = s6.GraphConfig(iothreads=8, rate_per_ms=50, duration_us=300, sync_reader=True)
    assert len(s6.run_graph(cfg, trace=False).result.sim.threads) <= MAX_THREADS
