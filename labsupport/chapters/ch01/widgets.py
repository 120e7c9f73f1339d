"""Chapter 1's lab: one host thread runs every vCPU in turn and the main loop between rounds.

Before 2009 QEMU ran the guest's vCPUs round-robin on one thread and called ``main_loop_wait``
between them, so three knobs decide what the guest gets: how many vCPUs share the thread, how
long each runs before the alarm timer sends it back to the loop (the time slice), and how long
the loop's handlers take. The sliders move those knobs; ``view`` runs the one-thread era
(``run_era``) and prints what a person would measure.

Layer 9 (chapters): imports the layers below; ipywidgets only when a widget is built.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from labsupport.qemu.eras import EraResult, run_era
from labsupport.qemu.workload import Workload
from labsupport.widgets import budgeted, int_slider

#: The lab's workload: vCPU 0 reads from the disk one request at a time, the other vCPUs
#: compute; a 1 ms device timer; 20 ms of simulated time.
LAB_WORKLOAD = Workload(vcpus=3, io_depth=1, timer_period_us=1000, duration_us=20_000)


def describe(r: EraResult) -> str:
    """What one run of the lab measured, in three short lines."""
    w = r.workload
    computing = w.vcpus - 1 if w.io_depth else w.vcpus
    head = (
        f"one host thread, {w.vcpus} vCPU(s), {w.slice_us:g} us slices, completion "
        f"handler {w.io_complete_us + w.handler_us:g} us"
    )
    if computing:
        guest = (
            f"guest code: {r.guest_cpus_busy:.2f} vCPUs' worth in all, "
            f"{r.guest_cpus_busy / computing:.2f} for each of the {computing} computing "
            f"vCPU(s)"
        )
    else:
        guest = "guest code: none (the only vCPU waits for its disk)"
    if not w.io_depth:
        io = "disk: no I/O in this workload"
    elif math.isnan(r.io_p50_us):
        io = f"disk: no request completed in {w.duration_us / 1000:g} ms"
    else:
        io = (
            f"disk (vCPU 0): {r.io_per_s:,.0f} requests/s, latency p50 {r.io_p50_us:.0f} us, "
            f"p99 {r.io_p99_us:.0f} us"
        )
    return "\n".join([head, guest, io])


def view(vcpus: int = 3, slice_us: int = 200, handler_us: int = 0) -> EraResult:
    """Run the one-thread era on ``LAB_WORKLOAD`` with these settings; print and return it."""
    w = LAB_WORKLOAD.replace(vcpus=vcpus, slice_us=slice_us, handler_us=handler_us)
    r = run_era(w, "one-thread", trace=False)
    print(describe(r))
    return r


def lab(vcpus: int = 3, slice_us: int = 200, handler_us: int = 0) -> Any:
    """Sliders for vCPUs, time slice and handler cost over ``view``; ``.result`` is the run."""
    import ipywidgets as w

    slider = partial(int_slider, label_width="initial", width=None)
    return w.interactive(
        budgeted(view),
        vcpus=slider(vcpus, 1, 8, "vCPUs", name="vcpus"),
        slice_us=slider(slice_us, 50, 2000, "time slice (us)", step=50, name="slice_us"),
        handler_us=slider(
            handler_us, 0, 500, "extra handler cost (us)", step=25, name="handler_us"
        ),
    )
