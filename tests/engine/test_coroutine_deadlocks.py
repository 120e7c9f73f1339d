"""The wait-for graph sees coroutines: a coroutine parked on a CoMutex or a CoQueue (or asleep
in the graph lock's queue) is a node that waits for the lock's holder, a cycle through
coroutines and threads is a deadlock that names each of them, and a run that ends with
coroutines parked for good is not "completed", even when only daemon loops are left."""

import pytest

from labsupport import MisuseError, QemuMutex, compute, run, sleep
from labsupport.coroutine import (
    CoMutex,
    CoQueue,
    Coroutine,
    aio_co_enter,
    aio_co_schedule,
    aio_co_wake,
    qemu_coroutine_yield,
)
from labsupport.loop import AioContext, aio_poll, qemu_get_aio_context
from labsupport.qemu import BQL
from labsupport.qemu.graphlock import (
    BdrvGraphLock,
    bdrv_graph_co_rdlock,
    bdrv_graph_co_rdunlock,
    bdrv_graph_wrlock,
    bdrv_graph_wrunlock,
)
from labsupport.qemu.iothread import IOThread


def loop_forever(ctx):
    def body():
        while True:
            yield aio_poll(ctx, True)

    return body


def loops(sim, daemon: bool, n: int = 2) -> list[AioContext]:
    """``n`` event loops: IOThreads (daemons, the shape of the QEMU models) or plain loop
    threads ``loop0``... spawned as non-daemons."""
    if daemon:
        return [IOThread(sim, f"iothread{i}", None).ctx for i in range(n)]
    out = []
    for i in range(n):
        ctx = AioContext(sim, f"loop{i}")
        ctx.home = sim.spawn(f"loop{i}", loop_forever(ctx))
        out.append(ctx)
    return out


def start(sim, *placed):
    """A ``main`` thread that schedules each ``(ctx, coroutine)`` and ends."""

    def main():
        for ctx, co in placed:
            yield aio_co_schedule(ctx, co)

    sim.spawn("main", main)


# -- two coroutines, two CoMutexes -----------------------------------------------------------


def two_comutexes(daemon: bool):
    """co1 takes A then B, co2 takes B then A, each in its own event loop."""

    def program(sim):
        a, b = CoMutex(sim, "A"), CoMutex(sim, "B")
        ctx1, ctx2 = loops(sim, daemon)

        def body(first, second):
            def co():
                yield from first.lock()
                yield compute(10)
                yield from second.lock()
                yield from second.unlock()
                yield from first.unlock()

            return co

        co1 = Coroutine(sim, body(a, b), name="co1")
        co2 = Coroutine(sim, body(b, a), name="co2")
        start(sim, (ctx1, co1), (ctx2, co2))
        return co1, co2

    return program


@pytest.mark.parametrize("daemon", [True, False], ids=["iothreads", "non-daemon loops"])
def test_two_coroutines_each_holding_the_comutex_the_other_wants_deadlock(daemon):
    r = run(two_comutexes(daemon), cpus=2)
    assert r.outcome == "deadlock", r
    home = ("iothread0", "iothread1") if daemon else ("loop0", "loop1")
    co1, co2 = f"coroutine co1 in {home[0]}", f"coroutine co2 in {home[1]}"
    text = r.deadlock.text()
    assert r.deadlock.kind == "cycle" and sorted(r.deadlock.cycle) == [co1, co2]
    assert "2 coroutines wait for each other in a cycle" in text
    assert f"{co1} waits for co-mutex B, held by {co2}" in text
    assert f"{co2} waits for co-mutex A, held by {co1}" in text
    assert f"{co1} holds co-mutex A" in text and f"{co2} holds co-mutex B" in text


def test_the_cycle_is_found_as_the_second_coroutine_parks():
    r = run(two_comutexes(True), cpus=2)
    # both took their first lock at 0 and computed for 10 us; each then spun for its second
    # lock (QEMU's CoMutex spins while the holder runs in another context) before it slept
    lock = r.sim.model if isinstance(r.sim.model, CoMutex) else CoMutex(r.sim, "defaults")
    assert r.time == pytest.approx(10 + lock.spin_iterations * lock.spin_iteration_us)
    assert r.time > 10
    # stopped in the step in which the second one parked: its loop never went back to sleep
    states = sorted(t.state for t in r.sim.threads if t.name.startswith("iothread"))
    assert states == ["blocked", "ready"]


