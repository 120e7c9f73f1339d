"""Practice problems: as many small questions about races and deadlocks as a learner wants.

OSTEP's homework simulators (``x86.py``, ``lottery.py``, ...) generate a problem from a seed:
the same seed gives the same problem, so a class can talk about "seed 7"; ``-c`` prints the
answers, so a learner checks their own work. This module does the same for the course's
questions, on the course's engine. Each problem is a small program written as data (threads of
loads, stores, locks and unlocks), printed one line per step, and built into a program for
``run()`` and ``explore()``; a seed and a ``difficulty`` (1, 2 or 3: more threads, more steps,
more locks) choose it.

The answer is never what the generator meant: it is what the engine says. Final values and
deadlocks come from a complete exploration of every schedule (optimal DPOR); a program whose
exploration does not
complete within ``MAX_RUNS`` runs is thrown away for the seed's next attempt, so no answer is
stated that was not verified. Every value, deadlock and unsafe order comes with the shortest
schedule found that replays to it, and ``explain()`` shows those runs. A ``trace`` or
``predict`` problem's answer is read from the run it shows.

``p = final_value(seed=3, difficulty=2)`` prints the problem; ``p.check({1, 2})`` prints a
verdict (``final_value(seed=3, answer={1, 2})`` does both, like OSTEP's ``-c``); ``p.explain()``
works it out; ``p.answer`` is the verified answer. ``problem(kind=None, ...)`` picks the kind
from the seed; ``KINDS`` lists them.

Layer 8 (course): imports the kernel, the primitives, the explorer and the trace table.
"""

from __future__ import annotations

import itertools
import random
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from . import validate
from .analysis import Exploration, explore
from .kernel import SCHEDULE_ALPHABET, Replay, RunResult, ScheduleDivergence, Simulation, run
from .present import trace_rows, trace_table
from .shared import Shared
from .sync import QemuMutex

__all__ = [
    "DIFFICULTIES",
    "KINDS",
    "MAX_RUNS",
    "Code",
    "Line",
    "Problem",
    "ProblemUnverified",
    "Values",
    "deadlock",
    "final_value",
    "lock_order",
    "predict",
    "problem",
    "trace",
]

#: The kinds of problem, in the order ``problem()`` draws from.
KINDS = ("final_value", "deadlock", "lock_order", "trace", "predict")
DIFFICULTIES = (1, 2, 3)
#: The most runs one exploration may take; a problem that needs more is replaced by the next
#: attempt of the same seed (so the answer never rests on an unfinished search).
MAX_RUNS = 2000
#: How many programs a seed may try before the generator gives up (it never has, in tests).
ATTEMPTS = 40
#: The most final values a ``final_value`` problem may have, by difficulty: more than a
#: learner can find by hand is not practice.
MAX_VALUES = {1: 4, 2: 6, 3: 8}
#: Every run is on one host CPU: a schedule string then names every switch.
CPUS = 1
#: The longest schedule string tried when looking for the shortest one that deadlocks (3**5
#: replays at most for three threads); a longer witness is the explorer's, cut short.
FIRST_DEADLOCK_LENGTH = 5
#: The width prose is wrapped to (listings and tables keep their own).
WIDTH = 96
#: The answers a ``trace`` problem takes.
BUGS = ("lost update", "deadlock", "none")

SCHEDULES = (
    "A schedule is a string of thread numbers, one for each step taken while more than one "
    "thread could move ('01': T0 moves, then T1). Each line of the program is one step, and "
    "so is a thread's exit. When the string runs out, the run goes on first-come: the thread "
    "that has been ready longest moves, and keeps moving until it waits or ends."
)


class Values(frozenset):
    """A set of final values that prints sorted: ``{1, 2, 4}``."""

    def __repr__(self) -> str:
        return "{" + ", ".join(repr(v) for v in sorted(self)) + "}"


class ProblemUnverified(RuntimeError):
    """No program this seed tried could be verified within ``MAX_RUNS`` runs."""


# --------------------------------------------------------------------------------------------
# Programs as data: what the learner reads and what the engine runs are the same lines.


class Line(NamedTuple):
    """One step of a thread: ``r = load x``, ``store x = r + 1``, ``lock a``, ``unlock a``.

    ``expr`` says what a store writes: ``("set", 3)`` is 3, ``("add", 1)`` is ``r + 1``,
    ``("mul", 2)`` is ``r * 2``, where ``r`` is the thread's own register (what its last
    load read)."""

    op: str
    target: str
    expr: tuple[str, int] | None = None

    def text(self) -> str:
        if self.op == "load":
            return f"r = load {self.target}"
        if self.op == "store":
            how, n = self.expr
            value = {"set": f"{n}", "add": f"r + {n}", "mul": f"r * {n}"}[how]
            return f"store {self.target} = {value}"
        return f"{self.op} {self.target}"


def _value(expr: tuple[str, int], r: int) -> int:
    how, n = expr
    return n if how == "set" else r + n if how == "add" else r * n


def _body(variables: dict[str, Shared], mutexes: dict[str, QemuMutex], lines: tuple[Line, ...]):
    r = 0
    for line in lines:
        if line.op == "load":
            r = yield variables[line.target].load()
        elif line.op == "store":
            yield variables[line.target].store(_value(line.expr, r))
        elif line.op == "lock":
            yield mutexes[line.target].lock()
        else:
            yield mutexes[line.target].unlock()


