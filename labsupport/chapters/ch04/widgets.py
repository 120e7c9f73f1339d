"""Chapter 4's lab: a disk on an IOThread, a monitor that asks ``info block``, on sliders.

From 2013 a virtio-blk device could run on an IOThread, outside the BQL; its AioContext lock was
held by the IOThread's loop while it dispatched, and the main loop (holding the BQL) acquired it
to answer ``info block``. The sliders set the vCPUs, the I/O depth, how often an ``io_submit``
blocks in the host kernel and how often the monitor asks; ``view`` runs chapter 4's VM
(``scenarios.measure_vm``) and prints what it measured. Nothing is computed in the widget.
``scheduler_lab`` makes the learner the scheduler of D4, the BQL and the context lock taken
in both orders.

Layer 9 (chapters): imports the layers below; ipywidgets only when a widget is built.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from labsupport import stepper, validate
from labsupport.stepper import Level
from labsupport.widgets import budgeted, int_slider, text_bar

from .scenarios import IOThreadVM, VMResult, d4_program, measure_vm

#: Simulated time per slider move: enough for a few dozen monitor commands, short enough to feel
#: instant.
DURATION_US = 50_000


def view(
    vcpus: int = 2,
    io_depth: int = 4,
    slow_syscall_permille: int = 10,
    monitor_per_s: int = 500,
    host_cpus: int = 4,
    seed: int = 0,
) -> VMResult:
    """Run chapter 4's VM for 50 ms of simulated time, print what it measured, and return it.

    ``slow_syscall_permille``: how many ``io_submit`` calls in a thousand block in the host
    kernel for 2 ms while the IOThread holds its context lock. The text: the one-line summary,
    the monitor's latency (p50, p99, worst), and the context lock's and the BQL's profiles by call
    site.
    """
    validate.whole("slow_syscall_permille", slow_syscall_permille, 0, 1000, verb="is")
    vm = IOThreadVM(
        vcpus=vcpus,
        host_cpus=host_cpus,
        io_depth=io_depth,
        slow_syscall_prob=slow_syscall_permille / 1000,
        monitor_per_s=monitor_per_s,
        duration_us=DURATION_US,
        seed=seed,
    )
    r = measure_vm(vm, trace=False)
    print(r.summary())
    print(
        f"guest work {text_bar(r.guest_cpus_busy / host_cpus)} {r.guest_cpus_busy:.2f} of "
        f"{host_cpus} host CPU(s)"
    )
    if r.monitor_us:
        worst = r.monitor_max_us
        print(
            f"info block p50 {r.monitor_p50_us:>8,.0f} us   p99 {r.monitor_p99_us:>8,.0f} us   "
            f"worst {worst:>8,.0f} us  ({len(r.monitor_us)} commands)"
        )
        print(f"           {text_bar(min(1.0, worst / 5_000))} worst, on a 5 ms scale")
    else:
        print("no monitor commands (monitor_per_s = 0)")
    print()
    print(r.ctx_profile)
    print()
    print(r.bql_profile)
    return r


def lab(
    vcpus: int = 2, io_depth: int = 4, slow_syscall_permille: int = 10, monitor_per_s: int = 500
) -> Any:
    """Sliders for vCPUs (the first), I/O depth, slow ``io_submit`` calls per thousand and
    monitor commands per second, over ``view``; ``.result`` holds the last ``VMResult``."""
    import ipywidgets as w

    slider = partial(int_slider, label_width="200px")

    return w.interactive(
        budgeted(view),
        vcpus=slider(vcpus, 1, 8, "vCPUs", name="vcpus"),
        io_depth=slider(io_depth, 1, 32, "I/O depth", name="io_depth"),
        slow_syscall_permille=slider(
            slow_syscall_permille, 0, 100, "slow io_submit per 1000", name="slow_syscall_permille"
        ),
        monitor_per_s=slider(
            monitor_per_s, 0, 2000, "info block per second", 50, name="monitor_per_s"
        ),
        host_cpus=w.fixed(4),
        seed=w.fixed(0),
    )


# -- be the scheduler --------------------------------------------------------------------------

#: The level's timing: the request's completion and the monitor's ``info block`` both at t=0,
#: so that only the order of their steps decides.
LEVEL_REQUEST_AT = (0.0,)
LEVEL_COMMAND_AT = 0.0


def _deadlocked(result: Any) -> str | None:
    if result.outcome != "deadlock":
        return None
    return (
        "the IOThread holds its context and waits for the BQL; the main loop holds the BQL "
        "and waits for the context"
    )


def scheduler_level() -> Level:
    """D4 with fixed timing: the request and ``info block`` arrive together; deadlock them."""
    return Level(
        "D4: the BQL and the AioContext lock in both orders",
        d4_program(requests=1, request_at=LEVEL_REQUEST_AT, command_at=LEVEL_COMMAND_AT),
        "a request completes in the IOThread (context lock held, then the BQL) while the "
        "main loop (BQL held) answers info block (then the context lock): make them deadlock",
        _deadlocked,
        run_options={"cpus": 2},
        opaque=True,
    )


def scheduler_lab() -> Any:
    """Chapter 4's level of ``labsupport.stepper``, as a widget."""
    return stepper.lab(scheduler_level())
