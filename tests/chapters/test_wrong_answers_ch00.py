"""Known wrong answers to chapter 0's exercises: each one is refused, and the refusal says what
is wrong with that answer.

``WRONG_ANSWERS`` maps each question to answers a learner could plausibly give (the answers
themselves: values and programs); ``SAYS`` names, for the telling ones, a phrase the refusal
must contain.
"""

from __future__ import annotations

from labsupport import QemuMutex, Shared, compute

# -- Wrong fixes for 0.3 ------------------------------------------------------------------------


def constant_nine(sim):
    """Ends at 9 on every schedule, but nothing counts: one store of 9, two idle threads."""
    counter = Shared(sim, "counter", 0)

    def setter():
        yield counter.store(9)

    def idle():
        yield compute(1)

    sim.spawn("T0", setter)
    sim.spawn("T1", idle)
    sim.spawn("T2", idle)
    return counter


def _three_workers(sim, body):
    counter = Shared(sim, "counter", 0)
    for i in range(3):
        sim.spawn(f"T{i}", body(sim, counter, i))
    return counter


def unlocked(sim):
    """The bug itself: three threads, three increments each, no lock."""

    def body(_sim, counter, _i):
        def worker():
            for _ in range(3):
                yield counter.increment()

        return worker

    return _three_workers(sim, body)


def last_increment_unlocked(sim):
    """The lock is taken for the first two increments only."""
    lock = QemuMutex(sim, "lock")

    def body(_sim, counter, _i):
        def worker():
            for k in range(3):
                if k < 2:
                    yield lock.lock()
                yield counter.increment()
                if k < 2:
                    yield lock.unlock()

        return worker

    return _three_workers(sim, body)


def a_lock_each(sim):
    """Each thread takes a lock of its own: nobody waits for anybody."""

    def body(sim, counter, i):
        mine = QemuMutex(sim, f"lock{i}")

        def worker():
            for _ in range(3):
                yield mine.lock()
                yield counter.increment()
                yield mine.unlock()

        return worker

    return _three_workers(sim, body)


def load_outside_the_lock(sim):
    """Only the store is under the lock: another thread can still come between load and store."""
    lock = QemuMutex(sim, "lock")

    def body(_sim, counter, _i):
        def worker():
            for _ in range(3):
                value = yield counter.load()
                yield lock.lock()
                yield counter.store(value + 1)
                yield lock.unlock()

        return worker

    return _three_workers(sim, body)


def leaps(sim):
    """Every thread stores three times under the lock, but not one more each time."""
    lock = QemuMutex(sim, "lock")

    def body(_sim, counter, i):
        step = (3, -1, 1)[i]

        def worker():
            for k in range(3):
                yield lock.lock()
                value = yield counter.load()
                yield counter.store(value + (step if k == 0 else 1))
                yield lock.unlock()

        return worker

    return _three_workers(sim, body)


def two_threads(sim):
    """Two threads that add 1 four and five times under the lock: 9, but not three threads."""
    counter, lock = Shared(sim, "counter", 0), QemuMutex(sim, "lock")

    def worker(times):
        def body():
            for _ in range(times):
                yield lock.lock()
                yield counter.increment()
                yield lock.unlock()

        return body

    sim.spawn("T0", worker(4))
    sim.spawn("T1", worker(5))
    return counter


def no_yield(sim):
    """The calls are made but never yielded: nothing happens in the simulation."""
    lock = QemuMutex(sim, "lock")

    def body(_sim, counter, _i):
        def worker():
            for _ in range(3):
                lock.lock()
                counter.increment()
                lock.unlock()

        return worker

    return _three_workers(sim, body)


def returns_nothing(sim):
    """A right fix that forgets to return the counter."""
    lock = QemuMutex(sim, "lock")

    def body(_sim, counter, _i):
        def worker():
            for _ in range(3):
                yield lock.lock()
                yield counter.increment()
                yield lock.unlock()

        return worker

    _three_workers(sim, body)


WRONG_ANSWERS = {
    "0.1": [4, 3, 0, 2.0, "2", True],
    "0.2": ["", "0", "000", "111", "9", 10, ["1", "0"]],
    "0.3": [
        constant_nine,
        unlocked,
        last_increment_unlocked,
        a_lock_each,
        load_outside_the_lock,
        leaps,
        two_threads,
        no_yield,
        returns_nothing,
        "lock around the increment",
    ],
}

#: (question, wrong answer, a phrase its refusal must contain)
SAYS = [
    ("0.1", 4, "4 is not what this schedule produces"),
    ("0.1", "2", "a whole number"),
    ("0.2", "", "the counter ends at 2, not 1"),
    ("0.2", "9", "cannot be followed"),
    ("0.2", 10, "a schedule string"),
    ("0.3", constant_nine, "three times"),
    ("0.3", unlocked, "a schedule with"),
    ("0.3", last_increment_unlocked, "replay it with run(answer, schedule="),
    ("0.3", a_lock_each, "not 9"),
    ("0.3", leaps, "one more than the one before it"),
    ("0.3", two_threads, "3 threads, not 2"),
    ("0.3", no_yield, "generator function"),
    ("0.3", returns_nothing, "return its counter"),
]
