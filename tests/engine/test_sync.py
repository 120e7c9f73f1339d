"""The primitives: semantics, misuse errors that teach, and reprs that show state."""

import pytest

from labsupport import (
    MisuseError,
    QemuCond,
    QemuEvent,
    QemuMutex,
    QemuRecMutex,
    QemuSemaphore,
    RWLock,
    Shared,
    Simulation,
    compute,
    holds,
    metrics,
    run,
    sleep,
)


def one(body, **kw):
    sim = Simulation(**kw)
    sim.spawn("t", body, sim)
    return sim.run()


def test_mutex_excludes_and_hands_over_in_arrival_order():
    order = []

    def prog(sim):
        m = QemuMutex(sim, "m")

        def body(i):
            yield sleep(i)  # arrive at 0, 1, 2
            yield m.lock()
            order.append(i)
            yield sleep(10)
            yield m.unlock()

        for i in range(3):
            sim.spawn(f"t{i}", body, i)
        return m

    r = run(prog)
    assert order == [0, 1, 2] and r.time == 30
    st = metrics(r).locks["m"]
    assert st.acquisitions == 3 and st.contended == 2
    assert st.wait_total == (10 - 1) + (20 - 2)
    assert st.hold_total == 30 and st.hold_max == 10


def test_mutex_repr_shows_owner_and_waiters():
    seen = {}

    def prog(sim):
        m = QemuMutex(sim, "BQL")

        def owner():
            yield m.lock()
            yield sleep(5)
            seen["during"] = repr(m)
            yield m.unlock()

        def waiter():
            yield m.lock()
            yield m.unlock()

        sim.spawn("vcpu0", owner)
        sim.spawn("vcpu1", waiter)
        return m

    r = run(prog)
    assert seen["during"] == "<QemuMutex BQL [locked by vcpu0, waiters:1]>"
    assert repr(r.sim.model) == "<QemuMutex BQL [unlocked]>"


def test_relocking_a_mutex_is_an_error_not_a_hang():
    def body(sim):
        m = QemuMutex(sim, "m")
        yield m.lock()
        yield m.lock()

    with pytest.raises(MisuseError, match="t locked mutex m, which it already holds"):
        one(body)


def test_unlocking_someone_elses_mutex_names_both():
    def prog(sim):
        m = QemuMutex(sim, "BQL")

        def holder():
            yield m.lock()
            yield sleep(10)

        def thief():
            yield sleep(1)
            yield m.unlock()

        sim.spawn("main-loop", holder)
        sim.spawn("vcpu1", thief)

    with pytest.raises(MisuseError, match="vcpu1 unlocked mutex BQL, which main-loop holds"):
        run(prog)


def test_unlocking_a_free_mutex_is_an_error():
    def body(sim):
        yield QemuMutex(sim, "m").unlock()

    with pytest.raises(MisuseError, match="which nobody holds"):
        one(body)


def test_trylock_never_waits():
    got = []

    def prog(sim):
        m = QemuMutex(sim, "m")

        def holder():
            yield m.lock()
            yield sleep(5)
            yield m.unlock()

        def trier():
            got.append((yield m.trylock()))
            yield sleep(10)
            got.append((yield m.trylock()))

        sim.spawn("h", holder)
        sim.spawn("t", trier)

    run(prog)
    assert got == [False, True]


def test_rec_mutex_counts_depth_and_frees_at_zero():
    reprs = []

    def body(sim):
        m = QemuRecMutex(sim, "ctx")
        yield m.lock()
        yield m.lock()
        reprs.append(repr(m))
        yield m.unlock()
        assert m.locked() and m.depth == 1
        yield m.unlock()
        assert not m.locked()
        reprs.append(repr(m))

    assert one(body).ok
    assert reprs == [
        "<QemuRecMutex ctx [locked by t, depth:2, waiters:0]>",
        "<QemuRecMutex ctx [unlocked]>",
    ]


def test_rec_mutex_excludes_other_threads():
    def prog(sim):
        m = QemuRecMutex(sim, "ctx")
        x = Shared(sim, "x", 0)

        def body():
            yield m.lock()
            yield m.lock()
            yield x.increment()
            yield compute(3)
            yield m.unlock()
            yield m.unlock()

        for i in range(3):
            sim.spawn(f"t{i}", body)
        return x

    for seed in range(20):
        r = run(prog, policy="random", seed=seed, cpus=3)
        assert r.ok and r.sim.model.value == 3


def test_cond_wait_releases_and_retakes_the_mutex():
    log = []

    def prog(sim):
        m = QemuMutex(sim, "m")
        c = QemuCond(sim, "c")
        ready = Shared(sim, "ready", 0)

        def consumer():
            yield m.lock()
            while (yield ready.load()) == 0:
                yield c.wait(m)
            log.append(("consumer has m", holds(sim.current, m)))
            yield m.unlock()

        def producer():
            yield sleep(5)
            yield m.lock()  # possible only because the consumer's wait released m
            yield ready.store(1)
            yield c.signal()
            yield m.unlock()

        sim.spawn("consumer", consumer)
        sim.spawn("producer", producer)

    r = run(prog)
    assert r.ok and log == [("consumer has m", True)]


