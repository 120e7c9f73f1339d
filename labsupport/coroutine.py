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
from . import validate
from .kernel import MisuseError, Op, Simulation, Step, Thread, WaitSource, state_repr
from .loop import QEMUBH, AioContext, _current_context

_YIELD = object()


def qemu_coroutine_yield() -> Any:
    """``yield qemu_coroutine_yield()`` inside a coroutine: stop here until someone wakes it."""
    return _YIELD


class Coroutine:
    """A coroutine and its state: created, running (in which thread), yielded, or done."""

    kind = "coroutine"

    def __init__(self, sim: Simulation, fn: Callable[..., Any], *args: Any, name: str = ""):
        validate.instance("sim", sim, Simulation, kind="a Simulation")
        validate.function("fn", fn, kind="a generator function")
        validate.instance("name", name, str, kind="a string (empty: the function's name)")
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
        # For the wait-for graph (``_CoroutineWaits``): where it is parked, what it holds.
        self.held: list[CoMutex] = []  # the CoMutexes it holds
        #: thread locks it took and still holds across its yield: (lock, owning thread)
        self.thread_locks: list[tuple[Any, Thread]] = []
        self.sent_bhs: list[QEMUBH] = []  # bottom halves it scheduled, not yet run
        self.last_thread: Thread | None = None  # the thread it ran in last

    # How the wait-for graph and its reports see a coroutine (see kernel.WaitSource).
    @property
    def parked_on(self) -> CoMutex | CoQueue | None:
        """The CoMutex or CoQueue in whose queue it waits, if any."""
        return _waits(self.sim).where(self) if self.state != "done" else None

    @property
    def title(self) -> str:
        """``coroutine req1 in iothread0``: its name and the thread it runs in (its context's
        home thread, or the one it ran in last)."""
        home = self.ctx.home if self.ctx is not None and self.ctx.home is not None else None
        where = home or self.thread or self.last_thread
        return f"coroutine {self.name}" + (f" in {where.name}" if where is not None else "")

    def wait_label(self) -> str:
        if self.parked_on is not None:
            return self.parked_on.label()
        return "someone to wake it (it yielded)"

    def wait_reason(self) -> str:
        return "nothing is left to wake it"

    def held_labels(self) -> list[str]:
        out = [m.label() for m in self.held]
        out += [f"{lock.label()} (across a yield)" for lock, _t in self.thread_locks]
        return out

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
    validate.instance("sim", sim, Simulation, kind="a Simulation")
    t = sim.current
    stack = t.local.get("coroutines") if t is not None else None
    return stack[-1] if stack else None


def qemu_coroutine_enter(co: Coroutine):
    """``yield qemu_coroutine_enter(co)``: run ``co`` in this thread until it yields or ends."""
    validate.instance("co", co, Coroutine, kind="a Coroutine")
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
    co.last_thread = me
    entry_held = list(me.held)  # what it takes from here on, it holds itself
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
                _note_yield(co, me, entry_held)
                sim.record(tb.OP, me.tid, sim.label("note", f"{co.name} yields"), None)
                return None
            if hasattr(item, "send") and hasattr(item, "throw"):
                co._stack.append(item)
                value = None
                continue
            if item.__class__ is Step and isinstance(getattr(item.fn, "__self__", None), QEMUBH):
                co.sent_bhs.append(item.fn.__self__)  # qemu_bh_schedule: it may wait for it
            try:
                value = yield item  # an operation: the kernel runs it in this thread
            except Exception as e:  # noqa: BLE001
                value, exc = None, e
    finally:
        stack.pop()
        if co.state != "running":
            co.thread = None
        if co.state == "done" and co.thread_locks:
            co.thread_locks = []
            _waits(sim).holding.pop(co.oid, None)


def _note_yield(co: Coroutine, me: Thread, entry_held: list[Any]) -> None:
    """At a yield: which thread locks ``co`` keeps across it, and which of the bottom halves it
    scheduled are still pending (each may be what it waits for)."""
    kept = [(lock, t) for lock, t in co.thread_locks if lock in t.held]
    kept += [(lock, me) for lock in me.held if not any(lock is e for e in entry_held)]
    if kept or co.thread_locks:
        co.thread_locks = kept
        holding = _waits(co.sim).holding
        if kept:
            holding[co.oid] = co
        else:
            holding.pop(co.oid, None)
    if co.sent_bhs:
        co.sent_bhs = [bh for bh in co.sent_bhs if bh.scheduled]


