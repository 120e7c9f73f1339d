"""Real threads: the course's thread programs on host threads, with a watchdog.

QEMU's threads are host threads, and nothing orders their steps but the host's scheduler (and,
in CPython, the GIL). ``run_real(program)`` takes the very programs the simulator runs (the
same generator bodies, ``Shared`` variables, ``QemuMutex``, ``QemuRecMutex``, ``QemuCond``,
``QemuEvent`` and ``QemuSemaphore``) and runs each simulated thread on a host thread of its own:
every yielded step executes on its thread at once, and no scheduler serialises them. A load
and a store of a ``Shared`` variable are plain reads and writes of a Python attribute, so a race
is a real one: rare with the GIL, common on a free-threaded interpreter. What a run saw comes
back as a ``RealResult``: how it ended, the model, the final values, the wall time and, for
every lock, how often it was taken, how often a thread had to wait for it and for how long
(``time.perf_counter_ns``).

A real deadlock would hang the notebook, so every wait here is a timed wait in short slices.
A watchdog (the thread that called ``run_real``) ends a run that can no longer move: a cycle
in the wait-for graph (who holds which lock, who waits for which), every live thread waiting
with nothing running that could wake it, or the wall-clock limit (a thread spinning for ever).
The report names the threads, the locks, the line each thread stands at and, for a thread
caught running, its host stack (``sys._current_frames``). The waiting threads are then woken
with an error and end; a thread that never comes back to the backend (a Python loop without a
``yield``) is interrupted with an asynchronous exception, and one that still runs is left as a
daemon and named in the report. Nothing of one run is left to touch the next.

What differs from the simulator: there is no schedule (nothing replays), ``compute(us)`` spins
a host CPU for that long, ``sleep(us)`` sleeps, and a bare ``yield`` gives up the CPU
(``time.sleep(0)``). Locks are not handed over in arrival order: whoever the host wakes first
takes the lock, as with a pthread mutex. Objects that live only in the simulator (event loops,
coroutines, reader/writer and graph locks) are refused with an error naming them.

Layer 3 (another engine for the same programs): imports the kernel and the primitives.
"""

from __future__ import annotations

import ctypes
import functools
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from types import GeneratorType
from typing import Any

from . import validate
from .kernel import (
    MAX_NESTING,
    Compute,
    MisuseError,
    Note,
    Op,
    Simulation,
    Sleep,
    Step,
    Thread,
    where_is,
)
from .kernel import _Join as Join
from .optional import Unavailable
from .shared import Shared
from .sync import (
    QemuCond,
    QemuEvent,
    QemuMutex,
    QemuRecMutex,
    QemuSemaphore,
    check_cond_wait,
)

#: How long one slice of a wait lasts: how soon a waiting thread sees that its run was ended.
SLICE_S = 0.02
#: How long every live thread must have been waiting, nothing moving, before the run is stuck.
STALL_S = 0.5
#: The longest wall-clock limit a run may ask for.
MAX_TIME_LIMIT_S = 600.0
#: The most runs ``run_real`` makes in one call.
MAX_REPEAT = 1000
#: How long the watchdog waits for ended threads to go before it names them as left running.
GRACE_S = 0.2


class Cancelled(BaseException):
    """Raised inside a host thread whose run the watchdog ended (a BaseException, so that a
    thread body's ``except Exception`` does not swallow it)."""


class NotReal(TypeError):
    """A program yielded something that exists only in the simulator."""


# -- the state of one run ------------------------------------------------------------------------
class _Run:
    """What the host threads of one run share: who holds and who waits for what, who moved."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.waiting: dict[Thread, Any] = {}  # thread -> the twin it waits for
        self.moves: dict[Thread, int] = {}  # thread -> steps taken (each thread writes its own)
        self.twins: dict[Any, Any] = {}  # id(primitive) -> its real twin
        self.twins_lock = threading.Lock()
        self.idents: dict[Thread, int] = {}

    def check(self) -> None:
        if self.cancelled.is_set():
            raise Cancelled()

    def twin(self, prim: Any) -> Any:
        key = id(prim)
        twin = self.twins.get(key)
        if twin is None:
            with self.twins_lock:
                twin = self.twins.get(key)
                if twin is None:
                    twin = self.twins[key] = _TWIN_OF[type(prim)](prim)
        return twin

    def atomic_lock(self, var: Shared) -> threading.Lock:
        key = ("atomic", id(var))
        lock = self.twins.get(key)  # type: ignore[call-overload]
        if lock is None:
            with self.twins_lock:
                lock = self.twins.setdefault(key, threading.Lock())  # type: ignore[call-overload]
        return lock

    def wait_until(self, me: Thread, twin: Any, ready: Callable[[], bool]) -> None:
        """Wait on ``twin``'s condition (its lock held) until ``ready()``, in slices."""
        if ready():
            return
        self.waiting[me] = twin
        try:
            while not ready():
                self.check()
                twin.cond.wait(SLICE_S)
        finally:
            self.waiting.pop(me, None)


