"""IOThreads and the AioContext lock (2013-2017): chapter 4's scenario programs.

From 2013 a virtio-blk device could be handed to an IOThread (``-object iothread``): its
virtqueue and its disk completions were served by that thread's own AioContext, outside the Big
QEMU Lock. What the BQL had serialised, each context's lock now did: an ``RFifoLock`` that the
IOThread's ``aio_poll`` held while it dispatched and dropped only around its wait, and that any
other thread (the monitor's ``info block`` in the main loop, say) acquired to look at the device.
This module keeps the chapter's programs for later chapters and the tests: the VM with an
IOThread whose ``io_submit`` is sometimes slow while the monitor asks ``info block`` (D3), and
the BQL/AioContext lock-order inversion (D4, the course's own derivation from the documented
rules).

Layer 4 (QEMU models): imports the kernel, the primitives, the event loop and ``models``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from labsupport.kernel import RunResult, Simulation, compute, run, sleep
from labsupport.loop import AioContext, aio_poll
from labsupport.qemu.block import Disk, VirtioBlk
from labsupport.qemu.bql import BQL
from labsupport.qemu.iothread import (
    IOThread,
    aio_context_acquire,
    aio_context_release,
    qemu_get_aio_context,
)
from labsupport.qemu.workload import Workload
from labsupport.shared import Shared

# --------------------------------------------------------------------------------------------
# The VM: vCPUs, a main loop with a monitor, and a virtio-blk disk on an IOThread.


@dataclass(frozen=True)
class IOThreadVM:
    """A guest whose disk is served by an IOThread, and a monitor that asks ``info block``.

    The first fields are those of ``models.Workload`` (vCPU 0 keeps ``io_depth`` requests in
    flight; the other vCPUs run guest code with MMIO exits under the BQL). Then:
    slow_syscall_prob: the chance that one ``io_submit`` blocks in the host kernel, for
    slow_syscall_us, while the IOThread holds its AioContext lock (drawn from its own seeded
    stream, so two variants of one seed see the same slow calls). monitor_per_s: ``info block``
    commands per second, arriving at random (0: no monitor). info_block_us: the command's own
    work under the context lock. monitor_takes_context_lock: False models a query that needs no
    context lock (what removing the lock in QEMU 9.0 made possible; chapter 7).
    """

    vcpus: int = 2
    host_cpus: int = 4
    guest_us: float = 50.0
    mmio_emulation_us: float = 5.0
    io_depth: int = 4
    io_service_us: float = 100.0
    disk_queue_depth: int = 32
    io_submit_us: float = 5.0
    io_complete_us: float = 3.0
    block_layer_us: float = 10.0
    slow_syscall_prob: float = 0.0
    slow_syscall_us: float = 2_000.0
    monitor_per_s: float = 0.0
    info_block_us: float = 20.0
    monitor_takes_context_lock: bool = True
    duration_us: float = 20_000.0
    seed: int = 0

    def __post_init__(self) -> None:
        self.workload()  # the shared fields are checked by Workload
        p = self.slow_syscall_prob
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError(f"slow_syscall_prob is a probability from 0 to 1; got {p!r}")
        for name in ("slow_syscall_us", "monitor_per_s", "info_block_us"):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not math.isfinite(v)
                or v < 0
            ):
                raise ValueError(f"{name} must be a number >= 0; got {v!r}")
        if not isinstance(self.monitor_takes_context_lock, bool):
            raise ValueError("monitor_takes_context_lock is True or False")

    def workload(self) -> Workload:
        """The ``models.Workload`` with this VM's vCPU, disk and timing fields."""
        return Workload(
            vcpus=self.vcpus,
            host_cpus=self.host_cpus,
            guest_us=self.guest_us,
            mmio_emulation_us=self.mmio_emulation_us,
            io_depth=self.io_depth,
            io_service_us=self.io_service_us,
            disk_queue_depth=self.disk_queue_depth,
            io_submit_us=self.io_submit_us,
            io_complete_us=self.io_complete_us,
            block_layer_us=self.block_layer_us,
            duration_us=self.duration_us,
            seed=self.seed,
        )

    def replace(self, **changes: Any) -> IOThreadVM:
        """A copy with some fields changed (and checked again)."""
        values = {k: getattr(self, k) for k in self.__dataclass_fields__}
        unknown = set(changes) - set(values)
        if unknown:
            raise ValueError(f"unknown field(s) {sorted(unknown)}; known: {sorted(values)}")
        values.update(changes)
        return IOThreadVM(**values)


