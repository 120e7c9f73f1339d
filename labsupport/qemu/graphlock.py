"""The block-graph reader/writer lock of QEMU 8.x, with its TSA annotations and API classes.

From December 2022 only the main loop, holding the BQL, changes the block graph (which node is
whose child); readers are I/O coroutines in any AioContext that walk ``bs->children``. The
lock is built for cheap readers: each AioContext counts its own readers, and a reader only
increments its counter and checks a global ``has_writer`` flag; if a writer is active it backs
out, kicks the writer and sleeps in a ``CoQueue``. The writer (``bdrv_graph_wrlock``) first
starts a no-poll drain of every node, so new I/O cannot starve it, then loops: clear
``has_writer``, poll until no reader is left, set ``has_writer``, and check again in case a
reader sneaked in; then it ends the drain (``bdrv_drain_all_end``) *before it returns*, so
requests that arrive during the write section start and wait for the writer as readers do, on
``has_writer`` and the reader queue. ``bdrv_graph_wrunlock`` clears the flag and wakes every
sleeping reader; it does not end a drain. ``bdrv_graph_rdlock_main_loop`` is a placeholder: the
main loop is the only writer, so it needs no real read lock.

Where the model follows one year of QEMU rather than another, or differs on purpose:

- ``bdrv_graph_co_rdunlock`` kicks the writer only if ``has_writer`` is set, as the 2023 code
  did (``block/graph-lock.c`` at 80fc5d26); later code kicks always, because the writer clears
  the flag while it polls, so the flag cannot tell a reader that a writer waits.
  ``BdrvGraphLock(always_kick=True)`` is that later code.
- ``bdrv_graph_wrlock(bs=None)`` has the signature of June 2023 until the AioContext lock was
  removed: the node whose AioContext lock the caller holds, which it releases while it polls
  (``None``: the caller holds none). QEMU 8.0's took no argument and polled with the caller's
  context lock held (D8); the current one takes none again, because the lock is gone.
- ``bdrv_graph_wrunlock`` then runs one non-blocking ``aio_poll`` pass of the main context, for
  the bottom halves scheduled during the write section; QEMU's runs only the BHs
  (``aio_bh_poll``, a later addition); the early-2023 code ran nothing.
- In QEMU ``BdrvGraphLock`` is an empty type, there only for clang's Thread Safety Analysis (the
  one object ``graph_lock`` names the capability); the state lives in ``graph-lock.c`` (the flag,
  the reader queue) and in one ``BdrvGraphRWlock`` counter per AioContext. The model keeps all
  of it in one object of class ``BdrvGraphLock``, named after the capability.

Toggles bring back the bugs: ``d6_bug`` (the writer polls with ``has_writer=1``, D6) and
``drain_first=False`` (no no-poll drain: a stream of readers can starve the writer).
``GRAPH_RDLOCK``, ``GRAPH_WRLOCK`` and ``GRAPH_UNLOCKED`` are ``annotations`` decorators on
``"graph_lock"``. ``GLOBAL_STATE_CODE()`` checks what QEMU asserts, that the caller holds the
BQL (``qemu_in_main_thread()``: any BQL holder, a vCPU thread too); ``IO_CODE()`` is a marker
and checks nothing, as in QEMU, where I/O API functions may be called from any thread.

Layer 4 (QEMU models): imports the kernel, the primitives, the event loop and the other QEMU
models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import validate
from ..annotations import (
    acquires,
    acquires_shared,
    current_coroutine_of,
    declare_capability,
    declared_capability,
    excludes,
    no_tsa,
    record_violation,
    releases,
    releases_shared,
    requires,
    requires_shared,
)
from ..coroutine import CoQueue, current_coroutine
from ..kernel import MisuseError, Note, Simulation, Thread
from ..loop import AioContext, aio_poll, aio_wait, aio_wait_kick
from .block import BlockDriverState
from .bql import BQL
from .iothread import aio_context_acquire, aio_context_release

#: ``GRAPH_RDLOCK`` (= ``TSA_REQUIRES_SHARED(graph_lock)``): the caller holds the graph lock,
#: at least for reading.
GRAPH_RDLOCK = requires_shared("graph_lock")
#: ``GRAPH_WRLOCK`` (= ``TSA_REQUIRES(graph_lock)``): the caller holds it for writing.
GRAPH_WRLOCK = requires("graph_lock")
#: ``GRAPH_UNLOCKED``: the caller must not hold it (``bdrv_drained_begin`` is one such).
GRAPH_UNLOCKED = excludes("graph_lock")


class BdrvGraphLock:
    """The graph lock's state: per-AioContext reader counts, ``has_writer``, sleeping readers.

    Named after QEMU's capability type; in QEMU ``BdrvGraphLock`` is empty (it exists for
    clang's Thread Safety Analysis) and the state is ``has_writer``, the reader queue and one
    ``BdrvGraphRWlock`` counter per AioContext. The model keeps it all here.

    ``nodes``: what the writer's no-poll drain quiesces (``BlockBackend``s of this model).
    ``d6_bug``: keep ``has_writer=1`` while polling (D6). ``drain_first``: the no-poll drain.
    ``always_kick``: the unlock kicks the writer whether or not ``has_writer`` is set (the code
    after 2023); the default kicks only if it is set, as the 2023 code did.
    ``history`` holds ``(time, total readers, has_writer)`` at every change, for plots.
    """

    kind = "graph lock"

    def __init__(
        self,
        sim: Simulation,
        main_ctx: AioContext,
        bql: BQL,
        d6_bug: bool = False,
        drain_first: bool = True,
        always_kick: bool = False,
    ):
        validate.instance("sim", sim, Simulation, kind="a Simulation")
        validate.instance("main_ctx", main_ctx, AioContext, kind="an AioContext")
        validate.instance("bql", bql, BQL, kind="a BQL")
        validate.flag("d6_bug", d6_bug)
        validate.flag("drain_first", drain_first)
        validate.flag("always_kick", always_kick)
        self.sim = sim
        self.name = "graph_lock"
        self.main_ctx = main_ctx
        self.bql = bql
        self.d6_bug = d6_bug
        self.drain_first = drain_first
        self.always_kick = always_kick
        self.has_writer = 0
        self.reader_counts: dict[str, int] = {}
        self.contexts: list[AioContext] = [main_ctx]
        # a reader asleep here waits for the writer (holding the lock, or waiting for readers
        # to drain with has_writer set): the wait-for graph sees it
        self.queue = CoQueue(
            sim,
            "graph_lock.readers",
            holders=lambda: [t for t in (self.writer or self.wants_write,) if t is not None],
            what="graph_lock to read (asleep in its CoQueue)",
        )
        self.writer: Thread | None = None
        self.wants_write: Thread | None = None
        self.nodes: list[Any] = []
        self._co_readers: dict[int, int] = {}
        self.writer_waits: list[float] = []
        self.history: list[tuple[float, int, int]] = [(0.0, 0, 0)]
        declare_capability(sim, "graph_lock", self)
        declare_capability(sim, "bql", bql)
        declare_capability(sim, "main_ctx", main_ctx)

    def add_context(self, ctx: AioContext) -> None:
        """Give an IOThread's context its reader counter."""
        validate.instance("ctx", ctx, AioContext, kind="an AioContext")
        if ctx not in self.contexts:
            self.contexts.append(ctx)

    def reader_count(self) -> int:
        """All readers, over every context's counter (what the writer waits to see at 0)."""
        return sum(self.reader_counts.values())

    def _log(self) -> None:
        self.history.append((self.sim.now, self.reader_count(), self.has_writer))

    def _ctx_of(self, co: Any) -> AioContext:
        if co.ctx is not None:
            return co.ctx
        me = self.sim.current
        return next((c for c in self.contexts if c.home is me), self.main_ctx)

    def tsa_holds(self, thread: Thread) -> str | None:
        """How ``thread`` (or the coroutine it runs) holds the lock, for the TSA checks."""
        if self.writer is thread:
            return "exclusive"
        co = current_coroutine_of(thread)
        if co is not None and self._co_readers.get(co.oid, 0) > 0:
            return "shared"
        if thread.local.get("graph_rdlock_main_loop", 0) > 0:
            return "shared"
        return None

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}:{v}" for k, v in self.reader_counts.items() if v)
        who = f", writer {self.writer.name}" if self.writer else ""
        return (
            f"<BdrvGraphLock [has_writer={self.has_writer}, readers {{{counts}}}, "
            f"sleeping {len(self.queue)}{who}]>"
        )


