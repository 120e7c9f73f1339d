"""Each era of the course as one arrangement of the same parts, run on one ``Workload``.

Before 2009 one thread ran the guest's vCPUs in turn and, between slices, the main loop
(``main_loop_wait``). From 2009 each KVM vCPU got a thread that runs guest code without the Big
QEMU Lock and takes it for every MMIO exit that needs device emulation, while the main loop holds
the BQL except while it sleeps in ``poll()``. TCG followed, first with one thread for all vCPUs
(round robin), then, in 2017, one thread per vCPU (MTTCG). In 2012 the virtio-blk dataplane moved
one device's virtqueue and disk completions onto a private thread with its own loop, outside the
BQL, for raw images only; from 2013 an IOThread did the same with the whole block layer, its
handlers serialised by the AioContext lock instead of the BQL.

``run_era(workload, era)`` runs one arrangement for ``workload.duration_us`` of simulated time
and returns what a person would measure: guest throughput, MMIO exits, I/O rate and latency,
and BQL contention by call site.

Layer 4 (QEMU models).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from .. import validate
from ..kernel import RunResult, Simulation, compute, run
from ..loop import (
    AIO_ORDER,
    MAIN_LOOP_2008_ORDER,
    AioContext,
    aio_poll,
)
from ..stats import percentile
from .block import Disk, VirtioBlk
from .bql import BQL, RetakeAt
from .dataplane import Dataplane
from .iothread import IOThread, aio_context_acquire, aio_context_release, qemu_get_aio_context
from .workload import ERAS, Workload

# --------------------------------------------------------------------------------------------
# Results.


@dataclass
class EraResult:
    """What one run of an era measured."""

    era: str
    workload: Workload
    guest_cpus_busy: float  # guest code run per unit of time: 3.5 = three and a half vCPUs' worth
    exits_per_s: float  # MMIO exits emulated per simulated second
    io_per_s: float  # disk requests completed per simulated second
    io_p50_us: float
    io_p99_us: float
    bql_wait_us: float  # total time threads waited for the BQL
    bql_profile: str = ""
    result: RunResult | None = field(default=None, repr=False)
    monitor_us: list[float] = field(default_factory=list, repr=False)  # info block latencies
    ctx_profile: str = ""  # the IOThread's context-lock profile, in the eras that have one

    @property
    def monitor_p50_us(self) -> float:
        """Median ``info block`` latency (NaN without a monitor)."""
        return percentile(self.monitor_us, 50)

    @property
    def monitor_p99_us(self) -> float:
        """99th percentile of ``info block`` latency (NaN without a monitor)."""
        return percentile(self.monitor_us, 99)

    @property
    def monitor_max_us(self) -> float:
        """The slowest ``info block`` (NaN without a monitor)."""
        return max(self.monitor_us) if self.monitor_us else math.nan

    def summary(self) -> str:
        w = self.workload
        parts = [
            f"{self.era}: {w.vcpus} vCPU(s) on {w.host_cpus} host CPU(s)",
            f"guest ran {self.guest_cpus_busy:.2f} vCPUs' worth",
            f"{self.exits_per_s:,.0f} MMIO exits/s",
        ]
        if w.io_depth:
            parts.append(
                f"{self.io_per_s:,.0f} I/O/s (p50 {self.io_p50_us:.0f} us, "
                f"p99 {self.io_p99_us:.0f} us)"
            )
        parts.append(f"BQL waits {self.bql_wait_us / 1000:.1f} ms")
        if self.monitor_us:
            parts.append(f"{len(self.monitor_us)} info block, p99 {self.monitor_p99_us:,.0f} us")
        return "; ".join(parts)

    def __str__(self) -> str:
        return self.summary()


class _Counters:
    def __init__(self, w: Workload):
        self.w = w
        self.guest_us = 0.0
        self.exits = 0
        self.until = w.duration_us


def _io_vcpu_requests(sim: Simulation, dev: VirtioBlk, inflight: list[int]):
    """vCPU 0's guest driver: fill the virtqueue up to ``io_depth``, then kick (one step)."""
    while inflight[0] < dev.w.io_depth:
        dev.avail.append(sim.now)
        inflight[0] += 1
    yield dev.kick.set()


# --------------------------------------------------------------------------------------------
# The eras.