@dataclass(frozen=True)
class Code:
    """A generated program: its threads (``T0``, ``T1``, ...), each a tuple of ``Line``s, the
    shared variables with their first values, and the mutexes."""

    threads: tuple[tuple[Line, ...], ...]
    variables: tuple[tuple[str, int], ...] = ()
    locks: tuple[str, ...] = ()

    def program(self) -> Callable[[Simulation], tuple[Shared, ...]]:
        """The program for ``run()`` and ``explore()``; its model is the tuple of variables."""

        def program(sim: Simulation) -> tuple[Shared, ...]:
            variables = {name: Shared(sim, name, value) for name, value in self.variables}
            mutexes = {name: QemuMutex(sim, name) for name in self.locks}
            for i, lines in enumerate(self.threads):
                sim.spawn(f"T{i}", _body, variables, mutexes, lines)
            return tuple(variables.values())

        return program

    def listing(self, indent: str = "  ") -> str:
        """The threads side by side, one line per step, under their names."""
        columns = [[f"T{i}"] + [line.text() for line in t] for i, t in enumerate(self.threads)]
        widths = [max(len(s) for s in col) for col in columns]
        depth = max(len(col) for col in columns)
        rows = []
        for k in range(depth):
            cells = [f"{col[k] if k < len(col) else '':<{w}}" for col, w in zip(columns, widths)]
            rows.append((indent + "   ".join(cells)).rstrip())
        rule = indent + "   ".join("-" * w for w in widths)
        return "\n".join([rows[0], rule, *rows[1:]])

    def start(self) -> str:
        """``x starts at 0 and y at 1``."""
        parts = [f"{n} at {v}" for n, v in self.variables]
        if not parts:
            return ""
        head = parts[0].replace(" at ", " starts at ", 1)
        return head if len(parts) == 1 else f"{head} and {' and '.join(parts[1:])}"

    def edges(self) -> list[tuple[str, str, int]]:
        """The lock order: ``(held, taken, thread)`` for each lock taken while one is held."""
        out = []
        for i, lines in enumerate(self.threads):
            held: list[str] = []
            for line in lines:
                if line.op == "lock":
                    out += [(h, line.target, i) for h in held]
                    held.append(line.target)
                elif line.op == "unlock":
                    held.remove(line.target)
        return out


def _held_at(code: Code, thread: int, taken: str, holding: str) -> list[str]:
    """The locks thread ``thread`` holds when it takes ``taken`` while holding ``holding``."""
    held: list[str] = []
    for line in code.threads[thread]:
        if line.op == "lock":
            if line.target == taken and holding in held:
                return list(held)
            held.append(line.target)
        elif line.op == "unlock":
            held.remove(line.target)
    return []


def _order_cycle(code: Code, among: Any = None) -> list[tuple[str, str, int]] | None:
    """A cycle in the lock order whose edges come from different threads (those in ``among``,
    thread numbers, if given), or None."""
    edges = sorted(e for e in set(code.edges()) if among is None or e[2] in among)

    def extend(path: list[tuple[str, str, int]]) -> list[tuple[str, str, int]] | None:
        first, last = path[0][0], path[-1][1]
        if last == first:
            return path
        used = {e[2] for e in path}
        seen = {e[0] for e in path}
        for e in edges:
            if e[0] == last and e[2] not in used and (e[1] == first or e[1] not in seen):
                found = extend(path + [e])
                if found:
                    return found
        return None

    for e in edges:
        found = extend([e])
        if found:
            return found
    return None


def _order_words(code: Code, deadlocked: RunResult | None = None) -> str:
    """The lock order in words: why a program can or cannot deadlock, as far as the order says
    (the cycle among the threads of ``deadlocked``'s deadlock, if given)."""
    among = None
    if deadlocked is not None:
        among = {int(name[1:]) for name in deadlocked.deadlock.cycle}
    cycle = _order_cycle(code, among)
    if cycle is None:
        edges = sorted({(a, b) for a, b, _ in code.edges()})
        if not edges:
            return "No thread holds one lock while it takes another, so no wait can close a cycle."
        pairs = ", ".join(f"{a} before {b}" for a, b in edges)
        return (
            f"Whenever a thread holds one lock while it takes another, it keeps one order "
            f"({pairs}): the order has no cycle, so the waits can never close one."
        )
    steps = "; ".join(f"T{t} takes {b} while holding {a}" for a, b, t in cycle)
    loop = " -> ".join([cycle[0][0]] + [b for _, b, _ in cycle])
    return f"The lock order has a cycle, {loop}: {steps}."


def _gate(code: Code, cycle: list[tuple[str, str, int]]) -> list[str]:
    """Locks every thread on ``cycle`` holds when it takes its edge (a gate that keeps them
    from being between their locks at once)."""
    common: set[str] | None = None
    for a, b, t in cycle:
        held = set(_held_at(code, t, b, a)) - {a}
        common = held if common is None else common & held
    return sorted(common or ())


# --------------------------------------------------------------------------------------------
# Running and exploring.


def _explore(program: Callable, stop: str, check: Callable | None = None) -> Exploration:
    """Every schedule of ``program``, by optimal DPOR (by every interleaving where the DPOR
    cannot follow a program), within ``MAX_RUNS`` runs."""
    # No wall-clock limit: the runs are bounded by MAX_RUNS, so that a slow machine gives the
    # same problems as a fast one.
    options = dict(check=check, stop=stop, max_runs=MAX_RUNS, time_limit_s=None, cpus=CPUS)
    return explore(program, reduction="optimal", **options)


def _proof(e: Exploration) -> bool:
    """Did the exploration cover every schedule (a proof, not a sample)?"""
    return e.complete and not e.unplaced and not e.failures


def _replay(program: Callable, schedule: str) -> RunResult:
    return run(program, schedule=schedule, cpus=CPUS)


def _follow(program: Callable, schedule: str) -> tuple[RunResult | None, int, str]:
    """Replay a learner's schedule: (result, choices used, why it could not be followed)."""
    policy = Replay(schedule, strict_end=False)
    try:
        result = run(program, policy=policy, cpus=CPUS)
    except ScheduleDivergence as e:
        return None, policy.pos, str(e)
    return result, policy.pos, ""


