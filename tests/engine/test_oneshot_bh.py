"""One-shot bottom halves are freed once they have run, as QEMU frees them; the trace still
names them."""

from __future__ import annotations

import gc
import weakref

from labsupport import run, sleep, trace_table
from labsupport.loop import QEMUBH, AioContext, aio_poll


def handoffs(n: int):
    """A program: one thread hands ``n`` one-shot BHs to a loop that another thread polls."""

    def program(sim):
        ctx = AioContext(sim, "main")
        ran = [0]

        def work():
            ran[0] += 1

        def loop():
            while ran[0] < n:
                yield aio_poll(ctx, True)

        def producer():
            for _ in range(n):
                yield ctx.bh_schedule_oneshot(work, "work")
                yield sleep(1)

        sim.spawn("iothread", loop)
        sim.spawn("vcpu", producer)
        return ran

    return program


def live_bhs() -> int:
    gc.collect()
    return sum(isinstance(o, QEMUBH) for o in gc.get_objects())


def test_a_loop_running_100000_oneshot_bhs_does_not_keep_them():
    before = live_bhs()
    r = run(handoffs(100_000), trace=False)
    assert r.ok and r.sim.model[0] == 100_000
    # the run's simulation is still alive (r holds it): none of its BHs is
    assert live_bhs() - before < 10
    assert not any(isinstance(o, QEMUBH) for o in r.sim.objects)


def test_a_oneshot_bh_is_freed_as_soon_as_it_has_run():
    refs: list[weakref.ref] = []

    def program(sim):
        ctx = AioContext(sim, "main")
        state = {"ran": False}

        def work():
            state["ran"] = True

        def loop():
            while not state["ran"]:
                yield aio_poll(ctx, True)
            gc.collect()
            state["alive after it ran"] = refs[0]() is not None

        def producer():
            op = ctx.bh_schedule_oneshot(work, "work")
            refs.append(weakref.ref(op.fn.__self__))
            yield op

        sim.spawn("iothread", loop)
        sim.spawn("vcpu", producer)
        return state

    r = run(program)
    assert r.ok and r.sim.model["alive after it ran"] is False


def test_the_trace_still_names_a_oneshot_bh_after_it_is_freed():
    r = run(handoffs(3))
    gc.collect()
    table = trace_table(r)
    assert table.count("schedule work") == 3
    names = {getattr(o, "name", None) for o in r.sim.objects if getattr(o, "kind", "") == "bh"}
    assert names == {"work"}


def test_a_bh_made_with_bh_new_is_kept_and_can_be_scheduled_again():
    def program(sim):
        ctx = AioContext(sim, "main")
        count = [0]
        bh = ctx.bh_new(lambda: count.__setitem__(0, count[0] + 1), "again")

        def loop():
            while count[0] < 2:
                yield aio_poll(ctx, True)

        def producer():
            yield bh.schedule()
            yield sleep(1)
            yield bh.schedule()

        sim.spawn("iothread", loop)
        sim.spawn("vcpu", producer)
        return bh, count

    r = run(program)
    bh, count = r.sim.model
    assert r.ok and count[0] == 2
    assert r.sim.objects[bh.oid] is bh
    assert bh.schedule() is bh.schedule()  # one operation, made once
