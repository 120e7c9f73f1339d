"""The event loop: BHs on the next pass, fd handlers with can_read, timers, notify, home thread."""

import pytest

from labsupport import MisuseError, Shared, compute, run, sleep
from labsupport.loop import MAIN_LOOP_2008_ORDER, AioContext, EventNotifier, aio_poll


def loop_thread(ctx, passes):
    def body():
        for _ in range(passes):
            yield aio_poll(ctx, True)

    return body


def test_a_bh_scheduled_from_another_thread_runs_in_the_loop_thread():
    ran_in = []

    def prog(sim):
        ctx = AioContext(sim, "main")
        bh = ctx.bh_new(lambda: ran_in.append(sim.current.name), "work")

        def other():
            yield sleep(10)
            yield bh.schedule()

        sim.spawn("main-loop", loop_thread(ctx, 1))
        sim.spawn("vcpu0", other)

    r = run(prog)
    assert r.ok and ran_in == ["main-loop"] and r.time == 10


def test_a_bh_scheduled_during_dispatch_runs_on_the_next_pass():
    log = []

    def prog(sim):
        ctx = AioContext(sim, "main")
        second = ctx.bh_new(lambda: log.append(("second", ctx.polls)), "second")

        def first_cb():
            log.append(("first", ctx.polls))
            yield second.schedule()

        first = ctx.bh_new(first_cb, "first")

        def body():
            yield first.schedule()
            yield aio_poll(ctx, False)
            yield aio_poll(ctx, False)

        sim.spawn("main-loop", body)

    assert run(prog).ok
    assert log == [("first", 1), ("second", 2)]


def test_fd_handlers_respect_can_read_and_run_in_order():
    log = []

    def prog(sim):
        ctx = AioContext(sim, "main", order=MAIN_LOOP_2008_ORDER)
        serial = EventNotifier(sim, "serial")
        disk = EventNotifier(sim, "disk")
        room = Shared(sim, "room", 0)
        ctx.set_event_notifier(
            serial, lambda: log.append("serial"), can_read=lambda: room.value > 0
        )
        ctx.set_event_notifier(disk, lambda: log.append("disk"))
        bh = ctx.bh_new(lambda: log.append("bh"), "bh")

        def body():
            yield serial.set()
            yield disk.set()
            yield bh.schedule()
            yield aio_poll(ctx, False)  # serial cannot read yet; BHs run last in 2008's order
            yield room.store(1)
            yield aio_poll(ctx, False)

        sim.spawn("main-loop", body)

    assert run(prog).ok
    assert log == ["disk", "bh", "serial"]


def test_timers_wake_a_blocking_poll():
    fired = []

    def prog(sim):
        ctx = AioContext(sim, "main")
        timer = ctx.timer_new(lambda: fired.append(sim.now), "tick")
        timer.arm(250)
        sim.spawn("main-loop", loop_thread(ctx, 1))

    r = run(prog)
    assert r.ok and fired == [250]


def test_only_the_home_thread_may_poll():
    def prog(sim):
        ctx = AioContext(sim, "iothread0")
        sim.spawn("iothread0", loop_thread(ctx, 1), daemon=True)

        def intruder():
            yield sleep(1)
            yield aio_poll(ctx, False)

        sim.spawn("main-loop", intruder)

    with pytest.raises(MisuseError, match="main-loop called aio_poll on iothread0, whose home"):
        run(prog)


def test_an_idle_daemon_loop_is_not_stuck_but_a_plain_thread_is():
    def prog(daemon):
        def p(sim):
            ctx = AioContext(sim, "main")
            sim.spawn("main-loop", loop_thread(ctx, 1), daemon=daemon)
            sim.spawn("guest", lambda: (yield compute(5)))

        return p

    assert run(prog(True)).outcome == "completed"
    r = run(prog(False))
    assert r.outcome == "stuck" and "AioContext main" in r.deadlock.text()


def lost_wakeup_program(handshake):
    def prog(sim):
        ctx = AioContext(sim, "main", notify_me_handshake=handshake)
        done = Shared(sim, "done", 0)
        bh = ctx.bh_new(lambda: done.store(1), "work")
        sim.spawn("main-loop", loop_thread(ctx, 1))

        def worker():
            yield bh.schedule()

        sim.spawn("worker", worker)
        return done

    return prog


