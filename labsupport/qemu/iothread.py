"""IOThreads and the AioContext lock (2013-2023): one event loop per thread, one lock per loop.

An IOThread runs its own ``AioContext``; until QEMU 9.0 every context had a lock that handlers
(and the monitor's ``info block``) took before touching the block nodes of that context
(``aio_context_acquire``/``aio_context_release``). ``qemu_get_aio_context`` is the main loop's.

Layer 4 (QEMU models).
"""

from __future__ import annotations

from ..kernel import MisuseError, Simulation, compute
from ..loop import (
    AioContext,
    aio_poll,
)
from ..sync import QemuRecMutex, RFifoLock
from .bql import BQL, ProfiledLock, RetakeAt

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
                yield aio_poll(self.ctx, True, drop=RetakeAt(self.lock, "iothread: aio_poll"))
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