@dataclass
class LockUse:
    """How one lock was used in a real run."""

    name: str
    taken: int = 0  # acquisitions
    contended: int = 0  # acquisitions that had to wait
    wait_ns: int = 0  # time spent waiting for it, over all threads

    @property
    def wait_ms(self) -> float:
        return self.wait_ns / 1e6


# -- real twins of the primitives ------------------------------------------------------------------
class _MutexTwin:
    def __init__(self, prim: Any) -> None:
        self.prim = prim
        self.name = prim.name
        self.cond = threading.Condition(threading.Lock())
        self.owner: Thread | None = None
        self.depth = 0
        self.recursive = prim.recursive
        self.use = LockUse(prim.name)

    def holders(self) -> list[Thread]:
        return [self.owner] if self.owner is not None else []

    def lock(self, run: _Run, me: Thread) -> bool:
        start = time.perf_counter_ns()
        with self.cond:
            if self.owner is me:
                if not self.recursive:
                    raise MisuseError(
                        f"{me.name} locked {self.name}, which it already holds: a "
                        f"{type(self.prim).__name__} is not recursive (on real threads it "
                        f"would wait for itself forever); use a QemuRecMutex or unlock first"
                    )
                self.depth += 1
                self.use.taken += 1
                return True
            waited = self.owner is not None
            run.wait_until(me, self, lambda: self.owner is None)
            self.owner, self.depth = me, 1
            self.use.taken += 1
            if waited:
                self.use.contended += 1
                self.use.wait_ns += time.perf_counter_ns() - start
        return True

    def trylock(self, run: _Run, me: Thread) -> bool:
        with self.cond:
            if self.owner is None or (self.recursive and self.owner is me):
                self.owner = me
                self.depth += 1
                self.use.taken += 1
                return True
        return False

    def unlock(self, run: _Run, me: Thread) -> None:
        with self.cond:
            if self.owner is not me:
                holder = f"which {self.owner.name} holds" if self.owner else "which nobody holds"
                raise MisuseError(
                    f"{me.name} unlocked {self.name}, {holder}: only the owner may unlock"
                )
            self.depth -= 1
            if self.depth == 0:
                self.owner = None
                self.cond.notify()


class _CondTwin:
    def __init__(self, prim: Any) -> None:
        self.name = prim.name
        self.cond = threading.Condition(threading.Lock())
        self.tickets: list[list[bool]] = []  # one per waiter, in arrival order: [signalled]

    def holders(self) -> list[Thread]:
        return []

    def wait(self, run: _Run, me: Thread, mutex: _MutexTwin) -> None:
        check_cond_wait(me, self.name, mutex)
        ticket = [False]
        with self.cond:
            self.tickets.append(ticket)
        mutex.unlock(run, me)
        with self.cond:
            try:
                run.wait_until(me, self, lambda: ticket[0])
            finally:
                if not ticket[0] and ticket in self.tickets:
                    self.tickets.remove(ticket)
        mutex.lock(run, me)

    def signal(self, run: _Run, me: Thread, n: int | None) -> None:
        with self.cond:
            count = len(self.tickets) if n is None else min(n, len(self.tickets))
            for ticket in self.tickets[:count]:
                ticket[0] = True
            del self.tickets[:count]
            self.cond.notify_all()


class _EventTwin:
    def __init__(self, prim: Any) -> None:
        self.name = prim.name
        self.cond = threading.Condition(threading.Lock())
        self.is_set = prim.is_set

    def holders(self) -> list[Thread]:
        return []

    def set(self, run: _Run, me: Thread) -> None:
        with self.cond:
            self.is_set = True
            self.cond.notify_all()

    def reset(self, run: _Run, me: Thread) -> None:
        with self.cond:
            self.is_set = False

    def wait(self, run: _Run, me: Thread) -> None:
        with self.cond:
            run.wait_until(me, self, lambda: self.is_set)


