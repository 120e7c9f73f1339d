"""Chapter 6's exercises: annotations, the static pass's blind spot, and the graph lock's bugs.

The learner annotates a block-layer function so the static pass accepts it (and the run-time
check agrees), names the call that the static pass believes but the run does not, rewrites the
graph change so that it drains *before* taking the write lock (D7, on every schedule the
explorer finds), and says why the writer must clear ``has_writer`` while it polls (D6), naming
the coroutine that the hung run shows asleep. Every checker runs the answer: through
``labsupport.analysis.tsa`` and through the chapter's model (``scenarios``).

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any

from labsupport.analysis.tsa import static_check
from labsupport.annotations import tsa_spec, tsa_violations
from labsupport.exercises import is_stub, judge_fix, register, runaway
from labsupport.kernel import RunawayError, RunResult, SimulationError
from labsupport.qemu.graphlock import GRAPH_RDLOCK

from .scenarios import (
    CONFIGS,
    DISK_SERVICE_US,
    GraphRun,
    bdrv_co_preadv,
    call_as_reader,
    classify,
    graph_program,
    refresh_ineffective_unlock,
    run_blind_spot,
    run_scenario,
)


def _is_generator_function(answer: Any, what: str) -> str | None:
    if is_stub(answer):  # the exercise's stub: check() says "not answered yet"
        raise NotImplementedError(what)
    if not callable(answer):
        return f"answer with the function {what} itself, not {answer!r}"
    if not inspect.isgeneratorfunction(inspect.unwrap(answer)):
        return f"{what} must be a generator function (its body uses yield / yield from)"
    return None


# -- 6.1 Annotate a function so the static pass accepts it -------------------------------------

#: The seeds each run of 6.1's answer is tried on (the reader's schedule is seeded).
ANNOTATE_SEEDS = (0, 1, 2)


@GRAPH_RDLOCK
def _read_child(bs, req):
    """6.1's function as the exercise shows it, annotated: the read every answer must do."""
    children = bs.children
    if children:
        yield from bdrv_co_preadv(children[0], req)


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
    kinds = {kind for kind, lock in (spec.promises if spec else []) if str(lock) == "graph_lock"}
    if not kinds & {"requires", "requires_shared"}:
        return False, (
            "the static pass is quiet, but the function does not say what its "
            "caller must hold: annotate it so callers must hold graph_lock"
        )
    if "requires" in kinds:
        return False, (
            "the annotation asks every caller for graph_lock exclusively, the writer's way: "
            "a reader, which holds it shared, could not call a function that only reads"
        )
    for seed in ANNOTATE_SEEDS:
        problem = _annotated_run(answer, seed)
        if problem:
            return False, problem
    return True, (
        "the static pass accepts it, a reader holding the lock runs it cleanly, and "
        f"a caller without the lock is flagged at run time (on {len(ANNOTATE_SEEDS)} seeds)"
    )


def _annotated_run(answer: Any, seed: int) -> str | None:
    """What is wrong with 6.1's answer called by a reader on seed ``seed`` (None: nothing)."""
    try:
        locked = call_as_reader(answer, locked=True, seed=seed)
        unlocked = call_as_reader(answer, locked=False, seed=seed)
    except RunawayError as e:
        return f"running it: {runaway(e)}"
    except SimulationError as e:
        return f"running it: {type(e).__name__}: {e}"
    if locked.outcome != "completed" or tsa_violations(locked):
        return (
            f"seed {seed}: called by a reader that holds the graph lock, it should run "
            f"cleanly; it ended {locked.outcome} with {len(tsa_violations(locked))} "
            f"violation(s)"
        )
    if not any(v.function == inspect.unwrap(answer).__name__ for v in tsa_violations(unlocked)):
        return (
            f"seed {seed}: called without the lock, the run-time check should flag the call itself"
        )
    took = locked.sim.model.extra.get("read took us", 0.0)
    want = call_as_reader(_read_child, locked=True, seed=seed).sim.model.extra["read took us"]
    if took < DISK_SERVICE_US:  # the read goes down to the disk, which takes this long
        return (
            f"it must still read: pass the request to the first child with bdrv_co_preadv "
            f"(the call took {took:g} us; a read that reaches the disk takes at least "
            f"{DISK_SERVICE_US:g} us)"
        )
    if took != want:
        return (
            f"it must do the read the exercise shows, once, through the first child: the call "
            f"took {took:g} us, and that read takes {want:g} us"
        )
    return None


# -- 6.2 The call the static pass cannot see through -------------------------------------------


