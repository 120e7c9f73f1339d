"""Chapter 3's figures: the 2012 dataplane beside the BQL path, drawn from the chapter's runs.

The dataplane gave one virtio-blk device a thread and an event loop of its own, outside the
BQL: the timelines show the main loop serving the virtqueue under the lock on one side and the
dataplane thread doing it alone on the other, and the sweep shows what that bought as MMIO
exits grow more frequent (I/O rate, latency, guest code). Each function takes the results the
chapter's cells measured (``EraResult``s) and returns the figure; the cell prints the numbers.

Layer 9 (chapters): imports the layers below; matplotlib only when a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from labsupport.present import FONT_SIZE, PALETTE, new_figure, timeline


def two_paths_timelines(bql_path: Any, dataplane: Any) -> Any:
    """The timelines of one short run on each path (``EraResult``s), one above the other."""
    fig, axes = new_figure(2, 1, figsize=(10, 7))
    timeline(bql_path.result, ax=axes[0], title="the BQL path: the main loop serves the virtqueue")
    timeline(dataplane.result, ax=axes[1], title="the dataplane: a thread of its own, no BQL")
    fig.tight_layout()
    return fig


#: The panels of ``sweep_panels``: the result's field, the title, the scale, the unit.
PANELS = (
    ("io_per_s", "I/O requests per second", 1e-3, "thousands"),
    ("io_p99_us", "I/O latency p99 (us)", 1, ""),
    ("guest_cpus_busy", "guest code run (vCPUs' worth)", 1, ""),
)


def sweep_panels(guest_us: Sequence[float], sweep: Mapping[float, Sequence[Any]]) -> Any:
    """Three panels (``PANELS``) against the guest code between MMIO exits, on a log axis:
    ``sweep`` maps each ``guest_us`` to the BQL path's and the dataplane's results."""
    fig, axes = new_figure(1, 3, figsize=(12, 3.6))
    for ax, (field, title, scale, unit) in zip(axes, PANELS):
        for k, (name, style) in enumerate((("BQL path", "o-"), ("dataplane", "s--"))):
            ys = [getattr(sweep[g][k], field) * scale for g in guest_us]
            ax.plot(guest_us, ys, style, color=(PALETTE[0], PALETTE[5])[k], label=name)
        ax.set_xscale("log")
        ax.set_xlabel("guest code between MMIO exits (us)\n<- heavier MMIO load")
        ax.set_title(title + (f" ({unit})" if unit else ""), fontsize=10)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=FONT_SIZE)
    fig.tight_layout()
    return fig


__all__ = ["PANELS", "sweep_panels", "two_paths_timelines"]