def aio_co_schedule(ctx: AioContext, co: Coroutine) -> Op:
    """``yield aio_co_schedule(ctx, co)``: enter ``co`` in ``ctx``'s thread, soon.

    As in QEMU, ``co`` joins the context's list of scheduled coroutines and the context's one
    ``co_schedule_bh`` is scheduled; that BH enters them oldest first. Scheduling a coroutine
    that is already scheduled is an error, as in QEMU.
    """
    validate.instance("ctx", ctx, AioContext, kind="an AioContext")
    validate.instance("co", co, Coroutine, kind="a Coroutine")

    def do(t: Thread) -> bool:
        if co.scheduled:
            raise MisuseError(
                f"{t.name} scheduled coroutine {co.name} in {ctx.name}, but it is already "
                f"scheduled: it would run twice"
            )
        co.scheduled = True
        co.ctx = ctx
        ctx.scheduled_coroutines.append(co)
        if ctx.co_schedule_bh is None:
            ctx.co_schedule_bh = ctx.bh_new(lambda: _co_schedule_bh_cb(ctx), "co_schedule_bh")
        return ctx.co_schedule_bh._do_schedule(t)

    return Step(do)


def _co_schedule_bh_cb(ctx: AioContext):
    """Enter the coroutines scheduled so far, oldest first; later ones wait for the next run."""
    batch = list(ctx.scheduled_coroutines)
    ctx.scheduled_coroutines.clear()
    for co in batch:
        co.scheduled = False
        yield from qemu_coroutine_enter(co)  # which notes "enter <co>" in the trace


def aio_co_enter(ctx: AioContext, co: Coroutine):
    """``yield aio_co_enter(ctx, co)``: enter now if this is ``ctx``'s thread, else schedule.

    Where the model differs from QEMU: from 2017 to 2023 QEMU's ``aio_co_enter`` took ``ctx``'s
    AioContext lock around a direct entry (and ``co_schedule_bh`` took it around each scheduled
    one); this one takes no lock, whatever the context, and a coroutine that needs its
    context's lock takes it itself. QEMU also queues a coroutine entered from inside another
    coroutine of the same context (``co_queue_wakeup``, entered when the current one yields);
    here it is entered at once.
    """
    validate.instance("ctx", ctx, AioContext, kind="an AioContext")
    validate.instance("co", co, Coroutine, kind="a Coroutine")
    co.ctx = ctx
    if ctx.home is co.sim.current:
        yield from qemu_coroutine_enter(co)
    else:
        yield aio_co_schedule(ctx, co)


def aio_co_wake(co: Coroutine):
    """``yield aio_co_wake(co)``: resume a yielded coroutine in its own AioContext."""
    validate.instance("co", co, Coroutine, kind="a Coroutine")
    if co.ctx is None:
        raise MisuseError(f"coroutine {co.name} has no AioContext yet; enter it with aio_co_enter")
    yield from aio_co_enter(co.ctx, co)


