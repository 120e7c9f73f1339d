"""What a learner reads: trace tables, timelines, and traces for Perfetto.

The trace table follows OSTEP's homework simulators: one column per thread, one row per step,
the shared variables' values on the right, and ``reveal=False`` to print ``?`` wherever the
learner should predict. It fits in ``LINE_WIDTH`` (100) columns when it can: a long step wraps
onto the next line between words (no name is ever cut), long variable names give way to short
tags explained under the table, a table that cannot fit says how to narrow it, and a line under
the table reads the choice column. The timeline draws who ran, who slept in a system call, who
waited (for a CPU, a lock, in ``aio_poll``) and who held which lock; every kind of bar has its
own hatch, so colour is never the only cue, the legend lists only what is drawn, and figures
have white faces so they read on a dark theme (``new_figure``, for the chapters' figures too,
with ``FONT_SIZE`` as their smallest type). ``chrome_trace`` writes the Trace Event JSON that
Perfetto and ``chrome://tracing`` open.

Layer 6 (presentation): imports the kernel, the primitives and the analysis.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from . import tracebuf as tb
from . import validate
from .analysis.metrics import intervals
from .kernel import RunResult, Simulation, simulation_of
from .optional import need

#: Okabe and Ito's colour-blind-safe palette.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
HATCHES = ["//", "\\\\", "..", "xx", "++", "oo", "--", "||"]
#: The narrowest a trace table's thread column may be asked to be (``width``): room for
#: ``unlock m``. A column is never narrower than its thread's name or its longest word.
MIN_WIDTH = 8
#: The widest a trace table's line should be: what a notebook shows without a scroll bar.
#: A table that cannot fit says how to narrow it.
LINE_WIDTH = 100
#: The narrowest a column is squeezed to make a table fit (unless ``width`` or its steps are
#: narrower): below it, steps break over three lines or more, and a table reads better with
#: fewer columns (``threads=``, ``variables=``).
SQUEEZE_WIDTH = 14


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
        if arg < 0:
            return f"wait: {name}"
        who = sim.threads[arg].name
        link = getattr(obj, "holder_link", "held by")  # a waitable says how to name its holder
        if link == "held by":
            return f"wait: {name} ({who} has it)"
        return f"wait: {name} ({link} {who})"  # an AioContext: "to be woken by main-loop"
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
#: A variable whose name is at most this long keeps it as its column's heading when the other
#: names move to the legend (``done``, ``status``: as short as a tag would be).
_SHORT_NAME = 6


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


def _count_rows(sim: Simulation, tids: list[int] | None) -> int:
    """How many rows the whole run's table has (only the rows of threads ``tids``, unless
    None): one pass over the typed columns, counting in C where no thread is left out."""
    _t, kind, tid, _obj, _arg = sim.trace.columns()
    if tids is None:
        counts = Counter(kind)
        return sum(counts[k] for k in _ROW_KINDS)
    shown, rows = frozenset(tids), frozenset(_ROW_KINDS)
    return sum(1 for k, t in zip(kind, tid) if t in shown and k in rows)


def trace_rows(x: Simulation | RunResult, reveal: bool = True) -> list[dict[str, Any]]:
    """The rows of the trace table as data: step, time, thread, text, choice, variables."""
    sim = _check_x(x)
    validate.flag("reveal", reveal)
    return list(_iter_rows(sim, reveal))


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken only between words, so no
    name is ever cut (a word longer than ``width`` keeps a line of its own). A part in
    parentheses that fits on a line stays on one (``wait: BQL`` / ``(vcpu0 has it)``). Joined
    with spaces, the lines are ``text`` again."""
    units: list[str] = []
    group: list[str] = []
    for word in text.split(" "):
        if group or word.startswith("("):
            group.append(word)
            if word.endswith(")"):
                joined = " ".join(group)
                units += [joined] if len(joined) <= width else group
                group = []
        else:
            units.append(word)
    units += group  # an unclosed parenthesis: its words one by one
    lines: list[str] = []
    line: str | None = None
    for unit in units:
        if line is None:
            line = unit
        elif len(line) + 1 + len(unit) > width:
            lines.append(line)
            line = unit
        else:
            line += " " + unit
    lines.append(line or "")
    return lines


