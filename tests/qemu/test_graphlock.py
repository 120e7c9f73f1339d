"""The block-graph lock: per-context reader counts, the writer's protocol (its drain ends before
it returns), sleeping readers, the 2023 unlock that kicks only with has_writer set, the main
loop's placeholder, wrlock's context-lock release, and the API-class checks."""

from __future__ import annotations

from collections import deque

import pytest

from labsupport import run
from labsupport.annotations import TSAViolation, set_tsa_mode, tsa_violations
from labsupport.chapters.ch06.scenarios import (
    GraphConfig,
    blk_co_preadv,
    graph_program,
    run_graph,
)
from labsupport.coroutine import Coroutine, aio_co_schedule
from labsupport.kernel import MisuseError, Simulation, compute, sleep
from labsupport.qemu.graphlock import (
    IO_CODE,
    bdrv_graph_co_rdlock,
    bdrv_graph_co_rdunlock,
    bdrv_graph_rdlock_main_loop,
    bdrv_graph_rdunlock_main_loop,
    bdrv_graph_wrlock,
    bdrv_graph_wrunlock,
    get_graph_lock,
    qemu_in_main_thread,
)


def _world(extra, change_at_us: float = 50.0):
    """graph_program with no guest reads and no graph change, plus ``extra(sim, m)``. Its
    (empty) graph change is a main-loop timer at ``change_at_us``."""

    def program(sim):
        cfg = GraphConfig(requests=0, change_at_us=change_at_us)
        m = graph_program(cfg, change_body=lambda blk, new: iter(()))(sim)
        m.extra["wanted"] = ("done",)
        extra(sim, m)
        return m

    return program


def test_readers_count_per_context_and_the_writer_waits_for_them():
    seen = {}

    def extra(sim, m):
        m.gl.always_kick = True  # the later unlock: it kicks whatever has_writer says
        io_ctx = m.blks[0].ctx

        def reader():
            yield from bdrv_graph_co_rdlock()
            seen["counts"] = dict(get_graph_lock().reader_counts)
            seen["holds"] = get_graph_lock().tsa_holds(sim.current)
            yield sleep(50)  # a reader that holds the lock (blocking its thread: fine here)
            yield from bdrv_graph_co_rdunlock()

        def writer():
            yield from bdrv_graph_wrlock()
            seen["got write at"] = sim.now
            seen["writer holds"] = get_graph_lock().tsa_holds(sim.current)
            yield from bdrv_graph_wrunlock()
            m.extra["done"] = True

        def guest():
            yield aio_co_schedule(io_ctx, Coroutine(sim, reader, name="r"))
            yield sleep(10)
            yield m.main_ctx.bh_schedule_oneshot(writer, "writer")

        sim.spawn("guest", guest)

    r = run(_world(extra, change_at_us=1_000), cpus=3)
    assert r.ok
    assert seen["counts"] == {"iothread0": 1} and seen["holds"] == "shared"
    assert seen["got write at"] == 50 and seen["writer holds"] == "exclusive"
    gl = r.sim.model.gl
    assert gl.writer_waits == [40] and gl.has_writer == 0 and gl.reader_count() == 0


def test_a_reader_that_finds_a_writer_sleeps_and_is_woken_by_wrunlock():
    order = []

    def extra(sim, m):
        io_ctx = m.blks[0].ctx

        def reader():
            yield from bdrv_graph_co_rdlock()
            order.append(("reader in", sim.now))
            yield from bdrv_graph_co_rdunlock()
            m.extra["done"] = True

        def writer():
            yield from bdrv_graph_wrlock()
            order.append(("writer in", sim.now))
            yield compute(30)
            yield from bdrv_graph_wrunlock()

        def guest():
            yield m.main_ctx.bh_schedule_oneshot(writer, "writer")
            yield sleep(5)
            yield aio_co_schedule(io_ctx, Coroutine(sim, reader, name="r"))

        sim.spawn("guest", guest)

    r = run(_world(extra), cpus=3)
    assert r.ok and order == [("writer in", 0), ("reader in", 30)]
    assert any(h[2] == 1 for h in r.sim.model.gl.history)


def test_the_2023_unlock_kicks_only_with_has_writer_set_so_a_polling_writer_sleeps_on():
    # The writer polls with has_writer clear; the 2023 unlock does not kick then, so a reader
    # whose unlock is the last thing to happen leaves the writer asleep until the main loop
    # wakes for something else (here its timer at 300 us); the later code kicks every time.
    got = {}

    def world(always_kick):
        def extra(sim, m):
            m.gl.always_kick = always_kick
            io_ctx = m.blks[0].ctx

            def reader():
                yield from bdrv_graph_co_rdlock()
                yield sleep(50)
                yield from bdrv_graph_co_rdunlock()

            def writer():
                yield from bdrv_graph_wrlock()
                got[always_kick] = sim.now
                yield from bdrv_graph_wrunlock()
                m.extra["done"] = True

            def guest():
                yield aio_co_schedule(io_ctx, Coroutine(sim, reader, name="r"))
                yield sleep(10)
                yield m.main_ctx.bh_schedule_oneshot(writer, "writer")

            sim.spawn("guest", guest)

        return _world(extra, change_at_us=300)

    assert run(world(False), cpus=3).ok and run(world(True), cpus=3).ok
    assert got == {False: 300, True: 50}


