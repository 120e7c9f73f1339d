"""The simulation kernel: simulated threads on simulated host CPUs, with a scheduler you can steer.

A real QEMU process is a handful of host threads (the main loop, one per vCPU, IOThreads) that
the host kernel interleaves as it likes; a bug shows up once in a thousand runs and never under a
debugger. This kernel runs the same kind of program on SimPy's clock instead: every thread is a
generator, every blocking point (a lock, an event, a CPU, a sleep) goes through the kernel, and
whenever two threads could take the next step at the same instant the kernel asks a *policy*
which one goes. Each choice is written down as one character of a schedule string; give the
string back and the run happens again, event for event. A policy may also answer "not me":
``Pause`` stops the run at each choice point (``run()`` returns an outcome of "paused" and
``sim.paused`` lists who could move); ``sim.choose(c)`` picks, and the next ``run()`` goes on
from there, so a learner can be the scheduler without the run being thrown out of the kernel.
A wait-for graph is checked every time a thread blocks, so a deadlock stops the run with a
report instead of hanging the notebook.

The interface for primitive authors. A primitive (a mutex, an event, an AioContext, a model's
lock) is a ``Waitable`` whose operations are ``Step(fn)``s: ``fn(thread)`` changes the
primitive's state and returns True to let the thread go on, or False once it is parked. It
talks to its ``Simulation`` through these methods only, never through underscore names:

- ``sim.register(obj)``: the object id (``oid``) a new shared object is named by in the trace.
- ``sim.label(kind, name)``: the id of a named string, for a note in the trace.
- ``sim.record(kind, tid, oid, arg)``: append one trace event at the current time (nothing
  with ``trace=False``); record every change of state.
- ``sim.block(thread, on)`` / ``sim.block_for(thread, on, us)``: park a thread already put on
  ``on.waiters`` (for at most ``us``); checks for deadlock; return its False from ``fn``.
- ``sim.wake(thread, on, value)``: make a waiter ready again (records a ``WAKE``).
- ``sim.make_ready(thread, value)``: the same without the ``WAKE``, when the primitive
  records the hand-off itself (a mutex's ``ACQUIRE`` for its next owner).
- ``sim.extension(key, factory)``: the simulation's store for state of layers above the
  kernel, made on first use; nothing else is set on a ``Simulation`` from outside.
- ``sim.watch_waits(source)`` / ``sim.check_waits(node)``: for waiters that are not threads
  (a coroutine parked in a ``CoMutex``'s queue): a ``WaitSource`` adds them and their edges
  to the wait-for graph; ``check_waits`` looks for a cycle through one that starts to wait.
- ``simulation_of(x)``: the ``Simulation`` behind a ``Simulation`` or a ``RunResult``.

They also read ``sim.now``, ``sim.current`` (the thread taking a step), ``sim.env`` (SimPy's
clock, for their own time-outs) and ``sim.rng``.

Time is in microseconds. Layer 1 (kernel): imports only SimPy and ``tracebuf``.
"""

from __future__ import annotations

import inspect
import linecache
import math
import os
import random
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType, GeneratorType
from typing import Any, TypeVar

import simpy

from . import tracebuf as tb
from . import validate
from .tracebuf import TraceBuffer

_T = TypeVar("_T")

#: Characters that name threads in a schedule string, in spawn order.
SCHEDULE_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_THREADS = len(SCHEDULE_ALPHABET)

#: What a timed wait returns when its time ran out.
TIMED_OUT = "timed out"

# Thread states.
READY, COMPUTING, SLEEPING, BLOCKED, DONE = "ready", "computing", "sleeping", "blocked", "done"


# --------------------------------------------------------------------------------------------
# Errors: each says what went wrong in the learner's terms and what is allowed instead.


class SimulationError(Exception):
    """Base class of every error the simulation raises on purpose."""


class MisuseError(SimulationError):
    """A primitive was used in a way that would be a bug in real code (raised at once)."""


class ScheduleDivergence(SimulationError):
    """A replayed schedule asked for a thread that could not move at that step."""


class RunawayError(SimulationError):
    """The run did not end by itself: a thread loops for ever (or the program is far longer
    than its limits allow). ``where`` names the thread and the line it was on."""

    def __init__(self, message: str, where: str = ""):
        super().__init__(message)
        self.where = where


class StepLimitExceeded(RunawayError):
    """The run took more steps than allowed; a thread is probably spinning."""


class TimeLimitExceeded(RunawayError):
    """The run used up its wall-clock budget (``time_limit_s``); a thread probably loops for
    ever."""


class LockHeldAtExit(MisuseError):
    """A thread ended while still holding a lock (raised with ``on_exit_holding="raise"``)."""


class ThreadCrashed(SimulationError):
    """A thread's body raised an exception (an ``assert`` in a thread lands here)."""


class DeadlockError(SimulationError):
    """Raised instead of returning when the caller asked ``on_deadlock="raise"``."""

    def __init__(self, report: DeadlockReport):
        super().__init__(report.text())
        self.report = report


def check_duration(what: str, us: Any) -> float:
    """Return ``us`` if it is a finite, non-negative number of microseconds; else explain
    (``TypeError`` for a value that is not a number, ``ValueError`` for one out of range)."""
    # The hot path (every compute() and sleep() comes here): a plain finite number >= 0 is
    # returned at once; anything else goes to validate.duration, which refuses it and explains.
    if (type(us) is int or type(us) is float) and 0 <= us < math.inf:  # NaN fails both
        return us
    says = "takes a duration in microseconds (a number >= 0)"
    return validate.duration(what, us, says=says, type_error=TypeError)


def state_repr(obj: Any, *state: str, name: str | None = None) -> str:
    """How every primitive and model prints itself: ``<QemuMutex BQL [locked by vcpu0,
    waiters:1]>``, its class, its name (``obj.name`` unless given) and its state in brackets.

    Empty parts of ``state`` are left out, so a caller can pass ``"depth:2" if deep else ""``.
    """
    name = getattr(obj, "name", "") if name is None else name
    head = type(obj).__name__ + (f" {name}" if name else "")
    body = ", ".join(s for s in state if s)
    return f"<{head} [{body}]>" if body else f"<{head}>"


# --------------------------------------------------------------------------------------------
# Never hang: every run has a wall-clock budget, and a runaway thread is named with its line.

#: A run's wall-clock budget in seconds when neither ``time_limit_s`` nor ``time_budget`` says.
DEFAULT_TIME_LIMIT_S = 30.0
_budget_s = DEFAULT_TIME_LIMIT_S  # what time_budget() set; read when a run starts
#: How deeply a thread may nest sub-generators (``yield helper()`` inside ``helper``...).
MAX_NESTING = 100
_CLOCK_EVERY = 4096  # steps between two looks at the wall clock
_CAN_ALARM = hasattr(signal, "setitimer") and hasattr(signal, "SIGALRM")
_LIBRARY = os.path.dirname(os.path.abspath(__file__)) + os.sep
_CHAPTERS = _LIBRARY + "chapters" + os.sep
_SIMPY = os.path.dirname(os.path.abspath(simpy.__file__)) + os.sep


def check_time_limit(name: str, seconds: Any) -> float:
    """Return ``seconds`` if it is a wall-clock budget: a finite number of seconds > 0."""
    return validate.number(
        name, seconds, low=0, low_open=True, kind="a number of seconds", type_error=TypeError
    )


@contextmanager
def time_budget(seconds: float) -> Iterator[float]:
    """``with time_budget(5): ...``: every run started inside that does not give its own
    ``time_limit_s`` may use ``seconds`` of wall-clock time (``check()`` and the widgets use
    it, so a runaway answer or slider costs a few seconds, not the notebook)."""
    global _budget_s
    previous, _budget_s = _budget_s, check_time_limit("time_budget(seconds)", seconds)
    try:
        yield seconds
    finally:
        _budget_s = previous


def _is_library(frame: FrameType) -> bool:
    name = frame.f_code.co_filename
    return (name.startswith(_LIBRARY) and not name.startswith(_CHAPTERS)) or name.startswith(_SIMPY)


def _line(frame: FrameType) -> str:
    code, lineno = frame.f_code, frame.f_lineno
    text = linecache.getline(code.co_filename, lineno).strip()
    where = f"line {lineno} of {code.co_name}() ({os.path.basename(code.co_filename)})"
    return f"{where}: `{text}`" if text else where


