"""QEMU models: guests, vCPU threads, the main loop and the BQL, a disk, and the 2012 dataplane.

Each era of the course is one arrangement of the same parts. Before 2009 one thread ran the
guest's vCPUs in turn and, between slices, the main loop (``main_loop_wait``). From 2009 each KVM
vCPU got a thread that runs guest code without the Big QEMU Lock and takes it for every MMIO
exit that needs device emulation, while the main loop holds the BQL except while it sleeps in
``poll()``. TCG followed, first with one thread for all vCPUs (round robin), then, in 2017, one
thread per vCPU (MTTCG). In 2012 the virtio-blk dataplane moved one device's virtqueue and disk
completions onto a private thread with its own loop, outside the BQL, for raw images only;
from 2013 an IOThread did the same with the whole block layer, its handlers serialised by the
AioContext lock instead of the BQL (era ``"iothread"``; ``IOThread``, ``info_block`` and
``BlockDriverState`` are the parts chapters 4 and 5 build on).

``run_era(workload, era)`` runs one arrangement for ``workload.duration_us`` of simulated time
and returns what a person would measure: guest throughput, MMIO exits, I/O rate and latency,
and BQL contention by call site. Layer 4 (QEMU models): imports the kernel, the primitives and
the event loop.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Any

from . import tracebuf as tb
from .kernel import MisuseError, RunResult, Simulation, Step, compute, run, sleep
from .loop import (
    AIO_ORDER,
    MAIN_LOOP_2008_ORDER,
    AioContext,
    EventNotifier,
    aio_poll,
    aio_wait_kick,
    aio_wait_while,
)
from .shared import Shared
from .sync import QemuCond, QemuMutex, QemuRecMutex, QemuSemaphore, RFifoLock

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
    duration_us: how long to simulate. seed: for the random schedule policy.
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
                lo, hi = self._WHOLE[f.name]
                if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                    raise ValueError(
                        f"{f.name} must be a whole number from {lo} to {hi}; got {v!r}"
                    )
            elif f.name == "slow_syscall_prob":
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                    raise ValueError(f"slow_syscall_prob is a probability from 0 to 1; got {v!r}")
            elif f.name == "monitor_per_s":
                if (
                    isinstance(v, bool)
                    or not isinstance(v, (int, float))
                    or not math.isfinite(v)
                    or not 0 <= v <= 100_000
                ):
                    raise ValueError(
                        f"monitor_per_s is a rate from 0 to 100000 commands per second; got {v!r}"
                    )
            else:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise ValueError(f"{f.name} must be a number of microseconds; got {v!r}")
                if v < 0 or (f.name in self._POSITIVE and v == 0):
                    least = "> 0" if f.name in self._POSITIVE else ">= 0"
                    raise ValueError(f"{f.name} must be {least} microseconds; got {v!r}")
        if self.timer_period_us and self.timer_period_us < self.timer_us:
            raise ValueError("timer_period_us must be 0 (no timer) or at least timer_us")

    def __repr__(self) -> str:
        # Slow system calls and the monitor are shown only when they are switched on.
        hidden = set()
        if not self.slow_syscall_prob:
            hidden |= {"slow_syscall_prob", "slow_syscall_us"}
        if not self.monitor_per_s:
            hidden |= {"monitor_per_s", "info_block_us"}
        shown = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name not in hidden
        )
        return f"Workload({shown})"

    def replace(self, **changes: Any) -> Workload:
        """A copy with some fields changed (and checked again)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        unknown = set(changes) - set(values)
        if unknown:
            raise ValueError(
                f"unknown workload field(s) {sorted(unknown)}; known: {sorted(values)}"
            )
        values.update(changes)
        return Workload(**values)


# --------------------------------------------------------------------------------------------
# The Big QEMU Lock, with contention kept per call site (as QEMU's QSP profiler does).


@dataclass
class SiteStats:
    """One call site's use of a lock: acquisitions, how many waited, wait and hold time (us)."""

    site: str
    acquisitions: int = 0
    contended: int = 0
    wait_us: float = 0.0
    hold_us: float = 0.0


