"""The event loop: an AioContext that one thread polls and any thread can poke.

QEMU's main loop and every IOThread run the same kind of loop (``util/aio-posix.c``): sleep in
``poll()`` until a file descriptor is ready, a timer is due or another thread calls
``aio_notify()``; then run the handlers that are ready. Work is handed to a loop from other
threads as a *bottom half* (BH), a callback scheduled to run on the loop's next pass. Only the
loop's home thread may run ``aio_poll()``; any thread may schedule a BH or set an event
notifier. The ``notify_me`` handshake makes sure a notify that races with the loop going to
sleep is never lost; switch it off (``notify_me_handshake=False``) to see the lost wake-up.

Where the model differs from QEMU on purpose:

- The handshake is the 2015-2020 one: announce ``notify_me``, then look for work. Since 2020
  ``aio_poll`` computes its timeout first, then adds to ``notify_me``, then checks
  ``ctx->notified``, which ``aio_notify()`` always sets; both orders close the same window.
- QEMU's main loop is a glib main loop with the main AioContext attached as a source; here the
  main loop polls its context directly. Either way it drops the BQL only around ``poll()``.
- ``pending()`` also counts BHs, notifications and due timers (what a loop checks before it
  sleeps); QEMU's ``aio_pending()`` looks at fd handlers only.

Handlers are plain functions or generator functions (so they can compute, take locks and
block); ``aio_poll`` is a generator that the home thread runs with ``yield aio_poll(ctx, True)``.
Layer 3 (event loop): imports the kernel and the primitives.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from . import tracebuf as tb
from . import validate
from .kernel import (
    TIMED_OUT,
    MisuseError,
    Note,
    Op,
    Simulation,
    Step,
    Thread,
    Waitable,
    state_repr,
)

#: The order in which ``aio_poll`` dispatches what is ready. QEMU's AioContext runs bottom
#: halves first; the 2008 ``main_loop_wait`` ran fd handlers, then timers, then BHs *last*.
#: Within one pass, BHs run newest first: QEMU pushes a scheduled BH on the head of a list and
#: runs the list from the head (``QSLIST_INSERT_HEAD_ATOMIC`` in ``util/async.c`` since 2020;
#: before, one list of every BH, newest created first, where a one-shot BH is created when it
#: is scheduled). The model uses schedule order, newest first, for every BH; coroutines
#: scheduled with ``aio_co_schedule`` are still entered oldest first, as QEMU's
#: ``co_schedule_bh`` puts them back in order.
AIO_ORDER = ("bh", "fd", "timer")
MAIN_LOOP_2008_ORDER = ("fd", "timer", "bh")


def _check_handler(ctx: Any, cb: Any, name: Any) -> None:
    """A bottom half's or a timer's arguments: an AioContext, a callable and a name."""
    validate.instance("ctx", ctx, AioContext, kind="an AioContext")
    validate.function("cb", cb)
    validate.label("name", name)


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a handler as part of the current thread: generators are stepped, functions called
    (and an operation a function returns, such as ``lambda: x.store(1)``, is taken as a step)."""
    result = fn(*args)
    if hasattr(result, "send"):
        return (yield from result)
    if isinstance(result, Op):
        return (yield result)
    return result


class EventNotifier:
    """A file descriptor that one thread sets and a loop waits on (QEMU: ``EventNotifier``).

    ``yield n.set()`` from any thread (``event_notifier_set``); the loop that watches it wakes.
    """

    kind = "notifier"

    def __init__(self, sim: Simulation, name: str):
        validate.instance("sim", sim, Simulation, kind="a Simulation")
        validate.label("name", name)
        self.sim = sim
        self.name = name
        self.is_set = False
        self.ctx: AioContext | None = None
        self.oid = sim.register(self)
        self._set_op = Step(self._do_set)

    def set(self) -> Op:
        return self._set_op

    def _do_set(self, t: Thread) -> bool:
        self.sim.record(tb.SIGNAL, t.tid, self.oid, 1)
        self.set_now()
        return True

    def set_now(self) -> None:
        """Set it as a plain call, for code that runs outside a thread's steps (a disk's
        completion, fired by the simulated clock); a thread yields ``set()``."""
        self.is_set = True
        if self.ctx is not None:
            self.ctx._wake_poller()

    def test_and_clear(self) -> bool:
        """``event_notifier_test_and_clear``: was it set? Clears it. Not a step."""
        was, self.is_set = self.is_set, False
        return was

    def __repr__(self) -> str:
        return f"<EventNotifier {self.name} [{'set' if self.is_set else 'clear'}]>"


