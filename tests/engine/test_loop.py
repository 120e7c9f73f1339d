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
