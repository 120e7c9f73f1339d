"""The event loop: an AioContext that one thread polls and any thread can poke.

QEMU's main loop and every IOThread run the same kind of loop (``util/aio-posix.c``): sleep in
``poll()`` until a file descriptor is ready, a timer is due or another thread calls
``aio_notify()``; then run the handlers that are ready. Work is handed to a loop from other
threads as a *bottom half* (BH), a callback scheduled to run on the loop's next pass. Only the
loop's home thread may run ``aio_poll()``; any thread may schedule a BH or set an event
notifier. The ``notify_me`` handshake makes sure a notify that races with the loop going to
sleep is never lost; switch it off (``notify_me_handshake=False``) to see the lost wake-up.

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
        ``io_read=None`` removes the handler.
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
        """Is anything ready to run, without running it? (QEMU: ``aio_pending``.) Not a step."""
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
    dispatching, as QEMU's main loop does with the BQL (``os_host_main_loop_wait``) and the 2013
    IOThread with its AioContext lock.
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
                bh = batch.popleft()
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


def aio_wait_while(
    ctx: AioContext, cond: Callable[[], bool], lock: Any = None, main_ctx: AioContext | None = None
):
    """``yield aio_wait_while(ctx, cond, lock, main_ctx)``: poll until ``cond()`` is false.

    QEMU's ``AIO_WAIT_WHILE`` as it was in the AioContext-lock years. In ``ctx``'s own thread it
    polls ``ctx``. From the main loop, waiting for another context's work, it releases that
    context's ``lock`` **once**, polls the main context, and takes the lock again: if the caller
    held the (recursive) lock twice, the other thread still cannot get it (deadlock D1). The
    thread doing the work calls ``aio_wait_kick(main_ctx)`` when it has made progress.
    """
    validate.instance("ctx", ctx, AioContext, kind="an AioContext")
    validate.function("cond", cond)
    if main_ctx is not None:
        validate.instance("main_ctx", main_ctx, AioContext, kind="an AioContext or None")
    me = ctx.sim.current
    if ctx.home is me or ctx.home is None:
        while cond():
            yield aio_poll(ctx, True)
        return
    if main_ctx is None:
        raise MisuseError(
            f"{me.name} waits for {ctx.name}'s work from another thread: pass main_ctx, the "
            f"context this thread polls while it waits"
        )
    while cond():
        if lock is not None:
            yield lock.unlock()
        main_ctx.waiting_for = [ctx.home]
        try:
            yield aio_poll(main_ctx, True)
        finally:
            main_ctx.waiting_for = []
        if lock is not None:
            yield lock.lock()


def aio_wait_kick(main_ctx: AioContext) -> Op:
    """``yield aio_wait_kick(main_ctx)``: wake a thread in ``aio_wait_while`` to look again.

    As in QEMU, it schedules an empty one-shot BH in the waiter's context rather than only
    notifying it: a waiter that has checked its condition but not yet announced that it will
    sleep (``notify_me``) finds the BH pending and does not sleep. A bare notify is dropped in
    exactly that window.
    """
    validate.instance("main_ctx", main_ctx, AioContext, kind="an AioContext")
    return main_ctx.bh_schedule_oneshot(_aio_wait_kick_bh, "aio_wait_kick")


def _aio_wait_kick_bh() -> None:
    """The empty BH that ``aio_wait_kick`` schedules: running it is the whole point."""


__all__ = [
    "AIO_ORDER",
    "MAIN_LOOP_2008_ORDER",
    "TIMED_OUT",
    "AioContext",
    "EventNotifier",
    "QEMUBH",
    "QEMUTimer",
    "aio_poll",
    "aio_wait_kick",
    "aio_wait_while",
]