def _wrap_cost(texts: Counter, width: int) -> int:
    """How much wrapping ``texts`` (steps, counted) to ``width`` costs the reader: the square
    of each step's lines, so two steps on two lines each cost less than one on three."""
    return sum(len(_wrap(t, width)) ** 2 * n for t, n in texts.items())


def _shrink(natural: list[int], floor: list[int], room: int, texts: list[Counter]) -> list[int]:
    """Column widths that add up to at most ``room``, none below its ``floor``: a character at
    a time, from the column where it costs the reader least (``_wrap_cost`` of ``texts``, each
    column's steps, counted), the widest of those first. If the floors add up to more, the
    floors."""
    cols = list(natural)
    memo: dict[tuple[int, int], int] = {}

    def lines(i: int, w: int) -> int:
        if (i, w) not in memo:
            memo[i, w] = _wrap_cost(texts[i], w)
        return memo[i, w]

    while sum(cols) > room:
        wide = [i for i in range(len(cols)) if cols[i] > floor[i]]
        if not wide:
            break
        i = min(wide, key=lambda i: (lines(i, cols[i] - 1) - lines(i, cols[i]), -cols[i]))
        cols[i] -= 1
    return cols


def _value_text(r: dict[str, Any], name: str, reveal: bool) -> str:
    """What a variable's column shows on row ``r``."""
    if not reveal:
        return "?"
    val = r["values"].get(name)
    return "" if val is None else f"{val}"


def _fill(items: list[str], lead: str) -> list[str]:
    """``items`` after ``lead``, comma-separated, in lines of at most ``LINE_WIDTH``."""
    lines, line = [], lead
    for n, item in enumerate(items):
        piece = item + ("," if n < len(items) - 1 else "")
        if n and len(line) + 1 + len(piece) > LINE_WIDTH:
            lines.append(line)
            line = " " * len(lead)
        line += " " + piece
    lines.append(line)
    return lines


