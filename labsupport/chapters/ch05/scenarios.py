"""Handlers take the lock (2017-2023): chapter 5's scenario programs, each buggy and fixed.

In January 2017 the AioContext lock became a plain ``QemuRecMutex`` and the IOThread's loop
stopped holding it: ``aio_poll`` runs with no lock, and each handler, bottom half or coroutine
entry takes its context's lock itself (``aio_context_acquire``). Nesting the lock was still
possible but discouraged, because ``AIO_WAIT_WHILE`` (called ``BDRV_POLL_WHILE`` before 2018)
lets go of it only once. Each program here has a ``fixed`` switch: D1 (a caller that holds the
context twice), D2 (the lock held across a coroutine yield), D5 (an IOThread that waits for
another IOThread, which QEMU refuses with an assertion), R3 (the lost wake-up without the
``notify_me`` handshake) and R1 (work scheduled in an IOThread under the lock, then the object
it needs unregistered before it runs).

Where the model differs from QEMU on purpose:

- ``aio_context_acquire(ctx, site)`` takes a ``site``, a label for the trace; QEMU's takes only
  the context. ``ctx.bh_schedule_oneshot(cb, name)`` is QEMU's
  ``aio_bh_schedule_oneshot(ctx, cb, opaque)`` as a method, with a name for the trace.
- ``aio_co_enter`` takes no context lock here; from 2017 to 2023 QEMU's took the target
  context's lock around a direct entry, and ``co_schedule_bh`` took it around each scheduled
  entry. In these programs a coroutine is entered directly only in the main loop's context,
  which has no lock in the model, and R1's coroutine takes its context's lock as its first
  step, where QEMU's ``co_schedule_bh`` took it just before entering it.
- D5's second variant (``qemu_assertion=False``) uses ``aio_wait_while(..., poll_ctx=...)``,
  which QEMU does not have, only to show the deadlock that the assertion prevents.

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labsupport import catalogue, validate
from labsupport.catalogue import Scenario
from labsupport.coroutine import Coroutine, aio_co_enter, aio_co_wake, qemu_coroutine_yield
from labsupport.kernel import RunResult, Simulation, compute, note, sleep
from labsupport.loop import AioContext, EventNotifier, aio_poll, aio_wait_kick, aio_wait_while
from labsupport.qemu.iothread import (
    IOThread,
    aio_context_acquire,
    aio_context_release,
    qemu_get_aio_context,
)
from labsupport.shared import Shared
from labsupport.sync import QemuEvent

Program = Callable[[Simulation], Any]


# --------------------------------------------------------------------------------------------
# D1: the caller holds the context twice; AIO_WAIT_WHILE lets go of it once.


def d1_program(fixed: bool = False, save_vmstate_body: Callable[..., Any] | None = None) -> Program:
    """``savevm`` with an IOThread (2017): a guest request is in flight on ``iothread0``; the
    main loop takes the context, then (buggy) takes it again in a helper, and waits with
    ``AIO_WAIT_WHILE`` for the request to finish. The completion handler takes the lock.
    ``save_vmstate_body(io, main_ctx, in_flight)``, if given, replaces the main loop's body."""

    def program(sim: Simulation) -> Shared:
        main_ctx = qemu_get_aio_context(sim)
        io = IOThread(sim, "iothread0", lock_kind="rec", loop_holds_lock=False)
        in_flight = Shared(sim, "in_flight", 1)
        disk_done = EventNotifier(sim, "disk-completion")
        disk_done.is_set = True  # the disk has answered; the IOThread has yet to notice

        def complete_request():  # an fd handler: in 2017 it takes its context's lock itself
            yield aio_context_acquire(io.ctx, "iothread0: complete")
            yield in_flight.store(0)
            yield aio_wait_kick()
            yield aio_context_release(io.ctx)

        io.ctx.set_event_notifier(disk_done, complete_request)

        def save_vmstate():
            yield aio_context_acquire(io.ctx, "main: save_vmstate")
            if not fixed:  # a helper that takes the context again, "just to be safe"
                yield aio_context_acquire(io.ctx, "main: bdrv_flush")
            yield aio_wait_while(io.ctx, lambda: in_flight.value > 0)
            if not fixed:
                yield aio_context_release(io.ctx)
            yield aio_context_release(io.ctx)

        if save_vmstate_body is not None:

            def save_vmstate():
                yield save_vmstate_body(io, main_ctx, in_flight)

        main_ctx.home = sim.spawn("main-loop", save_vmstate)
        return in_flight

    return program