def _build(sim: Simulation, w: Workload, era: str) -> dict[str, Any]:
    c = _Counters(w)
    until = w.duration_us
    bql = None if era == "one-thread" else BQL(sim)
    disk = Disk(sim, w.io_service_us, w.disk_queue_depth)
    dev = VirtioBlk(sim, w, disk, block_layer=era != "dataplane")
    inflight = [0]
    io_vcpu = w.io_depth > 0

    order = MAIN_LOOP_2008_ORDER if era == "one-thread" else AIO_ORDER
    main_ctx = qemu_get_aio_context(sim)
    main_ctx.order = order
    iothread = None
    if era == "dataplane":
        io_ctx = AioContext(sim, "dataplane")
    elif era == "iothread":  # 2013-2017: the device's own loop, its handlers under the ctx lock
        # (IOThread's default loop_year=2015: the lock dropped around each blocking poll)
        iothread = IOThread(sim, "iothread0", lock_kind="rfifo")
    elif era == "iothread-2017":  # 2017-2023: the loop runs unlocked, each handler locks
        iothread = IOThread(sim, "iothread0", lock_kind="rec", loop_holds_lock=False)
    elif era == "iothread-9.0":  # 2024: no AioContext lock at all
        iothread = IOThread(sim, "iothread0", lock_kind=None)
    else:
        io_ctx = main_ctx
    if iothread is not None:
        io_ctx = iothread.ctx
    if era == "iothread-2017":
        io_ctx.set_event_notifier(
            dev.kick, _under_context_lock(io_ctx, dev.handle_vq, "iothread: handle_vq")
        )
        io_ctx.set_event_notifier(
            disk.completion, _under_context_lock(io_ctx, dev.complete, "iothread: complete")
        )
    else:
        io_ctx.set_event_notifier(dev.kick, dev.handle_vq)
        io_ctx.set_event_notifier(disk.completion, dev.complete)
    monitor_us: list[float] = []
    if w.monitor_per_s:
        _monitor(sim, w, main_ctx, io_ctx if era.startswith("iothread") else None, monitor_us)
    if w.timer_period_us:

        def tick():  # runs in the main loop, which already holds the BQL from 2009 on
            yield compute(w.timer_us)
            timer.arm(sim.now + w.timer_period_us)

        timer = main_ctx.timer_new(tick, "periodic")
        timer.arm(w.timer_period_us)

    def mmio_exit(site: str):
        if bql is not None:
            yield bql.lock(site)
        yield compute(w.mmio_emulation_us)
        c.exits += 1
        if bql is not None:
            yield bql.unlock()

    rng = sim.rng

    def guest_chunk():
        # Exits come at random: guest code runs an exponentially distributed time between two
        # exits, guest_us on average (seeded: the same seed gives the same run).
        us = rng.expovariate(1.0 / w.guest_us)
        yield compute(us)
        c.guest_us += us

    def run_slice(site: str):
        """One vCPU's time slice on a thread that runs several: guest code and its exits until
        the slice is used up (the alarm timer kicks the vCPU out)."""
        used = 0.0
        while used < w.slice_us:
            start = sim.now
            yield from guest_chunk()
            yield from mmio_exit(site)
            used += sim.now - start

    def collect_irqs():
        """Consume interrupts already delivered (non-blocking), for the one-thread era."""
        while dev.irq.count:
            dev.irq.count -= 1
            inflight[0] -= 1
        return
        yield  # a generator

    def round_robin(site: str, main_loop_wait: bool):
        """One thread runs every vCPU in turn for a slice (before 2009 also one pass of
        main_loop_wait after each round; round-robin TCG leaves that to the main loop)."""

        def body():
            while sim.now < until:
                for i in range(w.vcpus):
                    if i == 0 and io_vcpu:
                        yield from collect_irqs()
                        if inflight[0] < w.io_depth:
                            yield from _io_vcpu_requests(sim, dev, inflight)
                        continue  # waiting for I/O: this vCPU halts
                    yield from run_slice(site)
                if main_loop_wait:
                    yield aio_poll(main_ctx, False)
                    if io_vcpu and w.vcpus == 1 and not main_ctx.pending():
                        yield aio_poll(main_ctx, True)  # only the I/O vCPU: sleep until done

        return body

    threads: dict[str, Any] = {}
    model = dict(
        counters=c,
        dev=dev,
        bql=bql,
        threads=threads,
        monitor=monitor_us,
        io_ctx=io_ctx,
        iothread=iothread,
    )

    if era == "one-thread":
        threads["qemu"] = sim.spawn("qemu", round_robin("-", main_loop_wait=True))
        return model

    # From 2009 on: a main-loop thread that holds the BQL except while it sleeps.
    def main_loop():
        yield bql.lock("main loop")
        while True:
            yield aio_poll(main_ctx, True, drop=RetakeAt(bql, "main loop"))

    sim.spawn("main-loop", main_loop, daemon=True)
    if era == "dataplane":

        def dataplane():
            while True:
                yield aio_poll(io_ctx, True)

        sim.spawn("dataplane", dataplane, daemon=True)

    def io_vcpu_body(name: str):
        def body():
            while sim.now < until:
                yield from _io_vcpu_requests(sim, dev, inflight)
                yield dev.irq.wait()  # the guest halts until the completion interrupt
                inflight[0] -= 1

        return body

    def vcpu_body(site: str):
        def body():
            while sim.now < until:
                yield from guest_chunk()
                yield from mmio_exit(site)

        return body

    if era in ("kvm", "mttcg", "dataplane") or era.startswith("iothread"):
        prefix = "tcg-vcpu" if era == "mttcg" else "vcpu"
        site = "tcg: mmio" if era == "mttcg" else "kvm: mmio exit"
        for i in range(w.vcpus):
            body = io_vcpu_body(f"{prefix}{i}") if (i == 0 and io_vcpu) else vcpu_body(site)
            threads[f"{prefix}{i}"] = sim.spawn(f"{prefix}{i}", body, daemon=(i == 0 and io_vcpu))
    elif era == "tcg-rr":
        threads["tcg-rr"] = sim.spawn("tcg-rr", round_robin("tcg: mmio", main_loop_wait=False))
    else:
        raise ValueError(f"unknown era {era!r}; choose one of {ERAS}")
    return model