def get_graph_lock(sim: Simulation | None = None) -> BdrvGraphLock:
    """This simulation's graph lock (the one global ``graph_lock`` of QEMU)."""
    if sim is not None:
        validate.instance("sim", sim, Simulation, kind="a Simulation or None")
    sim = sim or Simulation.active
    gl = declared_capability(sim, "graph_lock") if sim else None
    if gl is None:
        raise MisuseError(
            "this simulation has no block-graph lock; make one with "
            "BdrvGraphLock(sim, main_ctx, bql)"
        )
    return gl


# -- where code runs ---------------------------------------------------------------------------


def qemu_in_main_thread(sim: Simulation | None = None) -> bool:
    """Does the current thread hold the BQL? (QEMU: ``qemu_in_main_thread()``, which in the
    emulator is ``bql_locked()``: any BQL holder acts as the block layer's "main thread", the
    main loop, a vCPU thread or the RCU thread.) ``sim`` is the model's (QEMU's takes no
    argument): the simulation, when none is running."""
    gl = get_graph_lock(sim)
    me = gl.sim.current
    return me is not None and gl.bql.mutex.owner is me


def GLOBAL_STATE_CODE() -> None:  # noqa: N802  (QEMU's name)
    """Mark a function as global-state API and check what QEMU asserts: the caller holds the
    BQL (``qemu_in_main_thread()``). A vCPU thread that holds it passes. QEMU aborts on an
    assertion; here a failure is a recorded TSA-style violation (``set_tsa_mode(sim, "raise")``
    stops the run instead)."""
    gl = get_graph_lock()
    if not qemu_in_main_thread(gl.sim):
        fn = _caller_name()
        me = gl.sim.current
        record_violation(
            gl.sim,
            fn,
            "BQL",
            "GLOBAL_STATE_CODE",
            f"`{fn}` is GLOBAL_STATE_CODE but runs in {me.name if me else '?'}, which does not "
            f"hold the BQL",
        )


