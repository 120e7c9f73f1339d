"""The multi-queue block layer of QEMU 9.0: no AioContext lock, many IOThreads per device.

In QEMU 9.0 the AioContext lock is gone (it was first turned into empty functions, then its
callers were deleted), ``AIO_WAIT_WHILE`` no longer juggles a lock, and a virtio-blk device can
spread its virtqueues over several IOThreads with ``iothread-vq-mapping``. What still serialises
the IOThreads is fine-grained: here the block node's ``reqs_lock``, which guards the list of
tracked requests and is taken twice per request. It is a ``CoMutex`` (the engine's, which
spins as QEMU's does before a taker queues and yields; the unlocker hands it to the first waiter
and wakes it with ``aio_co_wake``, which for a coroutine of another IOThread means a BH in that
thread's context, an ``aio_notify`` and a wake-up, and for one of its own IOThread a wait on
``co_queue_wakeup`` until the unlocker yields) or, as in QEMU from 2023, a ``QemuMutex`` held
for a few instructions and never across a yield. Once, during the warm-up, the host takes
``iothread0``'s CPU while it holds ``reqs_lock`` (``MQCosts.stall_us``): with a ``CoMutex``,
that is what starts a queue of waiters, which the load then keeps going.

``VM(...)`` describes a guest, its host and the device; ``measure(vm, seed)`` runs it for a
short stretch of simulated time and returns an ``MQResult`` (I/O rate, latency percentiles,
per-IOThread load, host CPU use, request-lock waits, ``info block`` latency). All costs are
model parameters (``MQCosts``), not QEMU measurements. Layer 4 (QEMU models): imports the
kernel, the primitives, the event loop, coroutines and the other QEMU models.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .. import validate
from ..coroutine import (
    CoMutex,
    Coroutine,
    co_mutex_state,
    qemu_coroutine_enter,
    qemu_coroutine_yield,
)
from ..kernel import MAX_THREADS, Simulation, Step, compute, run, sleep, state_repr
from ..loop import AioContext, EventNotifier, aio_wait_while
from ..stats import percentile
from ..sync import QemuMutex, QemuSemaphore
from .bql import BQL
from .iothread import IOThread

REQS_LOCK_KINDS = ("QemuMutex", "CoMutex")


# --------------------------------------------------------------------------------------------
# QEMU 9.0: no context lock (its empty calls of late 2023 are ``aio_context_new_lock(ctx,
# "noop")`` in ``labsupport.qemu.iothread``), and an AIO_WAIT_WHILE with nothing to release.


def AIO_WAIT_WHILE(ctx: AioContext, cond: Any):  # noqa: N802
    """``AIO_WAIT_WHILE`` in QEMU 9.0: the same as ``AIO_WAIT_WHILE_UNLOCKED``, no lock to
    release and retake around the main loop's ``aio_poll``."""
    return aio_wait_while(ctx, cond, unlocked=True)


# --------------------------------------------------------------------------------------------
# Parameters.


@dataclass(frozen=True)
class MQCosts:
    """What each step of a request costs in the model (microseconds). Model parameters, chosen
    so that one request is a few microseconds of host CPU against a ~10 us disk; the chapter
    explains each. ``stall_us`` is not a cost but a disturbance: once, at the first
    ``reqs_lock`` section ``iothread0`` enters from ``stall_at_us`` on, it stays off its CPU
    that long while holding the lock (0: never)."""

    guest_submit_us: float = 1.0  # vCPU: fill the descriptor, write the ioeventfd
    handle_us: float = 2.0  # IOThread: virtqueue_pop and request set-up
    submit_us: float = 2.0  # IOThread: block layer and io_submit
    complete_us: float = 2.0  # IOThread: completion, virtqueue push, guest notification
    reqs_lock_us: float = 0.3  # one tracked-request critical section (two per request)
    notify_us: float = 0.5  # the waker's aio_notify (an eventfd write) to another IOThread
    wake_us: float = 0.5  # the woken IOThread: dispatch the BH, switch to the coroutine
    wake_latency_us: float = 0.0  # extra delay if that IOThread was asleep in ppoll()
    spin_iteration_us: float = 0.005  # one iteration of the CoMutex's spin (at most 1000)
    stall_us: float = 20.0  # once: the host takes iothread0's CPU inside a reqs_lock section
    stall_at_us: float = 100.0  # ... in its first one from this time on (during the warm-up)
    disk_service_us: float = 10.0  # one 4k read on a fast NVMe drive (derived, ~10 us)
    disk_parallelism: int = 8  # requests the drive serves at once
    info_block_us: float = 20.0  # the monitor's info block, under the BQL

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "disk_parallelism":
                validate.whole(f.name, v, 1, verb="is")
            else:
                positive = f.name == "disk_service_us"
                validate.duration(
                    f.name, v, positive=positive, kind="a time in microseconds", verb="is"
                )


