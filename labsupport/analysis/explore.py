"""The interleaving explorer: run a program on every schedule that matters, not on sampled seeds.

A seeded schedule shows one interleaving; a bug that needs a rare one hides from a few hundred
seeds. ``explore`` drives the kernel's choice points systematically instead (a stateless model
checker: each schedule is a fresh run, replayed up to its branch point) and says when it has
covered them all, so the course can say "no schedule breaks this" and mean it.

**Events.** A thread's *event* is what it does between two choices that matter: its local code
(a ``note``, the arithmetic between a load and a store, a ``compute`` or ``sleep`` that does
not contend) and the one shared operation that ends it. Two events of different threads
*conflict* when they touch the same object and one of them changes it: a ``Shared`` load
reads, a store writes, and every lock, condition, semaphore, event, queue or notifier
operation changes its object. Steps that touch nothing (local code, the end
of a thread that nobody joins) are glued to the thread's next event: they commute with
everything, so they are not choices. A lock attempt that has to wait is not an event where it
waits but where it succeeds, right after the unlock that hands the lock over, as in the usual
convention (a blocking operation happens once, when it can).

**Traces.** Runs that differ only in the order of events that do not conflict are one
*Mazurkiewicz trace*: they end in the same state. The reductions:

- ``"none"``: every interleaving of events (with ``bound``: at most that many preemptions,
  CHESS-style context bounding, Musuvathi and Qadeer, PLDI 2007).
- ``"sleep"``: every interleaving, minus those sleep sets (Godefroid, 1996) prove redundant.
- ``"source"``: dynamic partial-order reduction (Flanagan and Godefroid, POPL 2005) with the
  source sets and sleep sets of Abdulla, Aronis, Jonsson and Sagonas (POPL 2014): after each
  run, every pair of racing events is reversed by starting a thread that can lead the reversed
  order. At least one run per trace; runs that sleep sets cut short are counted as ``blocked``.
- ``"optimal"``: the same paper's optimal DPOR: the reversals are kept as *wakeup trees*
  (sequences to run first), so that exactly one run per trace completes and none is cut.

``traces`` is exact whatever the reduction: each completed run's trace is put in its canonical
(lexicographic normal) form and counted once.

**What a verdict covers.** The kernel offers a choice only among threads ready at the same
simulated instant, so ``complete`` means every schedule the kernel can produce for the
program's timing and its model data (``seed``; with a ``bound``, every one with at most that
many preemptions). A compute that takes the last free host CPU conflicts with the others, so
the order in which threads get CPUs is explored too. A planned order that the timing makes
impossible (another thread moves with no choice offered) is dropped as ``blocked``; a planned
thread that cannot take its event where the plan puts it is counted in ``unplaced``, and an
exploration with any of those is not called a proof. The reduction trusts the engine's
objects to record what each step touches: models that keep shared state in plain attributes
need ``opaque=True``. Programs
too large to enumerate get ``pct``: Burckhardt, Kothari, Musuvathi and Nagarakatte's
probabilistic concurrency testing (ASPLOS 2010), which states the chance it gives each run.

Layer 5 (analysis): imports the kernel.
"""

from __future__ import annotations

import heapq
import math
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import tracebuf as tb
from .. import validate
from ..kernel import DONE, Policy, RunResult, SimulationError, Thread, run, where_is

REDUCTIONS = ("none", "sleep", "source", "optimal")

#: The outcomes that are failures unless ``check`` says otherwise.
FAILING_OUTCOMES = ("deadlock", "stuck", "crashed", "misuse")

# How an event touches an object. READ: looks (a load, a failed trylock). WRITE: changes it.
# ACQ: takes or waits for it (a lock, a semaphore's wait, a join). REL: gives it back or
# announces (an unlock, a post, a set, a signal). Two touches conflict unless both are READ.
READ, WRITE, ACQ, REL = 1, 2, 4, 8
_NAMES = {READ: "reads", WRITE: "writes", ACQ: "takes", REL: "releases"}
_IGNORED = {tb.SPAWN, tb.CHOICE, tb.EXIT, tb.OP, tb.SLEEP, tb.MARK}


_PAREN = re.compile(r" *\(.*")  # a deadlock report's explanation of a wait, in brackets

#: The object an opaque step writes: state the engine's objects do not record.
_WORLD = 1 << 40


class _Cut(Exception):
    """A run the driver stopped: its planned order cannot happen, or a sleep set covers it.
    ``unplaced``: the plan named a thread that could not take its event there (it was not
    ready, or it had to wait): a cut the reductions' theory does not account for."""

    def __init__(self, why: str, unplaced: bool = False):
        super().__init__(why)
        self.unplaced = unplaced


def _conflict(a: dict, b: dict) -> bool:
    if len(a) > len(b):
        a, b = b, a
    for o, k in a.items():
        k2 = b.get(o)
        if k2 is not None and (k | k2) != READ:
            return True
    return False


class _Event:
    """One event of the run: the thread (by schedule character), what it touched, and where."""

    __slots__ = ("char", "tid", "acc", "enabled", "woken", "waiting", "line")

    def __init__(self, char: str, tid: int, acc: dict):
        self.char, self.tid, self.acc = char, tid, acc
        self.enabled: set = {char}
        self.woken = False  # a lock attempt that waited, placed where it succeeded
        self.waiting = False  # a lock attempt still waiting when the run ended
        self.line = ""


class _Raw:
    __slots__ = ("thread", "acc", "parked_on", "woke")

    def __init__(self, thread: Thread):
        self.thread, self.acc, self.parked_on, self.woke = thread, {}, None, []