def table_text(
    rows: list[dict[str, Any]],
    threads: list[str],
    variables: list[str],
    total: int,
    reveal: bool = True,
    show_time: bool = True,
    max_rows: int | None = 200,
    width: int = 22,
) -> str:
    """Lay out trace rows (``trace_rows``'s dicts, the first ``max_rows`` of ``total``) as the
    trace table: ``trace_table`` without reading a run, so any list of rows can be printed.

    The rules: each thread's column is as wide as its longest step, at most ``width``, and
    never narrower than the thread's name or the longest word of its steps; a longer step wraps
    onto the next lines, between words. A table wider than ``LINE_WIDTH`` narrows its widest
    columns first, down to those floors, and gives long variable names short tags (``v1``),
    explained in a legend under it, when that makes it fit or shorter. A table that still does
    not fit ends with a line that says how to narrow it; one with a choice column ends with a
    line that reads one of its choices.
    """
    texts: dict[str, list[str]] = {n: [] for n in threads}
    for r in rows:
        texts[r["thread"]].append(r["text"])
    counted = [Counter(texts[n]) for n in threads]
    longest = {n: max(map(len, ts), default=0) for n, ts in texts.items()}
    word = {
        n: max((len(w) for t in ts for w in t.split(" ")), default=0) for n, ts in texts.items()
    }
    natural = [max(len(n), word[n], min(width, longest[n])) for n in threads]
    floor = [max(len(n), word[n], min(longest[n], width, SQUEEZE_WIDTH)) for n in threads]
    shown_width = {
        v: max((len(_value_text(r, v, reveal)) for r in rows), default=0) for v in variables
    }
    has_choice = any(r["choice"] for r in rows)
    tw = max((len(f"{r['time']:g}") for r in rows), default=0)
    tw = max(tw, len("t(us)")) if show_time else -1  # the time column and its space
    prefix = 5 + (tw + 1) + (7 if has_choice else 0) + 1
    gaps = max(len(threads) - 1, 0)

    def layout(heads: list[str]) -> tuple[list[int], list[int], int]:
        var_cols = [max(len(h), shown_width[v]) for h, v in zip(heads, variables)]
        room = LINE_WIDTH - prefix - gaps - sum(1 + w for w in var_cols)
        cols = _shrink(natural, floor, room, counted)
        return cols, var_cols, prefix + sum(cols) + gaps + sum(1 + w for w in var_cols)

    # Two candidates: every variable under its name, and long names as tags with a legend.
    # The one that fits wins, then the one that wraps less (a tag and a legend line cost as
    # much as a wrapped step), then names.
    tags: list[str] = []
    for v in variables:
        long = len(v) > max(shown_width[v], _SHORT_NAME)
        tags.append(f"v{sum(t != u for t, u in zip(tags, variables)) + 1}" if long else v)
    candidates = []
    for heads in [list(variables)] + ([tags] if tags != variables else []):
        cols, var_cols, line_width = layout(heads)
        legend = _fill([f"{h} = {v}" for h, v in zip(heads, variables) if h != v], "variables:")
        legend = legend if legend != ["variables:"] else []
        cost = sum(_wrap_cost(c, w) for c, w in zip(counted, cols))
        cost += len(legend) + sum(h != v for h, v in zip(heads, variables))  # tags cost too
        fits = line_width <= LINE_WIDTH
        candidates.append((not fits, cost, heads, cols, var_cols, line_width, legend))
    # a table that cannot fit: the narrower candidate
    _unfit, _cost, heads, cols, var_cols, line_width, legend = min(
        candidates, key=lambda c: (c[0], c[5] if c[0] else 0, c[1])
    )

    head = f"{'step':>4} " + (f"{'t(us)':>{tw}} " if show_time else "")
    head += (f"{'choice':>6} " if has_choice else "") + " "
    head += " ".join(f"{n:<{w}}" for n, w in zip(threads, cols))
    head += "".join(f" {h:>{w}}" for h, w in zip(heads, var_cols))
    lines = [head.rstrip(), "-" * len(head.rstrip())]
    blank = " " * prefix
    for r in rows:
        first = f"{r['step']:>4} " + (f"{r['time']:>{tw}g} " if show_time else "")
        first += (f"{r['choice']:>6} " if has_choice else "") + " "
        parts = _wrap(r["text"], cols[threads.index(r["thread"])])
        for k, part in enumerate(parts):
            cells = [f"{part if n == r['thread'] else '':<{w}}" for n, w in zip(threads, cols)]
            line = (first if k == 0 else blank) + " ".join(cells)
            if k == 0:
                line += "".join(
                    f" {_value_text(r, v, reveal):>{w}}" for v, w in zip(variables, var_cols)
                )
            lines.append(line.rstrip())
    if max_rows is not None and total > max_rows:
        lines.append(f"... {total - max_rows} more steps (max_rows={max_rows})")
    lines += legend
    if has_choice:
        r = next(r for r in rows if r["choice"])
        char, ready = r["choice"].split("/")
        lines.append(
            f"choice {r['choice']}: thread {char} ({r['thread']}) went, {ready} could have"
        )
    if line_width > LINE_WIDTH:
        lines.append(
            f"{line_width} columns: show fewer with threads=[...] or variables=[...]"
            + (", or show_time=False" if show_time else "")
        )
    return "\n".join(lines)


