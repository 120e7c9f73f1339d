"""What a learner reads: trace tables, timelines, and traces for Perfetto.

The trace table follows OSTEP's homework simulators: one column per thread, one row per step,
the shared variables' values on the right, and ``reveal=False`` to print ``?`` wherever the
learner should predict. The timeline draws who ran, who waited and who held which lock; every
bar is labelled and hatched, so colour is never the only cue, and the figure has a white face
so it reads on a dark theme. ``chrome_trace`` writes the Trace Event JSON that Perfetto and
``chrome://tracing`` open.

Layer 6 (presentation): imports the kernel, the primitives and the analysis.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from . import tracebuf as tb
from . import validate
from .analysis.metrics import intervals
from .kernel import RunResult, Simulation, simulation_of

#: Okabe and Ito's colour-blind-safe palette.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
HATCHES = ["//", "\\\\", "..", "xx", "++", "oo", "--", "||"]
#: The narrowest a trace table's thread column may be asked to be (``width``): room for
#: ``unlock m``. A column is never narrower than its thread's name.
MIN_WIDTH = 8


def _step_text(sim: Simulation, i: int, reveal: bool, got: bool) -> str | None:
    tr = sim.trace
    k = tr.kind[i]
    oid = tr.obj[i]
    obj = sim.objects[oid] if oid >= 0 else None
    name = getattr(obj, "name", "?")
    arg = tr.decode(tr.arg[i])
    hide = (lambda v: "?") if not reveal else (lambda v: repr(v) if isinstance(v, str) else f"{v}")
    if k == tb.READ:
        return f"load {name} -> {hide(arg)}"
    if k == tb.WRITE:
        return f"store {name} = {hide(arg)}"
    if k == tb.OP:
        return name if arg is None else f"{name} -> {hide(arg)}"
    if k == tb.ACQUIRE:
        verb = {"rwlock": "rdlock" if arg == 1 else "wrlock"}.get(obj.kind, "lock")
        depth = f" (depth {arg})" if obj.kind == "rec-mutex" and arg > 1 else ""
        return f"got {name}" if got else f"{verb} {name}{depth}"
    if k == tb.RELEASE:
        return f"unlock {name}"
    if k == tb.BLOCK:
        if obj.kind == "host CPUs":
            return "wait for a CPU"
        by = f" ({sim.threads[arg].name} has it)" if arg >= 0 else ""
        return f"wait: {name}{by}"
    if k == tb.RUN:
        return f"compute {arg:g} us"
    if k == tb.SLEEP:
        return f"sleep {arg:g} us"
    if k == tb.EXIT:
        return "exit"
    if k == tb.SIGNAL:
        verbs = {
            "event": "reset" if arg == -1 else "set",
            "semaphore": "post",
            "condition": "signal",
            "bh": "schedule",
            "notifier": "set",
        }
        return f"{verbs.get(obj.kind, 'signal')} {name}"
    return None


#: The kinds of event that make a row of the trace table (the others, a spawn, a wake-up, a
#: choice or a mark, show only through the rows around them).
_ROW_KINDS = (
    tb.READ, tb.WRITE, tb.OP, tb.ACQUIRE, tb.RELEASE, tb.BLOCK, tb.RUN, tb.SLEEP, tb.EXIT,
    tb.SIGNAL,
)  # fmt: skip
_IS_ROW = np.isin(np.arange(len(tb.KIND_NAMES)), _ROW_KINDS)
#: How a row's text depends on its event's argument, for the widths pass: not at all (0), as
#: the digits of a whole number, so the smallest and the largest stand for all the others (1),
#: or in any other way, so each distinct argument counts (2).
_ARG_USE = np.full(len(tb.KIND_NAMES), 2, dtype=np.int8)
_ARG_USE[[tb.RELEASE, tb.EXIT]] = 0
_ARG_USE[[tb.READ, tb.WRITE, tb.OP]] = 1
_CHUNK = 1 << 16  # events per slice of the widths pass: its memory, whatever the run's length


def _check_x(x: Any) -> Simulation:
    """The traced simulation behind ``x``, refused by name if ``x`` is neither kind."""
    validate.instance("x", x, (Simulation, RunResult), kind="a Simulation or a RunResult")
    return simulation_of(x, needs_trace=True)


def _iter_rows(sim: Simulation, reveal: bool) -> Iterator[dict[str, Any]]:
    """The rows of the trace table, one at a time, from the first event on."""
    tr = sim.trace
    variables = [o for o in sim.objects if getattr(o, "kind", "") == "variable"]
    values = {v.oid: v.initial for v in variables}
    pick: dict[int, str] = {}
    waiting: set[tuple[int, int]] = set()
    step = 0
    for i in range(len(tr)):
        k = tr.kind[i]
        tid = tr.tid[i]
        if k == tb.CHOICE:
            pick[tid] = f"{sim.threads[tid].char}/{tr.decode(tr.arg[i])}"
            continue
        if k == tb.SPAWN:
            continue
        got = False
        if k == tb.BLOCK:
            waiting.add((tid, tr.obj[i]))
        elif k == tb.ACQUIRE and (tid, tr.obj[i]) in waiting:
            waiting.discard((tid, tr.obj[i]))
            got = True
        if k == tb.WRITE:
            values[tr.obj[i]] = tr.decode(tr.arg[i])
        text = _step_text(sim, i, reveal, got)
        if text is None:
            continue
        step += 1
        yield {
            "step": step,
            "time": tr.t[i],
            "thread": sim.threads[tid].name,
            "text": text,
            "choice": pick.pop(tid, ""),
            "values": {sim.objects[o].name: v for o, v in values.items()},
        }


def _object_classes(sim: Simulation) -> np.ndarray:
    """For object id ``oid``, at index ``oid + 1``: a number shared by the objects whose rows
    read the same (same kind, same name), so a million one-shot BHs count as one."""
    classes: dict[Any, int] = {}
    out = np.empty(len(sim.objects) + 1, dtype=np.int64)
    out[0] = 0  # oid -1: no object
    for oid, obj in enumerate(sim.objects):
        key = (getattr(obj, "kind", None), getattr(obj, "name", "?"))
        try:
            out[oid + 1] = classes.setdefault(key, len(classes) + 1)
        except TypeError:  # an unhashable name: a class of its own
            out[oid + 1] = len(classes) + 1 + len(sim.objects) + oid
    return out


def _scan(sim: Simulation, reveal: bool, width: int) -> tuple[int, dict[int, int]]:
    """One vectorised pass over the whole stream, a slice at a time: how many rows the table
    has, and for each thread id the length of its longest row text, counted only up to
    ``width`` (past it, a column is ``width`` wide whatever else it holds).

    A row's text depends only on its event's kind, its object's kind and name, its argument
    and whether an ACQUIRE ends a wait; so the texts of one representative event per distinct
    combination are measured (with ``_step_text`` itself), not every row's."""
    _t, kind, tid, obj, arg = sim.trace.columns()
    classes = _object_classes(sim)
    rows = 0
    longest: dict[int, int] = {}
    full = np.zeros(1 << 16, dtype=bool)  # thread ids (+ 32768) whose column is full already
    waited: dict[int, bool] = {}  # (tid, oid) key -> its last BLOCK/ACQUIRE was a BLOCK
    measured: dict[tuple[int, int], int] = {}
    for lo in range(0, len(kind), _CHUNK):
        hi = min(lo + _CHUNK, len(kind))
        # slices are copies, so the trace's own arrays never export a buffer (numpy views
        # would stop them from growing if the run went on)
        k = np.frombuffer(kind[lo:hi], dtype=np.int8)
        th = np.frombuffer(tid[lo:hi], dtype=np.int16).astype(np.int64)
        ob = np.frombuffer(obj[lo:hi], dtype=np.int32).astype(np.int64)
        is_row = _IS_ROW[k]
        rows += int(np.count_nonzero(is_row))
        # An ACQUIRE "got" a lock when the same thread's last BLOCK or ACQUIRE on that object
        # was a BLOCK (the wait it ends), in this slice or an earlier one.
        got = np.zeros(hi - lo, dtype=bool)
        ba = np.flatnonzero((k == tb.BLOCK) | (k == tb.ACQUIRE))
        if ba.size:
            key = (th[ba] << 32) | (ob[ba] & 0xFFFFFFFF)
            order = np.argsort(key, kind="stable")
            sk, si = key[order], ba[order]
            blocked = k[si] == tb.BLOCK
            first = np.ones(sk.size, dtype=bool)
            first[1:] = sk[1:] != sk[:-1]
            last = np.ones(sk.size, dtype=bool)
            last[:-1] = first[1:]
            before = np.zeros(sk.size, dtype=bool)
            before[1:] = blocked[:-1]
            before[first] = [waited.get(x, False) for x in sk[first].tolist()]
            got[si[~blocked & before]] = True
            waited.update(zip(sk[last].tolist(), blocked[last].tolist()))
        sel = np.flatnonzero(is_row & ~full[th + 32768])
        if not sel.size:
            continue
        kk = k[sel].astype(np.int64)
        aa = np.frombuffer(arg[lo:hi], dtype=np.int64)[sel]
        use = _ARG_USE[kk]
        aa = np.where(use == 0, 0, aa)
        # what the text depends on but the argument: object class, kind, got; then the thread
        what = (classes[ob[sel] + 1] * 16 + kk) * 2 + got[sel]
        group = (what << 16) | (th[sel] + 32768)
        digits = (use == 1) & (aa > tb.NONE_CODE) & (aa < tb.OBJ_BASE)
        reps = []
        for part, ends in ((np.flatnonzero(digits), True), (np.flatnonzero(~digits), False)):
            if not part.size:
                continue
            order = part[np.lexsort((aa[part], group[part]))]
            g, a = group[order], aa[order]
            new = np.ones(order.size, dtype=bool)
            if ends:  # the smallest and the largest whole number of each group
                new[1:] = g[1:] != g[:-1]
                new[:-1] |= g[1:] != g[:-1]
            else:  # each distinct argument of each group
                new[1:] = (g[1:] != g[:-1]) | (a[1:] != a[:-1])
            reps.append(order[new])
        for j in np.concatenate(reps).tolist():
            e = int(sel[j])  # the representative event, in this slice
            t = int(th[e])
            if full[t + 32768]:
                continue
            key2 = (int(what[j]), int(aa[j]))
            n = measured.get(key2)
            if n is None:
                n = measured[key2] = len(_step_text(sim, lo + e, reveal, bool(got[e])))
            if n > longest.get(t, -1):
                longest[t] = n
                if n >= width:
                    full[t + 32768] = True
    return rows, longest