class _Driver(Policy):
    """Follows ``plan`` (one thread per event position), then runs on without preempting,
    keeping sleeping threads out; turns the kernel's steps into events."""

    name = "explore"

    def __init__(
        self,
        plan: list[str],
        sleep_pos: int,
        sleep: dict,
        lines: bool = False,
        opaque: bool = False,
        keep_enabled: bool = True,
    ):
        self.plan = plan
        self.sleep_pos = sleep_pos
        self._sleep_init = sleep
        self.sleep: dict = dict(sleep) if sleep_pos == 0 else {}
        self.sleep_at: list[dict] = []
        self.events: list[_Event] = []
        self.pending: dict[int, _Event] = {}  # tid -> its lock attempt that waits
        self.raw: _Raw | None = None
        self.group: _Raw | None = None  # the thread whose event is not finished yet
        self.ready_at: dict[int, set] = {}
        self.parked_at: dict[int, set] = {}
        self.last: str | None = None
        self.lines = lines
        self.opaque = opaque
        self.diverged = self.closing = False
        # keep who could move at each event (for preemptions, and for "none" and "sleep")
        self.keep_enabled = keep_enabled

    # -- the kernel's hooks ------------------------------------------------------------------
    def choose(self, sim, ready):
        pos = self._note_ready(ready, self.keep_enabled)
        if pos < len(self.plan):
            want = self.plan[pos]
            for t in ready:
                if t.char == want:
                    return t
            raise _Cut(f"thread {want} cannot move at event {pos}", unplaced=True)
        sleep = self.sleep
        awake = [t for t in ready if t.char not in sleep]
        if not awake:
            raise _Cut("every ready thread is asleep")
        for t in awake:  # no preemption while the thread that ran last can go on
            if t.char == self.last:
                return t
        return min(awake, key=lambda t: t.char)

    def on_step(self, t: Thread) -> None:
        self._finish()
        pos = len(self.events)
        if self.group is None and pos >= len(self.plan) and t.char in self.sleep:
            raise _Cut("the only ready thread is asleep")
        self._start(t)

    # -- what the driver and the replayer share -----------------------------------------------
    def _note_ready(self, ready: list[Thread], keep: bool) -> int:
        """Close the events before a choice; with ``keep``, note who could move at it.
        Returns the position of the next event."""
        before = len(self.events)
        self._finish()
        pos = len(self.events)
        if keep:
            chars = [t.char for t in ready]
            self.ready_at.setdefault(pos, set()).update(chars)
            for ev in self.events[before:]:
                # A lock handed over at an unlock: the waiter's event comes next, but the
                # threads ready now could have come first, had the waiter not queued yet.
                if ev.woken:
                    ev.enabled.update(chars)
        return pos

    def _start(self, t: Thread) -> None:
        """A step of ``t`` begins: what it touches is recorded until the next one."""
        self.raw = _Raw(t)
        if self.opaque:  # the step may touch state no object records: it conflicts with all
            self.raw.acc[_WORLD] = WRITE

    def record(self, kind: int, tid: int, oid: int, arg: Any) -> None:
        raw = self.raw
        if kind in _IGNORED or oid < 0:
            return
        if raw is None:  # between steps: a timed wait ran out, or a CPU came free
            if kind in (tb.WAKE, tb.RUN) and tid in self.pending:
                self._complete(self.pending.pop(tid))
            return
        acc = raw.acc
        own = tid == raw.thread.tid
        if kind == tb.RUN:
            # a compute starts on a host CPU: it matters to the others only when the CPUs
            # run out (this start takes the last one), so only then does it conflict
            cpus = self.sim.cpus
            how = ACQ if cpus.busy >= cpus.n else READ
        elif kind == tb.READ:
            how = READ
        elif kind == tb.WRITE:
            how = WRITE
        elif kind == tb.ACQUIRE:
            if own:
                how = ACQ
            else:  # a hand-over: the unlock gives the lock to a waiter
                raw.woke.append(tid)
                how = REL
        elif kind == tb.RELEASE:
            how = REL
        elif kind == tb.SIGNAL:
            how = WRITE if arg == -1 else REL  # an event's reset takes away; the rest give
        elif kind == tb.BLOCK:
            if own:
                raw.parked_on = oid
                how = ACQ
            else:  # a signal moves the waiter on to the mutex's queue
                how = WRITE
        elif kind == tb.WAKE:
            if own:  # went through without waiting
                how = ACQ
            else:
                raw.woke.append(tid)
                how = REL
        else:
            how = WRITE
        acc[oid] = acc.get(oid, 0) | how

    # -- from steps to events ------------------------------------------------------------------
    def _finish(self) -> None:
        raw = self.raw
        if raw is None:
            return
        self.raw = None
        t = raw.thread
        pos = len(self.events)
        if raw.parked_on is not None and raw.acc.keys() <= {raw.parked_on}:
            # a pure attempt: not an event here; it becomes one where it succeeds
            self.group = None
            self.parked_at.setdefault(pos, set()).add(t.char)
            if pos < len(self.plan):
                raise _Cut(f"thread {t.char} had to wait at event {pos}", unplaced=True)
            ev = _Event(t.char, t.tid, {raw.parked_on: ACQ})
            if self.lines:
                ev.line = _where(t)
            self.pending[t.tid] = ev
            return
        g = self.group
        if g is not None and g.thread is t:
            for o, k in raw.acc.items():
                g.acc[o] = g.acc.get(o, 0) | k
            g.parked_on, g.woke = raw.parked_on, raw.woke
        else:
            g = raw
        if not g.acc and g.parked_on is None:
            # touched nothing (local code, a compute, a sleep): not an event, whether the
            # thread can go on at once or later; the end of a thread nobody joins is dropped
            self.group = None if t.state == DONE else g
            return
        self.group = None
        ev = _Event(t.char, t.tid, g.acc)
        if self.lines:
            ev.line = _where(t) if t.state != DONE else "(returns)"
        self._complete(ev)
        for tid in g.woke:
            waiting = self.pending.pop(tid, None)
            if waiting is not None:
                waiting.woken = True
                self._complete(waiting)

    def _complete(self, ev: _Event) -> None:
        pos = len(self.events)
        if pos < len(self.plan) and ev.char != self.plan[pos]:
            # a thread the plan did not name moved without a choice (its timing allowed no
            # other): the planned order cannot happen
            self.diverged = True
            if not self.closing:
                raise _Cut(f"thread {ev.char} moved at event {pos}, not {self.plan[pos]}")
        if pos >= self.sleep_pos:
            self.sleep_at.append(self.sleep)
        else:
            self.sleep_at.append({})
        if self.keep_enabled:
            enabled = set(self.ready_at.get(pos, ())) - self.parked_at.get(pos, set())
            enabled.add(ev.char)
            ev.enabled = enabled
        self.events.append(ev)
        self.last = ev.char
        if pos + 1 == self.sleep_pos:
            self.sleep = dict(self._sleep_init)
        elif self.sleep:
            acc = ev.acc
            self.sleep = {
                q: a for q, a in self.sleep.items() if q != ev.char and not _conflict(a, acc)
            }

    def close(self, cut: bool = False) -> list[_Event]:
        """The run's events, then the attempts still waiting (a deadlock's, say). In a run
        the driver ``cut``, a thread whose steps so far touched nothing is in the middle of
        its next event, which did not happen: it is no event."""
        self.closing = True
        self._finish()
        if self.group is not None and not cut:  # a thread whose last steps touched nothing
            g, self.group = self.group, None
            self._complete(_Event(g.thread.char, g.thread.tid, g.acc))
        waiting = list(self.pending.values())
        for ev in waiting:
            ev.waiting = True
        # a thread whose last event is behind a position had only its end left there: not a
        # thread that could take an event
        last: dict[str, int] = {}
        for k, ev in enumerate(self.events):
            last[ev.char] = k
        for ev in waiting:
            last[ev.char] = len(self.events)
        if self.keep_enabled:
            for k, ev in enumerate(self.events):
                ev.enabled = {c for c in ev.enabled if last.get(c, -1) >= k}
        return self.events + waiting