class _SemaphoreTwin:
    def __init__(self, prim: Any) -> None:
        self.name = prim.name
        self.cond = threading.Condition(threading.Lock())
        self.count = prim.count

    def holders(self) -> list[Thread]:
        return []

    def post(self, run: _Run, me: Thread) -> None:
        with self.cond:
            self.count += 1
            self.cond.notify()

    def wait(self, run: _Run, me: Thread) -> None:
        with self.cond:
            run.wait_until(me, self, lambda: self.count > 0)
            self.count -= 1


class _ThreadTwin:
    """A thread as something to join: done once its host thread has finished its body."""

    def __init__(self, prim: Thread) -> None:
        self.name = prim.name
        self.thread = prim
        self.cond = threading.Condition(threading.Lock())
        self.done = False

    def holders(self) -> list[Thread]:
        return [] if self.done else [self.thread]

    def finish(self) -> None:
        with self.cond:
            self.done = True
            self.cond.notify_all()

    def join(self, run: _Run, me: Thread) -> None:
        if self.thread is me:
            raise MisuseError(f"{me.name} tried to join itself; that would wait forever")
        with self.cond:
            run.wait_until(me, self, lambda: self.done)


_TWIN_OF: dict[type, Callable[[Any], Any]] = {
    QemuMutex: _MutexTwin,
    QemuRecMutex: _MutexTwin,
    QemuCond: _CondTwin,
    QemuEvent: _EventTwin,
    QemuSemaphore: _SemaphoreTwin,
    Thread: _ThreadTwin,
}


# -- one step, really ----------------------------------------------------------------------------
def _target(fn: Callable[..., Any]) -> tuple[Any, str, dict]:
    """A primitive's step: the object, the method's name, and the arguments it was given."""
    if isinstance(fn, functools.partial):
        return getattr(fn.func, "__self__", None), getattr(fn.func, "__name__", ""), fn.keywords
    owner = getattr(fn, "__self__", None)
    code, cells = getattr(fn, "__code__", None), getattr(fn, "__closure__", None) or ()
    if owner is None and code is not None:  # a lambda a primitive made: the object it closes over
        for var, cell in zip(code.co_freevars, cells):
            if var == "self":
                owner = cell.cell_contents
    return owner, getattr(fn, "__name__", ""), {}


def _spin(us: float, run: _Run) -> None:
    """Use a host CPU for ``us`` microseconds (checking now and then that the run goes on)."""
    end = time.perf_counter_ns() + int(us * 1000)
    while time.perf_counter_ns() < end:
        run.check()


def _nap(us: float, run: _Run) -> None:
    end = time.perf_counter() + us / 1e6
    while True:
        left = end - time.perf_counter()
        if left <= 0:
            return
        run.check()
        time.sleep(min(left, SLICE_S))


def _shared_step(var: Shared, name: str, kw: dict, run: _Run) -> Any:
    """A load or a store is a plain read or write of the attribute: a real race. QEMU's
    ``qatomic_*`` are one indivisible step, so here they run under a lock of the variable's."""
    if name == "_do_load":
        return var._value
    if name == "_do_store":
        var._value = kw["value"]
        return None
    with run.atomic_lock(var):
        old = var._value
        if name == "_do_rmw":
            var._value = old + kw["n"]
            return var._value
        if name == "_do_cmpxchg":
            if old == kw["expected"]:
                var._value = kw["new"]
            return old
    raise NotReal(f"Shared.{name.lstrip('_')} has no real counterpart")


