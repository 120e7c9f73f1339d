"""IOThreads and the AioContext lock (2013-2023): one event loop per thread, one lock per loop.

An IOThread runs its own ``AioContext``; until QEMU 9.0 every context had a lock that handlers
(and the monitor's ``info block``) took before touching the block nodes of that context
(``aio_context_acquire``/``aio_context_release``). This module is the one home of that lock in
every era (``CONTEXT_LOCK_KINDS``): the 2013 recursive FIFO lock whose contention callback kicks
its owner out of ``aio_poll`` (``"rfifo"``), the 2017 recursive mutex (``"rec"``), the empty
functions of late 2023 (``"noop"``), and no lock at all in QEMU 9.0 (``None``). While the loop
itself held the lock, the ``IOThread`` runs one of two loops (``LOOP_YEARS``): the 2014 loop,
which kept the lock while it slept in ``aio_poll`` and so needed the kick, and the 2015 one,
where ``aio_poll`` let go of it around the wait. ``qemu_get_aio_context`` (from
``labsupport.loop``) is the one way to get the main loop's context.

Layer 4 (QEMU models).
"""

from __future__ import annotations

from .. import validate
from ..kernel import BLOCKED, MisuseError, Note, Simulation, compute, state_repr
from ..loop import (
    AioContext,
    aio_poll,
    qemu_get_aio_context,  # noqa: F401  (lives in the loop layer; re-exported here)
)
from ..sync import QemuRecMutex, RFifoLock
from .bql import BQL, ProfiledLock, RetakeAt

# --------------------------------------------------------------------------------------------
# IOThreads and the AioContext lock (2013-2023), block nodes and drained sections.


#: The AioContext lock of each era, for ``aio_context_new_lock`` and ``IOThread(lock_kind=)``:
#: "rfifo" (2013), "rec" (2017), "noop" (November 2023: the calls kept, the bodies empty);
#: ``None`` is QEMU 9.0, where contexts have no lock and the calls are gone.
CONTEXT_LOCK_KINDS = ("rfifo", "rec", "noop")


class NoopContextLock:
    """The AioContext lock after November 2023: ``aio_context_acquire`` and
    ``aio_context_release`` were still called but did nothing, one step before their callers
    were deleted. Each call leaves a note in the trace, so it stays visible."""

    kind = "noop"

    def __init__(self, ctx: AioContext):
        validate.instance("ctx", ctx, AioContext, kind="an AioContext")
        self.ctx = ctx

    def lock(self, site: str = "?") -> Note:
        return Note(f"aio_context_acquire({self.ctx.name}): no-op")

    def unlock(self) -> Note:
        return Note(f"aio_context_release({self.ctx.name}): no-op")

    def __repr__(self) -> str:
        return state_repr(self, "no-op", f"ctx {self.ctx.name}", name=f"{self.ctx.name}.ctx")


def aio_context_new_lock(ctx: AioContext, kind: str = "rfifo") -> ProfiledLock | NoopContextLock:
    """Give ``ctx`` its lock: ``"rfifo"`` (2013: recursive, FIFO, kicks the owner out of
    ``aio_poll``), ``"rec"`` (2017: a plain ``QemuRecMutex``) or ``"noop"`` (late 2023: empty
    calls). Every real context lock is one lock class, ``AioContext``, for the lock-order
    validator."""
    validate.instance("ctx", ctx, AioContext, kind="an AioContext")
    if kind == "rfifo":
        mutex = RFifoLock(
            ctx.sim,
            f"{ctx.name}.ctx",
            lock_class="AioContext",
            on_contention=lambda t: ctx.notify_now(),
        )
    elif kind == "rec":
        mutex = QemuRecMutex(ctx.sim, f"{ctx.name}.ctx", lock_class="AioContext")
    elif kind == "noop":
        ctx.lock = NoopContextLock(ctx)
        return ctx.lock
    else:
        raise ValueError(
            f"an AioContext lock is 'rfifo' (2013), 'rec' (2017) or 'noop' (2023); got {kind!r}"
        )
    mutex.role = f"{ctx.name}'s AioContext lock"  # what a deadlock report calls it
    ctx.lock = ProfiledLock(mutex, ctx)
    return ctx.lock


def aio_context_acquire(ctx: AioContext, site: str = "?"):
    """``yield aio_context_acquire(ctx, site)``: take the context's (recursive) lock; in late
    2023 an empty call. A context without a lock (QEMU 9.0) refuses: the call is gone."""
    validate.instance("ctx", ctx, AioContext, kind="an AioContext")
    validate.label("site", site)
    if ctx.lock is None:
        raise MisuseError(
            f"AioContext {ctx.name} has no lock (give it one with "
            f"aio_context_new_lock, or this era has none)"
        )
    return ctx.lock.lock(site)


def aio_context_release(ctx: AioContext):
    """``yield aio_context_release(ctx)``."""
    validate.instance("ctx", ctx, AioContext, kind="an AioContext")
    if ctx.lock is None:
        raise MisuseError(f"AioContext {ctx.name} has no lock to release (this era has none)")
    return ctx.lock.unlock()


#: The IOThread loops the model runs (``IOThread(loop_year=...)``) while the loop holds the lock.
LOOP_YEARS = (2014, 2015)