def _where(t: Thread) -> str:
    """The learner's line the thread stands at: ``line 6 of worker(): `yield x.load()` ``."""
    text = where_is(t)
    text = text.split(" was at ", 1)[1] if " was at " in text else text
    text = re.split(r", (?:inside|called from) ", text, maxsplit=1)[0]
    text = re.sub(r"\s+#[^`]*`$", "`", text)  # the line's comment
    return re.sub(r" \([^()]*\.py\)", "", text, count=1)


# -- happens-before, races and traces -------------------------------------------------------------
class _Order:
    """Happens-before over a sequence of events (program order and conflicts), as vector
    clocks, and the sequence's races: pairs of conflicting events of different threads that
    nothing else orders, which another schedule could reverse."""

    def __init__(self, seq: list[_Event]):
        self.seq = seq
        self.seqno: list[int] = []
        self.clocks: list[dict] = []
        self.races: list[tuple[int, int]] = []
        count: Counter = Counter()
        last_of: dict[str, int] = {}
        last_w: dict[int, int] = {}
        reads: dict[int, list[int]] = {}
        acqs: dict[int, list[int]] = {}
        for j, ev in enumerate(seq):
            c = ev.char
            count[c] += 1
            self.seqno.append(count[c])
            po = last_of.get(c)
            cands: list[tuple[int, int]] = []
            for o, k in ev.acc.items():
                w = last_w.get(o)
                if w is not None:
                    cands.append((w, o))
                if k == READ:
                    reads.setdefault(o, []).append(j)
                else:
                    for r in reads.get(o, ()):
                        cands.append((r, o))
                    last_w[o] = j
                    reads[o] = []
                if k & ACQ:
                    acqs.setdefault(o, []).append(j)
            vc = dict(self.clocks[po]) if po is not None else {}
            for p, _ in cands:
                for t, v in self.clocks[p].items():
                    if vc.get(t, 0) < v:
                        vc[t] = v
            vc[c] = count[c]
            self.clocks.append(vc)
            last_of[c] = j
            for p, o in cands:
                if seq[p].char == c:
                    continue
                partner, skip_o = p, None
                kp = seq[p].acc.get(o, 0)
                if ev.acc[o] & ACQ and kp & REL and not kp & ACQ:
                    # Taking what an earlier event gave back: reversed, it would wait. Its
                    # real rival is the last one who took it (the critical section before).
                    partner = next(
                        (a for a in reversed(acqs.get(o, ())) if a < p and seq[a].char != c),
                        None,
                    )
                    if partner is None:
                        continue
                    skip_o = o
                others = [po] + [q for q, o2 in cands if q != p and o2 != skip_o]
                if any(q is not None and self.hb(partner, q) for q in others):
                    continue
                self.races.append((partner, j))

    def hb(self, i: int, k: int) -> bool:
        """Does event ``i`` happen before event ``k`` (or is it ``k``)?"""
        return self.clocks[k].get(self.seq[i].char, 0) >= self.seqno[i]

    def reversal(self, i: int, j: int) -> list[_Event]:
        """The events that reverse race (i, j): those between them that do not depend on
        ``i``, then ``j`` (``notdep(i).j`` in Abdulla et al.)."""
        seq = self.seq
        v = [seq[k] for k in range(i + 1, j) if not seq[k].waiting and not self.hb(i, k)]
        v.append(seq[j])
        return v


def _initials(v: list[_Event]) -> set:
    """The threads whose first event in ``v`` depends on no earlier event of ``v``."""
    out, seen = set(), set()
    touched: dict[int, int] = {}  # object -> how the events so far touched it
    for ev in v:
        acc = ev.acc
        if ev.char not in seen:
            seen.add(ev.char)
            for o, k in acc.items():
                k2 = touched.get(o)
                if k2 is not None and (k | k2) != READ:
                    break
            else:
                out.add(ev.char)
        for o, k in acc.items():
            touched[o] = touched.get(o, 0) | k
    return out


def _touched(v: list[_Event]) -> tuple[set, dict]:
    """The threads in ``v`` and how ``v`` touches each object, all events together."""
    chars, touched = set(), {}
    for ev in v:
        chars.add(ev.char)
        for o, k in ev.acc.items():
            touched[o] = touched.get(o, 0) | k
    return chars, touched