def where_is(thread: Thread | None, frame: FrameType | None = None) -> str:
    """Which thread was running which line: ``thread spinner was at line 12 of body()
    (lab.py): `while True:` `` (the first line of the learner's code; ``inside ...`` the
    library's line below it, ``called from ...`` the thread's body above it). ``frame`` is
    where a signal interrupted the program, if it did; otherwise the line is where the
    thread's generators stand."""
    if thread is None:
        return "no thread was taking a step"
    gens: list[Any] = []
    for g in thread._stack:  # the kernel's sub-generators, and what each delegates to
        while g is not None and g not in gens:
            gens.append(g)
            g = getattr(g, "gi_yieldfrom", None)
    own = [g.gi_frame for g in gens if getattr(g, "gi_frame", None) is not None]
    frames: list[FrameType] = []
    f = frame
    while f is not None:  # from the interrupted line out to the thread's own generator
        frames.append(f)
        if f in own:
            break
        f = f.f_back
    else:
        frames = []  # interrupted outside the thread's code (the kernel's own bookkeeping)
    frames += [f for f in reversed(own) if f not in frames]  # innermost first
    if not frames:
        return f"thread {thread.name} had finished"
    user = next((f for f in frames if not _is_library(f)), frames[0])
    inside = f", inside {_line(frames[0])}" if frames[0] is not user else ""
    body = frames[-1]  # the thread's body, when the line is in a helper it called
    called = f", called from {_line(body)}" if body is not user and body is not frames[0] else ""
    return f"thread {thread.name} was at {_line(user)}{inside}{called}"


class _Abort(BaseException):
    """A time limit that a thread body swallowed (``except Exception``) and then looped on: a
    ``BaseException``, so that the same handler cannot swallow it again; ``run`` raises
    ``error``, the ``TimeLimitExceeded``, in its place."""

    def __init__(self, error: TimeLimitExceeded):
        super().__init__(str(error))
        self.error = error


class _Alarm:
    """SIGALRM for one run in the main thread. A loop in plain Python inside a thread body
    (``while True: pass``) never comes back to the kernel, so only a signal can stop it; the
    kernel's own look at the clock (every few thousand steps) covers every other loop, and
    every run that cannot have a signal (not in the main thread, or no SIGALRM)."""

    def __init__(self, sim: Simulation, seconds: float):
        self.sim = sim
        self.armed = False
        self.error: TimeLimitExceeded | None = None
        if not _CAN_ALARM or threading.current_thread() is not threading.main_thread():
            return
        self.previous = signal.getsignal(signal.SIGALRM)
        self.delay, self.interval = signal.getitimer(signal.ITIMER_REAL)
        if self.delay and self.delay <= seconds:
            return  # an outer run's (or a test runner's) alarm comes first: leave it alone
        self.start = time.monotonic()
        signal.signal(signal.SIGALRM, self._fire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        self.armed = True

    def _fire(self, signum: int, frame: FrameType | None) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0.5)  # again, if the body swallows the error
        if self.error is None:
            self.error = self.sim._out_of_time(frame)
            raise self.error
        raise _Abort(self.error)  # it was swallowed (except Exception: pass): not again

    def disarm(self) -> None:
        if not self.armed:
            return
        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        previous = self.previous if self.previous is not None else signal.SIG_DFL
        signal.signal(signal.SIGALRM, previous)
        if self.delay:  # give the outer alarm back what was left of it
            left = self.delay - (time.monotonic() - self.start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), self.interval)


# --------------------------------------------------------------------------------------------
# Operations: what a thread yields. Each is executed by the kernel as one atomic step.


class Op:
    """One step a thread asks the kernel to take.

    ``_execute(sim, thread)`` returns True when the thread may go on at once (its next value is
    in ``thread._value``) and False when the thread has been parked (blocked, computing or
    sleeping) and someone else will make it ready again.
    """

    __slots__ = ()

    def _execute(self, sim: Simulation, thread: Thread) -> bool:  # pragma: no cover
        raise NotImplementedError


class Step(Op):
    """An operation that calls ``fn(thread)``; ``fn`` returns True to go on, False if parked.

    Primitives build their operations from this one class, so the kernel can call ``fn``
    directly on its hot path.
    """

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Thread], bool]):
        self.fn = fn

    def _execute(self, sim, thread):
        return self.fn(thread)


class Compute(Op):
    """Run on a host CPU for ``us`` microseconds (waiting for a free CPU first if need be)."""

    __slots__ = ("us",)

    def __init__(self, us: float):
        self.us = check_duration("compute()", us)

    def _execute(self, sim, thread):
        sim.cpus._request(thread, self.us)
        return False


class Sleep(Op):
    """Wait ``us`` microseconds without using a CPU (a timer, a disk, a guest in ``HLT``)."""

    __slots__ = ("us",)

    def __init__(self, us: float):
        self.us = check_duration("sleep()", us)

    def _execute(self, sim, thread):
        sim.record(tb.SLEEP, thread.tid, -1, self.us)
        thread.state = SLEEPING
        sim.env.timeout(self.us).callbacks.append(thread._on_timer)
        return False


class Note(Op):
    """A step that touches nothing shared: a local computation such as a register add.

    The trace shows ``text``, and ``-> value`` when a value is given.
    """

    __slots__ = ("text", "value")

    def __init__(self, text: str, value: Any = None):
        self.text, self.value = text, value

    def _execute(self, sim, thread):
        sim.record(tb.OP, thread.tid, sim.label("note", self.text), self.value)
        return True


_YIELD = Note("yield")


def compute(us: float) -> Compute:
    """``yield compute(50)``: use a host CPU for 50 us."""
    return Compute(us)


def sleep(us: float) -> Sleep:
    """``yield sleep(50)``: wait 50 us without a CPU."""
    return Sleep(us)


def note(text: str, value: Any = None) -> Note:
    """``yield note("add")``: a thread-local step that the trace shows."""
    return Note(text, value)


# --------------------------------------------------------------------------------------------
# Things threads wait on.


def check_waitable(sim: Any, name: Any) -> None:
    """Refuse a primitive's ``sim`` that is not a Simulation (``QemuMutex("x", sim)``: the
    arguments in the wrong order) and a ``name`` that is not a non-empty string. ``Waitable``
    checks its own; a primitive that checks more arguments first calls it before them."""
    validate.instance("sim", sim, Simulation, kind="a Simulation")
    validate.label("name", name)


class Waitable:
    """Anything a thread can block on. Subclasses say who holds it (for the wait-for graph)."""

    kind = "object"
    #: How a report links what a thread waits for to the threads that must act first: a lock
    #: is "held by" its owner; a loop that waits for another thread's work (``AioContext`` in
    #: ``AIO_WAIT_WHILE``) is "to be woken by" that thread.
    holder_link = "held by"
    #: What the object is to a learner, when its kind and name do not say it (a context's
    #: lock is "iothread0's AioContext lock"); ``label()`` puts it first.
    role: str | None = None

    def __init__(self, sim: Simulation, name: str):
        check_waitable(sim, name)
        self.sim = sim
        self.name = name
        self.waiters: deque[Thread] = deque()
        self.oid = sim.register(self)

    def holders(self) -> list[Thread]:
        """Threads that must act before a waiter can go on (edges of the wait-for graph)."""
        return []

    def wait_reason(self) -> str:
        """Why nobody can wake a waiter when nobody holds this (for the end-of-run report)."""
        return "nobody is left to signal it"

    def label(self) -> str:
        """How a report names it: ``mutex BQL``; with a role, ``iothread0's AioContext lock
        (rec-mutex iothread0.ctx)``."""
        if self.role:
            return f"{self.role} ({self.kind} {self.name})"
        return f"{self.kind} {self.name}"

    def __repr__(self) -> str:
        held = [h.name for h in self.holders()]
        return state_repr(
            self, f"held by {','.join(held)}" if held else "", f"waiters:{len(self.waiters)}"
        )