class _OneshotName:
    """What the simulation keeps of a one-shot BH: its kind and name, for the trace (a trace
    table prints ``schedule <name>``). QEMU frees a one-shot BH once it has run; so does the
    model: the simulation's object list holds this stand-in, not the BH, its callback and
    what that callback holds."""

    __slots__ = ("name",)
    kind = "bh"

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<QEMUBH {self.name} [one-shot]>"


class QEMUBH:
    """A bottom half: a callback that runs in its AioContext's thread on the loop's next pass.

    A one-shot BH (``aio_bh_schedule_oneshot``) is referred to only by the queue it waits in:
    once it has run, nothing keeps it (the trace names it by a stand-in, ``_OneshotName``).
    """

    kind = "bh"

    def __init__(self, ctx: AioContext, cb: Callable[..., Any], name: str, oneshot: bool = False):
        _check_handler(ctx, cb, name)
        validate.flag("oneshot", oneshot)
        self.ctx = ctx
        self.cb = cb
        self.name = name
        self.scheduled = False
        self.oneshot = oneshot
        # A one-shot BH is registered by a stand-in and keeps no operation of its own (a
        # Step holding its bound method would be a reference cycle): it is freed once it ran.
        self.oid = ctx.sim.register(_OneshotName(name) if oneshot else self)
        self._schedule_op = None if oneshot else Step(self._do_schedule)

    def schedule(self) -> Op:
        """``yield bh.schedule()`` (QEMU: ``qemu_bh_schedule``); safe from any thread."""
        return self._schedule_op or Step(self._do_schedule)

    def _do_schedule(self, t: Thread | None) -> bool:
        if t is not None:
            self.ctx.sim.record(tb.SIGNAL, t.tid, self.oid, 1)
        if not self.scheduled:  # scheduling twice before it runs runs it once
            self.scheduled = True
            self.ctx.bh_queue.append(self)
            self.ctx.notify_now()
        return True

    def __repr__(self) -> str:
        return f"<QEMUBH {self.name} [{'scheduled' if self.scheduled else 'idle'}]>"


class QEMUTimer:
    """A timer on a context's clock (QEMU: ``timer_new_us``, ``timer_mod``, ``timer_del``)."""

    kind = "timer"

    def __init__(self, ctx: AioContext, cb: Callable[..., Any], name: str):
        _check_handler(ctx, cb, name)
        self.ctx = ctx
        self.cb = cb
        self.name = name
        self.deadline: float | None = None
        self.oid = ctx.sim.register(self)

    def mod(self, when_us: float) -> Op:
        """``yield timer.mod(t)``: fire at absolute simulated time ``t`` (us)."""
        validate.duration("when_us", when_us)
        return Step(lambda t: self._arm(when_us))

    def arm(self, when_us: float) -> None:
        """Set the deadline from set-up code or from a handler (not a step)."""
        validate.duration("when_us", when_us)
        self._arm(when_us)

    def _arm(self, when_us: float) -> bool:
        self.deadline = when_us
        self.ctx.notify_now()  # the loop may need to wake earlier than it planned
        return True

    def delete(self) -> None:
        self.deadline = None

    def __repr__(self) -> str:
        armed = f"armed for t={self.deadline:g}us" if self.deadline is not None else "idle"
        return state_repr(self, armed, f"ctx {self.ctx.name}")


