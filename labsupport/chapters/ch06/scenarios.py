"""Fine-grained locks (2022-2023): chapter 6's annotated block-layer model and its scenarios.

A small block graph, ``blk0 -> filter0 -> file0``: a BlockBackend, a filter node and a file
node whose reads go to a disk. I/O requests are coroutines in IOThreads; each takes the graph
lock for reading (``bdrv_graph_co_rdlock``) and walks the children (``bdrv_co_preadv``,
``GRAPH_RDLOCK``). The main loop, holding the BQL, replaces the filter with a new one
(``GRAPH_WRLOCK``) and frees the old node. A freed node is not really freed: a request that
reaches it is *recorded* ("request 3 read node 'filter0' after it was freed at t=..."), so an
unlocked graph change shows its use-after-free as a detected event. Toggles bring back D6 (the
writer polls with ``has_writer=1`` while a main-loop callback reads the graph), D7 (a drain
under the write lock), D8 (QEMU 8.0's writer polls while the caller holds an IOThread's
AioContext lock, which the reader's completion needs) and writer starvation (no no-poll drain
before the writer waits). The blind-spot program shows an unlock that the static pass believes
and the run time does not.

The block-layer functions here carry QEMU's names but the model's arguments: a request number
and service times instead of an offset, a length, an I/O vector and flags
(``bdrv_co_preadv``, ``blk_co_preadv``), a BlockBackend where QEMU passes a ``BdrvChild`` or a
node (``bdrv_replace_child``, ``bdrv_co_get_info``). Each docstring says how it differs.

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from labsupport import catalogue, validate
from labsupport.annotations import GuardedAttr, tsa_violations
from labsupport.catalogue import Scenario
from labsupport.coroutine import (
    Coroutine,
    aio_co_enter,
    aio_co_schedule,
    aio_co_wake,
    current_coroutine,
    qemu_coroutine_yield,
)
from labsupport.kernel import Note, RunResult, Simulation, compute, run, sleep
from labsupport.loop import AioContext, aio_wait_while
from labsupport.qemu.bql import BQL
from labsupport.qemu.graphlock import (
    GLOBAL_STATE_CODE,
    GRAPH_RDLOCK,
    GRAPH_UNLOCKED,
    GRAPH_WRLOCK,
    IO_CODE,
    BdrvGraphLock,
    DrainableNode,
    bdrv_drained_begin,
    bdrv_drained_end,
    bdrv_graph_co_rdlock,
    bdrv_graph_co_rdunlock,
    bdrv_graph_rdlock_main_loop,
    bdrv_graph_rdunlock_main_loop,
    bdrv_graph_wrlock,
    bdrv_graph_wrunlock,
    get_graph_lock,
    poll_main_while,
)
from labsupport.qemu.iothread import (
    IOThread,
    aio_context_acquire,
    aio_context_release,
    qemu_get_aio_context,
)
from labsupport.sync import QemuSemaphore

from ... import tracebuf as tb

Program = Callable[[Simulation], Any]


# --------------------------------------------------------------------------------------------
# The block graph.


class BdrvNode(DrainableNode):
    """A block node (QEMU's ``BlockDriverState``): its children are guarded by the graph lock."""

    children = GuardedAttr("graph_lock")

    def __init__(self, sim: Simulation, name: str, ctx: AioContext, child: BdrvNode | None = None):
        super().__init__(sim, name, ctx)
        self.__dict__["children"] = [child] if child is not None else []
        self.freed_at: float | None = None


class BlockBackend(DrainableNode):
    """A ``BlockBackend``: what a device submits to; ``root`` is guarded by the graph lock."""

    root = GuardedAttr("graph_lock")

    def __init__(self, sim: Simulation, name: str, ctx: AioContext, root: BdrvNode):
        super().__init__(sim, name, ctx)
        self.__dict__["root"] = root


@dataclass
class GraphModel:
    """What a run leaves behind: the graph, the lock, the counts and the detected events."""

    blks: list[BlockBackend]
    gl: BdrvGraphLock
    bql: BQL
    main_ctx: AioContext
    submitted: int = 0
    completed: int = 0
    arrivals: int = 0
    change_done: bool = False
    uaf: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def current_model() -> GraphModel:
    return Simulation.active.model


def touch(bs: BdrvNode, req: int) -> None:
    """A request uses node ``bs``: if it has been freed, record the use-after-free."""
    if bs.freed_at is not None:
        m = current_model()
        sim = bs.sim
        m.uaf.append(
            f"request {req} read node '{bs.name}' after it was freed at "
            f"t={bs.freed_at:g} us (now t={sim.now:g} us)"
        )
        sim.record(tb.OP, sim.current.tid, sim.label("note", f"USE AFTER FREE {bs.name}"), None)


def aio_co_wake_locked(co: Coroutine):
    """``aio_co_wake(co)`` as it was from 2017 to 2023, when ``aio_co_enter()`` took the target
    context's lock around entering the coroutine (the model's own name; the engine's
    ``aio_co_wake`` is the later one, which takes no lock)."""
    validate.instance("co", co, Coroutine, kind="a Coroutine")
    yield aio_context_acquire(co.ctx, "aio_co_enter")
    yield from aio_co_wake(co)
    yield aio_context_release(co.ctx)


def disk_read(us: float):
    """The coroutine waits ``us`` for the disk, yielding its thread (a timer wakes it). In a
    context that has a lock (the years 2017-2023), the wake-up takes that lock."""
    sim = Simulation.active
    co = current_coroutine(sim)
    ctx = co.ctx

    def done():
        if ctx.lock is not None:  # 2017-2023: aio_co_enter took the context's lock
            yield from aio_co_wake_locked(co)
        else:
            yield from aio_co_wake(co)

    # fired timers are dropped here (never while aio_poll walks the list it is iterating)
    ctx.timers = [t for t in ctx.timers if t.deadline is not None]
    timer = ctx.timer_new(done, "disk")
    timer.arm(sim.now + us)
    yield qemu_coroutine_yield()


#: How long the model's disk takes to serve one read (us).
DISK_SERVICE_US = 40.0


@GRAPH_RDLOCK
def bdrv_co_preadv(
    bs: BdrvNode, req: int, walk_us: float = 2.0, service_us: float = DISK_SERVICE_US
):
    """Read through ``bs``: a filter passes the request to its child, a file node reads the
    disk. ``GRAPH_RDLOCK``: it reads ``bs->children``. QEMU's ``bdrv_co_preadv`` takes a
    ``BdrvChild``, an offset, a length, an I/O vector and flags; the model's takes the node, a
    request number and its times."""
    touch(bs, req)
    yield compute(walk_us)
    children = bs.children
    if children:
        yield from bdrv_co_preadv(children[0], req, walk_us, service_us)
        touch(bs, req)  # the filter finishes the request (a use after the child returned)
    else:
        yield from disk_read(service_us)


@GRAPH_UNLOCKED
def blk_co_preadv(
    blk: BlockBackend,
    req: int,
    submit_us: float = 10.0,
    walk_us: float = 2.0,
    service_us: float = DISK_SERVICE_US,
    complete_us: float = 10.0,
):
    """A guest read, as a coroutine in the device's IOThread (``IO_CODE``): wait while drained,
    count it in flight, take the graph lock for reading, walk the graph, let go; then complete
    (``complete_us`` without the lock) and take the read lock once more to account the request
    on the root node. It counts as in flight until the very end. QEMU's ``blk_co_preadv``
    takes an offset, a length, an I/O vector and flags; the model's takes a request number and
    its times."""
    IO_CODE()
    sim = blk.sim
    start = sim.now
    yield from blk.wait_while_drained()
    yield blk.inc_in_flight()
    yield compute(submit_us)
    yield from bdrv_graph_co_rdlock()
    yield from bdrv_co_preadv(blk.root, req, walk_us, service_us)
    yield from bdrv_graph_co_rdunlock()
    yield compute(complete_us)  # completion work that needs no graph (copy to the guest)
    yield from bdrv_graph_co_rdlock()  # the completion reads the graph again (accounting)
    touch(blk.root, req)
    yield from bdrv_graph_co_rdunlock()
    m = current_model()
    m.completed += 1
    m.latencies.append(sim.now - start)
    yield from blk.dec_in_flight()  # its kick wakes the main loop


@GRAPH_WRLOCK
def bdrv_replace_child(blk: BlockBackend, new: BdrvNode):
    """Put ``new`` in place of ``blk``'s root filter (keeping its child) and free the old one.
    ``GRAPH_WRLOCK``: the caller holds the graph lock for writing. The model's arguments: QEMU's
    ``bdrv_replace_child_noperm()`` takes a ``BdrvChild`` and the new node (``blk_replace_bs()``
    a BlockBackend, the new node and an error pointer), and frees nothing itself."""
    GLOBAL_STATE_CODE()
    old = blk.root
    m = current_model()
    m.extra.setdefault("changes", []).append(
        {"in_flight": blk.in_flight.value, "quiesce_counter": blk.quiesce_counter}
    )
    new.__dict__["children"] = list(old.__dict__["children"])
    blk.root = new
    old.freed_at = blk.sim.now
    yield Note(f"replace {old.name} by {new.name}; free {old.name}")


@GRAPH_UNLOCKED
def change_filter(
    blk: BlockBackend,
    new: BdrvNode,
    drain: str = "none",
    locked: bool = True,
    ctx_lock: str = "none",
):
    """The main loop's graph change (a QMP command, say). ``drain``: ``"none"``, ``"before"``
    (drain, then lock: the 2025 fix) or ``"inside"`` (lock, then drain: D7). ``locked=False``
    changes the graph without the lock at all. ``ctx_lock``: ``"none"`` (no AioContext lock),
    ``"held"`` (2023: the caller holds ``blk``'s AioContext lock around the change, and QEMU
    8.0's ``bdrv_graph_wrlock()`` polls with it held: D8) or ``"released"`` (June 2023:
    ``bdrv_graph_wrlock(blk)`` releases it while it polls)."""
    GLOBAL_STATE_CODE()
    if ctx_lock != "none":  # 2023: hold the node's AioContext lock to change its graph
        yield aio_context_acquire(blk.ctx, "qmp: change filter")
    if drain == "before":
        yield from bdrv_drained_begin(blk)
    if locked:
        yield from bdrv_graph_wrlock(blk if ctx_lock == "released" else None)
    if drain == "inside":
        yield from bdrv_drained_begin(blk)  # polls while holding the graph lock: D7
    yield from bdrv_replace_child(blk, new)
    if drain == "inside":
        yield from bdrv_drained_end(blk)
    if locked:
        yield from bdrv_graph_wrunlock()
    if drain == "before":
        yield from bdrv_drained_end(blk)
    if ctx_lock != "none":
        yield aio_context_release(blk.ctx)


@GRAPH_RDLOCK
def bdrv_co_get_info(blk: BlockBackend):
    """A short read of the graph by a coroutine (the node's format information, say). QEMU's
    ``bdrv_co_get_info`` takes a node and a ``BlockDriverInfo`` to fill; the model's takes the
    BlockBackend."""
    touch(blk.root, -1)
    yield compute(2)


def bdrv_get_info_sync(blk: BlockBackend):
    """A generated wrapper (``co_wrapper``) called from a main-loop callback: run the coroutine
    and poll the main loop until it has finished. The model's name for QEMU's generated
    ``bdrv_get_info()``."""
    gl = get_graph_lock()
    sim = blk.sim

    def entry():
        yield from bdrv_graph_co_rdlock()
        yield from bdrv_co_get_info(blk)
        yield from bdrv_graph_co_rdunlock()

    co = Coroutine(sim, entry, name="bdrv_co_get_info")
    yield from aio_co_enter(gl.main_ctx, co)

    def waiting_for():  # a reader asleep in the graph lock's queue waits for the writer
        if co in gl.queue.waiters and gl.wants_write is not None:
            return [gl.wants_write]
        return []

    yield from poll_main_while(gl, lambda: co.state != "done", waiting_for)
    current_model().extra["sync_reads"] = current_model().extra.get("sync_reads", 0) + 1


# --------------------------------------------------------------------------------------------
# The configurable program.


@dataclass(frozen=True)
class GraphConfig:
    """One run of the model. ``rate_per_ms`` > 0: a Poisson stream of reads until
    ``duration_us`` (spread over the IOThreads); else ``requests`` reads at random times in the
    first ``2 * change_at_us``. ``locked``: the writer takes the graph lock. ``drain_first``:
    its no-poll drain. ``d6_bug``: it polls with ``has_writer=1``. ``sync_reader``: a main-loop
    timer reads the graph through a ``co_wrapper`` while the writer may be waiting.
    ``drain``: ``"none"``, ``"before"`` or ``"inside"`` (D7) for the graph change.
    ``ctx_lock``: ``"none"`` (the IOThreads' contexts have no lock), or the 2023 world where
    they have the 2017 recursive lock, taken by the completion that wakes a request and held by
    the graph change: ``"held"`` (QEMU 8.0: the writer polls with it held, D8) or
    ``"released"`` (June 2023: the writer releases it while it polls). ``arrivals`` (us), if
    given, are the reads' times instead of random ones, and ``query_after_us`` the sync
    reader's delay after the change: a fixed timing, where only the schedule decides."""

    iothreads: int = 1
    requests: int = 6
    rate_per_ms: float = 0.0
    duration_us: float = 2_000.0
    change_at_us: float = 50.0
    submit_us: float = 10.0
    walk_us: float = 2.0
    service_us: float = 40.0
    complete_us: float = 10.0
    locked: bool = True
    drain_first: bool = True
    d6_bug: bool = False
    sync_reader: bool = False
    drain: str = "none"
    ctx_lock: str = "none"
    arrivals: tuple[float, ...] = ()
    query_after_us: float | None = None

    def __post_init__(self) -> None:
        validate.whole("iothreads", self.iothreads, 1, 8, verb="is")
        validate.whole("requests", self.requests, 0, 500, verb="is")
        for f in (
            "rate_per_ms",
            "duration_us",
            "change_at_us",
            "submit_us",
            "walk_us",
            "service_us",
            "complete_us",
        ):
            validate.number(f, getattr(self, f), low=0)
        if self.rate_per_ms > 1_000:
            raise ValueError(f"rate_per_ms is at most 1000 reads per ms; got {self.rate_per_ms!r}")
        validate.choice("drain", self.drain, ("none", "before", "inside"), verb="is")
        validate.choice("ctx_lock", self.ctx_lock, ("none", "held", "released"), verb="is")
        validate.instance("arrivals", self.arrivals, tuple, kind="a tuple of times in us")
        for at in self.arrivals:
            validate.number("arrivals", at, low=0)
        if self.query_after_us is not None:
            validate.number("query_after_us", self.query_after_us, low=0)

    def replace(self, **changes: Any) -> GraphConfig:
        return replace(self, **changes)


def graph_program(cfg: GraphConfig, change_body: Callable[..., Any] | None = None) -> Program:
    """The chapter's VM: ``cfg.iothreads`` IOThreads with one BlockBackend each
    (``blkN -> filterN -> fileN``), a vCPU submitting reads, and the main loop that replaces
    ``blk0``'s filter at ``cfg.change_at_us``. ``change_body(blk, new)``, if given, replaces
    ``change_filter`` (an exercise's answer)."""

    def program(sim: Simulation) -> GraphModel:
        main_ctx = qemu_get_aio_context(sim)
        bql = BQL(sim)
        gl = BdrvGraphLock(sim, main_ctx, bql, d6_bug=cfg.d6_bug, drain_first=cfg.drain_first)
        blks = []
        for i in range(cfg.iothreads):
            kind = None if cfg.ctx_lock == "none" else "rec"  # 2017-2023: a recursive lock
            io = IOThread(sim, f"iothread{i}", lock_kind=kind, loop_holds_lock=False)
            gl.add_context(io.ctx)
            file = BdrvNode(sim, f"file{i}", io.ctx)
            filt = BdrvNode(sim, f"filter{i}", io.ctx, file)
            blks.append(BlockBackend(sim, f"blk{i}", io.ctx, filt))
        gl.nodes = list(blks)
        m = GraphModel(blks, gl, bql, main_ctx)
        sim.model = m  # before the run starts, so callbacks can find it
        new_filter = BdrvNode(sim, "filter0-new", blks[0].ctx)
        rng = sim.rng
        if cfg.arrivals:
            times = sorted(cfg.arrivals)
        elif cfg.rate_per_ms > 0:
            times, t = [], 0.0
            while True:
                t += rng.expovariate(cfg.rate_per_ms / 1000)
                if t >= cfg.duration_us:
                    break
                times.append(round(t, 1))
        else:
            times = sorted(
                round(rng.uniform(0, 2 * cfg.change_at_us), 1) for _ in range(cfg.requests)
            )
        m.arrivals = len(times)

        def vcpu():
            now = 0.0
            for req, at in enumerate(times):
                yield sleep(at - now)
                now = at
                blk = blks[req % len(blks)]
                co = Coroutine(
                    sim,
                    blk_co_preadv,
                    blk,
                    req,
                    cfg.submit_us,
                    cfg.walk_us,
                    cfg.service_us,
                    cfg.complete_us,
                    name=f"req{req}",
                )
                yield aio_co_schedule(blk.ctx, co)  # the ioeventfd kick, as a coroutine
                m.submitted += 1

        change = change_body or (
            lambda blk, new: change_filter(blk, new, cfg.drain, cfg.locked, cfg.ctx_lock)
        )

        def graph_change():
            yield from change(blks[0], new_filter)
            m.change_done = True

        main_ctx.timer_new(graph_change, "qmp: change filter").arm(cfg.change_at_us)
        if cfg.sync_reader:
            after = cfg.query_after_us
            if after is None:
                after = round(rng.uniform(0, cfg.service_us), 1)
            at = cfg.change_at_us + after
            main_ctx.timer_new(lambda: bdrv_get_info_sync(blks[0]), "query info").arm(at)

        def finished() -> bool:
            return (
                m.change_done
                and m.completed == m.arrivals
                and all(m.extra.get(k) for k in m.extra.get("wanted", ()))
            )

        def main_loop():  # AIO_WAIT_WHILE in its home thread: aio_wait_kick() wakes it
            yield bql.lock("main loop")
            yield aio_wait_while(main_ctx, lambda: not finished())
            yield bql.unlock()

        main_ctx.home = sim.spawn("main-loop", main_loop)
        sim.spawn("vcpu0", vcpu)
        return m

    return program


@dataclass
class GraphRun:
    """A run of ``graph_program`` and what it measured."""

    cfg: GraphConfig
    result: RunResult
    model: GraphModel

    @property
    def outcome(self) -> str:
        return self.result.outcome

    @property
    def writer_wait_us(self) -> float | None:
        """How long ``bdrv_graph_wrlock`` waited (None: it never got the lock)."""
        waits = self.model.gl.writer_waits
        return waits[0] if waits else None

    @property
    def reads_per_ms(self) -> float:
        return 1000 * self.model.completed / self.result.time if self.result.time else 0.0

    def violations(self) -> list[Any]:
        return tsa_violations(self.result)

    def diagnosis(self) -> str:
        """Why a hung run hung, from the graph lock's point of view."""
        gl = self.model.gl
        lines = [
            f"graph lock: has_writer={gl.has_writer}, readers "
            f"{ {k: v for k, v in gl.reader_counts.items() if v} or 'none' }, "
            f"sleeping in its CoQueue: "
            f"{', '.join(co.name for co in gl.queue.waiters) or 'none'}"
        ]
        blk = self.model.blks[0]
        lines.append(
            f"{blk.name}: in_flight={blk.in_flight.value}, quiesce_counter={blk.quiesce_counter}"
        )
        lock = blk.ctx.lock
        if lock is not None and hasattr(lock, "mutex"):
            role = getattr(lock.mutex, "role", f"{blk.ctx.name}'s AioContext lock")
            lines.append(f"{role}: {lock.mutex.state_text()}")
        return "\n".join(lines)

    def summary(self) -> str:
        wait = self.writer_wait_us
        if not self.cfg.locked and not self.model.gl.writer_waits:
            w = "none (the change took no write lock)"
        else:
            w = "never got the lock" if wait is None else f"{wait:,.0f} us"
        lines = [
            f"outcome: {self.outcome} at t={self.result.time:,.0f} us",
            f"graph change done: {self.model.change_done}; writer wait: {w}",
            f"reads completed: {self.model.completed} of {self.model.arrivals} "
            f"({self.reads_per_ms:.1f} per ms)",
            f"use-after-free events: {len(self.model.uaf)}; TSA violations at run time: "
            f"{len(self.violations())}",
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def run_graph(
    cfg: GraphConfig,
    seed: int = 0,
    policy: str = "random",
    trace: bool = True,
    change_body: Callable[..., Any] | None = None,
    schedule: str | None = None,
) -> GraphRun:
    """Run ``graph_program(cfg)`` on ``cfg.iothreads + 2`` host CPUs."""
    validate.instance("cfg", cfg, GraphConfig, kind="a GraphConfig(...)")
    if change_body is not None:
        validate.function("change_body", change_body, kind="a generator function or None")
    r = run(
        graph_program(cfg, change_body),
        seed=seed,
        policy=policy,
        trace=trace,
        cpus=cfg.iothreads + 2,
        schedule=schedule,
    )
    return GraphRun(cfg, r, r.sim.model)


# --------------------------------------------------------------------------------------------
# The scenarios, buggy and fixed.

#: (buggy, fixed) configurations of each lesson.
CONFIGS: dict[str, tuple[GraphConfig, GraphConfig]] = {
    "unlocked": (GraphConfig(locked=False), GraphConfig(locked=True)),
    "D6": (
        GraphConfig(d6_bug=True, sync_reader=True, requests=6),
        GraphConfig(d6_bug=False, sync_reader=True, requests=6),
    ),
    "D7": (GraphConfig(drain="inside", requests=8), GraphConfig(drain="before", requests=8)),
    "D8": (GraphConfig(ctx_lock="held", requests=8), GraphConfig(ctx_lock="released", requests=8)),
}


def run_scenario(name: str, fixed: bool, seed: int = 0, trace: bool = True) -> GraphRun:
    """Run one of ``SCENARIOS``, buggy or fixed, with the random policy and ``seed``."""
    if not isinstance(name, str) or name not in CONFIGS:
        raise ValueError(f"scenario must be one of {', '.join(CONFIGS)}; got name={name!r}")
    validate.flag("fixed", fixed)
    return run_graph(CONFIGS[name][int(fixed)], seed=seed, trace=trace)


def classify(g: GraphRun) -> str:
    """``"use-after-free"`` if a freed node was read, else the run's outcome."""
    if g.model.uaf:
        return "use-after-free"
    return g.outcome


def _scenario(id: str, name: str, kind: str, what: str) -> Scenario:
    def runner(fixed: bool, seed: int, trace: bool = True) -> GraphRun:
        return run_scenario(name, fixed, seed=seed, trace=trace)

    def program(fixed: bool) -> Program:
        return graph_program(CONFIGS[name][int(fixed)])

    def judge(r: RunResult, fixed: bool) -> str:
        return classify(GraphRun(CONFIGS[name][int(fixed)], r, r.sim.model))

    cpus = CONFIGS[name][0].iothreads + 2
    return Scenario(id, 6, kind, what, program, cpus, runner=runner, outcome=classify, judge=judge)


#: The chapter's catalogued bugs (the lesson without the graph lock is catalogued as "UAF").
SCENARIOS: dict[str, Scenario] = {
    "unlocked": _scenario(
        "UAF", "unlocked", "freed", "a graph change without the graph lock, I/O in flight"
    ),
    "D6": _scenario("D6", "D6", "deadlock", "the graph writer polls with has_writer set"),
    "D7": _scenario("D7", "D7", "deadlock", "a drain (which polls) under the graph lock"),
    "D8": _scenario(
        "D8", "D8", "deadlock", "the graph writer polls holding an IOThread's AioContext lock"
    ),
}


def outcome_table(seeds: int = 100, names: tuple[str, ...] = tuple(SCENARIOS)) -> dict:
    """``{(name, "buggy"|"fixed"): Counter(classification -> runs)}`` over ``seeds`` seeds."""
    names = validate.labels("names", names, SCENARIOS, kind="a scenario name or a tuple of them")
    return catalogue.outcome_table({n: SCENARIOS[n] for n in names}, seeds)


def format_outcomes(table: dict) -> str:
    """The outcome table as text."""
    kinds = ("completed", "use-after-free", "deadlock", "stuck")
    lines = [f"{'scenario':<10}{'variant':<8}" + "".join(f"{k:>15}" for k in kinds)]
    for (name, variant), counts in table.items():
        lines.append(f"{name:<10}{variant:<8}" + "".join(f"{counts.get(k, 0):>15}" for k in kinds))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Writer starvation.

#: The reader stream of the starvation measurement.
STARVE = GraphConfig(
    iothreads=2,
    rate_per_ms=50.0,
    duration_us=2_500.0,
    change_at_us=300.0,
    submit_us=2.0,
    service_us=60.0,
)


def writer_wait(
    rate_per_ms: float, drain_first: bool, seed: int = 0, base: GraphConfig = STARVE
) -> tuple[float, float]:
    """``(writer wait us, reads per ms)`` for one stream of readers."""
    g = run_graph(
        base.replace(rate_per_ms=rate_per_ms, drain_first=drain_first), seed=seed, trace=False
    )
    wait = g.writer_wait_us
    return (math.inf if wait is None else wait), g.reads_per_ms


def starvation_table(
    rates: tuple[float, ...] = (10, 50, 100, 150, 200), seeds: int = 3, base: GraphConfig = STARVE
) -> list[dict[str, float]]:
    """Median writer wait over ``seeds`` seeds, with and without the no-poll drain, per rate."""
    rows = []
    for rate in rates:
        row: dict[str, float] = {"rate_per_ms": rate}
        for drain_first in (False, True):
            waits = sorted(writer_wait(rate, drain_first, s, base)[0] for s in range(seeds))
            row["with drain" if drain_first else "no drain"] = waits[len(waits) // 2]
        rows.append(row)
    return rows


def format_starvation(rows: list[dict[str, float]]) -> str:
    lines = [f"{'reads/ms':>9} {'writer wait, no drain':>22} {'writer wait, drain first':>25}"]
    for r in rows:
        lines.append(
            f"{r['rate_per_ms']:>9g} {r['no drain']:>19,.0f} us {r['with drain']:>22,.0f} us"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The blind spot: an unlock that does nothing.


@GRAPH_RDLOCK
def refresh_no_unlock(blk: BlockBackend):
    """Drain while holding the read lock: the static pass refuses it."""
    yield from bdrv_drained_begin(blk)
    yield compute(5)
    yield from bdrv_drained_end(blk)


# fmt: off
@GRAPH_RDLOCK
def refresh_ineffective_unlock(blk: BlockBackend):
    """"Drop" the lock for the drain with the main loop's placeholder: the static pass is
    satisfied, but in a coroutine that holds the real read lock the unlock does nothing."""
    yield from bdrv_graph_rdunlock_main_loop()
    yield from bdrv_drained_begin(blk)
    yield compute(5)
    yield from bdrv_drained_end(blk)
    yield from bdrv_graph_rdlock_main_loop()
# fmt: on


@GRAPH_RDLOCK
def refresh_real_unlock(blk: BlockBackend):
    """Really drop the coroutine's read lock across the drain, and take it back after."""
    yield from bdrv_graph_co_rdunlock()
    yield from bdrv_drained_begin(blk)
    yield compute(5)
    yield from bdrv_drained_end(blk)
    yield from bdrv_graph_co_rdlock()


BLIND_SPOT_VARIANTS = {
    "no unlock": refresh_no_unlock,
    "ineffective unlock": refresh_ineffective_unlock,
    "real unlock": refresh_real_unlock,
}


def blind_spot_program(refresh: Callable[..., Any] = refresh_ineffective_unlock) -> Program:
    """A coroutine in the main loop holds the graph read lock and calls ``refresh(blk)``,
    which drains ``blk0`` (a read is in flight on ``iothread0``). While the drain polls, a
    graph change that a QMP command queued as a BH runs and asks for the write lock."""

    def program(sim: Simulation) -> GraphModel:
        cfg = GraphConfig(requests=0)
        m = graph_program(cfg, change_body=lambda blk, new: _idle())(sim)
        main_ctx, blk = m.main_ctx, m.blks[0]
        m.change_done = True
        new_filter = BdrvNode(sim, "filter0-new", blk.ctx)

        def job():  # a block job's coroutine in the main loop, reading the graph
            yield from bdrv_graph_co_rdlock()
            yield compute(5)
            yield from refresh(blk)
            yield from bdrv_graph_co_rdunlock()
            m.extra["job done"] = True

        def qmp_change():  # a QMP command: change the graph (drained, then locked)
            yield from change_filter(blk, new_filter, drain="none")
            m.extra["graph changed"] = True

        def start_job():
            co = Coroutine(sim, job, name="job")
            yield from aio_co_enter(main_ctx, co)

        read = Coroutine(sim, blk_co_preadv, blk, 0, 2.0, 2.0, 60.0, name="req0")

        def vcpu():
            yield aio_co_schedule(blk.ctx, read)
            yield sleep(3)
            yield main_ctx.bh_schedule_oneshot(start_job, "start job")
            yield sleep(9)
            yield main_ctx.bh_schedule_oneshot(qmp_change, "qmp: blockdev-change")

        m.arrivals = 1
        sim.spawn("guest", vcpu)
        m.extra["wanted"] = ("job done", "graph changed")
        return m

    return program


def call_as_reader(fn: Callable[..., Any], locked: bool = True, seed: int = 0) -> RunResult:
    """Run ``fn(filter0, 0)`` in a coroutine in ``iothread0`` that holds the graph read lock
    (``locked``) or not; the run's TSA report says whether ``fn``'s promises were kept, and
    ``model.extra["read took us"]`` how long the call took."""

    def program(sim: Simulation) -> GraphModel:
        m = graph_program(GraphConfig(requests=0), change_body=lambda blk, new: _idle())(sim)
        blk = m.blks[0]

        def reader():
            if locked:
                yield from bdrv_graph_co_rdlock()
            started = sim.now
            yield from fn(blk.root, 0)
            m.extra["read took us"] = sim.now - started  # a read that reaches the disk waits
            if locked:
                yield from bdrv_graph_co_rdunlock()
            m.extra["read done"] = True
            yield m.main_ctx.bh_schedule_oneshot(_idle, "kick")

        co = Coroutine(sim, reader, name="reader")

        def guest():
            yield aio_co_schedule(blk.ctx, co)

        m.extra["wanted"] = ("read done",)
        sim.spawn("guest", guest)
        return m

    return run(program, seed=seed, policy="random", cpus=3)


def api_class_program() -> Program:
    """``GLOBAL_STATE_CODE`` and ``IO_CODE`` at run time. ``vcpu0`` (without the BQL) and
    ``vcpu1`` (holding it) each call the main loop's read placeholder, which is global-state
    API: only ``vcpu0``'s calls are recorded, because any thread that holds the BQL counts as
    the block layer's main thread. Then the guest reads ``blk0`` twice (``IO_CODE``), once in
    ``iothread0``, the node's context, and once in ``iothread1``: neither is recorded, because
    ``IO_CODE()`` checks nothing. The guest waits for both completions (an interrupt each)."""

    def program(sim: Simulation) -> GraphModel:
        main_ctx = qemu_get_aio_context(sim)
        bql = BQL(sim)
        gl = BdrvGraphLock(sim, main_ctx, bql)
        ios = [IOThread(sim, f"iothread{i}", lock_kind=None, loop_holds_lock=False) for i in (0, 1)]
        for io in ios:
            gl.add_context(io.ctx)
        file = BdrvNode(sim, "file0", ios[0].ctx)
        blk = BlockBackend(sim, "blk0", ios[0].ctx, BdrvNode(sim, "filter0", ios[0].ctx, file))
        gl.nodes = [blk]
        m = GraphModel([blk], gl, bql, main_ctx)
        sim.model = m
        irq = QemuSemaphore(sim, "guest-irq")

        def read(req: int):
            yield from blk_co_preadv(blk, req, 2.0, 2.0, 10.0, 2.0)
            yield irq.post()

        def placeholder_read():  # a global-state caller that reads the graph
            yield from bdrv_graph_rdlock_main_loop()
            touch(blk.root, -1)
            yield from bdrv_graph_rdunlock_main_loop()

        def vcpu0():
            yield sleep(1)
            yield from placeholder_read()  # without the BQL

        def vcpu1():
            yield sleep(2)
            yield bql.lock("vcpu1: mmio exit")
            yield from placeholder_read()  # holding the BQL: the block layer's main thread
            yield bql.unlock()

        def guest():
            yield sleep(5)
            for req, io in enumerate(ios):
                yield aio_co_schedule(io.ctx, Coroutine(sim, read, req, name=f"req{req}"))
            for _ in ios:
                yield irq.wait()

        m.arrivals = len(ios)
        sim.spawn("vcpu0", vcpu0)
        sim.spawn("vcpu1", vcpu1)
        sim.spawn("guest", guest)
        return m

    return program


def _idle():
    return
    yield


def blind_spot_done(r: RunResult) -> bool:
    """Did the job finish and the graph change happen?"""
    m = r.sim.model
    return r.ok and all(m.extra.get(k) for k in m.extra.get("wanted", ()))


def run_blind_spot(variant: str = "ineffective unlock", seed: int = 0) -> RunResult:
    if not isinstance(variant, str) or variant not in BLIND_SPOT_VARIANTS:
        raise ValueError(
            f"variant must be one of {', '.join(BLIND_SPOT_VARIANTS)}; got {variant!r}"
        )
    return run(blind_spot_program(BLIND_SPOT_VARIANTS[variant]), seed=seed, policy="random", cpus=3)


__all__ = [
    "BLIND_SPOT_VARIANTS",
    "BdrvNode",
    "BlockBackend",
    "GraphConfig",
    "GraphModel",
    "GraphRun",
    "CONFIGS",
    "SCENARIOS",
    "STARVE",
    "aio_co_wake_locked",
    "api_class_program",
    "bdrv_co_get_info",
    "bdrv_co_preadv",
    "bdrv_get_info_sync",
    "bdrv_replace_child",
    "blind_spot_done",
    "blind_spot_program",
    "blk_co_preadv",
    "call_as_reader",
    "change_filter",
    "classify",
    "current_model",
    "disk_read",
    "format_outcomes",
    "format_starvation",
    "graph_program",
    "outcome_table",
    "refresh_ineffective_unlock",
    "refresh_no_unlock",
    "refresh_real_unlock",
    "run_blind_spot",
    "run_graph",
    "run_scenario",
    "starvation_table",
    "touch",
    "writer_wait",
]
