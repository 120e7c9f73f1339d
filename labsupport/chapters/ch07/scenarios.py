"""Removing the AioContext lock (QEMU 9.0): chapter 7's scenario programs, each buggy and fixed.

With the lock gone, what keeps IOThreads apart is thread confinement (each request's state is
touched only by the thread that runs it), one-shot bottom halves that hand work to a context's
own thread, and short fine-grained locks. The races that remain are hand-over races:
R4 (a guest kick that sneaks in before the virtqueue's IOThread listens, while the disk is
drained), R5 (a bottom half that walks a SCSI device's requests while the device moves to another
IOThread), R6 (a coroutine entered by another thread before it has yielded) and R7 (a monitor
command running as a coroutine that assumes it still holds the BQL after a yield).
``removal_program`` shows the first step of the removal: ``aio_context_acquire``/``release``
made empty functions; ``handover_program`` the pattern that replaced the lock (a one-shot BH,
``AIO_WAIT_WHILE``).

Where a model function's arguments differ from QEMU's, its docstring says so: the ``site`` of
``aio_context_acquire`` and of ``bql.lock`` is a label for the trace, ``ctx.bh_schedule_oneshot
(cb, name)`` is ``aio_bh_schedule_oneshot(ctx, cb, opaque)`` with a name for the trace, and
``current_coroutine(sim)`` is ``qemu_coroutine_self()``.

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from labsupport import catalogue, validate
from labsupport.catalogue import Scenario
from labsupport.coroutine import (
    Coroutine,
    aio_co_enter,
    aio_co_schedule,
    current_coroutine,
    qemu_coroutine_yield,
)
from labsupport.kernel import MisuseError, Note, RunResult, Simulation, Step, compute, run, sleep
from labsupport.loop import (
    AioContext,
    EventNotifier,
    aio_poll,
    aio_wait_kick,
    aio_wait_while,
    qemu_get_current_aio_context,
)
from labsupport.qemu.bql import BQL
from labsupport.qemu.iothread import (
    IOThread,
    aio_context_acquire,
    aio_context_release,
    qemu_get_aio_context,
)
from labsupport.qemu.multiqueue import AIO_WAIT_WHILE
from labsupport.shared import Shared
from labsupport.sync import QemuSemaphore

Program = Callable[[Simulation], Any]


# --------------------------------------------------------------------------------------------
# The first step of the removal: acquire/release become empty functions.


def removal_program(stage: str = "no-op") -> Program:
    """Chapter 5's D1 (the main loop holds an IOThread's context twice and waits with
    ``AIO_WAIT_WHILE``; the IOThread's completion handler takes the context) at three stages:
    ``"2017"`` (a real recursive lock: deadlock), ``"no-op"`` (November 2023: the calls are
    still there but do nothing) and ``"deleted"`` (QEMU 9.0: no calls at all)."""
    if stage not in ("2017", "no-op", "deleted"):
        raise ValueError(f"stage is '2017', 'no-op' or 'deleted'; got {stage!r}")

    def program(sim: Simulation) -> Shared:
        main_ctx = qemu_get_aio_context(sim)
        kind = {"2017": "rec", "no-op": "noop", "deleted": None}[stage]
        io = IOThread(sim, "iothread0", lock_kind=kind, loop_holds_lock=False)
        in_flight = Shared(sim, "in_flight", 1)
        disk_done = EventNotifier(sim, "disk-completion")
        acquire, release = aio_context_acquire, aio_context_release  # by the lock's kind

        def complete_request():
            if stage != "deleted":
                yield acquire(io.ctx, "iothread0: complete")
            yield in_flight.store(0)
            yield aio_wait_kick()
            if stage != "deleted":
                yield release(io.ctx)

        io.ctx.set_event_notifier(disk_done, complete_request)

        def save_vmstate():
            if stage != "deleted":
                yield acquire(io.ctx, "main: save_vmstate")
                yield acquire(io.ctx, "main: bdrv_flush")
            yield disk_done.set()  # the disk answers; the IOThread's handler completes it
            if stage == "2017":
                yield aio_wait_while(io.ctx, lambda: in_flight.value > 0)
            else:
                yield AIO_WAIT_WHILE(io.ctx, lambda: in_flight.value > 0)
            if stage != "deleted":
                yield release(io.ctx)
                yield release(io.ctx)

        main_ctx.home = sim.spawn("main-loop", save_vmstate)
        return in_flight

    return program


# --------------------------------------------------------------------------------------------
# What replaced it: confinement, a one-shot BH, and AIO_WAIT_WHILE without a lock.


def handover_program() -> Program:
    """QEMU 9.0's way to have an IOThread do something and wait for it: the main loop schedules
    a one-shot BH in the IOThread's context and waits with ``AIO_WAIT_WHILE`` (no lock to
    release). The BH completes the requests on the IOThread's list, which only that thread
    ever touches (thread confinement), and kicks the main loop."""

    def program(sim: Simulation) -> Shared:
        main_ctx = qemu_get_aio_context(sim)
        io = IOThread(sim, "iothread0", lock_kind=None, loop_holds_lock=False)
        requests = Shared(sim, "iothread0.requests", 3)  # confined to iothread0
        done = Shared(sim, "done", 0)

        def complete_bh():  # runs in iothread0
            n = yield requests.load()
            yield compute(2 * n)
            yield requests.store(0)
            yield done.store(1)
            yield aio_wait_kick()

        def main_loop():
            yield io.ctx.bh_schedule_oneshot(complete_bh, "complete requests")
            yield AIO_WAIT_WHILE(io.ctx, lambda: done.value == 0)

        main_ctx.home = sim.spawn("main-loop", main_loop)
        return done

    return program


# --------------------------------------------------------------------------------------------
# R4: the hand-over race at ioeventfd start.


def r4_program(fixed: bool = False, start_us: float = 2.0) -> Program:
    """The guest sets DRIVER_OK on vcpu0 at 2 us; QEMU, in that vCPU thread under the BQL,
    starts the device's ioeventfd: it takes ``start_us`` to set up, assigns the ioeventfd, sets
    the virtqueue's notifier itself ("kick right away", so that a request that snuck in is
    seen) and has the IOThread attach its handler with a one-shot BH. Meanwhile the main loop
    holds drive0 in a drained section, from a seeded 0-3 us for 4 us; while the BlockBackend is
    drained (``blk_in_drain``), the handler is attached only when the section ends. Buggy
    (before QEMU's fix): while drained, the self-kick was skipped too. The guest's first
    request comes from vcpu1 at a seeded 0-6 us after DRIVER_OK; a kick before the ioeventfd is
    assigned is an MMIO exit that leaves the request for the IOThread, which sees it only if
    its notifier was set. Fixed: the self-kick happens drained or not."""

    def program(sim: Simulation) -> dict[str, Any]:
        bql = BQL(sim)
        io = IOThread(sim, "iothread0", lock_kind=None, loop_holds_lock=False)
        ring: deque[str] = deque()
        kick = EventNotifier(sim, "vq0-ioeventfd")
        status = Shared(sim, "status", 0)
        quiesce = Shared(sim, "blk.quiesce_counter", 0)  # drained while > 0
        ioeventfd = {"assigned": False, "drained_at_start": False, "attach_at_drained_end": False}
        irq = QemuSemaphore(sim, "vcpu1-irq")
        seen = {"handled": 0, "ignored": 0}

        def handle_vq():  # in the IOThread
            while ring:
                ring.popleft()
                yield compute(3)
                seen["handled"] += 1
                yield irq.post()

        def attach_bh():  # in the IOThread: start watching the ioeventfd
            io.ctx.set_event_notifier(kick, handle_vq)
            yield Note("handler attached")

        def vcpu0():  # the guest writes DRIVER_OK; QEMU starts the ioeventfd in this thread
            yield sleep(2)
            yield bql.lock("vcpu0: set status")
            yield status.store(4)
            yield compute(start_us)
            ioeventfd["assigned"] = True
            yield Note("ioeventfd assigned")
            drained = ioeventfd["drained_at_start"] = (yield quiesce.load()) > 0  # blk_in_drain()
            if fixed or not drained:
                yield kick.set()  # kick right away: a request that snuck in is seen
            if drained:  # attached by drained_end
                ioeventfd["attach_at_drained_end"] = True
                yield Note("drained: attach at drained_end")
            else:
                yield io.ctx.bh_schedule_oneshot(attach_bh, "start ioeventfd")
            yield bql.unlock()

        def main_loop():  # a drained section on drive0 (a graph change, say)
            yield sleep(drain_at)
            yield bql.lock("main loop: drained_begin")
            yield quiesce.store(1)
            yield bql.unlock()
            yield sleep(4)
            yield bql.lock("main loop: drained_end")
            yield quiesce.store(0)
            if ioeventfd["attach_at_drained_end"]:
                ioeventfd["attach_at_drained_end"] = False
                yield io.ctx.bh_schedule_oneshot(attach_bh, "drained_end: attach")
            yield bql.unlock()

        def vcpu1():  # the guest's first request, from another vCPU
            while status.value != 4:
                yield sleep(0.5)
            yield sleep(arrival)
            ring.append("req0")
            if ioeventfd["assigned"]:
                yield kick.set()
            else:  # MMIO exit: the device is starting, the IOThread will take the queue
                yield bql.lock("vcpu1: virtqueue notify")
                yield Note("kick left for the IOThread")
                seen["ignored"] += 1
                yield bql.unlock()
            yield irq.wait()  # the guest waits for the completion interrupt

        arrival = round(sim.rng.uniform(0, 6), 1)
        drain_at = round(sim.rng.uniform(0, 3), 1)
        sim.spawn("vcpu0", vcpu0)
        sim.spawn("vcpu1", vcpu1)
        sim.spawn("main-loop", main_loop)
        return {"ring": ring, "seen": seen, "arrival": arrival, "ioeventfd": ioeventfd}

    return program


# --------------------------------------------------------------------------------------------
# R5: a BH walks a SCSI device's requests while the device changes IOThread.

#: R5's three variants: no re-check, re-check and reschedule (what broke), in-flight (the fix).
R5_VARIANTS = ("buggy", "recheck", "fixed")


def r5_program(fixed: bool = False, recheck: bool = False) -> Program:
    """The main loop moves drive0, a SCSI disk, from ``iothread0`` to ``iothread1`` at 2 us,
    under the BQL and drained: it waits (``AIO_WAIT_WHILE``) until the BlockBackend has no
    request in flight, then moves the root node (``bs.ctx``) and, 3 us later, the BlockBackend
    (``blk.ctx``). At a seeded 0-8 us a vCPU, under the BQL, has the device walk its requests
    (``scsi_device_for_each_req_async``): a BH scheduled in the BlockBackend's context. That
    context's thread may first be busy for a seeded 0-6 us with a guest request. The BH touches
    each of drive0's three requests (1.5 us each): per-request SCSI state that only the
    IOThread running the BlockBackend's context may touch (thread confinement; the model checks
    every touch and records a breach).

    Buggy: the BH runs where it was scheduled. ``recheck=True``: it first compares the
    BlockBackend's context with its own and reschedules itself there if they differ; the
    context can still change while it walks the requests, after the check. ``fixed=True``
    (QEMU's fix): the BH counts as an in-flight request on the BlockBackend from its scheduling
    (``blk_inc_in_flight``) until it has run (``blk_dec_in_flight``, which kicks
    ``AIO_WAIT_WHILE``), so the context change waits for it."""
    validate.flag("fixed", fixed)
    validate.flag("recheck", recheck)
    if fixed and recheck:
        raise ValueError("the fix replaces the re-check: give fixed=True or recheck=True")

    def program(sim: Simulation) -> dict[str, Any]:
        bql = BQL(sim)
        main_ctx = qemu_get_aio_context(sim)
        ios = {
            n: IOThread(sim, n, lock_kind=None, loop_holds_lock=False)
            for n in ("iothread0", "iothread1")
        }
        blk_ctx = Shared(sim, "blk.ctx", "iothread0")
        bs_ctx = Shared(sim, "bs.ctx", "iothread0")
        in_flight = Shared(sim, "blk.in_flight", 0)
        events: list[str] = []
        done = Shared(sim, "done", 0)
        guest_kick = EventNotifier(sim, "vq0-ioeventfd")
        guest_kick.is_set = True

        def guest_request():
            yield compute(busy)

        ios["iothread0"].ctx.set_event_notifier(guest_kick, guest_request)

        def touch(i: int) -> Step:  # only the BlockBackend's IOThread may touch a request
            def do(t: Any) -> bool:
                if t.name != blk_ctx.value:
                    events.append(
                        f"thread confinement broken: {t.name} touched drive0's request {i}, "
                        f"but the BlockBackend is in {blk_ctx.value}"
                    )
                return True

            return Step(do)

        def for_each_req_bh():  # scsi_device_for_each_req_async_bh
            if recheck:
                where = yield blk_ctx.load()
                if where != sim.current.name:
                    yield Note(f"blk.ctx is {where}: reschedule")
                    yield ios[where].ctx.bh_schedule_oneshot(for_each_req_bh, "for_each_req")
                    return
            for i in range(3):
                yield Note(f"touch request {i}")
                yield touch(i)
                yield compute(1.5)
            yield done.store(1)
            if fixed:
                yield in_flight.qatomic_add(-1)  # blk_dec_in_flight
                yield aio_wait_kick()

        def vcpu():  # the guest resets the device: walk its requests in their IOThread
            yield sleep(arrival)
            yield bql.lock("vcpu0: device reset")
            where = yield blk_ctx.load()
            if fixed:
                yield in_flight.qatomic_add(1)  # blk_inc_in_flight
            yield ios[where].ctx.bh_schedule_oneshot(for_each_req_bh, "for_each_req")
            yield bql.unlock()

        def change_context():  # bdrv_try_change_aio_context, in the main loop
            yield sleep(2)
            yield bql.lock("main loop: change context")
            yield AIO_WAIT_WHILE(ios["iothread0"].ctx, lambda: in_flight.value > 0)  # drained
            yield bs_ctx.store("iothread1")
            yield compute(3)
            yield blk_ctx.store("iothread1")
            yield bql.unlock()

        arrival = round(sim.rng.uniform(0, 8), 1)
        busy = round(sim.rng.uniform(0, 6), 1)
        main_ctx.home = sim.spawn("main-loop", change_context)
        sim.spawn("vcpu0", vcpu)
        return {"events": events, "done": done, "arrival": arrival, "busy": busy}

    return program


# --------------------------------------------------------------------------------------------
# R6: a coroutine entered by another thread before it has yielded.


def aio_co_reschedule_self(new_ctx: AioContext):
    """``yield from aio_co_reschedule_self(new_ctx)`` in a coroutine: move to ``new_ctx``
    safely, as QEMU's does. A BH in the *current* context (``qemu_get_current_aio_context``)
    schedules the coroutine in the new one; the current context's thread is the one running the
    coroutine, so it runs that BH only after the coroutine has yielded. Nothing happens if the
    coroutine is in ``new_ctx`` already."""
    sim = new_ctx.sim
    old_ctx = qemu_get_current_aio_context(sim)
    if old_ctx is None:
        raise MisuseError(f"{sim.current.name} runs no AioContext: nothing to move from")
    if old_ctx is new_ctx:
        return
    co = current_coroutine(sim)

    def move_bh():
        yield aio_co_schedule(new_ctx, co)

    yield old_ctx.bh_schedule_oneshot(move_bh, "reschedule self")
    yield qemu_coroutine_yield()


def r6_program(fixed: bool = False, move: Callable[..., Any] | None = None) -> Program:
    """A coroutine in the main loop moves itself to ``iothread0`` to do I/O there. Buggy: it
    schedules itself in the IOThread directly (``aio_co_schedule``), finishes some bookkeeping
    (a seeded 0.5-3 us) and only then yields; the IOThread, busy for a seeded 0-4 us with a
    guest request, may enter it while it still runs. Fixed: ``aio_co_reschedule_self``.
    ``move(new_ctx, old_ctx)``, if given, is the coroutine's way of moving (a generator it
    runs with ``yield from``), in place of either; it is handed the context it moves from, which
    QEMU's ``aio_co_reschedule_self`` finds itself."""

    def program(sim: Simulation) -> dict[str, Any]:
        main_ctx = qemu_get_aio_context(sim)
        io = IOThread(sim, "iothread0", lock_kind=None, loop_holds_lock=False)
        done = Shared(sim, "done", 0)
        guest_kick = EventNotifier(sim, "vq0-ioeventfd")
        guest_kick.is_set = True

        def guest_request():
            yield compute(busy)

        io.ctx.set_event_notifier(guest_kick, guest_request)

        def moving_co():
            yield compute(1)
            if move is not None:
                yield from move(io.ctx, main_ctx)
            elif fixed:
                yield from aio_co_reschedule_self(io.ctx)
            else:
                yield aio_co_schedule(io.ctx, co)
                yield compute(bookkeeping)  # still running in the main loop
                yield qemu_coroutine_yield()
            yield Note("now in iothread0")
            where.append(sim.current.name)
            yield compute(3)
            yield done.store(1)
            yield aio_wait_kick()

        co = Coroutine(sim, moving_co, name="moving_co")
        where: list[str] = []

        def main_loop():
            yield aio_co_enter(main_ctx, co)
            yield aio_wait_while(main_ctx, lambda: done.value == 0)

        busy = round(sim.rng.uniform(0, 4), 1)
        bookkeeping = round(sim.rng.uniform(0.5, 3), 1)
        main_ctx.home = sim.spawn("main-loop", main_loop)
        return {"done": done, "co": co, "busy": busy, "bookkeeping": bookkeeping, "where": where}

    return program