def _shortest(program: Callable, schedule: str, same: Callable[[RunResult], bool]) -> str:
    """The shortest prefix of ``schedule`` whose replay (first-come after it) still ``same``."""
    for n in range(len(schedule) + 1):
        if same(_replay(program, schedule[:n])):
            return schedule[:n]
    raise AssertionError(f"schedule {schedule!r} does not replay to what the explorer saw")


def _deadlocks(program: Callable, threads: int) -> tuple[str | None, int | None] | None:
    """Can ``program`` deadlock? ``(schedule, None)``: yes, and the shortest schedule string
    that does (first-come after it); ``(None, traces)``: no, proved over that many traces;
    None: not known (the exploration did not finish, or a run failed otherwise)."""
    e = _explore(program, stop="first")
    if e.failures:
        if not all(f.failure.startswith("deadlock") for f in e.failures):
            return None
        found = _shortest(program, e.counterexample.schedule, lambda r: r.outcome == "deadlock")
        return _first_deadlock(program, threads, len(found)) or found, None
    if not _proof(e):
        return None
    return None, e.traces


def _first_deadlock(program: Callable, threads: int, shorter_than: int) -> str | None:
    """The first schedule string shorter than ``shorter_than`` (by length, then in order)
    whose replay deadlocks, or None; strings of up to ``FIRST_DEADLOCK_LENGTH`` are tried."""
    for length in range(min(shorter_than, FIRST_DEADLOCK_LENGTH + 1)):
        for choice in itertools.product(SCHEDULE_ALPHABET[:threads], repeat=length):
            schedule = "".join(choice)
            try:
                result = _replay(program, schedule)
            except ScheduleDivergence:  # not a schedule of this program
                continue
            if result.outcome == "deadlock":
                return schedule
    return None


def _sched(schedule: str) -> str:
    return f"{schedule!r}" if schedule else "'' (first-come all the way)"


def _table(result: RunResult, reveal: bool = True) -> str:
    text = trace_table(result, reveal=reveal, show_time=False, max_rows=None)
    return "\n".join("  " + line for line in text.splitlines())


def _x(result: RunResult) -> int:
    return result.sim.model[0].value


def _values(values: Any, last: str = "or") -> str:
    """``1, 2 or 3``: sorted, in words (``last="and"``: ``a, b and c``)."""
    words = [str(v) for v in sorted(values)]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def _letters(names: Any) -> str:
    """``a, b and c``."""
    return _values(names, "and")


def _text(*blocks: str) -> str:
    """Blocks apart by a blank line; a one-line block is prose, wrapped to ``WIDTH``, and a
    block of several lines (a listing, a table) is kept as it is."""
    return "\n\n".join(
        b if "\n" in b or b.startswith("  ") else textwrap.fill(b, WIDTH) for b in blocks
    )


# --------------------------------------------------------------------------------------------
# Problems.


class Problem:
    """One generated problem: its ``text``, the engine-verified ``answer``, ``check(answer)``
    and ``explain()`` (the worked explanation, also kept as ``explanation``).

    ``code`` is the program as data and ``program`` the function ``run()`` takes.
    ``witnesses`` are the schedules behind the answer: for ``final_value`` a schedule per
    value, for ``deadlock`` the deadlocking schedule (None if there is none), for
    ``lock_order`` a deadlocking schedule per letter (None for a safe one). ``traces`` counts
    the traces the answer's exploration covered. A ``trace`` or ``predict`` problem shows the
    run on ``schedule``; a ``lock_order`` problem's ``choices`` are the whole programs by
    letter, as ``Code``, and ``variants`` the same as programs.
    """

    def __init__(
        self,
        kind: str,
        seed: int,
        difficulty: int,
        code: Code,
        question: str,
        answer: Any,
        explanation: str,
        judge: Callable[[Problem, Any], tuple[bool, str]],
        parse: Callable[[Problem, Any], Any],
        *,
        witnesses: Any = None,
        schedule: str | None = None,
        choices: dict[str, Code] | None = None,
        traces: int | None = None,
    ):
        self.kind, self.seed, self.difficulty = kind, seed, difficulty
        self.code = code
        self.program = code.program()
        self.answer = answer
        self.explanation = explanation
        self.witnesses = witnesses
        self.schedule = schedule
        self.choices = dict(choices or {})
        self.variants = {k: c.program() for k, c in self.choices.items()}
        self.traces = traces
        self._judge, self._parse = judge, parse
        self.text = f"{self.name}\n\n{question}"

    @property
    def name(self) -> str:
        """``final_value(seed=3, difficulty=2)``: the call that makes this problem again."""
        return f"{self.kind}(seed={self.seed}, difficulty={self.difficulty})"

    def check(self, answer: Any, *, quiet: bool = False) -> bool:
        """Print ✔ or ✘ with what is right or wrong about ``answer``; return whether it is right.

        An answer of the wrong shape (a number where a set is asked, a letter that is not a
        choice) is refused at once with a TypeError or ValueError that says what is allowed.
        ``quiet=True`` prints nothing."""
        validate.flag("quiet", quiet)
        ok, message = self._judge(self, self._parse(self, answer))
        if not quiet:
            if ok:
                print(f"✔ {self.name}: right — {message}")
            else:
                print(
                    f"✘ {self.name}: not yet — {message}\n"
                    f"  p.explain() works it out (and gives the answer away)"
                )
        return ok

    def explain(self) -> None:
        """Print the worked explanation: the schedules behind the answer, and why."""
        print(self.explanation)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython prints the text as it is
        p.text(self.text)


def _rng(kind: str, seed: int, difficulty: int, attempt: Any) -> random.Random:
    # A string seed goes through SHA-512, not Python's hash(): the same in every process.
    return random.Random(f"practice:{kind}:{difficulty}:{seed}:{attempt}")


def _arguments(seed: Any, difficulty: Any) -> None:
    validate.whole("seed", seed, 0, type_error=TypeError)
    validate.whole("difficulty", difficulty, 1, 3, type_error=TypeError)