def _weak_initial(char: str, acc: dict, initials: set, chars: set, touched: dict) -> bool:
    """Can thread ``char`` (next event touching ``acc``) start a run equivalent to one that
    starts with ``v``? (Abdulla et al.'s weak initials; ``initials``, ``chars``, ``touched``
    describe ``v``.)"""
    if char in initials:
        return True
    return char not in chars and not _conflict(acc, touched)


def _canonical(seq: list[_Event]) -> tuple:
    """The run's trace in lexicographic normal form: equal for equivalent runs."""
    n = len(seq)
    count: Counter = Counter()
    keyed = []
    for ev in seq:
        count[ev.char] += 1
        keyed.append((ev.char, count[ev.char]))
    if all(ev.acc.get(_WORLD) == WRITE for ev in seq):
        # every step conflicts with every other (opaque): the run is its own normal form
        return tuple((k, tuple(sorted(ev.acc.items())), ev.waiting) for k, ev in zip(keyed, seq))
    preds = [0] * n
    succs: list[list[int]] = [[] for _ in range(n)]
    last_of: dict[str, int] = {}
    last_w: dict[int, int] = {}
    reads: dict[int, list[int]] = {}
    for j, ev in enumerate(seq):
        p = last_of.get(ev.char)
        deps = {p} if p is not None else set()
        for o, k in ev.acc.items():
            w = last_w.get(o)
            if w is not None:
                deps.add(w)
            if k == READ:
                reads.setdefault(o, []).append(j)
            else:
                deps.update(reads.get(o, ()))
                last_w[o] = j
                reads[o] = []
        deps.discard(j)
        preds[j] = len(deps)
        for i in deps:
            succs[i].append(j)
        last_of[ev.char] = j
    ready = [(keyed[j], j) for j in range(n) if preds[j] == 0]
    heapq.heapify(ready)
    out = []
    while ready:
        key, j = heapq.heappop(ready)
        ev = seq[j]
        out.append((key, tuple(sorted(ev.acc.items())), ev.waiting))
        for k in succs[j]:
            preds[k] -= 1
            if preds[k] == 0:
                heapq.heappush(ready, (keyed[k], k))
    return tuple(out)


def preemptions(seq: list[_Event]) -> int:
    """Switches away from a thread that could have gone on (CHESS's preemptions)."""
    n = 0
    for prev, ev in zip(seq, seq[1:]):
        if ev.char != prev.char and prev.char in ev.enabled and not ev.woken:
            n += 1
    return n


# -- the search ---------------------------------------------------------------------------------
class _WNode:
    """A wakeup tree: sequences of events still to run from one point, leftmost first."""

    __slots__ = ("children",)

    def __init__(self):
        self.children: list[list] = []  # [char, acc, _WNode]

    def child(self, char: str) -> _WNode | None:
        for c, _, sub in self.children:
            if c == char:
                return sub
        return None

    def insert(self, v: list[_Event]) -> None:
        """Add ``v`` as a branch, unless a branch already starts a run equivalent to one
        that starts with ``v`` (Abdulla et al.'s ``insert``): walk down the leftmost child
        that is a weak initial of what is left of ``v``, taking its event out of ``v``."""
        node, v = self, list(v)
        per_thread = Counter(ev.char for ev in v)
        per_object: dict[int, Counter] = {}
        for ev in v:
            for o, k in ev.acc.items():
                per_object.setdefault(o, Counter())[k] += 1

        def independent(acc: dict) -> bool:
            for o, k in acc.items():
                kinds = per_object.get(o)
                if kinds:
                    for k2, n in kinds.items():
                        if n and (k | k2) != READ:
                            return False
            return True

        while v and node.children:
            for c, acc, sub in node.children:
                if per_thread[c]:
                    idx = next(i for i, ev in enumerate(v) if ev.char == c)
                    first = v[idx].acc
                    if any(_conflict(x.acc, first) for x in v[:idx]):
                        continue  # c's event in v waits for an earlier one
                    ev = v.pop(idx)
                    per_thread[c] -= 1
                    for o, k in ev.acc.items():
                        per_object[o][k] -= 1
                elif not independent(acc):
                    continue
                node = sub
                break
            else:
                break
        else:
            return  # already covered: a run that starts like this is planned
        for ev in v:
            new = _WNode()
            node.children.append([ev.char, ev.acc, new])
            node = new


class _Node:
    """One event position of the current run."""

    __slots__ = (
        "char",
        "acc",
        "enabled",
        "woken",
        "sleep",
        "explored",
        "backtrack",
        "wut",
        "disabled",
    )

    def __init__(self, ev: _Event, sleep: dict):
        self.char, self.acc, self.enabled = ev.char, ev.acc, set(ev.enabled)
        self.woken = ev.woken  # a lock handed to this waiter: reaching it is no preemption
        self.sleep = sleep
        self.explored: dict = {}
        self.disabled: set = set()  # planned here, but could not take an event here
        self.backtrack = {ev.char}
        self.wut: _WNode | None = None


@dataclass
class Counterexample:
    """A failing run: its schedule, how it failed, and its events."""

    schedule: str
    failure: str
    preemptions: int
    steps: int
    result: RunResult | None
    replay_call: str
    run_options: dict = field(default_factory=dict, repr=False)
    program: Any = field(default=None, repr=False)
    opaque: bool = field(default=False, repr=False)

    def replay(self, program: Callable[..., Any] | None = None, **run_options: Any) -> RunResult:
        """Run the program on this schedule again (with the exploration's options)."""
        options = {**self.run_options, **run_options}
        return run(program or self.program, schedule=self.schedule, **options)

    def listing(self) -> str:
        """The run's events, one line each: thread, what it touched, the line of code, and
        (marked ``<-``) the racing pairs whose order broke it; for a deadlock, the cycle."""
        return _watch(self.program, self.schedule, self.run_options, self.opaque)[2]

    def __str__(self) -> str:
        head = (
            f"{self.failure}\n{_count(self.preemptions, 'preemption')}, {self.steps} events; "
            f"replay: {self.replay_call}"
        )
        return head + "\n" + self.listing()