class MappingError(ValueError):
    """An ``iothread-vq-mapping`` the model refuses (a virtqueue unmapped or mapped twice, an
    unknown IOThread, or the explicit and round-robin forms mixed)."""


def iothread_vq_mapping(mapping: Any, iothreads: list[str], num_queues: int) -> dict[int, str]:
    """Check ``mapping`` and return ``{vq: iothread name}``.

    Either every entry lists its ``"vqs"`` (explicit) or none does (round-robin over the listed
    IOThreads, in order). Every IOThread must exist; every virtqueue ``0..num_queues-1`` must be
    mapped exactly once; an IOThread may appear only once.
    """
    names = validate.items("iothreads", iothreads, kind="a list of IOThread names", empty=False)
    for n in names:
        validate.label("iothreads", n, kind="a list of IOThread names, each a non-empty string")
    validate.whole("num_queues", num_queues, 1, verb="is")
    if not isinstance(mapping, (list, tuple)) or not mapping:
        raise MappingError(
            'iothread-vq-mapping is a non-empty list such as [{"iothread": "iothread0", '
            f'"vqs": [0, 1]}}, ...] or [{{"iothread": "iothread0"}}, ...]; got {mapping!r}'
        )
    seen_threads: list[str] = []
    explicit = None
    for entry in mapping:
        if (
            not isinstance(entry, dict)
            or "iothread" not in entry
            or not set(entry) <= {"iothread", "vqs"}
        ):
            raise MappingError(
                f'each entry is {{"iothread": NAME}} or {{"iothread": NAME, '
                f'"vqs": [...]}}; got {entry!r}'
            )
        name = entry["iothread"]
        if name not in iothreads:
            raise MappingError(
                f"IOThread {name!r} does not exist; the VM has {', '.join(iothreads)}"
            )
        if name in seen_threads:
            raise MappingError(f"IOThread {name!r} appears twice in iothread-vq-mapping")
        seen_threads.append(name)
        has_vqs = "vqs" in entry
        if explicit is None:
            explicit = has_vqs
        elif explicit != has_vqs:
            raise MappingError(
                'either every entry lists its "vqs" or none does (round-robin); '
                "they cannot be mixed"
            )
    result: dict[int, str] = {}
    if not explicit:
        for vq in range(num_queues):
            result[vq] = seen_threads[vq % len(seen_threads)]
        return result
    for entry in mapping:
        vqs = entry["vqs"]
        if not isinstance(vqs, (list, tuple)):
            raise MappingError(f'"vqs" is a list of virtqueue numbers; got {vqs!r}')
        for vq in vqs:
            says = f"does not exist: the device has {num_queues} (0 to {num_queues - 1})"
            validate.whole(
                f"virtqueue {vq!r}", vq, 0, num_queues - 1, says=says, error=MappingError
            )
            if vq in result:
                raise MappingError(f"virtqueue {vq} is mapped more than once")
            result[vq] = entry["iothread"]
    missing = [vq for vq in range(num_queues) if vq not in result]
    if missing:
        raise MappingError(
            f"virtqueue(s) {missing} are not mapped to any IOThread: every "
            f"virtqueue must be mapped exactly once"
        )
    return result


