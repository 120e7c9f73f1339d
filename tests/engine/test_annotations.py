"""Thread-safety annotations checked at run time: each promise kept is quiet, each broken one is
recorded with the function, the lock and the thread, or raised in "raise" mode."""

from __future__ import annotations

import pytest

from labsupport import QemuMutex, RWLock, Shared, run
from labsupport.annotations import (
    GuardedAttr,
    TSAViolation,
    acquires,
    declare_capability,
    excludes,
    guarded_by,
    held_mode,
    no_tsa,
    releases,
    requires,
    requires_shared,
    set_tsa_mode,
    tsa_report,
    tsa_spec,
    tsa_violations,
)
from labsupport.kernel import MisuseError


def _program(body_factory, mode="record"):
    def program(sim):
        m = QemuMutex(sim, "m")
        set_tsa_mode(sim, mode)
        for name, body in body_factory(sim, m).items():
            sim.spawn(name, body)
        return m

    return program


def test_requires_is_quiet_when_held_and_names_function_lock_and_thread_when_not():
    def bodies(sim, m):
        @requires(m)
        def update():
            yield None

        def good():
            yield m.lock()
            yield from update()
            yield m.unlock()

        def bad():
            yield from update()

        return {"good": good, "bad": bad}

    r = run(_program(bodies))
    (v,) = tsa_violations(r)
    assert (v.function, v.lock, v.thread, v.kind) == ("update", "m", "bad", "requires")
    assert v.text == "TSA at t=0 us: calling `update` requires holding `m` exclusively [thread bad]"
    assert tsa_report(r) == v.text


def test_raise_mode_stops_the_run_with_a_misuse_error():
    def bodies(sim, m):
        @requires(m)
        def update():
            yield None

        return {"bad": update}

    with pytest.raises(TSAViolation, match="requires holding `m`") as e:
        run(_program(bodies, mode="raise"))
    assert isinstance(e.value, MisuseError) and e.value.violation.thread == "bad"


def test_lock_expressions_resolve_against_arguments_and_declared_capabilities():
    class Node:
        def __init__(self, sim):
            self.sim = sim
            self.reqs_lock = QemuMutex(sim, "reqs_lock")

    @requires("bs.reqs_lock")
    def track(bs):
        yield None

    @excludes("big")
    def poll(bs):
        yield None

    def program(sim):
        bs = Node(sim)
        big = declare_capability(sim, "big", QemuMutex(sim, "BIG"))

        def t():
            yield from track(bs)  # violation: not held
            yield bs.reqs_lock.lock()
            yield from track(bs)  # fine
            yield bs.reqs_lock.unlock()
            yield big.lock()
            yield from poll(bs)  # violation: excluded lock held
            yield big.unlock()

        sim.spawn("t", t)

    r = run(program)
    assert [(v.function, v.lock, v.kind) for v in tsa_violations(r)] == [
        ("track", "bs.reqs_lock", "requires"),
        ("poll", "big", "excludes"),
    ]


def test_acquires_and_releases_are_checked_on_entry_and_on_return():
    def bodies(sim, m):
        @acquires(m)
        def take():
            yield m.lock()

        @acquires(m)
        def forgets():
            yield None

        @releases(m)
        def give():
            yield m.unlock()

        def t():
            yield from take()
            yield from give()
            yield from forgets()

        return {"t": t}

    r = run(_program(bodies))
    assert [v.text.split(": ", 1)[1] for v in tsa_violations(r)] == [
        "`forgets` returned without acquiring `m` [thread t]"
    ]


def test_requires_shared_accepts_a_reader_and_requires_wants_a_writer():
    def program(sim):
        rw = RWLock(sim, "rw")

        @requires_shared(rw)
        def read():
            yield None

        @requires(rw)
        def write():
            yield None

        def t():
            yield rw.rdlock()
            yield from read()
            yield from write()
            yield rw.unlock()

        sim.spawn("t", t)

    r = run(program)
    (v,) = tsa_violations(r)
    assert v.function == "write" and "(it is held only shared)" in v.text


def test_guarded_shared_and_guarded_attributes():
    class Node:
        children = GuardedAttr("self.lock")

        def __init__(self, sim):
            self.sim = sim
            self.name = "n"
            self.lock = QemuMutex(sim, "n.lock")
            self.children = []  # set-up code: not checked

    def program(sim):
        m = QemuMutex(sim, "m")
        x = guarded_by(m)(Shared(sim, "x"))
        node = Node(sim)

        def t():
            v = yield x.load()
            yield x.store(v + 1)
            yield m.lock()
            yield x.store(2)
            yield m.unlock()
            _ = node.children
            yield node.lock.lock()
            node.children = [1]
            yield node.lock.unlock()

        sim.spawn("t", t)
        return x

    r = run(program)
    msgs = [v.text.split(": ", 1)[1] for v in tsa_violations(r)]
    assert msgs == [
        "reading `x` requires holding `m` [thread t]",
        "writing `x` requires holding `m` exclusively [thread t]",
        "reading `n.children` requires holding `self.lock` [thread t]",
    ]
    assert r.sim.model.value == 2


def test_no_tsa_keeps_the_promises_and_stacked_decorators_share_one_wrapper():
    @no_tsa
    @requires("a")
    @requires_shared("b")
    def f():
        yield None

    spec = tsa_spec(f)
    assert spec.no_tsa and spec.promises == [("requires", "a"), ("requires_shared", "b")]


def test_bad_uses_are_refused_with_what_is_allowed():
    with pytest.raises(TypeError, match="generator functions"):
        requires("m")(lambda: None)
    with pytest.raises(ValueError, match="dotted name"):
        requires("m[0]")
    with pytest.raises(ValueError, match="at least one lock"):
        requires()
    with pytest.raises(ValueError, match="'record' or 'raise'"):
        run(lambda sim: set_tsa_mode(sim, "loud"))
    with pytest.raises(TypeError, match="wraps a Shared variable"):
        guarded_by("m")(3)

    @requires("nowhere")
    def f():
        yield None

    with pytest.raises(MisuseError, match="cannot tell which lock 'nowhere' is"):
        run(lambda sim: sim.spawn("t", f))


def test_held_mode_reads_the_kernels_locks():
    def program(sim):
        m = QemuMutex(sim, "m")

        def t():
            assert held_mode(m, sim.current) is None
            yield m.lock()
            assert held_mode(m, sim.current) == "exclusive"
            yield m.unlock()

        sim.spawn("t", t)

    assert run(program).ok


def test_the_active_simulation_is_set_only_while_it_runs():
    from labsupport.kernel import Simulation

    seen = []

    def program(sim):
        def t():
            seen.append(Simulation.active is sim)
            yield None

        sim.spawn("t", t)

    assert run(program).ok and seen == [True]
    assert Simulation.active is None


def test_a_guarded_variable_replaces_the_plain_one_in_the_simulations_registry():
    def program(sim):
        x = guarded_by(QemuMutex(sim, "m"))(Shared(sim, "x", 1))
        return x

    r = run(program)
    x = r.sim.model
    assert r.sim.objects[x.oid] is x and x.value == 1
