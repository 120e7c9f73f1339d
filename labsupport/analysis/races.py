"""Data races: Eraser's lockset (Savage et al., 1997) with happens-before, as hybrid detectors do.

A shared variable that two threads write must be protected by some lock held at every access,
or its accesses must be ordered by some other synchronisation. Eraser keeps, for each
``Shared`` variable, the set of locks held at all accesses so far; a set that empties is a
candidate. Correct programs that synchronise without locks (a semaphore, an event, a condition
variable, a join, an atomic flag: the patterns of Downey's *Little Book of Semaphores*) empty
it too, so ``find_races`` also keeps vector clocks, as ThreadSanitizer does, and reports only a
pair of accesses that is neither ordered by happens-before nor protected by a common lock.

Locks are the lockset's business, not happens-before's (as in O'Callahan and Choi's hybrid
detector): an unlock followed by another thread's lock orders nothing here, so a variable that
one thread touches under the BQL and another with no lock is reported on every schedule, not
only on those where the two accesses happen to be close together.

Layer 5 (analysis): imports the kernel and the primitives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import tracebuf as tb
from ..kernel import RunResult, Simulation, simulation_of
from .lockdep import LOCK_KINDS

# --------------------------------------------------------------------------------------------
# Data races (Eraser's lockset, filtered by happens-before)

#: Kinds of object whose signal (a post, a set, a broadcast) happens-before the waits it lets
#: through: a thread's ``WAKE`` on them, whether it slept or found the way open.
_RELEASED_BY_SIGNAL = frozenset({"semaphore", "event"})


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
    """Two accesses to a shared variable by different threads, at least one a write, with no
    lock common to both and no synchronisation ordering them. ``history``: every earlier
    access that races with ``access`` (oldest first); ``previous`` is the latest of them."""

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


class _Clocks:
    """Vector clocks: one per thread, one per synchronisation object (keyed by its oid).

    A thread's own entry counts its releases; an access is stamped with that entry (its epoch),
    and an access by thread ``u`` stamped ``e`` happens-before everything of a thread whose
    clock has ``clock[u] >= e``.
    """

    def __init__(self, n: int):
        self.vc = [[1 if i == j else 0 for j in range(n)] for i in range(n)]
        self.sync: dict[int, list[int]] = {}

    @staticmethod
    def join_into(dst: list[int], src: list[int]) -> None:
        for i, v in enumerate(src):
            if v > dst[i]:
                dst[i] = v

    def release(self, tid: int, key: int) -> None:
        """What ``tid`` did so far happens-before whoever later acquires ``key``."""
        mine = self.vc[tid]
        into = self.sync.get(key)
        if into is None:
            self.sync[key] = list(mine)
        else:
            self.join_into(into, mine)
        mine[tid] += 1

    def acquire(self, tid: int, key: int) -> None:
        got = self.sync.get(key)
        if got is not None:
            self.join_into(self.vc[tid], got)


def find_races(x: Simulation | RunResult) -> list[RaceReport]:
    """Eraser's lockset over the run's reads and writes of ``Shared`` variables, with the pairs
    it suspects checked against happens-before.

    The lockset part is Eraser's. States per variable: untouched, exclusive to its first thread
    (initialisation: the locks it holds are not counted), shared (read by others),
    shared-modified (written by another thread too). Once shared, the candidate set is the
    locks held at every access; in shared-modified an empty set makes the access suspect.

    A suspect access is reported only if some earlier access by another thread (at least one
    of the two a write) holds no lock in common with it and does not happen-before it. The
    happens-before edges: a semaphore's post before the waits after it; an event's set before
    the waits after it; a condition's signal or broadcast before the return of the waits it
    finds waiting; a thread's spawn before its first step; a thread's exit before the join that sees
    it; an atomic variable's store before its later loads (release, acquire). Lock hand-overs
    are left to the lockset. One report per variable, at the first racing access. Variables
    declared ``atomic`` (accessed only atomically, with barriers) are synchronisation, not
    data: never reported.
    """
    sim = simulation_of(
        x,
        needs_trace=True,
        untraced="this simulation ran with trace=False: the detectors read the trace",
    )
    objs = sim.objects
    names = [t.name for t in sim.threads]
    kind_of = [getattr(o, "kind", "") for o in objs]
    clocks = _Clocks(len(names))
    vc = clocks.vc
    held: dict[int, list[str]] = {}
    cond_wait: dict[int, tuple[int, list[int]]] = {}  # thread -> (condition, signals seen)
    state: dict[int, str] = {}
    owner: dict[int, int] = {}
    cands: dict[int, frozenset[str]] = {}
    # variable -> (thread, op, locks) -> (that thread's latest such access, its epoch)
    seen: dict[int, dict[tuple[int, str, frozenset[str]], tuple[Access, int]]] = {}
    reported: dict[int, RaceReport] = {}
    for i, (t, k, tid, oid, a) in enumerate(zip(*sim.trace.columns(), strict=True)):
        if cond_wait and tid in cond_wait:
            # its first event after a condition wait (the mutex taken, or waited for) ends it
            clocks.join_into(vc[tid], cond_wait.pop(tid)[1])
        if k == tb.READ or k == tb.WRITE:
            if getattr(objs[oid], "atomic", False):  # release on store, acquire on load
                (clocks.release if k == tb.WRITE else clocks.acquire)(tid, oid)
                continue
            if oid in reported:
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
            mine = vc[tid]
            accesses = seen.setdefault(oid, {})
            if state[oid] == "shared-modified" and not cands[oid]:
                racing = [
                    p
                    for (who, p_op, p_locks), (p, epoch) in accesses.items()
                    if who != tid
                    and "write" in (op, p_op)
                    and not p_locks & acc.locks
                    and mine[who] < epoch
                ]
                if racing:
                    racing.sort(key=lambda p: p.step)
                    reported[oid] = RaceReport(objs[oid].name, acc, racing[-1], racing)
                    continue
            accesses[(tid, op, acc.locks)] = (acc, mine[tid])
        elif k == tb.ACQUIRE or k == tb.RELEASE:
            if oid < 0 or kind_of[oid] not in LOCK_KINDS:
                continue
            name = objs[oid].name
            mine_held = held.setdefault(tid, [])
            if k == tb.ACQUIRE and name not in mine_held:
                mine_held.append(name)
            elif k == tb.RELEASE and a == 0 and name in mine_held:
                mine_held.remove(name)
        elif k == tb.SIGNAL:
            kind = kind_of[oid]
            if kind in _RELEASED_BY_SIGNAL:
                if not (kind == "event" and a == -1):  # a reset publishes nothing
                    clocks.release(tid, oid)
            elif kind == "condition":
                for c, pending in cond_wait.values():
                    if c == oid:
                        clocks.join_into(pending, vc[tid])
                vc[tid][tid] += 1
        elif k == tb.WAKE:
            kind = kind_of[oid]
            if kind in _RELEASED_BY_SIGNAL or kind == "thread":
                clocks.acquire(tid, oid)
        elif k == tb.BLOCK:
            if kind_of[oid] == "condition":
                cond_wait[tid] = (oid, [0] * len(names))
        elif k == tb.EXIT:
            clocks.release(tid, oid)  # for the joins (a WAKE on this thread's oid)
        elif k == tb.SPAWN:
            if 0 <= a < len(names):  # spawned by a running thread: everything it did so far
                clocks.join_into(vc[tid], vc[a])
                vc[a][a] += 1
    return list(reported.values())