def test_cond_wait_without_the_mutex_is_an_error():
    def body(sim):
        m = QemuMutex(sim, "m")
        yield QemuCond(sim, "c").wait(m)

    with pytest.raises(MisuseError, match="without holding its mutex m"):
        one(body)


def test_cond_broadcast_wakes_everyone_and_signal_one():
    def prog(sim, how):
        m = QemuMutex(sim, "m")
        c = QemuCond(sim, "c")
        woke = Shared(sim, "woke", 0)

        def waiter():
            yield m.lock()
            yield c.wait(m)
            yield woke.increment()
            yield m.unlock()

        def waker():
            yield sleep(1)
            yield getattr(c, how)()

        for i in range(3):
            sim.spawn(f"w{i}", waiter)
        sim.spawn("waker", waker)
        return woke

    r = run(lambda sim: prog(sim, "broadcast"))
    assert r.ok and r.sim.model.value == 3
    r = run(lambda sim: prog(sim, "signal"))
    assert r.outcome == "stuck" and r.sim.model.value == 1
    assert len(r.deadlock.waits) == 2


def test_event_set_wakes_all_and_stays_set_until_reset():
    def prog(sim):
        ev = QemuEvent(sim, "ev")
        passed = Shared(sim, "passed", 0)

        def waiter():
            yield ev.wait()
            yield passed.increment()

        def setter():
            yield sleep(3)
            yield ev.set()

        for i in range(2):
            sim.spawn(f"w{i}", waiter)
        sim.spawn("s", setter)

        def late():
            yield sleep(10)
            yield ev.wait()  # already set: goes straight through
            yield passed.increment()
            yield ev.reset()

        sim.spawn("late", late)
        return ev, passed

    r = run(prog)
    ev, passed = r.sim.model
    assert r.ok and passed.value == 3 and repr(ev) == "<QemuEvent ev [clear, waiters:0]>"


def test_semaphore_counts():
    def prog(sim):
        s = QemuSemaphore(sim, "slots", 2)
        inside = Shared(sim, "inside", 0)
        peak = []

        def body():
            yield s.wait()
            v = yield inside.qatomic_add(1)
            peak.append(v)
            yield sleep(10)
            yield inside.qatomic_add(-1)
            yield s.post()

        for i in range(5):
            sim.spawn(f"t{i}", body)
        return peak

    r = run(prog)
    assert r.ok and max(r.sim.model) == 2 and r.time == 30
    with pytest.raises(ValueError, match="count"):
        QemuSemaphore(Simulation(), "bad", -1)


def test_rwlock_readers_share_writers_exclude_and_are_not_starved():
    spans = {}

    def prog(sim):
        rw = RWLock(sim, "graph")

        def reader(i):
            yield sleep(i)
            yield rw.rdlock()
            spans[f"r{i}"] = (sim.now,)
            yield sleep(10)
            yield rw.unlock()
            spans[f"r{i}"] += (sim.now,)

        def writer():
            yield sleep(1.5)
            yield rw.wrlock()
            spans["w"] = (sim.now,)
            yield sleep(5)
            yield rw.unlock()
            spans["w"] += (sim.now,)

        for i in range(3):
            sim.spawn(f"r{i}", reader, i)
        sim.spawn("w", writer)
        return rw

    r = run(prog)
    assert r.ok
    assert spans["r0"] == (0, 10) and spans["r1"] == (1, 11)
    assert spans["w"] == (11, 16)  # waits for both readers in
    assert spans["r2"] == (16, 26)  # arrived after the writer queued: waits behind it
    assert "unlocked" in repr(r.sim.model)


def test_rwlock_misuse():
    def body(sim):
        rw = RWLock(sim, "rw")
        yield rw.rdlock()
        yield rw.wrlock()

    with pytest.raises(MisuseError, match="not recursive"):
        one(body)

    def body2(sim):
        yield RWLock(sim, "rw").unlock()

    with pytest.raises(MisuseError, match="does not hold"):
        one(body2)


def test_expand_granularity():
    def prog(sim):
        x = Shared(sim, "x", 0)
        sim.spawn("t", lambda: (yield x.increment()))
        return x

    kinds = [e.kind for e in run(prog).sim.trace if e.kind in ("read", "op", "write")]
    assert kinds == ["read", "op", "write"]
    kinds = [e.kind for e in run(prog, expand=False).sim.trace if e.kind in ("read", "op", "write")]
    assert kinds == ["read", "write"]
    # and with expand=False no interleaving can lose an update
    from labsupport.chapters.ch00.scenarios import counter_program

    for seed in range(30):
        r = run(counter_program(3, 3), policy="random", seed=seed, expand=False)
        assert r.sim.model.counter.value == 9
