"""Real threads: every primitive's contract on host threads, and a watchdog that never hangs.

No wall-clock assertion here: a watchdog's promise is checked by its report and by the run
having ended (each test would hang, not fail, without it); how fast it ends is a bench figure.
"""

from __future__ import annotations

import threading

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
    compute,
    run,
    run_real,
    sleep,
)
from labsupport.chapters.ch09.scenarios import abba_program
from labsupport.real import NotReal, RealRuns, gil_enabled


@pytest.fixture(autouse=True)
def nothing_left_running():
    """Every test ends with no host thread of its runs still alive."""
    before = set(threading.enumerate())
    yield
    left = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not left, f"host threads left running: {left}"


def counter(threads: int, increments: int, how: str):
    """Chapter 0's counter: ``how`` is "plain" (load, add, store), "locked" or "atomic"."""

    def program(sim):
        x, m = Shared(sim, "x", 0), QemuMutex(sim, "m")
        inside, most = [0], [0]

        def body():
            for _ in range(increments):
                if how == "locked":
                    yield m.lock()
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                    yield x.increment()
                    inside[0] -= 1
                    yield m.unlock()
                elif how == "atomic":
                    yield x.qatomic_inc()
                else:
                    yield x.increment()

        for i in range(threads):
            sim.spawn(f"T{i}", body)
        return most

    return program


def test_a_lock_excludes_under_contention_and_loses_nothing():
    r = run_real(counter(4, 3000, "locked"))
    assert r.outcome == "completed" and r.values["x"] == 12_000
    assert r.model == [1]  # never two threads inside at once
    use = r.locks["m"]
    assert use.taken == 12_000 and 0 <= use.contended <= use.taken and use.wait_ns >= 0


def test_a_busy_lock_is_never_taken_for_a_deadlock():
    """The watchdog reads the wait-for graph while the threads run: a thread that waited and
    has just got its lock must not look like a cycle (it once did, on a free-threaded build)."""
    runs = run_real(counter(4, 2000, "locked"), repeat=20)
    assert [r.outcome for r in runs.runs] == ["completed"] * 20
    assert runs.values("x") == [8000] * 20


def test_an_atomic_increment_loses_nothing():
    assert run_real(counter(4, 3000, "atomic")).values["x"] == 12_000


def test_a_check_counts_the_runs_that_lost_updates():
    runs = run_real(
        counter(2, 200, "locked"),
        repeat=3,
        check=lambda r: None if r.values["x"] == 400 else "lost update",
    )
    assert isinstance(runs, RealRuns) and runs.failures == 0 and runs.values("x") == [400] * 3
    assert "3 real runs: 3 completed" in runs.summary()
    wrong = run_real(counter(1, 10, "plain"), repeat=2, check=lambda r: "always wrong")
    assert wrong.failures == 2 and wrong.rate == 1.0


def test_a_recursive_mutex_counts_its_depth_and_excludes_others():
    def program(sim):
        m, held, order = QemuRecMutex(sim, "ctx"), QemuEvent(sim, "held"), []

        def owner():
            for _ in range(3):
                yield m.lock()
            order.append("owner in")
            yield held.set()
            yield sleep(5_000)
            yield m.unlock()
            yield m.unlock()
            order.append("owner out")  # still held once: nobody else can be in yet
            yield m.unlock()

        def other():
            yield held.wait()
            yield m.lock()
            order.append("other in")
            yield m.unlock()

        sim.spawn("owner", owner)
        sim.spawn("other", other)
        return order

    r = run_real(program)
    assert r.outcome == "completed"
    assert r.model == ["owner in", "owner out", "other in"]
    assert r.locks["ctx"].taken == 4


def test_a_condition_wakes_its_waiter_and_the_mutex_comes_back():
    def program(sim):
        m, c = QemuMutex(sim, "m"), QemuCond(sim, "nonempty")
        queue, got = [], []

        def consumer():
            for _ in range(50):
                yield m.lock()
                while not queue:
                    yield c.wait(m)
                got.append(queue.pop(0))
                yield m.unlock()

        def producer():
            for i in range(50):
                yield m.lock()
                queue.append(i)
                yield c.signal()
                yield m.unlock()

        sim.spawn("consumer", consumer)
        sim.spawn("producer", producer)
        return got

    r = run_real(program)
    assert r.outcome == "completed" and r.model == list(range(50))


