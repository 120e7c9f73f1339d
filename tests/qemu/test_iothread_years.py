"""The IOThread's two lock-holding loops: 2014 (asleep in aio_poll with the context lock held, so
a waiter needs the RFifoLock's contention callback to kick it) and 2015 (the lock dropped around
the wait). Chapter 4 teaches both; chapter 8's "iothread" era runs the 2015 one."""

from __future__ import annotations

import pytest

from labsupport import Simulation, compute, run, sleep
from labsupport.analysis import intervals
from labsupport.qemu import BQL, IOThread, Workload, info_block, run_era
from labsupport.qemu.iothread import LOOP_YEARS


def _events(r, thread=None):
    """(time, thread name, kind, object name) of every event, in order."""
    sim = r.sim
    names = [t.name for t in sim.threads]
    return [
        (ev.time, names[ev.thread] if ev.thread >= 0 else None, ev.kind, sim.objects[ev.obj].name)
        for ev in sim.trace
        if thread is None or (ev.thread >= 0 and names[ev.thread] == thread)
    ]


def _monitor_program(
    loop_year, callback=True, request_at=None, notify_at=None, monitor_at=10, lock_kind="rfifo"
):
    """An idle IOThread; the monitor's info block (5 us) asks for its lock at ``monitor_at``."""

    def program(sim):
        bql = BQL(sim)
        io = IOThread(sim, "iothread0", lock_kind=lock_kind, loop_year=loop_year)
        if not callback:
            io.lock.mutex.on_contention = None
        took = []

        def monitor():
            yield sleep(monitor_at)
            took.append((yield info_block(bql, [io.ctx], cost_us=5)))

        sim.spawn("main-loop", monitor)
        if request_at is not None:

            def request():
                yield compute(3)

            bh = io.ctx.bh_new(request, "request")

            def guest():
                yield sleep(request_at)
                yield bh.schedule()

            sim.spawn("vcpu0", guest)
        if notify_at is not None:

            def other():
                yield sleep(notify_at)
                yield io.ctx.notify()

            sim.spawn("other", other)
        return {"io": io, "took": took}

    return program


def _held_while_asleep(r) -> float:
    """How long iothread0 held its context lock while it was asleep in aio_poll (us)."""
    ivs = [iv for iv in intervals(r) if iv.thread == "iothread0"]
    holds = [iv for iv in ivs if iv.what == "hold" and iv.obj == "iothread0.ctx"]
    sleeps = [iv for iv in ivs if iv.what == "blocked" and iv.obj == "iothread0"]
    return sum(max(0.0, min(h.end, s.end) - max(h.start, s.start)) for h in holds for s in sleeps)


def test_the_default_loop_is_2015_and_the_iothread_era_runs_it():
    sim = Simulation()
    assert IOThread(sim, "a").loop_year == 2015 and LOOP_YEARS == (2014, 2015)
    r = run_era(Workload(vcpus=2, io_depth=4, duration_us=2_000), "iothread")
    assert r.result.sim.model["iothread"].loop_year == 2015


def test_the_2014_loop_sleeps_in_aio_poll_holding_its_lock_and_the_2015_loop_does_not():
    def idle(year):
        def program(sim):
            io = IOThread(sim, "iothread0", loop_year=year)

            def request():
                yield compute(2)

            bh = io.ctx.bh_new(request, "request")

            def guest():  # requests at t=5 and t=60, asleep in between
                yield sleep(5)
                yield bh.schedule()
                yield sleep(55)
                yield bh.schedule()

            sim.spawn("vcpu0", guest)
            return io

        return run(program, cpus=2)

    old, new = idle(2014), idle(2015)
    assert old.ok and new.ok and old.time == new.time == 62
    assert old.sim.model.lock.mutex.owner is old.sim.model.thread  # still held at the end
    assert _held_while_asleep(old) == 5 + (60 - 7)  # every microsecond it slept
    assert new.sim.model.lock.mutex.owner is None
    assert _held_while_asleep(new) == 0