def _calls_in(fn: Any) -> list[str]:
    """The names of the functions ``fn``'s body calls, in order."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(fn))))
    names = [
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    ]
    return list(dict.fromkeys(names))


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
    helper = refresh_ineffective_unlock.__name__
    if name == "bdrv_drained_begin":
        return False, (
            "bdrv_drained_begin is where the harm happens, but its annotation "
            "(GRAPH_UNLOCKED) is right: the static pass believed the lock was gone before "
            "the drain began"
        )
    if name == helper:
        return False, f"{helper} is the helper itself; the question asks for a call inside it"
    calls = [c for c in _calls_in(refresh_ineffective_unlock) if c != "GRAPH_RDLOCK"]
    if name in calls:
        callee = inspect.unwrap(refresh_ineffective_unlock).__globals__.get(name)
        if tsa_spec(callee) is None:
            return (
                False,
                f"{name} carries no lock annotation: the static pass learns nothing from it",
            )
        return False, (
            f"{name} does what its annotation says at run time; the call to find is one "
            f"whose annotation the run does not bear out"
        )
    return False, f"{helper} calls no function named {name!r}; it calls {', '.join(calls)}"


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
        if r.outcome != "completed":
            if g.model.change_done and g.model.blks[0].quiesce_counter > 0:
                return (
                    f"the run ended {r.outcome} after the change: the drained section was "
                    f"never ended, and the requests it holds back wait for ever"
                )
            why = f"\n{r.deadlock.text()}" if r.deadlock else ""
            return f"the run ended in {r.outcome}{why}"
        if g.model.uaf or tsa_violations(g.result):
            return (g.model.uaf or [v.text for v in tsa_violations(g.result)])[0]
        changes = g.model.extra.get("changes", [])
        if not g.model.change_done or not changes:
            return "the filter was never replaced (call bdrv_replace_child)"
        if not g.model.gl.writer_waits:
            return "the graph must be changed under the write lock (bdrv_graph_wrlock)"
        # bdrv_graph_wrlock ends its own no-poll drain before it returns: only the caller's
        # drained section can still be open when the filter is replaced
        if changes[0]["in_flight"] != 0:
            return (
                f"the filter was replaced with {changes[0]['in_flight']} request(s) in "
                f"flight: the change must happen inside a drained section"
            )
        if changes[0]["quiesce_counter"] < 1:
            return (
                "the filter was replaced outside a drained section: no request happened to "
                "be in flight, but nothing kept a new one from starting"
            )
        if len(changes) > 1:
            return f"the filter was replaced {len(changes)} times; once is the change"
        return None

    return judge_fix(
        graph_program(cfg, answer),
        judge,
        cpus=cfg.iothreads + 2,
        trace=False,
        opaque=True,  # the graph's nodes and counters are plain attributes
        max_runs=100,
        judge_all=True,  # the judge explains a run that hangs after the change itself
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
WRONG_64 = {
    "a": "the flag costs readers nothing either way: speed is not what it is about",
    "c": "has_writer is one global flag; only the readers' counters are per AioContext",
    "d": "with has_writer set a new reader waits: it cannot sneak in, so d has the flag's "
    "effect backwards",
}
#: 6.4's answer: the letter, and the name of the coroutine that the writer's poll ran and that
#: sleeps in the graph lock's queue when D6 (buggy, seed ``SLEEPER_SEED``) hangs.
CHOICE_KEYS_64 = ("letter", "sleeper")
SLEEPER_SEED = 0


def _d6_64(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, dict) or set(answer) != set(CHOICE_KEYS_64):
        return False, f"answer with a dict with exactly these keys: {list(CHOICE_KEYS_64)}"
    letter, sleeper = answer["letter"], answer["sleeper"]
    if not isinstance(letter, str) or letter.strip().lower() not in CHOICES_64:
        return False, f"'letter' is one letter, 'a' to 'd', not {letter!r}"
    if not isinstance(sleeper, str) or not sleeper.strip():
        return False, f"'sleeper' is the name of a coroutine, as a string; not {sleeper!r}"
    letter, name = letter.strip().lower(), sleeper.strip().removesuffix("()").strip()
    problems = [f"{letter}: {WRONG_64[letter]}"] if letter != "b" else []
    g = run_scenario("D6", False, seed=SLEEPER_SEED, trace=False)
    asleep = [co.name for co in g.model.gl.queue.waiters]
    if name not in asleep:
        problems.append(f"sleeper {name!r}: {_not_the_sleeper(g, name)}")
    if problems:
        return False, "; ".join(problems)
    buggy = [classify(run_scenario("D6", False, seed=s, trace=False)) for s in range(20)]
    fixed = [classify(run_scenario("D6", True, seed=s, trace=False)) for s in range(20)]
    return True, (
        f"right: that is D6: {name}, run by the writer's poll, sleeps on has_writer while the "
        f"writer waits for it (on 20 seeds: {buggy.count('deadlock')} deadlocks with "
        f"has_writer=1 while polling, {fixed.count('deadlock')} with it cleared)"
    )


def _not_the_sleeper(g: GraphRun, name: str) -> str:
    """Why ``name`` is not the coroutine asleep in the graph lock's queue of run ``g``."""
    sim = g.result.sim
    if name in {t.name for t in sim.threads}:
        return "that is a thread; the question asks for a coroutine"
    coroutines = [o.name for o in sim.objects if getattr(o, "kind", "") == "coroutine"]
    if name in coroutines:
        return (
            "that coroutine is in the run, but it is not asleep in the graph lock's queue "
            "when the run hangs"
        )
    return f"no coroutine of that name ran in D6 (seed {SLEEPER_SEED})"


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
    [
        "the static pass believes every annotation it reads: which call in the helper does it "
        "take to release the graph lock?",
        "the run's TSA report says, for each release, whether it had any effect at run time",
        "find the release the static pass counts on, and ask whether it releases anything in "
        "a coroutine that holds the real read lock",
    ],
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
    [
        "what does the writer's poll run while it waits for the readers to leave?",
        "a callback that the poll runs can itself be a new reader: what does a new reader do "
        "when it finds has_writer set?",
        "follow that callback in the hung run: it waits for the writer, and the writer waits "
        "inside its poll for the callback; the run's diagnosis names who sleeps in the graph "
        "lock's queue",
    ],
)