def trace_table(
    x: Simulation | RunResult,
    reveal: bool = True,
    show_time: bool = True,
    max_rows: int | None = 200,
    width: int = 22,
    threads: list[str] | None = None,
    variables: list[str] | None = None,
) -> str:
    """An OSTEP-style table: a column per thread, a row per step, variables on the right.

    With ``reveal=False`` every value a learner could predict is printed as ``?``. The
    ``choice`` column shows, at each choice point, the character the schedule string recorded
    and how many threads could have moved (``1/2``: thread 1 went, 2 could have); a line under
    the table reads one of them. At most ``max_rows`` rows are printed (``None``: all of them),
    then how many more there were. A thread's column is at most ``width`` characters wide (a
    longer step wraps onto the next line, between words), and the table fits in
    ``LINE_WIDTH`` columns when it can (``table_text`` has the rules). ``threads`` and
    ``variables``, lists of names, show only those columns (and only those threads' rows,
    numbered as in the whole run): the way to narrow a table that does not fit.

    Only the rows printed are built: a run of millions of events prints its first rows after
    one vectorised pass over the stream (to count the rest).
    """
    sim = _check_x(x)
    validate.flag("reveal", reveal)
    validate.flag("show_time", show_time)
    if max_rows is not None:
        validate.whole("max_rows", max_rows, 1, kind="None or a whole number")
    validate.whole("width", width, MIN_WIDTH)
    names = [t.name for t in sim.threads]
    varnames = [o.name for o in sim.objects if getattr(o, "kind", "") == "variable"]
    tids = None
    if threads is not None:
        wanted = validate.items("threads", threads, kind="None or a list of thread names")
        for n in wanted:
            validate.choice("threads", n, names)
        tids = [t.tid for t in sim.threads if t.name in wanted]
        names = [n for n in names if n in wanted]
    if variables is not None:
        wanted = validate.items("variables", variables, kind="None or a list of variable names")
        for v in wanted:
            validate.choice("variables", v, varnames)
        varnames = [v for v in varnames if v in wanted]
    rows: Iterator[dict[str, Any]] = _iter_rows(sim, reveal)
    if threads is not None:
        rows = (r for r in rows if r["thread"] in names)
    printed = list(islice(rows, max_rows))
    total = _count_rows(sim, tids)
    return table_text(printed, names, varnames, total, reveal, show_time, max_rows, width)


#: What a thread does, as the upper bar of its row in a timeline: the legend's words, the
#: face colour and the hatch (each kind its own, so colour is never the only cue).
ACTIVITIES = {
    "run": ("running on a CPU", PALETTE[0], ""),
    "sleep": ("asleep, no CPU: a system call or a timer", PALETTE[6], "//"),
    "cpu": ("waiting for a CPU", "#BBBBBB", ".."),
    "poll": ("asleep in aio_poll, waiting for work", "white", "--"),
    "wait": ("waiting for a lock or an event", "#DDDDDD", "xx"),
}


def activities(x: Simulation | RunResult) -> list[tuple[str, str, str, float, float]]:
    """What each thread did, in start order: ``(thread, activity, object, start, end)``, an
    activity being a key of ``ACTIVITIES`` (``"sleep"``: a ``sleep()``, in the models a
    blocking system call such as ``read()`` or a slow ``io_submit``; ``"poll"``: blocked on
    an AioContext, in ``aio_poll``), or ``"hold"`` for a lock held. An interval may have no
    length (a lock taken and released at one instant of a program that takes no time)."""
    sim = _check_x(x)
    tr = sim.trace
    kinds = {}  # (thread, start, object name) of a BLOCK -> its object's kind
    sleeps = []
    for i in range(len(tr)):
        k = tr.kind[i]
        if k == tb.BLOCK:
            obj = sim.objects[tr.obj[i]]
            kinds[sim.threads[tr.tid[i]].name, tr.t[i], obj.name] = obj.kind
        elif k == tb.SLEEP:
            start = tr.t[i]
            end = min(start + tr.decode(tr.arg[i]), sim.now)
            sleeps.append((sim.threads[tr.tid[i]].name, "sleep", "", start, end))
    out = []
    for iv in intervals(sim):
        what = iv.what
        if what == "blocked":
            kind = kinds.get((iv.thread, iv.start, iv.obj))
            what = {"host CPUs": "cpu", "AioContext": "poll"}.get(kind, "wait")
        out.append((iv.thread, what, iv.obj, iv.start, iv.end))
    out += sleeps
    out.sort(key=lambda a: (a[3], a[0], a[1]))
    return out