# --------------------------------------------------------------------------------------------
# R7: the BQL is not held across a coroutine yield.


def r7_program(fixed: bool = False) -> Program:
    """``block_resize`` as a monitor coroutine in the main loop (which holds the BQL except
    while it sleeps in ``poll``). It looks up drive0's node under the BQL, moves to the node's
    IOThread to do the I/O and yields. Buggy: afterwards it goes on as if it still held the
    BQL: it checks and updates global state from the IOThread, assuming the node is still
    drive0's. Meanwhile (a seeded 0-12 us) a guest eject on a vCPU replaces drive0's node under
    the BQL. Fixed: it moves back to the main loop and re-reads the node under the BQL."""

    def program(sim: Simulation) -> dict[str, Any]:
        bql = BQL(sim)
        main_ctx = qemu_get_aio_context(sim)
        io = IOThread(sim, "iothread0", lock_kind=None, loop_holds_lock=False)
        drive_node = Shared(sim, "drive0.node", "node-A")
        resized = Shared(sim, "resized", "")
        events: list[str] = []

        def block_resize():
            node = yield drive_node.load()  # under the BQL: the main loop holds it
            yield from aio_co_reschedule_self(io.ctx)
            yield compute(4)  # truncate, in the node's IOThread; no BQL here
            if not fixed:
                now_node = yield drive_node.load()  # "still ours": read without the BQL
                if now_node != node:
                    events.append(
                        f"assumption broken: resized {node}, but drive0 is now {now_node}"
                    )
                yield resized.store(node)
            yield from aio_co_reschedule_self(main_ctx)
            if fixed:  # back under the BQL: look again before using what was read
                now_node = yield drive_node.load()
                if now_node == node:
                    yield resized.store(node)
                else:
                    yield Note(f"{node} was replaced meanwhile: report an error")
            yield aio_wait_kick()

        co = Coroutine(sim, block_resize, name="qmp_block_resize")

        def main_loop():
            yield bql.lock("main loop")
            yield aio_co_enter(main_ctx, co)
            while co.state != "done":
                yield aio_poll(main_ctx, True, drop=bql)
            yield bql.unlock()

        def vcpu():  # the guest ejects the medium: drive0 gets a new node, under the BQL
            yield sleep(eject_at)
            yield bql.lock("vcpu0: eject")
            yield drive_node.store("node-B")
            yield bql.unlock()

        eject_at = round(sim.rng.uniform(0, 12), 1)
        main_ctx.home = sim.spawn("main-loop", main_loop)
        sim.spawn("vcpu0", vcpu)
        return {"events": events, "resized": resized, "eject_at": eject_at}

    return program