@dataclass
class VM:
    """A guest with a virtio-blk device on ``num_queues`` virtqueues served by ``iothreads``
    IOThreads (named ``iothread0``, ``iothread1``, ...), on ``host_cpus`` host CPUs.

    ``mapping`` is an ``iothread-vq-mapping`` (explicit or round-robin, see
    ``iothread_vq_mapping``); None means round-robin over all IOThreads. The guest keeps
    ``iodepth`` requests in flight in total, spread over its ``vcpus`` vCPUs; vCPU ``j``
    submits to virtqueue ``j % num_queues``. ``reqs_lock`` is ``"QemuMutex"`` or
    ``"CoMutex"``. ``monitor_rate_hz`` > 0 sends ``info block`` commands at that rate.
    ``duration_us`` of simulated time are run; the first ``warmup_us`` are not measured. By
    default (None) both grow with the time one request takes when the IOThreads are the
    bottleneck (``vm.warmup``, ``vm.duration``): the IOThreads work in batches, and a window
    shorter than a few batches would catch more of one phase than another.

    ``VM(...)`` and ``measure(vm, seed)`` are the stable interface other chapters use.
    """

    iothreads: int = 1
    num_queues: int = 8
    mapping: Any = None
    vcpus: int = 8
    host_cpus: int = 8
    iodepth: int = 64
    reqs_lock: str = "QemuMutex"
    monitor_rate_hz: float = 0.0
    duration_us: float | None = None
    warmup_us: float | None = None
    costs: MQCosts = field(default_factory=MQCosts)

    def __post_init__(self) -> None:
        validate.whole("iothreads", self.iothreads, 1, 64, verb="is")
        validate.whole("num_queues", self.num_queues, 1, 64, verb="is")
        validate.whole("vcpus", self.vcpus, 1, 64, verb="is")
        validate.whole("host_cpus", self.host_cpus, 1, 128, verb="is")
        validate.whole("iodepth", self.iodepth, 1, 256, verb="is")
        if self.reqs_lock not in REQS_LOCK_KINDS:
            raise ValueError(
                f"reqs_lock is one of {', '.join(REQS_LOCK_KINDS)}; got {self.reqs_lock!r}"
            )
        validate.number(
            "monitor_rate_hz", self.monitor_rate_hz, low=0, high=100_000, kind="a rate", verb="is"
        )
        for name in ("duration_us", "warmup_us"):
            v = getattr(self, name)
            if v is not None:
                verb = "is None (automatic) or"
                validate.duration(name, v, high=100_000, kind="a time", unit="us", verb=verb)
        if not isinstance(self.costs, MQCosts):
            raise ValueError(f"costs is an MQCosts; got {self.costs!r}")
        self.vq_map = iothread_vq_mapping(
            self.mapping
            if self.mapping is not None
            else [{"iothread": n} for n in self.iothread_names],
            self.iothread_names,
            self.num_queues,
        )
        if self.threads > MAX_THREADS:
            monitor = " + 1 (the main loop, for the monitor)" if self.monitor_rate_hz > 0 else ""
            raise ValueError(
                f"min(vcpus, iodepth) + iothreads{monitor} must be at most {MAX_THREADS} "
                f"threads (a simulation runs at most {MAX_THREADS}; a vCPU with no request in "
                f"flight runs no thread); got {self.threads} (vcpus={self.vcpus}, "
                f"iodepth={self.iodepth}, iothreads={self.iothreads})"
            )
        if self.duration - self.warmup < 100:
            raise ValueError(
                "duration_us must exceed warmup_us by at least 100 us; got "
                f"{self.duration!r} and {self.warmup!r}"
            )

    @property
    def threads(self) -> int:
        """The simulated threads ``measure`` runs: one per vCPU that keeps a request in flight
        (``min(vcpus, iodepth)``), one per IOThread, and the main loop if the monitor is on."""
        return min(self.vcpus, self.iodepth) + self.iothreads + (self.monitor_rate_hz > 0)

    @property
    def _cycle_us(self) -> float:
        """About how long one request takes when the IOThreads are the bottleneck: the
        requests in flight times ~7 us of IOThread work, over the IOThreads that get any."""
        used = {self.vq_map[j % self.num_queues] for j in range(min(self.vcpus, self.iodepth))}
        return self.iodepth * 7.0 / len(used)

    @property
    def warmup(self) -> float:
        """The simulated time (us) not measured: ``warmup_us``, or by default 300 us plus
        one and a half request cycles."""
        return float(self.warmup_us) if self.warmup_us is not None else 300.0 + 1.5 * self._cycle_us

    @property
    def duration(self) -> float:
        """The simulated time (us) run: ``duration_us``, or by default the warm-up plus a
        window of at least 1200 us and three request cycles."""
        return (
            float(self.duration_us)
            if self.duration_us is not None
            else self.warmup + max(1200.0, 3 * self._cycle_us)
        )

    @property
    def iothread_names(self) -> list[str]:
        return [f"iothread{i}" for i in range(self.iothreads)]

    def replace(self, **changes: Any) -> VM:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def describe(self) -> str:
        by_thread: dict[str, list[int]] = {n: [] for n in self.iothread_names}
        for vq, name in sorted(self.vq_map.items()):
            by_thread[name].append(vq)
        m = ", ".join(f"{n}: vqs {v}" for n, v in by_thread.items() if v)
        return (
            f"{self.vcpus} vCPUs, {self.host_cpus} host CPUs, {self.num_queues} virtqueues "
            f"on {self.iothreads} IOThread(s) ({m}), iodepth {self.iodepth}, "
            f"reqs_lock {self.reqs_lock}"
        )