def _under_context_lock(ctx: AioContext, handler: Any, site: str):
    """A handler that takes its context's lock itself, as every handler did from 2017."""

    def locked():
        yield aio_context_acquire(ctx, site)
        yield from handler()
        yield aio_context_release(ctx)

    return locked


def _monitor(
    sim: Simulation,
    w: Workload,
    main_ctx: AioContext,
    io_ctx: AioContext | None,
    latencies: list[float],
) -> None:
    """``info block`` commands arriving at random in the main loop, which runs them holding the
    BQL (before 2009 there was no BQL; the one thread just ran them). Up to QEMU 9.0 the command
    also took the context lock of a disk served by an IOThread; ``latencies`` gets, for each
    command, the time from its arrival to its answer."""
    rng = random.Random(w.seed * 1_000_003 + 2)  # when commands arrive: a stream of its own
    mean_gap = 1e6 / w.monitor_per_s
    arrival = [rng.expovariate(1 / mean_gap)]
    locked = io_ctx is not None and io_ctx.lock is not None and w.monitor_takes_context_lock

    def info_block():
        if locked:
            yield aio_context_acquire(io_ctx, "monitor: info block")
        yield compute(w.info_block_us)
        if locked:
            yield aio_context_release(io_ctx)
        latencies.append(sim.now - arrival[0])
        arrival[0] += rng.expovariate(1 / mean_gap)
        timer.arm(max(arrival[0], sim.now))

    timer = main_ctx.timer_new(info_block, "monitor: info block")
    timer.arm(arrival[0])


def _check_era(w: Any, era: Any) -> None:
    """``era`` is one of ``ERAS`` (the message lists them); ``w`` a Workload."""
    if not isinstance(era, str) or era not in ERAS:
        raise ValueError(f"unknown era {era!r}; era must be one of {', '.join(ERAS)}")
    validate.instance("w", w, Workload, kind="a Workload(...)")


def era_program(w: Workload, era: str):
    """The program that ``run_era`` runs, for ``run(program, ...)`` and replays."""
    _check_era(w, era)

    def program(sim: Simulation) -> dict[str, Any]:
        return _build(sim, w, era)

    return program


def run_era(
    w: Workload,
    era: str,
    policy: str = "first-come",
    trace: bool = True,
    dataplane: Dataplane | None = None,
) -> EraResult:
    """Run ``era`` on workload ``w`` for ``w.duration_us`` and measure it.

    For the ``"dataplane"`` era, ``dataplane`` is its configuration (default: a raw image with
    nothing else asked of it); an unsupported configuration is refused before anything runs.
    """
    _check_era(w, era)
    validate.flag("trace", trace)
    if dataplane is not None:
        validate.instance("dataplane", dataplane, Dataplane, kind="a Dataplane(...) or None")
    if era == "dataplane":
        (dataplane or Dataplane()).start()
    elif dataplane is not None:
        raise ValueError(f"dataplane= only applies to the 'dataplane' era, not {era!r}")
    program = era_program(w, era)
    r = run(program, until=w.duration_us, seed=w.seed, cpus=w.host_cpus, policy=policy, trace=trace)
    model = r.sim.model
    c, dev, bql = model["counters"], model["dev"], model["bql"]
    d = w.duration_us
    io_lat = dev.latencies
    wait = sum(s.wait_us for s in bql.sites.values()) if bql else 0.0
    ctx_lock = model["iothread"].lock if model["iothread"] is not None else None
    return EraResult(
        era=era,
        workload=w,
        guest_cpus_busy=c.guest_us / d,
        exits_per_s=c.exits / (d / 1e6),
        io_per_s=dev.completed / (d / 1e6),
        io_p50_us=percentile(io_lat, 50),
        io_p99_us=percentile(io_lat, 99),
        bql_wait_us=wait,
        bql_profile=bql.profile() if bql else "(no BQL in this era)",
        result=r,
        monitor_us=list(model["monitor"]),
        ctx_profile=ctx_lock.profile() if ctx_lock is not None else "",
    )