class CoMutex:
    """A mutex for coroutines (QEMU: ``CoMutex``, ``util/qemu-coroutine-lock.c``): a coroutine
    that waits yields its thread instead of blocking it.

    ``lock`` takes the mutex if it is free. If it is not, and one coroutine holds it with nobody
    queued yet, it first **spins**, as ``qemu_co_mutex_lock()`` does: up to
    ``spin_iterations`` checks (QEMU's loop stops at 1000), each costing ``spin_iteration_us``
    of CPU, taking the mutex at once if it comes free. It stops spinning early when the mutex
    belongs to a coroutine of its own AioContext (the holder, or the one it is being handed to):
    that one cannot run while its thread spins. Then it queues and yields. How long one
    iteration takes is a model parameter (QEMU's loop body is a ``cpu_relax()`` and two reads,
    whose cost depends on the host CPU); ``spin_iterations=0`` turns the spin off.

    ``unlock`` hands the mutex to the first queued coroutine (arrival order); it is that
    coroutine's before it runs again, so until it does, every other taker waits too. A waiter
    of another AioContext is woken with ``aio_co_wake``: a trip through that context's
    ``co_schedule_bh``. A waiter of the unlocker's own context is, with ``wakeup_queue=True``
    (QEMU), not entered at once: QEMU's ``aio_co_enter`` called from a coroutine puts it on that
    coroutine's ``co_queue_wakeup``, and it runs when the unlocker yields or ends.

    Where the model differs from QEMU: the engine's ``qemu_coroutine_enter`` keeps no
    ``co_queue_wakeup``. A coroutine takes part by having one (``co.co_queue_wakeup = deque()``)
    and running ``CoMutex.run_wakeups(co)`` just before each of its yields and before it ends
    (``lock`` does so before it waits); the woken coroutines then run at the moment QEMU would
    run them, only entered from inside the unlocker rather than after it. For a coroutine
    without one, a waiter of its own context is entered at once, as ``aio_co_wake`` does.

    The hand-over's costs are nothing here; a subclass gives them with ``_handoff`` (the
    unlocker's side, before the wake) and ``_woken`` (the waiter's, once it runs again), as
    ``labsupport.qemu.multiqueue.ReqsCoMutex`` does. Counters: ``spins`` (takers that spun),
    ``spin_acquired`` (of them, those that got it spinning), ``spin_us`` (CPU spent spinning),
    ``handoffs``, ``cross_context_wakes``, ``queued_wakes`` (put on a ``co_queue_wakeup``),
    ``handoff_us`` (time the mutex belonged to a woken coroutine that had not yet run again)
    and ``cross_handoff_us`` (the part of it spent on hand-overs to another context).
    """

    kind = "co-mutex"
    #: how many spin iterations one simulated step covers: the model looks at the mutex every
    #: ``SPIN_STEP`` iterations, where QEMU looks at every one
    SPIN_STEP = 10

    def __init__(
        self,
        sim: Simulation,
        name: str,
        *,
        spin_iterations: int = 1000,
        spin_iteration_us: float = 0.005,
        wakeup_queue: bool = True,
    ):
        validate.instance("sim", sim, Simulation, kind="a Simulation")
        validate.label("name", name)
        validate.whole("spin_iterations", spin_iterations, 0, 1_000_000, verb="is")
        validate.duration("spin_iteration_us", spin_iteration_us)
        validate.flag("wakeup_queue", wakeup_queue)
        self.sim = sim
        self.name = name
        self.spin_iterations = spin_iterations
        self.spin_iteration_us = spin_iteration_us
        self.wakeup_queue = wakeup_queue
        self.holder: Coroutine | None = None
        self.waiters: deque[Coroutine] = deque()
        #: QEMU's ``mutex->ctx``: the holder's AioContext, or the next holder's during a hand-over
        self.ctx: AioContext | None = None
        self.spins = self.spin_acquired = 0
        self.spin_us = 0.0
        self.handoffs = self.cross_context_wakes = self.queued_wakes = 0
        self.handoff_us = self.cross_handoff_us = 0.0
        self._handed_at: dict[int, tuple[float, bool]] = {}
        self.oid = sim.register(self)
        _waits(sim).queues.append(self)  # its waiters are nodes of the wait-for graph

    @staticmethod
    def _context_of(thread: Thread | None) -> AioContext | None:
        """The AioContext whose loop ``thread`` runs (QEMU: ``qemu_get_current_aio_context``)."""
        return _current_context(thread) if thread is not None else None

    @staticmethod
    def _spin_op(us: float) -> Op:
        from .kernel import compute

        return compute(us)

    def _take(self, me: Coroutine, ctx: AioContext | None) -> None:
        self.holder = me
        self.ctx = ctx
        me.held.append(self)
        self.sim.record(tb.ACQUIRE, self.sim.current.tid, self.oid, 1)

    def lock(self):
        """``yield mutex.lock()`` in a coroutine (``qemu_co_mutex_lock``)."""
        sim = self.sim
        me = current_coroutine(sim)
        if me is None:
            raise MisuseError(f"{sim.current.name} took CoMutex {self.name} outside a coroutine")
        if self.holder is me:
            raise MisuseError(f"coroutine {me.name} took CoMutex {self.name} twice")
        ctx = self._context_of(sim.current)
        if self.holder is None:
            self._take(me, ctx)
            return
        # Held. If nobody is queued yet (QEMU looks once, at its first try), spin first.
        done = 0 if not self.waiters else self.spin_iterations
        while done < self.spin_iterations:
            if ctx is not None and self.ctx is ctx:
                break
            if not done:
                self.spins += 1
            n = min(self.SPIN_STEP, self.spin_iterations - done)
            yield self._spin_op(n * self.spin_iteration_us)
            done += n
            self.spin_us += n * self.spin_iteration_us
            if self.holder is None:  # it came free: the fast path again
                self.spin_acquired += 1
                self._take(me, ctx)
                return
        self.waiters.append(me)
        sim.record(tb.BLOCK, sim.current.tid, self.oid, -1)
        _park(me, self)
        yield from CoMutex.run_wakeups(me)  # it is about to yield
        yield qemu_coroutine_yield()
        # unlock() made us the holder before waking us
        sim.record(tb.ACQUIRE, sim.current.tid, self.oid, 1)
        yield from self._woken(me)
        handed = self._handed_at.pop(me.oid, None)
        if handed is not None:
            self.handoff_us += sim.now - handed[0]
            if handed[1]:
                self.cross_handoff_us += sim.now - handed[0]

    def unlock(self):
        """``yield mutex.unlock()`` (``qemu_co_mutex_unlock``): hand it to the next waiter."""
        sim = self.sim
        me = current_coroutine(sim)
        if self.holder is not me or me is None:
            who = self.holder.name if self.holder else "nobody"
            raise MisuseError(
                f"{me.name if me else sim.current.name} unlocked CoMutex {self.name}, which "
                f"{who} holds"
            )
        sim.record(tb.RELEASE, sim.current.tid, self.oid, 0)
        me.held.remove(self)
        if not self.waiters:
            self.holder = self.ctx = None
            return
        self.holder = nxt = self.waiters.popleft()
        nxt.held.append(self)
        self.ctx = nxt.ctx
        self.handoffs += 1
        same = nxt.ctx is not None and nxt.ctx.home is sim.current  # a waiter of this context
        self._handed_at[nxt.oid] = (sim.now, not same)
        if same:
            queue = getattr(me, "co_queue_wakeup", None)
            if self.wakeup_queue and queue is not None:
                self.queued_wakes += 1
                queue.append(nxt)  # it runs when this coroutine yields or ends
                return
        else:
            self.cross_context_wakes += 1
            yield from self._handoff(nxt)
        yield from aio_co_wake(nxt)

    @staticmethod
    def run_wakeups(co: Coroutine):
        """``yield from CoMutex.run_wakeups(co)``: enter, in this thread, the coroutines ``co``
        woke in its own context (its ``co_queue_wakeup``), oldest first. A coroutine that keeps
        such a queue runs this just before each yield and before it ends."""
        queue = getattr(co, "co_queue_wakeup", None)
        while queue:
            yield from qemu_coroutine_enter(queue.popleft())

    def _handoff(self, nxt: Coroutine):
        """The unlocker's cost of waking ``nxt`` in another context (none here)."""
        return
        yield

    def _woken(self, me: Coroutine):
        """What a woken waiter pays once it runs again (none here)."""
        return
        yield

    def holders(self) -> list[Coroutine]:
        """Who must act before a waiter can go on: the holder (for the wait-for graph)."""
        return [self.holder] if self.holder is not None else []

    def label(self) -> str:
        return f"{self.kind} {self.name}"

    def __repr__(self) -> str:
        return state_repr(self, co_mutex_state(self))