def _attempts(
    kind: str, seed: int, difficulty: int, make: Callable[[random.Random], Problem | None]
) -> Problem:
    """The first attempt of ``make`` that gives a verified problem (None: try the next)."""
    for attempt in range(ATTEMPTS):
        made = make(_rng(kind, seed, difficulty, attempt))
        if made is not None:
            return made
    raise ProblemUnverified(
        f"{kind}(seed={seed}, difficulty={difficulty}): none of {ATTEMPTS} generated programs "
        f"could be verified within {MAX_RUNS} runs; try another seed"
    )


def _maybe_check(p: Problem, answer: Any) -> Problem:
    if answer is not None:
        p.check(answer)
    return p


def _how(call: str, example: str, what: str) -> str:
    return (
        f"Answer with {what}: p.check({example}), where p is this problem, or {call[:-1]}, "
        f"answer={example}). p.explain() works it out."
    )


def _loads(code: Code) -> bool:
    return any(line.op == "load" for t in code.threads for line in t)


def _locking(code: Code) -> bool:
    return any(line.op == "lock" for t in code.threads for line in t)


def _threads_word(code: Code) -> str:
    return {2: "Two", 3: "Three"}[len(code.threads)]


# -- 1. final_value ------------------------------------------------------------------------------


def _statement(
    rng: random.Random, target: str, source: str | None = None, store: bool = True
) -> list[Line]:
    """One read-modify-write of ``target`` (reading ``source`` if given), or (if ``store``) a
    plain store."""
    how = rng.choices(("add", "mul", "set"), weights=(5, 2, 2 if store else 0))[0]
    if how == "set":
        return [Line("store", target, ("set", rng.randint(1, 9)))]
    n = rng.randint(1, 3) if how == "add" else 2
    return [Line("load", source or target), Line("store", target, (how, n))]


def _locked(lines: list[Line], lock: str) -> list[Line]:
    return [Line("lock", lock), *lines, Line("unlock", lock)]


def _final_value_code(rng: random.Random, difficulty: int) -> Code:
    """Two threads (three at difficulty 3) of one or two statements on ``x`` (and ``y`` at
    difficulty 3), some under mutex ``m`` from difficulty 2 on (the caller asks for one)."""
    variables = [("x", rng.choice((0, 1, 2)))]
    if difficulty == 3 and rng.random() < 0.5:
        variables.append(("y", rng.choice((0, 1))))
    names = [n for n, _ in variables]
    if difficulty == 1:
        counts = rng.choice(((1, 1), (1, 1), (1, 2), (2, 1)))
    elif difficulty == 2:
        counts = (2, 2)
    else:
        counts = (2, 1, 1)
    threads = []
    for count in counts:
        lines: list[Line] = []
        for k in range(count):
            target = rng.choice(names) if len(names) > 1 and rng.random() < 0.5 else "x"
            source = rng.choice(names) if len(names) > 1 else None
            # from difficulty 2 on, each thread reads before it may just store
            statement = _statement(rng, target, source, store=difficulty == 1 or k > 0)
            if difficulty >= 2 and rng.random() < 0.4:
                statement = _locked(statement, "m")
            lines += statement
        if difficulty >= 2 and rng.random() < 0.25 and not any(ln.op == "lock" for ln in lines):
            lines = _locked(lines, "m")
        threads.append(tuple(lines))
    code = Code(tuple(threads), tuple(variables))
    return Code(code.threads, code.variables, ("m",) if _locking(code) else ())


def _parse_values(p: Problem, answer: Any) -> frozenset[int]:
    kind = "a set of whole numbers such as {1, 2} (every value x can end with)"
    if validate.is_number(answer):
        raise TypeError(f"answer must be {kind}; got {answer!r} (for one value: {{{answer!r}}})")
    return frozenset(validate.numbers("answer", answer, whole_numbers=True, kind=kind))


def _judge_values(p: Problem, got: frozenset[int]) -> tuple[bool, str]:
    missed, extra = sorted(p.answer - got), sorted(got - p.answer)
    if not missed and not extra:
        return True, f"x can end as {_values(p.answer)}, and as nothing else"
    parts = [f"you missed {v}: schedule {_sched(p.witnesses[v])} gives it" for v in missed]
    parts += [f"{v} cannot happen: no schedule ends with x = {v}" for v in extra]
    return False, "; ".join(parts)


def _make_final_value(seed: int, difficulty: int) -> Problem:
    def make(rng: random.Random) -> Problem | None:
        code = _final_value_code(rng, difficulty)
        if not _loads(code) or (difficulty > 1 and not _locking(code)):
            return None
        program = code.program()
        seen: dict[int, str] = {}

        def record(result: RunResult) -> None:
            if result.outcome == "completed":
                seen.setdefault(_x(result), str(result.schedule))
            return None

        e = _explore(program, stop="all", check=record)
        if not _proof(e) or not 2 <= len(seen) <= MAX_VALUES[difficulty]:
            return None
        witnesses = {
            v: _shortest(program, seen[v], lambda r, v=v: r.ok and _x(r) == v) for v in sorted(seen)
        }
        answer = Values(seen)
        call = f"final_value(seed={seed}, difficulty={difficulty})"
        question = _text(
            f"{code.start()}. Each thread has its own register r. Every line is one step, and "
            f"the scheduler may switch threads between any two steps.",
            code.listing(),
            "Which values can x have once every thread has finished? Give all of them. "
            + _how(call, "{...}", "a set of numbers"),
        )
        blocks = [
            f"x can end as {_values(answer)}. The explorer ran every schedule that matters "
            f"({e.traces} traces, complete); here is a schedule for each value.",
            SCHEDULES,
        ]
        for v in sorted(answer):
            table = _table(_replay(program, witnesses[v]))
            blocks.append(f"x = {v}: schedule {_sched(witnesses[v])}\n{table}")
        if _locking(code):
            blocks.append(
                "Between lock m and unlock m a thread's steps do not interleave with another "
                "thread's steps under m; steps outside m can fall anywhere between them."
            )
        return Problem(
            "final_value",
            seed,
            difficulty,
            code,
            question,
            answer,
            _text(*blocks),
            _judge_values,
            _parse_values,
            witnesses=witnesses,
            traces=e.traces,
        )

    return _attempts("final_value", seed, difficulty, make)