# --------------------------------------------------------------------------------------------
# Running them.


@dataclass
class ScenarioRun:
    """One run of a scenario: its kernel result (None if a misuse stopped it), the outcome and
    what the detectors found."""

    name: str
    fixed: bool
    seed: int
    outcome: str  # "ok", or the bug's name: "request lost", "wrong thread", ...
    findings: list[str] = field(default_factory=list)
    result: RunResult | None = None
    variant: str = ""  # "buggy" or "fixed" by default; R5 also has "recheck"

    @property
    def detected(self) -> bool:
        return self.outcome != "ok"

    def text(self) -> str:
        variant = self.variant or ("fixed" if self.fixed else "buggy")
        lines = [f"{self.name} {variant}, seed {self.seed}: {self.outcome}"]
        lines += [f"  {f}" for f in self.findings]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()


def _classify(name: str, fixed: bool, seed: int, r: RunResult) -> ScenarioRun:
    model = r.sim.model
    if name == "R4":
        if r.outcome == "stuck" or model["ring"]:
            stuck = [ln.strip() for ln in str(r.deadlock).splitlines()[1:3]] if r.deadlock else []
            return ScenarioRun(
                name,
                fixed,
                seed,
                "request lost",
                [f"the request sat in the ring, never seen (kicked at +{model['arrival']} us)"]
                + stuck,
                r,
            )
    elif name == "R5":
        if model["events"]:
            return ScenarioRun(name, fixed, seed, "wrong thread", list(model["events"]), r)
    elif name == "R7":
        if model["events"]:
            return ScenarioRun(name, fixed, seed, "stale global state", list(model["events"]), r)
    if r.outcome != "completed":
        return ScenarioRun(name, fixed, seed, r.outcome, [str(r)], r)
    return ScenarioRun(name, fixed, seed, "ok", [], r)


