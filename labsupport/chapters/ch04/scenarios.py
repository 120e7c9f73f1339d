"""IOThreads and the AioContext lock (2013-2017): chapter 4's scenario programs.

From 2013 a virtio-blk device could be handed to an IOThread (``-object iothread``): its
virtqueue and its disk completions were served by that thread's own AioContext, outside the Big
QEMU Lock. What the BQL had serialised, each context's lock now did: an ``RFifoLock`` that the
IOThread's loop held while it dispatched, and that any other thread (the monitor's ``info block``
in the main loop, say) acquired to look at the device. The 2014 loop kept the lock while it slept
in ``aio_poll`` too, so a thread that wanted it relied on the lock's contention callback to kick
the loop awake; from the 2015 rework of ``aio_poll`` the lock was dropped around the wait (the
chapter's VM runs that loop). This module keeps the chapter's programs for later chapters and
the tests: the two loops meeting ``info block`` (``kick_scene``), the VM with an IOThread whose
``io_submit`` is sometimes slow while the monitor asks ``info block`` (D3), and the
BQL/AioContext lock-order inversion (D4, the course's own derivation from the documented rules).

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from labsupport import validate
from labsupport.catalogue import Scenario
from labsupport.kernel import RunResult, Simulation, compute, run, sleep
from labsupport.loop import AioContext, aio_poll
from labsupport.qemu.bql import BQL, RetakeAt
from labsupport.qemu.eras import EraResult, run_era
from labsupport.qemu.iothread import (
    LOOP_YEARS,
    IOThread,
    aio_context_acquire,
    aio_context_release,
    info_block,
    qemu_get_aio_context,
)
from labsupport.qemu.workload import Workload
from labsupport.shared import Shared

# --------------------------------------------------------------------------------------------
# The kick: the 2014 loop sleeps in aio_poll holding the lock; the 2015 loop lets go to sleep.

#: The kick scene's times (us): when ``info block`` arrives, and its work under the context lock.
KICK_MONITOR_AT = 10
KICK_INFO_BLOCK_US = 5


@dataclass(frozen=True)
class KickScene:
    """One run of ``kick_program``: did ``info block`` get the IOThread's context lock, how long
    did it wait for it (None: never), how many times a thread had to wait for that lock
    (``RFifoLock.contentions``), and how many contention callbacks found the IOThread asleep in
    ``aio_poll`` (the kicks that woke it)."""

    loop_year: int
    callback: bool
    outcome: str
    info_block_waited_us: float | None
    contentions: int
    kicks: int
    result: RunResult


def kick_program(
    loop_year: int = 2014,
    callback: bool = True,
    request_at: float | None = None,
    notify_at: float | None = None,
):
    """An idle IOThread (``IOThread(loop_year=...)``) asleep in ``aio_poll``, and the monitor's
    ``info block`` asking for its context lock at ``KICK_MONITOR_AT``.

    ``callback=False`` takes the contention callback off the ``RFifoLock`` (a counterfactual:
    QEMU's AioContext lock always had it). ``request_at``: a guest request (a 3 us handler) at
    that time. ``notify_at``: at that time another thread calls ``aio_notify`` on the context
    for a reason of its own (``aio_set_fd_handler`` does, for one). The monitor's thread is not a
    daemon: if it never gets the lock, the run ends "stuck". The model is
    ``{"iothread", "bql", "kicks"}`` (``kicks``: times a contention callback found the IOThread
    asleep in ``aio_poll``).
    """
    validate.choice("loop_year", loop_year, LOOP_YEARS)
    validate.flag("callback", callback)
    for name, at in (("request_at", request_at), ("notify_at", notify_at)):
        if at is not None:
            validate.duration(name, at)

    def program(sim: Simulation) -> dict[str, Any]:
        bql = BQL(sim)
        io = IOThread(sim, "iothread0", loop_year=loop_year)
        mutex = io.lock.mutex
        kicks: list[float] = []
        if callback:
            notify = mutex.on_contention  # aio_notify on the context, as QEMU's callback did

            def counted(waiter):
                if io.thread.blocked_on is io.ctx:  # the owner sleeps in aio_poll
                    kicks.append(sim.now)
                notify(waiter)

            mutex.on_contention = counted
        else:
            mutex.on_contention = None

        def monitor():  # the main loop runs info block under the BQL
            yield sleep(KICK_MONITOR_AT)
            yield info_block(bql, [io.ctx], cost_us=KICK_INFO_BLOCK_US)

        sim.spawn("main-loop", monitor)
        if request_at is not None:

            def request():
                yield compute(3)

            bh = io.ctx.bh_new(request, "virtio_blk_handle_vq")

            def guest():
                yield sleep(request_at)
                yield bh.schedule()

            sim.spawn("vcpu0", guest)
        if notify_at is not None:

            def other():
                yield sleep(notify_at)
                yield io.ctx.notify()

            sim.spawn("other", other)
        return {"iothread": io, "bql": bql, "kicks": kicks}

    return program


def kick_scene(
    loop_year: int = 2014,
    callback: bool = True,
    request_at: float | None = None,
    notify_at: float | None = None,
) -> KickScene:
    """Run ``kick_program`` on four host CPUs and read what it measured."""
    r = run(kick_program(loop_year, callback, request_at, notify_at), cpus=4)
    io = r.sim.model["iothread"]
    site = io.lock.sites.get("monitor: info block")
    got = site is not None and site.acquisitions > 0
    return KickScene(
        loop_year=loop_year,
        callback=callback,
        outcome=r.outcome,
        info_block_waited_us=site.wait_us if got else None,
        contentions=io.lock.mutex.contentions,
        kicks=len(r.sim.model["kicks"]),
        result=r,
    )


# --------------------------------------------------------------------------------------------
# The VM: vCPUs, a main loop with a monitor, and a virtio-blk disk on an IOThread. It is the
# "iothread" era of ``run_era``; this chapter only sets its own defaults and prints it its way.


@dataclass(frozen=True, repr=False)
class IOThreadVM(Workload):
    """A guest whose disk is served by an IOThread, and a monitor that asks ``info block``:
    a ``Workload`` with this chapter's default of four requests in flight (``io_depth=4``).

    The fields this chapter turns are the workload's: ``slow_syscall_prob`` (the chance that one
    ``io_submit`` blocks in the host kernel, for ``slow_syscall_us``, while the IOThread holds its
    AioContext lock), ``monitor_per_s`` (``info block`` commands per second, arriving at random),
    ``info_block_us`` and ``monitor_takes_context_lock`` (False: a query that needs no context
    lock, what removing the lock in QEMU 9.0 made possible; chapter 7).
    """

    io_depth: int = 4

    def workload(self) -> Workload:
        """The same fields as a plain ``Workload`` (what ``run_era`` is given)."""
        return Workload(**{f.name: getattr(self, f.name) for f in fields(Workload)})


@dataclass(repr=False)
class VMResult(EraResult):
    """One run of the ``"iothread"`` era, printed as this chapter prints it (times in us)."""

    @property
    def vm(self) -> Workload:
        """The VM's parameters (the run's workload)."""
        return self.workload

    def summary(self) -> str:
        v = self.workload
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


def measure_vm(p: IOThreadVM, policy: str = "first-come", trace: bool = True) -> VMResult:
    """Run the VM for ``p.duration_us`` of simulated time and measure it:
    ``run_era(p.workload(), "iothread")``, with ``p`` kept as the run's parameters."""
    validate.instance("p", p, IOThreadVM, kind="an IOThreadVM(...)")
    r = run_era(p.workload(), "iothread", policy=policy, trace=trace)
    values = {f.name: getattr(r, f.name) for f in fields(EraResult)}
    return VMResult(**{**values, "workload": p})


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
    request_at: tuple[float, ...] | None = None,
    command_at: float | None = None,
):
    """The BQL/AioContext AB-BA: an IOThread completion takes the BQL under its context lock,
    while the main loop, holding the BQL, runs ``info block`` and takes that context lock.

    ``completion(dev)`` is the handler's last part (``dev`` is a ``BlockDevice``). Each request
    is kicked at a seeded random time from ``D4_REQUEST_AT`` and the monitor's command arrives
    at one from ``D4_MONITOR_AT``, so some seeds collide and some do not; ``request_at`` and
    ``command_at`` fix those times instead (then only the schedule decides). The model is
    ``{"dev": BlockDevice, "iothread": IOThread, "requests": requests}``.
    """

    if request_at is not None and len(request_at) != requests:
        raise ValueError(
            f"request_at gives a time for each of the {requests} requests; got {request_at!r}"
        )

    def program(sim: Simulation) -> dict[str, Any]:
        bql = BQL(sim)
        main_ctx = qemu_get_aio_context(sim)
        iothread = IOThread(sim, "iothread0")
        dev = BlockDevice(bql, iothread.ctx, main_ctx, Shared(sim, "blk.stats", 0))
        rng = sim.rng
        if request_at is None:
            kicks = sorted(rng.choice(D4_REQUEST_AT) for _ in range(requests))
        else:
            kicks = sorted(request_at)
        monitor_at = rng.choice(D4_MONITOR_AT) if command_at is None else command_at
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

        main_ctx.timer_new(info_block, "info block").arm(monitor_at)

        def main_loop():
            yield bql.lock("main loop")
            while True:
                yield aio_poll(main_ctx, True, drop=RetakeAt(bql, "main loop"))

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
    validate.function("completion", completion, kind="a completion function (dev -> steps)")
    validate.whole("seed", seed, 0)
    program = d4_program(completion, **options)
    if schedule is not None:
        return run(program, schedule=schedule, seed=seed, cpus=2)
    return run(program, policy=policy, seed=seed, cpus=2)


