"""The bug catalogue: every deadlock, hang, stall and race the course reproduces, one record each.

QEMU's concurrency history is told through its bugs: the deadlocks and hangs D1-D8 and the races
R1-R7, each with a buggy and a fixed variant. A ``Scenario`` says how to run one variant on a
seeded schedule and how to read from that run whether the bug happened. ``outcome_table`` counts
the outcomes over many seeds (the tables of chapters 5, 6 and 7) and ``hunt`` counts, bug by
bug, the seeds on which it showed, buggy and fixed (chapter 8's table). Each chapter declares
its own scenarios (``labsupport.chapters.chNN.scenarios.SCENARIOS``); chapter 8 lists them all.

Layer 8 (course): imports the kernel (to run a scenario's program).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import validate
from .chapters import CHAPTERS
from .kernel import MisuseError
from .kernel import run as run_program

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
    ``found`` needs the event stream (a detector that reads it).
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


__all__ = ["KINDS", "MISUSE", "HuntResult", "Scenario", "hunt", "outcome_table"]