# --------------------------------------------------------------------------------------------
# D2: a coroutine keeps a foreign context locked across a yield.


def d2_program(fixed: bool = False, block_resize_body: Callable[..., Any] | None = None) -> Program:
    """``block_resize`` as a coroutine in the main loop (2020): it holds ``iothread0``'s context,
    schedules a drain BH there and yields. If a guest command reaches the IOThread first, its
    handler waits for the lock and the BH never runs. Fixed: drop the lock across the yield.
    The guest's command arrives at a seeded random time between 0 and 20 us.
    ``block_resize_body(io, drain_bh, resized)``, if given, replaces the coroutine's body."""

    def program(sim: Simulation) -> Shared:
        main_ctx = qemu_get_aio_context(sim)
        io = IOThread(sim, "iothread0", lock_kind="rec", loop_holds_lock=False)
        resized = Shared(sim, "resized", 0)
        kick = EventNotifier(sim, "virtqueue-kick")

        def handle_cmd():  # virtio-scsi's handler in the IOThread takes the context's lock
            yield aio_context_acquire(io.ctx, "iothread0: handle_cmd")
            yield compute(5)
            yield aio_context_release(io.ctx)

        io.ctx.set_event_notifier(kick, handle_cmd)

        def drain_bh():  # runs in the IOThread: the node is quiet, so wake the coroutine
            yield aio_co_wake(co)

        def block_resize():
            yield aio_context_acquire(io.ctx, "qmp: block_resize")
            yield compute(10)
            yield io.ctx.bh_schedule_oneshot(drain_bh, "drain")  # bdrv_co_yield_to_drain
            if fixed:
                yield aio_context_release(io.ctx)
            yield qemu_coroutine_yield()
            if fixed:
                yield aio_context_acquire(io.ctx, "qmp: block_resize")
            yield compute(5)
            yield resized.store(1)
            yield aio_context_release(io.ctx)

        if block_resize_body is None:
            co = Coroutine(sim, block_resize, name="block_resize")
        else:
            co = Coroutine(sim, block_resize_body, io, drain_bh, resized, name="block_resize")

        def main_loop():
            yield aio_co_enter(main_ctx, co)
            while co.state != "done":
                yield aio_poll(main_ctx, True)

        def vcpu():
            yield sleep(arrival)
            yield kick.set()  # the guest submits a SCSI command

        arrival = round(sim.rng.uniform(0, 20), 1)
        main_ctx.home = sim.spawn("main-loop", main_loop)
        sim.spawn("vcpu0", vcpu)
        return resized

    return program


# --------------------------------------------------------------------------------------------
# D5: one IOThread waits for work that another IOThread must do.