# --------------------------------------------------------------------------------------------
# The request path.


def _check_reqs_lock(sim: Any, name: Any, costs: Any) -> None:
    validate.instance("sim", sim, Simulation, kind="a Simulation")
    validate.label("name", name)
    validate.instance("costs", costs, MQCosts, kind="an MQCosts")


class ReqsCoMutex(CoMutex):
    """``bs->reqs_lock`` as a ``CoMutex`` (``labsupport.coroutine.CoMutex``: QEMU's spin before
    sleeping, its ``co_queue_wakeup`` for a waiter of the unlocker's own IOThread), with the
    costs of a hand-over to another IOThread made explicit.

    A taker that finds the mutex held by another IOThread's coroutine, nobody queued, spins
    (``spin_iteration_us`` per iteration, at most 1000, QEMU's bound); otherwise, or when the
    spin runs out, it queues and yields. ``unlock`` hands the mutex to the first waiter. If the
    waiter belongs to another IOThread, the unlocker pays ``notify_us`` (``aio_notify``), the
    waiter's thread, if asleep in ``ppoll``, needs ``wake_latency_us`` to run, then ``wake_us``
    to dispatch ``co_schedule_bh`` and enter the coroutine; a waiter of the unlocker's own
    IOThread runs when the unlocker yields or ends. Either way the mutex is already the
    waiter's meanwhile. Spinning is IOThread work: ``spin_us_by_thread`` counts it per thread
    from ``warm`` (us) on.
    """

    def __init__(self, sim: Simulation, name: str, costs: MQCosts):
        _check_reqs_lock(sim, name, costs)
        super().__init__(sim, name, spin_iteration_us=costs.spin_iteration_us)
        self.costs = costs
        self.warm = 0.0
        self.spin_us_by_thread: dict[str, float] = {}

    @property
    def cross_thread_wakes(self) -> int:
        """Hand-overs to a coroutine of another IOThread."""
        return self.cross_context_wakes

    def __repr__(self) -> str:
        return state_repr(
            self,
            co_mutex_state(self),
            f"handoffs:{self.handoffs}",
            f"cross-thread wakes:{self.cross_context_wakes}",
        )

    def _spin_op(self, us: float) -> Any:
        if self.sim.now >= self.warm:
            name = self.sim.current.name
            self.spin_us_by_thread[name] = self.spin_us_by_thread.get(name, 0.0) + us
        return compute(us)

    def _handoff(self, nxt: Coroutine):
        nxt.mq_cross = True
        nxt.mq_asleep = bool(nxt.ctx.waiters)  # its thread sleeps in ppoll() right now
        yield compute(self.costs.notify_us)

    def _woken(self, me: Coroutine):
        if getattr(me, "mq_asleep", False):  # its thread slept in ppoll(): waking takes a while
            me.mq_asleep = False
            yield sleep(self.costs.wake_latency_us)
        if getattr(me, "mq_cross", False):
            me.mq_cross = False
            yield compute(self.costs.wake_us)