def IO_CODE() -> None:  # noqa: N802  (QEMU's name)
    """Mark a function as I/O API. As in QEMU, where the macro expands to nothing, it checks
    nothing: I/O API functions may be called from any thread."""


def IO_OR_GS_CODE() -> None:  # noqa: N802  (QEMU's name)
    """Mark a function as callable both as I/O and as global-state API (``bdrv_drained_begin``
    is one). As in QEMU, it checks nothing."""


def _caller_name() -> str:
    import sys

    frame = sys._getframe(2)
    return frame.f_code.co_name


# -- the read side -----------------------------------------------------------------------------


@no_tsa
@acquires_shared("graph_lock")
def bdrv_graph_co_rdlock():
    """``yield from bdrv_graph_co_rdlock()`` in a coroutine: take the graph lock to read."""
    gl = get_graph_lock()
    co = current_coroutine(gl.sim)
    if co is None:
        raise MisuseError(
            f"{gl.sim.current.name} called bdrv_graph_co_rdlock outside a "
            f"coroutine; in the main loop use bdrv_graph_rdlock_main_loop"
        )
    ctx = gl._ctx_of(co)
    while True:
        gl.reader_counts[ctx.name] = gl.reader_counts.get(ctx.name, 0) + 1
        gl._log()
        yield Note(f"graph reader_count[{ctx.name}]++")
        if not gl.has_writer:  # the fast path: no writer, the lock is ours
            gl._co_readers[co.oid] = gl._co_readers.get(co.oid, 0) + 1
            return
        # A writer is active: back out, kick it, and sleep until wrunlock wakes us.
        gl.reader_counts[ctx.name] -= 1
        gl._log()
        yield Note(f"has_writer: {co.name} sleeps")
        yield aio_wait_kick()
        yield from gl.queue.wait()  # qemu_co_queue_wait(&reader_queue, NULL)


@no_tsa
@releases_shared("graph_lock")
def bdrv_graph_co_rdunlock():
    """``yield from bdrv_graph_co_rdunlock()``: drop the read lock; kick the writer if
    ``has_writer`` is set (the 2023 code; ``always_kick``: every time, as later code does)."""
    gl = get_graph_lock()
    co = current_coroutine(gl.sim)
    if co is None or gl._co_readers.get(co.oid, 0) == 0:
        raise MisuseError(
            f"{gl.sim.current.name} unlocked the graph lock, which it does not hold for reading"
        )
    ctx = gl._ctx_of(co)
    gl._co_readers[co.oid] -= 1
    gl.reader_counts[ctx.name] -= 1
    gl._log()
    yield Note(f"graph reader_count[{ctx.name}]--")
    if gl.has_writer or gl.always_kick:  # 2023: only if has_writer; later code: always
        yield aio_wait_kick()


