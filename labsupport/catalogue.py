"""The bug catalogue: every deadlock, hang, stall and race the course reproduces, one record each.

QEMU's concurrency history is told through its bugs: the deadlocks and hangs D1-D8 and the races
R1-R7, each with a buggy and a fixed variant. A ``Scenario`` says how to run one variant on a
seeded schedule and how to read from that run whether the bug happened. ``outcome_table`` counts
the outcomes over many seeds (the tables of chapters 5, 6 and 7) and ``hunt`` counts, bug by
bug, the seeds on which it showed, buggy and fixed (chapter 8's table). Each chapter declares
its own scenarios (``labsupport.chapters.chNN.scenarios.SCENARIOS``); chapter 8 lists them all.

``verify`` goes further than seeds: it runs the buggy model under the interleaving explorer
until it breaks (the failing schedule with the fewest preemptions, and how many runs it took),
then tries the fix on every schedule: a proof when they are few enough to run them all, else
every schedule with at most one preemption (chapter 8's table says which).

A scenario's buggy variant is also a level to be the scheduler of (``level``).

Layer 8 (course): imports the kernel (to run a scenario's program), the analyses and the
stepper.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import validate
from .analysis import Exploration, explore, pct
from .chapters import CHAPTERS
from .kernel import MisuseError
from .kernel import run as run_program
from .stepper import Level

#: The most seeds a hunt or an outcome table runs (each is two runs per scenario).
MAX_SEEDS = 10_000

#: What kind of failure a catalogued bug is. "misuse" is a call QEMU refuses with an assertion
#: (the model raises ``MisuseError`` with QEMU's reason; a run that raises it ends "misuse").
KINDS = ("deadlock", "hang", "stall", "race", "freed", "misuse")

#: The outcome of a run that a ``MisuseError`` stopped.
MISUSE = "misuse"


def _outcome(run: Any) -> str:
    return run.outcome


@dataclass(frozen=True)
class Scenario:
    """One catalogued bug, in its buggy and its fixed variant.

    Most scenarios are a program: ``program(fixed)`` builds what ``run()`` takes, run on
    ``cpus`` host CPUs. A scenario whose run is more than one ``run()`` (a whole VM measured,
    a run classified by what the model saw) gives a ``runner(fixed, seed, trace)``, which
    ``run`` then uses. ``outcome(run)`` names how a run ended (by default
    the run's ``outcome``); the bug was found when that is not ``ok``. ``trace`` says whether
    ``found`` needs the event stream (a detector that reads it). ``judge(result, fixed)``
    names the outcome from one bare ``run()`` of ``program(fixed)`` when the runner wraps it
    (so the explorer, which makes the runs itself, can read it); a scenario with a program and
    no runner needs none.
    """

    id: str
    chapter: int
    kind: str  # one of KINDS
    what: str
    program: Callable[[bool], Any] | None = None
    cpus: int = 2
    runner: Callable[..., Any] | None = None
    outcome: Callable[[Any], str] = _outcome
    ok: str = "completed"
    trace: bool = False
    judge: Callable[[Any, bool], str] | None = None

    def __post_init__(self) -> None:
        validate.label("id", self.id)
        validate.whole("chapter", self.chapter, 0, len(CHAPTERS) - 1)
        if not isinstance(self.kind, str) or self.kind not in KINDS:
            raise ValueError(f"kind is one of {', '.join(KINDS)}; got {self.kind!r}")
        validate.label("what", self.what)
        for name in ("program", "runner"):
            if getattr(self, name) is not None:
                validate.function(name, getattr(self, name), kind="a function or None")
        validate.whole("cpus", self.cpus, 1, 64)
        validate.function("outcome", self.outcome)
        validate.label("ok", self.ok)
        validate.flag("trace", self.trace)
        if self.judge is not None:
            validate.function("judge", self.judge, kind="a function or None")
        if self.program is None and self.runner is None:
            raise ValueError(f"scenario {self.id} needs a program or a runner")

    def run(
        self,
        fixed: bool,
        seed: int = 0,
        *,
        trace: bool = True,
        policy: str = "random",
        schedule: str | None = None,
    ) -> Any:
        """One run of the buggy (``fixed=False``) or the fixed variant on seeded schedule
        ``seed`` (or on ``schedule``, a replay)."""
        validate.flag("fixed", fixed)
        validate.whole("seed", seed, 0)
        validate.flag("trace", trace)
        if self.runner is not None:
            return self.runner(fixed, seed, trace=trace)
        return run_program(
            self.program(fixed),
            seed=seed,
            cpus=self.cpus,
            policy=policy,
            schedule=schedule,
            trace=trace,
        )

    def classify(self, fixed: bool, seed: int, trace: bool = False) -> str:
        """How one run ended: its ``outcome``, or ``"misuse"`` if a ``MisuseError`` (QEMU's
        assertion) stopped it."""
        try:
            return self.outcome(self.run(fixed, seed, trace=trace))
        except MisuseError:
            return MISUSE

    @property
    def explorable(self) -> bool:
        """Whether the explorer can run it: a program whose runs say how they ended."""
        return self.program is not None and (self.runner is None or self.judge is not None)

    def kernel_outcome(self, result: Any, fixed: bool) -> str:
        """The outcome of one bare ``run()`` of ``program(fixed)``."""
        return self.judge(result, fixed) if self.judge is not None else self.outcome(result)

    def level(self, goal: str, seed: int | None = None) -> Level:
        """The buggy variant as a level to be the scheduler of: ``goal`` says what to make
        happen, and the level is won when a run ends the way the bug does. The model data
        is that of ``seed``, by default of the first seed on which a seeded run shows the bug
        (as ``verify``'s); a good level's data lets some schedules avoid the bug."""
        if not self.explorable:
            raise ValueError(f"scenario {self.id} is a whole VM measured, not a program to step")
        validate.label("goal", goal)
        if seed is None:
            seed = next((s for s in range(FIND_SEEDS) if self.found(False, s)), 0)
        validate.whole("seed", seed, 0)

        def reached(result: Any) -> str | None:
            misuse = result.outcome == MISUSE
            outcome = MISUSE if misuse else self.kernel_outcome(result, False)
            return None if outcome == self.ok else f"{self.id}, {outcome}: {self.what}"

        return Level(
            f"{self.id}: {self.what}",
            self.program(False),
            goal,
            reached,
            run_options={"cpus": self.cpus, "seed": seed},
            opaque=True,
        )

    def found(self, fixed: bool, seed: int) -> bool:
        """Whether the bug showed on seed ``seed`` in the buggy or the fixed variant."""
        validate.flag("fixed", fixed)
        validate.whole("seed", seed, 0)
        return self.classify(fixed, seed, trace=self.trace) != self.ok


def outcome_table(scenarios: Mapping[str, Scenario], seeds: int) -> dict[tuple[str, str], Counter]:
    """``{(name, "buggy"|"fixed"): Counter(outcome -> runs)}`` over seeds ``0 .. seeds-1``,
    for each ``name: scenario`` (a chapter's names for its rows)."""
    validate.instance("scenarios", scenarios, Mapping, kind="a dict {name: Scenario}")
    for sc in scenarios.values():
        validate.instance("scenarios", sc, Scenario, kind="a dict {name: Scenario}")
    validate.whole("seeds", seeds, 1, MAX_SEEDS)
    table = {}
    for name, sc in scenarios.items():
        for fixed in (False, True):
            table[(name, "fixed" if fixed else "buggy")] = Counter(
                sc.classify(fixed, s) for s in range(seeds)
            )
    return table


@dataclass
class HuntResult:
    """How many of ``seeds`` schedules showed ``bug``, in its buggy and in its fixed variant."""

    bug: Scenario
    seeds: int
    buggy: int
    fixed: int


def hunt(scenarios: Iterable[Scenario], seeds: int) -> list[HuntResult]:
    """Run every scenario on seeds ``0 .. seeds-1``, buggy and fixed, and count the finds."""
    scenarios = validate.items("scenarios", scenarios, kind="a list of Scenario")
    for sc in scenarios:
        validate.instance("scenarios", sc, Scenario, kind="a list of Scenario")
    validate.whole("seeds", seeds, 1, MAX_SEEDS)
    return [
        HuntResult(
            sc,
            seeds,
            sum(sc.found(False, s) for s in range(seeds)),
            sum(sc.found(True, s) for s in range(seeds)),
        )
        for sc in scenarios
    ]


#: What ``verify`` spends, in runs (not seconds: the table is the same on every machine).
#: The bug search tries every schedule with no preemption, then with at most one, ... up to
#: ``FIND_BOUND`` (CHESS's iterative context bounding), ``FIND_RUNS`` runs per bound at most,
#: then ``PCT_RUNS`` PCT runs. ``FIND_SEEDS``: seeds of model data it tries for the data that
#: shows the bug. The fix runs on every schedule with at most ``FIX_BOUND`` preemptions (within
#: ``FIX_RUNS`` runs, else the table says "incomplete"); when that took fewer than
#: ``WHOLE_RUNS`` runs, every schedule is tried within ``WHOLE_RUNS``: a proof if it completes.
FIND_BOUND = 2
FIND_RUNS = 400
FIND_SEEDS = 20
WHOLE_RUNS = 50
FIX_BOUND = 1
FIX_RUNS = 2000
PCT_RUNS = 300


@dataclass
class Verification:
    """How ``verify`` found one catalogued bug, and what it showed about the fix.

    ``data_seed``: the seed of the model's own random data (arrival times, ...) the search
    used, the first on which a seeded random run shows the bug. ``method``: "explore",
    "pct", or "seeds" for a bug that is a property of timing data rather than of a schedule.
    ``runs``: the runs it took to meet the bug. ``fix``: the exploration of the fixed model:
    every schedule, or every schedule up to ``fix.bound`` preemptions."""

    bug: Scenario
    data_seed: int
    method: str
    found: bool
    preemptions: int | None
    runs: int | None
    schedule: str
    fix: Exploration | None
    failure: str = ""

    @property
    def proven(self) -> bool:
        """Did every schedule of the fix run, and none fail?"""
        fix = self.fix
        return (
            fix is not None
            and fix.complete
            and not fix.failures
            and not fix.unplaced
            and not fix.bounded
        )

    @property
    def fix_verdict(self) -> str:
        """One phrase: what the search of the fix covered, or how the fix fails."""
        fix = self.fix
        if fix is None:
            return "seeds only"
        if fix.failures:
            return f"FAILS: {fix.counterexample.failure}"
        if self.proven:
            return f"every schedule ({fix.traces:,} traces)"
        if fix.complete and not fix.unplaced:
            word = "preemption" if fix.bound == 1 else "preemptions"
            return f"every schedule with at most {fix.bound} {word} ({fix.traces:,} traces)"
        why = "orders not followed" if fix.complete else "incomplete"
        return f"{fix.traces:,} traces, {why}"


def _judge(sc: Scenario, fixed: bool) -> Callable[[Any], str | None]:
    def check(result: Any) -> str | None:
        outcome = sc.kernel_outcome(result, fixed)
        return None if outcome == sc.ok else outcome

    return check


def verify(sc: Scenario) -> Verification:
    """Find ``sc``'s bug with the explorer (or PCT) and try its fix on every schedule.

    The model data comes from the first of ``FIND_SEEDS`` seeds on which a seeded random run
    shows the bug (the bug needs that timing). The explorer then runs the buggy model with
    that data on every schedule with no preemption, then with at most one, ... up to
    ``FIND_BOUND``: the first bound at which it fails gives a failing schedule with the
    fewest preemptions. Every step counts as
    conflicting (``opaque``: the QEMU models keep state in plain attributes). PCT takes over
    if no bound finds the bug. The fixed model, with the same data, runs on every schedule with
    at most ``FIX_BOUND`` preemptions, and on every schedule when ``WHOLE_RUNS`` runs cover
    them all. Deterministic: run counts, not time."""
    validate.instance("sc", sc, Scenario, kind="a Scenario")
    seed = next((s for s in range(FIND_SEEDS) if sc.found(False, s)), 0)
    if not sc.explorable:  # a whole VM measured: the bug is in its timing data
        return Verification(sc, seed, "seeds", sc.found(False, seed), None, None, "", None)
    opts = dict(cpus=sc.cpus, trace=sc.trace, seed=seed)

    def search(fixed: bool, runs: int, **how: Any) -> Exploration:
        return explore(
            sc.program(fixed),
            check=_judge(sc, fixed),
            opaque=True,
            max_runs=runs,
            time_limit_s=None,
            minimize=False,
            **how,
            **opts,
        )

    method, spent, runs_to_first = "explore", 0, None
    for bound in range(FIND_BOUND + 1):
        found = search(False, FIND_RUNS, bound=bound, reduction="sleep")
        if found.failures:
            runs_to_first = spent + found.runs_to_first
            break
        spent += found.runs
    else:
        method = "pct"
        found = pct(sc.program(False), check=_judge(sc, False), runs=PCT_RUNS, **opts)
        runs_to_first = found.runs_to_first
    cx = found.counterexample
    fix = search(True, FIX_RUNS, bound=FIX_BOUND, reduction="sleep")
    if not fix.failures and fix.complete and fix.bounded and fix.runs < WHOLE_RUNS:
        whole = search(True, WHOLE_RUNS)  # few schedules within the bound: perhaps few in all
        if whole.failures or (whole.complete and not whole.unplaced):
            fix = whole
    return Verification(
        sc,
        seed,
        method,
        cx is not None,
        cx.preemptions if cx is not None else None,
        runs_to_first,
        cx.schedule if cx is not None else "",
        fix,
        cx.failure if cx is not None else "",
    )


def format_verify(results: list[Verification]) -> str:
    """The explorer's table: how each bug was found and what is known of its fix."""
    head = (
        "bug",
        "found by",
        "data seed",
        "shortest failing (preemptions)",
        "runs to find it",
        "fix verified",
    )
    rows = []
    for v in results:
        rows.append(
            (
                v.bug.id,
                v.method if v.found else "not found",
                str(v.data_seed),
                "-" if v.preemptions is None else str(v.preemptions),
                "-" if v.runs is None else f"{v.runs:,}",
                v.fix_verdict,
            )
        )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


__all__ = [
    "FIND_BOUND",
    "FIND_RUNS",
    "FIX_BOUND",
    "FIX_RUNS",
    "KINDS",
    "MISUSE",
    "PCT_RUNS",
    "WHOLE_RUNS",
    "HuntResult",
    "Scenario",
    "Verification",
    "format_verify",
    "hunt",
    "outcome_table",
    "verify",
]
