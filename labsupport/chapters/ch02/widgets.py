"""Chapter 2's lab: vCPU threads around one Big QEMU Lock, on sliders.

From 2009 each KVM vCPU ran guest code in a thread of its own, without the BQL, and took the BQL
for every MMIO exit that needed device emulation; the main loop held it except while it slept
in ``poll()``. The sliders set the vCPUs, the host CPUs, how often the guest exits (``guest_us``
between exits) and how long one emulation takes; ``view`` runs the era (``run_era``) and
prints what it measured. Nothing is computed in the widget itself. ``scheduler_lab`` makes the
learner the scheduler of two vCPUs that write a device register without the BQL.

Layer 9 (chapters): imports the layers below; ipywidgets only when a widget is built.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from labsupport import stepper
from labsupport.qemu.eras import EraResult, run_era
from labsupport.qemu.workload import Workload
from labsupport.stepper import Level
from labsupport.widgets import budgeted, int_slider, text_bar

from .checks import irq_device_program, unlocked_mmio_write

#: The arrangements this chapter compares: KVM vCPU threads, MTTCG, round-robin TCG.
CH02_ERAS = ("kvm", "mttcg", "tcg-rr")
#: Simulated time per slider move: long enough for steady numbers, short enough to feel instant.
DURATION_US = 15_000


def bql_held_fraction(result: EraResult) -> float:
    """The share of the run's time during which some thread held the BQL."""
    bql = result.result.sim.model["bql"]
    if bql is None:
        return 0.0
    return sum(s.hold_us for s in bql.sites.values()) / result.workload.duration_us


def view(
    vcpus: int = 2,
    host_cpus: int = 4,
    guest_us: float = 50,
    mmio_emulation_us: float = 5,
    era: str = "kvm",
    seed: int = 0,
) -> EraResult:
    """Run ``era`` for 15 ms of simulated time, print what it measured, and return the result.

    The text: the one-line summary; how many host CPUs' worth of guest code ran and how much of
    the time the BQL was held, as bars; the most MMIO exits one BQL can serve
    (1 / ``mmio_emulation_us``); and the BQL's use by call site.
    """
    if era not in CH02_ERAS:
        raise ValueError(f"era must be one of {', '.join(CH02_ERAS)}; got {era!r}")
    w = Workload(
        vcpus=vcpus,
        host_cpus=host_cpus,
        guest_us=guest_us,
        mmio_emulation_us=mmio_emulation_us,
        duration_us=DURATION_US,
        seed=seed,
    )
    r = run_era(w, era, trace=False)
    held = bql_held_fraction(r)
    print(r.summary())
    print(
        f"guest work {text_bar(r.guest_cpus_busy / host_cpus)} {r.guest_cpus_busy:.2f} of "
        f"{host_cpus} host CPU(s)"
    )
    print(f"BQL held   {text_bar(held)} {held:.0%} of the time")
    if mmio_emulation_us > 0:
        cap = 1e6 / mmio_emulation_us
        print(
            f"MMIO exits {text_bar(r.exits_per_s / cap)} {r.exits_per_s:,.0f}/s of at most "
            f"{cap:,.0f}/s (one BQL, {mmio_emulation_us:g} us per exit)"
        )
    print(r.bql_profile)
    return r


def lab(vcpus: int = 2, host_cpus: int = 4, guest_us: int = 50, mmio_emulation_us: int = 5) -> Any:
    """Sliders for vCPUs (the first), host CPUs, guest time between exits and emulation cost,
    and a choice of era, over ``view``; ``.result`` holds the last ``EraResult``."""
    import ipywidgets as w

    slider = partial(int_slider, label_width="180px")

    return w.interactive(
        budgeted(view),
        vcpus=slider(vcpus, 1, 16, "vCPUs", name="vcpus"),
        host_cpus=slider(host_cpus, 1, 16, "host CPUs", name="host_cpus"),
        guest_us=slider(guest_us, 5, 500, "guest us between exits", name="guest_us"),
        mmio_emulation_us=slider(
            mmio_emulation_us, 1, 50, "emulation us per exit", name="mmio_emulation_us"
        ),
        era=w.Dropdown(
            options=list(CH02_ERAS),
            value="kvm",
            description="era",
            layout=w.Layout(width="330px"),
            style={"description_width": "180px"},
        ),
        seed=w.fixed(0),
    )


# -- be the scheduler --------------------------------------------------------------------------


def _lost_interrupt(result: Any) -> str | None:
    dev = result.sim.model
    isr = dev.isr.value
    if isr == dev.all_raised:
        return None
    lost = [f"vcpu{i}" for i in range(dev.vcpus) if not isr >> i & 1]
    return f"isr ends at {isr:#04b}: {' and '.join(lost)}'s interrupt line was lost"


def scheduler_level() -> Level:
    """Two vCPUs raise their interrupt bit in ``isr`` without the BQL: lose one of them."""
    return Level(
        "the lost interrupt",
        irq_device_program(unlocked_mmio_write),
        "two vCPUs exit at once and each sets its own bit of the device's isr register "
        "without the BQL: choose the order of their steps so that a bit is lost",
        _lost_interrupt,
        run_options={"cpus": 2},
    )


def scheduler_lab() -> Any:
    """Chapter 2's level of ``labsupport.stepper``, as a widget."""
    return stepper.lab(scheduler_level())