class _Poll(Op):
    """The blocking part of ``aio_poll``: sleep until there is work or the next timer is due."""

    __slots__ = ("ctx", "timeout")

    def __init__(self, ctx: AioContext, timeout: float | None):
        self.ctx, self.timeout = ctx, timeout

    def _execute(self, sim, thread):
        ctx = self.ctx
        if ctx.notified or ctx._fds_ready():
            return True
        ctx.waiters.append(thread)
        return sim.block_for(thread, ctx, self.timeout)


class AioContext(Waitable):
    """An event loop's state: its handlers, bottom halves and timers, and who polls it.

    ``home`` is the thread that runs ``aio_poll`` (the first caller, unless given).
    """

    kind = "AioContext"
    #: Nobody holds a context: a poller in ``AIO_WAIT_WHILE`` waits for the threads whose work
    #: it needs to finish it and kick the loop.
    holder_link = "to be woken by"

    def __init__(
        self,
        sim: Simulation,
        name: str,
        home: Thread | None = None,
        order: tuple[str, ...] = AIO_ORDER,
        notify_me_handshake: bool = True,
    ):
        if home is not None:
            validate.instance("home", home, Thread, kind="a Thread or None")
        validate.flag("notify_me_handshake", notify_me_handshake)
        if not isinstance(order, (tuple, list)) or sorted(map(repr, order)) != sorted(
            map(repr, AIO_ORDER)
        ):
            raise ValueError(f"order must arrange {AIO_ORDER} (each once); got {order!r}")
        super().__init__(sim, name)
        sim.extension("aio.contexts", list).append(self)
        self.home = home
        self.order = tuple(order)
        self.notify_me_handshake = notify_me_handshake
        self.bh_queue: deque[QEMUBH] = deque()
        Handler = tuple[EventNotifier, Callable[..., Any], Callable[[], bool] | None]
        self.handlers: list[Handler] = []
        self.timers: list[QEMUTimer] = []
        self.notify_me = False
        self.notified = False
        self.polls = 0
        #: coroutines waiting for ``co_schedule_bh`` (``aio_co_schedule``), oldest first
        self.scheduled_coroutines: deque[Any] = deque()
        self.co_schedule_bh: QEMUBH | None = None
        #: threads whose work a poller of this context is waiting for (set by aio_wait_while),
        #: so the wait-for graph can see that wait
        self.waiting_for: list[Thread] = []
        #: the context's lock, in the years contexts had one (2013-2023): None here; the QEMU
        #: models give it one (``labsupport.qemu.iothread.aio_context_new_lock``)
        self.lock: Any = None

    # Registering work (set-up code; not steps).
    def bh_new(self, cb: Callable[..., Any], name: str = "bh") -> QEMUBH:
        """``aio_bh_new``: a bottom half that runs ``cb()`` in this context."""
        _check_handler(self, cb, name)
        return QEMUBH(self, cb, name)

    def timer_new(self, cb: Callable[..., Any], name: str = "timer") -> QEMUTimer:
        timer = QEMUTimer(self, cb, name)
        self.timers.append(timer)
        return timer

    def set_event_notifier(
        self,
        notifier: EventNotifier,
        io_read: Callable[..., Any] | None,
        can_read: Callable[[], bool] | None = None,
    ) -> None:
        """``aio_set_event_notifier``/``aio_set_fd_handler``: run ``io_read()`` when it is set.

        ``can_read()``, if given, is asked first; the handler is skipped while it says False.
        That guard is the model's (the 2008 main loop's ``qemu_set_fd_handler2`` had such a "can
        read" poll); the extra argument of QEMU's ``aio_set_event_notifier`` is ``io_poll``, a
        busy-poll function, which the model does not have. ``io_read=None`` removes the handler.
        """
        validate.instance("notifier", notifier, EventNotifier, kind="an EventNotifier")
        if io_read is not None:
            validate.function("io_read", io_read, kind="a function or None")
        if can_read is not None:
            validate.function("can_read", can_read, kind="a function or None")
        self.handlers = [h for h in self.handlers if h[0] is not notifier]
        if io_read is None:
            notifier.ctx = None
            return
        notifier.ctx = self
        self.handlers.append((notifier, io_read, can_read))

    def bh_schedule_oneshot(self, cb: Callable[..., Any], name: str = "oneshot") -> Op:
        """``yield ctx.bh_schedule_oneshot(cb)`` (QEMU: ``aio_bh_schedule_oneshot``)."""
        bh = QEMUBH(self, cb, name, oneshot=True)
        return bh.schedule()

    def notify(self) -> Op:
        """``yield ctx.notify()`` (QEMU: ``aio_notify``): wake the loop if it sleeps."""
        return Step(lambda t: self.notify_now() or True)

    # The mechanism.
    def notify_now(self) -> None:
        """``aio_notify`` as a plain call, for code that already runs inside a step (a lock's
        contention callback, a bottom half being scheduled); a thread yields ``notify()``."""
        if self.notify_me or not self.notify_me_handshake:
            # With the handshake, aio_notify only writes the notifier when the poller said it
            # may sleep; without it, the write happens only if the poller is asleep right now.
            if self.notify_me_handshake or self.waiters:
                self.notified = True
                self._wake_poller()

    def _wake_poller(self) -> None:
        while self.waiters:
            self.sim.wake(self.waiters.popleft(), self)

    def _fds_ready(self) -> bool:
        return any(n.is_set for n, _io, _can in self.handlers)

    def pending(self) -> bool:
        """Is anything ready to run, without running it? Not a step. This is what a loop checks
        before it sleeps: BHs, a notification, ready fds, due timers. (QEMU's ``aio_pending()``
        looks at fd handlers only.)"""
        if self.bh_queue or self.notified or self._fds_ready():
            return True
        now = self.sim.now
        return any(t.deadline is not None and t.deadline <= now for t in self.timers)

    def _timeout(self) -> float | None:
        deadlines = [t.deadline for t in self.timers if t.deadline is not None]
        return None if not deadlines else max(0.0, min(deadlines) - self.sim.now)

    def holders(self) -> list[Thread]:
        return list(self.waiting_for)

    def wait_reason(self) -> str:
        return "nothing is left to notify it"

    def label(self) -> str:
        if self.waiting_for:
            who = " and ".join(t.name for t in self.waiting_for)
            return f"AioContext {self.name} (in AIO_WAIT_WHILE, for {who}'s work)"
        return f"AioContext {self.name} (in aio_poll)"

    def __repr__(self) -> str:
        home = self.home.name if self.home else "none yet"
        return (
            f"<AioContext {self.name} [home:{home}, bh:{len(self.bh_queue)}, "
            f"fds:{len(self.handlers)}, notify_me:{int(self.notify_me)}]>"
        )


