"""The classic small programs that systematic-testing tools are measured on, ported.

Each function returns a program for ``run()`` and ``explore()``. Their trace counts are
published (the GenMC, Nidhugg and Concuerror test suites; Abdulla et al., POPL 2014), so they
check the explorer as much as they teach: a count that differs is a bug in the explorer.

- ``lost_update(n)``: ``inc``: each of ``n`` threads does ``r = load x; store x, r + 1``.
  4 traces for 2 threads, 36 for 3 (6 and 90 interleavings).
- ``locked_increment(n)``: the same under a mutex: ``n!`` traces, one per order of the
  critical sections.
- ``writer_readers(n)``: one writer stores ``x``, ``n`` readers load it: ``2**n`` traces.
- ``lastzero(n)``: ``a[0..n] = 0``; T0: ``i = n; while a[i] != 0: i -= 1``; Tj (j = 1..n):
  ``a[j] = a[j-1] + 1``. 2, 5, 12, 28, 64 traces for n = 1..5.
- ``indexer(n)``: Flanagan and Godefroid's hash table (POPL 2005): ``n`` threads insert 4
  values each into a table of 128 slots with compare-and-swap, probing on a collision. Threads
  collide only from 12 threads on.

Layer 9 (chapters): imports the primitives.
"""

from __future__ import annotations

from labsupport import validate
from labsupport.shared import Shared
from labsupport.sync import QemuMutex


def _threads(n: int, low: int = 1, high: int = 16) -> int:
    return validate.whole("n", n, low, high)


def lost_update(n: int = 2, increments: int = 1):
    """``n`` threads each ``r = load x; store x, r + 1`` (``increments`` times); the model is
    ``x``."""
    return _increments(n, increments, locked=False)


def locked_increment(n: int = 2, increments: int = 1):
    """``lost_update`` with a mutex around each increment: never loses one."""
    return _increments(n, increments, locked=True)


def _increments(n: int, increments: int, locked: bool):
    _threads(n)
    validate.whole("increments", increments, 1, 100)

    def program(sim):
        x, m = Shared(sim, "x", 0), QemuMutex(sim, "m") if locked else None

        def body():
            for _ in range(increments):
                if locked:
                    yield m.lock()
                r = yield x.load()
                yield x.store(r + 1)
                if locked:
                    yield m.unlock()

        for i in range(n):
            sim.spawn(f"T{i}", body)
        return x

    return program


def writer_readers(n: int = 2):
    """One writer stores ``x = 1``; ``n`` readers load ``x``."""
    _threads(n)

    def program(sim):
        x = Shared(sim, "x", 0)

        def writer():
            yield x.store(1)

        def reader():
            yield x.load()

        sim.spawn("W", writer)
        for i in range(n):
            sim.spawn(f"R{i}", reader)
        return x

    return program


def lastzero(n: int = 2):
    """T0 looks for the last zero of ``a[0..n]`` while T1..Tn each set ``a[j] = a[j-1] + 1``."""
    _threads(n, 1, 30)

    def program(sim):
        a = [Shared(sim, f"a{i}", 0) for i in range(n + 1)]

        def t0():
            i = n
            while (yield a[i].load()) != 0:
                i -= 1

        def tj(j):
            def body():
                v = yield a[j - 1].load()
                yield a[j].store(v + 1)

            return body

        sim.spawn("T0", t0)
        for j in range(1, n + 1):
            sim.spawn(f"T{j}", tj(j))

    return program


def indexer(n: int = 12, inserts: int = 4, size: int = 128):
    """Flanagan and Godefroid's indexer: thread ``tid`` inserts ``w = m * 11 + tid`` for
    m = 1..inserts at slot ``w * 7 % size`` with compare-and-swap, probing the next slot while
    the slot is taken."""
    _threads(n, 1, 30)
    validate.whole("inserts", inserts, 1, 10)
    validate.whole("size", size, 1, 4096)

    def program(sim):
        table = [Shared(sim, f"table[{i}]", 0) for i in range(size)]

        def thread(tid):
            def body():
                for m in range(1, inserts + 1):
                    w = m * 11 + tid
                    h = w * 7 % size
                    while (yield table[h].qatomic_cmpxchg(0, w)) != 0:
                        h = (h + 1) % size

            return body

        for tid in range(n):
            sim.spawn(f"T{tid}", thread(tid))
        return table

    return program


__all__ = ["indexer", "lastzero", "locked_increment", "lost_update", "writer_readers"]