def test_the_same_locks_in_the_same_order_complete():
    def program(sim):
        a, b = CoMutex(sim, "A"), CoMutex(sim, "B")
        ctx1, ctx2 = loops(sim, True)

        def co():
            yield from a.lock()
            yield compute(10)
            yield from b.lock()
            yield from b.unlock()
            yield from a.unlock()

        start(sim, (ctx1, Coroutine(sim, co, name="co1")), (ctx2, Coroutine(sim, co, name="co2")))

    assert run(program, cpus=2).outcome == "completed"


# -- waits nobody will end ---------------------------------------------------------------------


def test_a_coqueue_wait_that_nobody_will_wake_is_stuck_even_with_only_daemons_left():
    def program(sim):
        (ctx,) = loops(sim, True, 1)
        q = CoQueue(sim, "completions")

        def waiter():
            yield compute(1)
            yield from q.wait()

        start(sim, (ctx, Coroutine(sim, waiter, name="req0")))

    r = run(program)
    assert r.outcome == "stuck", r
    text = r.deadlock.text()
    assert "1 coroutine still waiting and nothing left that could wake them" in text
    assert (
        "coroutine req0 in iothread0 waits for co-queue completions (nothing is left to wake it)"
    ) in text


def test_a_coqueue_that_is_restarted_completes():
    def program(sim):
        ctx, other = loops(sim, True)
        q = CoQueue(sim, "completions")
        done = []

        def waiter():
            yield from q.wait()
            done.append(1)

        def waker():
            yield sleep(20)
            yield from q.restart_all()

        start(sim, (ctx, Coroutine(sim, waiter, name="req0")))
        start_later = Coroutine(sim, waker, name="completion")
        sim.spawn("disk", lambda: (yield aio_co_schedule(other, start_later)))
        return done

    r = run(program)
    assert r.outcome == "completed" and r.sim.model == [1]


def test_a_comutex_left_locked_by_a_coroutine_that_ended_strands_its_waiter():
    def program(sim):
        ctx1, ctx2 = loops(sim, True)
        m = CoMutex(sim, "m")

        def forgetful():
            yield from m.lock()  # and never unlocks

        def waiter():
            yield sleep(5)
            yield from m.lock()

        start(sim, (ctx1, Coroutine(sim, forgetful, name="a")), (ctx2, Coroutine(sim, waiter)))

    r = run(program, cpus=2)
    assert r.outcome == "stuck"
    assert "coroutine waiter in iothread1 waits for co-mutex m, held by coroutine a" in str(r)


def test_a_thread_cannot_hold_a_comutex():
    # so a coroutine never waits for a CoMutex held by a thread: its holder is a coroutine
    def program(sim):
        m = CoMutex(sim, "m")
        sim.spawn("t", lambda: (yield from m.lock()))

    with pytest.raises(MisuseError, match="outside a coroutine"):
        run(program)


# -- coroutines and threads in one cycle -------------------------------------------------------


def test_a_thread_lock_held_across_a_park_and_a_comutex_make_one_cycle():
    """co_b (iothread1) takes QemuMutex L, then waits for CoMutex M, held by co_a; co_a (in
    iothread0) wants L: iothread0 blocks on L, which iothread1 owns only because co_b, parked,
    still holds it."""

    def program(sim):
        ctx_a, ctx_b = loops(sim, True)
        lock, m = QemuMutex(sim, "L"), CoMutex(sim, "M")

        def co_a():
            yield from m.lock()
            yield sleep(10)
            yield lock.lock()

        def co_b():
            yield lock.lock()
            yield sleep(5)
            yield from m.lock()

        start(sim, (ctx_a, Coroutine(sim, co_a, name="co_a")), (ctx_b, Coroutine(sim, co_b)))

    r = run(program, cpus=2)
    assert r.outcome == "deadlock", r
    text = r.deadlock.text()
    assert "2 threads and 2 coroutines wait for each other in a cycle" in text
    for line in (
        "coroutine co_b in iothread1 waits for co-mutex M, held by coroutine co_a in iothread0",
        "coroutine co_a in iothread0 waits for the thread it runs in, which is iothread0",
        "iothread0 waits for mutex L, held by iothread1",
        "iothread1 waits for the release of mutex L (taken in iothread1 by a coroutine that "
        "yielded holding it), held by coroutine co_b in iothread1",
        "coroutine co_b in iothread1 holds mutex L (across a yield)",
    ):
        assert line in text, text


