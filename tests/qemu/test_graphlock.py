"""The block-graph lock: per-context reader counts, the writer's protocol, sleeping readers,
the main loop's placeholder, and the API-class checks."""

from __future__ import annotations

import pytest

from labsupport import run
from labsupport.annotations import TSAViolation, set_tsa_mode, tsa_violations
from labsupport.chapters.ch06.scenarios import GraphConfig, graph_program, run_graph
from labsupport.coroutine import Coroutine, aio_co_schedule
from labsupport.kernel import MisuseError, Simulation, compute, sleep
from labsupport.qemu.graphlock import (
    bdrv_graph_co_rdlock,
    bdrv_graph_co_rdunlock,
    bdrv_graph_rdlock_main_loop,
    bdrv_graph_rdunlock_main_loop,
    bdrv_graph_wrlock,
    bdrv_graph_wrunlock,
    get_graph_lock,
)


def _world(extra):
    """graph_program with no guest reads and no graph change, plus ``extra(sim, m)``."""

    def program(sim):
        m = graph_program(GraphConfig(requests=0), change_body=lambda blk, new: iter(()))(sim)
        m.extra["wanted"] = ("done",)
        extra(sim, m)
        return m

    return program


def test_readers_count_per_context_and_the_writer_waits_for_them():
    seen = {}

    def extra(sim, m):
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

    r = run(_world(extra), cpus=3)
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


def test_wrlock_outside_the_main_loop_is_a_global_state_violation():
    def extra(sim, m):
        set_tsa_mode(sim, "raise")  # QEMU asserts: the run stops at the check

        def vcpu():
            yield from bdrv_graph_wrlock()

        sim.spawn("v", vcpu)

    with pytest.raises(
        TSAViolation,
        match="`bdrv_graph_wrlock` is GLOBAL_STATE_CODE but runs in v: it is not the main loop",
    ) as e:
        run(_world(extra), cpus=3)
    assert e.value.violation.kind == "GLOBAL_STATE_CODE"


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
