"""Coroutines, CoMutex, CoQueue, aio_co_schedule, AIO_WAIT_WHILE and the RFifoLock."""

import pytest

from labsupport import MisuseError, QemuRecMutex, Shared, compute, run, sleep
from labsupport.coroutine import (
    CoMutex,
    CoQueue,
    Coroutine,
    aio_co_enter,
    aio_co_schedule,
    qemu_coroutine_enter,
    qemu_coroutine_yield,
)
from labsupport.loop import (
    AioContext,
    aio_poll,
    aio_wait_kick,
    aio_wait_while,
    qemu_get_aio_context,
)
from labsupport.sync import RFifoLock


def loop_forever(ctx):
    def body():
        while True:
            yield aio_poll(ctx, True)

    return body


def test_a_coroutine_yields_and_resumes_where_it_stopped():
    log = []

    def prog(sim):
        def co_body():
            log.append(("first half", sim.current.name))
            yield qemu_coroutine_yield()
            log.append(("second half", sim.current.name))
            return 7

        co = Coroutine(sim, co_body)

        def t():
            yield qemu_coroutine_enter(co)
            log.append(("state", co.state))
            got = yield qemu_coroutine_enter(co)
            log.append(("returned", got, co.state))

        sim.spawn("t", t)

    assert run(prog).ok
    assert log == [
        ("first half", "t"),
        ("state", "yielded"),
        ("second half", "t"),
        ("returned", 7, "done"),
    ]


def test_aio_co_schedule_moves_a_coroutine_to_the_contexts_thread_and_twice_is_an_error():
    ran_in = []

    def prog(double):
        def p(sim):
            ctx = AioContext(sim, "iothread0")
            sim.spawn("iothread0", loop_forever(ctx), daemon=True)
            co = Coroutine(sim, lambda: (yield compute(1)) or ran_in.append(sim.current.name))

            def main():
                yield sleep(1)
                yield aio_co_schedule(ctx, co)
                if double:
                    yield aio_co_schedule(ctx, co)

            sim.spawn("main-loop", main)

        return p

    assert run(prog(False)).ok and ran_in == ["iothread0"]
    with pytest.raises(MisuseError, match="already scheduled"):
        run(prog(True))


def test_entering_a_running_coroutine_from_another_thread_is_an_error():
    def prog(sim):
        def body():
            yield compute(10)
            yield qemu_coroutine_yield()

        co = Coroutine(sim, body, name="req")
        sim.spawn("a", lambda: (yield qemu_coroutine_enter(co)))

        def b():
            yield sleep(5)
            yield qemu_coroutine_enter(co)

        sim.spawn("b", b)

    with pytest.raises(MisuseError, match="b entered coroutine req while it is still running in a"):
        run(prog, cpus=2)


def test_comutex_excludes_coroutines_and_waiters_yield_their_thread():
    def prog(sim):
        ctx = AioContext(sim, "iothread0")
        m = CoMutex(sim, "reqs_lock")
        x = Shared(sim, "x", 0)
        sim.spawn("iothread0", loop_forever(ctx), daemon=True)

        def request():
            yield from m.lock()
            v = yield x.load()
            yield qemu_coroutine_yield_after_io(ctx)
            yield x.store(v + 1)
            yield from m.unlock()

        def qemu_coroutine_yield_after_io(ctx):
            # wait for "I/O": a BH wakes this coroutine later
            return sleep(3)

        def main():
            for i in range(3):
                co = Coroutine(sim, request, name=f"req{i}")
                yield aio_co_schedule(ctx, co)

        sim.spawn("main-loop", main)
        return x

    for seed in range(20):
        r = run(prog, policy="random", seed=seed, cpus=2)
        assert r.ok and r.sim.model.value == 3


def test_coqueue_waits_and_restarts():
    order = []

    def prog(sim):
        ctx = AioContext(sim, "ctx")
        q = CoQueue(sim, "waiters")
        sim.spawn("loop", loop_forever(ctx), daemon=True)

        def waiter(i):
            def body():
                yield from q.wait()
                order.append(i)

            return body

        def main():
            for i in range(3):
                yield aio_co_schedule(ctx, Coroutine(sim, waiter(i), name=f"w{i}"))
            yield sleep(5)
            assert len(q) == 3
            co = Coroutine(sim, lambda: q.restart_all(), name="restarter")
            yield aio_co_schedule(ctx, co)

        sim.spawn("main", main)

    assert run(prog).ok and order == [0, 1, 2]