def test_the_end_of_run_edges_never_stop_a_run_that_would_go_on():
    """D2's shape, but a timer wakes the coroutine: the lock held across the yield and the BH
    it waits for look like a cycle for a while, and the run still completes."""

    def program(sim):
        main_ctx, io_ctx = loops(sim, True)
        lock = QemuMutex(sim, "ctx-lock")

        def handler():
            yield lock.lock()
            yield lock.unlock()

        def bh():
            yield compute(1)

        def co_body():
            yield lock.lock()
            yield io_ctx.bh_schedule_oneshot(handler, "handler")  # iothread1 blocks on it
            yield io_ctx.bh_schedule_oneshot(bh, "drain")
            yield qemu_coroutine_yield()
            yield lock.unlock()

        co = Coroutine(sim, co_body, name="resize")

        def timer():
            yield sleep(50)
            yield from aio_co_wake(co)

        sim.spawn("main", lambda: (yield from aio_co_enter(main_ctx, co)))
        sim.spawn("timer", timer)
        return co

    r = run(program, cpus=2)
    assert r.outcome == "completed", r
    assert r.sim.model.state == "done"


# -- the graph lock ---------------------------------------------------------------------------


def graph_program(reader_waits_for_main: bool):
    """A reader in iothread0 takes the graph lock to read; the main loop then wants it for
    writing and polls until readers drain. The reader, still holding it, waits in a CoQueue
    that only the main loop restarts (after its change), or just finishes."""

    def program(sim):
        main_ctx = qemu_get_aio_context(sim)
        bql = BQL(sim)
        # the later unlock, which always kicks: in 2023 only a reader that saw has_writer
        # kicked, and this reader has no request whose completion would kick instead
        gl = BdrvGraphLock(sim, main_ctx, bql, always_kick=True)
        (io_ctx,) = loops(sim, True, 1)
        gl.add_context(io_ctx)
        after_change = CoQueue(sim, "after_change", holders=lambda: [main_ctx.home])

        def reader():
            yield from bdrv_graph_co_rdlock()
            yield compute(5)
            if reader_waits_for_main:
                yield from after_change.wait()
            yield from bdrv_graph_co_rdunlock()

        def main_loop():
            yield bql.lock("main")
            yield sleep(2)
            yield from bdrv_graph_wrlock()
            yield from after_change.restart_all()
            yield from bdrv_graph_wrunlock()
            yield bql.unlock()

        main_ctx.home = sim.spawn("main-loop", main_loop)
        co = Coroutine(sim, reader, name="reader")
        sim.spawn("vcpu0", lambda: (yield aio_co_schedule(io_ctx, co)))
        return gl

    return program


def test_the_writer_waiting_for_a_reader_that_waits_for_the_writer_is_a_cycle():
    r = run(graph_program(True), cpus=2)
    assert r.outcome == "deadlock", r
    text = r.deadlock.text()
    for line in (
        "main-loop waits for AioContext main (in AIO_WAIT_WHILE, for iothread0's work), "
        "to be woken by iothread0",
        "iothread0 waits for the work left in AioContext iothread0 (asleep in aio_poll), "
        "which is coroutine reader in iothread0",
        "coroutine reader in iothread0 waits for co-queue after_change, held by main-loop",
        "main-loop holds BQL",
    ):
        assert line in text, text
    assert run(graph_program(False), cpus=2).outcome == "completed"


def test_a_reader_asleep_in_the_graph_locks_queue_waits_for_the_writer():
    """The writer holds the graph lock and never lets go: a reader that comes meanwhile sleeps
    in the lock's CoQueue, and the report says whom it waits for."""

    def program(sim):
        main_ctx = qemu_get_aio_context(sim)
        bql = BQL(sim)
        BdrvGraphLock(sim, main_ctx, bql)
        (io_ctx,) = loops(sim, True, 1)

        def reader():
            yield from bdrv_graph_co_rdlock()
            yield from bdrv_graph_co_rdunlock()

        def main_loop():
            yield bql.lock("main")
            yield from bdrv_graph_wrlock()  # and keeps it

        main_ctx.home = sim.spawn("main-loop", main_loop)
        co = Coroutine(sim, reader, name="reader")

        def vcpu():
            yield sleep(5)
            yield aio_co_schedule(io_ctx, co)

        sim.spawn("vcpu0", vcpu)

    r = run(program, cpus=2)
    assert r.outcome == "stuck", r  # the writer finished: nobody is left to wake the reader
    assert (
        "coroutine reader in iothread0 waits for graph_lock to read (asleep in its CoQueue)"
    ) in r.deadlock.text()