class ProfiledLock:
    """A lock that keeps contention per call site, as QEMU's synchronisation profiler (QSP) does.

    ``yield lock.lock("monitor: info block")`` names the caller; ``profile()`` then says who
    waited for the lock and who held it how long. It wraps any of the kernel's owned locks
    (``QemuMutex``, ``QemuRecMutex``, ``RFifoLock``); for a recursive one only the outermost
    acquisition is timed.
    """

    def __init__(self, mutex: Any):
        self.mutex = mutex
        self.sim = mutex.sim
        self.name = mutex.name
        self.sites: dict[str, SiteStats] = {}
        self._since: dict[int, tuple[str, float]] = {}

    def lock(self, site: str = "?"):
        sim = self.sim
        me = sim.current
        if self.mutex.owner is me and self.mutex.recursive:
            yield self.mutex.lock()  # nested: the outer acquisition is the one timed
            return
        st = self.sites.get(site)
        if st is None:
            st = self.sites[site] = SiteStats(site)
        start = sim.now
        yield self.mutex.lock()
        st.acquisitions += 1
        if sim.now > start:
            st.contended += 1
            st.wait_us += sim.now - start
        self._since[me.tid] = (site, sim.now)

    def unlock(self):
        sim = self.sim
        me = sim.current
        if self.mutex.owner is me and self.mutex.depth > 1:
            yield self.mutex.unlock()
            return
        site, since = self._since.pop(me.tid, ("?", sim.now))
        yield self.mutex.unlock()
        if site in self.sites:
            self.sites[site].hold_us += sim.now - since

    def held(self) -> bool:
        """Does the current thread hold it?"""
        return self.mutex.held_by(self.sim.current)

    def wait_us(self) -> float:
        return sum(s.wait_us for s in self.sites.values())

    def profile(self) -> str:
        """Contention by call site, most waited-for first, as a text table."""
        rows = sorted(self.sites.values(), key=lambda s: (-s.wait_us, s.site))
        head = f"{self.name} call site"
        lines = [f"{head:<24} {'taken':>7} {'waited':>7} {'wait us':>9} {'held us':>9}"]
        for s in rows:
            lines.append(
                f"{s.site:<24} {s.acquisitions:>7} {s.contended:>7} "
                f"{s.wait_us:>9.0f} {s.hold_us:>9.0f}"
            )
        return "\n".join(lines)


class BQL(ProfiledLock):
    """The Big QEMU Lock: one non-recursive ``QemuMutex`` that every device emulation needs.

    QEMU's names since 2024: ``bql_lock()``, ``bql_unlock()``, ``bql_locked()`` (before that,
    ``qemu_mutex_lock_iothread()`` and friends). ``yield bql.lock("kvm: mmio exit")`` names the
    call site, so ``profile()`` can say who waited for it and who held it how long.
    """

    def __init__(self, sim: Simulation):
        super().__init__(QemuMutex(sim, "BQL"))

    def lock(self, site: str = "main loop"):
        """``yield bql.lock(site)`` (QEMU: ``bql_lock``)."""
        return super().lock(site)

    def unlock(self):
        """``yield bql.unlock()`` (QEMU: ``bql_unlock``)."""
        return super().unlock()

    def locked(self) -> bool:
        """``bql_locked()``: does the current thread hold the BQL?"""
        return self.held()


# --------------------------------------------------------------------------------------------
# vCPUs as objects: kicking one, and running a function in its thread.


class CPUState:
    """One guest CPU and the thread that runs it (QEMU: ``CPUState``).

    Other threads reach a vCPU in two ways: ``qemu_cpu_kick`` makes it leave guest mode (or
    wakes it from ``halt_cond``) at its next chance, and ``run_on_cpu`` queues a function for
    its thread and waits, with the BQL as the condition's mutex, until the function has run.
    The vCPU thread calls ``process_queued_cpu_work`` between guest runs.
    """

    def __init__(self, sim: Simulation, index: int, bql: BQL):
        self.sim = sim
        self.index = index
        self.bql = bql
        self.thread: Any = None
        self.exit_request = False
        self.halted = False
        self.work: deque[list[Any]] = deque()
        self.halt_cond = QemuCond(sim, f"cpu{index}.halt_cond")
        self.work_cond = QemuCond(sim, f"cpu{index}.work_cond")

    def __repr__(self) -> str:
        who = self.thread.name if self.thread else "no thread yet"
        return f"<CPUState cpu{self.index} [{who}, queued work:{len(self.work)}]>"


