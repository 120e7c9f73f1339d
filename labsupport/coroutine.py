"""Coroutines: functions that stop in the middle and go on later, perhaps in another thread.

QEMU's block layer runs each request as a coroutine (``util/qemu-coroutine.c``): it can wait for
the disk with ``qemu_coroutine_yield()`` without blocking the thread that runs it, and someone
resumes it later with ``aio_co_wake()``, in the AioContext it belongs to. A coroutine runs in
exactly one thread at a time, the thread that entered it; ``aio_co_schedule(ctx, co)`` hands it
to ``ctx``'s thread, as a one-shot bottom half. Entering a coroutine that is running, or
scheduling one that is already scheduled, is a bug that QEMU aborts on; here it is a
``MisuseError`` that names both parties (race R6 is about the first). ``CoMutex`` and ``CoQueue``
are the locks coroutines use: waiting on them yields the coroutine, not the thread.

A coroutine body is a generator. It yields operations as a thread does (``compute``, locks,
shared variables), plus ``qemu_coroutine_yield()``; a thread runs it with
``yield qemu_coroutine_enter(co)``. Layer 3 (event loop): imports the kernel, the primitives and
the loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from . import tracebuf as tb
from .kernel import MisuseError, Op, Simulation, Step, Thread, state_repr
from .loop import AioContext

_YIELD = object()


def qemu_coroutine_yield() -> Any:
    """``yield qemu_coroutine_yield()`` inside a coroutine: stop here until someone wakes it."""
    return _YIELD


class Coroutine:
    """A coroutine and its state: created, running (in which thread), yielded, or done."""

    kind = "coroutine"

    def __init__(self, sim: Simulation, fn: Callable[..., Any], *args: Any, name: str = ""):
        gen = fn(*args)
        if not hasattr(gen, "send"):
            raise TypeError(f"a coroutine body must be a generator function; {fn!r} is not")
        self.sim = sim
        self.name = name or getattr(fn, "__name__", "co")
        self._stack = [gen]
        self.state = "created"
        self.thread: Thread | None = None  # the thread running it, while it runs
        self.ctx: AioContext | None = None  # where aio_co_wake sends it
        self.scheduled = False
        self.result: Any = None
        self._value: Any = None
        self.oid = sim.register(self)

    def __repr__(self) -> str:
        where = f" in {self.thread.name}" if self.thread is not None else ""
        return state_repr(
            self,
            f"{self.state}{where}",
            f"ctx {self.ctx.name}" if self.ctx is not None else "",
            "scheduled" if self.scheduled else "",
        )


def current_coroutine(sim: Simulation) -> Coroutine | None:
    """The coroutine the current thread is running (``qemu_coroutine_self``), or None."""
    t = sim.current
    stack = t.local.get("coroutines") if t is not None else None
    return stack[-1] if stack else None


def qemu_coroutine_enter(co: Coroutine):
    """``yield qemu_coroutine_enter(co)``: run ``co`` in this thread until it yields or ends."""
    sim = co.sim
    me = sim.current
    if co.state == "running":
        raise MisuseError(
            f"{me.name} entered coroutine {co.name} while it is still running in "
            f"{co.thread.name}: a coroutine runs in one thread at a time (race R6)"
        )
    if co.state == "done":
        raise MisuseError(f"{me.name} entered coroutine {co.name}, which has already finished")
    co.state = "running"
    co.thread = me
    stack = me.local.setdefault("coroutines", [])
    stack.append(co)
    sim.record(tb.OP, me.tid, sim.label("note", f"enter {co.name}"), None)
    value, exc = co._value, None
    try:
        while True:
            gen = co._stack[-1]
            try:
                item = gen.throw(exc) if exc is not None else gen.send(value)
                exc = None
            except StopIteration as stop:
                co._stack.pop()
                if co._stack:
                    value = stop.value
                    continue
                co.state = "done"
                co.result = stop.value
                return stop.value
            except Exception as e:  # noqa: BLE001  (passed up the coroutine's own stack)
                co._stack.pop()
                if not co._stack:
                    co.state = "done"
                    raise
                exc = e
                continue
            if item is _YIELD:
                co.state = "yielded"
                co._value = None
                sim.record(tb.OP, me.tid, sim.label("note", f"{co.name} yields"), None)
                return None
            if hasattr(item, "send") and hasattr(item, "throw"):
                co._stack.append(item)
                value = None
                continue
            try:
                value = yield item  # an operation: the kernel runs it in this thread
            except Exception as e:  # noqa: BLE001
                value, exc = None, e
    finally:
        stack.pop()
        if co.state != "running":
            co.thread = None


def aio_co_schedule(ctx: AioContext, co: Coroutine) -> Op:
    """``yield aio_co_schedule(ctx, co)``: enter ``co`` in ``ctx``'s thread, soon (a one-shot BH).

    Scheduling a coroutine that is already scheduled is an error, as in QEMU.
    """

    def do(t: Thread) -> bool:
        if co.scheduled:
            raise MisuseError(
                f"{t.name} scheduled coroutine {co.name} in {ctx.name}, but it is already "
                f"scheduled: it would run twice"
            )
        co.scheduled = True
        co.ctx = ctx

        def entry():
            co.scheduled = False
            yield from qemu_coroutine_enter(co)

        return ctx.bh_schedule_oneshot(entry, name=f"co {co.name}")._execute(co.sim, t)

    return Step(do)


def aio_co_enter(ctx: AioContext, co: Coroutine):
    """``yield aio_co_enter(ctx, co)``: enter now if this is ``ctx``'s thread, else schedule."""
    co.ctx = ctx
    if ctx.home is co.sim.current:
        yield from qemu_coroutine_enter(co)
    else:
        yield aio_co_schedule(ctx, co)