def _execute(item: Any, run: _Run, me: Thread) -> Any:
    """Do one yielded step on this host thread; return what the ``yield`` gives back."""
    if item is None:
        time.sleep(0)  # give up the CPU: what a bare yield means on a host thread
        return None
    if isinstance(item, Step):
        obj, name, kw = _target(item.fn)
        if isinstance(obj, Shared) and type(obj) is Shared:
            return _shared_step(obj, name, kw, run)
        if type(obj) in _TWIN_OF and type(obj) is not Thread:
            twin = run.twin(obj)
            if isinstance(twin, _MutexTwin):
                if name == "_do_lock":
                    return twin.lock(run, me) and None
                if name == "_do_unlock":
                    return twin.unlock(run, me)
                if name == "_do_trylock":
                    return twin.trylock(run, me)
            elif isinstance(twin, _CondTwin):
                if name == "_do_wait":
                    mutex = kw["mutex"]
                    if type(mutex) not in (QemuMutex, QemuRecMutex):
                        raise NotReal(f"a condition's mutex must be a QemuMutex; got {mutex!r}")
                    return twin.wait(run, me, run.twin(mutex))
                if name == "_do_signal":
                    return twin.signal(run, me, kw["n"])
            elif isinstance(twin, _EventTwin | _SemaphoreTwin):
                method = {"_do_set": "set", "_do_reset": "reset", "_do_wait": "wait"}
                method["_do_post"] = "post"
                if name in method:
                    return getattr(twin, method[name])(run, me)
        what = f"{type(obj).__name__}.{name.lstrip('_')}" if obj is not None else repr(item)
        raise NotReal(
            f"thread {me.name} yielded {what}, which runs only in the simulator; real threads "
            f"take Shared, QemuMutex, QemuRecMutex, QemuCond, QemuEvent, QemuSemaphore, "
            f"compute, sleep, note and join"
        )
    if isinstance(item, Compute):
        _spin(item.us, run)
        return None
    if isinstance(item, Sleep):
        _nap(item.us, run)
        return None
    if isinstance(item, Note):
        return None
    if isinstance(item, Join):
        return run.twin(item.target).join(run, me)
    if isinstance(item, Op):
        raise NotReal(
            f"thread {me.name} yielded {type(item).__name__}, which runs only in the simulator"
        )
    raise TypeError(
        f"thread {me.name} yielded {item!r}; a thread may yield an operation such as "
        f"lock.lock(), x.load(), compute(us) or sleep(us), or a generator"
    )


def _body(run: _Run, me: Thread, errors: dict) -> None:
    """Drive ``me``'s generators on this host thread until they finish, as the kernel's
    ``_step`` does: a yielded generator is called, an exception goes to the frame below."""
    run.idents[me] = threading.get_ident()
    stack = me._stack
    value: Any = None
    exc: BaseException | None = None
    moves = 0
    try:
        while stack:
            run.check()
            gen = stack[-1]
            try:
                item = gen.throw(exc) if exc is not None else gen.send(value)
                exc = None
            except StopIteration as stop:
                stack.pop()
                value = stop.value
                continue
            except (Cancelled, MisuseError, NotReal):
                raise
            except Exception as e:  # the thread's own bug: the frame below may catch it
                if len(stack) > 1:
                    stack.pop()
                    exc = e
                    continue
                raise
            moves += 1
            run.moves[me] = moves
            if item.__class__ is GeneratorType:
                if len(stack) >= MAX_NESTING:
                    raise MisuseError(f"thread {me.name} nested generators too deeply")
                stack.append(item)
                value = None
                continue
            value = _execute(item, run, me)
    except Cancelled:
        pass
    except BaseException as e:  # noqa: BLE001 - reported with the run, never lost
        errors[me] = e
    finally:
        for gen in reversed(stack):
            try:
                gen.close()
            except BaseException:  # noqa: BLE001, S110 - a body ended by the watchdog
                pass
        run.twin(me).finish()


# -- results ---------------------------------------------------------------------------------------
@dataclass
class RealResult:
    """What one real run saw.

    ``outcome``: "completed", "deadlock" (a cycle of threads waiting for locks each other
    holds), "stuck" (every live thread waiting, nothing that could wake them), "time limit"
    (still running at ``time_limit_s``) or "crashed" (a thread raised). ``values``: the final
    value of every ``Shared`` variable by name. ``locks``: each lock's ``LockUse``. ``report``:
    for a run that did not complete, who held and waited for what and where each thread stood.
    ``left_running``: threads that would not end (left as daemons)."""

    outcome: str
    model: Any
    values: dict[str, Any]
    wall_s: float
    locks: dict[str, LockUse]
    report: str = ""
    failure: str | None = None
    left_running: list[str] = field(default_factory=list)
    sim: Simulation | None = field(default=None, repr=False)

    def __str__(self) -> str:
        head = f"{self.outcome} in {self.wall_s * 1000:.1f} ms (wall clock, real threads)"
        if self.failure:
            head += f"; {self.failure}"
        return head + ("\n" + self.report if self.report else "")