def qemu_cpu_kick(cpu: CPUState):
    """``yield qemu_cpu_kick(cpu)``: ask the vCPU to leave guest mode and look at its work."""
    cpu.exit_request = True
    yield cpu.halt_cond.broadcast()


def run_on_cpu(cpu: CPUState, fn: Any):
    """``yield run_on_cpu(cpu, fn)``: run ``fn()`` in ``cpu``'s thread and wait for it.

    The caller must hold the BQL (the wait uses it as the condition's mutex). Called from the
    vCPU's own thread, ``fn`` simply runs.
    """
    sim = cpu.sim
    me = sim.current
    if me is cpu.thread:
        return (yield from _call_fn(fn))
    if not cpu.bql.mutex.held_by(me):
        raise MisuseError(
            f"{me.name} called run_on_cpu(cpu{cpu.index}) without the BQL: the wait for the "
            f"vCPU uses the BQL as its mutex, so take it first"
        )
    item = [fn, False, None]
    cpu.work.append(item)
    yield from qemu_cpu_kick(cpu)
    while not item[1]:
        yield cpu.work_cond.wait(cpu.bql.mutex)
    return item[2]


def process_queued_cpu_work(cpu: CPUState):
    """Run the functions queued for this vCPU (its thread holds the BQL), then wake the askers."""
    ran = False
    while cpu.work:
        item = cpu.work.popleft()
        item[2] = yield from _call_fn(item[0])
        item[1] = True
        ran = True
    cpu.exit_request = False
    if ran:
        yield cpu.work_cond.broadcast()


def _call_fn(fn: Any):
    result = fn()
    if hasattr(result, "send"):
        return (yield from result)
    return result


def vcpu_thread_fn(cpu: CPUState, guest_us: float, until: float):
    """A KVM vCPU thread that also serves kicks and queued work: guest mode without the BQL,
    then, holding it, the queued work; a halted vCPU sleeps on ``halt_cond``."""
    sim = cpu.sim
    cpu.thread = sim.current
    yield cpu.bql.lock("vcpu: work")
    while sim.now < until:
        yield from process_queued_cpu_work(cpu)
        if cpu.halted and not cpu.work:
            yield cpu.halt_cond.wait(cpu.bql.mutex)
            continue
        yield cpu.bql.unlock()
        yield compute(guest_us)  # guest mode; a kick takes effect when it comes out
        yield cpu.bql.lock("vcpu: work")
    yield cpu.bql.unlock()


# --------------------------------------------------------------------------------------------
# The disk and the virtio-blk request path.


class Disk:
    """A disk that serves up to ``queue_depth`` requests at once, each in ``service_us``.

    Completed requests queue up and the disk sets ``completion`` (Linux AIO's eventfd).
    """

    def __init__(self, sim: Simulation, service_us: float, queue_depth: int):
        self.sim = sim
        self.service_us = service_us
        self.queue_depth = queue_depth
        self.active = 0
        self.waiting: deque[Any] = deque()
        self.completed: deque[Any] = deque()
        self.completion = EventNotifier(sim, "disk-completion")

    def submit(self, request: Any) -> Step:
        """``yield disk.submit(req)``: hand a request to the disk (``io_submit``); never waits."""
        return Step(lambda t: self._submit(request) or True)

    def _submit(self, request: Any) -> None:
        if self.active < self.queue_depth:
            self._start(request)
        else:
            self.waiting.append(request)

    def _start(self, request: Any) -> None:
        self.active += 1
        ev = self.sim.env.timeout(self.service_us)
        ev.callbacks.append(lambda _ev: self._done(request))

    def _done(self, request: Any) -> None:
        self.active -= 1
        self.completed.append(request)
        self.completion.is_set = True
        if self.completion.ctx is not None:
            self.completion.ctx._wake_poller()
        if self.waiting:
            self._start(self.waiting.popleft())


