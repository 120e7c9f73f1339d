"""Chapter 6's exercises: annotations, the static pass's blind spot, and the graph lock's bugs.

The learner annotates a block-layer function so the static pass accepts it (and the run-time
check agrees), names the call that the static pass believes but the run does not, rewrites the
graph change so that it drains *before* taking the write lock (D7, over many seeded schedules),
and says why the writer must clear ``has_writer`` while it polls (D6). Every checker runs the
answer: through ``labsupport.analysis.tsa`` and through the chapter's model (``scenarios``).

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

import inspect
from typing import Any

from labsupport.analysis.tsa import static_check
from labsupport.annotations import tsa_spec, tsa_violations
from labsupport.exercises import judge_fix, register, runaway
from labsupport.kernel import RunawayError, RunResult, SimulationError

from .scenarios import (
    CONFIGS,
    DISK_SERVICE_US,
    GraphRun,
    call_as_reader,
    classify,
    graph_program,
    run_blind_spot,
    run_scenario,
)


def _is_generator_function(answer: Any, what: str) -> str | None:
    if not callable(answer):
        return f"answer with the function {what} itself, not {answer!r}"
    if not inspect.isgeneratorfunction(inspect.unwrap(answer)):
        return f"{what} must be a generator function (its body uses yield / yield from)"
    return None


# -- 6.1 Annotate a function so the static pass accepts it -------------------------------------


def _annotate_61(answer: Any) -> tuple[bool, str]:
    bad = _is_generator_function(answer, "bdrv_co_read_child(bs, req)")
    if bad:
        return False, bad
    spec = tsa_spec(answer)
    if spec is not None and spec.no_tsa:
        return False, (
            "no_tsa switches the static pass off for this body: that hides the "
            "warning instead of stating what the function needs"
        )
    report = static_check(answer)
    if not report.ok:
        return False, "the static pass still warns:\n" + report.text()
    wants = {
        str(lock)
        for kind, lock in (spec.promises if spec else [])
        if kind in ("requires", "requires_shared")
    }
    if "graph_lock" not in wants:
        return False, (
            "the static pass is quiet, but the function does not say what its "
            "caller must hold: annotate it so callers must hold graph_lock"
        )
    try:
        locked = call_as_reader(answer, locked=True)
        unlocked = call_as_reader(answer, locked=False)
    except RunawayError as e:
        return False, f"running it: {runaway(e)}"
    except SimulationError as e:
        return False, f"running it: {type(e).__name__}: {e}"
    if locked.outcome != "completed" or tsa_violations(locked):
        return False, (
            "called by a reader that holds the graph lock, it should run cleanly; "
            f"it ended {locked.outcome} with {len(tsa_violations(locked))} "
            f"violation(s)"
        )
    if not any(v.function == inspect.unwrap(answer).__name__ for v in tsa_violations(unlocked)):
        return False, "called without the lock, the run-time check should flag the call itself"
    took = locked.sim.model.extra.get("read took us", 0.0)
    if took < DISK_SERVICE_US:  # the read goes down to the disk, which takes this long
        return False, (
            f"it must still read: pass the request to the first child with bdrv_co_preadv "
            f"(the call took {took:g} us; a read that reaches the disk takes at least "
            f"{DISK_SERVICE_US:g} us)"
        )
    return True, (
        "the static pass accepts it, a reader holding the lock runs it cleanly, and "
        "a caller without the lock is flagged at run time"
    )


# -- 6.2 The call the static pass cannot see through -------------------------------------------


def _blind_spot_62(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str) or not answer.strip():
        return False, f"answer with the name of a function, as a string; not {answer!r}"
    name = answer.strip().removesuffix("()").strip()
    r = run_blind_spot("ineffective unlock")
    no_effect = [v.function for v in tsa_violations(r) if "had no effect" in v.text]
    if name in no_effect:
        return True, (
            f"{name}() is annotated as releasing graph_lock, so the static pass "
            f"drops the lock from its state; at run time it released nothing "
            f"(the run ended {r.outcome})"
        )
    if name == "bdrv_drained_begin":
        return False, (
            "bdrv_drained_begin is where the harm happens, but its annotation "
            "(GRAPH_UNLOCKED) is right; which call made the static pass believe "
            "the lock was gone before it?"
        )
    return False, f"{name!r} is not the call whose annotation promised more than it did"


# -- 6.3 Fix D7: drain before taking the write lock --------------------------------------------


def _fix_d7(answer: Any) -> tuple[bool, str]:
    bad = _is_generator_function(answer, "change_filter_fixed(blk, new)")
    if bad:
        return False, bad
    report = static_check(answer)
    if not report.ok:
        return False, "the static pass warns:\n" + report.text()
    cfg = CONFIGS["D7"][0]

    def judge(r: RunResult) -> str | None:
        g = GraphRun(cfg, r, r.sim.model)
        if g.model.uaf or tsa_violations(g.result):
            return (g.model.uaf or [v.text for v in tsa_violations(g.result)])[0]
        changes = g.model.extra.get("changes", [])
        if not g.model.change_done or not changes:
            return "the filter was never replaced (call bdrv_replace_child)"
        if not g.model.gl.writer_waits:
            return "the graph must be changed under the write lock (bdrv_graph_wrlock)"
        # bdrv_graph_wrlock ends its own no-poll drain before it returns: only the caller's
        # drained section can still be open when the filter is replaced
        if changes[0]["in_flight"] != 0 or changes[0]["quiesce_counter"] < 1:
            return (
                f"the filter was replaced with {changes[0]['in_flight']} request(s) in "
                f"flight: the change must happen inside a drained section "
                f"(bdrv_drained_begin first)"
            )
        return None

    return judge_fix(
        graph_program(cfg, answer),
        judge,
        cpus=cfg.iothreads + 2,
        trace=False,
        opaque=True,  # the graph's nodes and counters are plain attributes
        max_runs=100,
        because=": the drain polls while nobody holds the graph lock, so every request in "
        "flight can finish",
    )


# -- 6.4 Why has_writer must be 0 while the writer polls ----------------------------------------

CHOICES_64 = {
    "a": "readers run faster when the flag is clear",
    "b": "a callback that the writer's poll runs may take the read lock; with has_writer=1 it "
    "sleeps until the writer is done, while the writer waits for that callback",
    "c": "the flag is per AioContext and the writer does not know which one to set",
    "d": "setting it early would let readers sneak in",
}


def _d6_64(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str) or answer.strip().lower() not in CHOICES_64:
        return False, f"answer with one letter, 'a' to 'd', not {answer!r}"
    letter = answer.strip().lower()
    buggy = [classify(run_scenario("D6", False, seed=s, trace=False)) for s in range(20)]
    fixed = [classify(run_scenario("D6", True, seed=s, trace=False)) for s in range(20)]
    seen = (
        f"(on 20 seeds: {buggy.count('deadlock')} deadlocks with has_writer=1 while "
        f"polling, {fixed.count('deadlock')} with it cleared)"
    )
    if letter == "b":
        return True, f"right: that is D6 {seen}"
    why = {
        "a": "the flag costs readers nothing either way; think about what the poll runs",
        "c": "has_writer is one global flag; the counters are per AioContext",
        "d": "setting it early keeps readers out; the problem is one reader it keeps out",
    }
    return False, f"{why[letter]} {seen}"


register(
    "6.1",
    _annotate_61,
    [
        "the warning names a lock the caller of bdrv_co_preadv must hold: who should hold it "
        "when bdrv_co_read_child runs?",
        "the function itself must not take the lock; it states that its caller holds it, as "
        "bdrv_co_preadv does",
        "give it the same annotation as bdrv_co_preadv carries, and keep its body as it was",
    ],
)
register(
    "6.2",
    _blind_spot_62,
    "look for an unlock that is a no-op where it is called; the "
    "run's TSA report says which release 'had no effect'",
)
register(
    "6.3",
    _fix_d7,
    [
        "read the deadlock report: what does the writer wait for, and what must run for that "
        "wait to end?",
        "a drain polls, and a poll can run a request that needs the read lock; which of the "
        "two should come first?",
        "open the drained section before taking the write lock, replace the child, then "
        "undo both in the reverse order",
    ],
)
register(
    "6.4",
    _d6_64,
    "what does aio_poll run while the writer waits, and what does a reader "
    "do when it sees has_writer=1?",
)
