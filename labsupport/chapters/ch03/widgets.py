"""Chapter 3's lab: one disk workload, served by the BQL path and by the 2012 dataplane thread.

In 2013 ``x-data-plane=on`` moved a virtio-blk device's requests off the main loop, which runs
device handlers under the Big QEMU Lock, onto a thread of its own that used neither the BQL nor
the block layer. The sliders set the guest (I/O depth, vCPUs, how often vCPUs exit for MMIO
emulation) and the cost of the block layer; ``compare`` runs both arrangements with
``run_era`` ("kvm" and "dataplane") and ``view`` prints the two I/O rates side by side.

Layer 9 (chapters): imports the layers below; ipywidgets only when a widget is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from labsupport.qemu.eras import EraResult, run_era
from labsupport.qemu.workload import Workload
from labsupport.widgets import budgeted, int_slider

#: The lab's starting point: the chapter's high-MMIO workload, simulated for 10 ms.
LAB_BASE = Workload(
    vcpus=4, host_cpus=4, io_depth=8, guest_us=10, io_service_us=20, duration_us=10_000
)
#: Guest code between two MMIO exits (us): from a very busy device model to a quiet one.
GUEST_US = (5, 10, 20, 50, 100, 200, 500, 1000)


@dataclass(frozen=True)
class Comparison:
    """Both paths on one workload: the main loop under the BQL, and the dataplane thread."""

    bql: EraResult
    dataplane: EraResult

    @property
    def advantage(self) -> float:
        """The dataplane's I/O rate divided by the BQL path's (NaN if the BQL path did none)."""
        if not self.bql.io_per_s:
            return float("nan")
        return self.dataplane.io_per_s / self.bql.io_per_s

    def summary(self) -> str:
        """Both paths' I/O rate (with a text bar), p99 latency and guest compute, as a table."""
        w = self.bql.workload
        head = (
            f"{w.vcpus} vCPU(s) on {w.host_cpus} host CPUs, I/O depth {w.io_depth}, "
            f"{w.guest_us:g} us of guest code per MMIO exit, block layer "
            f"{w.block_layer_us:g} us per request, {w.duration_us / 1000:g} ms simulated"
        )
        top = max(self.bql.io_per_s, self.dataplane.io_per_s, 1.0)
        lines = [head, f"{'path':<22} {'I/O per s':>10} {'p99 us':>7} {'guest ran':>9}"]
        for name, r in (("BQL path (main loop)", self.bql), ("dataplane thread", self.dataplane)):
            bar = "#" * round(30 * r.io_per_s / top)
            p99 = "-" if r.io_p99_us != r.io_p99_us else f"{r.io_p99_us:.0f}"
            lines.append(
                f"{name:<22} {r.io_per_s:>10,.0f} {p99:>7} {r.guest_cpus_busy:>9.2f}  {bar}"
            )
        if self.advantage == self.advantage:
            lines.append(
                f"the dataplane does {self.advantage:.2f} times the BQL path's I/O rate "
                f"(guest ran: vCPUs' worth of guest code)"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def compare(
    io_depth: int = 8,
    vcpus: int = 4,
    guest_us: float = 10,
    block_layer_us: float = 10,
    base: Workload = LAB_BASE,
) -> Comparison:
    """Run the "kvm" era (the BQL path) and the "dataplane" era on the same workload."""
    w = base.replace(
        io_depth=io_depth, vcpus=vcpus, guest_us=guest_us, block_layer_us=block_layer_us
    )
    return Comparison(run_era(w, "kvm", trace=False), run_era(w, "dataplane", trace=False))


def view(
    io_depth: int = 8, vcpus: int = 4, guest_us: float = 10, block_layer_us: float = 10
) -> Comparison:
    """What the chapter 3 lab shows for one setting: ``compare(...)``, printed."""
    out = compare(io_depth=io_depth, vcpus=vcpus, guest_us=guest_us, block_layer_us=block_layer_us)
    print(out.summary())
    return out


def lab(io_depth: int = 8, vcpus: int = 4, guest_us: float = 10, block_layer_us: int = 10) -> Any:
    """Sliders for I/O depth, vCPUs, MMIO load and block-layer cost over ``view``.

    ``.result`` holds the last ``Comparison``.
    """
    import ipywidgets as w

    if guest_us not in GUEST_US:
        raise ValueError(f"guest_us must be one of {GUEST_US}; got {guest_us!r}")
    common = dict(continuous_update=False, style={"description_width": "initial"})
    slider = partial(int_slider, label_width="initial", width=None)
    return w.interactive(
        budgeted(view),
        io_depth=slider(io_depth, 1, 32, "I/O depth", name="io_depth"),
        vcpus=slider(vcpus, 1, 8, "vCPUs", name="vcpus"),
        guest_us=w.SelectionSlider(
            options=GUEST_US, value=guest_us, description="guest us per exit", **common
        ),
        block_layer_us=slider(block_layer_us, 0, 20, "block layer us", name="block_layer_us"),
    )
