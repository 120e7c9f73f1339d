"""Known wrong answers to chapter 9's exercises: each one is refused, and the refusal says what
is wrong with that answer.

``WRONG_ANSWERS`` maps each question to answers a learner could plausibly give; ``SAYS`` names,
for the telling ones, a phrase the refusal must contain. Every one is refused on every run: the
simulator refuses it before real threads are asked anything.
"""

from __future__ import annotations

from labsupport import QemuEvent, QemuMutex, Shared
from labsupport.chapters.ch00.scenarios import counter_program


def plain_counter(threads, increments):
    """Chapter 0's counter as it was: load, add, store."""

    def program(sim):
        return counter_program(threads, increments)(sim).counter

    return program


def locked_counter(threads, increments):
    """Right, but with a lock: the question asks for none."""

    def program(sim):
        return counter_program(threads, increments, locked=True)(sim).counter

    return program


def one_thread_counter(threads, increments):
    """Counts, but in one thread whatever ``threads`` says."""

    def program(sim):
        counter = Shared(sim, "counter", 0)

        def body():
            for _ in range(threads * increments):
                yield counter.qatomic_inc()

        sim.spawn("T0", body)
        return counter

    return program


def in_order(sim):
    """Two locks, both threads in the same order: it never deadlocks."""
    a, b = QemuMutex(sim, "A"), QemuMutex(sim, "B")

    def body():
        yield a.lock()
        yield b.lock()
        yield b.unlock()
        yield a.unlock()

    sim.spawn("T1", body)
    sim.spawn("T2", body)


def never_set(sim):
    """A thread that waits for an event nobody sets: stuck, not deadlocked."""
    e = QemuEvent(sim, "never")

    def body():
        yield e.wait()

    sim.spawn("waiter", body)


WRONG_ANSWERS = {
    "9.1": [plain_counter, locked_counter, one_thread_counter, counter_program(2, 2)],
    "9.2": [in_order, never_set, counter_program(2, 2)],
}

SAYS = [
    ("9.1", plain_counter, "the counter ends at"),
    ("9.1", locked_counter, "without a lock"),
    ("9.1", one_thread_counter, "must spawn 2 threads"),
    ("9.2", in_order, "finds no deadlock"),
    ("9.2", never_set, "finds no deadlock"),
]