class VirtioBlk:
    """A virtio-blk device: a virtqueue the guest fills, a kick, and an interrupt back.

    ``handle_vq`` (QEMU: ``virtio_blk_handle_vq``) takes requests off the queue and submits them;
    ``complete`` (the disk's completion handler) finishes them and interrupts the guest. Both run
    in whichever loop watches the kick and the disk: the main loop, which holds the BQL while it
    dispatches, or the dataplane's own loop, which never takes it.
    """

    def __init__(self, sim: Simulation, w: Workload, disk: Disk, block_layer: bool = True):
        self.sim = sim
        self.w = w
        self.disk = disk
        self.submit_us = w.io_submit_us + (w.block_layer_us if block_layer else 0.0)
        self.avail: deque[float] = deque()
        self.kick = EventNotifier(sim, "virtqueue-kick")  # the ioeventfd
        self.irq = QemuSemaphore(sim, "guest-irq")
        self.submitted = 0
        self.completed = 0
        self.latencies: list[float] = []
        # Which io_submit calls block in the host kernel: a stream of its own (see Workload).
        self.slow_rng = random.Random(w.seed * 1_000_003 + 1) if w.slow_syscall_prob else None

    def handle_vq(self):
        while self.avail:
            start = self.avail.popleft()
            yield compute(self.submit_us)
            if self.slow_rng is not None and self.slow_rng.random() < self.w.slow_syscall_prob:
                yield sleep(self.w.slow_syscall_us)  # io_submit blocks in the host kernel
            yield self.disk.submit(start)
            self.submitted += 1

    def complete(self):
        while self.disk.completed:
            start = self.disk.completed.popleft()
            yield compute(self.w.io_complete_us + self.w.handler_us)
            self.completed += 1
            self.latencies.append(self.sim.now - start)
            self.sim.mark("io", since=start)
            yield self.irq.post()


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

    @property
    def monitor_p99_us(self) -> float:
        """99th percentile of ``info block`` latency (NaN without a monitor)."""
        return _pct(self.monitor_us, 99)

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
    main_ctx = AioContext(sim, "main", order=order)
    if era == "dataplane":
        io_ctx = AioContext(sim, "dataplane")
    elif era == "iothread":  # 2013-2017: the device's own loop, its handlers under the ctx lock
        io_ctx = IOThread(sim, "iothread0", lock_kind="rfifo").ctx
    elif era == "iothread-2017":  # 2017-2023: the loop runs unlocked, each handler locks
        io_ctx = IOThread(sim, "iothread0", lock_kind="rec", loop_holds_lock=False).ctx
    elif era == "iothread-9.0":  # 2024: no AioContext lock at all
        io_ctx = IOThread(sim, "iothread0", lock_kind=None).ctx
    else:
        io_ctx = main_ctx
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

    if era == "one-thread":
        threads["qemu"] = sim.spawn("qemu", round_robin("-", main_loop_wait=True))
        return dict(
            counters=c, dev=dev, bql=bql, threads=threads, monitor=monitor_us, io_ctx=io_ctx
        )

    # From 2009 on: a main-loop thread that holds the BQL except while it sleeps.
    def main_loop():
        yield bql.lock("main loop")
        while True:
            yield aio_poll(main_ctx, True, drop=_RetakeAt(bql, "main loop"))

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
    return dict(counters=c, dev=dev, bql=bql, threads=threads, monitor=monitor_us, io_ctx=io_ctx)


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
    locked = io_ctx is not None and getattr(io_ctx, "lock", None) is not None

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


class _RetakeAt:
    """Lets ``aio_poll(..., drop=...)`` release a profiled lock around its sleep and take it
    again under a named call site (so the profile does not file the retake under "?")."""

    def __init__(self, lock: ProfiledLock, site: str):
        self.lock_, self.site = lock, site

    def unlock(self):
        return self.lock_.unlock()

    def lock(self):
        return self.lock_.lock(self.site)