def test_2014_the_contention_callback_kicks_the_loop_and_the_fifo_lock_goes_to_the_monitor():
    r = run(_monitor_program(2014), cpus=4)
    assert r.ok and r.sim.model["took"] == [5]  # waited 0 us of simulated time
    ev = _events(r)
    kick = ev.index((10, "main-loop", "op", "contention callback"))
    after = ev[kick + 1 :]
    woke = after.index((10, "iothread0", "op", "aio_poll: no progress"))
    released = after.index((10, "iothread0", "release", "iothread0.ctx"))
    got = after.index((10, "main-loop", "acquire", "iothread0.ctx"))
    retake = after.index((15, "iothread0", "acquire", "iothread0.ctx"))
    assert woke < released < got < retake  # first come, first served: the monitor before it
    io = r.sim.model["io"]
    assert io.lock.mutex.contentions == 2  # the monitor's wait, then the loop's own retake
    assert io.lock.sites["monitor: info block"].wait_us == 0


def test_2014_without_the_callback_the_monitor_waits_forever_even_while_work_is_done():
    r = run(_monitor_program(2014, callback=False, request_at=50), cpus=4)
    assert r.outcome == "stuck" and r.sim.model["took"] == []
    ran = [e for e in _events(r, "iothread0") if e[2] == "op" and e[3] == "bh request"]
    assert ran and ran[0][0] == 50  # the loop made progress, and polled again, lock held
    io = r.sim.model["io"]
    assert io.lock.mutex.owner is io.thread and io.thread.blocked_on is io.ctx
    assert r.sim.threads[1].blocked_on is io.lock.mutex  # the monitor, in line for it


def test_2014_without_the_callback_only_a_poll_that_returns_empty_handed_lets_go():
    r = run(_monitor_program(2014, callback=False, request_at=50, notify_at=100), cpus=4)
    assert r.ok and r.sim.model["took"] == [100 - 10 + 5]
    assert r.sim.model["io"].lock.sites["monitor: info block"].wait_us == 90
    # with the callback, the same scene lets the monitor in at once
    assert run(_monitor_program(2014, request_at=50, notify_at=100), cpus=4).sim.model["took"] == [
        5
    ]


def test_a_recursive_mutex_has_no_callback_so_the_2014_loop_would_keep_it():
    r = run(_monitor_program(2014, lock_kind="rec"), cpus=4)
    assert r.outcome == "stuck" and r.sim.model["took"] == []


@pytest.mark.parametrize("callback", [True, False])
def test_2015_nobody_needs_kicking(callback):
    r = run(_monitor_program(2015, callback=callback, request_at=50), cpus=4)
    assert r.ok and r.sim.model["took"] == [5]
    io = r.sim.model["io"]
    assert io.lock.mutex.contentions == 0
    assert not [e for e in _events(r) if e[3] == "contention callback"]


def test_the_callback_runs_whenever_a_thread_waits_and_the_trace_shows_it_in_the_waiter():
    # 2015 loop, but the monitor comes while a 40 us handler holds the lock: the callback runs
    # (nothing sleeps, so it wakes nobody) and the monitor waits for the handler.
    def program(sim):
        bql = BQL(sim)
        io = IOThread(sim, "iothread0")

        def slow():
            yield compute(40)

        bh = io.ctx.bh_new(slow, "slow")

        def guest():
            yield bh.schedule()

        took = []

        def monitor():
            yield sleep(10)
            took.append((yield info_block(bql, [io.ctx], cost_us=5)))

        sim.spawn("vcpu0", guest)
        sim.spawn("main-loop", monitor)
        return took

    r = run(program, cpus=4)
    assert r.ok and r.sim.model == [40 - 10 + 5]
    mine = _events(r, "main-loop")
    i = mine.index((10, "main-loop", "op", "contention callback"))
    assert mine[i + 1] == (10, "main-loop", "block", "iothread0.ctx")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(loop_year=2013), "loop_year must be 2014 or 2015"),
        (dict(loop_year="2014"), "loop_year must be 2014 or 2015"),
        (dict(loop_year=2014, loop_holds_lock=False), "loop_year=2014"),
        (dict(loop_year=2014, lock_kind="noop"), "loop_year=2014"),
        (dict(loop_year=2014, lock_kind=None), "loop_year=2014"),
    ],
)
def test_a_loop_year_that_does_not_fit_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        IOThread(Simulation(), "io", **kwargs)
