"""Measurements over the event stream: who ran, who waited, who held which lock, how fast.

QEMU's own answer to "where does the time go" was a synchronisation profiler that counts, for
each lock and each caller, how long threads waited for it. Everything here is computed after a
run from the one event stream the kernel records, so measuring costs nothing while the model
runs and every number can be traced back to the events that produced it.

Layer 5 (analysis): imports the kernel and the primitives only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from . import tracebuf as tb
from .kernel import RunResult, Simulation


def _sim(x: Simulation | RunResult) -> Simulation:
    sim = x.sim if isinstance(x, RunResult) else x
    if not isinstance(sim, Simulation):
        raise TypeError(f"expected a Simulation or a RunResult; got {type(x).__name__}")
    if not sim.tracing and len(sim.trace) == 0:
        raise ValueError("this simulation ran with trace=False, so there is nothing to measure")
    return sim


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of ``values``; NaN if empty."""
    if not values:
        return math.nan
    s = sorted(values)
    k = max(1, math.ceil(p / 100 * len(s)))
    return s[k - 1]


@dataclass
class Interval:
    """Thread ``thread`` was ``what`` (running, blocked, holding) on ``obj`` from start to end."""

    thread: str
    what: str  # "run", "blocked", "hold"
    obj: str
    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start


def _scan(sim: Simulation) -> tuple[list[Interval], list[tuple[int, int, float]], dict[int, list]]:
    """One pass over the stream: intervals, lock waits (thread, lock, us) and marks by object."""
    tr = sim.trace
    names = [t.name for t in sim.threads]
    objs = sim.objects
    decode = tr.decode
    end_of_run = sim.now
    out: list[Interval] = []
    waits: list[tuple[int, int, float]] = []
    marks: dict[int, list] = {}
    blocked: dict[int, tuple[float, int]] = {}
    holding: dict[tuple[int, int], float] = {}
    blocked_since: dict[tuple[int, int], float] = {}
    RUN, BLOCK, WAKE, ACQUIRE, RELEASE, MARK = tb.RUN, tb.BLOCK, tb.WAKE, tb.ACQUIRE, tb.RELEASE, tb.MARK
    for t, k, tid, oid, a in zip(*tr.columns()):
        if k == RUN:
            out.append(Interval(names[tid], "run", "cpu", t, min(t + decode(a), end_of_run)))
        elif k == BLOCK:
            blocked[tid] = (t, oid)
            blocked_since[(tid, oid)] = t
        elif k == WAKE:
            b = blocked.pop(tid, None)
            if b is not None:
                out.append(Interval(names[tid], "blocked", objs[b[1]].name, b[0], t))
        elif k == ACQUIRE:
            key = (tid, oid)
            b = blocked_since.pop(key, None)
            if b is not None:
                waits.append((tid, oid, t - b))
            if key not in holding:
                holding[key] = t
        elif k == RELEASE:
            if a == 0:
                start = holding.pop((tid, oid), None)
                if start is not None:
                    out.append(Interval(names[tid], "hold", objs[oid].name, start, t))
        elif k == MARK:
            marks.setdefault(oid, []).append(decode(a))
    for tid, (start, oid) in blocked.items():
        out.append(Interval(names[tid], "blocked", objs[oid].name, start, end_of_run))
    for (tid, oid), start in holding.items():
        out.append(Interval(names[tid], "hold", objs[oid].name, start, end_of_run))
    out.sort(key=lambda iv: (iv.start, iv.thread, iv.what))
    return out, waits, marks


def intervals(x: Simulation | RunResult) -> list[Interval]:
    """Running, blocked and lock-holding intervals of every thread, in start order."""
    return _scan(_sim(x))[0]


@dataclass
class LockStats:
    """How one lock was used: acquisitions, how many had to wait, wait and hold times (us)."""

    name: str
    acquisitions: int = 0
    contended: int = 0
    wait_total: float = 0.0
    wait_max: float = 0.0
    hold_total: float = 0.0
    hold_max: float = 0.0


@dataclass
class MarkStats:
    """Completions recorded with ``sim.mark(name, since=start)``."""

    name: str
    count: int
    throughput_per_s: float
    latencies: list[float] = field(repr=False, default_factory=list)

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)


@dataclass
class Metrics:
    """Throughput, latency percentiles, per-lock wait and hold time and CPU use of one run."""

    duration_us: float
    cpus: int
    cpu_utilisation: float
    run_us: dict[str, float]
    blocked_us: dict[str, float]
    locks: dict[str, LockStats]
    marks: dict[str, MarkStats]

    def table(self) -> str:
        """The numbers as a fixed-width text table (what a screen reader and nbval read)."""
        lines = [
            f"simulated time: {self.duration_us:g} us on {self.cpus} host CPU(s), "
            f"CPU utilisation {self.cpu_utilisation:.0%}"
        ]
        if self.run_us:
            lines.append(f"{'thread':<12} {'ran (us)':>10} {'blocked (us)':>13}")
            for name in self.run_us:
                lines.append(f"{name:<12} {self.run_us[name]:>10g} {self.blocked_us[name]:>13g}")
        if self.locks:
            lines.append(
                f"{'lock':<12} {'acquired':>8} {'waited':>7} {'wait total':>11} {'wait max':>9} "
                f"{'hold total':>11} {'hold max':>9}"
            )
            for s in self.locks.values():
                lines.append(
                    f"{s.name:<12} {s.acquisitions:>8} {s.contended:>7} {s.wait_total:>11g} "
                    f"{s.wait_max:>9g} {s.hold_total:>11g} {s.hold_max:>9g}"
                )
        if self.marks:
            lines.append(f"{'completed':<12} {'count':>6} {'per second':>11} {'p50 us':>8} "
                         f"{'p99 us':>8}")
            for m in self.marks.values():
                lines.append(f"{m.name:<12} {m.count:>6} {m.throughput_per_s:>11.0f} "
                             f"{m.p(50):>8g} {m.p(99):>8g}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def metrics(x: Simulation | RunResult) -> Metrics:
    """Compute the run's metrics from its event stream."""
    sim = _sim(x)
    objs = sim.objects
    ivs, waits, marks = _scan(sim)
    run_us = {t.name: 0.0 for t in sim.threads}
    blocked_us = dict(run_us)
    locks: dict[str, LockStats] = {}
    for iv in ivs:
        if iv.what == "run":
            run_us[iv.thread] += iv.length
        elif iv.what == "blocked":
            blocked_us[iv.thread] += iv.length
        else:
            s = locks.setdefault(iv.obj, LockStats(iv.obj))
            s.acquisitions += 1
            s.hold_total += iv.length
            s.hold_max = max(s.hold_max, iv.length)
    for _tid, oid, w in waits:
        s = locks.setdefault(objs[oid].name, LockStats(objs[oid].name))
        s.contended += 1
        s.wait_total += w
        s.wait_max = max(s.wait_max, w)
    duration = sim.now
    mark_stats = {}
    for oid, lats in marks.items():
        name = objs[oid].name
        per_s = len(lats) / (duration / 1e6) if duration > 0 else math.nan
        mark_stats[name] = MarkStats(name, len(lats), per_s, [v for v in lats if v is not None])
    total_run = sum(run_us.values())
    util = total_run / (sim.cpus.n * duration) if duration > 0 else 0.0
    return Metrics(duration, sim.cpus.n, util, run_us, blocked_us, locks, mark_stats)
