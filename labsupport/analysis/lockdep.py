"""Lock order, after Linux's lockdep: a deadlock found before it happens.

Linux's lockdep does not wait for a deadlock. It learns, per lock *class*, which locks were held
when another was taken, and as soon as the learned order has a cycle (A before B here, B before A
there) it prints "possible circular locking dependency", even if the two threads never met.
``LockOrder`` does the same over this simulation's event stream (across several runs if you let
it learn from them), prints the report in lockdep's layout, and ``witness_deadlock`` then
searches seeded schedules for a run in which the possible deadlock really happens.

Layer 5 (analysis): imports the kernel and the primitives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .. import tracebuf as tb
from .. import validate
from ..kernel import RunResult, Simulation, run, simulation_of, state_repr

#: The kinds of object (``obj.kind``) that are locks, for the detectors.
LOCK_KINDS = frozenset({"mutex", "rec-mutex", "rfifolock", "rwlock", "co-mutex"})


def _class_of(obj: Any) -> str:
    return getattr(obj, "lock_class", None) or obj.name


# --------------------------------------------------------------------------------------------
# Lock order (lockdep)


@dataclass
class Dependency:
    """``held`` was held when ``taken`` was taken (or waited for): the first time it was seen."""

    held: str
    taken: str
    thread: str
    time: float
    run: int


@dataclass
class LockOrderReport:
    """A cycle in the learned lock order, with the dependencies that make it up."""

    cycle: list[str]  # lock classes, each taken while holding the one before it
    deps: list[Dependency]

    def text(self) -> str:
        """lockdep's layout: the warning, the chain, then the two-column scenario."""
        last = self.deps[-1]
        lines = [
            "======================================================",
            "WARNING: possible circular locking dependency detected",
            "------------------------------------------------------",
            f"{last.thread} is trying to acquire lock:",
            f"  ({last.taken})",
            "",
            "but task is already holding lock:",
            f"  ({last.held})",
            "",
            "which lock already depends on the new lock.",
            "",
            "the existing dependency chain (in reverse order) is:",
        ]
        for n, d in enumerate(reversed(self.deps)):
            lines.append(
                f"-> #{n} ({d.taken}): taken by {d.thread} while holding ({d.held}) "
                f"at t={d.time:g} us (run {d.run})"
            )
        if len(self.cycle) == 2:
            a, b = last.held, last.taken  # CPU0 is the task named above, as in lockdep
            w = 31
            lines += [
                "",
                " Possible unsafe locking scenario:",
                "",
                f"       {'CPU0':<{w}}CPU1",
                f"       {'----':<{w}}----",
                f"  lock({a});",
                f"       {'':<{w}}lock({b});",
                f"       {'':<{w}}lock({a});",
                f"  lock({b});",
                "",
                " *** DEADLOCK ***",
            ]
        else:
            lines += ["", " (a cycle of " + " -> ".join(self.cycle + [self.cycle[0]]) + ")"]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def _repr_pretty_(self, p, cycle):
        p.text(self.text())


class LockOrder:
    """The lock order learned from one run or many; ``reports()`` lists its cycles."""

    def __init__(self) -> None:
        self.deps: dict[tuple[str, str], Dependency] = {}
        self.runs = 0

    def __repr__(self) -> str:
        order = ", ".join(f"{a} -> {b}" for a, b in list(self.deps)[:4])
        more = f", +{len(self.deps) - 4} more" if len(self.deps) > 4 else ""
        return state_repr(
            self,
            f"runs:{self.runs}",
            f"dependencies:{len(self.deps)}" + (f" ({order}{more})" if order else ""),
            f"cycles:{len(self.reports())}",
        )

    def learn(self, x: Simulation | RunResult) -> LockOrder:
        """Add what one run did: for each lock taken (or waited for), the locks then held."""
        validate.instance("x", x, (Simulation, RunResult), kind="a Simulation or a RunResult")
        sim = simulation_of(
            x,
            needs_trace=True,
            untraced="this simulation ran with trace=False: the detectors read the trace",
        )
        self.runs += 1
        objs = sim.objects
        names = [t.name for t in sim.threads]
        held: dict[int, list[str]] = {}
        for t, k, tid, oid, a in zip(*sim.trace.columns(), strict=True):
            if k not in (tb.ACQUIRE, tb.RELEASE, tb.BLOCK) or oid < 0:
                continue
            obj = objs[oid]
            if getattr(obj, "kind", "") not in LOCK_KINDS:
                continue
            cls = _class_of(obj)
            mine = held.setdefault(tid, [])
            if k == tb.RELEASE:
                if a == 0 and cls in mine:
                    mine.remove(cls)
                continue
            if k == tb.ACQUIRE and a not in (1, -1):
                continue  # a recursive re-acquisition adds no order
            # taking a lock, or waiting for it, while holding others: each held one comes first
            for h in mine:
                if h != cls and (h, cls) not in self.deps:
                    self.deps[(h, cls)] = Dependency(h, cls, names[tid], t, self.runs)
            if k == tb.ACQUIRE:
                mine.append(cls)
        return self

    def reports(self) -> list[LockOrderReport]:
        """Every elementary cycle in the order graph, shortest first, each reported once."""
        graph: dict[str, list[str]] = {}
        for a, b in self.deps:
            graph.setdefault(a, []).append(b)
        found: list[list[str]] = []
        seen: set[frozenset[str]] = set()

        def dfs(start: str, node: str, path: list[str]) -> None:
            for nxt in sorted(graph.get(node, [])):
                if nxt == start:
                    key = frozenset(path)
                    if key not in seen:
                        seen.add(key)
                        found.append(list(path))
                elif nxt not in path and nxt > start:
                    dfs(start, nxt, path + [nxt])

        for start in sorted(graph):
            dfs(start, start, [start])
        found.sort(key=len)
        return [
            LockOrderReport(c, [self.deps[(c[i], c[(i + 1) % len(c)])] for i in range(len(c))])
            for c in found
        ]

    def report(self) -> str:
        """The first cycle's report, or a line saying the order is consistent."""
        reps = self.reports()
        if not reps:
            return (
                f"no lock-order cycle in {len(self.deps)} dependencies learned from "
                f"{self.runs} run(s)"
            )
        return reps[0].text()


def witness_deadlock(
    program: Callable[[Simulation], Any],
    cycle: Iterable[str] | None = None,
    seeds: Iterable[int] = range(500),
    **options: Any,
) -> RunResult | None:
    """Search seeded random schedules for a run that really deadlocks (on ``cycle``'s locks if
    given); return that run (replay it with ``result.replay()``; ``result.recipe()`` is the
    call) or None.

    ``cycle`` is one lock-class name (``"BQL"``) or a collection of them (``["BQL",
    "AioContext"]``); a lone string is one name, not the set of its letters."""
    validate.function("program", program, kind="a program function (sim -> model)")
    want = None
    if cycle is not None:
        kind = "a lock-class name or a collection of lock-class names"
        want = set(validate.labels("cycle", cycle, kind=kind))
    if not isinstance(seeds, range):
        seeds = validate.numbers("seeds", seeds, low=0, whole_numbers=True)
    options = {k: v for k, v in options.items() if k not in ("policy", "seed")}
    for seed in seeds:
        r = run(program, policy="random", seed=seed, **options)
        if r.outcome != "deadlock":
            continue
        if want is not None:
            locks = {
                _class_of(t.blocked_on)
                for t in r.sim.threads
                if t.state == "blocked" and t.blocked_on is not None
            }
            if not want <= locks | {_class_of(h) for t in r.sim.threads for h in t.held}:
                continue
        return r
    return None