def _sleep(ctx: AioContext, idle: bool):
    if idle:
        yield _Poll(ctx, ctx._timeout())


def aio_poll(ctx: AioContext, blocking: bool, drop: Any = None):
    """One pass of the loop; returns True if it ran any handler. ``yield aio_poll(ctx, True)``.

    Blocking: announce ``notify_me``, sleep until there is work (or the next timer), then
    dispatch in ``ctx.order``. A BH scheduled while BHs run waits for the next pass. ``drop``
    is a lock the caller holds and releases around the poll (sleeping or not) and retakes before
    dispatching, as QEMU's main loop does with the BQL (``os_host_main_loop_wait``, in glib's
    loop; QEMU's ``aio_poll`` itself never drops the BQL) and, from the 2015 rework of
    ``aio_poll``, an IOThread with its AioContext lock (QEMU released it only when the poll
    could block). ``drop`` is the model's argument, not QEMU's.
    """
    validate.instance("ctx", ctx, AioContext, kind="an AioContext")
    validate.flag("blocking", blocking)
    sim = ctx.sim
    me = sim.current
    if ctx.home is None:
        ctx.home = me
    elif ctx.home is not me:
        raise MisuseError(
            f"{me.name} called aio_poll on {ctx.name}, whose home thread is {ctx.home.name}: "
            f"only the thread that runs a loop may poll it; hand work over with a BH instead"
        )
    ctx.polls += 1
    if drop is not None:  # poll() runs without the caller's big lock, even when it won't sleep
        yield drop.unlock()
    if blocking:
        if ctx.notify_me_handshake:
            ctx.notify_me = True
            yield Note("notify_me = 1")
            yield from _sleep(ctx, not ctx.pending())
        else:
            # The broken order: look for work first, announce the sleep afterwards.
            idle = not ctx.pending()
            yield Note("check for work: " + ("none" if idle else "some"))
            ctx.notify_me = True
            yield from _sleep(ctx, idle)
        ctx.notify_me = False
    if drop is not None:
        yield drop.lock()
    ctx.notified = False
    progress = False
    for what in ctx.order:
        if what == "bh":
            batch, ctx.bh_queue = ctx.bh_queue, deque()
            while batch:  # taken off the batch as it runs: a one-shot BH is then free
                bh = batch.pop()
                bh.scheduled = False
                yield Note(f"bh {bh.name}")
                yield from _call(bh.cb)
                progress = True
            bh = None
        elif what == "fd":
            for notifier, io_read, can_read in list(ctx.handlers):
                if notifier.is_set and (can_read is None or can_read()):
                    notifier.test_and_clear()
                    yield Note(f"fd {notifier.name}")
                    yield from _call(io_read)
                    progress = True
        else:
            now = sim.now
            for timer in ctx.timers:
                if timer.deadline is not None and timer.deadline <= now:
                    timer.deadline = None
                    yield Note(f"timer {timer.name}")
                    yield from _call(timer.cb)
                    progress = True
    return progress