def test_the_writers_drain_ends_before_it_returns_so_new_reads_wait_on_has_writer():
    seen = {}

    def extra(sim, m):
        blk = m.blks[0]
        m.arrivals = 1

        def writer():
            yield from bdrv_graph_wrlock()
            seen["drained while locked"] = blk.quiesce_counter
            yield compute(30)  # a write section long enough for a read to arrive
            seen["asleep at unlock"] = [co.name for co in m.gl.queue.waiters]
            yield from bdrv_graph_wrunlock()
            seen["drained after unlock"] = blk.quiesce_counter

        def read():
            yield from blk_co_preadv(blk, 0, 2.0, 2.0, 10.0, 2.0)
            m.extra["done"] = True

        def guest():
            yield m.main_ctx.bh_schedule_oneshot(writer, "writer")
            yield sleep(5)
            yield aio_co_schedule(blk.ctx, Coroutine(sim, read, name="req0"))

        sim.spawn("guest", guest)

    r = run(_world(extra, change_at_us=1_000), cpus=3)
    assert r.ok and r.sim.model.completed == 1
    assert seen == {
        "drained while locked": 0,
        "asleep at unlock": ["req0"],
        "drained after unlock": 0,
    }
    assert r.sim.model.blks[0].queued.waiters == deque()  # it never waited on the drain


def test_the_main_loop_placeholder_and_misuse():
    def extra(sim, m):
        def main_cb():
            yield from bdrv_graph_rdlock_main_loop()
            assert get_graph_lock().tsa_holds(sim.current) == "shared"
            yield from bdrv_graph_rdunlock_main_loop()
            assert get_graph_lock().tsa_holds(sim.current) is None
            m.extra["done"] = True

        def guest():
            yield m.main_ctx.bh_schedule_oneshot(main_cb, "cb")

        sim.spawn("guest", guest)

    r = run(_world(extra), cpus=3)
    assert r.ok and tsa_violations(r) == []

    def outside(sim, m):
        def vcpu():
            yield from bdrv_graph_co_rdlock()

        sim.spawn("v", vcpu)

    with pytest.raises(MisuseError, match="outside a coroutine"):
        run(_world(outside), cpus=3)


def test_wrlock_without_the_bql_is_a_global_state_violation():
    def extra(sim, m):
        set_tsa_mode(sim, "raise")  # QEMU asserts: the run stops at the check

        def vcpu():
            yield from bdrv_graph_wrlock()

        sim.spawn("v", vcpu)

    with pytest.raises(
        TSAViolation,
        match="`bdrv_graph_wrlock` is GLOBAL_STATE_CODE but runs in v, which does not hold the BQL",
    ) as e:
        run(_world(extra), cpus=3)
    assert e.value.violation.kind == "GLOBAL_STATE_CODE"


def test_qemu_in_main_thread_is_any_bql_holder_and_io_code_checks_nothing():
    seen = []

    def extra(sim, m):
        def vcpu():
            yield sleep(1)
            seen.append(("vcpu without the BQL", qemu_in_main_thread()))
            IO_CODE()  # anywhere: nothing to check
            m.extra["done"] = True

        def main_cb():
            seen.append(("main loop", qemu_in_main_thread()))

        def guest():
            yield m.main_ctx.bh_schedule_oneshot(main_cb, "cb")

        sim.spawn("v", vcpu)
        sim.spawn("guest", guest)

    r = run(_world(extra), cpus=3)
    assert r.ok and tsa_violations(r) == []
    assert sorted(seen) == [("main loop", True), ("vcpu without the BQL", False)]

    # a vCPU thread that holds the BQL is the block layer's main thread too
    from labsupport.chapters.ch06.scenarios import api_class_program

    api = run(api_class_program(), cpus=3)
    assert {v.thread for v in tsa_violations(api)} == {"vcpu0"}


def test_wrlock_of_a_node_releases_its_context_lock_while_it_polls_and_retakes_it():
    for held, released in (("held", False), ("released", True)):
        g = run_graph(GraphConfig(ctx_lock=held, requests=8), seed=3)
        lock = g.model.blks[0].ctx.lock
        assert lock.mutex.kind == "rec-mutex"
        if released:
            assert g.outcome == "completed"
            assert lock.mutex.owner is None  # let go at the end, after being taken back
            sites = lock.sites
            assert sites["bdrv_graph_wrlock"].acquisitions == 1  # retaken once, after the poll
            assert sites["aio_co_enter"].acquisitions >= 8  # every read's wake-up took it
        else:
            assert g.outcome == "deadlock" and "bdrv_graph_wrlock" not in lock.sites


def test_without_a_graph_lock_the_lookup_says_how_to_make_one():
    with pytest.raises(MisuseError, match="BdrvGraphLock"):
        get_graph_lock(Simulation())


def test_the_d6_toggle_keeps_has_writer_set_while_the_writer_polls():
    cfg = GraphConfig(requests=6)
    for d6 in (False, True):
        g = run_graph(cfg.replace(d6_bug=d6), seed=0)
        hist = g.model.gl.history
        first_write = next(i for i, (_t, _n, w) in enumerate(hist) if w)
        # with the bug the flag is raised before any poll; readers are still counted then
        assert (hist[first_write][1] > 0) == d6
