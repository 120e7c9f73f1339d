"""The lock-order validator and the lockset race detector."""

import pytest

from labsupport import QemuMutex, Shared, compute, run, sleep
from labsupport.analysis import LockOrder, find_races, witness_deadlock
from labsupport.chapters.ch00.scenarios import abba_program, counter_program


def abba_that_happens_not_to_deadlock(sim):
    """T1 takes A then B; T2 takes B then A, but 50 us later: this run is fine."""
    a, b = QemuMutex(sim, "A"), QemuMutex(sim, "B")

    def t1():
        yield a.lock()
        yield compute(5)
        yield b.lock()
        yield b.unlock()
        yield a.unlock()

    def t2():
        yield sleep(50)
        yield b.lock()
        yield compute(5)
        yield a.lock()
        yield a.unlock()
        yield b.unlock()

    sim.spawn("T1", t1)
    sim.spawn("T2", t2)


def test_a_possible_abba_is_reported_from_a_run_that_did_not_deadlock():
    r = run(abba_that_happens_not_to_deadlock, cpus=2)
    assert r.ok
    order = LockOrder().learn(r)
    reports = order.reports()
    assert len(reports) == 1 and sorted(reports[0].cycle) == ["A", "B"]
    text = reports[0].text()
    assert "WARNING: possible circular locking dependency detected" in text
    assert "Possible unsafe locking scenario" in text and "*** DEADLOCK ***" in text
    assert "T2 is trying to acquire lock:\n  (A)" in text


def test_a_consistent_order_has_no_report():
    r = run(counter_program(3, 2, locked=True), policy="random", seed=1)
    assert LockOrder().learn(r).reports() == []
    assert "no lock-order cycle" in LockOrder().learn(r).report()


def test_the_order_can_be_learned_across_runs():
    def half(first, second, name):
        def prog(sim):
            locks = {n: QemuMutex(sim, n) for n in "AB"}

            def body():
                yield locks[first].lock()
                yield locks[second].lock()
                yield locks[second].unlock()
                yield locks[first].unlock()

            sim.spawn(name, body)

        return prog

    order = LockOrder()
    order.learn(run(half("A", "B", "T1")))
    assert order.reports() == []
    order.learn(run(half("B", "A", "T2")))
    assert len(order.reports()) == 1 and order.runs == 2


def test_possible_becomes_seen_by_a_searched_schedule():
    def abba_with_jitter(sim):
        a, b = QemuMutex(sim, "A"), QemuMutex(sim, "B")

        def one(first, second):
            def body():
                yield sleep(sim.rng.choice([0, 5, 50]))
                yield first.lock()
                yield compute(5)
                yield second.lock()
                yield second.unlock()
                yield first.unlock()

            return body

        sim.spawn("T1", one(a, b))
        sim.spawn("T2", one(b, a))

    order = LockOrder()
    for seed in range(3):
        order.learn(run(abba_with_jitter, policy="random", seed=seed, cpus=2))
    cycle = order.reports()[0].cycle
    seen = witness_deadlock(abba_with_jitter, cycle, cpus=2)
    assert seen is not None and seen.outcome == "deadlock"
    again = run(abba_with_jitter, schedule=seen.schedule, seed=seen.sim.seed, cpus=2)
    assert again.outcome == "deadlock" and again.sim.trace.same_as(seen.sim.trace)


def test_witness_gives_up_with_none_when_no_schedule_deadlocks():
    def fine(sim):
        m = QemuMutex(sim, "m")
        sim.spawn("t", lambda: (yield m.lock()))

    assert witness_deadlock(fine, seeds=range(5)) is None
    assert witness_deadlock(abba_program(), cpus=2).outcome == "deadlock"


def test_eraser_finds_the_unlocked_counter_and_not_the_locked_one():
    r = run(counter_program(2, 2), policy="random", seed=3)
    races = find_races(r)
    assert len(races) == 1 and races[0].variable == "counter"
    text = races[0].text()
    assert "RACE on counter" in text and "holding no lock" in text
    assert races[0].access.thread != races[0].previous.thread
    for seed in range(20):
        locked = run(counter_program(3, 2, locked=True), policy="random", seed=seed)
        assert find_races(locked) == []


def test_eraser_ignores_initialisation_by_one_thread_and_read_only_sharing():
    def prog(sim):
        x = Shared(sim, "config", 0)

        def init_then_read():
            yield x.store(42)  # exclusive phase: no lock needed
            yield x.load()

        def reader():
            yield sleep(1)
            yield x.load()

        sim.spawn("main", init_then_read)
        sim.spawn("vcpu0", reader)
        sim.spawn("vcpu1", reader)

    assert find_races(run(prog)) == []


def test_atomic_variables_are_synchronisation_not_races():
    from labsupport import Shared, run

    def program(atomic):
        def build(sim):
            flag = Shared(sim, "flag", 0, atomic=atomic)

            def writer():
                yield flag.store(1)

            def other_writer():
                yield flag.store(2)

            sim.spawn("writer", writer)
            sim.spawn("other-writer", other_writer)

        return build

    assert [r.variable for r in find_races(run(program(False)))] == ["flag"]
    assert find_races(run(program(True))) == []
    with pytest.raises(ValueError, match="atomic is True or False"):
        run(lambda sim: Shared(sim, "x", atomic="yes"))