def final_value(seed: int = 0, difficulty: int = 1, *, answer: Any = None) -> Problem:
    """Which values can ``x`` end with, over every schedule of a small racy program?

    The answer is a set of whole numbers; ``answer=`` checks one at once (OSTEP's ``-c``)."""
    _arguments(seed, difficulty)
    return _maybe_check(_make_final_value(seed, difficulty), answer)


# -- 2. deadlock ---------------------------------------------------------------------------------


def _take(rng: random.Random, order: list[str]) -> list[Line]:
    """A thread's body over the locks in ``order``: nested, released early, one at a time, or
    (three locks) hand over hand."""
    if len(order) == 3:
        a, b, c = order
        if rng.random() < 0.5:
            return [*(Line("lock", k) for k in order), *(Line("unlock", k) for k in order[::-1])]
        return [
            Line("lock", a), Line("lock", b), Line("unlock", a),
            Line("lock", c), Line("unlock", c), Line("unlock", b),
        ]  # fmt: skip
    a, b = order
    shape = rng.choices(("nested", "early", "apart"), weights=(3, 1, 1))[0]
    if shape == "nested":
        return [Line("lock", a), Line("lock", b), Line("unlock", b), Line("unlock", a)]
    if shape == "early":
        return [Line("lock", a), Line("lock", b), Line("unlock", a), Line("unlock", b)]
    return [Line("lock", a), Line("unlock", a), Line("lock", b), Line("unlock", b)]


def _deadlock_code(rng: random.Random, difficulty: int) -> Code:
    """Two threads over mutexes a and b (difficulty 1), or three over a, b and c, each taking
    two of them (three, too, at difficulty 3)."""
    locks = ("a", "b") if difficulty == 1 else ("a", "b", "c")
    threads = []
    for _ in range(2 if difficulty == 1 else 3):
        k = 2 if difficulty < 3 else rng.choice((2, 2, 3))
        threads.append(tuple(_take(rng, rng.sample(locks, k))))
    if difficulty == 3 and rng.random() < 0.35:
        # a big lock g around some threads (all but one, or all): the BQL's lesson, that
        # threads which take everything under one lock cannot deadlock among themselves
        free = rng.choice((None, *range(len(threads))))
        threads = [t if i == free else tuple(_locked(list(t), "g")) for i, t in enumerate(threads)]
        locks = ("g", *locks)
    used = tuple(k for k in locks if any(ln.target == k for t in threads for ln in t))
    return Code(tuple(threads), (), used)


def _parse_deadlock(p: Problem, answer: Any) -> Any:
    n = len(p.code.threads)
    says = (
        f"must be 'no', 'yes', or a schedule: a string of the thread numbers 0 to {n - 1} "
        f"such as {'01' if n == 2 else '012'!r}"
    )
    if answer is True or answer is False:
        return "yes" if answer else "no"
    if not isinstance(answer, str):
        raise TypeError(f"answer {says}; got {answer!r}")
    word = answer.strip().lower()
    if word in ("yes", "no"):
        return word
    schedule = answer.strip()
    if not schedule or any(c not in SCHEDULE_ALPHABET[:n] for c in schedule):
        raise ValueError(f"answer {says}; got {answer!r}")
    return ("schedule", schedule)


def _judge_deadlock(p: Problem, got: Any) -> tuple[bool, str]:
    can = p.witnesses is not None
    if got == "no":
        if can:
            return False, f"it can: schedule {_sched(p.witnesses)} deadlocks"
        return True, f"no schedule deadlocks (all {p.traces} traces end)"
    if got == "yes":
        if can:
            return True, "it can deadlock; a schedule that does shows it (p.explain() has one)"
        return (
            False,
            f"no schedule deadlocks: the explorer ran all {p.traces} traces, and each ends",
        )
    schedule = got[1]
    result, used, why = _follow(p.program, schedule)
    if result is None:
        return False, f"schedule {schedule!r} cannot be followed: {why}"
    if result.outcome == "deadlock":
        rest = ""
        if used < len(schedule):
            rest = f" after {schedule[:used]!r} (the rest, {schedule[used:]!r}, is never used)"
        who = " and ".join(result.deadlock.cycle)
        return True, f"schedule {schedule!r} deadlocks{rest}: {who} wait for each other"
    tail = "" if can else "; in fact no schedule deadlocks"
    return False, f"with schedule {schedule!r} every thread runs to its end{tail}"


def _report(result: RunResult) -> str:
    """The deadlock report, indented, without its replay line (the schedule is given)."""
    text = result.deadlock.text().split("\n  replay it with", 1)[0]
    return "\n".join("  " + line for line in text.splitlines())


def _deadlock_explanation(code: Code, program: Callable, witness: str | None, traces: int) -> str:
    if witness is not None:
        result = _replay(program, witness)
        return _text(
            f"Yes. Schedule {_sched(witness)} deadlocks:",
            _table(result),
            _report(result),
            _order_words(code, result),
        )
    blocks = [
        f"No. The explorer ran every schedule that matters ({traces} traces, complete), and in "
        f"every run all the threads finish.",
        _order_words(code),
    ]
    cycle = _order_cycle(code)
    if cycle is not None:
        gate = _gate(code, cycle)
        if gate:
            who = " and ".join(f"T{t}" for _, _, t in cycle)
            blocks.append(
                f"Yet the cycle never closes: {who} {'both' if len(cycle) == 2 else 'all'} "
                f"hold {_letters(gate)} while they take these locks, so only one of them at a "
                f"time can be between its locks."
            )
        else:
            blocks.append(
                "Yet no schedule makes all those waits happen at once: the explorer shows it, "
                "where the order alone cannot."
            )
    return _text(*blocks)


