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


def intervals(x: Simulation | RunResult) -> list[Interval]:
    """Running, blocked and lock-holding intervals of every thread, in start order."""
    sim = _sim(x)
    tr = sim.trace
    names = [t.name for t in sim.threads]
    objs = sim.objects
    decode = tr.decode
    end_of_run = sim.now
    out: list[Interval] = []
    blocked: dict[int, tuple[float, int]] = {}
    holding: dict[tuple[int, int], float] = {}
    RUN, BLOCK, WAKE, ACQUIRE, RELEASE = tb.RUN, tb.BLOCK, tb.WAKE, tb.ACQUIRE, tb.RELEASE
    for t, k, tid, oid, a in zip(*tr.columns()):
        if k == RUN:
            out.append(Interval(names[tid], "run", "cpu", t, min(t + decode(a), end_of_run)))
        elif k == BLOCK:
            blocked[tid] = (t, oid)
        elif k == WAKE:
            b = blocked.pop(tid, None)
            if b is not None:
                out.append(Interval(names[tid], "blocked", objs[b[1]].name, b[0], t))
        elif k == ACQUIRE:
            key = (tid, oid)
            if key not in holding:
                holding[key] = t
        elif k == RELEASE:
            if a == 0:
                start = holding.pop((tid, oid), None)
                if start is not None:
                    out.append(Interval(names[tid], "hold", objs[oid].name, start, t))
    for tid, (start, oid) in blocked.items():
        out.append(Interval(names[tid], "blocked", objs[oid].name, start, end_of_run))
    for (tid, oid), start in holding.items():
        out.append(Interval(names[tid], "hold", objs[oid].name, start, end_of_run))
    out.sort(key=lambda iv: (iv.start, iv.thread, iv.what))
    return out


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
    """Compute the run's metrics from its event stream, in one pass with no per-event objects."""
    sim = _sim(x)
    tr = sim.trace
    objs = sim.objects
    decode = tr.decode
    end = sim.now
    nthreads = len(sim.threads)
    run_us = [0.0] * nthreads
    blocked_us = [0.0] * nthreads
    blocked: dict[int, float] = {}
    since: dict[tuple[int, int], float] = {}  # (thread, lock) -> when it started waiting
    holding: dict[tuple[int, int], float] = {}
    # per lock object: [acquisitions, contended, wait total, wait max, hold total, hold max]
    per_lock: dict[int, list[float]] = {}
    marks: dict[int, list] = {}
    RUN, BLOCK, WAKE, ACQUIRE, RELEASE, MARK = tb.RUN, tb.BLOCK, tb.WAKE, tb.ACQUIRE, tb.RELEASE, tb.MARK
    for t, k, tid, oid, a in zip(*tr.columns()):
        if k == RUN:
            d = decode(a)
            run_us[tid] += d if t + d <= end else end - t
        elif k == BLOCK:
            blocked[tid] = t
            since[(tid, oid)] = t
        elif k == WAKE:
            b = blocked.pop(tid, None)
            if b is not None:
                blocked_us[tid] += t - b
        elif k == ACQUIRE:
            key = (tid, oid)
            st = per_lock.get(oid)
            if st is None:
                st = per_lock[oid] = [0, 0, 0.0, 0.0, 0.0, 0.0]
            w = since.pop(key, None)
            if w is not None:
                st[1] += 1
                st[2] += t - w
                if t - w > st[3]:
                    st[3] = t - w
            if key not in holding:
                holding[key] = t
                st[0] += 1
        elif k == RELEASE:
            if a == 0:
                start = holding.pop((tid, oid), None)
                if start is not None:
                    st = per_lock[oid]
                    st[4] += t - start
                    if t - start > st[5]:
                        st[5] = t - start
        elif k == MARK:
            marks.setdefault(oid, []).append(decode(a))
    for tid, b in blocked.items():
        blocked_us[tid] += end - b
    for (tid, oid), start in holding.items():
        st = per_lock[oid]
        st[4] += end - start
        st[5] = max(st[5], end - start)
    locks: dict[str, LockStats] = {}
    for oid, st in per_lock.items():
        name = objs[oid].name
        prev = locks.get(name)
        if prev is None:
            locks[name] = LockStats(name, st[0], st[1], st[2], st[3], st[4], st[5])
        else:  # two locks with one name: add them up
            prev.acquisitions += st[0]
            prev.contended += st[1]
            prev.wait_total += st[2]
            prev.wait_max = max(prev.wait_max, st[3])
            prev.hold_total += st[4]
            prev.hold_max = max(prev.hold_max, st[5])
    mark_stats = {}
    for oid, lats in marks.items():
        name = objs[oid].name
        per_s = len(lats) / (end / 1e6) if end > 0 else math.nan
        mark_stats[name] = MarkStats(name, len(lats), per_s, [v for v in lats if v is not None])
    names = [t.name for t in sim.threads]
    util = sum(run_us) / (sim.cpus.n * end) if end > 0 else 0.0
    return Metrics(end, sim.cpus.n, util, dict(zip(names, run_us)), dict(zip(names, blocked_us)),
                   locks, mark_stats)