def classify_result(name: str, fixed: bool, r: RunResult) -> ScenarioRun:
    """Classify one bare ``run()`` of scenario ``name``'s program (what the explorer makes)."""
    return _classify(name, fixed, 0, r)


def _runner(name: str) -> Callable[..., ScenarioRun]:
    def runner(fixed: bool, seed: int, trace: bool = True) -> ScenarioRun:
        return run_scenario(name, fixed, seed=seed, trace=trace)

    return runner


def _outcome(r: ScenarioRun) -> str:
    return r.outcome


def _scenario(name: str, kind: str, what: str, program: Callable, cpus: int, **kw) -> Scenario:
    return Scenario(
        name,
        7,
        kind,
        what,
        program=program,
        cpus=cpus,
        runner=_runner(name),
        outcome=_outcome,
        ok="ok",
        judge=lambda r, fixed: classify_result(name, fixed, r).outcome,
        **kw,
    )


#: The chapter's catalogued races, each classified by what went wrong ("ok" when nothing did).
SCENARIOS: dict[str, Scenario] = {
    "R4": _scenario(
        "R4",
        "hang",
        "a kick before the IOThread listens, while drained: a request lost",
        r4_program,
        4,
    ),
    "R5": _scenario(
        "R5",
        "race",
        "a BH walks SCSI requests in the old IOThread during a context change",
        r5_program,
        4,
    ),
    "R6": _scenario(
        "R6", "race", "a coroutine entered by another thread before it yielded", r6_program, 2
    ),
    "R7": _scenario(
        "R7",
        "race",
        "a monitor coroutine assumed the BQL across a yield",
        r7_program,
        3,
        trace=True,
    ),
}