def d5_program(fixed: bool = False, qemu_assertion: bool = True) -> Program:
    """A job in ``iothread-a`` needs ``iothread-b`` to copy data, then updates a's node.

    Buggy: a's handler holds a's context and waits with ``AIO_WAIT_WHILE`` for b's work. QEMU
    asserts that the caller is the context's home thread or the main loop (``aio_wait_kick()``
    only ever wakes the main loop), so the wait fails at once: a ``MisuseError`` that gives
    QEMU's reason, outcome ``"misuse"`` in the catalogue. ``qemu_assertion=False`` shows what
    the assertion prevents: a's handler polls its own context instead (``poll_ctx=a.ctx``, an
    argument QEMU does not have); b's work also records the copy in a's node, so it takes a's
    context, and the two IOThreads deadlock. Fixed, as the rule says ("go via the main loop"):
    a's handler hands the job to the main loop, which acquires b's context once, waits with
    ``AIO_WAIT_WHILE`` (letting go of it), then updates a's node itself."""
    validate.flag("qemu_assertion", qemu_assertion)

    def program(sim: Simulation) -> tuple[Shared, Shared]:
        main_ctx = qemu_get_aio_context(sim)
        a = IOThread(sim, "iothread-a", lock_kind="rec", loop_holds_lock=False)
        b = IOThread(sim, "iothread-b", lock_kind="rec", loop_holds_lock=False)
        copied = Shared(sim, "copied", 0)
        updated = Shared(sim, "updated", 0)
        start = EventNotifier(sim, "job-start")
        start.is_set = True

        def copy_in_b():  # a BH in iothread-b
            yield aio_context_acquire(b.ctx, "b: copy")
            yield compute(5)
            if not fixed:  # it also records the copy in a's node, under a's context
                yield aio_context_acquire(a.ctx, "b: update a's node")
                yield aio_context_release(a.ctx)
            yield copied.store(1)
            yield aio_wait_kick()
            yield aio_context_release(b.ctx)

        def job_in_a():  # an fd handler in iothread-a: takes its own context
            yield aio_context_acquire(a.ctx, "a: job")
            if fixed:
                yield main_ctx.bh_schedule_oneshot(job_in_main_loop, "job")
            else:
                yield b.ctx.bh_schedule_oneshot(copy_in_b, "copy")
                if qemu_assertion:  # QEMU's AIO_WAIT_WHILE: refused in an IOThread
                    yield aio_wait_while(b.ctx, lambda: copied.value == 0)
                else:  # not QEMU's: poll a's own context instead of the main loop's
                    yield aio_wait_while(
                        b.ctx, lambda: copied.value == 0, unlocked=True, poll_ctx=a.ctx
                    )
                yield updated.store(1)
                yield aio_wait_kick()
            yield aio_context_release(a.ctx)

        def job_in_main_loop():  # the main loop holds the BQL: it may take any context
            yield aio_context_acquire(b.ctx, "main: job")
            yield b.ctx.bh_schedule_oneshot(copy_in_b, "copy")
            yield aio_wait_while(b.ctx, lambda: copied.value == 0)
            yield aio_context_release(b.ctx)
            yield aio_context_acquire(a.ctx, "main: job")
            yield updated.store(1)
            yield aio_context_release(a.ctx)

        a.ctx.set_event_notifier(start, job_in_a)

        def main_loop():
            yield aio_wait_while(main_ctx, lambda: updated.value == 0)

        main_ctx.home = sim.spawn("main-loop", main_loop)
        return copied, updated

    return program


# --------------------------------------------------------------------------------------------
# R3: the lost wake-up.


def r3_program(fixed: bool = True) -> Program:
    """The main loop hands a one-shot BH to ``iothread0``, which polls until it has run.

    Without the ``notify_me`` handshake (``fixed=False``) the IOThread looks for work, *then*
    says it will sleep; a BH scheduled in between does not wake it."""

    def program(sim: Simulation) -> Shared:
        ctx = AioContext(sim, "iothread0", notify_me_handshake=fixed)
        done = Shared(sim, "done", 0)

        def iothread():
            while done.value == 0:
                yield aio_poll(ctx, True)

        def main_loop():
            yield ctx.bh_schedule_oneshot(lambda: done.store(1), "complete")

        ctx.home = sim.spawn("iothread0", iothread)
        sim.spawn("main-loop", main_loop)
        return done

    return program


