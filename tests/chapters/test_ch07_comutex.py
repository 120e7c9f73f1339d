"""The CoMutex as chapter 7 teaches it: QEMU's spin before a taker sleeps, and the
``co_queue_wakeup`` that makes a waiter of the unlocker's own context wait until the unlocker
yields. Each behaviour is asserted on a small program, with a variant that does the other thing
so the test can tell them apart."""

from __future__ import annotations

from collections import deque

import pytest

from labsupport import run
from labsupport.coroutine import (
    CoMutex,
    Coroutine,
    aio_co_schedule,
    qemu_coroutine_yield,
)
from labsupport.kernel import compute, sleep
from labsupport.present import trace_rows
from labsupport.qemu.iothread import IOThread

IT = 0.005  # the default time of one spin iteration (us)


def two_iothreads(hold_us: float, **mutex_kw):
    """co_a in iothread0 takes the mutex and holds it ``hold_us``; co_b in iothread1 asks for
    it at 1 us. Returns (program, what it saw)."""
    seen: dict = {}

    def program(sim):
        m = CoMutex(sim, "m", **mutex_kw)
        io0, io1 = (IOThread(sim, n, lock_kind=None, loop_holds_lock=False) for n in ("io0", "io1"))

        def a():
            yield from m.lock()
            yield compute(hold_us)
            yield from m.unlock()

        def b():
            yield sleep(1)
            yield from m.lock()
            seen["b_got_it_at"] = sim.now
            seen["queued"] = len(m.waiters)
            yield from m.unlock()

        ca, cb = Coroutine(sim, a, name="co_a"), Coroutine(sim, b, name="co_b")

        def start():
            yield aio_co_schedule(io0.ctx, ca)
            yield aio_co_schedule(io1.ctx, cb)

        sim.spawn("main", start)
        seen["m"] = m
        return seen

    return program, seen


def test_a_taker_spins_while_a_holder_of_another_context_finishes_and_never_queues():
    program, seen = two_iothreads(2.0)
    r = run(program, cpus=3)
    m = seen["m"]
    assert r.outcome == "completed"
    assert (m.spins, m.spin_acquired, m.handoffs) == (1, 1, 0)
    # it got the mutex within one spin step of its release at 2 us, spinning the whole time
    assert 2.0 <= seen["b_got_it_at"] <= 2.0 + CoMutex.SPIN_STEP * IT + 1e-9
    assert m.spin_us == pytest.approx(seen["b_got_it_at"] - 1.0, abs=CoMutex.SPIN_STEP * IT)


def test_the_spin_stops_after_1000_iterations_and_the_taker_queues():
    program, seen = two_iothreads(20.0)
    r = run(program, cpus=3)
    m = seen["m"]
    assert r.outcome == "completed"
    assert m.spin_iterations == 1000
    assert (m.spins, m.spin_acquired, m.handoffs, m.cross_context_wakes) == (1, 0, 1, 1)
    assert m.spin_us == pytest.approx(1000 * IT)
    assert seen["b_got_it_at"] >= 20.0  # handed over when co_a let go
    assert m.cross_handoff_us == m.handoff_us  # (nothing in this model makes a hand-over cost)
    # the hand-over to another context goes through that context's co_schedule_bh
    text = "\n".join(row["text"] for row in trace_rows(r))  # whatever the table's layout
    assert "bh co_schedule_bh" in text and "enter co_b" in text


def test_without_the_spin_a_taker_queues_at_once():
    program, seen = two_iothreads(2.0, spin_iterations=0)
    r = run(program, cpus=3)
    m = seen["m"]
    assert r.outcome == "completed"
    assert (m.spins, m.spin_us, m.handoffs) == (0, 0.0, 1)


def test_nobody_spins_once_someone_is_queued():
    seen: dict = {}

    def program(sim):
        m = CoMutex(sim, "m")
        ios = [IOThread(sim, f"io{i}", lock_kind=None, loop_holds_lock=False) for i in range(3)]

        def body(at, hold):
            def co():
                yield sleep(at)
                yield from m.lock()
                yield compute(hold)
                yield from m.unlock()

            return co

        cos = [
            Coroutine(sim, body(0, 20), name="holder"),
            Coroutine(sim, body(1, 1), name="first"),  # spins out at 6 us, then queues
            Coroutine(sim, body(8, 1), name="late"),  # finds a queue: no spin
        ]

        def start():
            for io, co in zip(ios, cos):
                yield aio_co_schedule(io.ctx, co)

        sim.spawn("main", start)
        seen["m"] = m

    r = run(program, cpus=4)
    assert r.outcome == "completed"
    m = seen["m"]
    assert m.spins == 1 and m.handoffs == 2


def same_context(opt_in: bool, **mutex_kw):
    """co_a and co_b in one IOThread. co_a takes the mutex and yields holding it (rescheduled
    2 us later); co_b asks meanwhile. co_a then unlocks, notes "a after unlock" and ends."""
    order: list[str] = []
    seen: dict = {}

    def program(sim):
        m = CoMutex(sim, "m", **mutex_kw)
        io = IOThread(sim, "io0", lock_kind=None, loop_holds_lock=False)

        def a():
            yield from m.lock()
            seen["ctx_while_held"] = m.ctx
            yield io.ctx.bh_schedule_oneshot(lambda: come_back(), "later")
            yield qemu_coroutine_yield()
            yield from m.unlock()
            order.append("a after unlock")
            yield compute(1)
            order.append("a ends")
            yield from CoMutex.run_wakeups(ca)

        def come_back():
            yield sleep(2)
            yield aio_co_schedule(io.ctx, ca)

        def b():
            yield from m.lock()
            order.append("b has it")
            yield from m.unlock()

        ca, cb = Coroutine(sim, a, name="co_a"), Coroutine(sim, b, name="co_b")
        if opt_in:
            ca.co_queue_wakeup = deque()

        def start():
            yield aio_co_schedule(io.ctx, ca)
            yield aio_co_schedule(io.ctx, cb)

        sim.spawn("main", start)
        seen["m"] = m

    return program, order, seen


def test_a_waiter_of_the_holders_own_context_does_not_spin_and_waits_for_the_unlocker_to_end():
    program, order, seen = same_context(opt_in=True)
    r = run(program, cpus=2)
    m = seen["m"]
    assert r.outcome == "completed"
    assert seen["ctx_while_held"].name == "io0"
    assert m.spins == 0  # the holder cannot run while its own thread spins
    assert (m.handoffs, m.queued_wakes, m.cross_context_wakes) == (1, 1, 0)
    assert order == ["a after unlock", "a ends", "b has it"]
    assert m.handoff_us == pytest.approx(1.0)  # the mutex was b's while a finished


@pytest.mark.parametrize("opt_in, kw", [(False, {}), (True, {"wakeup_queue": False})])
def test_without_the_wakeup_queue_the_waiter_is_entered_at_once(opt_in, kw):
    program, order, seen = same_context(opt_in=opt_in, **kw)
    r = run(program, cpus=2)
    assert r.outcome == "completed"
    assert order == ["b has it", "a after unlock", "a ends"]
    assert seen["m"].queued_wakes == 0 and seen["m"].handoff_us == 0


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"spin_iterations": -1}, "spin_iterations"),
        ({"spin_iterations": 1.5}, "spin_iterations"),
        ({"spin_iteration_us": -0.1}, "spin_iteration_us"),
        ({"wakeup_queue": "yes"}, "wakeup_queue"),
    ],
)
def test_bad_parameters_are_refused(kw, message):
    def program(sim):
        CoMutex(sim, "m", **kw)

    with pytest.raises(ValueError, match=message):
        run(program)