def d1_program(depth):
    """The main loop holds an IOThread's context lock ``depth`` times and waits for its work."""

    def program(sim):
        qemu_get_aio_context(sim)  # the main loop's context, which AIO_WAIT_WHILE polls
        io_ctx = AioContext(sim, "iothread0")
        lock = QemuRecMutex(sim, "iothread0.ctx", lock_class="AioContext")
        io_ctx.lock = lock  # the context's lock, which AIO_WAIT_WHILE releases once
        in_flight = Shared(sim, "in_flight", 1)

        def iothread():
            while True:
                yield lock.lock()
                yield aio_poll(io_ctx, True, drop=lock)
                yield lock.unlock()

        def complete():
            yield compute(5)
            yield in_flight.store(0)
            yield aio_wait_kick()

        bh = io_ctx.bh_new(complete, "complete-request")

        def main_loop():
            for _ in range(depth):
                yield lock.lock()
            yield bh.schedule()
            yield aio_wait_while(io_ctx, lambda: in_flight.value > 0)
            for _ in range(depth):
                yield lock.unlock()

        sim.spawn("iothread0", iothread, daemon=True)
        sim.spawn("main-loop", main_loop)

    return program


def test_d1_aio_wait_while_releases_a_recursive_lock_only_once():
    assert run(d1_program(1), cpus=2).ok
    r = run(d1_program(2), cpus=2)
    assert r.outcome == "deadlock"
    text = r.deadlock.text()
    assert (
        "main-loop waits for AioContext main (in AIO_WAIT_WHILE, for iothread0's work), "
        "to be woken by iothread0"
    ) in text
    assert "iothread0 waits for rec-mutex iothread0.ctx, held by main-loop" in text


def test_rfifolock_is_recursive_fifo_and_kicks_its_owner():
    kicks = []

    def prog(sim):
        lock = RFifoLock(sim, "ctx", on_contention=lambda t: kicks.append((t.name, sim.now)))

        def owner():
            yield lock.lock()
            yield lock.lock()
            yield sleep(10)
            yield lock.unlock()
            yield lock.unlock()

        def other(i):
            def body():
                yield sleep(i)
                yield lock.lock()
                yield lock.unlock()

            return body

        sim.spawn("iothread", owner)
        sim.spawn("main", other(1))
        sim.spawn("monitor", other(2))
        return lock

    r = run(prog)
    assert r.ok and kicks == [("main", 1), ("monitor", 2)]
    from labsupport import metrics

    assert metrics(r).locks["ctx"].contended == 2


def test_aio_co_enter_runs_at_once_in_the_home_thread():
    where = []

    def prog(sim):
        ctx = AioContext(sim, "main")

        def body():
            where.append(("co", sim.now))
            yield compute(1)

        def main():
            yield aio_poll(ctx, False)  # become the home thread
            yield aio_co_enter(ctx, Coroutine(sim, body))
            where.append(("after", sim.now))

        sim.spawn("main", main)

    assert run(prog).ok and where == [("co", 0), ("after", 1)]


def test_aio_co_enter_takes_no_context_lock_even_when_the_context_has_one():
    # QEMU's aio_co_enter took the target context's lock (2017-2023); the model's does not, so
    # a direct entry goes ahead while another thread holds the context's lock
    log = []

    def prog(sim):
        ctx = AioContext(sim, "io")
        ctx.lock = QemuRecMutex(sim, "io.ctx")

        def body():
            log.append(("entered", sim.current.name))
            yield compute(1)

        co = Coroutine(sim, body, name="co")

        def holder():
            yield ctx.lock.lock()
            yield sleep(10)
            yield ctx.lock.unlock()

        def home():
            yield sleep(1)  # the holder has the lock by now
            yield from aio_co_enter(ctx, co)
            log.append(("done", sim.now, ctx.lock.owner.name if ctx.lock.owner else None))

        sim.spawn("holder", holder)
        ctx.home = sim.spawn("home", home)

    assert run(prog).ok
    assert log == [("entered", "home"), ("done", 2, "holder")]
