"""Chapter 1's figures: one thread for everything, drawn from the runs the chapter measures.

Before 2009 one host thread ran the guest's vCPUs in turn and the main loop between them, so
every figure here shows a trade inside that one thread: a handler that blocks in ``read()``
stops the guest as surely as one that computes; more vCPUs share the same thread; a longer
time slice is a longer wait for the disk's completion; what the handlers take, the guest
loses. Each function takes what the chapter's cells computed and returns the figure; the
numbers are printed beside it, as a table, by the cell.

Layer 9 (chapters): imports the layers below; matplotlib only when a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from labsupport.kernel import RunResult
from labsupport.present import FONT_SIZE, PALETTE, new_figure, shared_legend, timeline


def handler_timelines(runs: dict[str, RunResult]) -> Any:
    """The one thread's timeline for each completion handler of section 2 (``runs``: a title
    for each run of ``slow_handler_program``), one above the other on one time axis. The
    spans the program wrote down (``sim.model``: guest slices, the handler) are named under
    the bars; the handler that blocks in ``read()`` is drawn as a sleep, not left blank."""
    fig, axes = new_figure(len(runs), 1, figsize=(9, 1.5 + 1.5 * len(runs)), sharex=True)
    axes = list(axes) if len(runs) > 1 else [axes]
    for ax, (title, r) in zip(axes, runs.items()):
        timeline(r, ax=ax, title=title, sleep_label="blocked in read()")
        for what, start, end in r.sim.model:
            ax.text((start + end) / 2, 0.26, what, ha="center", va="center", fontsize=FONT_SIZE)
        if ax is not axes[-1]:
            ax.set_xlabel("")
    shared_legend(fig)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def guest_work_by_vcpus(vcpu_counts: Sequence[int], busy: Sequence[float], host_cpus: int) -> Any:
    """Guest code run (vCPUs' worth) against the number of vCPUs, measured on the one thread,
    with what a host CPU per vCPU (up to ``host_cpus``) would give for comparison."""
    fig, ax = new_figure(figsize=(6.5, 3.4))
    ax.plot(
        vcpu_counts,
        [min(n, host_cpus) * busy[0] for n in vcpu_counts],
        "s--",
        color="#999999",
        label=f"for comparison: a host CPU for each vCPU, up to {host_cpus}",
    )
    ax.plot(vcpu_counts, busy, "o-", color=PALETTE[0], label="one thread (measured)")
    ax.set_xticks(list(vcpu_counts))
    ax.set_xlabel("guest vCPUs")
    ax.set_ylabel("guest code run (vCPUs' worth)")
    ax.set_ylim(0, None)
    ax.set_title("one thread for everything: more vCPUs, no more speed")
    ax.legend(fontsize=FONT_SIZE, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def latency_by_slice(
    slices: Sequence[float], results: Sequence[Any], rounds: Sequence[float]
) -> Any:
    """Disk request latency (p50 and p99 of each ``results``' run, an ``EraResult``) against the
    time slice, with two rounds of the computing vCPUs (``rounds``) for comparison."""
    fig, ax = new_figure(figsize=(6.5, 3.6))
    ax.plot(slices, [r.io_p50_us for r in results], "o-", color=PALETTE[0], label="p50 latency")
    ax.plot(slices, [r.io_p99_us for r in results], "^-", color=PALETTE[5], label="p99 latency")
    ax.plot(slices, rounds, ":", color="#555555", label="two rounds: 2 x (vCPUs - 1) x slice")
    ax.set_xlabel("time slice (us)")
    ax.set_ylabel("disk request latency (us)")
    ax.set_title("one thread: the time slice sets the I/O latency")
    ax.legend(fontsize=FONT_SIZE)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


#: The parts of the one thread's time in ``handler_shares``: name, colour, hatch.
SHARES = (
    ("guest code", PALETTE[0], "//"),
    ("MMIO emulation", PALETTE[1], ".."),
    ("the loop: handlers and timer", PALETTE[2], "xx"),
)


def handler_shares(costs: Sequence[float], shares: Sequence[Sequence[float]]) -> Any:
    """The one thread's time split three ways (``SHARES``) for each extra handler cost: a
    stacked bar per cost (``shares``: guest, MMIO, loop, as fractions of the run)."""
    fig, ax = new_figure(figsize=(6.5, 3.6))
    labels = [f"{c:g}" for c in costs]
    bottom = [0.0] * len(costs)
    for k, (name, color, hatch) in enumerate(SHARES):
        values = [s[k] for s in shares]
        ax.bar(
            labels,
            values,
            bottom=bottom,
            color=color,
            hatch=hatch,
            edgecolor="black",
            linewidth=0.5,
            label=name,
        )
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xlabel("extra cost of each completion handler (us)")
    ax.set_ylabel("share of the one thread's time")
    ax.set_ylim(0, 1.35)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_title("one thread: what the handlers take, the guest loses")
    ax.legend(fontsize=FONT_SIZE, loc="upper center", ncol=3)
    fig.tight_layout()
    return fig


__all__ = [
    "SHARES",
    "guest_work_by_vcpus",
    "handler_shares",
    "handler_timelines",
    "latency_by_slice",
]
