"""The workload: what the guest does, as one parameter object checked when it is made.

vCPUs, guest compute between MMIO exits, I/O rate and depth, IOThreads, the monitor's command
rate and the probability of a slow ``io_submit``: every era of the course runs the same
``Workload``, so the chapters compare like with like (``ERAS`` names the arrangements).

Layer 4 (QEMU models).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .. import validate

#: The longest ``duration_us`` a workload may ask for: 10 s of simulated time.
MAX_DURATION_US = 10_000_000

ERAS = (
    "one-thread",
    "tcg-rr",
    "mttcg",
    "kvm",
    "dataplane",
    "iothread",
    "iothread-2017",
    "iothread-9.0",
)


# --------------------------------------------------------------------------------------------
# The workload: what the guest does. Every number is checked when the object is made.


@dataclass(frozen=True)
class Workload:
    """What the guest does and what the host has (times in microseconds).

    vcpus: guest CPUs. host_cpus: host CPUs the threads share. guest_us: guest code run between
    two MMIO exits, on average (the time is drawn at random, seeded by ``seed``).
    mmio_emulation_us: device emulation per MMIO exit (needs the BQL from 2009).
    io_depth: disk requests that vCPU 0 keeps in flight (0: no disk I/O; vCPU 0 then computes like
    the others). io_service_us, disk_queue_depth: the disk. io_submit_us, io_complete_us: QEMU's
    cost to submit a request and to complete one. block_layer_us: the extra cost per request of
    going through QEMU's block layer (image formats, throttling, ...), which the 2012 dataplane
    skipped by submitting raw Linux AIO itself. handler_us: extra cost in every completion
    handler (a slow handler). timer_period_us, timer_us: a periodic main-loop timer and its cost
    (0: none). slice_us: time slice of a thread that runs several vCPUs.
    slow_syscall_prob, slow_syscall_us: the chance that one ``io_submit`` blocks in the host
    kernel, and for how long (the thread that submits sleeps, holding whatever lock it holds).
    monitor_per_s, info_block_us: ``info block`` commands per second, arriving at random in the
    main loop (0: no monitor), and the command's own work. Both draw from their own seeded
    streams, so switching them on leaves the rest of a run's randomness as it was.
    monitor_takes_context_lock: whether ``info block`` takes the context lock of a disk served
    by an IOThread, as it did until QEMU 9.0 (False: a query that needs no context lock).
    duration_us: how long to simulate, at most ``MAX_DURATION_US`` (10 s of simulated time).
    seed: for the random schedule policy.
    """

    vcpus: int = 2
    host_cpus: int = 4
    guest_us: float = 50.0
    mmio_emulation_us: float = 5.0
    io_depth: int = 0
    io_service_us: float = 100.0
    disk_queue_depth: int = 32
    io_submit_us: float = 5.0
    io_complete_us: float = 3.0
    block_layer_us: float = 10.0
    handler_us: float = 0.0
    timer_period_us: float = 0.0
    timer_us: float = 2.0
    slice_us: float = 200.0
    slow_syscall_prob: float = 0.0
    slow_syscall_us: float = 2_000.0
    monitor_per_s: float = 0.0
    info_block_us: float = 20.0
    monitor_takes_context_lock: bool = True
    duration_us: float = 20_000.0
    seed: int = 0

    _WHOLE = {
        "vcpus": (1, 32),
        "host_cpus": (1, 64),
        "io_depth": (0, 256),
        "disk_queue_depth": (1, 1024),
        "seed": (0, 2**31 - 1),
    }
    _POSITIVE = ("guest_us", "io_service_us", "slice_us", "duration_us")

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in self._WHOLE:
                validate.whole(f.name, v, *self._WHOLE[f.name])
            elif f.name == "monitor_takes_context_lock":
                validate.flag(f.name, v, verb="is")
            elif f.name == "slow_syscall_prob":
                validate.probability(f.name, v, verb="is")
            elif f.name == "monitor_per_s":
                unit = "commands per second"
                validate.number(f.name, v, low=0, high=100_000, kind="a rate", unit=unit, verb="is")
            else:  # a time: first "is it a number at all", then the range, each with its message
                validate.number(f.name, v, kind="a number of microseconds")
                positive = f.name in self._POSITIVE
                high = MAX_DURATION_US if f.name == "duration_us" else None
                validate.duration(
                    f.name, v, positive=positive, high=high, kind="", unit="microseconds"
                )
        if self.timer_period_us and self.timer_period_us < self.timer_us:
            raise ValueError("timer_period_us must be 0 (no timer) or at least timer_us")

    def __repr__(self) -> str:
        # Slow system calls and the monitor are shown only when they are switched on.
        hidden = set()
        if not self.slow_syscall_prob:
            hidden |= {"slow_syscall_prob", "slow_syscall_us"}
        if not self.monitor_per_s:
            hidden |= {"monitor_per_s", "info_block_us"}
        if self.monitor_takes_context_lock:
            hidden.add("monitor_takes_context_lock")
        shown = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name not in hidden
        )
        return f"{type(self).__name__}({shown})"

    def replace(self, **changes: Any) -> Workload:
        """A copy with some fields changed (and checked again)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        unknown = set(changes) - set(values)
        if unknown:
            raise ValueError(
                f"unknown workload field(s) {sorted(unknown)}; known: {sorted(values)}"
            )
        values.update(changes)
        return type(self)(**values)
