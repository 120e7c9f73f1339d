"""Data races, after Eraser (Savage et al., 1997): the lockset that empties.

A shared variable that two threads write must be protected by some lock held at every access;
``find_races`` keeps, for each ``Shared`` variable, the set of locks held at all accesses so far
and reports the access that empties it, with the previous access by another thread.

Layer 5 (analysis): imports the kernel and the primitives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import tracebuf as tb
from ..kernel import RunResult, Simulation, simulation_of
from .lockdep import LOCK_KINDS

# --------------------------------------------------------------------------------------------
# Data races (Eraser's lockset)


@dataclass
class Access:
    thread: str
    op: str  # "read" or "write"
    time: float
    locks: frozenset[str]
    step: int

    def text(self) -> str:
        held = ", ".join(sorted(self.locks)) or "no lock"
        return f"{self.thread} {self.op}s at t={self.time:g} us holding {held}"


@dataclass
class RaceReport:
    """A shared variable written by several threads with no lock common to all accesses."""

    variable: str
    access: Access
    previous: Access
    history: list[Access] = field(default_factory=list, repr=False)

    def text(self) -> str:
        return (
            f"RACE on {self.variable}: no lock protects every access\n"
            f"  {self.access.text()}\n"
            f"  {self.previous.text()}  (the previous access by another thread)"
        )

    def __str__(self) -> str:
        return self.text()


def find_races(x: Simulation | RunResult) -> list[RaceReport]:
    """Eraser's lockset algorithm over the run's reads and writes of ``Shared`` variables.

    States per variable: untouched, exclusive to its first thread (no checks: initialisation),
    shared (read by others), shared-modified (written by another thread too). Once shared, the
    candidate set is the locks held at every access; in shared-modified an empty set is a race.
    One report per variable, at the first access that empties its set. Variables declared
    ``atomic`` (accessed only atomically, with barriers) are synchronisation, not data: skipped.
    """
    sim = simulation_of(
        x,
        needs_trace=True,
        untraced="this simulation ran with trace=False: the detectors read the trace",
    )
    objs = sim.objects
    names = [t.name for t in sim.threads]
    held: dict[int, list[str]] = {}
    state: dict[int, str] = {}
    owner: dict[int, int] = {}
    cands: dict[int, frozenset[str]] = {}
    last: dict[int, dict[int, Access]] = {}  # variable -> thread -> its latest access
    reported: dict[int, RaceReport] = {}
    for i, (t, k, tid, oid, a) in enumerate(zip(*sim.trace.columns(), strict=True)):
        if k in (tb.ACQUIRE, tb.RELEASE) and oid >= 0:
            obj = objs[oid]
            if getattr(obj, "kind", "") not in LOCK_KINDS:
                continue
            mine = held.setdefault(tid, [])
            if k == tb.ACQUIRE and obj.name not in mine:
                mine.append(obj.name)
            elif k == tb.RELEASE and a == 0 and obj.name in mine:
                mine.remove(obj.name)
            continue
        if k not in (tb.READ, tb.WRITE) or oid in reported or getattr(objs[oid], "atomic", False):
            continue
        op = "write" if k == tb.WRITE else "read"
        acc = Access(names[tid], op, t, frozenset(held.get(tid, ())), i)
        st = state.get(oid, "virgin")
        if st == "virgin":
            state[oid], owner[oid] = "exclusive", tid
        elif st == "exclusive":
            if tid != owner[oid]:
                state[oid] = "shared-modified" if op == "write" else "shared"
                cands[oid] = acc.locks
        else:
            cands[oid] = cands[oid] & acc.locks
            if op == "write":
                state[oid] = "shared-modified"
        by_thread = last.setdefault(oid, {})
        others = [p for who, p in by_thread.items() if who != tid]
        if state[oid] == "shared-modified" and not cands[oid] and others:
            reported[oid] = RaceReport(objs[oid].name, acc, max(others, key=lambda p: p.step))
        by_thread[tid] = acc
    return list(reported.values())