def _make_deadlock(seed: int, difficulty: int) -> Problem:
    wanted = _rng("deadlock", seed, difficulty, "target").random() < 0.5

    def make(rng: random.Random) -> Problem | None:
        code = _deadlock_code(rng, difficulty)
        program = code.program()
        verdict = _deadlocks(program, len(code.threads))
        if verdict is None:
            return None
        witness, traces = verdict
        if (witness is not None) != wanted:
            return None  # the seed asked for the other verdict: keep yes and no balanced
        call = f"deadlock(seed={seed}, difficulty={difficulty})"
        question = _text(
            f"{_threads_word(code)} threads share the mutexes {_letters(code.locks)}:",
            code.listing(),
            "Can this program deadlock? If it can, give a schedule that makes it deadlock.",
            SCHEDULES,
            _how(call, "'...'", "'no', or a schedule that deadlocks"),
        )
        return Problem(
            "deadlock",
            seed,
            difficulty,
            code,
            question,
            witness if witness is not None else "no",
            _deadlock_explanation(code, program, witness, traces),
            _judge_deadlock,
            _parse_deadlock,
            witnesses=witness,
            traces=traces,
        )

    return _attempts("deadlock", seed, difficulty, make)


def deadlock(seed: int = 0, difficulty: int = 1, *, answer: Any = None) -> Problem:
    """Can threads that take mutexes in these orders deadlock?

    The answer is 'no', or a schedule (a string such as '01') that deadlocks; 'yes' alone is
    accepted as right, and ``answer`` is the schedule (or 'no')."""
    _arguments(seed, difficulty)
    return _maybe_check(_make_deadlock(seed, difficulty), answer)


# -- 3. lock_order -------------------------------------------------------------------------------


def _bodies(locks: tuple[str, ...], difficulty: int) -> list[tuple[Line, ...]]:
    """The candidate bodies of the open thread, in a fixed order: both orders of a and b in
    three shapes (difficulty 1), every nested pair of a, b, c (2), every order of all three,
    nested or hand over hand (3)."""
    lock, unlock = (lambda k: Line("lock", k)), (lambda k: Line("unlock", k))
    if difficulty == 1:
        out = []
        for a, b in (locks, locks[::-1]):
            out.append((lock(a), lock(b), unlock(b), unlock(a)))
            out.append((lock(a), lock(b), unlock(a), unlock(b)))
            out.append((lock(a), unlock(a), lock(b), unlock(b)))
        return out
    pairs = [(a, b) for a in locks for b in locks if a != b]
    if difficulty == 2:
        return [(lock(a), lock(b), unlock(b), unlock(a)) for a, b in pairs]
    out = []
    for a, b in pairs:
        c = next(k for k in locks if k not in (a, b))
        out.append((lock(a), lock(b), lock(c), unlock(c), unlock(b), unlock(a)))
        out.append((lock(a), lock(b), unlock(a), lock(c), unlock(c), unlock(b)))
    return out


def _body_text(lines: tuple[Line, ...]) -> str:
    return "; ".join(line.text() for line in lines)


def _parse_letters(p: Problem, answer: Any) -> frozenset[str]:
    letters = sorted(p.choices)
    says = (
        f"must name every safe body by its letter, as a string such as 'AB' or a set such as "
        f"{{'A', 'B'}}, of the letters {_letters(letters)}"
    )
    if isinstance(answer, str):
        items = [c for c in answer if c not in " ,;"]
    elif isinstance(answer, (list, tuple, set, frozenset)):
        items = list(answer)
        if not all(isinstance(c, str) for c in items):
            raise TypeError(f"answer {says}; got {answer!r}")
    else:
        raise TypeError(f"answer {says}; got {answer!r}")
    got = frozenset(c.strip().upper() for c in items)
    if not got or not got <= set(letters):
        raise ValueError(f"answer {says}; got {answer!r}")
    return got


def _judge_letters(p: Problem, got: frozenset[str]) -> tuple[bool, str]:
    safe = frozenset(p.answer)
    if got == safe:
        return True, f"{_letters(safe)} never deadlock{'s' if len(safe) == 1 else ''}"
    parts = [
        f"{k} is not safe: schedule {_sched(p.witnesses[k])} deadlocks with it"
        for k in sorted(got - safe)
    ]
    parts += [f"you left out {k}, which never deadlocks" for k in sorted(safe - got)]
    return False, "; ".join(parts)


