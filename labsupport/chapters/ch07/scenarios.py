"""Removing the AioContext lock (QEMU 9.0): chapter 7's scenario programs, each buggy and fixed.

With the lock gone, what keeps IOThreads apart is thread confinement (each request's state is
touched only by the thread that runs it), one-shot bottom halves that hand work to a context's
own thread, and short fine-grained locks. The races that remain are hand-over races:
R4 (a guest kick that sneaks in before the virtqueue's IOThread has attached its handler),
R5 (a BlockBackend and its root node briefly in different contexts while the context changes),
R6 (a coroutine entered by another thread before it has yielded) and R7 (a monitor command
running as a coroutine that assumes it still holds the BQL after a yield). ``removal_program``
shows the first step of the removal: ``aio_context_acquire``/``release`` made empty functions;
``handover_program`` the pattern that replaced the lock (a one-shot BH, ``AIO_WAIT_WHILE``).

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

from collections import deque
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
from labsupport.loop import AioContext, EventNotifier, aio_poll, aio_wait_kick, aio_wait_while
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
    """The guest sets DRIVER_OK on vcpu0; QEMU, in that vCPU thread under the BQL, starts the
    device: it takes ``start_us`` to set up, assigns the ioeventfd, and sends the IOThread a
    one-shot BH that attaches the virtqueue handler. The guest's first request comes from
    vcpu1 at a seeded time 0-6 us after DRIVER_OK. A kick before the ioeventfd is assigned is
    an MMIO exit that the starting device leaves for the IOThread, which never looks: the
    request is never seen. Fixed: the BH self-triggers the virtqueue notifier after attaching
    the handler, so the IOThread looks at the ring once."""

    def program(sim: Simulation) -> dict[str, Any]:
        bql = BQL(sim)
        io = IOThread(sim, "iothread0", lock_kind=None, loop_holds_lock=False)
        ring: deque[str] = deque()
        kick = EventNotifier(sim, "vq0-ioeventfd")
        status = Shared(sim, "status", 0)
        ioeventfd = {"assigned": False}
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
            if fixed:
                yield kick.set()  # self-trigger: a request that snuck in is seen

        def vcpu0():  # the guest writes DRIVER_OK; QEMU starts the device in this thread
            yield bql.lock("vcpu0: set status")
            yield status.store(4)
            yield compute(start_us)
            ioeventfd["assigned"] = True
            yield Note("ioeventfd assigned")
            yield io.ctx.bh_schedule_oneshot(attach_bh, "start ioeventfd")
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
                yield Note("kick ignored: dataplane starting")
                seen["ignored"] += 1
                yield bql.unlock()
            yield irq.wait()  # the guest waits for the completion interrupt

        arrival = round(sim.rng.uniform(0, 6), 1)
        sim.spawn("vcpu0", vcpu0)
        sim.spawn("vcpu1", vcpu1)
        return {"ring": ring, "seen": seen, "arrival": arrival}

    return program


# --------------------------------------------------------------------------------------------
# R5: BlockBackend and root node in different contexts for a moment.


def r5_program(fixed: bool = False) -> Program:
    """The main loop moves drive0 from ``iothread0`` to ``iothread1``: first the root node
    (``bs.ctx``), then, ``3`` us later, the BlockBackend (``blk.ctx``). Meanwhile the device
    (on a vCPU, at a seeded time 0-8 us) schedules a completion BH in the BlockBackend's
    context; the BH then works on the root node, whose code must run in the node's home
    thread (an ``IO_CODE()``-style check, recorded when it fails). Fixed: the BH re-checks
    the node's context and, if it changed meanwhile, reschedules itself there."""

    def program(sim: Simulation) -> dict[str, Any]:
        ios = {
            n: IOThread(sim, n, lock_kind=None, loop_holds_lock=False)
            for n in ("iothread0", "iothread1")
        }
        blk_ctx = Shared(sim, "blk.ctx", "iothread0")
        bs_ctx = Shared(sim, "bs.ctx", "iothread0")
        events: list[str] = []
        done = Shared(sim, "done", 0)

        def completion_bh():
            me = sim.current.name

            def touch_node(t: Any) -> bool:  # IO_CODE(): this runs in the node's home thread
                home = bs_ctx.value
                if home != me:
                    if fixed:
                        t._value = "reschedule"
                        return True
                    events.append(
                        f"IO_CODE violated: completion BH ran in {me}, "
                        f"but drive0's node is in {home}"
                    )
                t._value = "done"
                return True

            yield compute(1)
            what = yield Step(touch_node)
            if what == "reschedule":
                yield Note(f"node moved to {bs_ctx.value}: reschedule")
                yield ios[bs_ctx.value].ctx.bh_schedule_oneshot(completion_bh, "completion")
                return
            yield compute(2)
            yield done.store(1)

        def change_context():  # bdrv_try_change_aio_context, in the main loop
            yield sleep(2)
            yield bs_ctx.store("iothread1")
            yield compute(3)
            yield blk_ctx.store("iothread1")

        def vcpu():  # the device defers its completion to the BlockBackend's context
            yield sleep(arrival)
            where = yield blk_ctx.load()
            yield ios[where].ctx.bh_schedule_oneshot(completion_bh, "completion")

        arrival = round(sim.rng.uniform(0, 8), 1)
        sim.spawn("main-loop", change_context)
        sim.spawn("vcpu0", vcpu)
        return {"events": events, "done": done, "arrival": arrival}

    return program


