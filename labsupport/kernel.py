"""The simulation kernel: simulated threads on simulated host CPUs, with a scheduler you can steer.

A real QEMU process is a handful of host threads (the main loop, one per vCPU, IOThreads) that
the host kernel interleaves as it likes; a bug shows up once in a thousand runs and never under a
debugger. This kernel runs the same kind of program on SimPy's clock instead: every thread is a
generator, every blocking point (a lock, an event, a CPU, a sleep) goes through the kernel, and
whenever two threads could take the next step at the same instant the kernel asks a *policy*
which one goes. Each choice is written down as one character of a schedule string; give the
string back and the run happens again, event for event. A wait-for graph is checked every time a
thread blocks, so a deadlock stops the run with a report instead of hanging the notebook.

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
- ``simulation_of(x)``: the ``Simulation`` behind a ``Simulation`` or a ``RunResult``.

They also read ``sim.now``, ``sim.current`` (the thread taking a step), ``sim.env`` (SimPy's
clock, for their own time-outs) and ``sim.rng``.

Time is in microseconds. Layer 1 (kernel): imports only SimPy and ``tracebuf``.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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


class StepLimitExceeded(SimulationError):
    """The run took more steps than allowed; a thread is probably spinning."""


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


class Waitable:
    """Anything a thread can block on. Subclasses say who holds it (for the wait-for graph)."""

    kind = "object"

    def __init__(self, sim: Simulation, name: str):
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
        return f"{self.kind} {self.name}"

    def __repr__(self) -> str:
        held = [h.name for h in self.holders()]
        return state_repr(
            self, f"held by {','.join(held)}" if held else "", f"waiters:{len(self.waiters)}"
        )


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
    """Chooses one of the ready threads (listed in the order they became ready)."""

    name = "policy"

    def choose(self, sim: Simulation, ready: list[Thread]) -> Thread:  # pragma: no cover
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
        f"unknown policy {policy!r}; use 'first-come', 'random', a schedule string via "
        f"schedule=..., or a Policy object"
    )


# --------------------------------------------------------------------------------------------
# Deadlock reports.


@dataclass
class DeadlockReport:
    """What the detector found: a cycle of waits, or threads that nothing is left to wake."""

    kind: str  # "cycle" or "stuck"
    time: float
    waits: list[tuple[str, str, list[str]]]  # (thread, what it waits for, who holds that)
    holds: dict[str, list[str]] = field(default_factory=dict)
    schedule: str = ""

    @property
    def cycle(self) -> list[str]:
        """The threads in the cycle, in wait-for order."""
        return [w[0] for w in self.waits]

    def text(self) -> str:
        if self.kind == "cycle":
            head = (
                f"DEADLOCK at t={self.time:g} us: {len(self.waits)} threads wait for each other "
                f"in a cycle; none can ever go on."
            )
        else:
            head = (
                f"STUCK at t={self.time:g} us: the run ended with {len(self.waits)} thread(s) "
                f"still blocked and nothing left that could wake them."
            )
        lines = [head]
        for thread, what, by in self.waits:
            who = f", held by {' and '.join(by)}" if by else ""
            lines.append(f"  {thread} waits for {what}{who}")
        for thread, held in self.holds.items():
            if held:
                lines.append(f"  {thread} holds {', '.join(held)}")
        if self.schedule:
            lines.append(f"  replay it with schedule={self.schedule!r}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def _repr_pretty_(self, p, cycle):  # IPython shows the text, not the dataclass
        p.text(self.text())


# --------------------------------------------------------------------------------------------
# Results.


@dataclass
class RunResult:
    """How a run ended: "completed", "deadlock", "stuck", "crashed" or "time limit"."""

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

    def __str__(self) -> str:
        s = (
            f"{self.outcome} at t={self.time:g} us after {self.steps} steps, "
            f"schedule={self.schedule!r}"
        )
        if self.deadlock:
            s += "\n" + self.deadlock.text()
        if self.error:
            s += f"\n{type(self.error).__name__}: {self.error}"
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
    ):
        validate.whole("seed", seed, error=TypeError)
        validate.whole("cpus", cpus, 1, kind="the number of host CPUs, a whole number", verb="is")
        validate.choice("on_deadlock", on_deadlock, ("return", "raise"))
        validate.choice("on_crash", on_crash, ("return", "raise"))
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
        self._result: RunResult | None = None
        self.current: Thread | None = None  # the thread taking a step; None outside run()
        self._labels: dict[tuple[str, str], int] = {}
        self._extensions: dict[str, Any] = {}  # see extension()
        self.model: Any = None  # what the program returned (it may set it first, for callbacks)
        self.cpus = HostCPUs(self, cpus)

    # -- bookkeeping -------------------------------------------------------------------------

    @property
    def now(self) -> float:
        """Simulated time in microseconds."""
        return self.env.now

    @property
    def schedule(self) -> str:
        """The choices made so far, one character per choice point."""
        return "".join(self._choices)

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
        self.record(tb.SPAWN, t.tid, t.oid, -1)
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
        if holders:
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

    def _find_cycle(self, start: Thread) -> list[Thread] | None:
        """Depth-first search of the wait-for graph from ``start``; the cycle through it, if any."""
        path: list[Thread] = []
        seen: set[int] = set()

        def visit(t: Thread) -> bool:
            path.append(t)
            on = t.blocked_on
            if on is not None and t.state == BLOCKED:
                for h in on.holders():
                    if h is start:
                        return True
                    if h.tid not in seen and h.state == BLOCKED:
                        seen.add(h.tid)
                        if visit(h):
                            return True
            path.pop()
            return False

        return path if visit(start) else None

    def _report(self, kind: str, threads: Iterable[Thread]) -> DeadlockReport:
        waits = []
        holds = {}
        for t in threads:
            on = t.blocked_on
            by = [h.name for h in on.holders()] if on is not None else []
            what = on.label() if on is not None else "?"
            if not by and kind == "stuck" and on is not None:
                what += f" ({on.wait_reason()})"
            waits.append((t.name, what, by))
            holds[t.name] = [h.name for h in t.held]
        return DeadlockReport(kind, self.now, waits, holds, self.schedule)

    # -- running -----------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Take zero-time steps until no thread is ready at this instant."""
        ready = self._ready
        policy = self.policy
        trace = self.trace if self.tracing else None
        step = self._step
        budget = min(self.max_steps - self._steps, self.max_steps_per_instant - self._instant_steps)
        n = 0
        while ready and self._stop is None:
            if len(ready) > 1:
                t = policy.choose(self, ready)
                self._choices.append(t.char)
                if trace is not None:
                    trace.record((self.env._now, tb.CHOICE, t.tid, -1, len(ready)))  # see record
            else:
                t = ready[0]
            n += 1
            if n > budget:
                self._steps += n
                self._instant_steps += n
                self._over_budget(ready)
            if not step(t):
                ready.remove(t)
        self._steps += n
        self._instant_steps += n
        if trace is not None:
            trace.maybe_pack()

    def _over_budget(self, ready: list[Thread]) -> None:
        if self._steps > self.max_steps:
            raise StepLimitExceeded(
                f"the run took more than {self.max_steps:,} steps (t={self.now:g} us); "
                f"raise max_steps if the program is really that long"
            )
        names = ", ".join(x.name for x in ready)
        raise StepLimitExceeded(
            f"more than {self.max_steps_per_instant:,} steps at t={self.now:g} us without time "
            f"moving on: {names} seem to be spinning (a loop with no compute(), sleep() or "
            f"blocking wait can starve everyone else)"
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
            if hasattr(item, "send") and hasattr(item, "throw"):
                stack.append(item)
                value = None
                continue
            raise TypeError(
                f"thread {t.name} yielded {item!r}; a thread may yield an operation such as "
                f"lock.lock(), x.load(), compute(us) or sleep(us), or a generator"
            )

    #: The simulation whose ``run`` is executing right now (None outside a run), so code that
    #: names a global object (the block-graph lock, say) can find this simulation's one.
    active: Simulation | None = None

    def run(self, until: float | None = None) -> RunResult:
        """Run until every thread has finished, a deadlock is found, or time ``until`` (us).

        However the run ends, even by an exception (a policy may raise one to pause it),
        ``current`` is None afterwards: no thread is taking a step outside ``run``.
        """
        if self._result is not None and self._result.outcome != "time limit":
            return self._result
        previous, Simulation.active = Simulation.active, self
        try:
            return self._run(until)
        finally:
            Simulation.active = previous
            self.current = None

    def _run(self, until: float | None) -> RunResult:
        env = self.env
        while self._stop is None:
            self._dispatch()
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
            # a daemon waiting for a lock someone holds is part of the story too
            blocked += [
                t
                for t in self.threads
                if t.state == BLOCKED
                and t.daemon
                and blocked
                and t.blocked_on is not None
                and t.blocked_on.holders()
            ]
            if blocked:
                outcome = "stuck"
                report = self._report("stuck", blocked)
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
    ``result.sim.model``. The usual way to replay: ``r = run(prog, policy="random", seed=3)`` then
    ``run(prog, schedule=r.schedule)`` happens exactly the same way.
    """
    sim = Simulation(**options)
    sim.model = program(sim)
    return sim.run(until=until)