class ReqsQemuMutex:
    """``bs->reqs_lock`` as a ``QemuMutex``: held for the short critical section only, never
    across a yield; a contended waiter blocks its whole thread for that long."""

    kind = "mutex"

    def __init__(self, sim: Simulation, name: str, costs: MQCosts):
        _check_reqs_lock(sim, name, costs)
        self.mutex = QemuMutex(sim, name)
        self.name = name

    def lock(self):
        yield self.mutex.lock()

    def unlock(self):
        yield self.mutex.unlock()

    def __repr__(self) -> str:
        return state_repr(self, self.mutex.state_text())


class Request:
    __slots__ = ("start", "vcpu", "vq", "co")

    def __init__(self, start: float, vcpu: int, vq: int):
        self.start, self.vcpu, self.vq, self.co = start, vcpu, vq, None

    def __repr__(self) -> str:
        co = f"{self.co.name} {self.co.state}" if self.co is not None else "no coroutine yet"
        return state_repr(
            self, f"vcpu{self.vcpu}", f"vq{self.vq}", f"since t={self.start:g}us", co, name=""
        )


class NVMeDisk:
    """A drive that serves ``parallelism`` requests at once, each in ``service_us`` (+-20%); each
    completion goes to the submitting IOThread's own completion notifier (QEMU 9.0 sets up
    Linux AIO or io_uring per thread)."""

    def __init__(self, sim: Simulation, service_us: float, parallelism: int):
        validate.instance("sim", sim, Simulation, kind="a Simulation")
        validate.duration("service_us", service_us, positive=True)
        validate.whole("parallelism", parallelism, 1)
        self.sim = sim
        self.service_us = service_us
        self.parallelism = parallelism
        self.active = 0
        self.waiting: deque[tuple[Request, Any]] = deque()
        self.busy_since = 0.0
        self.busy_area = 0.0  # integral of active requests over time

    def __repr__(self) -> str:
        return state_repr(
            self,
            f"active:{self.active}/{self.parallelism}",
            f"queued:{len(self.waiting)}",
            f"service {self.service_us:g}us",
        )

    def _account(self) -> None:
        now = self.sim.now
        self.busy_area += self.active * (now - self.busy_since)
        self.busy_since = now

    def submit(self, req: Request, port: Any) -> Step:
        def do(t: Any) -> bool:
            if self.active < self.parallelism:
                self._start(req, port)
            else:
                self.waiting.append((req, port))
            return True

        return Step(do)

    def _start(self, req: Request, port: Any) -> None:
        self._account()
        self.active += 1
        # a drive's service time varies a little (+-20%, seeded), so requests do not stay in
        # lock-step batches forever
        us = self.service_us * self.sim.rng.uniform(0.8, 1.2)
        self.sim.env.timeout(us).callbacks.append(lambda _e: self._done(req, port))

    def _done(self, req: Request, port: Any) -> None:
        self._account()
        self.active -= 1
        port.completed.append(req)
        port.completion.set_now()
        if self.waiting:
            self._start(*self.waiting.popleft())


class _Port:
    """One IOThread's view of the device: its virtqueues and its completion notifier."""

    def __init__(self, sim: Simulation, io: IOThread):
        self.io = io
        self.completed: deque[Request] = deque()
        self.completion = EventNotifier(sim, f"{io.name}-aio-completion")
        self.busy_us = 0.0

    def __repr__(self) -> str:
        return state_repr(self, f"completed:{len(self.completed)}", name=self.io.name)