class BqlAroundPoll:
    """What the main loop does with the BQL around ``poll()``: let go, sleep, take it back."""

    def __init__(self, bql: BQL):
        self.bql = bql

    def unlock(self):
        return self.bql.unlock()

    def lock(self):
        return self.bql.lock("main loop")


class ContextAroundPoll:
    """What the 2013 IOThread does with its context lock around ``poll()``, with a call-site
    name for the lock's profile: let go, sleep, take it back before dispatching."""

    def __init__(self, lock: Any, site: str):
        self.ctx_lock = lock
        self.site = site

    def unlock(self):
        return self.ctx_lock.unlock()

    def lock(self):
        return self.ctx_lock.lock(self.site)


class IOThread2013(IOThread):
    """``models.IOThread`` as it ran in 2013, with the time its loop holds the context lock
    profiled under one call site, ``"iothread: aio_poll"``: the loop takes the lock, drops it
    only around the wait in ``aio_poll`` and holds it while every handler runs."""

    def __init__(self, sim: Simulation, name: str):
        super().__init__(sim, name, lock_kind="rfifo", loop_holds_lock=True)

    def _run(self):
        around = ContextAroundPoll(self.lock, "iothread: aio_poll")
        while True:
            yield self.lock.lock("iothread: aio_poll")
            yield aio_poll(self.ctx, True, drop=around)
            yield self.lock.unlock()


def iothread_vm_program(p: IOThreadVM):
    """The program of ``measure_vm``: an IOThread serves the disk, the main loop the monitor.

    With ``slow_syscall_prob=0`` and ``monitor_per_s=0`` it is ``run_era(w, "iothread")``
    step for step.
    """
    w = p.workload()
    slow_rng = random.Random(p.seed * 1_000_003 + 1)  # which io_submit calls are slow
    monitor_rng = random.Random(p.seed * 1_000_003 + 2)  # when commands arrive

    def program(sim: Simulation) -> dict[str, Any]:
        until = w.duration_us
        counters = {"guest_us": 0.0, "exits": 0}
        bql = BQL(sim)
        disk = Disk(sim, w.io_service_us, w.disk_queue_depth)
        dev = VirtioBlk(sim, w, disk)
        inflight = [0]
        main_ctx = AioContext(sim, "main")
        iothread = IOThread2013(sim, "iothread0")
        io_ctx = iothread.ctx

        def handle_vq():  # virtio_blk_handle_vq, in the IOThread, under its context lock
            while dev.avail:
                start = dev.avail.popleft()
                yield compute(dev.submit_us)
                if slow_rng.random() < p.slow_syscall_prob:
                    yield sleep(p.slow_syscall_us)  # io_submit blocks in the host kernel
                yield disk.submit(start)
                dev.submitted += 1

        io_ctx.set_event_notifier(dev.kick, handle_vq)
        io_ctx.set_event_notifier(disk.completion, dev.complete)

        latencies: list[float] = []
        if p.monitor_per_s:
            mean_gap = 1e6 / p.monitor_per_s
            arrival = [monitor_rng.expovariate(1 / mean_gap)]

            def info_block():  # the monitor command, in the main loop, which holds the BQL
                if p.monitor_takes_context_lock:
                    yield aio_context_acquire(io_ctx, "monitor: info block")
                yield compute(p.info_block_us)
                if p.monitor_takes_context_lock:
                    yield aio_context_release(io_ctx)
                latencies.append(sim.now - arrival[0])
                arrival[0] += monitor_rng.expovariate(1 / mean_gap)
                monitor.arm(arrival[0])

            monitor = main_ctx.timer_new(info_block, "monitor: info block")
            monitor.arm(arrival[0])

        def main_loop():
            yield bql.lock("main loop")
            while True:
                yield aio_poll(main_ctx, True, drop=BqlAroundPoll(bql))

        sim.spawn("main-loop", main_loop, daemon=True)

        def io_vcpu():  # vCPU 0's guest driver: keep io_depth requests in flight
            while sim.now < until:
                while inflight[0] < w.io_depth:
                    dev.avail.append(sim.now)
                    inflight[0] += 1
                yield dev.kick.set()
                yield dev.irq.wait()  # halted until the completion interrupt
                inflight[0] -= 1

        def vcpu():  # guest code between MMIO exits, each exit under the BQL
            while sim.now < until:
                us = sim.rng.expovariate(1.0 / w.guest_us)
                yield compute(us)
                counters["guest_us"] += us
                yield bql.lock("kvm: mmio exit")
                yield compute(w.mmio_emulation_us)
                counters["exits"] += 1
                yield bql.unlock()

        for i in range(w.vcpus):
            if i == 0 and w.io_depth:
                sim.spawn("vcpu0", io_vcpu, daemon=True)
            else:
                sim.spawn(f"vcpu{i}", vcpu)
        return {
            "bql": bql,
            "dev": dev,
            "iothread": iothread,
            "counters": counters,
            "monitor": latencies,
        }

    return program