@dataclass
class Exploration:
    """What ``explore`` (or ``pct``) covered and found."""

    reduction: str
    bound: int | None
    runs: int = 0
    blocked: int = 0
    traces: int = 0
    complete: bool = False
    stopped_by: str = ""
    outcomes: dict = field(default_factory=dict)  # outcome -> [traces, one example schedule]
    failures: list = field(default_factory=list)  # Counterexample, one per failing trace
    counterexample: Counterexample | None = None
    seconds: float = 0.0
    guarantee: str = ""  # pct: the chance each run gives, and the confidence of them all
    runs_to_first: int | None = None  # how many runs it took to meet the first failure
    probability: float | None = None  # pct: the least chance per run of a depth-d bug
    unplaced: int = 0  # DPOR runs whose planned order could not be followed (not a proof then)
    beyond_bound: bool = False  # the bound left at least one schedule out

    @property
    def preemptions(self) -> int | None:
        return None if self.counterexample is None else self.counterexample.preemptions

    @property
    def bounded(self) -> bool:
        """Did the preemption bound limit what was covered? False without a bound, and False
        when a complete search with a bound never met a schedule beyond it: every schedule ran."""
        return self.bound is not None and (self.beyond_bound or not self.complete)

    @property
    def verdict(self) -> str:
        """One phrase a chapter can print: what was shown, and how."""
        if self.failures:
            return f"fails: {self.counterexample.failure}" if self.counterexample else "fails"
        if self.reduction == "pct":
            return f"no failure in {self.runs:,} PCT runs ({self.guarantee})"
        if not self.complete:
            return f"no failure found, but the search was incomplete ({self.stopped_by})"
        if self.unplaced:
            return (
                f"no failure in {_count(self.traces, 'trace')}, but {self.unplaced:,} planned "
                f"order(s) could not be followed: a thorough search, not a proof"
            )
        within = f" with at most {_count(self.bound, 'preemption')}" if self.bounded else ""
        return f"no schedule{within} breaks it: {_count(self.traces, 'trace')}, complete"

    def summary(self, seconds: bool = True) -> str:
        """One line: runs, traces, coverage, time (``seconds=False`` leaves it out, for output
        that must not change from run to run), failures and the shortest one."""
        if self.reduction == "pct":
            cover = f"PCT depth {self.bound}, {self.guarantee}"
            line = f"{_count(self.runs, 'run')}, {self.traces:,} distinct schedules, {cover}"
        else:
            cover = (
                (
                    "complete"
                    + (f" up to {_count(self.bound, 'preemption')}" if self.bounded else "")
                )
                if self.complete
                else f"incomplete ({self.stopped_by})"
            )
            if self.unplaced:
                cover += f" ({self.unplaced:,} planned orders not followed: not a proof)"
            line = (
                f"{_count(self.runs, 'run')}, {_count(self.traces, 'trace')} "
                f"({self.blocked:,} blocked), {cover}"
            )
        if seconds:
            line += f", {self.seconds:.2f} s"
        line += f"; {_count(len(self.failures), 'failure')}"
        if self.counterexample is not None:
            line += f"; shortest: {_count(self.counterexample.preemptions, 'preemption')}"
        return line

    def outcome_table(self) -> str:
        """One line per outcome: how many traces ended so, and a schedule that shows it."""
        width = max([len("outcome")] + [len(k) for k in self.outcomes])
        lines = [f"{'outcome':<{width}}  {'traces':>6}  example schedule"]
        for what, (n, example) in sorted(self.outcomes.items(), key=lambda kv: (-kv[1][0], kv[0])):
            lines.append(f"{what:<{width}}  {n:>6}  {example!r}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _failure(result: RunResult | None, error: BaseException | None, check: Any) -> str | None:
    if error is not None:
        kind = "misuse" if type(error).__name__ == "MisuseError" else type(error).__name__
        return f"{kind}: {error}"
    if result.outcome in FAILING_OUTCOMES:
        report = result.deadlock
        if report is not None and report.waits:
            waits = "; ".join(
                f"{who} waits for {_PAREN.sub('', what)}" + (f" ({', '.join(by)})" if by else "")
                for who, what, by in report.waits
            )
            return f"{result.outcome}: {waits}"
        if result.error is not None:
            return f"{result.outcome}: {_first_line(str(result.error))}"
        return result.outcome
    if check is not None:
        message = check(result)
        if message is not None:
            return str(message)
    return None


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _summary(result: RunResult | None, failure: str | None) -> str:
    if failure is not None:
        return failure if len(failure) <= 70 else failure[:67] + "..."
    model = result.sim.model
    state = ""
    if model is not None:
        if hasattr(model, "value"):
            text = f"{getattr(model, 'name', 'value')}={model.value!r}"
        elif isinstance(model, (list, tuple)) and all(hasattr(m, "value") for m in model):
            text = ", ".join(f"{getattr(m, 'name', '?')}={m.value!r}" for m in model)
        else:
            text = repr(model)
        state = f", {text[:60]}"
    return f"{result.outcome}{state}"


def _check_options(run_options: dict) -> None:
    for key in ("policy", "schedule"):
        if key in run_options:
            raise ValueError(
                f"the explorer chooses the schedules itself; do not pass {key}= (seed= is "
                f"allowed: it picks the model's own random data, sim.rng, not the schedule)"
            )


def _execute(program, driver: Policy, run_options: dict):
    """One run of ``program`` under ``driver``: (result, error, cut)."""

    def wrapped(sim):
        sim.policy = driver
        sim.on_step = driver.on_step
        driver.sim = sim
        watch = getattr(driver, "record", None)
        if watch is not None:
            inner = sim.record

            def record(kind, tid, oid, arg):
                watch(kind, tid, oid, arg)
                inner(kind, tid, oid, arg)

            sim.record = record
        return program(sim)

    try:
        return run(wrapped, **run_options), None, False
    except _Cut as cut:
        return None, None, cut
    except SimulationError as e:
        return None, e, False


def explore(
    program: Callable[..., Any],
    *,
    bound: int | None = None,
    reduction: str = "optimal",
    check: Callable[[RunResult], str | None] | None = None,
    stop: str = "first",
    max_runs: int | None = 100_000,
    time_limit_s: float | None = 60.0,
    minimize: bool = True,
    progress: bool = False,
    opaque: bool = False,
    **run_options: Any,
) -> Exploration:
    """Run ``program`` (what ``run()`` takes) on every schedule, up to ``reduction``.

    ``reduction``: "optimal" (one run per trace), "source", "sleep" or "none" (every
    interleaving). ``bound`` limits preemptions; it needs ``reduction="none"`` or "sleep":
    a preemption bound and partial-order reduction do not combine soundly (a trace whose
    cheapest schedule is within the bound may be reached only through one that is not), so
    with DPOR the search is complete or it says it is not. ``check(result)`` returns None for
    an acceptable run and a message otherwise; deadlock, stuck, crash and misuse fail by
    default. ``stop="first"`` ends at the first failure, ``"all"`` explores on. ``max_runs``
    and ``time_limit_s`` stop a long exploration (``complete`` is then False and
    ``stopped_by`` says which). With ``minimize``, the counterexample is the failing run with
    the fewest preemptions, then the fewest events, found by searching bounds 0, 1, 2, ...
    ``progress=True`` prints a line to standard error every two seconds.

    The reduction trusts the engine's objects to say what each step touches (``Shared``
    loads and stores, locks, events, queues). A model that also keeps shared state in plain
    Python attributes (the QEMU models' contexts, BH lists and flags) needs ``opaque=True``:
    every step then conflicts with every other, so every interleaving of steps is run (sound
    for any program, with no reduction). ``seed=`` fixes the model's own random data
    (``sim.rng``: arrival times, service times); the schedules are explored for that data.
    """
    validate.function("program", program)
    validate.choice("reduction", reduction, REDUCTIONS)
    validate.choice("stop", stop, ("first", "all"))
    if bound is not None:
        validate.whole("bound", bound, 0, 1000)
        if reduction not in ("none", "sleep"):
            raise ValueError(
                f"bound={bound} needs reduction='none' or 'sleep': a preemption bound and "
                f"partial-order reduction do not combine soundly; give bound=None to use "
                f"{reduction!r}"
            )
    if check is not None:
        validate.function("check", check)
    if max_runs is not None:
        validate.whole("max_runs", max_runs, 1, 100_000_000)
    if time_limit_s is not None:
        validate.duration("time_limit_s", time_limit_s)
    validate.flag("minimize", minimize)
    validate.flag("progress", progress)
    validate.flag("opaque", opaque)
    _check_options(run_options)

    found = Exploration(reduction, bound)
    started = time.perf_counter()
    deadline = started + time_limit_s if time_limit_s is not None else math.inf
    shown = started
    traces: dict[tuple, int] = {}
    stack: list[_Node] = []
    plan: list[str] = []
    sleep_pos, sleep_init, branch_pos = 0, {}, -1
    use_sleep = reduction != "none"
    optimal = reduction == "optimal"
    dpor = reduction in ("source", "optimal")  # who could move is needed only without it
    while True:
        if max_runs is not None and found.runs >= max_runs:
            found.stopped_by = f"max_runs={max_runs:,}"
            break
        now = time.perf_counter()
        if now > deadline:
            found.stopped_by = f"time_limit_s={time_limit_s:g}"
            break
        if progress and now - shown > 2:
            shown = now
            print(f"explore: {found.runs:,} runs, {len(traces):,} traces...", file=sys.stderr)
        driver = _Driver(
            plan, sleep_pos, sleep_init if use_sleep else {}, opaque=opaque, keep_enabled=not dpor
        )
        result, error, cut = _execute(program, driver, run_options)
        found.runs += 1
        seq = driver.close(cut=bool(cut))
        if cut and cut.unplaced and dpor:
            found.unplaced += 1
        cut = cut or driver.diverged
        events = [ev for ev in seq if not ev.waiting]
        # the positions this run reached first get their nodes
        for pos in range(len(stack), len(events)):
            ev = events[pos]
            node = _Node(ev, driver.sleep_at[pos] if use_sleep else {})
            if optimal:
                if pos == 0:
                    node.wut = _WNode()
                else:
                    node.wut = stack[-1].wut.child(stack[-1].char) or _WNode()
                if node.wut.child(ev.char) is None:
                    node.wut.children.append([ev.char, ev.acc, _WNode()])
            stack.append(node)
        if 0 <= branch_pos < len(events):
            stack[branch_pos].acc = events[branch_pos].acc
            stack[branch_pos].enabled |= events[branch_pos].enabled
            stack[branch_pos].woken = events[branch_pos].woken
        if cut:
            found.blocked += 1
        else:
            failure = _failure(result, error, check)
            key = _canonical(seq)
            if key not in traces:
                traces[key] = found.runs
                what = _summary(result, failure)
                entry = found.outcomes.setdefault(what, [0, _schedule_of(result, driver)])
                entry[0] += 1
                if failure is not None:
                    if found.runs_to_first is None:
                        found.runs_to_first = found.runs
                    watched = seq
                    if dpor:  # who could move was not kept: replay to count the preemptions
                        watched = _watch(
                            program, _schedule_of(result, driver), run_options, opaque
                        )[0]
                    found.failures.append(
                        _counterexample(
                            program, run_options, result, driver, watched, failure, opaque
                        )
                    )
        if reduction in ("source", "optimal") and events:
            order = _Order(seq)
            for i, j in order.races:
                if i < len(events):  # two attempts still waiting at the end never ran at all
                    _reverse(stack[i], order.reversal(i, j), optimal)
        if found.failures and stop == "first":
            found.stopped_by = "the first failure"
            break
        unreached = 0 <= branch_pos < len(stack) and len(events) <= branch_pos
        if unreached:
            # The thread planned at the branch could not take an event there (it was not
            # ready, or its lock attempt had to wait): that is no choice at that position, and
            # the position's other choices are still to do.
            stack[branch_pos].disabled.add(stack[branch_pos].char)
            del stack[branch_pos + 1 :]
        else:
            del stack[len(events) :]
        nxt = None
        before: list[int] | None = None  # preemptions up to each position, when bounded
        while stack:
            node = stack[-1]
            if unreached:
                unreached = False
            else:
                node.explored[node.char] = node.acc
            if optimal:
                node.wut.children = [ch for ch in node.wut.children if ch[0] != node.char]
                todo = [ch[0] for ch in node.wut.children]
            elif reduction == "source":
                todo = sorted(
                    node.backtrack - node.explored.keys() - node.sleep.keys() - node.disabled
                )
            elif not node.acc:
                todo = []  # the event touched nothing: another thread first is the same run
            else:
                todo = sorted(
                    node.enabled - node.explored.keys() - node.sleep.keys() - node.disabled
                )
                if bound is not None:
                    if before is None:
                        before = _preemptions_before(stack)
                    within = [c for c in todo if _preemptions_if(stack, c, before) <= bound]
                    found.beyond_bound |= len(within) < len(todo)
                    todo = within
            if todo:
                nxt = todo[0]
                break
            stack.pop()
        if nxt is None:
            found.complete = True
            break
        node = stack[-1]
        node.char = nxt
        plan = [n.char for n in stack]
        if optimal:
            sub = node.wut.child(nxt)
            while sub is not None and sub.children:
                c, _, sub = sub.children[0]
                plan.append(c)
        sleep_pos = branch_pos = len(stack) - 1
        sleep_init = {**node.sleep, **node.explored}
        sleep_init.pop(nxt, None)

    found.traces = len(traces)
    found.seconds = time.perf_counter() - started
    if found.failures:
        best = min(found.failures, key=lambda f: (f.preemptions, f.steps))
        if minimize:
            for b in range(0, best.preemptions):
                small = explore(
                    program,
                    bound=b,
                    reduction="sleep",
                    check=check,
                    stop="first",
                    max_runs=max_runs,
                    time_limit_s=max(1.0, deadline - time.perf_counter())
                    if time_limit_s is not None
                    else None,
                    minimize=False,
                    opaque=opaque,
                    **run_options,
                )
                if small.failures:
                    best = min(small.failures, key=lambda f: (f.preemptions, f.steps))
                    break
        found.counterexample = best
        found.seconds = time.perf_counter() - started
    return found


def _reverse(node: _Node, v: list[_Event], optimal: bool) -> None:
    """Make sure a run that reverses a race is planned from ``node``."""
    initials = _initials(v)
    if optimal:
        sleeping = {**node.sleep, **node.explored}
        chars, touched = _touched(v)
        if not any(_weak_initial(q, a, initials, chars, touched) for q, a in sleeping.items()):
            node.wut.insert(v)  # else a sleeping thread's runs already cover it
        return
    if node.backtrack & initials:
        return
    last = v[-1].char
    node.backtrack.add(last if last in initials else min(initials))


def _switch_counts(stack: list[_Node], i: int, char: str, woken: bool) -> bool:
    """Is taking ``char`` at position ``i`` a preemption, as ``preemptions`` counts them (the
    waiter a lock is handed to comes next at no cost)?"""
    prev = stack[i - 1].char
    return char != prev and prev in stack[i].enabled and not woken


def _preemptions_before(stack: list[_Node]) -> list[int]:
    """The preemptions of the stack's schedule up to each position."""
    out = [0] * len(stack)
    for i in range(1, len(stack)):
        here = stack[i]
        out[i] = out[i - 1] + _switch_counts(stack, i, here.char, here.woken)
    return out


def _preemptions_if(stack: list[_Node], choice: str, before: list[int]) -> int:
    """Preemptions of the schedule that follows the stack and then takes ``choice`` at its
    last position (``before``: ``_preemptions_before`` of this stack or of a longer one)."""
    i = len(stack) - 1
    return before[i - 1] + _switch_counts(stack, i, choice, False) if i else 0


def _schedule_of(result: RunResult | None, driver: Policy) -> str:
    if result is not None:
        return str(result.schedule)
    sim = getattr(driver, "sim", None)  # a refused call ended the run: the choices so far
    return str(sim.schedule) if sim is not None else ""


def _counterexample(
    program, run_options, result, driver, seq, failure, opaque=False
) -> Counterexample:
    schedule = _schedule_of(result, driver)
    extra = "".join(f", {k}={v!r}" for k, v in run_options.items())
    return Counterexample(
        schedule,
        failure,
        preemptions(seq),
        len(seq),
        result,
        f"run(program, schedule={schedule!r}{extra})",
        run_options=dict(run_options),
        program=program,
        opaque=opaque,
    )


def _watch(
    program, schedule: str, run_options: dict, opaque: bool = False
) -> tuple[list[_Event], Any, str]:
    """Replay ``schedule`` and watch its events: (events, result, listing)."""
    driver = _Driver([], 0, {}, lines=True, opaque=opaque)
    result, error, _ = _execute(
        program, _Replayer(driver, schedule), {**run_options, "trace": True}
    )
    seq = driver.close()
    sim = result.sim if result is not None else getattr(driver, "sim", None)
    order = _Order(seq)
    racing: dict[int, list[int]] = {}
    for i, j in order.races:
        racing.setdefault(j, []).append(i)
    lines = []
    width = max([len(t.name) for t in sim.threads] if sim is not None else [1])
    for k, ev in enumerate(seq):
        touched = ", ".join(
            f"{_NAMES.get(how & -how, 'touches')} {_object_name(sim, o)}"
            for o, how in sorted(ev.acc.items())
        )
        what = "waits for " + touched.split(" ", 1)[-1] if ev.waiting else touched or "local"
        mark = ""
        if racing.get(k):
            mark = "  <- races with " + ", ".join(f"#{i + 1}" for i in racing[k])
        who = sim.threads[ev.tid].name if sim is not None else ev.char
        lines.append(f"#{k + 1:<3} {who:<{width}}  {what}  [{ev.line}]{mark}")
    if result is not None and result.deadlock is not None:
        lines.append(str(result.deadlock))
    if error is not None:
        lines.append(f"{type(error).__name__}: {_first_line(str(error))}")
    return seq, result, "\n".join(lines)


def _object_name(sim, oid: int) -> str:
    if oid == _WORLD:
        return "state outside the objects"
    if sim is None or oid >= len(sim.objects):
        return f"object {oid}"
    obj = sim.objects[oid]
    return getattr(obj, "name", None) or type(obj).__name__


class _Replayer(Policy):
    """Replays a kernel schedule while a ``_Driver`` watches the events."""

    name = "explore-replay"

    def __init__(self, watcher: _Driver, schedule: str):
        self.watcher, self.schedule, self.i = watcher, schedule, 0
        self.record = watcher.record

    @property
    def sim(self):
        return self.watcher.sim

    @sim.setter
    def sim(self, sim) -> None:  # the watcher reads the run's CPUs and names its objects
        self.watcher.sim = sim

    def choose(self, sim, ready):
        w = self.watcher
        w._note_ready(ready, True)  # who could move, as the driver notes it
        want = self.schedule[self.i] if self.i < len(self.schedule) else None
        self.i += 1
        for t in ready:
            if t.char == want:
                return t
        return ready[0]

    def on_step(self, t: Thread) -> None:
        self.watcher._finish()
        self.watcher._start(t)


# -- probabilistic concurrency testing ------------------------------------------------------------
class _PCT(Policy):
    """Burckhardt et al.'s scheduler: threads get random distinct priorities, the highest ready
    one runs, and at ``depth - 1`` random steps the running thread drops to the bottom."""

    name = "pct"

    def __init__(self, rng: random.Random, depth: int, k: int):
        self.rng, self.depth, self.k = rng, depth, k
        self.prio: dict[str, float] = {}
        self.changes = {rng.randint(1, max(1, k)): i for i in range(1, depth)}
        self.steps = 0
        self.seen: list[str] = []

    def _priority(self, t: Thread) -> float:
        p = self.prio.get(t.char)
        if p is None:
            p = self.depth + self.rng.random() * 1e6  # initial priorities above every drop
            self.prio[t.char] = p
        return p

    def choose(self, sim, ready):
        return max(ready, key=self._priority)

    def on_step(self, t: Thread) -> None:
        self.steps += 1
        if t.char not in self.seen:
            self.seen.append(t.char)
        drop = self.changes.get(self.steps)
        if drop is not None:
            self._priority(t)
            self.prio[t.char] = self.depth - drop  # below every thread's first priority


def pct(
    program: Callable[..., Any],
    *,
    depth: int = 2,
    runs: int = 1000,
    seed: int = 0,
    check: Callable[[RunResult], str | None] | None = None,
    **run_options: Any,
) -> Exploration:
    """Probabilistic concurrency testing for programs too large to enumerate.

    Each run finds a bug of depth ``depth`` (one that needs ``depth`` ordering constraints
    between threads) with probability at least 1/(n k^(depth-1)) for ``n`` threads and ``k``
    steps (Burckhardt et al., ASPLOS 2010); ``guarantee`` states that bound and the confidence
    the runs give together. Seeded: the same seed gives the same runs; it also fixes the
    model's own random data (``sim.rng``), as ``run(..., seed=seed)`` does.
    """
    validate.function("program", program)
    validate.whole("depth", depth, 1, 10)
    validate.whole("runs", runs, 1, 10_000_000)
    validate.whole("seed", seed, 0)
    if check is not None:
        validate.function("check", check)
    _check_options(run_options)
    run_options = {**run_options, "seed": seed}
    found = Exploration("pct", depth)
    started = time.perf_counter()
    rng = random.Random(seed)
    probe = _PCT(random.Random(seed), 1, 1)
    _execute(program, probe, run_options)
    n, k = max(1, len(probe.seen)), max(1, probe.steps)
    seen: set = set()
    for _ in range(runs):
        policy = _PCT(random.Random(rng.getrandbits(64)), depth, k)
        result, error, _ = _execute(program, policy, run_options)
        found.runs += 1
        failure = _failure(result, error, check)
        schedule = _schedule_of(result, policy)
        seen.add(schedule)
        what = _summary(result, failure)
        entry = found.outcomes.setdefault(what, [0, schedule])
        entry[0] += 1
        if failure is not None and found.runs_to_first is None:
            found.runs_to_first = found.runs
        if failure is not None and not any(f.schedule == schedule for f in found.failures):
            seq = _watch(program, schedule, run_options)[0]
            found.failures.append(
                _counterexample(program, run_options, result, policy, seq, failure)
            )
    p = found.probability = 1 / (n * k ** (depth - 1))
    confidence = 1 - (1 - p) ** runs
    sure = "more than 99.9%" if confidence > 0.999 else f"{confidence:.1%}"
    found.guarantee = (
        f"each run finds a depth-{depth} bug with probability >= 1/({n}*{k}^{depth - 1}) = "
        f"{p:.2g}; {runs:,} runs: {sure} confidence"
    )
    found.traces = len(seen)
    found.complete = False
    found.stopped_by = f"runs={runs:,}"
    if found.failures:
        found.counterexample = min(found.failures, key=lambda f: (f.preemptions, f.steps))
    found.seconds = time.perf_counter() - started
    return found


__all__ = [
    "FAILING_OUTCOMES",
    "REDUCTIONS",
    "Counterexample",
    "Exploration",
    "explore",
    "pct",
]