def r3_handshake_program(fixed: bool = True) -> Program:
    """R3 with the handshake written out: ``notify_me`` and the BH's ``scheduled`` flag as
    shared variables, the context's event notifier as a ``QemuEvent``.

    ``iothread0`` runs one blocking ``aio_poll``; the main loop schedules a BH and notifies
    (``aio_bh_schedule_oneshot``, then ``aio_notify``). Fixed: both flags are atomic, ordered
    accesses (``atomic=True``), the poller sets ``notify_me`` *before* it looks for work, and
    the notifier publishes its BH *before* it reads ``notify_me``, so at least one of them sees
    the other. Buggy: plain variables, and
    the poller looks for work first; a race detector reports the flags on every schedule, and
    some schedules lose the wake-up."""

    def program(sim: Simulation) -> dict[str, Any]:
        notify_me = Shared(sim, "notify_me", 0, atomic=fixed)
        scheduled = Shared(sim, "bh.scheduled", 0, atomic=fixed)
        notifier = QemuEvent(sim, "iothread0.notifier")
        ran: list[str] = []

        def iothread():  # aio_poll(ctx, blocking=True)
            if fixed:
                yield notify_me.store(1)  # "I may sleep" first ...
                work = yield scheduled.load()  # ... then look for work
            else:
                work = yield scheduled.load()  # look for work first ...
                yield notify_me.store(1)  # ... then say "I may sleep": too late
            if not work:
                yield notifier.wait()  # ppoll() on the event notifier
                work = yield scheduled.load()
            yield notify_me.store(0)
            if work:
                yield scheduled.store(0)
                ran.append("complete")  # the BH runs

        def main_loop():  # aio_bh_schedule_oneshot(ctx, complete), then aio_notify(ctx)
            yield scheduled.store(1)
            if (yield notify_me.load()):
                yield notifier.set()

        sim.spawn("iothread0", iothread)
        sim.spawn("main-loop", main_loop)
        return {"ran": ran, "notify_me": notify_me, "scheduled": scheduled}

    return program


# --------------------------------------------------------------------------------------------
# R1: work scheduled in another thread under the lock; the object it needs goes first.


def r1_program(fixed: bool = False) -> Program:
    """``device_del`` of a throttled disk whose node runs in ``iothread0`` (2019).

    The main loop holds iothread0's context. It restarts the throttle group member's queue: a
    coroutine (``throttle_group_restart_queue_entry``) that ``aio_co_enter`` schedules in
    iothread0, since the main loop is not that context's home. Then it unregisters the member
    (``throttle_group_unregister_tgm``: ``throttle_state`` becomes None) and lets go of the
    context. The coroutine needs the context to run, so it runs only after that, and reads a
    member that is gone: a use-after-free, recorded in ``uaf`` (QEMU crashed on it).
    Fixed, as QEMU fixed it: the member counts the restarts it scheduled
    (``restart_pending``, atomic); the coroutine decrements it when done and calls
    ``aio_wait_kick()``, and ``device_del`` waits with ``AIO_WAIT_WHILE`` for the count to
    reach 0 before it unregisters. The coroutine takes the context as its first step (QEMU's
    ``co_schedule_bh`` took it just before entering the coroutine)."""

    def program(sim: Simulation) -> dict[str, Any]:
        main_ctx = qemu_get_aio_context(sim)
        io = IOThread(sim, "iothread0", lock_kind="rec", loop_holds_lock=False)
        throttle_state = Shared(sim, "tgm.throttle_state", "tg0")
        restart_pending = Shared(sim, "tgm.restart_pending", 0, atomic=True)
        uaf: list[str] = []

        def restart_queue_entry():  # the restart coroutine, run by iothread0
            yield aio_context_acquire(io.ctx, "iothread0: co_schedule_bh")
            ts = yield throttle_state.load()
            if ts is None:  # QEMU: a NULL throttle_state, then a crash on the group's lock
                uaf.append(
                    f"the restart coroutine read the unregistered member at t={sim.now:g} us"
                )
                yield note("use after free")
            else:
                yield compute(2)  # start the next throttled request
            if fixed:
                yield restart_pending.qatomic_add(-1)
                yield aio_wait_kick()
            yield aio_context_release(io.ctx)

        def device_del():
            yield aio_context_acquire(io.ctx, "main: device_del")
            if fixed:
                yield restart_pending.qatomic_inc()
            co = Coroutine(sim, restart_queue_entry, name="restart_queue_entry")
            yield aio_co_enter(io.ctx, co)  # another thread's context: scheduled there
            if fixed:  # wait for the restart coroutines before unregistering
                yield aio_wait_while(io.ctx, lambda: restart_pending.value > 0)
            yield throttle_state.store(None)  # throttle_group_unregister_tgm
            yield aio_context_release(io.ctx)

        main_ctx.home = sim.spawn("main-loop", device_del)
        return {"throttle_state": throttle_state, "restart_pending": restart_pending, "uaf": uaf}

    return program


