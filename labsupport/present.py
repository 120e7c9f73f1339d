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
from pathlib import Path
from typing import Any

from . import tracebuf as tb
from .analysis.metrics import intervals
from .kernel import RunResult, Simulation, simulation_of

#: Okabe and Ito's colour-blind-safe palette.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
HATCHES = ["//", "\\\\", "..", "xx", "++", "oo", "--", "||"]


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


def trace_rows(x: Simulation | RunResult, reveal: bool = True) -> list[dict[str, Any]]:
    """The rows of the trace table as data: step, time, thread, text, choice, variables."""
    sim = simulation_of(x, needs_trace=True)
    tr = sim.trace
    variables = [o for o in sim.objects if getattr(o, "kind", "") == "variable"]
    values = {v.oid: v.initial for v in variables}
    rows = []
    pick: dict[int, str] = {}
    waiting: set[tuple[int, int]] = set()
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
        rows.append(
            {
                "step": len(rows) + 1,
                "time": tr.t[i],
                "thread": sim.threads[tid].name,
                "text": text,
                "choice": pick.pop(tid, ""),
                "values": {sim.objects[o].name: v for o, v in values.items()},
            }
        )
    return rows


def trace_table(
    x: Simulation | RunResult,
    reveal: bool = True,
    show_time: bool = True,
    max_rows: int = 200,
    width: int = 22,
) -> str:
    """An OSTEP-style table: a column per thread, a row per step, variables on the right.

    With ``reveal=False`` every value a learner could predict is printed as ``?``. The
    ``choice`` column shows, at each choice point, the character the schedule string recorded
    and how many threads could have moved (``1/2``: thread 1 went, 2 were ready).
    """
    sim = simulation_of(x, needs_trace=True)
    rows = trace_rows(sim, reveal)
    threads = [t.name for t in sim.threads]
    varnames = [o.name for o in sim.objects if getattr(o, "kind", "") == "variable"]
    used = {n: max([len(r["text"]) for r in rows if r["thread"] == n] or [0]) for n in threads}
    cols = [max(len(n), min(width, used[n])) for n in threads]
    head = f"{'step':>4} " + (f"{'t(us)':>7} " if show_time else "") + f"{'choice':>6}  "
    head += " ".join(f"{n:<{w}}" for n, w in zip(threads, cols))
    head += "".join(f" {v:>8}" for v in varnames)
    lines = [head.rstrip(), "-" * len(head.rstrip())]
    for r in rows[:max_rows]:
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
    if len(rows) > max_rows:
        lines.append(f"... {len(rows) - max_rows} more steps (max_rows={max_rows})")
    return "\n".join(lines)


def timeline_summary(x: Simulation | RunResult) -> str:
    """The timeline in words: for each thread, time running, blocked, and holding each lock."""
    sim = simulation_of(x, needs_trace=True)
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
    """A matplotlib figure: a row per thread; upper bar running or waiting, lower bar locks held."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    sim = simulation_of(x, needs_trace=True)
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
    sim = simulation_of(x, needs_trace=True)
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
    path = Path(path)
    path.write_text(json.dumps(chrome_trace(x), indent=None))
    return path