def era_program(w: Workload, era: str):
    """The program that ``run_era`` runs, for ``run(program, ...)`` and replays."""
    if era not in ERAS:
        raise ValueError(f"unknown era {era!r}; choose one of {', '.join(ERAS)}")
    if not isinstance(w, Workload):
        raise TypeError(f"expected a Workload; got {type(w).__name__}")

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
    return EraResult(
        era=era,
        workload=w,
        guest_cpus_busy=c.guest_us / d,
        exits_per_s=c.exits / (d / 1e6),
        io_per_s=dev.completed / (d / 1e6),
        io_p50_us=_pct(io_lat, 50),
        io_p99_us=_pct(io_lat, 99),
        bql_wait_us=wait,
        bql_profile=bql.profile() if bql else "(no BQL in this era)",
        result=r,
        monitor_us=list(model["monitor"]),
    )


def _pct(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    return s[max(1, math.ceil(p / 100 * len(s))) - 1]


# --------------------------------------------------------------------------------------------
# IOThreads and the AioContext lock (2013-2023), block nodes and drained sections.


def aio_context_new_lock(ctx: AioContext, kind: str = "rfifo") -> ProfiledLock:
    """Give ``ctx`` its lock: ``"rfifo"`` (2013: recursive, FIFO, kicks the owner out of
    ``aio_poll``) or ``"rec"`` (2017: a plain ``QemuRecMutex``). Every context's lock is one
    lock class, ``AioContext``, for the lock-order validator."""
    if kind == "rfifo":
        mutex = RFifoLock(
            ctx.sim,
            f"{ctx.name}.ctx",
            lock_class="AioContext",
            on_contention=lambda t: ctx._notify(),
        )
    elif kind == "rec":
        mutex = QemuRecMutex(ctx.sim, f"{ctx.name}.ctx", lock_class="AioContext")
    else:
        raise ValueError(f"an AioContext lock is 'rfifo' (2013) or 'rec' (2017); got {kind!r}")
    ctx.lock = ProfiledLock(mutex)
    return ctx.lock


def aio_context_acquire(ctx: AioContext, site: str = "?"):
    """``yield aio_context_acquire(ctx, site)``: take the context's (recursive) lock."""
    lock = getattr(ctx, "lock", None)
    if lock is None:
        raise MisuseError(
            f"AioContext {ctx.name} has no lock (give it one with "
            f"aio_context_new_lock, or this era has none)"
        )
    return lock.lock(site)


def aio_context_release(ctx: AioContext):
    """``yield aio_context_release(ctx)``."""
    return ctx.lock.unlock()


class IOThread:
    """``-object iothread,id=NAME``: a thread that runs its own AioContext's loop.

    ``loop_holds_lock=True`` is the 2013 design: ``aio_poll`` holds the context lock while it
    dispatches and lets go only around the blocking wait, so every handler runs under it. With
    ``False`` (2017) the loop takes no lock and each handler takes it itself.
    """

    def __init__(
        self,
        sim: Simulation,
        name: str,
        lock_kind: str | None = "rfifo",
        loop_holds_lock: bool = True,
    ):
        self.sim = sim
        self.name = name
        self.ctx = AioContext(sim, name)
        self.lock = aio_context_new_lock(self.ctx, lock_kind) if lock_kind else None
        self.loop_holds_lock = loop_holds_lock and self.lock is not None
        self.thread = sim.spawn(name, self._run, daemon=True)
        self.ctx.home = self.thread

    def _run(self):
        while True:
            if self.loop_holds_lock:
                yield self.lock.lock("iothread: aio_poll")
                yield aio_poll(self.ctx, True, drop=_RetakeAt(self.lock, "iothread: aio_poll"))
                yield self.lock.unlock()
            else:
                yield aio_poll(self.ctx, True)


def iothread_get_aio_context(iothread: IOThread) -> AioContext:
    """The AioContext an IOThread runs (QEMU: ``iothread_get_aio_context``)."""
    return iothread.ctx


def qemu_get_aio_context(sim: Simulation) -> AioContext:
    """The main loop's AioContext (QEMU: ``qemu_get_aio_context``), made on first use; its home
    thread is whichever thread polls it first."""
    ctx = getattr(sim, "_main_aio_context", None)
    if ctx is None:
        ctx = sim._main_aio_context = AioContext(sim, "main")
    return ctx


class BlockDriverState:
    """A block node: its AioContext, requests in flight, and drained sections.

    ``bdrv_inc_in_flight``/``bdrv_dec_in_flight`` count requests; a drained section
    (``bdrv_drained_begin``/``end``) stops new requests (``quiesce_counter``) and waits with
    ``AIO_WAIT_WHILE`` until none is in flight.
    """

    def __init__(self, sim: Simulation, name: str, ctx: AioContext):
        self.sim = sim
        self.name = name
        self.ctx = ctx
        self.in_flight = Shared(sim, f"{name}.in_flight", 0)
        self.quiesce_counter = 0

    def inc_in_flight(self):
        """``yield bs.inc_in_flight()`` (``bdrv_inc_in_flight``)."""
        return self.in_flight.qatomic_add(1)

    def dec_in_flight(self, main_ctx: AioContext | None = None):
        """``yield bs.dec_in_flight(main_ctx)``: one request fewer; kick a waiting drain."""
        yield self.in_flight.qatomic_add(-1)
        if main_ctx is not None:
            yield aio_wait_kick(main_ctx)

    def drained_begin(self, main_ctx: AioContext | None = None):
        """``yield bs.drained_begin(main_ctx)``: no new requests; wait for those in flight."""
        self.quiesce_counter += 1
        lock = getattr(self.ctx, "lock", None)
        yield aio_wait_while(self.ctx, lambda: self.in_flight.value > 0, lock, main_ctx)

    def drained_end(self):
        self.quiesce_counter -= 1
        return
        yield


def info_block(bql: BQL, contexts: list[AioContext], cost_us: float = 20.0):
    """The monitor's ``info block``: with the BQL held, take each device's AioContext lock in
    turn to read its state. Returns how long the command took (us)."""
    sim = bql.sim
    start = sim.now
    yield bql.lock("monitor: info block")
    for ctx in contexts:
        yield aio_context_acquire(ctx, "monitor: info block")
        yield compute(cost_us)
        yield aio_context_release(ctx)
    yield bql.unlock()
    return sim.now - start


# --------------------------------------------------------------------------------------------
# The 2012 dataplane's limits, and the race that came with a second way into one handler.


class DataplaneRefused(Exception):
    """What ``x-data-plane=on`` answered when asked for something it could not do."""


class Dataplane:
    """The configuration of a virtio-blk device with ``x-data-plane=on`` (QEMU 1.4, 2013).

    It served read, write and flush on a raw image from its own thread. Everything else was
    refused or missing: image formats at start-up; block jobs (and hot unplug) with -EBUSY while
    it ran; no live migration; QEMU's throttling ignored (the limits listed when it was merged).
    """

    def __init__(self, image_format: str = "raw", throttling: bool = False):
        self.image_format = image_format
        self.throttling = throttling
        self.running = False

    def start(self) -> Dataplane:
        if self.image_format != "raw":
            raise DataplaneRefused(
                f"x-data-plane=on supports only format=raw, not {self.image_format!r}: the "
                f"dataplane thread submits Linux AIO itself and bypasses the block layer that "
                f"understands image formats"
            )
        if self.throttling:
            raise DataplaneRefused(
                "x-data-plane=on ignores QEMU's I/O throttling (it lives in the block layer, "
                "which the dataplane bypasses); QEMU 1.4 silently went on without the limit, "
                "this model refuses so that it is not lost unnoticed; use cgroups blkio instead"
            )
        self.running = True
        return self

    def _busy(self, what: str) -> DataplaneRefused:
        return DataplaneRefused(
            f"-EBUSY: {what} is not possible while the dataplane runs: it needs the block "
            f"layer and the BQL, and the dataplane thread uses neither"
        )

    def start_block_job(self, job: str = "stream") -> None:
        """A block job (stream, mirror, ...) on the device."""
        if self.running:
            raise self._busy(f"block job {job!r}")

    def migrate(self) -> None:
        """Live migration of the guest: not supported with the 2013 dataplane (later versions
        stopped the dataplane for the duration of the migration)."""
        if self.running:
            raise DataplaneRefused(
                "live migration is not supported with x-data-plane=on (QEMU 1.4): the "
                "dataplane's requests bypass the block layer that migration must quiesce"
            )

    def set_throttle(self, iops: int) -> None:
        """QEMU's I/O throttling (block_set_io_throttle)."""
        if self.running:
            raise self._busy(f"throttling to {iops} IOPS")


class HandlerGuard:
    """Notices when two threads are inside one handler at once: the shape of race R2.

    The handler calls ``yield guard.enter()`` first and ``yield guard.leave()`` last; a second
    thread entering while another is inside is written down in ``reports``.
    """

    def __init__(self, sim: Simulation, handler: str):
        self.sim = sim
        self.handler = handler
        self.inside: list[Any] = []
        self.reports: list[str] = []

    def enter(self) -> Step:
        def do(t: Any) -> bool:
            for other in self.inside:
                self.reports.append(
                    f"t={self.sim.now:g} us: {t.name} entered {self.handler} while "
                    f"{other.name} was still inside it"
                )
            self.inside.append(t)
            self.sim._record(tb.OP, t.tid, self.sim._label("note", f"enter {self.handler}"), None)
            return True

        return Step(do)

    def leave(self) -> Step:
        def do(t: Any) -> bool:
            self.inside.remove(t)
            self.sim._record(tb.OP, t.tid, self.sim._label("note", f"leave {self.handler}"), None)
            return True

        return Step(do)


def r2_program(fixed: bool = False, requests: int = 3):
    """R2: the virtqueue handler run by a vCPU thread *and* by the dataplane's thread.

    In the buggy version the vCPU's notify path still calls ``virtio_blk_handle_vq`` itself
    (as the vCPU thread did before the dataplane) and also kicks the dataplane, which runs the
    same handler from its own loop; the handler was never written to be entered twice at once.
    The fix gives the queue one owner: the vCPU only kicks.
    """

    def program(sim: Simulation) -> HandlerGuard:
        bql = BQL(sim)
        guard = HandlerGuard(sim, "virtio_blk_handle_vq")
        avail = Shared(sim, "vq.avail_idx", 0)
        last = Shared(sim, "vq.last_avail_idx", 0)
        kick = EventNotifier(sim, "virtqueue-kick")
        ctx = AioContext(sim, "dataplane")

        def handle_vq():
            yield guard.enter()
            while (yield last.load()) < (yield avail.load()):
                idx = yield last.load()
                yield compute(2)  # parse the request descriptor
                yield last.store(idx + 1)
            yield guard.leave()

        ctx.set_event_notifier(kick, handle_vq)

        def vcpu():
            for _ in range(requests):
                yield avail.increment()
                yield kick.set()  # the ioeventfd: the dataplane's loop wakes up
                if not fixed:  # ... and the old notify path runs the handler here too
                    yield bql.lock("vcpu: virtio notify")
                    yield from handle_vq()
                    yield bql.unlock()
                yield compute(3)

        def dataplane():
            while True:
                yield aio_poll(ctx, True)

        sim.spawn("vcpu0", vcpu)
        sim.spawn("dataplane", dataplane, daemon=True)
        return guard

    return program


__all__ = [
    "BQL",
    "BlockDriverState",
    "CPUState",
    "Dataplane",
    "DataplaneRefused",
    "Disk",
    "ERAS",
    "EraResult",
    "HandlerGuard",
    "IOThread",
    "ProfiledLock",
    "VirtioBlk",
    "Workload",
    "aio_context_acquire",
    "aio_context_new_lock",
    "aio_context_release",
    "era_program",
    "info_block",
    "iothread_get_aio_context",
    "process_queued_cpu_work",
    "qemu_cpu_kick",
    "qemu_get_aio_context",
    "r2_program",
    "run_era",
    "run_on_cpu",
    "vcpu_thread_fn",
]