# --------------------------------------------------------------------------------------------
# R6: a coroutine entered by another thread before it has yielded.


def aio_co_reschedule_self(new_ctx: AioContext, old_ctx: AioContext):
    """``yield from aio_co_reschedule_self(new_ctx, old_ctx)`` in a coroutine: move to
    ``new_ctx`` safely. A BH in the *old* context schedules the coroutine in the new one; the
    old context's thread is the one running the coroutine, so it runs that BH only after the
    coroutine has yielded."""
    co = current_coroutine(old_ctx.sim)

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
    runs with ``yield from``), in place of either."""

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
                yield from aio_co_reschedule_self(io.ctx, main_ctx)
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
            yield from aio_co_reschedule_self(io.ctx, main_ctx)
            yield compute(4)  # truncate, in the node's IOThread; no BQL here
            if not fixed:
                now_node = yield drive_node.load()  # "still ours": read without the BQL
                if now_node != node:
                    events.append(
                        f"assumption broken: resized {node}, but drive0 is now {now_node}"
                    )
                yield resized.store(node)
            yield from aio_co_reschedule_self(main_ctx, io.ctx)
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
    outcome: str  # "ok", or the bug's name: "request lost", "wrong context", ...
    findings: list[str] = field(default_factory=list)
    result: RunResult | None = None

    @property
    def detected(self) -> bool:
        return self.outcome != "ok"

    def text(self) -> str:
        variant = "fixed" if self.fixed else "buggy"
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
            return ScenarioRun(name, fixed, seed, "wrong context", list(model["events"]), r)
    elif name == "R7":
        if model["events"]:
            return ScenarioRun(name, fixed, seed, "stale global state", list(model["events"]), r)
    if r.outcome != "completed":
        return ScenarioRun(name, fixed, seed, r.outcome, [str(r)], r)
    return ScenarioRun(name, fixed, seed, "ok", [], r)


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
        **kw,
    )


#: The chapter's catalogued races, each classified by what went wrong ("ok" when nothing did).
SCENARIOS: dict[str, Scenario] = {
    "R4": _scenario(
        "R4", "hang", "a kick before the IOThread listens: a request lost", r4_program, 3
    ),
    "R5": _scenario(
        "R5", "race", "a BH runs in the old context during a context change", r5_program, 3
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
    name: str, fixed: bool, seed: int = 0, trace: bool = True, program: Program | None = None
) -> ScenarioRun:
    """Run one of ``SCENARIOS`` (buggy or fixed) on a seeded random schedule and classify it.
    ``program``, if given, replaces the library's program (for the exercises)."""
    if not isinstance(name, str) or name not in SCENARIOS:
        raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}; got name={name!r}")
    validate.flag("fixed", fixed)
    sc = SCENARIOS[name]
    prog = program if program is not None else sc.program(fixed)
    try:
        r = run(prog, seed=seed, cpus=sc.cpus, policy="random", trace=trace)
    except MisuseError as e:
        return ScenarioRun(name, fixed, seed, "misuse", [f"MisuseError: {e}"], None)
    return _classify(name, fixed, seed, r)


def outcome_table(seeds: int = 200, names: tuple[str, ...] = tuple(SCENARIOS)) -> dict:
    """``{(name, "buggy"|"fixed"): Counter(outcome -> runs)}`` over ``seeds`` random seeds."""
    names = validate.labels("names", names, SCENARIOS, kind="a scenario name or a tuple of them")
    return catalogue.outcome_table({n: SCENARIOS[n] for n in names}, seeds)


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
    "SCENARIOS",
    "ScenarioRun",
    "aio_co_reschedule_self",
    "first_buggy_seed",
    "format_outcomes",
    "handover_program",
    "outcome_table",
    "r4_program",
    "r5_program",
    "r6_program",
    "r7_program",
    "removal_program",
    "run_scenario",
]