@no_tsa
@acquires_shared("graph_lock")
def bdrv_graph_rdlock_main_loop():
    """The main loop's read "lock": the main loop is the only writer, so nothing to take; it is
    ``GLOBAL_STATE_CODE`` (here it also counts, for the TSA checks). QEMU also asserts that
    the caller is not a coroutine; the model does not check that."""
    GLOBAL_STATE_CODE()
    gl = get_graph_lock()
    me = gl.sim.current
    if current_coroutine_of(me) is None:
        me.local["graph_rdlock_main_loop"] = me.local.get("graph_rdlock_main_loop", 0) + 1
    yield Note("bdrv_graph_rdlock_main_loop (no-op)")


@no_tsa
@releases_shared("graph_lock")
def bdrv_graph_rdunlock_main_loop():
    """The placeholder's unlock: a no-op. It releases nothing a coroutine holds."""
    GLOBAL_STATE_CODE()
    gl = get_graph_lock()
    me = gl.sim.current
    if current_coroutine_of(me) is None and me.local.get("graph_rdlock_main_loop", 0) > 0:
        me.local["graph_rdlock_main_loop"] -= 1
    yield Note("bdrv_graph_rdunlock_main_loop (no-op)")


# -- the write side ----------------------------------------------------------------------------


def poll_main_while(
    gl: BdrvGraphLock, cond: Callable[[], bool], waiting_for: Callable[[], list[Thread]]
):
    """Poll the main loop while ``cond()``: QEMU's ``AIO_WAIT_WHILE_UNLOCKED(NULL, cond)`` in
    the main loop, counted in ``num_waiters`` so that ``aio_wait_kick()`` wakes it. The model's
    own function (QEMU has no such name): ``waiting_for()`` tells the deadlock detector whose
    work this thread waits for (saved and restored, so nested polls report their own)."""
    validate.instance("gl", gl, BdrvGraphLock, kind="a BdrvGraphLock")
    validate.function("cond", cond)
    validate.function("waiting_for", waiting_for)
    ctx = gl.main_ctx
    waits = aio_wait(gl.sim)  # AIO_WAIT_WHILE_UNLOCKED: count this thread as a waiter
    waits.num_waiters += 1
    try:
        while cond():
            saved = ctx.waiting_for
            ctx.waiting_for = waiting_for()
            try:
                yield aio_poll(ctx, True)
            finally:
                ctx.waiting_for = saved
    finally:
        waits.num_waiters -= 1


def _reader_threads(gl: BdrvGraphLock) -> list[Thread]:
    return [c.home for c in gl.contexts if gl.reader_counts.get(c.name, 0) > 0 and c.home]


@no_tsa
@acquires("graph_lock")
def bdrv_graph_wrlock(bs: Any = None):
    """``yield from bdrv_graph_wrlock(bs)``: main loop + BQL only. Drain without polling, wait
    (polling) until no reader is left, with ``has_writer`` clear while it polls, then end the
    drain and return holding the lock. ``bs``: the node whose AioContext lock the caller holds
    (QEMU's signature from June 2023 until the AioContext lock was removed): that lock is
    released (once) while the writer works and taken again before it returns. ``None`` (QEMU
    8.0, which took no argument) keeps any context lock the caller holds, polling with it held
    (D8). QEMU's argument is a ``BlockDriverState``; the model takes any node of its own,
    chapter 6 passes the ``BlockBackend``, whose context is its nodes'."""
    GLOBAL_STATE_CODE()
    gl = get_graph_lock()
    me = gl.sim.current
    start = gl.sim.now
    ctx = bs.ctx if bs is not None and bs.ctx is not gl.main_ctx else None
    if ctx is not None and ctx.lock is not None:
        yield aio_context_release(ctx)  # 2023: let the IOThread run while we poll
    gl.wants_write = me
    if gl.drain_first:  # bdrv_drain_all_begin_nopoll: no new requests may start
        for node in gl.nodes:
            node.quiesce_counter += 1
        yield Note("bdrv_drain_all_begin_nopoll")
    while True:
        gl.has_writer = 1 if gl.d6_bug else 0
        gl._log()
        yield Note(f"has_writer = {gl.has_writer}; poll until no readers")
        yield from poll_main_while(gl, lambda: gl.reader_count() > 0, lambda: _reader_threads(gl))
        gl.has_writer = 1
        gl._log()
        yield Note("has_writer = 1")
        if gl.reader_count() == 0:  # nobody sneaked in between the poll and the flag
            break
    gl.writer = me
    gl.wants_write = None
    gl.writer_waits.append(gl.sim.now - start)
    if gl.drain_first:  # bdrv_drain_all_end: new requests start, and wait on has_writer
        yield Note("bdrv_drain_all_end")
        for node in gl.nodes:
            yield from node.drained_end()
    if ctx is not None and ctx.lock is not None:
        yield aio_context_acquire(ctx, "bdrv_graph_wrlock")
    yield Note("graph write-locked")