# --------------------------------------------------------------------------------------------
# The chapter's catalogued bugs.

#: D3's VM: one io_submit in 20 blocks for 2 ms while 1000 info block commands arrive a second
#: (2 vCPUs, 4 requests in flight: the chapter's defaults), for 10 ms.
D3_VM = IOThreadVM(slow_syscall_prob=0.05, monitor_per_s=1_000, duration_us=10_000)


def _d3_run(fixed: bool, seed: int, trace: bool = True) -> VMResult:
    """D3 buggy: ``info block`` takes the context lock; fixed: a query that needs none."""
    return measure_vm(D3_VM.replace(seed=seed, monitor_takes_context_lock=not fixed), trace=trace)


def _d3_outcome(r: VMResult) -> str:
    """ "stall" when one ``info block`` waited longer than half a slow ``io_submit``."""
    stalled = bool(r.monitor_us) and max(r.monitor_us) > r.workload.slow_syscall_us / 2
    return "stall" if stalled else "completed"


def _d4_program(fixed: bool):
    return d4_program(complete_via_main_loop if fixed else complete_under_bql)


SCENARIOS: dict[str, Scenario] = {
    "D3": Scenario(
        "D3",
        4,
        "stall",
        "info block waits behind a slow io_submit",
        runner=_d3_run,
        outcome=_d3_outcome,
    ),
    "D4": Scenario(
        "D4",
        4,
        "deadlock",
        "BQL and context lock in both orders (derived)",
        program=_d4_program,
        cpus=2,
    ),
}

__all__ = [
    "D3_VM",
    "KICK_INFO_BLOCK_US",
    "KICK_MONITOR_AT",
    "SCENARIOS",
    "BlockDevice",
    "D4_MONITOR_AT",
    "D4_REQUEST_AT",
    "IOThreadVM",
    "KickScene",
    "VMResult",
    "complete_in_documented_order",
    "complete_under_bql",
    "complete_via_main_loop",
    "d4_program",
    "kick_program",
    "kick_scene",
    "measure_vm",
    "run_d4",
]
