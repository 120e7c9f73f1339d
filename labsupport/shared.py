"""Shared variables: memory that more than one simulated thread reads and writes.

Device state, a request counter, the ``in_flight`` count of a block node: QEMU's races are all
about memory that two threads touch. A ``Shared`` variable makes each touch a step of its own,
so the scheduler can put another thread's step in between, and the trace can show who read what.
``x.increment()`` is, like ``x++`` in C, three steps on a real CPU (load, add, store) unless the
simulation says ``expand=False``; ``x.qatomic_inc()`` is one indivisible step, like QEMU's
``qatomic_inc()``. A variable made with ``atomic=True`` is one that QEMU touches only through
``qatomic_*`` accessors and memory barriers (``notify_me`` in ``struct AioContext``, say): race
detectors treat its accesses as synchronisation, as ThreadSanitizer treats atomics.

Layer 2 (primitives): imports only the kernel.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from . import tracebuf as tb
from . import validate
from .kernel import Note, Op, Simulation, Step, Thread


class Shared:
    """A named variable that simulated threads share. Each ``load``/``store`` is one step.

    ``atomic=True``: every access is atomic and ordered (QEMU's ``qatomic_*`` with barriers),
    so two threads may touch it without a lock; ``detect.find_races`` does not report it.
    """

    kind = "variable"

    def __init__(self, sim: Simulation, name: str, value: Any = 0, atomic: bool = False):
        validate.instance("sim", sim, Simulation, kind="a Simulation")
        validate.label("name", name)
        validate.flag("atomic", atomic, verb="is")
        self.sim = sim
        self.name = name
        self.atomic = atomic
        self._value = value
        self.initial = value
        self.oid = sim.register(self)
        self._load_op = Step(self._do_load)

    @property
    def value(self) -> Any:
        """The current value, read from outside the simulation (not a step)."""
        return self._value

    def load(self) -> Op:
        """``v = yield x.load()``: read the variable."""
        return self._load_op

    def store(self, value: Any) -> Op:
        """``yield x.store(v)``: write the variable."""
        return Step(partial(self._do_store, value=value))

    def increment(self, n: int = 1, expand: bool | None = None) -> Any:
        """``yield x.increment()``: add ``n``; three steps (load, add, store) when expanded."""
        validate.number("n", n)
        if expand is not None:
            validate.flag("expand", expand)
        if expand if expand is not None else self.sim.expand:
            return self._expanded_add(n)
        return self.qatomic_add(n)

    def qatomic_add(self, n: int = 1) -> Op:
        """``yield x.qatomic_add(n)``: add ``n`` in one indivisible step (QEMU: ``qatomic_add``)."""
        validate.number("n", n)
        return Step(partial(self._do_rmw, n=n))

    def qatomic_inc(self) -> Op:
        """One indivisible increment (QEMU: ``qatomic_inc``)."""
        return self.qatomic_add(1)

    def qatomic_cmpxchg(self, expected: Any, new: Any) -> Op:
        """``old = yield x.qatomic_cmpxchg(expected, new)``: if the value is ``expected``, make
        it ``new``; one indivisible step that returns the value it found (QEMU:
        ``qatomic_cmpxchg``). A compare that fails only reads."""
        return Step(partial(self._do_cmpxchg, expected=expected, new=new))

    def _do_cmpxchg(self, t: Thread, expected: Any, new: Any) -> bool:
        sim = self.sim
        old = self._value
        sim.record(tb.READ, t.tid, self.oid, old)
        if old == expected:
            self._value = new
            sim.record(tb.WRITE, t.tid, self.oid, new)
        t._value = old
        return True

    def _expanded_add(self, n: int):
        v = yield self._load_op
        yield Note(f"add {n}", v + n)
        yield self.store(v + n)

    def _do_load(self, t: Thread) -> bool:
        self.sim.record(tb.READ, t.tid, self.oid, self._value)
        t._value = self._value
        return True

    def _do_store(self, t: Thread, value: Any) -> bool:
        self._value = value
        self.sim.record(tb.WRITE, t.tid, self.oid, value)
        return True

    def _do_rmw(self, t: Thread, n: int) -> bool:
        sim = self.sim
        sim.record(tb.READ, t.tid, self.oid, self._value)
        self._value = self._value + n
        sim.record(tb.WRITE, t.tid, self.oid, self._value)
        t._value = self._value
        return True

    def __repr__(self) -> str:
        kind = "Shared, atomic" if self.atomic else "Shared"
        return f"<{kind} {self.name} = {self._value!r}>"