class WaitSource:
    """Nodes and edges of the wait-for graph beyond threads (give one to ``sim.watch_waits``).

    A thread that blocks is a node the kernel sees; something that waits without blocking its
    thread is not: a coroutine parked in a ``CoMutex``'s queue has yielded, and its thread has
    gone back to its event loop. A source makes such waiters nodes of the graph. A node that is
    not a thread has a ``title`` (how a report names it: ``"coroutine req1"``), a ``kind``,
    ``wait_label()`` and ``wait_reason()`` (what it waits for, and why nobody will do it, for
    a report without a cycle) and ``held_labels()`` (what it holds).
    """

    def waiting(self) -> Iterable[Any]:
        """The nodes (not threads) that wait right now: if the run ends with any of them,
        something was left undone, and the run is stuck (or a deadlock, if they are in a cycle)
        even when the only threads left are daemons."""
        return ()

    def edges(self, node: Any, settled: bool) -> list[tuple[Any, str, str]]:
        """Whom ``node`` (a blocked thread or one of this source's nodes) waits for, beyond
        the holders of what a thread blocks on: ``(target, what, link)``, read as "node waits
        for *what*, *link* *target*" (link: ``"held by"``, ``"to be run by"``...). Edges that
        hold only once nothing can move any more (the run is over) are given only when
        ``settled``: the kernel checks them at the end of the run, never in the middle."""
        return []

    def __repr__(self) -> str:
        return state_repr(self, f"waiting:{len(list(self.waiting()))}", name="")


class HostCPUs(Waitable):
    """The host's CPUs: a thread that computes holds one for the whole computation."""

    kind = "host CPUs"

    def __init__(self, sim: Simulation, n: int):
        super().__init__(sim, "cpu")
        self.n = n
        self.busy = 0

    def _request(self, thread: Thread, us: float) -> None:
        if self.busy < self.n:
            self.busy += 1
            self._start(thread, us)
        else:
            thread._pending_us = us
            self.waiters.append(thread)
            thread.state = BLOCKED
            thread.blocked_on = self
            self.sim.record(tb.BLOCK, thread.tid, self.oid, -1)

    def _start(self, thread: Thread, us: float) -> None:
        sim = self.sim
        thread.state = COMPUTING
        thread.blocked_on = None
        sim.record(tb.RUN, thread.tid, self.oid, us)
        sim.env.timeout(us).callbacks.append(thread._on_cpu_done)

    def _finish(self, thread: Thread) -> None:
        sim = self.sim
        if self.waiters:
            nxt = self.waiters.popleft()
            self._start(nxt, nxt._pending_us)  # its RUN is the wake-up
        else:
            self.busy -= 1
        sim.make_ready(thread)

    def __repr__(self) -> str:
        return f"<HostCPUs [{self.busy}/{self.n} busy, waiters:{len(self.waiters)}]>"


class _Join(Op):
    __slots__ = ("target",)

    def __init__(self, target: Thread):
        self.target = target

    def _execute(self, sim, thread):
        target = self.target
        if target is thread:
            raise MisuseError(f"{thread.name} tried to join itself; that would wait forever")
        if target.state == DONE:
            sim.record(tb.WAKE, thread.tid, target.oid, 0)  # finished already: no wait
            return True
        target.joiners.append(thread)
        return sim.block(thread, target)


class Thread(Waitable):
    """A simulated thread. Its body is a generator; every ``yield`` is one step."""

    kind = "thread"

    def __init__(self, sim: Simulation, name: str, gen: Any, tid: int):
        super().__init__(sim, name)
        self.tid = tid
        self.char = SCHEDULE_ALPHABET[tid]
        self._stack = [gen]
        self._value: Any = None
        self.state = READY
        self.blocked_on: Waitable | None = None
        self.held: list[Waitable] = []
        self.joiners: list[Thread] = []
        self.ticket = 0
        self._pending_us = 0.0
        self.local: dict[str, Any] = {}
        self.daemon = False
        self._episode = 0  # counts blocking episodes, so a stale time-out cannot wake a thread
        self._on_timer = lambda _ev: sim.make_ready(self)
        self._on_cpu_done = lambda _ev: sim.cpus._finish(self)

    def holders(self) -> list[Thread]:
        return [] if self.state == DONE else [self]

    def wait_reason(self) -> str:
        return "it has not finished"

    def join(self) -> _Join:
        """``yield t.join()``: wait until thread ``t`` has finished."""
        return _Join(self)

    def label(self) -> str:
        return f"thread {self.name} to finish"

    def __repr__(self) -> str:
        extra = ""
        if self.state == BLOCKED and self.blocked_on is not None:
            extra = f" on {self.blocked_on.name}"
        held = ", holds " + ",".join(h.name for h in self.held) if self.held else ""
        return f"<Thread {self.name} [{self.state}{extra}{held}]>"


# --------------------------------------------------------------------------------------------
# Scheduling policies: who moves when more than one thread could.


class Policy:
    """Chooses one of the ready threads (listed in the order they became ready), or None to
    pause the run there (see ``Pause``)."""

    name = "policy"

    def choose(self, sim: Simulation, ready: list[Thread]) -> Thread | None:  # pragma: no cover
        raise NotImplementedError

    def finish(self, sim: Simulation) -> None:
        """Called when a run ends normally; a replay checks it used its whole schedule."""

    def __repr__(self) -> str:
        return state_repr(self, name="")


class FirstCome(Policy):
    """The thread that has been ready longest goes; a running thread keeps going until it waits."""

    name = "first-come"

    def choose(self, sim, ready):
        return ready[0]


class RandomPolicy(Policy):
    """A seeded random choice at every choice point: same seed, same run."""

    name = "random"

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def choose(self, sim, ready):
        return ready[self.rng.randrange(len(ready))]


class Pause(Policy):
    """Leave every choice to the caller: the run stops at each choice point, ``run()`` returns
    a result whose outcome is "paused", and ``sim.choose(c)`` then ``run()`` goes on."""

    name = "pause"

    def choose(self, sim, ready):
        return None


class Replay(Policy):
    """Follow a schedule string, one character per choice point; then hand over to ``then``."""

    name = "replay"

    def __init__(self, schedule: str, then: Policy | None = None, strict_end: bool = True):
        bad = sorted({c for c in schedule if c not in SCHEDULE_ALPHABET})
        if bad:
            raise ValueError(
                f"a schedule is a string of thread characters (0-9, a-z, A-Z); "
                f"{''.join(bad)!r} are not allowed"
            )
        self.schedule = schedule
        self.pos = 0
        self.then = then or FirstCome()
        self.strict_end = strict_end

    def choose(self, sim, ready):
        if self.pos >= len(self.schedule):
            return self.then.choose(sim, ready)
        c = self.schedule[self.pos]
        for t in ready:
            if t.char == c:
                self.pos += 1
                return t
        names = ", ".join(f"{t.char}={t.name}" for t in ready)
        wanted = sim._thread_by_char.get(c)
        if wanted:
            why = f"thread {c} ({wanted.name}) is {wanted.state}"
        else:
            why = f"there is no thread {c}"
        raise ScheduleDivergence(
            f"the replay diverged at choice {self.pos + 1} (t={sim.now:g} us): the schedule says "
            f"{c!r} but {why}; the threads that could move were {names}"
        )

    def __repr__(self) -> str:
        return state_repr(
            self, f"at {self.pos}/{len(self.schedule)}", f"then {self.then.name}", name=""
        )

    def finish(self, sim):
        if self.strict_end and self.pos < len(self.schedule):
            raise ScheduleDivergence(
                f"the replay diverged: the run ended after {self.pos} choices but the schedule "
                f"has {len(self.schedule) - self.pos} more ({self.schedule[self.pos :]!r})"
            )


def make_policy(policy: str | Policy, seed: int, schedule: str | None) -> Policy:
    if schedule is not None:
        if not isinstance(schedule, str):
            raise TypeError(f"schedule must be a string such as '0110'; got {schedule!r}")
        then = make_policy(policy, seed, None)
        return Replay(schedule, then=then)
    if isinstance(policy, Policy):
        return policy
    if policy == "first-come":
        return FirstCome()
    if policy == "random":
        return RandomPolicy(seed)
    raise ValueError(
        f"unknown policy {policy!r}: policy must be 'first-come', 'random' or a Policy object "
        f"(to replay a run, give schedule=... instead)"
    )


#: The options that shape a run, with their defaults: a recipe names those that differ.
RECIPE_DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "cpus": 1,
    "expand": True,
    "max_steps": 5_000_000,
    "max_steps_per_instant": 100_000,
    "until": None,
}


