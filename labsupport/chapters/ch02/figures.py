"""Chapter 2's figures: vCPU threads around one Big QEMU Lock, drawn from the chapter's sweeps.

From 2009 each KVM vCPU had a thread of its own and took the BQL only to emulate a device after
an MMIO exit. The figures show the two sides of that step: guest code scales with vCPUs up to
the host's CPUs, while the exits queue on the one lock, the more of them the more waiting; and
with TCG, one round-robin thread stays at one CPU where MTTCG scales like KVM. Each function
takes the results the chapter's cells measured (``EraResult``s, keyed by the swept value) and
returns the figure; the cell prints the numbers beside it.

Layer 9 (chapters): imports the layers below; matplotlib only when a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labsupport.present import FONT_SIZE, PALETTE, new_figure


def guest_work_by_vcpus(scaling: Mapping[int, Any], host_cpus: int) -> Any:
    """Guest work (vCPUs' worth) of KVM vCPU threads against their number (``scaling``: vCPUs
    to result), with one host CPU per vCPU and the host's CPUs for comparison."""
    fig, ax = new_figure(figsize=(6.5, 3.4))
    ns = list(scaling)
    ax.plot(
        ns,
        [scaling[n].guest_cpus_busy for n in ns],
        marker="o",
        color=PALETTE[0],
        label="KVM vCPU threads (measured)",
    )
    ax.plot(ns, ns, linestyle=":", color="black", label="one host CPU per vCPU")
    ax.axhline(host_cpus, linestyle="--", color=PALETTE[5], label=f"host CPUs ({host_cpus})")
    ax.set_xticks(ns)
    ax.set_ylim(0, max(ns) + 0.5)
    ax.set_xlabel("vCPUs")
    ax.set_ylabel("guest work (vCPUs' worth)")
    ax.set_title("guest compute scales with vCPUs up to the host's CPUs")
    ax.legend(fontsize=FONT_SIZE, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def exits_and_bql_waits(sweep: Mapping[float, Any], cap: float) -> Any:
    """Two panels against the guest code between exits (``sweep``: guest_us to result, on a
    log axis, more exits to the right): the exit rate against one BQL's capacity ``cap``,
    and the time the vCPUs spent waiting for the BQL."""
    gs = list(sweep)
    fig, (left, right) = new_figure(1, 2, figsize=(9.5, 3.4))
    left.plot(
        gs,
        [sweep[g].exits_per_s for g in gs],
        marker="o",
        color=PALETTE[0],
        label="MMIO exits/s (measured)",
    )
    left.axhline(cap, linestyle="--", color=PALETTE[5], label="1 / (5 us per exit)")
    left.set_ylabel("MMIO exits per second")
    left.set_title("exits cap at one BQL's capacity")
    left.yaxis.set_major_formatter(lambda y, _pos: f"{y / 1000:.0f}k")
    right.plot(
        gs,
        [sweep[g].bql_wait_us / 1000 for g in gs],
        marker="s",
        color=PALETTE[1],
        label="waits for the BQL, all vCPUs together",
    )
    right.set_ylabel("BQL waits, summed over vCPUs (ms)")
    right.set_title("waiting grows with the exit rate")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(gs, [f"{g:g}" for g in gs])
        ax.minorticks_off()
        ax.invert_xaxis()
        ax.set_xlabel("guest us between exits (exits more often ->)")
        ax.legend(fontsize=FONT_SIZE, loc="lower right" if ax is left else "upper left")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


#: The TCG eras of ``tcg_vs_mttcg``: era name, marker, colour, legend.
TCG_ERAS = (
    ("tcg-rr", "s", PALETTE[1], "round-robin TCG (one thread)"),
    ("mttcg", "o", PALETTE[0], "MTTCG (a thread per vCPU)"),
)


def tcg_vs_mttcg(tcg: Mapping[str, Mapping[int, Any]], host_cpus: int) -> Any:
    """Guest work against vCPUs for round-robin TCG and MTTCG (``tcg``: era name to a mapping
    of vCPUs to result), with the host's CPUs for comparison."""
    fig, ax = new_figure(figsize=(6.5, 3.4))
    ns = sorted({n for runs in tcg.values() for n in runs})
    for era, marker, color, label in TCG_ERAS:
        if era in tcg:
            runs = tcg[era]
            xs = [n for n in ns if n in runs]
            ys = [runs[n].guest_cpus_busy for n in xs]
            ax.plot(xs, ys, marker=marker, color=color, label=label)
    ax.axhline(host_cpus, linestyle="--", color=PALETTE[5], label=f"host CPUs ({host_cpus})")
    ax.set_xticks(ns)
    ax.set_ylim(0, host_cpus + 0.5)
    ax.set_xlabel("vCPUs")
    ax.set_ylabel("guest work (vCPUs' worth)")
    ax.set_title("one TCG thread stays at one CPU; MTTCG scales like KVM")
    ax.legend(fontsize=FONT_SIZE, loc="center right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


__all__ = ["TCG_ERAS", "exits_and_bql_waits", "guest_work_by_vcpus", "tcg_vs_mttcg"]