def timeline_summary(x: Simulation | RunResult) -> str:
    """The timeline in words: for each thread, time running, asleep (a system call), waiting
    (for a CPU, a lock, in ``aio_poll``), and holding each lock; a thread's line goes on under
    itself rather than past ``LINE_WIDTH``."""
    sim = _check_x(x)
    per: dict[str, dict[str, float]] = {t.name: {} for t in sim.threads}
    for thread, what, obj, start, end in activities(sim):
        key = {
            "run": "ran",
            "sleep": "asleep (no CPU)",
            "cpu": "waited for a CPU",
            "poll": f"asleep in aio_poll({obj})",
            "wait": f"waited for {obj}",
            "hold": f"held {obj}",
        }[what]
        per[thread][key] = per[thread].get(key, 0.0) + end - start
    lines = [f"timeline of {sim.now:g} us:"]
    for name, parts in per.items():
        pieces = [f"{k} {v:g} us" for k, v in parts.items()] or ["took no time"]
        line = f"  {name}:"
        for n, piece in enumerate(pieces):
            piece += "," if n < len(pieces) - 1 else ""
            if n and len(line) + 1 + len(piece) > LINE_WIDTH:  # go on under the first part
                lines.append(line)
                line = " " * (len(name) + 3)
            line += " " + piece
        lines.append(line)
    return "\n".join(lines)


#: The smallest font in a figure (points): tick labels, legends, bar labels.
FONT_SIZE = 9


def new_figure(nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Any, Any]:
    """``plt.subplots(nrows, ncols, **kwargs)`` with white faces, the figure's and every
    axes', so a figure reads on a dark theme too: where the course's figures start."""
    plt = need("matplotlib.pyplot", "This figure")
    fig, axes = plt.subplots(nrows, ncols, facecolor="white", **kwargs)
    for ax in fig.axes:
        ax.set_facecolor("white")
    return fig, axes


def label_bars(ax: Any, bars: Any, texts: list[str] | None = None, fmt: str = "{:,.0f}") -> Any:
    """Write on each bar of ``bars`` (what ``ax.bar`` or ``ax.barh`` returned) its value,
    formatted with ``fmt``, or its entry of ``texts``, just past its end."""
    if texts is None:
        texts = [fmt.format(v) for v in bars.datavalues]
    return ax.bar_label(bars, labels=texts, fontsize=FONT_SIZE, padding=2)


def shared_legend(fig: Any, ncol: int = 3) -> Any:
    """One legend under ``fig`` for all its axes: their legends' entries, each label once
    (the axes' own legends are removed). Returns the figure's legend, or None if none."""
    handles: dict[str, Any] = {}
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is None:
            continue
        for handle, text in zip(leg.legend_handles, leg.get_texts()):
            label = text.get_text()
            if label not in handles:
                # the artist drawn in the axes, not the legend's copy of it
                drawn = [a for a in ax.get_children() if getattr(a, "get_label", None)]
                handles[label] = next((a for a in drawn if a.get_label() == label), handle)
        leg.remove()
    if not handles:
        return None
    return fig.legend(
        handles=list(handles.values()),
        labels=list(handles),
        loc="lower center",
        ncol=min(ncol, len(handles)),
        fontsize=FONT_SIZE,
        frameon=False,
    )