class Schedule(str):
    """A recorded schedule: the string of choices (it prints and compares as that string) and
    the options of the run that made it, so that giving it back replays that very run.

    ``run(program, schedule=result.schedule)`` takes the recorded seed, CPUs, ``until``, ...
    from it, and refuses options that differ (a different seed would be another run);
    ``recipe()`` is the whole call as text. A hand-written string, or a piece cut out of a
    schedule (``result.schedule[:5]``), is a plain ``str`` and replays as given.
    """

    options: dict[str, Any]
    program: str

    def __new__(cls, text: str, options: dict[str, Any], program: str = "program") -> Schedule:
        self = super().__new__(cls, text)
        self.options = dict(options)
        self.program = program
        return self

    def recipe(self) -> str:
        """The call that replays the run: ``run(program, schedule='0110', seed=3, cpus=2)``
        (options at their default are left out)."""
        return recipe(self.program, str(self), self.options)

    def mismatches(self, options: dict[str, Any]) -> list[str]:
        """``["seed=5 (recorded with seed=3)", ...]`` for each given option that differs."""
        return [
            f"{k}={options[k]!r} (recorded with {k}={v!r})"
            for k, v in self.options.items()
            if k in options and options[k] != v
        ]

    def refuse(self, options: dict[str, Any]) -> None:
        """A ValueError if ``options`` differ from the recorded ones."""
        wrong = self.mismatches(options)
        if wrong:
            raise ValueError(
                f"this schedule was recorded with other options, so it would replay another "
                f"run: {', '.join(wrong)}. Replay it with {self.recipe()} (or result.replay()); "
                f"to try the same choices on other options, pass str(result.schedule)"
            )

    def __reduce__(self) -> Any:
        return (Schedule, (str(self), self.options, self.program))


def recipe(program: str, schedule: str, options: dict[str, Any]) -> str:
    """``run(program, schedule='0110', seed=3)``: a replay call, as text."""
    parts = [program, f"schedule={schedule!r}"]
    parts += [f"{k}={v!r}" for k, v in options.items() if RECIPE_DEFAULTS.get(k, k) != v]
    return f"run({', '.join(parts)})"


def _program_name(program: Any) -> str:
    """How a recipe names the program: its name if it is a plain top-level function."""
    name = getattr(program, "__name__", "")
    plain = name.isidentifier() and getattr(program, "__qualname__", "") == name
    return name if plain and not getattr(program, "__closure__", None) else "program"


# --------------------------------------------------------------------------------------------
# Deadlock reports.