def qemu_get_aio_context(sim: Simulation) -> AioContext:
    """The main loop's AioContext (QEMU: ``qemu_get_aio_context``), made on first use; its home
    thread is whichever thread polls it first (in QEMU: any thread holding the BQL)."""
    validate.instance("sim", sim, Simulation, kind="a Simulation")
    return sim.extension("qemu.main_aio_context", lambda: AioContext(sim, "main"))


class AioWait:
    """QEMU's one global ``AioWait``: how many threads are inside ``AIO_WAIT_WHILE`` right now
    (``num_waiters``), so that ``aio_wait_kick()`` costs nothing when nobody waits."""

    def __init__(self) -> None:
        self.num_waiters = 0

    def __repr__(self) -> str:
        return f"<AioWait [num_waiters:{self.num_waiters}]>"


def aio_wait(sim: Simulation) -> AioWait:
    """The simulation's one ``AioWait`` (QEMU: ``global_aio_wait``)."""
    validate.instance("sim", sim, Simulation, kind="a Simulation")
    return sim.extension("aio.wait", AioWait)


def _current_context(me: Thread) -> AioContext | None:
    for ctx in me.sim.extension("aio.contexts", list):
        if ctx.home is me:
            return ctx
    return None


def qemu_get_current_aio_context(sim: Simulation) -> AioContext | None:
    """The AioContext whose loop the current thread runs, or None (QEMU:
    ``qemu_get_current_aio_context``). QEMU also answers the main context for any thread that
    holds the BQL; the model does not (it has no BQL at this layer)."""
    validate.instance("sim", sim, Simulation, kind="a Simulation")
    me = sim.current
    return None if me is None else _current_context(me)