def test_a_semaphore_lets_in_at_most_its_count():
    def program(sim):
        s, inside, most = QemuSemaphore(sim, "slots", 2), [0], [0]

        def body():
            for _ in range(5):
                yield s.wait()
                inside[0] += 1
                most[0] = max(most[0], inside[0])
                yield sleep(1_000)
                inside[0] -= 1
                yield s.post()

        for i in range(5):
            sim.spawn(f"T{i}", body)
        return most

    r = run_real(program)
    assert r.outcome == "completed" and 1 <= r.model[0] <= 2


def test_an_event_releases_every_waiter():
    def program(sim):
        e, woke = QemuEvent(sim, "ready"), []

        def waiter(i):
            yield e.wait()
            woke.append(i)

        def setter():
            yield sleep(5_000)
            yield e.set()

        for i in range(3):
            sim.spawn(f"W{i}", waiter, i)
        sim.spawn("setter", setter)
        return woke

    r = run_real(program)
    assert r.outcome == "completed" and sorted(r.model) == [0, 1, 2]


def test_the_watchdog_ends_a_real_abba_deadlock_naming_both_threads_and_locks():
    r = run_real(abba_program, time_limit_s=5)
    assert r.outcome == "deadlock" and r.left_running == []
    head = r.report.splitlines()[0]
    assert head.startswith("DEADLOCK on real threads")
    for name in ("T1 waits for B, held by T2", "T2 waits for A, held by T1"):
        assert name in head
    assert "T1: waits for B, holds A" in r.report and "T2: waits for A, holds B" in r.report
    assert "`yield b.lock()`" in r.report and "`yield a.lock()`" in r.report
    # the next run is unaffected
    assert run_real(counter(2, 100, "locked")).values["x"] == 200


def test_a_lock_order_never_deadlocks():
    def program(sim):
        a, b = QemuMutex(sim, "A"), QemuMutex(sim, "B")

        def body():
            for _ in range(200):
                yield a.lock()
                yield b.lock()
                yield b.unlock()
                yield a.unlock()

        sim.spawn("T1", body)
        sim.spawn("T2", body)

    assert run_real(program, repeat=3).failures == 0


def test_the_watchdog_stops_spinning_threads_with_and_without_yields():
    def program(sim):
        flag = Shared(sim, "flag", 0)

        def polite():
            while (yield flag.load()) == 0:  # yields every time round
                pass

        def rude():
            n = 0
            while True:  # never comes back to the backend
                n += 1
            yield

        sim.spawn("polite", polite)
        sim.spawn("rude", rude)

    r = run_real(program, time_limit_s=1)
    assert r.outcome == "time limit" and r.left_running == []
    assert "polite: running" in r.report and "rude: running" in r.report
    assert "of rude()" in r.report and "host stack" in r.report  # the loop's line, where caught


def test_a_wait_nobody_can_end_is_stuck():
    def program(sim):
        e = QemuEvent(sim, "never")

        def body():
            yield e.wait()

        sim.spawn("waiter", body)

    r = run_real(program, time_limit_s=5)
    assert r.outcome == "stuck" and "waiter: waits for never" in r.report


def test_misuse_is_refused_as_in_the_simulator():
    def program(sim):
        m = QemuMutex(sim, "m")

        def body():
            yield m.unlock()

        sim.spawn("T", body)

    with pytest.raises(MisuseError, match="only the owner may unlock"):
        run(program)
    with pytest.raises(MisuseError, match="only the owner may unlock"):
        run_real(program)


def test_what_lives_only_in_the_simulator_is_named():
    def program(sim):
        rw = RWLock(sim, "graph")

        def body():
            yield rw.rdlock()

        sim.spawn("reader", body)

    with pytest.raises(NotReal, match="RWLock"):
        run_real(program)


def test_compute_uses_a_host_cpu_and_the_same_program_runs_in_both_engines():
    def program(sim):
        x = Shared(sim, "x", 0)

        def body():
            yield compute(100)
            yield x.qatomic_inc()

        sim.spawn("T0", body)
        sim.spawn("T1", body)
        return x

    assert run(program).sim.model.value == run_real(program).values["x"] == 2


@pytest.mark.parametrize(
    "kwargs, name",
    [({"time_limit_s": 0}, "time_limit_s"), ({"repeat": 0}, "repeat"), ({"check": 3}, "check")],
)
def test_bad_arguments_are_refused_naming_the_parameter(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        run_real(counter(1, 1, "plain"), **kwargs)


def test_the_interpreter_says_whether_it_has_a_gil():
    assert isinstance(gil_enabled(), bool)
