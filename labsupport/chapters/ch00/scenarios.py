"""Chapter 0's small programs: a shared counter and two locks taken in opposite orders.

Every concurrency course starts with these two, and so does every QEMU bug hunt: a
read-modify-write that another thread slips into (the lost update), and two locks taken in
opposite orders by two threads (the AB-BA deadlock that chapter 4 finds between the BQL and an
AioContext lock). Each is a *program*: a function that builds its threads in a fresh
``Simulation``, so that ``run(program, seed=...)`` and ``run(program, schedule=...)`` can be
called as often as an experiment needs.

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from labsupport import validate
from labsupport.kernel import MAX_THREADS, RunResult, Simulation, compute, run
from labsupport.shared import Shared
from labsupport.sync import QemuMutex


@dataclass
class CounterModel:
    """What ``counter_program`` builds: the counter, the lock (used or not) and the threads."""

    counter: Shared
    lock: QemuMutex | None
    threads: list


def counter_program(
    threads: int = 2, increments: int = 2, locked: bool = False, work_us: float = 0
) -> Callable[[Simulation], CounterModel]:
    """``threads`` threads each add 1 to a shared counter ``increments`` times.

    With ``locked=True`` each increment is done holding the mutex ``lock``; with ``work_us``
    each thread also computes that long after each increment.
    """
    validate.whole("threads", threads, 1, MAX_THREADS)
    validate.whole("increments", increments, 1, 10_000)

    def program(sim: Simulation) -> CounterModel:
        counter = Shared(sim, "counter", 0)
        lock = QemuMutex(sim, "lock") if locked else None

        def worker():
            for _ in range(increments):
                if locked:
                    yield lock.lock()
                yield counter.increment()
                if locked:
                    yield lock.unlock()
                if work_us:
                    yield compute(work_us)

        ts = [sim.spawn(f"T{i}", worker) for i in range(threads)]
        return CounterModel(counter, lock, ts)

    return program


@dataclass
class CounterOutcome:
    """The result of one counter run: the final value, what it should be, and the schedule."""

    seed: int
    threads: int
    final: int
    expected: int
    schedule: str
    result: RunResult

    @property
    def lost(self) -> int:
        return self.expected - self.final

    def summary(self) -> str:
        verdict = "correct" if self.lost == 0 else f"LOST {self.lost} update(s)"
        return (
            f"seed {self.seed}, {self.threads} thread(s): counter = {self.final}, expected "
            f"{self.expected}: {verdict}; schedule {self.schedule!r}"
        )

    def __str__(self) -> str:
        return self.summary()


def counter_experiment(
    seed: int = 0,
    threads: int = 2,
    increments: int = 2,
    locked: bool = False,
    policy: str = "random",
    schedule: str | None = None,
) -> CounterOutcome:
    """Run the counter program once and report what happened (a pure function of its inputs)."""
    validate.whole("seed", seed, 0, 2**31 - 1)
    prog = counter_program(threads, increments, locked)
    r = run(prog, seed=seed, policy=policy, schedule=schedule)
    model = r.sim.model
    return CounterOutcome(seed, threads, model.counter.value, threads * increments, r.schedule, r)


def first_losing_seed(
    threads: int = 2, increments: int = 2, seeds: range = range(1000)
) -> int | None:
    """The smallest seed whose random schedule loses an update, or None if none in ``seeds``."""
    if not isinstance(seeds, range):
        seeds = validate.numbers("seeds", seeds, low=0, high=2**31 - 1, whole_numbers=True)
    for s in seeds:
        if counter_experiment(s, threads, increments).lost:
            return s
    return None


def abba_program(work_us: float = 5) -> Callable[[Simulation], tuple[QemuMutex, QemuMutex]]:
    """Two threads, two mutexes, opposite orders: T1 takes A then B; T2 takes B then A."""
    validate.duration("work_us", work_us)

    def program(sim: Simulation) -> tuple[QemuMutex, QemuMutex]:
        a, b = QemuMutex(sim, "A"), QemuMutex(sim, "B")

        def one(first, second):
            def body():
                yield first.lock()
                yield compute(work_us)
                yield second.lock()
                yield compute(work_us)
                yield second.unlock()
                yield first.unlock()

            return body

        sim.spawn("T1", one(a, b))
        sim.spawn("T2", one(b, a))
        return a, b

    return program


def busy_program(sim: Simulation) -> Shared:
    """Section 5's timeline: three threads each take the lock twice, work 10 us inside it and
    15 us outside it, on as many host CPUs as the run gives (the chapter uses two): they wait
    for the lock and for a CPU."""
    counter = Shared(sim, "counter", 0)
    lock = QemuMutex(sim, "lock")

    def worker():
        for _ in range(2):
            yield lock.lock()
            yield counter.increment()
            yield compute(10)  # work inside the critical section
            yield lock.unlock()
            yield compute(15)  # work outside it

    for i in range(3):
        sim.spawn(f"T{i}", worker)
    return counter