def _pct(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (as ``run_era`` computes it); NaN if there are no values."""
    if not values:
        return math.nan
    s = sorted(values)
    return s[max(1, math.ceil(pct / 100 * len(s))) - 1]


@dataclass
class VMResult:
    """What one run of ``iothread_vm_program`` measured (times in us)."""

    vm: IOThreadVM
    guest_cpus_busy: float
    exits_per_s: float
    io_per_s: float
    io_p50_us: float
    io_p99_us: float
    bql_wait_us: float
    monitor_us: list[float]
    bql_profile: str
    ctx_profile: str
    result: RunResult | None = field(default=None, repr=False)

    @property
    def monitor_p50_us(self) -> float:
        return _pct(self.monitor_us, 50)

    @property
    def monitor_p99_us(self) -> float:
        return _pct(self.monitor_us, 99)

    @property
    def monitor_max_us(self) -> float:
        return max(self.monitor_us) if self.monitor_us else math.nan

    def summary(self) -> str:
        v = self.vm
        parts = [
            f"iothread: {v.vcpus} vCPU(s) on {v.host_cpus} host CPU(s)",
            f"guest ran {self.guest_cpus_busy:.2f} vCPUs' worth",
            f"{self.io_per_s:,.0f} I/O/s",
            f"BQL waits {self.bql_wait_us:,.0f} us",
        ]
        if self.monitor_us:
            parts.append(
                f"{len(self.monitor_us)} info block: p50 {self.monitor_p50_us:,.0f} us, "
                f"p99 {self.monitor_p99_us:,.0f} us"
            )
        return "; ".join(parts)

    def __str__(self) -> str:
        return self.summary()


def measure_vm(p: IOThreadVM, policy: str = "first-come", trace: bool = True) -> VMResult:
    """Run the VM for ``p.duration_us`` of simulated time and measure it."""
    r = run(
        iothread_vm_program(p),
        until=p.duration_us,
        seed=p.seed,
        cpus=p.host_cpus,
        policy=policy,
        trace=trace,
    )
    m = r.sim.model
    bql, dev, c = m["bql"], m["dev"], m["counters"]
    d = p.duration_us
    return VMResult(
        vm=p,
        guest_cpus_busy=c["guest_us"] / d,
        exits_per_s=c["exits"] / (d / 1e6),
        io_per_s=dev.completed / (d / 1e6),
        io_p50_us=_pct(dev.latencies, 50),
        io_p99_us=_pct(dev.latencies, 99),
        bql_wait_us=sum(s.wait_us for s in bql.sites.values()),
        monitor_us=list(m["monitor"]),
        bql_profile=bql.profile(),
        ctx_profile=m["iothread"].lock.profile(),
        result=r,
    )


# --------------------------------------------------------------------------------------------
# D4: the BQL/AioContext AB-BA (derived from the documented lock rules).


@dataclass
class BlockDevice:
    """What a completion handler in chapter 4's D4 program may use.

    ``stats`` is device state that the main loop owns (block accounting, say): the BQL protects
    it. ``ctx`` is the IOThread's context, ``main_ctx`` the main loop's.
    """

    bql: BQL
    ctx: AioContext
    main_ctx: AioContext
    stats: Shared


def complete_under_bql(dev: BlockDevice):
    """The bug: in the IOThread, whose loop holds the context lock, take the BQL."""
    yield dev.bql.lock("iothread: completion")
    yield dev.stats.increment()
    yield dev.bql.unlock()


def complete_via_main_loop(dev: BlockDevice):
    """One fix: hand the BQL work to the main loop as a one-shot bottom half (no lock needed
    to schedule it); it runs there under the BQL, with no context lock held."""

    def account():
        yield dev.stats.increment()

    yield dev.main_ctx.bh_schedule_oneshot(account, "account")


def complete_in_documented_order(dev: BlockDevice):
    """Another fix: let go of the context, take the BQL, then the context again: BQL first."""
    yield aio_context_release(dev.ctx)
    yield dev.bql.lock("iothread: completion")
    yield aio_context_acquire(dev.ctx, "iothread: completion")
    yield dev.stats.increment()
    yield dev.bql.unlock()


#: When things happen in the D4 program (us): the guest's requests, the monitor's command.
D4_REQUEST_AT = (0, 10, 20, 30, 40)
D4_MONITOR_AT = (5, 15, 25, 35, 45, 55)


def d4_program(
    completion: Any = complete_under_bql,
    requests: int = 2,
    submit_us: float = 10.0,
    info_block_us: float = 5.0,
):
    """The BQL/AioContext AB-BA: an IOThread completion takes the BQL under its context lock,
    while the main loop, holding the BQL, runs ``info block`` and takes that context lock.

    ``completion(dev)`` is the handler's last part (``dev`` is a ``BlockDevice``). Each request
    is kicked at a seeded random time from ``D4_REQUEST_AT`` and the monitor's command arrives
    at one from ``D4_MONITOR_AT``, so some seeds collide and some do not. The model is
    ``{"dev": BlockDevice, "iothread": IOThread, "requests": requests}``.
    """

    def program(sim: Simulation) -> dict[str, Any]:
        bql = BQL(sim)
        main_ctx = qemu_get_aio_context(sim)
        iothread = IOThread2013(sim, "iothread0")
        dev = BlockDevice(bql, iothread.ctx, main_ctx, Shared(sim, "blk.stats", 0))
        rng = sim.rng
        kicks = sorted(rng.choice(D4_REQUEST_AT) for _ in range(requests))
        command_at = rng.choice(D4_MONITOR_AT)
        bhs = []

        def request():  # runs in the IOThread, whose loop holds the context lock
            yield compute(submit_us)
            yield from completion(dev)

        for k in range(requests):
            bhs.append(iothread.ctx.bh_new(request, f"request{k}"))

        def info_block():  # a monitor command in the main loop: the BQL is held
            yield aio_context_acquire(iothread.ctx, "monitor: info block")
            yield compute(info_block_us)
            yield aio_context_release(iothread.ctx)

        main_ctx.timer_new(info_block, "info block").arm(command_at)

        def main_loop():
            yield bql.lock("main loop")
            while True:
                yield aio_poll(main_ctx, True, drop=BqlAroundPoll(bql))

        def guest():
            now = 0
            for at, bh in zip(kicks, bhs):
                if at > now:
                    yield sleep(at - now)
                    now = at
                yield bh.schedule()

        sim.spawn("main-loop", main_loop, daemon=True)
        sim.spawn("vcpu0", guest)
        return {"dev": dev, "iothread": iothread, "requests": requests}

    return program


def run_d4(
    completion: Any = complete_under_bql,
    seed: int = 0,
    policy: str = "random",
    schedule: str | None = None,
    **options: Any,
) -> RunResult:
    """One run of ``d4_program(completion)`` on two host CPUs."""
    program = d4_program(completion, **options)
    if schedule is not None:
        return run(program, schedule=schedule, seed=seed, cpus=2)
    return run(program, policy=policy, seed=seed, cpus=2)


__all__ = [
    "BlockDevice",
    "BqlAroundPoll",
    "ContextAroundPoll",
    "D4_MONITOR_AT",
    "D4_REQUEST_AT",
    "IOThread2013",
    "IOThreadVM",
    "VMResult",
    "complete_in_documented_order",
    "complete_under_bql",
    "complete_via_main_loop",
    "d4_program",
    "iothread_vm_program",
    "measure_vm",
    "run_d4",
]
