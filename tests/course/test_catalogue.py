"""The bug catalogue: a run that QEMU would refuse with an assertion counts as "misuse"."""

from labsupport import MisuseError, compute, run
from labsupport.analysis import explore
from labsupport.catalogue import (
    FIX_BOUND,
    MISUSE,
    WHOLE_RUNS,
    Scenario,
    hunt,
    outcome_table,
    verify,
)
from labsupport.chapters.ch00.classics import locked_increment, lost_update


def _program(fixed):
    def program(sim):
        def body():
            yield compute(1)
            if not fixed:
                raise MisuseError("refused, as QEMU's assertion would")

        sim.spawn("t", body)

    return program


SC = Scenario("X1", 5, "misuse", "a call QEMU refuses", program=_program)


def test_a_misuse_is_an_outcome_not_a_crash_of_the_table():
    assert SC.classify(False, 0) == MISUSE and SC.classify(True, 0) == "completed"
    table = outcome_table({"X1": SC}, 3)
    assert table[("X1", "buggy")] == {MISUSE: 3} and table[("X1", "fixed")] == {"completed": 3}
    [found] = hunt([SC], 4)
    assert (found.buggy, found.fixed) == (4, 0)


def _counter(fixed):
    """Two threads add 1 to ``x``; the buggy one without the lock (a lost update)."""
    return locked_increment(2) if fixed else lost_update(2)


def _lost(r):
    return "completed" if r.sim.model.value == 2 else "lost update"


LOST = Scenario("X2", 0, "race", "a lost update", program=_counter, outcome=_lost)


def test_verify_finds_the_bug_with_its_shortest_schedule_and_proves_the_fix():
    v = verify(LOST)
    assert v.method == "explore" and v.found and v.preemptions == 1 and v.failure == "lost update"
    replayed = run(_counter(False), schedule=v.schedule, seed=v.data_seed, cpus=LOST.cpus)
    assert _lost(replayed) == "lost update"
    assert v.proven and v.fix.complete and not v.fix.failures and not v.fix.bounded
    assert v.fix_verdict == f"every schedule ({v.fix.traces} traces)"


def _counter3(fixed):
    return locked_increment(3) if fixed else lost_update(3)


def _lost3(r):
    return "completed" if r.sim.model.value == 3 else "lost update"


def test_verify_bounds_a_fix_with_too_many_schedules_and_says_so():
    """Three locked increments, every step counted as conflicting, have more schedules than
    ``WHOLE_RUNS`` runs: the fix runs on every schedule with at most ``FIX_BOUND`` preemptions,
    and the verdict says that, not "every schedule"."""
    v = verify(Scenario("X5", 0, "race", "a lost update", program=_counter3, outcome=_lost3))
    assert v.found and v.preemptions == 1
    assert not v.proven and v.fix.complete and v.fix.bounded and v.fix.bound == FIX_BOUND
    word = "preemption" if FIX_BOUND == 1 else "preemptions"
    assert (
        v.fix_verdict == f"every schedule with at most {FIX_BOUND} {word} ({v.fix.traces} traces)"
    )
    # verify counts every step as conflicting: then the schedules are more than WHOLE_RUNS
    whole = explore(locked_increment(3), opaque=True, max_runs=WHOLE_RUNS, time_limit_s=None)
    assert not whole.complete


def test_verify_reports_a_fix_that_still_fails():
    broken = Scenario(
        "X3",
        0,
        "race",
        "a fix that is not one",
        program=lambda fixed: _counter(False),
        outcome=_lost,
    )
    assert verify(broken).fix_verdict == "FAILS: lost update"


def test_verify_keeps_seeds_for_a_scenario_the_explorer_cannot_run():
    def runner(fixed, seed, trace=True):
        return run(_counter(fixed), seed=seed, policy="random")

    measured = Scenario("X4", 0, "race", "measured", runner=runner, outcome=_lost)
    assert not measured.explorable
    v = verify(measured)
    assert v.method == "seeds" and v.fix_verdict == "seeds only"