class IOThread:
    """``-object iothread,id=NAME``: a thread that runs its own AioContext's loop.

    ``lock_kind`` is the context lock of the era (``CONTEXT_LOCK_KINDS``, or None for none).
    ``loop_holds_lock=True`` is the lock years' design: the loop holds the context lock while
    it dispatches, so every handler runs under it. ``loop_year`` says how it holds it:

    - ``2014``: ``iothread_run()`` as first added takes the lock, calls the blocking
      ``aio_poll`` again and again while it makes progress, and releases the lock only when a
      poll returns without progress. The lock stays held while the thread sleeps in ``poll()``,
      so a thread that wants it depends on the ``RFifoLock``'s contention callback: the callback
      notifies the context, the sleeping poll returns with nothing done, the loop releases the
      lock, and the FIFO lock goes to the waiter (the trace shows "contention callback" in the
      waiter, then "aio_poll: no progress" in the IOThread). Without the callback the waiter
      waits until the poll returns for some other reason.
    - ``2015`` (the default): the lock is released around the wait inside ``aio_poll``, as
      the 2015 rework of ``aio_poll`` did, so a waiter never has to wake the loop. Where the
      model differs from QEMU: QEMU's ``aio_poll`` released the lock only when its timeout was
      non-zero (a wait that may block); the model's ``aio_poll(..., drop=...)`` releases and
      retakes it around every poll, including one that finds work ready at once. ``drop`` is
      the model's argument (QEMU's ``aio_poll(ctx, blocking)`` has none): it names the lock
      the poll lets go of.

    With ``loop_holds_lock=False`` (2017) the loop takes no lock and each handler takes it
    itself; ``loop_year`` does not apply and must stay 2015. A loop never holds an empty
    ("noop") lock.
    """

    def __init__(
        self,
        sim: Simulation,
        name: str,
        lock_kind: str | None = "rfifo",
        loop_holds_lock: bool = True,
        loop_year: int = 2015,
    ):
        validate.instance("sim", sim, Simulation, kind="a Simulation")
        validate.label("name", name)
        if lock_kind is not None:
            validate.choice("lock_kind", lock_kind, CONTEXT_LOCK_KINDS + (None,))
        validate.flag("loop_holds_lock", loop_holds_lock)
        validate.choice("loop_year", loop_year, LOOP_YEARS)
        if loop_year == 2014 and not (loop_holds_lock and lock_kind in ("rfifo", "rec")):
            raise ValueError(
                "loop_year=2014 is a loop that holds its context lock across the wait: it "
                "needs loop_holds_lock=True and a real lock (lock_kind 'rfifo' or 'rec')"
            )
        self.sim = sim
        self.name = name
        self.ctx = AioContext(sim, name)
        self.lock = aio_context_new_lock(self.ctx, lock_kind) if lock_kind else None
        self.loop_holds_lock = loop_holds_lock and isinstance(self.lock, ProfiledLock)
        self.loop_year = loop_year
        self.thread = sim.spawn(name, self._run, daemon=True)
        self.ctx.home = self.thread

    def __repr__(self) -> str:
        t = self.thread
        if t.state == BLOCKED and t.blocked_on is self.ctx:
            doing = "asleep in aio_poll"
        elif t.state == BLOCKED and t.blocked_on is not None:
            doing = f"blocked on {t.blocked_on.name}"
        else:
            doing = t.state
        if self.lock is None:
            lock = "no lock"
        elif isinstance(self.lock, NoopContextLock):
            lock = "no-op lock"
        else:
            lock = f"{type(self.lock.mutex).__name__} {self.lock.mutex.state_text()}"
        return state_repr(self, doing, f"ctx {self.ctx.name}", lock)

    def _run(self):
        while True:
            if self.loop_holds_lock and self.loop_year == 2014:
                yield self.lock.lock("iothread: iothread_run")
                while (yield aio_poll(self.ctx, True)):  # asleep in poll() with the lock held
                    pass  # progress was made: poll again, still holding it
                yield Note("aio_poll: no progress")  # woken with nothing to do (a kick, say)
                yield self.lock.unlock()
            elif self.loop_holds_lock:
                yield self.lock.lock("iothread: aio_poll")
                yield aio_poll(self.ctx, True, drop=RetakeAt(self.lock, "iothread: aio_poll"))
                yield self.lock.unlock()
            else:
                yield aio_poll(self.ctx, True)


def iothread_get_aio_context(iothread: IOThread) -> AioContext:
    """The AioContext an IOThread runs (QEMU: ``iothread_get_aio_context``)."""
    validate.instance("iothread", iothread, IOThread, kind="an IOThread")
    return iothread.ctx


def info_block(bql: BQL, contexts: list[AioContext], cost_us: float = 20.0):
    """The monitor's ``info block``: with the BQL held, take each device's AioContext lock in
    turn to read its state. Returns how long the command took (us)."""
    validate.instance("bql", bql, ProfiledLock, kind="the BQL")
    contexts = validate.items("contexts", contexts, kind="a list of AioContexts")
    for ctx in contexts:
        validate.instance("contexts", ctx, AioContext, kind="a list of AioContexts")
    validate.duration("cost_us", cost_us)
    sim = bql.sim
    start = sim.now
    yield bql.lock("monitor: info block")
    for ctx in contexts:
        yield aio_context_acquire(ctx, "monitor: info block")
        yield compute(cost_us)
        yield aio_context_release(ctx)
    yield bql.unlock()
    return sim.now - start