@dataclass
class RealRuns:
    """``run_real(..., repeat=n)``: every run, and how many failed ``check``."""

    runs: list[RealResult]

    @property
    def failures(self) -> int:
        return sum(r.failure is not None or r.outcome != "completed" for r in self.runs)

    @property
    def rate(self) -> float:
        return self.failures / len(self.runs)

    def values(self, name: str) -> list[Any]:
        """The final value of variable ``name`` in each run."""
        return [r.values.get(name) for r in self.runs]

    def summary(self) -> str:
        outcomes: dict[str, int] = {}
        for r in self.runs:
            key = r.outcome if r.failure is None else f"{r.outcome}, {r.failure}"
            outcomes[key] = outcomes.get(key, 0) + 1
        parts = ", ".join(f"{n} {what}" for what, n in sorted(outcomes.items()))
        return f"{len(self.runs)} real runs: {parts}"

    def __str__(self) -> str:
        return self.summary()


# -- the watchdog ----------------------------------------------------------------------------------
def _cycle(run: _Run) -> list[tuple[Thread, Any]] | None:
    """A cycle in the wait-for graph: each thread waits for a lock the next one holds."""
    waits = dict(run.waiting)
    for start in waits:
        path: list[tuple[Thread, Any]] = []
        seen: set = set()
        t: Thread | None = start
        while t is not None and t in waits and t not in seen:
            seen.add(t)
            twin = waits[t]
            path.append((t, twin))
            holders = twin.holders()
            if holders == [t]:  # it has just got what it waited for (read between two updates)
                break
            t = holders[0] if holders else None
        if t is not None and t in seen:
            return path[[p[0] for p in path].index(t) :]
    return None


def _where(run: _Run, t: Thread, frames: dict) -> str:
    """The line ``t`` stands at; for a thread caught running, its host stack too."""
    ident = run.idents.get(t)
    frame = frames.get(ident) if ident is not None else None
    if frame is None or t in run.waiting:
        return where_is(t)
    stack = "".join(traceback.format_stack(frame, limit=4)).rstrip()
    host = "\n".join("      " + s for s in stack.splitlines())
    return f"{where_is(t, frame)}\n    host stack (innermost last):\n{host}"


def _report(run: _Run, threads: list[Thread], kind: str, cycle: Any) -> str:
    frames = sys._current_frames()
    lines = []
    if kind == "deadlock":
        parts = [
            f"{t.name} waits for {twin.name}, held by {twin.holders()[0].name}" for t, twin in cycle
        ]
        lines.append("DEADLOCK on real threads: " + "; ".join(parts))
    elif kind == "stuck":
        lines.append("STUCK on real threads: every live thread waits, and nothing can wake it")
    else:
        lines.append("TIME LIMIT on real threads: still running when the limit came")
    for t in threads:
        if run.twin(t).done:
            continue
        twin = run.waiting.get(t)
        held = [
            tw.name
            for tw in list(run.twins.values())
            if isinstance(tw, _MutexTwin) and tw.owner is t
        ]
        state = f"waits for {twin.name}" if twin is not None else "running"
        if held:
            state += f", holds {', '.join(held)}"
        lines.append(f"  {t.name}: {state}; {_where(run, t, frames)}")
    return "\n".join(lines)