def _make_lock_order(seed: int, difficulty: int) -> Problem:
    letters = "ABCD"

    def make(rng: random.Random) -> Problem | None:
        locks = ("a", "b") if difficulty == 1 else ("a", "b", "c")
        fixed = []
        for _ in range(1 if difficulty == 1 else 2):
            k = 2 if difficulty < 3 else rng.choice((2, 3))
            fixed.append(tuple(_take(rng, rng.sample(locks, k))))
        picked = rng.sample(_bodies(locks, difficulty), len(letters))
        choices = {k: Code((*fixed, body), (), locks) for k, body in zip(letters, picked)}
        witnesses: dict[str, str | None] = {}
        traces: dict[str, int | None] = {}
        for k, code in choices.items():
            program = code.program()
            verdict = _deadlocks(program, len(code.threads))
            if verdict is None:
                return None
            witnesses[k], traces[k] = verdict
        safe = "".join(k for k in letters if witnesses[k] is None)
        if not safe or len(safe) == len(letters):
            return None  # a question whose answer is "all" or "none" teaches less
        shown = Code(tuple(fixed), (), locks)
        me = f"T{len(fixed)}"
        written = "T0 is" if len(fixed) == 1 else "T0 and T1 are"
        call = f"lock_order(seed={seed}, difficulty={difficulty})"
        question = _text(
            f"{_threads_word(choices['A'])} threads share the mutexes {_letters(locks)}. "
            f"{written} written:",
            shown.listing(),
            f"{me} will run one of these bodies:",
            "\n".join(f"  {k}  {_body_text(choices[k].threads[-1])}" for k in letters),
            "With which of them does the program never deadlock, whatever the schedule? Give "
            "every safe letter. " + _how(call, "'...'", "the safe letters, such as 'AB'"),
        )
        blocks = [f"Safe: {_letters(safe)}. Each body was explored on every schedule."]
        for k in letters:
            code = choices[k]
            result = None
            if witnesses[k] is None:
                verdict = f"safe: no schedule deadlocks ({traces[k]} traces, complete)."
            else:
                result = _replay(code.program(), witnesses[k])
                who = " and ".join(result.deadlock.cycle)
                verdict = (
                    f"deadlocks: schedule {_sched(witnesses[k])} leaves {who} waiting for "
                    f"each other."
                )
            why = textwrap.fill(
                f"{verdict} {_order_words(code, result)}",
                WIDTH,
                initial_indent="   ",
                subsequent_indent="   ",
            )
            blocks.append(f"{k}  {_body_text(code.threads[-1])}\n{why}")
        return Problem(
            "lock_order",
            seed,
            difficulty,
            shown,
            question,
            safe,
            _text(*blocks),
            _judge_letters,
            _parse_letters,
            witnesses=witnesses,
            choices=choices,
            traces=sum(n for n in traces.values() if n is not None),
        )

    return _attempts("lock_order", seed, difficulty, make)


def lock_order(seed: int = 0, difficulty: int = 1, *, answer: Any = None) -> Problem:
    """With which of four bodies for the last thread does the program never deadlock?

    The answer is every safe letter: 'AC', or {'A', 'C'}; ``answer`` is the string of them."""
    _arguments(seed, difficulty)
    return _maybe_check(_make_lock_order(seed, difficulty), answer)


# -- 4. trace ------------------------------------------------------------------------------------

_INC = (Line("load", "x"), Line("store", "x", ("add", 1)))


def _trace_code(rng: random.Random, difficulty: int, wanted: str) -> Code:
    """Threads that each add 1 to ``x``: bare, under ``m``, or under ``a`` and ``b`` in
    either order."""
    n = 2 if difficulty == 1 else 3 if difficulty == 3 else rng.choice((2, 3))
    if difficulty == 3:
        shapes = ("ab", "ba", "a", "b", "")
    elif wanted == "deadlock" or rng.random() < 0.3:
        shapes = ("ab", "ba") if difficulty == 1 else ("ab", "ba", "a", "")
    else:
        shapes = ("m", "")
    threads = []
    for _ in range(n):
        lines = list(_INC)
        for k in reversed(rng.choice(shapes)):
            lines = _locked(lines, k)
        threads.append(tuple(lines))
    code = Code(tuple(threads), (("x", 0),))
    locks = sorted({ln.target for t in threads for ln in t if ln.op == "lock"})
    return Code(code.threads, code.variables, tuple(locks))


def _bug(result: RunResult, serial: int) -> str:
    """What went wrong in ``result``: a deadlock, a lost update (``x`` is not ``serial``, what
    the threads leave one after another), or nothing."""
    if result.outcome == "deadlock":
        return "deadlock"
    if result.outcome != "completed":
        raise AssertionError(f"a practice run ended {result.outcome}: {result}")
    return "lost update" if _x(result) != serial else "none"


class Loss(NamedTuple):
    """A store that lost updates: ``thread`` stored at ``step`` a value computed from the
    ``loaded`` it read at ``load_step``, over ``current``, which ``by`` stored at ``by_step``;
    ``current - loaded`` increments are gone (steps as the trace table numbers them)."""

    step: int
    thread: str
    load_step: int
    loaded: int
    current: int
    by: str
    by_step: int


def _losses(result: RunResult) -> list[Loss]:
    """Each store of ``x`` made over a value its thread had not loaded."""
    loaded: dict[str, tuple[int, int]] = {}
    last: tuple[int, str] | None = None
    before = None
    out = []
    for row in trace_rows(result):
        who, text, step, now = row["thread"], row["text"], row["step"], row["values"]["x"]
        if text.startswith("load x"):
            loaded[who] = (step, now)
        elif text.startswith("store x"):
            load_step, value = loaded.get(who, (0, before))
            if before != value and last is not None:
                out.append(Loss(step, who, load_step, value, before, last[1], last[0]))
            last = (step, who)
        before = now
    return out


def _parse_bug(p: Problem, answer: Any) -> str:
    says = f"must be {', '.join(repr(b) for b in BUGS[:-1])} or {BUGS[-1]!r}"
    if not isinstance(answer, str):
        raise TypeError(f"answer {says}; got {answer!r}")
    word = " ".join(answer.strip().lower().replace("_", " ").replace("-", " ").split())
    if word not in BUGS:
        raise ValueError(f"answer {says}; got {answer!r}")
    return word


def _judge_bug(p: Problem, got: str) -> tuple[bool, str]:
    result = _replay(p.program, p.schedule)
    serial = _x(_replay(p.program, ""))
    if got == p.answer == "deadlock":
        return True, f"{' and '.join(result.deadlock.cycle)} wait for each other for ever"
    if got == p.answer == "lost update":
        return True, f"x ends at {_x(result)}, but one thread after another leaves {serial}"
    if got == p.answer:
        return True, f"every thread finished and x = {serial}, as one thread after another leaves"
    if got == "deadlock":
        return False, "there is no deadlock: every thread ran to its exit"
    if p.answer == "deadlock":
        return False, "look at the last rows: does every thread reach its exit?"
    if got == "none":
        return False, f"x ends at {_x(result)}; count the increments in the program"
    return False, f"x ends at {_x(result)}, just what one thread after another leaves"