def test_without_the_notify_me_handshake_a_wakeup_can_be_lost():
    outcomes = {run(lost_wakeup_program(False), policy="random", seed=s).outcome for s in range(40)}
    assert outcomes == {"completed", "stuck"}
    # the loop checked for work, the worker scheduled the BH, then the loop slept: lost
    r = run(lost_wakeup_program(False), schedule="01")
    assert r.outcome == "stuck"
    for s in range(40):
        r = run(lost_wakeup_program(True), policy="random", seed=s)
        assert r.ok and r.sim.model.value == 1


# -- QEMU's own rules: BH order, AIO_WAIT_WHILE's callers, aio_wait_kick ----------------------


def test_the_bhs_of_one_pass_run_newest_first_and_scheduled_coroutines_oldest_first():
    from labsupport.coroutine import Coroutine, aio_co_schedule

    log = []

    def prog(sim):
        ctx = AioContext(sim, "main")
        bhs = [ctx.bh_new(lambda i=i: log.append(f"bh{i}"), f"bh{i}") for i in range(3)]

        def co_body(i):
            def body():
                log.append(f"co{i}")
                return
                yield

            return body

        def main():
            for bh in bhs:
                yield bh.schedule()
            for i in range(3):
                yield aio_co_schedule(ctx, Coroutine(sim, co_body(i), name=f"co{i}"))
            yield aio_poll(ctx, False)

        sim.spawn("main-loop", main)

    assert run(prog).ok
    # QEMU pushes each scheduled BH on the head of its list and runs the list from the head;
    # co_schedule_bh, scheduled last, runs first and enters its coroutines in order
    assert log == ["co0", "co1", "co2", "bh2", "bh1", "bh0"]


def _wait_from(waiter_is_iothread, poll_ctx=False):
    from labsupport.loop import aio_wait_kick, aio_wait_while, qemu_get_aio_context

    def prog(sim):
        main = qemu_get_aio_context(sim)
        a = AioContext(sim, "iothread-a")
        b = AioContext(sim, "iothread-b")
        done = Shared(sim, "done", 0)
        returned = []

        def work():
            yield compute(2)
            yield done.store(1)
            yield aio_wait_kick()

        def waiter():
            yield b.bh_schedule_oneshot(work, "work")
            kw = {"unlocked": True, "poll_ctx": a} if poll_ctx else {}
            yield aio_wait_while(b, lambda: done.value == 0, **kw)
            returned.append(sim.current.name)

        def loop(ctx):
            def body():
                while True:
                    yield aio_poll(ctx, True)

            return body

        if waiter_is_iothread:  # iothread-a's loop runs the waiter as a BH
            a.home = sim.spawn("iothread-a", loop(a), daemon=True)
            job = a.bh_new(waiter, "job")
            sim.spawn("starter", lambda: (yield job.schedule()))
        else:
            main.home = sim.spawn("main-loop", waiter)
        b.home = sim.spawn("iothread-b", loop(b), daemon=True)
        return done, returned

    return prog


def test_aio_wait_while_from_the_main_loop_is_woken_by_the_kick():
    from labsupport import trace_table

    r = run(_wait_from(False), cpus=3)
    done, returned = r.sim.model
    assert r.ok and done.value == 1 and returned == ["main-loop"]
    assert "bh aio_wait_kick" in trace_table(r)


def test_aio_wait_while_between_two_iothreads_is_refused_as_qemu_asserts():
    with pytest.raises(MisuseError, match="AIO_WAIT_WHILE on iothread-b from iothread-a"):
        run(_wait_from(True), cpus=3)
    # what the assertion prevents: polling its own context, iothread-a never hears the kick,
    # which only ever goes to the main context
    r = run(_wait_from(True, poll_ctx=True), cpus=3)
    done, returned = r.sim.model
    assert done.value == 1 and returned == []  # the work is done; the waiter sleeps on


def test_aio_wait_kick_does_nothing_when_nobody_waits():
    from labsupport.loop import aio_wait, aio_wait_kick, qemu_get_aio_context

    seen = {}

    def prog(sim):
        main = qemu_get_aio_context(sim)

        def body():
            yield aio_wait_kick()
            seen["nobody"] = len(main.bh_queue)
            aio_wait(sim).num_waiters += 1  # as if a thread were inside AIO_WAIT_WHILE
            yield aio_wait_kick()
            seen["one"] = len(main.bh_queue)
            aio_wait(sim).num_waiters -= 1

        sim.spawn("vcpu0", body)

    assert run(prog).ok
    assert seen == {"nobody": 0, "one": 1}
