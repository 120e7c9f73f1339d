"""Chapter 8's figures: every era on one workload, and what each step bought and cost.

The retrospective runs each era of the course on the same workload and lines them up: I/O rate,
latency, guest time and the monitor's ``info block`` latency (what each step bought), and the
bugs the detectors caught and the lines of locking code in each era model (what it cost).
Every bar is named by its era, as the chapters tell them (the one thread, vCPU threads and the
BQL, the dataplane, the IOThread years, the graph lock, QEMU 9.0), never by a chapter number;
every bar carries its value, and an era with no measurement of its own (the graph lock of
chapter 6 changes no I/O path) says so instead of showing an empty bar. Each function takes
what the chapter's cells computed and returns the figure; the cells print the tables.

Layer 9 (chapters): imports the layers below; matplotlib only when a figure is drawn.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import Any

from labsupport.present import FONT_SIZE, HATCHES, PALETTE, label_bars, new_figure, shared_legend

from .scenarios import EraRow, StoryRow, story


def era_names() -> dict[int, str]:
    """The short name of each chapter's era (chapters 1 to 7), as the summary table says it."""
    return {r.chapter: r.era for r in story([], [], {})}


def _era_label(name: str, width: int = 24) -> str:
    return textwrap.fill(name, width)


def _panel_bars(
    ax: Any, values: Sequence[float], color: str, hatch: str, fmt: str, log: bool = False
) -> None:
    """Horizontal bars at rows ``0 .. n-1``, each with its value; a value that cannot be
    drawn (NaN, or not positive on a log axis) gets no bar and the words "not measured"."""
    rows = [i for i, v in enumerate(values) if not math.isnan(v) and (v > 0 or not log)]
    bars = ax.barh(
        rows, [values[i] for i in rows], color=color, hatch=hatch, edgecolor="black", height=0.6
    )
    label_bars(ax, bars, fmt=fmt)
    if log:
        ax.set_xscale("log")
    for i in range(len(values)):
        if i not in rows:
            where = ax.get_yaxis_transform()  # x in axes fractions, y in data
            ax.text(0.02, i, "not measured", va="center", fontsize=FONT_SIZE, transform=where)
    top = max([values[i] for i in rows], default=0) or 1
    if log:
        ax.set_xlim(min(values[i] for i in rows) / 2 if rows else 1, top * 8)
    else:
        ax.set_xlim(0, top * 1.3)
    ax.grid(axis="x", alpha=0.3)


def era_bars(rows: Sequence[EraRow]) -> Any:
    """Three panels, one bar per era (``measure_eras``' rows): I/O completed per second, guest
    CPU time and ``info block`` p99 (on a log axis: from tens of microseconds to milliseconds).
    The eras are named on the left, with their years."""
    fig, axes = new_figure(1, 3, figsize=(11, 1.2 + 0.55 * len(rows)), sharey=True)
    panels = (
        ("I/O completed per second", [r.io_per_s / 1000 for r in rows], "thousands", "{:,.1f}k"),
        ("guest CPU time", [r.guest_cpus_busy for r in rows], "vCPUs' worth", "{:.2f}"),
        ("info block p99", [r.monitor_p99_us for r in rows], "us, log scale", "{:,.0f}"),
    )
    for k, (ax, (title, values, unit, fmt)) in enumerate(zip(axes, panels)):
        _panel_bars(ax, values, PALETTE[k], HATCHES[k], fmt, log=(k == 2))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(unit)
    labels = [_era_label(f"{r.era.name} ({r.era.years})") for r in rows]
    axes[0].set_yticks(range(len(rows)), labels, fontsize=FONT_SIZE)
    axes[0].invert_yaxis()
    fig.tight_layout()
    return fig


def locking_lines_by_era(counts: Sequence[tuple[str, str, int, int]]) -> Any:
    """The lines of locking code in each chapter's era model (``counts``: the chapter's
    number, its notebook's name, the era model's lines, the locking lines among them), one bar
    per era, with the count and the share of the model."""
    names = era_names()
    fig, ax = new_figure(figsize=(7.5, 1.0 + 0.45 * len(counts)))
    values = [c[3] for c in counts]
    bars = ax.barh(range(len(counts)), values, color=PALETTE[0], edgecolor="black", hatch="//")
    label_bars(ax, bars, [f"{c[3]} ({c[3] / c[2]:.0%})" if c[2] else f"{c[3]}" for c in counts])
    labels = [_era_label(names.get(int(c[0]), c[1]), 30) for c in counts]
    ax.set_yticks(range(len(counts)), labels, fontsize=FONT_SIZE)
    ax.invert_yaxis()
    ax.set_xlim(0, max(values + [1]) * 1.3)
    ax.set_xlabel("locking lines in the era model (share of its lines)")
    ax.set_title("how much of each era model is locking")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def story_panels(summary: Sequence[StoryRow]) -> Any:
    """Five panels, one row per era (``story``'s rows): I/O per second, I/O p99, ``info
    block`` p99 (log axis), the bugs the detectors caught (deadlocks and hangs, then the
    others) and the locking lines. The eras are named once, on the left."""
    fig, axes = new_figure(1, 5, figsize=(14, 1.3 + 0.5 * len(summary)), sharey=True)
    panels = (
        ("I/O per s (thousands)", [r.io_per_s / 1000 for r in summary], "{:,.1f}k", False),
        ("I/O p99 (us)", [r.io_p99_us for r in summary], "{:,.0f}", False),
        ("info block p99 (us, log)", [r.monitor_p99_us for r in summary], "{:,.0f}", True),
        ("bugs caught", None, "", False),
        ("locking lines", [float(r.locking_lines) for r in summary], "{:,.0f}", False),
    )
    rows = range(len(summary))
    for k, (ax, (title, values, fmt, log)) in enumerate(zip(axes, panels)):
        if values is None:
            dead = [r.deadlocks for r in summary]
            other = [r.other_bugs for r in summary]
            ax.barh(
                rows,
                dead,
                height=0.6,
                color=PALETTE[5],
                edgecolor="black",
                hatch="xx",
                label="deadlocks, hangs",
            )
            both = ax.barh(
                rows,
                other,
                left=dead,
                height=0.6,
                color=PALETTE[4],
                edgecolor="black",
                hatch="..",
                label="races, stalls, freed",
            )
            label_bars(ax, both, [f"{d} + {o}" for d, o in zip(dead, other)])
            ax.set_xlim(0, max(d + o for d, o in zip(dead, other)) * 1.6 + 1)
            ax.legend()  # gathered under the figure by shared_legend
            ax.grid(axis="x", alpha=0.3)
        else:
            _panel_bars(ax, values, PALETTE[k], HATCHES[k], fmt, log=log)
        ax.set_title(title, fontsize=10)
    axes[0].set_yticks(list(rows), [_era_label(r.era, 20) for r in summary], fontsize=FONT_SIZE)
    axes[0].invert_yaxis()
    shared_legend(fig, ncol=2)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


__all__ = ["era_bars", "era_names", "locking_lines_by_era", "story_panels"]
