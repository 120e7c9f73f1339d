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
from typing import TYPE_CHECKING

from .. import tracebuf as tb
from .. import validate
from ..kernel import RunResult, Simulation, simulation_of
from ..optional import need
from ..stats import percentile  # the one definition (nearest rank); re-exported here

if TYPE_CHECKING:
    import numpy as np


def _numpy():
    """numpy, which the vectorised pairing below needs (one line where it is missing)."""
    return need("numpy", "Timing analysis (metrics, intervals, timelines)")


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


@dataclass
class _Walk:
    """What one pass over the stream pairs up, as numpy arrays (one row per interval)."""

    runs: tuple  # thread, start, end
    blocks: tuple  # thread, object, start, end
    holds: tuple  # thread, lock, start, end
    waits: tuple  # thread, lock, waited us (a block that ended in that lock's acquisition)
    marks: tuple  # object, latency (NaN where none was given)


def _numbers(tr: tb.TraceBuffer, codes: np.ndarray) -> np.ndarray:
    """Decode argument codes that hold numbers (durations, latencies); None becomes NaN."""
    np = _numpy()
    out = codes.astype(np.float64)
    big = codes >= tb.OBJ_BASE
    if big.any():
        out[big] = [tr.decode(int(c)) for c in codes[big]]
    out[codes == tb.NONE_CODE] = np.nan
    return out


def _walk(sim: Simulation) -> _Walk:
    """Pair the stream's events into intervals: the one place that knows how they pair.

    The rules are those of ``tracebuf``: a RUN carries its duration; a BLOCK lasts until the
    same thread's next event; a hold runs from an ACQUIRE at depth 1 to the RELEASE that leaves
    depth 0. Everything is done with array operations over the columns, so measuring a run of
    a million events takes a fraction of the time the run took.
    """
    np = _numpy()
    cols = sim.trace.columns()
    t, k, tid, oid, arg = (np.frombuffer(c, dtype=c.typecode).copy() for c in cols)
    end = sim.now
    n = len(k)
    # runs
    m = k == tb.RUN
    r_start = t[m]
    runs = (tid[m], r_start, np.minimum(r_start + _numbers(sim.trace, arg[m]), end))
    # blocks: the next event of the same thread ends them
    order = np.argsort(tid, kind="stable")
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n)
    b = np.nonzero(k == tb.BLOCK)[0]
    nxt_pos = pos[b] + 1
    nxt = order[np.minimum(nxt_pos, n - 1)] if n else b
    ended = (nxt_pos < n) & (tid[nxt] == tid[b])
    b_end = np.where(ended, t[nxt], end)
    blocks = (tid[b], oid[b], t[b], b_end)
    w = ended & (k[nxt] == tb.ACQUIRE) & (oid[nxt] == oid[b])
    waits = (tid[b][w], oid[b][w], (b_end - t[b])[w])
    # holds: starts and ends alternate within each (lock, thread)
    is_start = (k == tb.ACQUIRE) & ((arg == 1) | (arg == -1))
    idx = np.nonzero(is_start | ((k == tb.RELEASE) & (arg == 0)))[0]
    key = oid[idx].astype(np.int64) * 65536 + tid[idx]
    srt = np.argsort(key, kind="stable")
    idx, key = idx[srt], key[srt]
    starts = np.nonzero(is_start[idx])[0]
    closed = starts + 1 < len(idx)
    nx = np.minimum(starts + 1, max(len(idx) - 1, 0))
    closed &= (key[nx] == key[starts]) & ~is_start[idx[nx]]
    s_idx = idx[starts]
    h_end = np.where(closed, t[idx[nx]], end)
    holds = (tid[s_idx], oid[s_idx], t[s_idx], h_end)
    m = k == tb.MARK
    marks = (oid[m], _numbers(sim.trace, arg[m]))
    return _Walk(runs, blocks, holds, waits, marks)


def intervals(x: Simulation | RunResult) -> list[Interval]:
    """Running, blocked and lock-holding intervals of every thread, in start order."""
    validate.instance("x", x, (Simulation, RunResult), kind="a Simulation or a RunResult")
    sim = simulation_of(x, needs_trace=True)
    w = _walk(sim)
    names = [t.name for t in sim.threads]
    objs = sim.objects
    tid, a, b = (x.tolist() for x in w.runs)
    out = [Interval(names[i], "run", "cpu", s, e) for i, s, e in zip(tid, a, b, strict=True)]
    for what, (tid, oid, a, b) in (("blocked", w.blocks), ("hold", w.holds)):
        out += [
            Interval(names[i], what, objs[o].name, s, e)
            for i, o, s, e in zip(*(x.tolist() for x in (tid, oid, a, b)), strict=True)
        ]
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
        validate.number("q", q, low=0, high=100, low_open=True, kind="a percentage")
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
            lines.append(
                f"{'completed':<12} {'count':>6} {'per second':>11} {'p50 us':>8} {'p99 us':>8}"
            )
            for m in self.marks.values():
                lines.append(
                    f"{m.name:<12} {m.count:>6} {m.throughput_per_s:>11.0f} "
                    f"{m.p(50):>8g} {m.p(99):>8g}"
                )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def metrics(x: Simulation | RunResult) -> Metrics:
    """Compute the run's metrics from its event stream."""
    validate.instance("x", x, (Simulation, RunResult), kind="a Simulation or a RunResult")
    sim = simulation_of(x, needs_trace=True)
    np = _numpy()
    objs = sim.objects
    end = sim.now
    w = _walk(sim)
    names = [t.name for t in sim.threads]
    nt = len(names)
    run_us = np.bincount(w.runs[0], weights=w.runs[2] - w.runs[1], minlength=nt)
    blocked_us = np.bincount(w.blocks[0], weights=w.blocks[3] - w.blocks[2], minlength=nt)
    locks: dict[str, LockStats] = {}

    def stats(oid: int) -> LockStats:
        name = objs[oid].name  # two locks with one name are added up
        return locks.setdefault(name, LockStats(name))

    h_tid, h_oid, h_start, h_end = w.holds
    for oid in np.unique(h_oid).tolist():
        held = (h_end - h_start)[h_oid == oid]
        s = stats(oid)
        s.acquisitions += len(held)
        s.hold_total += float(held.sum())
        s.hold_max = max(s.hold_max, float(held.max()))
    _tid, w_oid, waited = w.waits
    for oid in np.unique(w_oid).tolist():
        these = waited[w_oid == oid]
        s = stats(oid)
        s.contended += len(these)
        s.wait_total += float(these.sum())
        s.wait_max = max(s.wait_max, float(these.max()))
    mark_stats = {}
    m_oid, m_lat = w.marks
    for oid in np.unique(m_oid).tolist():
        lats = m_lat[m_oid == oid]
        name = objs[oid].name
        per_s = len(lats) / (end / 1e6) if end > 0 else math.nan
        mark_stats[name] = MarkStats(name, len(lats), per_s, lats[~np.isnan(lats)].tolist())
    util = float(run_us.sum()) / (sim.cpus.n * end) if end > 0 else 0.0
    return Metrics(
        end,
        sim.cpus.n,
        util,
        dict(zip(names, run_us.tolist(), strict=True)),
        dict(zip(names, blocked_us.tolist(), strict=True)),
        locks,
        mark_stats,
    )