def aio_co_wake(co: Coroutine):
    """``yield aio_co_wake(co)``: resume a yielded coroutine in its own AioContext."""
    if co.ctx is None:
        raise MisuseError(f"coroutine {co.name} has no AioContext yet; enter it with aio_co_enter")
    yield from aio_co_enter(co.ctx, co)


class CoMutex:
    """A mutex for coroutines (QEMU: ``CoMutex``): a coroutine that waits yields its thread.

    Handed over in arrival order; the next holder is woken with ``aio_co_wake``, so it resumes
    in its own AioContext, which costs a trip through that context's loop.
    """

    kind = "co-mutex"

    def __init__(self, sim: Simulation, name: str):
        self.sim = sim
        self.name = name
        self.holder: Coroutine | None = None
        self.waiters: deque[Coroutine] = deque()
        self.oid = sim.register(self)

    def lock(self):
        """``yield mutex.lock()`` in a coroutine (``qemu_co_mutex_lock``)."""
        sim = self.sim
        me = current_coroutine(sim)
        if me is None:
            raise MisuseError(f"{sim.current.name} took CoMutex {self.name} outside a coroutine")
        if self.holder is me:
            raise MisuseError(f"coroutine {me.name} took CoMutex {self.name} twice")
        if self.holder is None:
            self.holder = me
            sim.record(tb.ACQUIRE, sim.current.tid, self.oid, 1)
            return
        self.waiters.append(me)
        sim.record(tb.BLOCK, sim.current.tid, self.oid, -1)
        yield qemu_coroutine_yield()
        # unlock() made us the holder before waking us
        sim.record(tb.ACQUIRE, sim.current.tid, self.oid, 1)

    def unlock(self):
        """``yield mutex.unlock()`` (``qemu_co_mutex_unlock``): wake the next waiter, if any."""
        sim = self.sim
        me = current_coroutine(sim)
        if self.holder is not me or me is None:
            who = self.holder.name if self.holder else "nobody"
            raise MisuseError(
                f"{me.name if me else sim.current.name} unlocked CoMutex {self.name}, which "
                f"{who} holds"
            )
        sim.record(tb.RELEASE, sim.current.tid, self.oid, 0)
        if self.waiters:
            self.holder = self.waiters.popleft()
            yield from aio_co_wake(self.holder)
        else:
            self.holder = None

    def __repr__(self) -> str:
        return state_repr(self, co_mutex_state(self))


class CoQueue:
    """Coroutines waiting for something (QEMU: ``CoQueue``): ``wait`` yields, ``next`` and
    ``restart_all`` wake them in their own contexts."""

    kind = "co-queue"

    def __init__(self, sim: Simulation, name: str):
        self.sim = sim
        self.name = name
        self.waiters: deque[Coroutine] = deque()

    def wait(self, mutex: CoMutex | None = None):
        """``yield queue.wait(m)``: drop ``m`` (if given), wait to be woken, take ``m`` again."""
        me = current_coroutine(self.sim)
        if me is None:
            raise MisuseError(
                f"{self.sim.current.name} waited on CoQueue {self.name} outside a coroutine"
            )
        self.waiters.append(me)
        if mutex is not None:
            yield from mutex.unlock()
        yield qemu_coroutine_yield()
        if mutex is not None:
            yield from mutex.lock()

    def next(self):
        """``yield queue.next()``: wake the first waiter; returns whether there was one."""
        if not self.waiters:
            return False
        yield from aio_co_wake(self.waiters.popleft())
        return True

    def restart_all(self):
        while self.waiters:
            yield from aio_co_wake(self.waiters.popleft())

    def __len__(self) -> int:
        return len(self.waiters)

    def __repr__(self) -> str:
        return state_repr(self, f"waiters:{len(self.waiters)}")


def co_mutex_state(lock: Any) -> str:
    """A coroutine mutex's state for its repr (anything with ``holder`` and ``waiters``):
    ``locked by req0 in iothread0, waiters:1`` or ``unlocked``, as a thread mutex says it."""
    co, n = lock.holder, len(lock.waiters)
    if co is None:
        return f"unlocked, waiters:{n}" if n else "unlocked"
    where = f" in {co.thread.name}" if co.thread is not None else ""
    return f"locked by {co.name}{where}, waiters:{n}"


__all__ = [
    "CoMutex",
    "CoQueue",
    "Coroutine",
    "aio_co_enter",
    "aio_co_schedule",
    "aio_co_wake",
    "current_coroutine",
    "qemu_coroutine_enter",
    "qemu_coroutine_yield",
]