class CoQueue:
    """Coroutines waiting for something (QEMU: ``CoQueue``): ``wait`` yields, ``next`` and
    ``restart_all`` wake them in their own contexts.

    For the wait-for graph, ``holders()`` (a function, optional) names whoever must act before
    a waiter is woken (the graph lock's writer, for its sleeping readers), and ``what`` says
    what the waiters wait for in a report (default ``"co-queue NAME"``). Without ``holders``
    nobody in particular is expected to wake them: waiters left at the end make the run stuck.
    """

    kind = "co-queue"

    def __init__(
        self,
        sim: Simulation,
        name: str,
        holders: Callable[[], list[Any]] | None = None,
        what: str | None = None,
    ):
        validate.instance("sim", sim, Simulation, kind="a Simulation")
        validate.label("name", name)
        if holders is not None:
            validate.function("holders", holders, kind="a function or None")
        if what is not None:
            validate.label("what", what)
        self.sim = sim
        self.name = name
        self.waiters: deque[Coroutine] = deque()
        self._holders = holders
        self.what = what
        _waits(sim).queues.append(self)  # its waiters are nodes of the wait-for graph

    def holders(self) -> list[Any]:
        """Who must act before a waiter is woken (for the wait-for graph), if anyone is known."""
        return list(self._holders()) if self._holders is not None else []

    def label(self) -> str:
        return self.what or f"{self.kind} {self.name}"

    def wait(self, mutex: CoMutex | None = None):
        """``yield queue.wait(m)``: drop ``m`` (if given), wait to be woken, take ``m`` again."""
        if mutex is not None:
            validate.instance("mutex", mutex, CoMutex, kind="a CoMutex or None")
        me = current_coroutine(self.sim)
        if me is None:
            raise MisuseError(
                f"{self.sim.current.name} waited on CoQueue {self.name} outside a coroutine"
            )
        self.waiters.append(me)
        _park(me, self)
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
        """``yield from queue.restart_all()`` (``qemu_co_queue_restart_all``): wake them all."""
        while self.waiters:
            yield from aio_co_wake(self.waiters.popleft())

    def __len__(self) -> int:
        return len(self.waiters)

    def __repr__(self) -> str:
        return state_repr(self, f"waiters:{len(self.waiters)}")


