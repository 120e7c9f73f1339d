"""Chapter 7's lab: a virtio-blk device on several IOThreads (QEMU 9.0), on sliders.

With the AioContext lock gone, one device's virtqueues can be spread over IOThreads with
``iothread-vq-mapping``. The controls set the IOThreads, the virtqueues, the mapping (round-robin
or a preset), the request lock (``CoMutex`` or ``QemuMutex``) and the guest's I/O depth;
``view`` runs ``multiqueue.measure`` once and prints the I/O rate, the latency and each
IOThread's load, with a small bar chart of that load. Nothing is computed in the widget.
``scheduler_lab`` makes the learner the scheduler of R4, a request lost while drained.

Layer 9 (chapters): imports the layers below; ipywidgets and matplotlib only when used.
"""

from __future__ import annotations

from typing import Any

from labsupport import stepper, validate
from labsupport.optional import need
from labsupport.present import PALETTE
from labsupport.qemu.multiqueue import REQS_LOCK_KINDS, VM, MQResult, measure
from labsupport.stepper import Level
from labsupport.widgets import budgeted, int_slider, text_bar

from .scenarios import SCENARIOS

#: The mapping choices: round-robin over every IOThread, or explicit presets (functions of the
#: IOThread and virtqueue counts, so every preset is valid for every setting).
MAPPINGS = ("round-robin", "all on iothread0", "first half / second half")


def mapping_for(choice: str, iothreads: int, num_queues: int) -> list[dict[str, Any]]:
    """The ``iothread-vq-mapping`` a choice stands for, for these counts."""
    validate.whole("iothreads", iothreads, 1, 64, verb="is")
    validate.whole("num_queues", num_queues, 1, 64, verb="is")
    names = [f"iothread{i}" for i in range(iothreads)]
    if choice == "round-robin":
        return [{"iothread": n} for n in names]
    if choice == "all on iothread0":
        return [{"iothread": "iothread0", "vqs": list(range(num_queues))}]
    if choice == "first half / second half":
        if iothreads == 1 or num_queues == 1:
            return [{"iothread": "iothread0", "vqs": list(range(num_queues))}]
        half = num_queues // 2
        return [
            {"iothread": "iothread0", "vqs": list(range(half))},
            {"iothread": "iothread1", "vqs": list(range(half, num_queues))},
        ]
    raise ValueError(f"mapping is one of {', '.join(MAPPINGS)}; got {choice!r}")


def view(
    iothreads: int = 4,
    num_queues: int = 8,
    mapping: str = "round-robin",
    reqs_lock: str = "QemuMutex",
    iodepth: int = 64,
    plot: bool = True,
    seed: int = 0,
) -> MQResult:
    """Measure the VM these controls describe (8 vCPUs, 8 host CPUs), print the result and
    each IOThread's load, draw the load as bars (``plot=True``), and return the result."""
    validate.flag("plot", plot)
    if reqs_lock not in REQS_LOCK_KINDS:
        raise ValueError(f"reqs_lock is one of {', '.join(REQS_LOCK_KINDS)}; got {reqs_lock!r}")
    vm = VM(
        iothreads=iothreads,
        num_queues=num_queues,
        iodepth=iodepth,
        reqs_lock=reqs_lock,
        mapping=mapping_for(mapping, iothreads, num_queues),
    )
    r = measure(vm, seed=seed)
    print(vm.describe())
    print(
        f"{r.iops / 1000:,.0f}k IOPS (simulated time), p50 {r.p50_us:.0f} us, "
        f"p99 {r.p99_us:.0f} us, limited by {r.limit}"
    )
    print(
        f"reqs_lock: wait {r.reqs_lock_wait_us:.2f} us per request, "
        f"{r.cross_thread_wakes} cross-thread wake-ups"
    )
    for name, busy in r.iothread_busy.items():
        vqs = sorted(q for q, n in vm.vq_map.items() if n == name)
        print(f"  {name:<10} {text_bar(busy)} {busy:>4.0%} busy   vqs {vqs}")
    print(
        f"  {'host CPUs':<10} {text_bar(r.host_cpu_use / vm.host_cpus)} "
        f"{r.host_cpu_use:.1f} of {vm.host_cpus}"
    )
    print(f"  {'disk':<10} {text_bar(r.disk_busy)} {r.disk_busy:>4.0%} of its parallel slots")
    if plot:
        draw(r)
    return r


def draw(r: MQResult) -> Any:
    """Each IOThread's busy share as a horizontal bar (labelled with its number)."""
    validate.instance("r", r, MQResult, kind="an MQResult (what view or measure returns)")
    plt = need("matplotlib.pyplot", "This figure")

    names = list(r.iothread_busy)
    values = [r.iothread_busy[n] * 100 for n in names]
    fig, ax = plt.subplots(figsize=(6, 0.6 + 0.35 * len(names)), facecolor="white")
    ax.set_facecolor("white")
    ax.barh(names, values, color=PALETTE[1], edgecolor="black", hatch="//")
    for y, v in enumerate(values):
        ax.text(min(v, 100) + 1, y, f"{v:.0f}%", va="center", fontsize=8)
    ax.set_xlim(0, 115)
    ax.invert_yaxis()
    ax.set_xlabel("busy (% of the measured window)")
    ax.set_title(f"{r.iops / 1000:,.0f}k IOPS, {r.vm.reqs_lock} reqs_lock", fontsize=10)
    fig.tight_layout()
    plt.show()
    return fig


def lab(
    iothreads: int = 4,
    num_queues: int = 8,
    mapping: str = "round-robin",
    reqs_lock: str = "QemuMutex",
    iodepth: int = 64,
) -> Any:
    """Sliders for IOThreads (the first), virtqueues and I/O depth, dropdowns for the mapping
    and the request lock, over ``view``; ``.result`` holds the last ``MQResult``."""
    import ipywidgets as w

    validate.choice("mapping", mapping, MAPPINGS)
    validate.choice("reqs_lock", reqs_lock, REQS_LOCK_KINDS)

    def dropdown(options: tuple[str, ...], value: str, description: str) -> Any:
        return w.Dropdown(
            options=list(options),
            value=value,
            description=description,
            style={"description_width": "200px"},
            layout=w.Layout(width="500px"),
        )

    return w.interactive(
        budgeted(view),
        iothreads=int_slider(iothreads, 1, 8, "IOThreads", name="iothreads"),
        num_queues=int_slider(num_queues, 1, 16, "virtqueues", name="num_queues"),
        mapping=dropdown(MAPPINGS, mapping, "iothread-vq-mapping"),
        reqs_lock=dropdown(REQS_LOCK_KINDS, reqs_lock, "reqs_lock"),
        iodepth=int_slider(iodepth, 1, 128, "I/O depth", name="iodepth"),
        plot=w.fixed(True),
        seed=w.fixed(0),
    )


__all__ = ["MAPPINGS", "draw", "lab", "mapping_for", "view"]


# -- be the scheduler --------------------------------------------------------------------------

#: The model data (``sim.rng``) of the level: a timing where some orders lose the request and
#: some do not.
LEVEL_SEED = 13


def scheduler_level() -> Level:
    """R4: a kick that comes before the IOThread listens, while the device is drained."""
    return SCENARIOS["R4"].level(
        "a vCPU kicks the virtqueue while the device is drained and its IOThread is about to "
        "start listening: make the request be lost (the vCPU waits for it for ever)",
        seed=LEVEL_SEED,
    )


def scheduler_lab() -> Any:
    """Chapter 7's level of ``labsupport.stepper``, as a widget."""
    return stepper.lab(scheduler_level())
