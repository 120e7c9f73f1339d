"""Chapter 4's figures: IOThreads and the AioContext lock (2013-2017), from the chapter's runs.

Moving a disk's handlers to an IOThread took them off the BQL, and the figure of section 4 shows
it against the number of vCPUs (I/O rate, guest work, BQL waits). The price was the context's
lock: the monitor's ``info block`` took it, so one slow ``io_submit`` that blocks in the host
kernel with the lock held stalls the command (D3); the figure of section 5 shows the command's
latency against how often a submission is slow. Each function takes the results the chapter's
cells measured and returns the figure; the cell prints the numbers beside it.

Layer 9 (chapters): imports the layers below; matplotlib only when a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from labsupport.present import FONT_SIZE, PALETTE, new_figure

#: The panels of ``era_panels``: the result's field, the axis label, the divisor.
ERA_PANELS = (
    ("io_per_s", "I/O per second", 1),
    ("guest_cpus_busy", "guest work (vCPUs' worth)", 1),
    ("bql_wait_us", "BQL waits, all threads (ms)", 1000),
)
#: The eras ``era_panels`` compares: era name, marker, colour, legend.
ERAS = (
    ("kvm", "s", PALETTE[1], "kvm: main loop, BQL"),
    ("iothread", "o", PALETTE[0], "iothread"),
)


def era_panels(vcpu_counts: Sequence[int], eras: Mapping[str, Mapping[int, Any]]) -> Any:
    """Three panels (``ERA_PANELS``) against vCPUs for the main loop under the BQL and the
    IOThread (``eras``: era name to a mapping of vCPUs to ``EraResult``)."""
    fig, axes = new_figure(1, 3, figsize=(11, 3.3))
    for ax, (attr, label, scale) in zip(axes, ERA_PANELS):
        for era, marker, color, name in ERAS:
            ax.plot(
                vcpu_counts,
                [getattr(eras[era][n], attr) / scale for n in vcpu_counts],
                marker=marker,
                color=color,
                label=name,
            )
        ax.set_xlabel("vCPUs")
        ax.set_ylabel(label)
        ax.set_xticks(list(vcpu_counts))
        ax.grid(alpha=0.3)
    axes[0].set_ylim(0, None)
    axes[0].legend(fontsize=FONT_SIZE, loc="lower left")
    fig.suptitle("moving the disk to an IOThread takes its handlers off the BQL")
    fig.tight_layout()
    return fig


#: The curves of ``monitor_latency``: takes the context lock, percentile, marker, colour, style.
CURVES = (
    (True, 99, "o", PALETTE[5], "-"),
    (True, 50, "s", PALETTE[1], "-"),
    (False, 99, "^", PALETTE[0], "--"),
)


def monitor_latency(
    probs: Sequence[float], d3: Mapping[tuple[float, bool], Any], slow_syscall_us: float
) -> Any:
    """``info block`` latency against the probability of a slow ``io_submit`` (``d3``: the
    probability and whether the command takes the context lock, to the measured result),
    with one slow call's length for comparison. The probabilities start at 0, so the axis is
    linear up to 0.1 % and logarithmic after it (matplotlib's ``symlog``): 0, 0.1, 0.2 and
    0.5 % stay apart."""
    fig, ax = new_figure(figsize=(6.8, 3.4))
    xs = [p * 100 for p in probs]
    for lock, q, marker, color, style in CURVES:
        name = f"p{q}, " + ("takes the context lock" if lock else "no context lock")
        field = "monitor_p99_us" if q == 99 else "monitor_p50_us"
        ax.plot(
            xs,
            [getattr(d3[(p, lock)], field) for p in probs],
            marker=marker,
            color=color,
            linestyle=style,
            label=name,
        )
    ax.axhline(slow_syscall_us, linestyle=":", color="black", label="one slow io_submit")
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlim(left=-0.02)
    ax.set_xticks(xs, [f"{x:g}" for x in xs])
    ax.minorticks_off()
    ax.set_xlabel("slow io_submit probability (%)")
    ax.set_ylabel("info block latency (us)")
    ax.set_title("the monitor waits for the data plane's slowest call")
    ax.legend(fontsize=FONT_SIZE, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


__all__ = ["CURVES", "ERAS", "ERA_PANELS", "era_panels", "monitor_latency"]