class _CoroutineWaits(WaitSource):
    """The coroutines of one simulation as nodes of the kernel's wait-for graph.

    A coroutine parked in a ``CoMutex``'s or a ``CoQueue``'s queue waits for the lock's
    holders (checked as it parks, as the kernel checks a thread as it blocks). A coroutine that
    has been woken and waits for its turn in an AioContext waits for that context's home
    thread; one that is running waits for the thread it runs in. Once nothing can move (the
    end of the run), three more edges hold:

    - a thread that owns a lock a yielded coroutine took in it (and still holds across the
      yield) can let go of it only once that coroutine is back: it waits for the coroutine;
    - a loop asleep in ``aio_poll`` with no work pending waits for the coroutines parked in its
      own context: they are the work it has left (what ``AIO_WAIT_WHILE`` waits for), unless
      they wait for that loop itself (a lost wake-up: stuck, not a cycle);
    - a yielded coroutine waits for the home thread of a context where a bottom half it
      scheduled before yielding is still pending (``bdrv_co_yield_to_drain``: the BH wakes it).
    """

    def __init__(self, sim: Simulation):
        self.sim = sim
        #: every CoMutex and CoQueue of the simulation: a coroutine in one's ``waiters`` is
        #: parked there (however it got in)
        self.queues: list[CoMutex | CoQueue] = []
        self.holding: dict[int, Coroutine] = {}  # coroutines holding thread locks across a yield
        sim.watch_waits(self)

    def waiting(self) -> list[Coroutine]:
        out = {co.oid: co for q in self.queues for co in q.waiters if co.state != "done"}
        return list(out.values())

    def where(self, co: Coroutine) -> CoMutex | CoQueue | None:
        """The queue ``co`` is parked in, if any."""
        return next((q for q in self.queues if co in q.waiters), None)

    def edges(self, node: Any, settled: bool) -> list[tuple[Any, str, str]]:
        if isinstance(node, Thread):
            return self._thread_edges(node) if settled else []
        co = node
        if not isinstance(co, Coroutine) or co.state == "done":
            return []
        on = co.parked_on
        if on is not None:
            return [(h, on.label(), "held by") for h in on.holders()]
        if co.state == "running" and co.thread is not None:
            return [(co.thread, "the thread it runs in", "which is")]
        ctx = co.ctx
        if co.scheduled and ctx is not None and ctx.home is not None:
            return [(ctx.home, f"its turn in AioContext {ctx.name} (woken)", "to be run by")]
        if not settled:
            return []
        return [
            (
                bh.ctx.home,
                f"bottom half {bh.name} in AioContext {bh.ctx.name} (it scheduled it and yielded)",
                "to be run by",
            )
            for bh in co.sent_bhs
            if bh.scheduled and bh.ctx.home is not None
        ]

    def _thread_edges(self, t: Thread) -> list[tuple[Any, str, str]]:
        out: list[tuple[Any, str, str]] = []
        for co in self.holding.values():
            if co.state != "yielded":
                continue
            mine = [lock for lock, owner in co.thread_locks if owner is t and lock in t.held]
            if mine:
                what = " and ".join(lock.label() for lock in mine)
                out.append(
                    (
                        co,
                        f"the release of {what} (taken in {t.name} by a coroutine that "
                        f"yielded holding it)",
                        "held by",
                    )
                )
        on = t.blocked_on
        if isinstance(on, AioContext) and on.home is t and not on.waiting_for and not on.pending():
            for co in self.waiting():
                ours = co.ctx is on or (co.ctx is None and co.last_thread is t)
                # one that waits for this very loop to wake it is a lost wake-up, not a cycle
                if ours and t not in co.parked_on.holders():
                    out.append(
                        (
                            co,
                            f"the work left in AioContext {on.name} (asleep in aio_poll)",
                            "which is",
                        )
                    )
        return out


def _waits(sim: Simulation) -> _CoroutineWaits:
    """This simulation's coroutine nodes of the wait-for graph, made on first use."""
    return sim.extension("coroutine.waits", lambda: _CoroutineWaits(sim))


def _park(co: Coroutine, on: CoMutex | CoQueue) -> None:
    """``co`` has just joined ``on``'s queue: it is a node of the wait-for graph now, waiting
    for ``on``'s holders; check for a cycle through it, as the kernel does when a thread
    blocks."""
    co.sim.check_waits(co)


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