def _interrupt(ident: int) -> None:
    """Raise ``Cancelled`` in the host thread ``ident`` at its next bytecode."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(Cancelled))


def _one_run(program: Callable, time_limit_s: float, check: Callable | None) -> RealResult:
    sim = Simulation(trace=False)
    sim.model = program(sim)
    threads = list(sim.threads)
    run = _Run()
    errors: dict[Thread, BaseException] = {}
    hosts = [
        threading.Thread(target=_body, args=(run, t, errors), name=f"real-{t.name}", daemon=True)
        for t in threads
    ]
    for t in threads:
        run.twin(t)
    start = time.perf_counter()
    for h in hosts:
        h.start()
    kind, cycle = "completed", None
    still_since: float | None = None
    last_moves: dict = {}
    seen_cycle: dict = {}
    deadline = start + time_limit_s
    while any(h.is_alive() for h in hosts):
        hosts[0].join(SLICE_S) if hosts[0].is_alive() else time.sleep(SLICE_S)
        if errors:
            break
        now = time.perf_counter()
        live = [t for t in threads if not run.twin(t).done]
        cycle = _cycle(run)
        moves = dict(run.moves)
        if cycle is not None:
            # The graph is read while the threads run, so a cycle counts only when it is still
            # there a slice later, each of its threads waiting for the same lock, none having
            # taken a step in between: threads in a real deadlock cannot move.
            seen = {t: (twin, moves.get(t)) for t, twin in cycle}
            if seen == seen_cycle:
                kind = "deadlock"
                break
            seen_cycle = seen
            last_moves = moves
            continue
        seen_cycle = {}
        if live and all(t in run.waiting for t in live) and moves == last_moves:
            still_since = still_since if still_since is not None else now
            if now - still_since >= STALL_S:
                kind = "stuck"
                break
        else:
            still_since = None
        last_moves = moves
        if now >= deadline:
            kind = "time limit"
            break
    report = ""
    if kind != "completed":
        report = _report(run, threads, kind, cycle)
    wall = time.perf_counter() - start
    run.cancelled.set()
    left: list[str] = []
    grace = time.perf_counter() + GRACE_S
    for h in hosts:
        h.join(max(0.0, grace - time.perf_counter()))
        if h.is_alive() and h.ident is not None:
            _interrupt(h.ident)  # a loop that never yields: stop it where it stands
    for h, t in zip(hosts, threads):
        h.join(SLICE_S * 10)
        if h.is_alive():
            left.append(t.name)
    if left:
        report += "\n  left running as daemon threads: " + ", ".join(left)
    failure = None
    if errors and kind == "completed":
        kind = "crashed"
        t, e = next(iter(errors.items()))
        failure = f"thread {t.name} raised {type(e).__name__}: {e}"
    values = {o.name: o._value for o in sim.objects if type(o) is Shared}
    locks = {tw.name: tw.use for tw in list(run.twins.values()) if isinstance(tw, _MutexTwin)}
    result = RealResult(kind, sim.model, values, wall, locks, report, failure, left, sim)
    if kind == "completed" and check is not None:
        result.failure = check(result)
    first = next(iter(errors.values()), None)
    if isinstance(first, NotReal | MisuseError):
        raise first  # a misuse is the program's error, as in the simulator
    return result


def run_real(
    program: Callable[[Simulation], Any],
    *,
    time_limit_s: float = 5.0,
    repeat: int = 1,
    check: Callable[[RealResult], str | None] | None = None,
) -> RealResult | RealRuns:
    """Run ``program`` (what ``run()`` takes) on host threads, one per simulated thread.

    ``time_limit_s``: wall-clock seconds a run may take before the watchdog ends it.
    ``repeat``: how many fresh runs to make (then a ``RealRuns`` comes back, else one
    ``RealResult``). ``check(result)`` returns None for an acceptable run and a message
    otherwise (a lost update, say); it is asked of each run that completed."""
    validate.function("program", program)
    if sys.platform == "emscripten":  # Pyodide: a browser tab's Python cannot start a thread
        raise Unavailable("host threads", "run_real()", "a browser's Python")
    validate.duration("time_limit_s", time_limit_s)
    if not 0 < time_limit_s <= MAX_TIME_LIMIT_S:
        raise ValueError(
            f"time_limit_s must be more than 0 and at most {MAX_TIME_LIMIT_S:g} seconds; "
            f"got {time_limit_s!r}"
        )
    validate.whole("repeat", repeat, 1, MAX_REPEAT)
    if check is not None:
        validate.function("check", check)
    runs = [_one_run(program, time_limit_s, check) for _ in range(repeat)]
    return runs[0] if repeat == 1 else RealRuns(runs)


def gil_enabled() -> bool:
    """Is this interpreter running with the GIL? (False only on a free-threaded build with the
    GIL off.)"""
    probe = getattr(sys, "_is_gil_enabled", None)
    return True if probe is None else bool(probe())


__all__ = [
    "Cancelled",
    "LockUse",
    "NotReal",
    "RealResult",
    "RealRuns",
    "gil_enabled",
    "run_real",
]