def aio_wait_while(
    ctx: AioContext, cond: Callable[[], bool], unlocked: bool = False, *, poll_ctx: Any = None
):
    """``yield aio_wait_while(ctx, cond)``: run event loops until ``cond()`` is false.

    QEMU's ``AIO_WAIT_WHILE(ctx, cond)`` (``include/block/aio-wait.h``). In ``ctx``'s home
    thread it polls ``ctx``. Any other caller must be the main loop: it polls the main context
    (``qemu_get_aio_context``), and in the years contexts had a lock it releases ``ctx``'s lock
    **once** around each poll and takes it again, so a caller that held the (recursive) lock
    twice still keeps the other thread out (deadlock D1). ``unlocked=True`` is
    ``AIO_WAIT_WHILE_UNLOCKED`` (no release), which the 9.0 form equals. Whoever finishes the
    awaited work calls ``aio_wait_kick()``.

    A thread that is neither (an IOThread waiting for another IOThread's work) is refused with a
    ``MisuseError``: QEMU asserts it, because ``aio_wait_kick()`` only ever wakes the main loop.

    ``poll_ctx`` is not QEMU's: it lets such a thread poll a context of its choice instead, only
    to show what the assertion prevents (chapter 5's D5).
    """
    validate.instance("ctx", ctx, AioContext, kind="an AioContext")
    validate.function("cond", cond)
    validate.flag("unlocked", unlocked)
    if poll_ctx is not None:
        validate.instance("poll_ctx", poll_ctx, AioContext, kind="an AioContext or None")
    sim = ctx.sim
    me = sim.current
    waits = aio_wait(sim)
    waits.num_waiters += 1  # before cond() is read, in the same step: no kick can slip between
    try:
        if ctx.home is me or ctx.home is None:
            while cond():
                yield aio_poll(ctx, True)
            return
        main = qemu_get_aio_context(sim) if poll_ctx is None else poll_ctx
        mine = _current_context(me)
        if poll_ctx is None and mine is not None and mine is not main:
            raise MisuseError(
                f"{me.name} called AIO_WAIT_WHILE on {ctx.name} from {mine.name}'s thread: the "
                f"caller must be {ctx.name}'s home thread or the main loop (QEMU asserts "
                f"qemu_get_current_aio_context() == qemu_get_aio_context()), because "
                f"aio_wait_kick() only ever wakes the main loop; wait from the main loop, or "
                f"hand the work over with a BH"
            )
        lock = None if unlocked else ctx.lock
        while cond():
            if lock is not None:
                yield lock.unlock()
            main.waiting_for = [ctx.home]
            try:
                yield aio_poll(main, True)
            finally:
                main.waiting_for = []
            if lock is not None:
                yield lock.lock()
    finally:
        waits.num_waiters -= 1


def aio_wait_kick() -> Op:
    """``yield aio_wait_kick()``: wake the main loop in ``aio_wait_while`` to look again.

    As in QEMU, it takes no context and does nothing when nobody waits (``num_waiters``); when
    someone does, it schedules an empty one-shot BH in the *main* context, which is QEMU's own
    mechanism: a waiter that has checked its condition but not yet announced that it will sleep
    (``notify_me``) finds the BH pending and does not sleep. A bare notify could be dropped in
    exactly that window.
    """
    return _AIO_WAIT_KICK


def _do_aio_wait_kick(t: Thread) -> bool:
    sim = t.sim
    if aio_wait(sim).num_waiters == 0:
        return True
    bh = QEMUBH(qemu_get_aio_context(sim), _aio_wait_kick_bh, "aio_wait_kick", oneshot=True)
    return bh._do_schedule(t)


_AIO_WAIT_KICK = Step(_do_aio_wait_kick)


def _aio_wait_kick_bh() -> None:
    """The empty BH that ``aio_wait_kick`` schedules: running it is the whole point."""


__all__ = [
    "AIO_ORDER",
    "AioWait",
    "MAIN_LOOP_2008_ORDER",
    "TIMED_OUT",
    "AioContext",
    "EventNotifier",
    "QEMUBH",
    "QEMUTimer",
    "aio_poll",
    "aio_wait",
    "aio_wait_kick",
    "aio_wait_while",
    "qemu_get_aio_context",
    "qemu_get_current_aio_context",
]