def r1_outcome(r: RunResult) -> str:
    """``"use-after-free"`` if R1's coroutine read the unregistered member, else the run's
    outcome."""
    return "use-after-free" if r.sim.model["uaf"] else r.outcome


#: The schedule that loses the wake-up in ``r3_program(fixed=False)``: the IOThread checks
#: for work, then the main loop schedules the BH, then the IOThread sleeps.
R3_LOST_SCHEDULE = "01"

#: The chapter's catalogued bugs: each scenario's program, buggy or fixed, and its host CPUs.
SCENARIOS: dict[str, Scenario] = {
    "D1": Scenario(
        "D1",
        5,
        "deadlock",
        "context held twice, released once by AIO_WAIT_WHILE",
        program=d1_program,
        cpus=2,
    ),
    "D2": Scenario(
        "D2",
        5,
        "deadlock",
        "context lock held across a coroutine yield",
        program=d2_program,
        cpus=2,
    ),
    "D5": Scenario(
        "D5",
        5,
        "misuse",
        "an IOThread waits in AIO_WAIT_WHILE for another IOThread (QEMU asserts)",
        program=d5_program,
        cpus=2,
    ),
    "R3": Scenario(
        "R3",
        5,
        "hang",
        "the lost wake-up without the notify_me handshake",
        program=r3_program,
        cpus=1,
    ),
    "R1": Scenario(
        "R1",
        5,
        "freed",
        "work scheduled in another thread under the lock; object freed before it runs",
        program=r1_program,
        cpus=2,
        outcome=r1_outcome,
    ),
}


def run_scenario(
    name: str,
    fixed: bool,
    seed: int = 0,
    policy: str = "random",
    schedule: str | None = None,
    trace: bool = True,
) -> RunResult:
    """Run one of ``SCENARIOS`` (buggy or fixed) with a seeded policy or a schedule. A run that
    QEMU would refuse with an assertion (D5's buggy variant) raises ``MisuseError``."""
    if not isinstance(name, str) or name not in SCENARIOS:
        raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}; got name={name!r}")
    validate.flag("fixed", fixed)
    return SCENARIOS[name].run(fixed, seed, policy=policy, schedule=schedule, trace=trace)


def outcome_table(seeds: int = 200, names: tuple[str, ...] = tuple(SCENARIOS)) -> dict:
    """``{(name, "buggy"|"fixed"): Counter(outcome -> runs)}`` over ``seeds`` random seeds."""
    names = validate.labels("names", names, SCENARIOS, kind="a scenario name or a tuple of them")
    return catalogue.outcome_table({n: SCENARIOS[n] for n in names}, seeds)


def format_outcomes(table: dict) -> str:
    """The outcome table as text: one row per scenario and variant."""
    kinds = ("completed", "deadlock", "stuck", "misuse", "use-after-free")
    lines = [f"{'scenario':<10}{'variant':<8}" + "".join(f"{k:>15}" for k in kinds)]
    for (name, variant), counts in table.items():
        lines.append(f"{name:<10}{variant:<8}" + "".join(f"{counts.get(k, 0):>15}" for k in kinds))
    return "\n".join(lines)


__all__ = [
    "R3_LOST_SCHEDULE",
    "SCENARIOS",
    "d1_program",
    "d2_program",
    "d5_program",
    "format_outcomes",
    "outcome_table",
    "r1_outcome",
    "r1_program",
    "r3_program",
    "run_scenario",
]