def _make_trace(seed: int, difficulty: int) -> Problem:
    wanted = BUGS[_rng("trace", seed, difficulty, "target").randrange(len(BUGS))]

    def make(rng: random.Random) -> Problem | None:
        code = _trace_code(rng, difficulty, wanted)
        program = code.program()
        serial = _replay(program, "")
        if not serial.ok:
            return None
        for _ in range(20):  # the seed's verdict keeps the three answers balanced
            result = run(program, policy="random", seed=rng.randrange(10_000), cpus=CPUS)
            if _bug(result, _x(serial)) == wanted:
                break
        else:
            return None
        schedule = str(result.schedule)
        result = _replay(program, schedule)  # what the problem states is the replay's
        bug = _bug(result, _x(serial))
        call = f"trace(seed={seed}, difficulty={difficulty})"
        question = _text(
            "x starts at 0. Each thread has its own register r.",
            code.listing(),
            f"One run, on the schedule {schedule!r} (the choice column: the thread that moved, "
            f"of how many could):",
            _table(result),
            "What went wrong in this run: a 'lost update', a 'deadlock', or 'none'? "
            + _how(call, "'...'", "one of the three"),
        )
        blocks = [f"{bug.capitalize()}."]
        if bug == "deadlock":
            blocks += [_report(result), _order_words(code, result)]
        else:
            n = sum(1 for t in code.threads for line in t if line.op == "store")
            blocks.append(
                f"{n} threads each add 1 to x, so one after another they leave x = "
                f"{_x(serial)}; this run left x = {_x(result)}."
            )
            for loss in _losses(result):
                blocks.append(
                    f"Step {loss.step}: {loss.thread} stores what it computed from the "
                    f"{loss.loaded} it loaded at step {loss.load_step}, over x = {loss.current}, "
                    f"which {loss.by} stored at step {loss.by_step}: "
                    + (
                        f"{loss.by}'s update is lost."
                        if loss.current - loss.loaded == 1
                        else f"{loss.current - loss.loaded} updates are lost."
                    )
                )
            if bug == "none":
                blocks.append("Each store of x is made over the value its thread loaded.")
        return Problem(
            "trace",
            seed,
            difficulty,
            code,
            question,
            bug,
            _text(*blocks),
            _judge_bug,
            _parse_bug,
            schedule=schedule,
        )

    return _attempts("trace", seed, difficulty, make)


def trace(seed: int = 0, difficulty: int = 1, *, answer: Any = None) -> Problem:
    """Name what went wrong in one run's trace table: 'lost update', 'deadlock' or 'none'."""
    _arguments(seed, difficulty)
    return _maybe_check(_make_trace(seed, difficulty), answer)


# -- 5. predict ----------------------------------------------------------------------------------


def _parse_number(p: Problem, answer: Any) -> int:
    return validate.whole(
        "answer", answer, kind="a whole number (the value of x at the end)", type_error=TypeError
    )


def _judge_number(p: Problem, got: int) -> tuple[bool, str]:
    if got == p.answer:
        return True, f"x ends at {p.answer}"
    if got == _x(_replay(p.program, "")):
        return False, (
            f"{got} is what the threads leave one after another; in this run their steps "
            f"interleave, so follow the table row by row"
        )
    return False, f"x does not end at {got}; follow the rows in order, one register per thread"


def _make_predict(seed: int, difficulty: int) -> Problem:
    def make(rng: random.Random) -> Problem | None:
        code = _final_value_code(rng, difficulty)
        if not _loads(code):
            return None
        program = code.program()
        serial = _x(_replay(program, ""))
        for _ in range(20):  # a run whose interleaving matters
            result = run(program, policy="random", seed=rng.randrange(10_000), cpus=CPUS)
            if result.ok and _x(result) != serial:
                break
        else:
            return None
        schedule = str(result.schedule)
        result = _replay(program, schedule)
        call = f"predict(seed={seed}, difficulty={difficulty})"
        question = _text(
            f"{code.start()}. Each thread has its own register r.",
            code.listing(),
            f"One run, on the schedule {schedule!r}, with its values hidden:",
            _table(result, reveal=False),
            "What is x at the end of this run? " + _how(call, "...", "a whole number"),
        )
        explanation = _text(
            f"x ends at {_x(result)}. The same run with its values:", _table(result)
        )
        return Problem(
            "predict",
            seed,
            difficulty,
            code,
            question,
            _x(result),
            explanation,
            _judge_number,
            _parse_number,
            schedule=schedule,
        )

    return _attempts("predict", seed, difficulty, make)


def predict(seed: int = 0, difficulty: int = 1, *, answer: Any = None) -> Problem:
    """Follow one run's steps, values hidden, and say what ``x`` ends at (a whole number)."""
    _arguments(seed, difficulty)
    return _maybe_check(_make_predict(seed, difficulty), answer)


# --------------------------------------------------------------------------------------------

_MAKERS: dict[str, Callable[[int, int], Problem]] = {
    "final_value": _make_final_value,
    "deadlock": _make_deadlock,
    "lock_order": _make_lock_order,
    "trace": _make_trace,
    "predict": _make_predict,
}


def problem(
    kind: str | None = None, seed: int = 0, difficulty: int = 1, *, answer: Any = None
) -> Problem:
    """A problem of ``kind``, one of ``KINDS`` (None: a kind chosen by the seed)."""
    if kind is not None:
        validate.choice("kind", kind, KINDS)
    _arguments(seed, difficulty)
    if kind is None:
        kind = KINDS[_rng("problem", seed, difficulty, "kind").randrange(len(KINDS))]
    return _maybe_check(_MAKERS[kind](seed, difficulty), answer)