def run_scenario(
    name: str,
    fixed: bool,
    seed: int = 0,
    trace: bool = True,
    program: Program | None = None,
    variant: str = "",
) -> ScenarioRun:
    """Run one of ``SCENARIOS`` (buggy or fixed) on a seeded random schedule and classify it.
    ``program``, if given, replaces the library's program (for the exercises); ``variant``
    names it in the report."""
    if not isinstance(name, str) or name not in SCENARIOS:
        raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}; got name={name!r}")
    validate.flag("fixed", fixed)
    sc = SCENARIOS[name]
    prog = program if program is not None else sc.program(fixed)
    try:
        r = run(prog, seed=seed, cpus=sc.cpus, policy="random", trace=trace)
    except MisuseError as e:
        return ScenarioRun(name, fixed, seed, "misuse", [f"MisuseError: {e}"], None, variant)
    out = _classify(name, fixed, seed, r)
    out.variant = variant
    return out


def run_r5(variant: str, seed: int = 0, trace: bool = True) -> ScenarioRun:
    """R5 in one of ``R5_VARIANTS``: ``"buggy"``, ``"recheck"`` (the BH re-checks the
    BlockBackend's context and reschedules itself) or ``"fixed"`` (the BH is in flight on the
    BlockBackend, so the context change waits for it)."""
    validate.choice("variant", variant, R5_VARIANTS)
    program = r5_program(fixed=variant == "fixed", recheck=variant == "recheck")
    return run_scenario("R5", variant == "fixed", seed, trace, program, variant)


