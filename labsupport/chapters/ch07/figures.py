"""Chapter 7's figures: the multi-queue block layer of QEMU 9.0, from the chapter's sweeps.

With the AioContext lock gone, one device's virtqueues can be spread over several IOThreads
(``iothread-vq-mapping``). The figures show what the model makes of it: the I/O rate against
IOThreads, up to the host's CPUs and the drive's ceiling; against virtqueues, no gain past one
per IOThread; and against the I/O depth with the per-node request lock a ``CoMutex`` or a
``QemuMutex``, beside QEMU's own measurement of that change. Each function takes the results
of ``multiqueue.sweep`` and returns the figure; the cell prints ``format_sweep`` beside it.

Layer 9 (chapters): imports the layers below; matplotlib only when a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from labsupport.present import FONT_SIZE, HATCHES, PALETTE, label_bars, new_figure
from labsupport.qemu.multiqueue import MQResult

#: Colours and markers of the curves, in the order they are given.
_STYLES = ((PALETTE[0], "o"), (PALETTE[1], "s"), (PALETTE[2], "^"), (PALETTE[5], "D"))


def drive_ceiling_k(r: MQResult) -> float:
    """The most requests per second (thousands) the model's drive serves: its parallel slots
    over one request's service time."""
    c = r.vm.costs
    return c.disk_parallelism / c.disk_service_us * 1000


def iops_by_iothreads(iothreads: Sequence[int], curves: Mapping[str, Sequence[MQResult]]) -> Any:
    """The I/O rate against IOThreads, one curve per entry of ``curves`` (a label, such as
    ``"8 host CPUs"``, to ``sweep(..., "iothreads", iothreads)``), under the drive's ceiling."""
    fig, ax = new_figure(figsize=(6.5, 3.4))
    for (label, rs), (color, marker) in zip(curves.items(), _STYLES):
        ax.plot(iothreads, [r.iops / 1000 for r in rs], marker=marker, color=color, label=label)
    first = next(iter(curves.values()))[0]
    ceiling = drive_ceiling_k(first)
    c = first.vm.costs
    ax.axhline(
        ceiling,
        color="black",
        linestyle="--",
        linewidth=1,
        label=f"drive's ceiling ({c.disk_parallelism} at once x {c.disk_service_us:g} us)",
    )
    ax.set_xlabel("IOThreads")
    ax.set_ylabel("k requests / s (simulated)")
    ax.set_xticks(list(iothreads))
    ax.set_ylim(0, ceiling * 1.15)
    ax.legend(loc="lower right", fontsize=FONT_SIZE)
    ax.set_title("Multi-queue: I/O rate versus IOThreads (model)")
    fig.tight_layout()
    return fig


def iops_by_queues(num_queues: Sequence[int], results: Sequence[MQResult]) -> Any:
    """The I/O rate against virtqueues (``sweep(..., "num_queues", num_queues)``), with a
    line where there are as many virtqueues as IOThreads."""
    fig, ax = new_figure(figsize=(6.5, 3.2))
    iothreads = results[0].vm.iothreads
    ax.plot(
        num_queues,
        [r.iops / 1000 for r in results],
        marker="o",
        color=PALETTE[2],
        label=f"{iothreads} IOThreads",
    )
    ax.axvline(iothreads, color="black", linestyle=":", linewidth=1, label="virtqueues = IOThreads")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(num_queues), [str(n) for n in num_queues])
    ax.minorticks_off()
    ax.set_xlabel("virtqueues")
    ax.set_ylabel("k requests / s (simulated)")
    ax.set_ylim(0, drive_ceiling_k(results[0]))
    ax.legend(loc="lower right", fontsize=FONT_SIZE)
    ax.set_title("More virtqueues than IOThreads does not help (model)")
    fig.tight_layout()
    return fig


def reqs_lock_comparison(
    depths: Sequence[int], locks: Mapping[str, Sequence[MQResult]], published: Mapping[str, int]
) -> Any:
    """Left: the model's I/O rate against the I/O depth for each request lock (``locks``: the
    lock's name to ``sweep(..., "iodepth", depths)``). Right: QEMU's measurement of the same
    change (``published``: the lock's name to IOPS), each bar with its number."""
    fig, (ax, ax2) = new_figure(1, 2, figsize=(9, 3.4), gridspec_kw={"width_ratios": [2, 1]})
    colors = {"CoMutex": PALETTE[5], "QemuMutex": PALETTE[0]}
    for (kind, rs), marker in zip(locks.items(), ("s", "o", "^", "D")):
        color = colors.get(kind, PALETTE[2])
        ax.plot(depths, [r.iops / 1000 for r in rs], marker=marker, color=color, label=kind)
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(depths), [str(d) for d in depths])
    ax.minorticks_off()
    ax.set_xlabel("I/O depth")
    ax.set_ylabel("k requests / s (simulated)")
    top = 1.25 * max(
        [r.iops / 1000 for rs in locks.values() for r in rs]
        + [v / 1000 for v in published.values()]
    )
    ax.set_ylim(0, top)
    ax.legend(loc="lower right", fontsize=FONT_SIZE)
    vm = next(iter(locks.values()))[0].vm
    ax.set_title(f"This model ({vm.iothreads} IOThreads, {vm.num_queues} vqs)", fontsize=10)
    names = list(published)
    bars = ax2.bar(
        names,
        [published[n] / 1000 for n in names],
        color=[colors.get(n, PALETTE[2]) for n in names],
        edgecolor="black",
        hatch=HATCHES[0],
    )
    label_bars(ax2, bars, [f"{published[n] // 1000}k" for n in names])
    ax2.set_ylim(0, top)
    ax2.set_ylabel("k IOPS (measured)")
    ax2.set_title("QEMU's measurement, iodepth 64", fontsize=10)
    fig.tight_layout()
    return fig


__all__ = ["drive_ceiling_k", "iops_by_iothreads", "iops_by_queues", "reqs_lock_comparison"]