@dataclass
class DeadlockReport:
    """What the detector found: a cycle of waits, or threads that nothing is left to wake."""

    kind: str  # "cycle" or "stuck"
    time: float
    waits: list[tuple[str, str, list[str]]]  # (who, what it waits for, who holds that)
    holds: dict[str, list[str]] = field(default_factory=dict)
    schedule: str = ""
    #: how each wait names its ``by`` ("held by" unless given: "to be run by", "which is")
    links: list[str] = field(default_factory=list)
    #: what each waiter is: "thread" (all of them, when empty) or another node's kind
    #: ("coroutine"); a coroutine is named "coroutine NAME" in ``waits`` and ``holds``
    kinds: list[str] = field(default_factory=list)

    @property
    def cycle(self) -> list[str]:
        """The threads (and coroutines) in the cycle, in wait-for order."""
        return [w[0] for w in self.waits]

    def _who(self) -> str:
        """``2 threads and 1 coroutine``: how many of each kind wait (threads first)."""
        kinds = self.kinds or ["thread"] * len(self.waits)
        counts = {k: kinds.count(k) for k in dict.fromkeys(["thread", *kinds]) if k in kinds}
        return " and ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in counts.items())

    def text(self) -> str:
        threads_only = all(k == "thread" for k in self.kinds)
        if self.kind == "cycle":
            who = f"{len(self.waits)} threads" if threads_only else self._who()
            head = (
                f"DEADLOCK at t={self.time:g} us: {who} wait for each other "
                f"in a cycle; none can ever go on."
            )
        elif threads_only:
            head = (
                f"STUCK at t={self.time:g} us: the run ended with {len(self.waits)} thread(s) "
                f"still blocked and nothing left that could wake them."
            )
        else:
            head = (
                f"STUCK at t={self.time:g} us: the run ended with {self._who()} still "
                f"waiting and nothing left that could wake them."
            )
        lines = [head]
        links = self.links or ["held by"] * len(self.waits)
        for (thread, what, by), link in zip(self.waits, links):
            who = f", {link} {' and '.join(by)}" if by else ""
            lines.append(f"  {thread} waits for {what}{who}")
        for thread, held in self.holds.items():
            if held:
                lines.append(f"  {thread} holds {', '.join(held)}")
        if self.schedule:
            how = self.schedule.recipe() if isinstance(self.schedule, Schedule) else None
            lines.append(f"  replay it with {how or f'schedule={self.schedule!r}'}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def _repr_pretty_(self, p, cycle):  # IPython shows the text, not the dataclass
        p.text(self.text())


# --------------------------------------------------------------------------------------------
# Results.


@dataclass
class RunResult:
    """How a run ended: "completed", "deadlock", "stuck", "crashed" or "time limit"; or
    "paused" at a choice point, for a ``Pause`` policy (``sim.paused``, ``sim.choose``)."""

    outcome: str
    time: float
    steps: int
    schedule: str
    deadlock: DeadlockReport | None
    error: BaseException | None
    sim: Simulation = field(repr=False)

    @property
    def ok(self) -> bool:
        return self.outcome == "completed"

    @property
    def warnings(self) -> list[str]:
        """What went wrong without stopping the run: a thread that ended holding a lock."""
        return self.sim.warnings

    def recipe(self) -> str:
        """The call that replays this run, as text: ``run(program, schedule='0110', seed=3)``."""
        return self.sim.schedule.recipe()

    def replay(self) -> RunResult:
        """Run the same program again with the same seed, CPUs, ``until``, options and schedule:
        a new result with the same outcome, time and schedule."""
        sim = self.sim
        if sim._program is None:
            raise ValueError(
                "this result's simulation was not started by run(program, ...), so there is no "
                f"program to run again; build the same threads in Simulation(schedule=...) with "
                f"the schedule {self.schedule!r}"
            )
        options = {k: v for k, v in sim._options.items() if k not in RECIPE_DEFAULTS}
        until = self.schedule.options.get("until") if isinstance(self.schedule, Schedule) else None
        return run(sim._program, until=until, schedule=self.schedule, **options)

    def __str__(self) -> str:
        s = (
            f"{self.outcome} at t={self.time:g} us after {self.steps} steps, "
            f"schedule={self.schedule!r}"
        )
        if self.deadlock:
            s += "\n" + self.deadlock.text()
        if self.error:
            s += f"\n{type(self.error).__name__}: {self.error}"
        for w in self.warnings:
            s += f"\nwarning: {w}"
        return s


def simulation_of(
    x: Simulation | RunResult,
    *,
    needs_trace: bool = False,
    untraced: str = "this simulation ran with trace=False, so there is nothing to measure",
) -> Simulation:
    """The simulation behind ``x``, a ``Simulation`` or a ``RunResult`` (its ``sim``).

    Anything that takes either uses it; a TypeError names what it got instead. With
    ``needs_trace=True`` a simulation that ran with ``trace=False`` is a ValueError whose
    message is ``untraced`` (an analysis says why it needs the trace).
    """
    sim = x.sim if isinstance(x, RunResult) else x
    if not isinstance(sim, Simulation):
        raise TypeError(f"expected a Simulation or a RunResult; got {type(x).__name__}")
    if needs_trace and not sim.tracing and len(sim.trace) == 0:
        raise ValueError(untraced)
    return sim


# --------------------------------------------------------------------------------------------
# The simulation.


class Simulation:
    """A seeded, replayable world of simulated threads, host CPUs and shared objects.

    ``policy`` decides who moves when several threads are ready at the same instant:
    ``"first-come"`` (default), ``"random"`` (seeded by ``seed``), or give ``schedule="0110"``
    to replay a recorded run. ``expand=True`` makes ``x.increment()`` the three steps a CPU
    takes (load, add, store) instead of one.

    A run never hangs: it stops with ``StepLimitExceeded`` after ``max_steps`` steps, or
    ``max_steps_per_instant`` steps per thread without simulated time moving on (a thread that
    spins), and with ``TimeLimitExceeded`` after ``time_limit_s`` seconds of wall-clock time
    (None: 30 s, or what an enclosing ``time_budget`` says). A thread that ends holding a lock
    is a warning in ``result.warnings`` (``on_exit_holding="raise"``: a ``LockHeldAtExit``).
    """

    def __init__(
        self,
        seed: int = 0,
        cpus: int = 1,
        policy: str | Policy = "first-come",
        schedule: str | None = None,
        trace: bool = True,
        expand: bool = True,
        max_steps: int = 5_000_000,
        max_steps_per_instant: int = 100_000,
        on_deadlock: str = "return",
        on_crash: str = "raise",
        time_limit_s: float | None = None,
        on_exit_holding: str = "warn",
    ):
        validate.whole("seed", seed, error=TypeError)
        validate.whole("cpus", cpus, 1, kind="the number of host CPUs, a whole number", verb="is")
        validate.choice("on_deadlock", on_deadlock, ("return", "raise"))
        validate.choice("on_crash", on_crash, ("return", "raise"))
        validate.choice("on_exit_holding", on_exit_holding, ("warn", "raise", "ignore"))
        validate.flag("trace", trace)
        validate.flag("expand", expand)
        for name, limit in (
            ("max_steps", max_steps),
            ("max_steps_per_instant", max_steps_per_instant),
        ):
            validate.whole(name, limit, 1, type_error=TypeError)
        if time_limit_s is not None:
            check_time_limit("time_limit_s", time_limit_s)
        self.seed = seed
        self.env = simpy.Environment()
        self.rng = random.Random(seed * 7919 + 17)  # for the models' own randomness
        self.policy = make_policy(policy, seed, schedule)
        self.tracing = bool(trace)
        self.trace = TraceBuffer()
        # self.record(kind, tid, oid, arg) appends one event at the current time; with
        # tracing off it does nothing. It is bound here, per simulation, to a plain function
        # (no method call, no tracing test) because every primitive calls it on every step.
        # It reads SimPy's private Environment._now, not the public env.now property: that is
        # 22 ns against 55 ns a read, measured as 2.5-6% more traced mutex hand-offs per
        # second (bench/run.py's mutex_pingpong). pyproject.toml keeps simpy below 5, and
        # tests/engine/test_kernel.py checks that _now still exists.
        if self.tracing:
            add, env = self.trace.record, self.env  # extends a flat list by five fields
            self.record = lambda kind, tid, oid, arg: add((env._now, kind, tid, oid, arg))
        else:
            self.record = self._record_nothing
        self.expand = expand
        self.max_steps = max_steps
        self.max_steps_per_instant = max_steps_per_instant
        self.on_deadlock = on_deadlock
        self.on_crash = on_crash
        self.objects: list[Any] = []
        self.threads: list[Thread] = []
        self._thread_by_char: dict[str, Thread] = {}
        self._ready: list[Thread] = []
        self._ticket = 0
        self._choices: list[str] = []
        self._steps = 0
        self._instant_steps = 0
        self._stop: tuple[str, Any] | None = None
        self._paused: list[Thread] | None = None  # who could move, while a Pause policy waits
        self._chosen: Thread | None = None  # the caller's pick at that pause (sim.choose)
        self._wait_sources: list[WaitSource] = []  # see watch_waits
        self._result: RunResult | None = None
        self.current: Thread | None = None  # the thread taking a step; None outside run()
        #: called with each thread just before it takes a step (None: nobody watches); the
        #: interleaving explorer uses it to see every step, not only the choice points
        self.on_step: Callable[[Thread], None] | None = None
        self._labels: dict[tuple[str, str], int] = {}
        self._extensions: dict[str, Any] = {}  # see extension()
        self.model: Any = None  # what the program returned (it may set it first, for callbacks)
        self.cpus = HostCPUs(self, cpus)
        self.time_limit_s = time_limit_s
        self.on_exit_holding = on_exit_holding
        self.warnings: list[str] = []  # see RunResult.warnings
        # Never hang (see _dispatch, _over_budget, _step): sub-generator resumptions, where the
        # next look at the clock is due, the run's wall-clock deadline, who spins (when counted).
        self._sub, self._sub_limit, self._sub_at_instant = 0, _CLOCK_EVERY, 0
        self._check_at = min(max_steps, _CLOCK_EVERY)
        self._spin_n = 0
        self._deadline = math.inf
        self._limit_s = DEFAULT_TIME_LIMIT_S
        self._spinners: dict[Thread, int] | None = None
        # What result.replay() needs: the program (run() sets it), the options, ``until``.
        self._program: Callable[[Simulation], Any] | None = None
        self._program_name = "program"
        self._until: float | None = None
        self._options: dict[str, Any] = {
            "seed": seed,
            "cpus": cpus,
            "expand": expand,
            "max_steps": max_steps,
            "max_steps_per_instant": max_steps_per_instant,
            "trace": trace,
            "on_deadlock": on_deadlock,
            "on_crash": on_crash,
            "time_limit_s": time_limit_s,
            "on_exit_holding": on_exit_holding,
        }
        if isinstance(policy, str):
            self._options["policy"] = policy
        recorded = getattr(self.policy, "schedule", None)
        if isinstance(recorded, Schedule):
            recorded.refuse(self._options)

    # -- bookkeeping -------------------------------------------------------------------------

    @property
    def now(self) -> float:
        """Simulated time in microseconds."""
        return self.env.now

    @property
    def schedule(self) -> Schedule:
        """The choices made so far, one character per choice point, with the options that
        replay them (a ``Schedule``, which is a ``str``)."""
        shaping = {k: self._options[k] for k in RECIPE_DEFAULTS if k != "until"}
        shaping["until"] = self._until
        return Schedule("".join(self._choices), shaping, self._program_name)

    @property
    def paused(self) -> list[Thread]:
        """The threads that could take the next step while the run is paused at a choice
        point (a ``Pause`` policy); empty when it is not paused."""
        return list(self._paused or ())

    def choose(self, who: str | Thread) -> Thread:
        """At a pause, pick the thread (or its schedule character) that takes the next step;
        ``run()`` then goes on. A thread that cannot move now is refused, naming those that
        can."""
        if not self._paused:
            state = "has ended" if self._result is not None else "is not paused at a choice"
            raise ValueError(f"who: the run {state}; there is nothing to choose")
        for t in self._paused:
            if who is t or who == t.char:
                self._chosen, self._paused = t, None
                return t
        allowed = ", ".join(f"{t.char} ({t.name})" for t in self._paused)
        raise ValueError(f"who: thread {who!r} cannot move now; the ones that can are {allowed}")

    # -- the interface for primitive authors ---------------------------------------------------
    # register, label, record, make_ready, block, block_for, wake (and extension): see the
    # module docstring. Nothing outside this module touches a Simulation's underscore names.

    def register(self, obj: Any) -> int:
        """Give a new shared object its object id (``oid``), the number trace events name it by.

        Call it once, in the object's constructor (``Waitable`` does it for you); the object
        is kept in ``sim.objects`` at that index, so the trace table can print its name.
        """
        self.objects.append(obj)
        return len(self.objects) - 1

    def record(self, kind: int, tid: int, oid: int, arg: Any) -> None:
        """Append one trace event at the current time: what happened (``kind``, a
        ``tracebuf`` constant such as ``tb.ACQUIRE``), by which thread (``tid``, -1 for none),
        to which object (``oid``, from ``register`` or ``label``) and a kind-specific ``arg``.

        A primitive records every change of state it makes, so the trace, the analyses and the
        widgets see it. With ``trace=False`` it does nothing. It is not a step: nobody else
        gets a turn. ``__init__`` replaces this method, per simulation, by a plain function
        that does the same without a method call (it is on the hot path).
        """

    @staticmethod
    def _record_nothing(kind: int, tid: int, oid: int, arg: Any) -> None:
        pass

    def label(self, kind: str, name: str) -> int:
        """The object id of a named label, for an event about a string rather than an object:
        ``sim.record(tb.OP, t.tid, sim.label("note", "enter handler"), None)`` shows a note in
        the trace. Made on first use; the same ``(kind, name)`` always gives the same id."""
        oid = self._labels.get((kind, name))
        if oid is None:
            oid = self._labels[(kind, name)] = self.register(_Label(kind, name))
        return oid

    def extension(self, key: str, factory: Callable[[], _T]) -> _T:
        """This simulation's own object for a layer above the kernel: the one kept under
        ``key``, made by ``factory()`` on first use and kept for the simulation's life.

        Layers above the kernel keep their per-simulation state here instead of setting
        attributes on the ``Simulation`` (the thread-safety annotations keep their mode,
        capabilities and violations; ``qemu_get_aio_context`` its main AioContext). Name the
        key after your module, e.g. ``"annotations.tsa"``.
        """
        store = self._extensions
        if key not in store:
            store[key] = factory()
        return store[key]

    def mark(self, name: str, since: float | None = None) -> None:
        """Record that something finished (a request, a guest operation), for throughput and,
        with ``since=start_time``, latency. Not a step: it does not give others a turn."""
        oid = self.label("mark", name)
        self.record(
            tb.MARK,
            self.current.tid if self.current else -1,
            oid,
            None if since is None else self.env.now - since,
        )

    # -- threads -----------------------------------------------------------------------------

    def spawn(
        self, name: str, body: Callable[..., Any], *args: Any, daemon: bool = False, **kwargs: Any
    ) -> Thread:
        """Create a thread named ``name`` running ``body(*args, **kwargs)``, a generator.

        A ``daemon`` thread (an event loop, say) may still be waiting when the run ends without
        that counting as stuck. A daemon that never waits (one that polls with ``sleep()``
        forever) keeps the run going: give ``run()`` an ``until`` then.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a thread needs a non-empty name; got {name!r}")
        if any(t.name == name for t in self.threads):
            raise ValueError(f"there is already a thread named {name!r}")
        if len(self.threads) >= MAX_THREADS:
            raise ValueError(f"a simulation can have at most {MAX_THREADS} threads")
        gen = body(*args, **kwargs)
        if not hasattr(gen, "send"):
            raise TypeError(
                f"the body of thread {name!r} must be a generator function (one that uses "
                f"yield); {getattr(body, '__name__', body)!r} returned {type(gen).__name__}"
            )
        t = Thread(self, name, gen, len(self.threads))
        t.daemon = daemon
        self.threads.append(t)
        self._thread_by_char[t.char] = t
        parent = self.current  # the thread whose step spawns it; None before run()
        self.record(tb.SPAWN, t.tid, t.oid, parent.tid if parent is not None else -1)
        self.make_ready(t)
        return t

    def make_ready(self, thread: Thread, value: Any = None) -> None:
        """Put ``thread`` on the ready list; its ``yield`` returns ``value``. Records nothing.

        A primitive that hands itself straight to a waiter uses it and records the hand-off
        itself (a mutex records the new owner's ``ACQUIRE``, which is the wake-up); otherwise
        use ``wake``, which records a ``WAKE``.
        """
        thread.state = READY
        thread.blocked_on = None
        thread._value = value
        self._ticket += 1
        thread.ticket = self._ticket
        self._ready.append(thread)

    # -- blocking and waking (used by the primitives) ------------------------------------------

    def block(self, thread: Thread, on: Waitable) -> bool:
        """Park ``thread`` on ``on``; check the wait-for graph for a cycle. Returns False.

        A primitive's step that must wait puts the thread on ``on.waiters`` and ends with
        ``return sim.block(thread, self)``: the thread is parked until ``wake`` or
        ``make_ready``, the trace gets a ``BLOCK`` naming ``on``'s first holder, and a
        deadlock through ``on.holders()`` stops the run with a report.
        """
        thread.state = BLOCKED
        thread.blocked_on = on
        holders = on.holders()
        self.record(tb.BLOCK, thread.tid, on.oid, holders[0].tid if holders else -1)
        # A cycle of threads needs a holder that waits too; with only threads in the graph, a
        # free-running holder (the common case: a hand-over) needs no search.
        if holders and (self._wait_sources or any(h.state == BLOCKED for h in holders)):
            cycle = self._find_cycle(thread)
            if cycle:
                self._stop = ("deadlock", self._report("cycle", cycle))
        return False

    def block_for(self, thread: Thread, on: Waitable, us: float | None) -> bool:
        """Park ``thread`` on ``on`` for at most ``us`` microseconds (None: no limit), for a
        timed wait (``qemu_cond_timedwait``, a poll with a deadline). Returns False, like
        ``block``.

        If the time runs out first the thread is taken off ``on.waiters`` and goes on with the
        value ``TIMED_OUT``.
        """
        thread._episode += 1
        if us is not None:
            episode = thread._episode

            def expire(_ev: Any) -> None:
                still = thread.state == BLOCKED and thread.blocked_on is on
                if still and thread._episode == episode:
                    on.waiters.remove(thread)
                    self.wake(thread, on, TIMED_OUT)

            self.env.timeout(us).callbacks.append(expire)
        return self.block(thread, on)

    def wake(self, thread: Thread, on: Waitable, value: Any = None) -> None:
        """Make a thread blocked on ``on`` ready again (its ``yield`` returns ``value``) and
        record a ``WAKE``. The primitive takes it off ``on.waiters`` first (an event's ``set``,
        a semaphore's ``post``)."""
        self.record(tb.WAKE, thread.tid, on.oid, -1)
        self.make_ready(thread, value)

    def watch_waits(self, source: WaitSource) -> None:
        """Add ``source`` to the wait-for graph: nodes that wait without being threads (a
        coroutine parked in a ``CoMutex``'s queue) and edges the kernel cannot see by itself.

        The kernel's own graph is threads and the ``holders()`` of what they block on. A layer
        above that parks its own kind of waiter registers one ``WaitSource`` per simulation
        (keep it in ``extension``) and calls ``check_waits(node)`` whenever a node starts to
        wait; the end of the run asks every source for its ``waiting()`` nodes.
        """
        if source not in self._wait_sources:
            self._wait_sources.append(source)

    def check_waits(self, node: Any) -> bool:
        """Check the wait-for graph for a cycle through ``node``, which has just started to wait
        (a coroutine parked in a lock's queue, say), as ``block`` does for a thread. A cycle
        stops the run with a deadlock report naming every thread and node in it; returns True
        then, else False. ``node`` comes from a ``WaitSource`` given to ``watch_waits``.
        """
        cycle = self._find_cycle(node)
        if cycle is None:
            return False
        if self._stop is None:
            self._stop = ("deadlock", self._report("cycle", cycle))
        return True

    def _targets(self, node: Any, settled: bool) -> list[Any]:
        """Whom ``node`` waits for: a blocked thread the holders of what it blocks on, and
        whatever the watched sources add (``settled``: the run is over, nothing can move)."""
        sources = self._wait_sources
        if isinstance(node, Thread):
            if node.state != BLOCKED:
                return []
            on = node.blocked_on
            out = on.holders() if on is not None else []
            if not sources:
                return out
            out = list(out)
        else:
            out = []
        for src in sources:
            out += [e[0] for e in src.edges(node, settled)]
        return out

    def _find_cycle(
        self, start: Any, settled: bool = False, anywhere: bool = False
    ) -> list[Any] | None:
        """Depth-first search of the wait-for graph from ``start``; the cycle through it, if any
        (``anywhere``: any cycle reachable from it). Nodes are threads, and the nodes of the
        watched sources; ``settled`` adds the edges that hold only once nothing can move."""
        path: list[Any] = []
        if not self._wait_sources and not anywhere:  # threads alone: the hot path of block()
            seen_tids: set[int] = set()

            def visit_thread(t: Thread) -> bool:
                path.append(t)
                on = t.blocked_on
                if on is not None and t.state == BLOCKED:
                    for h in on.holders():
                        if h is start:
                            return True
                        if h.tid not in seen_tids and h.state == BLOCKED:
                            seen_tids.add(h.tid)
                            if visit_thread(h):
                                return True
                path.pop()
                return False

            return path if visit_thread(start) else None
        index: dict[int, int] = {}  # id -> position on the path
        seen: set[int] = set()
        found: list[int] = []
        targets = self._targets

        def visit(n: Any) -> bool:
            index[id(n)] = len(path)
            path.append(n)
            for h in targets(n, settled):
                if h is start or (anywhere and id(h) in index):
                    found.append(index[id(h)])
                    return True
                k = id(h)
                if k not in seen and (h.state == BLOCKED or not isinstance(h, Thread)):
                    seen.add(k)
                    if visit(h):
                        return True
            path.pop()
            del index[id(n)]
            return False

        return path[found[0] :] if visit(start) else None

    @staticmethod
    def _title(node: Any) -> str:
        """How a report names a node: a thread by its name, any other node by its ``title``."""
        return node.name if isinstance(node, Thread) else node.title

    def _edges(self, node: Any, settled: bool) -> list[tuple[Any, str, str, list[str]]]:
        """``node``'s waits for a report: ``(target, what, link, by)``."""
        out = []
        if isinstance(node, Thread):
            if node.state != BLOCKED:
                return []
            on = node.blocked_on
            holders = on.holders() if on is not None else []
            by = [self._title(h) for h in holders]
            out = [(h, on.label(), on.holder_link, by) for h in holders]
        for src in self._wait_sources:
            out += [(t, what, link, [self._title(t)]) for t, what, link in src.edges(node, settled)]
        return out

    def _report(self, kind: str, nodes: Iterable[Any], settled: bool = False) -> DeadlockReport:
        nodes = list(nodes)
        waits, links, kinds = [], [], []
        holds = {}
        for i, n in enumerate(nodes):
            name = self._title(n)
            if isinstance(n, Thread):
                on = n.blocked_on
                by = [self._title(h) for h in on.holders()] if on is not None else []
                what = on.label() if on is not None else "?"
                link = on.holder_link if on is not None else "held by"
                if kind == "cycle" and self._wait_sources:  # the edge to the next one
                    nxt = nodes[(i + 1) % len(nodes)]
                    edge = next((e for e in self._edges(n, settled) if e[0] is nxt), None)
                    if edge is not None:
                        _t, what, link, by = edge
                if not by and kind == "stuck" and on is not None:
                    what += f" ({on.wait_reason()})"
                kinds.append("thread")
                holds[name] = [h.name for h in n.held]
            else:
                edges = self._edges(n, settled)
                if kind == "cycle":
                    nxt = nodes[(i + 1) % len(nodes)]
                    edges = [e for e in edges if e[0] is nxt] or edges
                if edges:
                    _t, what, link, by = edges[0]
                    by = list(dict.fromkeys(b for e in edges if e[1] == what for b in e[3]))
                else:
                    what, link, by = f"{n.wait_label()} ({n.wait_reason()})", "held by", []
                kinds.append(n.kind)
                holds[name] = n.held_labels()
            waits.append((name, what, by))
            links.append(link)
        if all(k == "thread" for k in kinds) and all(x == "held by" for x in links):
            links, kinds = [], []  # a report of threads alone, as it always was
        return DeadlockReport(kind, self.now, waits, holds, self.schedule, links, kinds)

    # -- running -----------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Take zero-time steps until no thread is ready at this instant."""
        ready = self._ready
        policy = self.policy
        trace = self.trace if self.tracing else None
        step = self._step
        on_step = self.on_step
        # One comparison a step keeps every limit: the step budget, the per-instant budget and
        # the next look at the wall clock (_check_at: whichever of max_steps and the next look
        # comes first) come down to `budget`; _over_budget sorts out which one it was, and
        # gives the loop its next budget (or raises).
        budget = min(self._check_at - self._steps, self.max_steps_per_instant - self._instant_steps)
        n = 0
        while ready and self._stop is None:
            if len(ready) > 1:
                t, self._chosen = self._chosen or policy.choose(self, ready), None
                if t is None:  # the policy pauses here: run() returns, choose() picks
                    self._paused = list(ready)
                    break
                self._choices.append(t.char)
                if trace is not None:
                    trace.record((self.env._now, tb.CHOICE, t.tid, -1, len(ready)))  # see record
            else:
                t = ready[0]
            n += 1
            if n > budget:
                budget = self._over_budget(t, n)
            if on_step is not None:
                on_step(t)
            if not step(t):
                ready.remove(t)
        self._steps += n
        self._instant_steps += n
        if trace is not None:
            trace.maybe_pack()

    def _over_budget(self, t: Thread, n: int) -> int:
        """The dispatch loop's budget ran out at its ``n``-th step, about to step ``t``: look
        at the clock, raise if a limit is really passed, else return the loop's next budget."""
        extra = n + self._sub_since()  # sub-generator resumptions count as steps too
        steps, instant = self._steps + self._sub + n, self._instant_steps + extra
        if time.monotonic() > self._deadline:
            raise self._out_of_time()
        if steps > self.max_steps:
            where = where_is(t)
            raise StepLimitExceeded(
                f"the run took more than {self.max_steps:,} steps (t={self.now:g} us); {where}. "
                f"A loop with no end keeps a run going for ever; if the program is really that "
                f"long, raise max_steps",
                where,
            )
        spinners = self._spinners
        if spinners is not None and n > self._spin_n:  # counting who steps, to name spinners
            self._spin_n = n
            spinners[t] = spinners.get(t, 0) + 1
            if sum(spinners.values()) >= min(10_000, self.max_steps_per_instant):
                raise self._spinning(spinners)
            return n  # count the next step too
        self._spinners = None  # (a count from an earlier instant)
        # Valid work can take many steps at one instant (4 threads x 9,000 increments): the
        # limit is max_steps_per_instant for each thread.
        limit = self.max_steps_per_instant * max(1, len(self.threads))
        if instant > limit:
            self._spinners, self._spin_n = {t: 1}, n
            return n
        self._check_at = min(self.max_steps, steps + _CLOCK_EVERY) - self._sub
        return n + min(self.max_steps - steps, limit - instant, _CLOCK_EVERY)

    def _sub_since(self) -> int:
        """Sub-generator resumptions since simulated time last moved on."""
        return self._sub - self._sub_at_instant

    def _spinning(self, spinners: dict[Thread, int]) -> StepLimitExceeded:
        total = sum(spinners.values())
        top = sorted(spinners.items(), key=lambda kv: -kv[1])
        named = [t for t, k in top if k * 10 >= total] or [top[0][0]]
        who = "; ".join(
            f"{where_is(t)} ({spinners[t]:,} of the last {total:,} steps)" for t in named
        )
        return StepLimitExceeded(
            f"more than {self.max_steps_per_instant * max(1, len(self.threads)):,} steps at "
            f"t={self.now:g} us without time moving on "
            f"({self.max_steps_per_instant:,} per thread): "
            f"{' and '.join(t.name for t in named)} seem{'s' if len(named) == 1 else ''} to be "
            f"spinning: {who}. A loop that waits for something (a flag, trylock(), "
            f"aio_poll(ctx, False)) must let time pass: put a sleep() or compute() in it, or "
            f"wait with a blocking call; if the program really takes that many steps at one "
            f"instant, raise max_steps_per_instant",
            who,
        )

    def _sub_over(self, t: Thread, gen: Any, depth: int) -> None:
        """``t`` yielded the sub-generator ``gen`` at nesting ``depth``: refuse one the kernel
        cannot drive or runaway nesting; if its resumptions used up the dispatch's budget, look
        at the clock and the limits (a thread that never yields an operation never returns to
        the dispatch loop)."""
        if inspect.getgeneratorstate(gen) != "GEN_CREATED":
            raise MisuseError(
                f"thread {t.name} yielded the generator {gen.__name__}() that has already "
                f"started (or finished); {where_is(t)}. Yield a fresh one: yield helper(), not a "
                f"generator object kept from before (or running in another thread)"
            )
        if depth >= MAX_NESTING:
            raise MisuseError(
                f"thread {t.name} nests sub-generators more than {MAX_NESTING} deep; "
                f"{where_is(t)}. A generator that yields itself (def body(): yield body()) "
                f"would grow until memory runs out: loop instead, or give the recursion an end"
            )
        if self._sub <= self._sub_limit:
            return
        self._sub_limit = self._sub + _CLOCK_EVERY
        if time.monotonic() > self._deadline:
            raise self._out_of_time()
        extra = self._sub_since()
        limit = self.max_steps_per_instant * max(1, len(self.threads))
        if self._steps + self._sub > self.max_steps or self._instant_steps + extra > limit:
            raise self._spinning({t: extra})

    def _out_of_time(self, frame: FrameType | None = None) -> TimeLimitExceeded:
        """The error for a run over its wall-clock budget, naming the thread that was running
        and its line (``frame``: where a signal interrupted it)."""
        self._deadline = -math.inf  # every later look at the clock says so too
        where = where_is(self.current, frame)
        return TimeLimitExceeded(
            f"the run used up its time budget of {self._limit_s:g} s of wall-clock time "
            f"(at t={self.now:g} us of simulated time): {where}. A loop that never ends, or "
            f"never waits, keeps a run going for ever: give it a way out (an end condition, a "
            f"sleep(), a blocking wait); run(..., until=...) stops at a simulated time, and "
            f"time_limit_s=... gives a long program more time",
            where,
        )

    def _step(self, t: Thread) -> bool:
        """Advance thread ``t`` by one operation. True if it is still ready afterwards."""
        self.current = t
        stack = t._stack
        value = t._value
        exc = None
        while True:
            gen = stack[-1]
            try:
                if exc is not None:
                    item = gen.throw(exc)
                    exc = None
                else:
                    item = gen.send(value)
            except StopIteration as stop:
                stack.pop()
                if stack:
                    value = stop.value
                    continue
                t.state = DONE
                self.record(tb.EXIT, t.tid, t.oid, -1)
                if t.held and self.on_exit_holding != "ignore":
                    self._exit_holding(t)
                for j in t.joiners:
                    self.wake(j, t)
                t.joiners.clear()
                return False
            except SimulationError:
                raise
            except Exception as e:  # the thread's own bug, e.g. a failed assert
                if len(stack) > 1:
                    stack.pop()
                    exc = e
                    continue
                t.state = DONE
                self._stop = (
                    "crashed",
                    ThreadCrashed(
                        f"thread {t.name} raised {type(e).__name__} at t={self.now:g} us: {e}"
                    ),
                )
                self._stop[1].__cause__ = e
                return False
            t._value = None
            if item.__class__ is Step:
                return item.fn(t)
            if isinstance(item, Op):
                return item._execute(self, t)
            if item is None:
                return _YIELD._execute(self, t)
            if item.__class__ is GeneratorType:  # a sub-generator: counts as a step
                self._sub += 1
                if (
                    self._sub > self._sub_limit
                    or len(stack) >= MAX_NESTING
                    or inspect.getgeneratorstate(item) != "GEN_CREATED"
                ):
                    self._sub_over(t, item, len(stack))
                stack.append(item)
                value = None
                continue
            raise TypeError(
                f"thread {t.name} yielded {item!r}; a thread may yield an operation such as "
                f"lock.lock(), x.load(), compute(us) or sleep(us), or a generator (from a "
                f"function with yield in it; an async def coroutine cannot be a step)"
            )

    #: The simulation whose ``run`` is executing right now (None outside a run), so code that
    #: names a global object (the block-graph lock, say) can find this simulation's one.
    active: Simulation | None = None

    def _exit_holding(self, t: Thread) -> None:
        held = ", ".join(h.label() for h in t.held)
        message = (
            f"thread {t.name} ended at t={self.now:g} us while holding {held}: nobody can "
            f"take it any more, so a thread that waits for it waits for ever; unlock it "
            f"before the thread returns (on every path, an early return too)"
        )
        if self.on_exit_holding == "raise":
            raise LockHeldAtExit(message)
        self.warnings.append(message)

    def run(self, until: float | None = None) -> RunResult:
        """Run until every thread has finished, a deadlock is found, or time ``until`` (us).

        However the run ends, even by an exception (a policy may raise one to pause it),
        ``current`` is None afterwards: no thread is taking a step outside ``run``. It never
        hangs: see the class's docstring for its step and time limits.
        """
        if until is not None:
            validate.duration(
                "until",
                until,
                says="must be None (no limit) or a time in microseconds >= 0",
                type_error=TypeError,
            )
        if self._result is not None and self._result.outcome != "time limit":
            return self._result
        self._until = until
        limit = self.time_limit_s if self.time_limit_s is not None else _budget_s
        self._limit_s = limit
        self._deadline = time.monotonic() + limit
        previous, Simulation.active = Simulation.active, self
        alarm = _Alarm(self, limit)
        try:
            return self._run(until)
        except _Abort as stop:
            raise stop.error from None
        finally:
            alarm.disarm()
            Simulation.active = previous
            self.current = None

    def _run(self, until: float | None) -> RunResult:
        env = self.env
        while self._stop is None:
            self._dispatch()
            if self._paused is not None:  # not an end: no result is kept, run() goes on
                return RunResult("paused", self.now, self._steps, self.schedule, None, None, self)
            if self._stop is not None:
                break
            nxt = env.peek()
            if nxt == math.inf:
                break
            if until is not None and nxt > until:
                if until > env.now:
                    env.run(until=until)
                self._result = self._finish("time limit")
                return self._result
            env.step()
            while env.peek() == env.now:
                env.step()
            self._instant_steps = 0
            self._sub_at_instant = self._sub
        return self._finish(None)

    def _finish(self, forced: str | None) -> RunResult:
        self.current = None
        error = None
        report = None
        if forced:
            outcome = forced
        elif self._stop is not None:
            outcome, payload = self._stop
            if outcome == "deadlock":
                report = payload
            else:
                error = payload
        else:
            blocked = [t for t in self.threads if t.state == BLOCKED and not t.daemon]
            # nodes that wait without being threads (coroutines parked in a lock's queue) and
            # are still waiting make the run stuck, even if only daemon loops are left
            waiting = [n for src in self._wait_sources for n in src.waiting()]
            # a daemon waiting for a lock someone holds is part of the story too
            blocked += [
                t
                for t in self.threads
                if t.state == BLOCKED
                and t.daemon
                and (blocked or waiting)
                and t.blocked_on is not None
                and t.blocked_on.holders()
            ]
            if blocked or waiting:
                cycle = None
                if self._wait_sources:  # nothing moves any more: every edge holds now
                    for start in blocked + waiting:
                        cycle = self._find_cycle(start, settled=True, anywhere=True)
                        if cycle:
                            break
                if cycle:
                    outcome = "deadlock"
                    report = self._report("cycle", cycle, settled=True)
                else:
                    outcome = "stuck"
                    report = self._report("stuck", blocked + waiting, settled=True)
            else:
                outcome = "completed"
        if outcome in ("completed", "deadlock", "stuck"):
            self.policy.finish(self)
        self._result = RunResult(outcome, self.now, self._steps, self.schedule, report, error, self)
        if report is not None and self.on_deadlock == "raise":
            raise DeadlockError(report)
        if error is not None and self.on_crash == "raise":
            raise error
        return self._result

    def __repr__(self) -> str:
        return (
            f"<Simulation seed={self.seed} t={self.now:g}us threads={len(self.threads)} "
            f"policy={self.policy.name} cpus={self.cpus.n}>"
        )


class _Label:
    """A name that events refer to by number, like an object: a note's text or a mark's name."""

    def __init__(self, kind: str, name: str):
        self.kind = kind
        self.name = name


def run(
    program: Callable[[Simulation], Any], until: float | None = None, **options: Any
) -> RunResult:
    """Build a fresh ``Simulation(**options)``, let ``program(sim)`` spawn its threads, run it.

    Whatever ``program`` returns (its shared variables and locks, say) is kept as
    ``result.sim.model``. To replay ``r = run(prog, policy="random", seed=3)``: ``r.replay()``,
    or ``run(prog, schedule=r.schedule)``, which takes the seed, CPUs, ``until``, ... recorded
    in ``r.schedule`` and refuses different ones (``r.recipe()`` prints the call). A
    hand-written ``schedule="0110"`` is replayed on the options given.
    """
    validate.function(
        "program",
        program,
        kind="a function that takes the Simulation and spawns threads (def program(sim): ...)",
    )
    schedule = options.get("schedule")
    if isinstance(schedule, Schedule):  # a recorded schedule brings its own options
        recorded = schedule.options
        if until is not None:
            schedule.refuse({"until": until})
        until = recorded.get("until")
        for k, v in recorded.items():
            if k != "until":
                options.setdefault(k, v)
    sim = Simulation(**options)
    sim._program, sim._program_name = program, _program_name(program)
    sim.model = program(sim)
    return sim.run(until=until)