def trace_rows(x: Simulation | RunResult, reveal: bool = True) -> list[dict[str, Any]]:
    """The rows of the trace table as data: step, time, thread, text, choice, variables."""
    sim = _check_x(x)
    validate.flag("reveal", reveal)
    return list(_iter_rows(sim, reveal))


def trace_table(
    x: Simulation | RunResult,
    reveal: bool = True,
    show_time: bool = True,
    max_rows: int | None = 200,
    width: int = 22,
) -> str:
    """An OSTEP-style table: a column per thread, a row per step, variables on the right.

    With ``reveal=False`` every value a learner could predict is printed as ``?``. The
    ``choice`` column shows, at each choice point, the character the schedule string recorded
    and how many threads could have moved (``1/2``: thread 1 went, 2 were ready). At most
    ``max_rows`` rows are printed (``None``: all of them), then how many more there were; a
    thread's column is as wide as its longest step, at most ``width`` characters (longer steps
    are cut), and never narrower than the thread's name.

    Only the rows printed are built: a run of millions of events prints its first rows after
    one vectorised pass over the stream (for the row count and the column widths).
    """
    sim = _check_x(x)
    validate.flag("reveal", reveal)
    validate.flag("show_time", show_time)
    if max_rows is not None:
        validate.whole("max_rows", max_rows, 1, kind="None or a whole number")
    validate.whole("width", width, MIN_WIDTH)
    total, longest = _scan(sim, reveal, width)
    threads = [t.name for t in sim.threads]
    varnames = [o.name for o in sim.objects if getattr(o, "kind", "") == "variable"]
    used = dict.fromkeys(threads, 0)
    for t in sim.threads:
        used[t.name] = max(used[t.name], longest.get(t.tid, 0))
    cols = [max(len(n), min(width, used[n])) for n in threads]
    head = f"{'step':>4} " + (f"{'t(us)':>7} " if show_time else "") + f"{'choice':>6}  "
    head += " ".join(f"{n:<{w}}" for n, w in zip(threads, cols))
    head += "".join(f" {v:>8}" for v in varnames)
    lines = [head.rstrip(), "-" * len(head.rstrip())]
    for r in islice(_iter_rows(sim, reveal), max_rows):
        line = f"{r['step']:>4} " + (f"{r['time']:>7g} " if show_time else "")
        line += f"{r['choice']:>6}  "
        cells = []
        for n, w in zip(threads, cols):
            text = r["text"] if r["thread"] == n else ""
            cells.append(f"{text[:w]:<{w}}")
        line += " ".join(cells)
        for v in varnames:
            val = r["values"].get(v)
            shown = "?" if not reveal else ("" if val is None else f"{val}")
            line += f" {shown:>8}"
        lines.append(line.rstrip())
    if max_rows is not None and total > max_rows:
        lines.append(f"... {total - max_rows} more steps (max_rows={max_rows})")
    return "\n".join(lines)