@dataclass
class MQResult:
    """What ``measure`` found. Rates are per second of the model's simulated time."""

    vm: VM
    seed: int
    iops: float
    p50_us: float
    p99_us: float
    iothread_busy: dict[str, float]  # share of the window each IOThread spent computing
    host_cpu_use: float  # host CPUs' worth of computing (vCPUs and IOThreads)
    disk_busy: float  # average share of the drive's parallel slots in use
    reqs_lock_wait_us: float  # average wait for reqs_lock per request
    monitor_p99_us: float  # info block latency p99 (NaN without a monitor)
    completed: int
    lock_handoffs: int = 0
    cross_thread_wakes: int = 0
    #: over the whole run (warm-up included), for a CoMutex: takers that spun, and of them those
    #: that got it spinning; hand-overs put on the unlocker's co_queue_wakeup (same IOThread);
    #: the time reqs_lock belonged to a woken waiter not yet running again, in all and on
    #: hand-overs to another IOThread (us)
    spins: int = 0
    spin_acquired: int = 0
    queued_wakes: int = 0
    handoff_us: float = 0.0
    cross_handoff_us: float = 0.0
    latencies: list[float] = field(default_factory=list, repr=False)

    @property
    def limit(self) -> str:
        """What holds the rate back: "host CPUs", "disk", "IOThreads" or "reqs_lock"."""
        if self.host_cpu_use >= 0.9 * self.vm.host_cpus:
            return "host CPUs"
        if self.disk_busy >= 0.9:
            return "disk"
        if self.reqs_lock_wait_us > 2.0:
            return "reqs_lock"
        return "IOThreads"

    def summary(self) -> str:
        load = ", ".join(f"{n} {b:.0%}" for n, b in self.iothread_busy.items())
        mon = (
            f"; info block p99 {self.monitor_p99_us:.0f} us"
            if not math.isnan(self.monitor_p99_us)
            else ""
        )
        return (
            f"{self.iops / 1000:,.0f}k IOPS, p50 {self.p50_us:.0f} us, p99 "
            f"{self.p99_us:.0f} us; IOThreads busy: {load}; host CPUs used "
            f"{self.host_cpu_use:.1f}/{self.vm.host_cpus}; disk busy {self.disk_busy:.0%}; "
            f"reqs_lock wait {self.reqs_lock_wait_us:.2f} us/request{mon}"
        )

    def __str__(self) -> str:
        return self.summary()


def _check_locks(locks: Any) -> None:
    """``locks``: None, or a dict from a ``reqs_lock`` kind to a class ``cls(sim, name, costs)``."""
    if locks is None:
        return
    validate.instance("locks", locks, dict, kind="None or a dict {reqs_lock kind: class}")
    for kind, cls in locks.items():
        validate.choice("locks", kind, REQS_LOCK_KINDS, says=f"keys must be {REQS_LOCK_KINDS}")
        validate.function(f"locks[{kind!r}]", cls, kind="a class built as cls(sim, name, costs)")