def timeline(
    x: Simulation | RunResult,
    title: str | None = None,
    ax: Any = None,
    sleep_label: str | None = None,
) -> Any:
    """A matplotlib figure: a row per thread; upper bar what it did, lower bar locks held.

    The upper bar shows running, sleeping without a CPU (a blocking system call, a timer),
    waiting for a CPU, waiting for a lock or an event and sleeping in ``aio_poll``, each with
    its own colour and hatch (``ACTIVITIES``); the lower bar, each lock held. A bar wide
    enough for a label carries one; the legend lists only what was drawn. ``sleep_label``
    names what a sleep stands for in this model (``"blocked in read()"``): the legend's
    words and the label of a long sleep. ``title`` replaces the default title; ``ax``, a
    matplotlib ``Axes``, draws into that axes (of a figure with other plots) instead of a
    new figure.
    """
    Axes = need("matplotlib.axes", "timeline()").Axes

    sim = _check_x(x)
    if title is not None:
        validate.instance("title", title, str, kind="None or a string")
    if sleep_label is not None:
        validate.label("sleep_label", sleep_label)
    if ax is not None:
        validate.instance("ax", ax, Axes, kind="None or a matplotlib Axes (plt.subplots()[1])")
    acts = activities(sim)
    threads = [t.name for t in sim.threads]
    row = {n: len(threads) - 1 - i for i, n in enumerate(threads)}
    locks = sorted({obj for _t, what, obj, _a, _b in acts if what == "hold"})
    words = {k: v[0] for k, v in ACTIVITIES.items()}
    if sleep_label is not None:
        words["sleep"] = f"{sleep_label} (no CPU)"
    style = {k: (v[1], v[2]) for k, v in ACTIVITIES.items()}
    for i, name in enumerate(locks):
        style[f"hold {name}"] = (PALETTE[(i + 1) % len(PALETTE)], HATCHES[i % len(HATCHES)])
        words[f"hold {name}"] = f"holds {name}"
    if ax is None:
        fig, ax = new_figure(figsize=(9, 0.8 + 0.7 * len(threads)))
    else:
        fig = ax.figure
    ax.set_facecolor("white")
    span = max(sim.now, 1e-9)
    # how many characters of a bar label fit in one microsecond of this axes
    inches = ax.get_position().width * fig.get_figwidth()
    per_us = inches / span / (FONT_SIZE * 0.6 / 72)
    bars: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for thread, what, obj, start, end in acts:
        key = f"hold {obj}" if what == "hold" else what
        bars.setdefault((thread, key), []).append((start, max(end - start, span / 400)))
        label = {
            "run": "run",
            "sleep": sleep_label or "sleep",
            "cpu": "wait for CPU",
            "poll": f"aio_poll {obj}",
            "wait": f"wait {obj}",
            "hold": obj,
        }[what]
        if len(label) + 2 <= (end - start) * per_us:
            y = row[thread] + (0.26 if what == "hold" else 0.7)
            ax.text(
                (start + end) / 2,
                y,
                label,
                ha="center",
                va="center",
                fontsize=FONT_SIZE,
                bbox=dict(facecolor="white", edgecolor="none", pad=0.5, alpha=0.8),
            )
    handles = {}
    for (thread, key), xranges in bars.items():
        color, hatch = style[key]
        lower = key.startswith("hold ")
        bar = ax.broken_barh(
            xranges,
            (row[thread] + 0.08, 0.36) if lower else (row[thread] + 0.5, 0.4),
            facecolors=color,
            edgecolor="black",
            hatch=hatch,
            linewidth=0.5,
            alpha=0.85 if lower else 1.0,
            label=words[key] if key not in handles else "_nolegend_",
            gid=f"timeline:{'hold' if lower else key}",
        )
        handles.setdefault(key, bar)
    ax.set_yticks([row[n] + 0.5 for n in threads])
    ax.set_yticklabels(threads)
    ax.tick_params(labelsize=FONT_SIZE + 1)
    ax.set_ylim(0, len(threads))
    ax.set_xlim(0, span * 1.02)
    ax.set_xlabel("simulated time (us)")
    ax.grid(axis="x", alpha=0.3)
    order = [k for k in ACTIVITIES if k in handles] + [f"hold {n}" for n in locks]
    shown = [handles[k] for k in order if k in handles]
    if shown:
        ax.legend(
            handles=shown,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.25 - 0.1 / len(threads)),
            ncol=min(3, len(shown)),
            fontsize=FONT_SIZE,
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