def outcome_table(seeds: int = 200, names: tuple[str, ...] = tuple(SCENARIOS)) -> dict:
    """``{(name, variant): Counter(outcome -> runs)}`` over ``seeds`` random seeds; the
    variants are "buggy" and "fixed", and for R5 also "recheck" (between the two)."""
    names = validate.labels("names", names, SCENARIOS, kind="a scenario name or a tuple of them")
    table = catalogue.outcome_table({n: SCENARIOS[n] for n in names}, seeds)
    if "R5" not in names:
        return table
    recheck = Counter(run_r5("recheck", s, trace=False).outcome for s in range(seeds))
    out = {}
    for key, counts in table.items():
        if key == ("R5", "fixed"):
            out[("R5", "recheck")] = recheck
        out[key] = counts
    return out


def format_outcomes(table: dict) -> str:
    """The outcome table as text: one row per scenario and variant."""
    lines = [f"{'scenario':<9}{'variant':<8}{'ok':>5}  bug found (runs)"]
    for (name, variant), counts in table.items():
        bugs = ", ".join(f"{k} ({v})" for k, v in sorted(counts.items()) if k != "ok") or "-"
        lines.append(f"{name:<9}{variant:<8}{counts.get('ok', 0):>5}  {bugs}")
    return "\n".join(lines)


def first_buggy_seed(name: str, limit: int = 200) -> int:
    """The smallest seed on which the buggy ``name`` shows its bug."""
    validate.whole("limit", limit, 1, 10_000)
    for s in range(limit):
        if run_scenario(name, False, seed=s, trace=False).detected:
            return s
    raise ValueError(f"{name} showed no bug in {limit} seeds")


__all__ = [
    "classify_result",
    "R5_VARIANTS",
    "SCENARIOS",
    "ScenarioRun",
    "aio_co_reschedule_self",
    "first_buggy_seed",
    "format_outcomes",
    "handover_program",
    "outcome_table",
    "qemu_get_current_aio_context",
    "r4_program",
    "r5_program",
    "r6_program",
    "r7_program",
    "removal_program",
    "run_r5",
    "run_scenario",
]