def timeline_summary(x: Simulation | RunResult) -> str:
    """The timeline in words: for each thread, time running, blocked, and holding each lock."""
    sim = _check_x(x)
    per: dict[str, dict[str, float]] = {t.name: {} for t in sim.threads}
    for iv in intervals(sim):
        key = {"run": "ran", "blocked": f"waited for {iv.obj}", "hold": f"held {iv.obj}"}[iv.what]
        per[iv.thread][key] = per[iv.thread].get(key, 0.0) + iv.length
    lines = [f"timeline of {sim.now:g} us:"]
    for name, parts in per.items():
        desc = ", ".join(f"{k} {v:g} us" for k, v in parts.items()) or "took no time"
        lines.append(f"  {name}: {desc}")
    return "\n".join(lines)


def timeline(x: Simulation | RunResult, title: str | None = None, ax: Any = None) -> Any:
    """A matplotlib figure: a row per thread; upper bar running or waiting, lower bar locks held.

    ``title`` replaces the default title; ``ax``, a matplotlib ``Axes``, draws into that axes
    (of a figure with other plots) instead of a new figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes
    from matplotlib.patches import Patch

    sim = _check_x(x)
    if title is not None:
        validate.instance("title", title, str, kind="None or a string")
    if ax is not None:
        validate.instance("ax", ax, Axes, kind="None or a matplotlib Axes (plt.subplots()[1])")
    ivs = intervals(sim)
    threads = [t.name for t in sim.threads]
    row = {n: len(threads) - 1 - i for i, n in enumerate(threads)}
    locks = sorted({iv.obj for iv in ivs if iv.what == "hold"})
    style = {
        name: (PALETTE[(i + 1) % len(PALETTE)], HATCHES[i % len(HATCHES)])
        for i, name in enumerate(locks)
    }
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 0.8 + 0.7 * len(threads)), facecolor="white")
    else:
        fig = ax.figure
    ax.set_facecolor("white")
    span = max(sim.now, 1e-9)
    for iv in ivs:
        y = row[iv.thread]
        length = max(iv.length, span / 400)
        if iv.what == "run":
            ax.broken_barh(
                [(iv.start, length)],
                (y + 0.5, 0.4),
                facecolors=PALETTE[0],
                edgecolor="black",
                linewidth=0.5,
            )
            label = "run"
        elif iv.what == "blocked":
            ax.broken_barh(
                [(iv.start, length)],
                (y + 0.5, 0.4),
                facecolors="#DDDDDD",
                edgecolor="black",
                hatch="xx",
                linewidth=0.5,
            )
            label = f"wait {iv.obj}"
        else:
            color, hatch = style[iv.obj]
            ax.broken_barh(
                [(iv.start, length)],
                (y + 0.08, 0.36),
                facecolors=color,
                edgecolor="black",
                hatch=hatch,
                linewidth=0.5,
                alpha=0.85,
            )
            label = iv.obj
        if length > span / 12:
            ty = y + 0.7 if iv.what != "hold" else y + 0.26
            ax.text(
                iv.start + length / 2,
                ty,
                label,
                ha="center",
                va="center",
                fontsize=8,
                bbox=dict(facecolor="white", edgecolor="none", pad=0.5, alpha=0.8),
            )
    ax.set_yticks([row[n] + 0.5 for n in threads])
    ax.set_yticklabels(threads)
    ax.set_ylim(0, len(threads))
    ax.set_xlim(0, span * 1.02)
    ax.set_xlabel("simulated time (us)")
    ax.grid(axis="x", alpha=0.3)
    handles = [
        Patch(facecolor=PALETTE[0], edgecolor="black", label="running on a CPU"),
        Patch(facecolor="#DDDDDD", edgecolor="black", hatch="xx", label="waiting"),
    ]
    handles += [
        Patch(facecolor=c, edgecolor="black", hatch=h, label=f"holds {n}")
        for n, (c, h) in style.items()
    ]
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.25 - 0.1 / len(threads)),
        ncol=min(4, len(handles)),
        fontsize=8,
        frameon=False,
    )
    ax.set_title(title or "who ran, waited and held which lock")
    fig.tight_layout()
    return fig


def chrome_trace(x: Simulation | RunResult) -> dict[str, Any]:
    """The run as Chrome Trace Event JSON (open it in Perfetto: ui.perfetto.dev).

    Running and waiting are complete ("X") slices on each thread's track; lock holding is an
    async slice, since holds of two locks need not nest; reads, writes and signals are instants.
    """
    sim = _check_x(x)
    tr = sim.trace
    events: list[dict[str, Any]] = [
        {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "simulation"}}
    ]
    for t in sim.threads:
        events.append(
            {"ph": "M", "pid": 1, "tid": t.tid, "name": "thread_name", "args": {"name": t.name}}
        )
    tid_of = {t.name: t.tid for t in sim.threads}
    for n, iv in enumerate(intervals(sim)):
        tid = tid_of[iv.thread]
        if iv.what == "hold":
            common = {"pid": 1, "tid": tid, "cat": "lock", "name": f"holds {iv.obj}", "id": n}
            events.append({**common, "ph": "b", "ts": iv.start})
            events.append({**common, "ph": "e", "ts": iv.end})
        else:
            name = "run" if iv.what == "run" else f"wait {iv.obj}"
            events.append(
                {
                    "ph": "X",
                    "pid": 1,
                    "tid": tid,
                    "cat": iv.what,
                    "name": name,
                    "ts": iv.start,
                    "dur": iv.length,
                }
            )
    for i in range(len(tr)):
        k = tr.kind[i]
        if k in (tb.READ, tb.WRITE, tb.SIGNAL, tb.MARK):
            obj = sim.objects[tr.obj[i]]
            arg = tr.decode(tr.arg[i])
            events.append(
                {
                    "ph": "i",
                    "s": "t",
                    "pid": 1,
                    "tid": max(tr.tid[i], 0),
                    "ts": tr.t[i],
                    "cat": tb.KIND_NAMES[k],
                    "name": f"{tb.KIND_NAMES[k]} {obj.name}",
                    "args": {"value": arg if isinstance(arg, (int, float, str)) else repr(arg)},
                }
            )
    return {
        "traceEvents": events,
        "displayTimeUnit": "ns",
        "otherData": {"seed": sim.seed, "schedule": sim.schedule},
    }


def save_chrome_trace(x: Simulation | RunResult, path: str | Path) -> Path:
    """Write ``chrome_trace(x)`` to ``path`` and return the path."""
    _check_x(x)
    validate.instance("path", path, (str, os.PathLike), kind="a file name (a str or a Path)")
    if isinstance(path, str) and not path.strip():
        raise ValueError(f"path must be a file name (a str or a Path); got {path!r}")
    path = Path(path)
    path.write_text(json.dumps(chrome_trace(x), indent=None))
    return path