def mq_program(vm: VM, locks: dict[str, Any] | None = None):
    """The simulation program for ``vm``: returns a dict of its parts when run. ``locks``
    maps a ``reqs_lock`` kind to the class that implements it (default: ``ReqsQemuMutex``
    and ``ReqsCoMutex``); each class is built as ``cls(sim, name, costs)``."""
    validate.instance("vm", vm, VM, kind="a VM(...)")
    _check_locks(locks)
    c = vm.costs
    classes = {"QemuMutex": ReqsQemuMutex, "CoMutex": ReqsCoMutex, **(locks or {})}

    def program(sim: Simulation) -> dict[str, Any]:
        iothreads = {
            n: IOThread(sim, n, lock_kind=None, loop_holds_lock=False) for n in vm.iothread_names
        }
        ports = {n: _Port(sim, io) for n, io in iothreads.items()}
        disk = NVMeDisk(sim, c.disk_service_us, c.disk_parallelism)
        reqs_lock = classes[vm.reqs_lock](sim, "drive0.reqs_lock", c)
        if hasattr(reqs_lock, "spin_us_by_thread"):
            reqs_lock.warm = vm.warmup  # spinning is IOThread work, measured from warm-up on
        stats: dict[str, Any] = {"lat": [], "wait": 0.0, "vcpu_us": 0.0, "monitor": []}
        irqs = [QemuSemaphore(sim, f"vcpu{j}-irq") for j in range(vm.vcpus)]
        avail: list[deque[Request]] = [deque() for _ in range(vm.num_queues)]
        kicks = [EventNotifier(sim, f"vq{q}-ioeventfd") for q in range(vm.num_queues)]
        warm = vm.warmup
        stall = {n: n == "iothread0" and c.stall_us > 0 for n in vm.iothread_names}

        def work(port: _Port, us: float):
            if sim.now >= warm:
                port.busy_us += us
            return compute(us)

        def locked_section(port: _Port):  # tracked_request_begin / _end
            t0 = sim.now
            yield from reqs_lock.lock()
            if t0 >= warm:
                stats["wait"] += sim.now - t0
            yield work(port, c.reqs_lock_us)
            if stall[port.io.name] and sim.now >= c.stall_at_us:
                stall[port.io.name] = False
                yield sleep(c.stall_us)  # the host runs something else on this CPU meanwhile
            yield from reqs_lock.unlock()

        def request_co(req: Request, port: _Port):
            me = req.co
            yield work(port, c.handle_us + c.submit_us)
            yield from locked_section(port)
            yield disk.submit(req, port)
            yield from CoMutex.run_wakeups(me)  # (its co_queue_wakeup: it is about to yield)
            yield qemu_coroutine_yield()  # until the completion handler enters it again
            yield from locked_section(port)
            yield work(port, c.complete_us)
            if sim.now >= warm:  # completed in the measured window
                stats["lat"].append(sim.now - req.start)
            yield irqs[req.vcpu].post()
            yield from CoMutex.run_wakeups(me)  # (it is about to end)

        def vq_handler(q: int, port: _Port):
            def handle():  # virtio_blk_handle_vq, in the vq's IOThread
                ring = avail[q]
                while ring:
                    req = ring.popleft()
                    co = req.co = Coroutine(sim, request_co, req, port, name="blk-req")
                    co.mq_asleep = co.mq_cross = False
                    co.co_queue_wakeup = deque()  # see CoMutex: QEMU's per-coroutine list
                    co.ctx = port.io.ctx
                    yield from qemu_coroutine_enter(co)

            return handle

        def completion_handler(port: _Port):
            def complete():
                while port.completed:
                    yield from qemu_coroutine_enter(port.completed.popleft().co)

            return complete

        for q, name in vm.vq_map.items():
            port = ports[name]
            port.io.ctx.set_event_notifier(kicks[q], vq_handler(q, port))
        for port in ports.values():
            port.io.ctx.set_event_notifier(port.completion, completion_handler(port))

        def submit(j: int, q: int) -> Step:
            def do(t: Any) -> bool:
                avail[q].append(Request(sim.now, j, q))
                kicks[q]._do_set(t)
                return True

            return Step(do)

        def vcpu(j: int, share: int):
            q = j % vm.num_queues
            for _ in range(share):  # the guest starts its requests over the first 50 us
                yield sleep(sim.rng.uniform(0, 50 / share))
                yield compute(c.guest_submit_us)
                yield submit(j, q)
            while True:
                yield irqs[j].wait()
                if sim.now >= warm:
                    stats["vcpu_us"] += c.guest_submit_us
                yield compute(c.guest_submit_us)
                yield submit(j, q)

        base, extra = divmod(vm.iodepth, vm.vcpus)
        for j in range(vm.vcpus):
            share = base + (1 if j < extra else 0)
            if share:
                sim.spawn(f"vcpu{j}", vcpu, j, share, daemon=True)

        if vm.monitor_rate_hz > 0:
            bql = BQL(sim)
            period = 1e6 / vm.monitor_rate_hz

            def monitor():  # the main loop runs the QMP command; 9.0's info block: BQL only
                yield sleep(sim.rng.uniform(0, period))
                while True:
                    t0 = sim.now
                    yield bql.lock("monitor: info block")
                    yield compute(c.info_block_us)
                    yield bql.unlock()
                    if t0 >= warm:
                        stats["monitor"].append(sim.now - t0)
                        stats["vcpu_us"] += c.info_block_us
                    yield sleep(period)

            sim.spawn("main-loop", monitor, daemon=True)
        return {"ports": ports, "disk": disk, "reqs_lock": reqs_lock, "stats": stats}

    return program