@no_tsa
@releases("graph_lock")
def bdrv_graph_wrunlock():
    """Clear ``has_writer`` and wake every sleeping reader, then run the main context's
    pending BHs (one non-blocking ``aio_poll`` pass; QEMU runs only the BHs). It ends no drain:
    ``bdrv_graph_wrlock`` already did."""
    GLOBAL_STATE_CODE()
    gl = get_graph_lock()
    if gl.writer is not gl.sim.current:
        raise MisuseError(
            f"{gl.sim.current.name} called bdrv_graph_wrunlock without holding "
            f"the graph lock for writing"
        )
    gl.has_writer = 0
    gl.writer = None
    gl._log()
    yield Note("has_writer = 0; wake readers")
    yield from gl.queue.restart_all()
    yield aio_poll(gl.main_ctx, False)  # then the BHs scheduled during the write section


# -- drained sections --------------------------------------------------------------------------


class DrainableNode(BlockDriverState):
    """A ``BlockDriverState`` whose requests, while it is drained, wait in a ``CoQueue`` and
    are restarted when the last drained section ends (``blk_wait_while_drained``)."""

    def __init__(self, sim: Simulation, name: str, ctx: AioContext):
        super().__init__(sim, name, ctx)
        self.queued = CoQueue(sim, f"{name}.queued_requests")

    def _repr_state(self) -> list[str]:
        return [*super()._repr_state(), f"queued:{len(self.queued)}"]

    def wait_while_drained(self):
        """``yield from bs.wait_while_drained()`` in a request coroutine."""
        while self.quiesce_counter > 0:
            yield from self.queued.wait()

    def drained_end(self):
        """``yield from bs.drained_end()``: end one drained section; restart queued requests."""
        self.quiesce_counter -= 1
        if self.quiesce_counter == 0:
            yield from self.queued.restart_all()


@GRAPH_UNLOCKED
def bdrv_drained_begin(bs: DrainableNode):
    """``yield from bdrv_drained_begin(bs)``: stop new requests, then poll until none is in
    flight. It polls, so it is ``GRAPH_UNLOCKED``: never call it holding the graph lock (D7).
    ``IO_OR_GS_CODE``, as in QEMU."""
    validate.instance("bs", bs, DrainableNode, kind="a DrainableNode")
    IO_OR_GS_CODE()
    yield Note(f"bdrv_drained_begin({bs.name})")
    yield from bs.drained_begin()


def bdrv_drained_end(bs: DrainableNode):
    """``yield from bdrv_drained_end(bs)``."""
    validate.instance("bs", bs, DrainableNode, kind="a DrainableNode")
    yield Note(f"bdrv_drained_end({bs.name})")
    yield from bs.drained_end()


__all__ = [
    "GLOBAL_STATE_CODE",
    "GRAPH_RDLOCK",
    "GRAPH_UNLOCKED",
    "GRAPH_WRLOCK",
    "IO_CODE",
    "IO_OR_GS_CODE",
    "BdrvGraphLock",
    "DrainableNode",
    "bdrv_drained_begin",
    "bdrv_drained_end",
    "bdrv_graph_co_rdlock",
    "bdrv_graph_co_rdunlock",
    "bdrv_graph_rdlock_main_loop",
    "bdrv_graph_rdunlock_main_loop",
    "bdrv_graph_wrlock",
    "bdrv_graph_wrunlock",
    "get_graph_lock",
    "poll_main_while",
    "qemu_in_main_thread",
]