def measure(vm: VM, seed: int = 0, locks: dict[str, Any] | None = None) -> MQResult:
    """Run ``vm`` for ``vm.duration`` us of simulated time (seeded) and measure it.
    ``locks`` as for ``mq_program``."""
    if not isinstance(vm, VM):
        raise TypeError(f"measure() takes a VM(...); got {vm!r}")
    validate.whole("seed", seed, verb="is")
    _check_locks(locks)
    r = run(
        mq_program(vm, locks),
        until=vm.duration,
        seed=seed,
        cpus=vm.host_cpus,
        policy="random",
        trace=False,
    )
    if r.outcome not in ("time limit", "completed"):
        raise RuntimeError(f"the multi-queue model ended with {r.outcome}: {r}")
    parts = r.sim.model
    stats = parts["stats"]
    window = vm.duration - vm.warmup
    disk = parts["disk"]
    disk._account()
    lat = stats["lat"]
    lock = parts["reqs_lock"]
    spun = getattr(lock, "spin_us_by_thread", {})  # spinning keeps an IOThread busy too
    busy = {n: (p.busy_us + spun.get(n, 0.0)) / window for n, p in parts["ports"].items()}
    return MQResult(
        vm=vm,
        seed=seed,
        iops=len(lat) / window * 1e6,
        p50_us=percentile(lat, 50),
        p99_us=percentile(lat, 99),
        iothread_busy=busy,
        host_cpu_use=(
            sum(p.busy_us for p in parts["ports"].values()) + sum(spun.values()) + stats["vcpu_us"]
        )
        / window,
        disk_busy=disk.busy_area / (disk.sim.now * disk.parallelism) if disk.sim.now else 0.0,
        reqs_lock_wait_us=stats["wait"] / max(1, len(lat)),
        monitor_p99_us=percentile(stats["monitor"], 99),
        completed=len(lat),
        lock_handoffs=getattr(lock, "handoffs", 0),
        cross_thread_wakes=getattr(lock, "cross_thread_wakes", 0),
        spins=getattr(lock, "spins", 0),
        spin_acquired=getattr(lock, "spin_acquired", 0),
        queued_wakes=getattr(lock, "queued_wakes", 0),
        handoff_us=getattr(lock, "handoff_us", 0.0),
        cross_handoff_us=getattr(lock, "cross_handoff_us", 0.0),
        latencies=lat,
    )


def sweep(
    vm: VM, name: str, values: list[Any], seed: int = 0, locks: dict[str, Any] | None = None
) -> list[MQResult]:
    """``measure`` ``vm`` with field ``name`` set to each of ``values`` (mapping reset)."""
    validate.instance("vm", vm, VM, kind="a VM(...)")
    if not isinstance(name, str) or name not in {f.name for f in fields(VM)} or name == "costs":
        raise ValueError(
            f"sweep a VM field such as 'iothreads', 'num_queues', 'iodepth', "
            f"'reqs_lock' or 'host_cpus'; got {name!r}"
        )
    values = validate.items("values", values, kind="a list of values to try", empty=False)
    validate.whole("seed", seed, verb="is")
    _check_locks(locks)
    out = []
    for v in values:
        changes = {name: v}
        if name in ("iothreads", "num_queues"):
            changes["mapping"] = None
        out.append(measure(vm.replace(**changes), seed=seed, locks=locks))
    return out


def format_sweep(name: str, results: list[MQResult]) -> str:
    """A text table of a sweep: one row per value."""
    validate.choice("name", name, [f.name for f in fields(VM) if f.name != "costs"])
    results = validate.items("results", results, kind="a list of MQResult (what sweep returns)")
    for r in results:
        validate.instance("results", r, MQResult, kind="a list of MQResult (what sweep returns)")
    lines = [
        f"{name:>11} {'kIOPS':>7} {'p50 us':>7} {'p99 us':>7} {'host CPUs':>10} "
        f"{'disk':>5} {'lock wait':>9}  limit"
    ]
    for r in results:
        lines.append(
            f"{getattr(r.vm, name)!s:>11} {r.iops / 1000:>7.0f} {r.p50_us:>7.0f} "
            f"{r.p99_us:>7.0f} {r.host_cpu_use:>10.1f} {r.disk_busy:>5.0%} "
            f"{r.reqs_lock_wait_us:>9.2f}  {r.limit}"
        )
    return "\n".join(lines)


#: QEMU's published measurement for the reqs_lock change (fio randread 4k, iodepth 64,
#: 4 IOThreads, 8 virtqueues): IOPS before (CoMutex) and after (QemuMutex).
PUBLISHED_REQS_LOCK_IOPS = {"CoMutex": 254_000, "QemuMutex": 517_000}

__all__ = [
    "AIO_WAIT_WHILE",
    "MQCosts",
    "MQResult",
    "MappingError",
    "NVMeDisk",
    "PUBLISHED_REQS_LOCK_IOPS",
    "REQS_LOCK_KINDS",
    "ReqsCoMutex",
    "ReqsQemuMutex",
    "VM",
    "format_sweep",
    "iothread_vq_mapping",
    "measure",
    "mq_program",
    "sweep",
]
