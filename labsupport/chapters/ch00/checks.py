"""The checkers behind ``check("0.2", answer)``: each question's answer, judged by running it.

A checker never compares with a stored answer when it can run the learner's: a schedule is
replayed, a fix is run on every schedule (``judge_fix``), a predicted value is compared with
what the simulation does. So the same checker serves the self-paced learner, the hidden tests
and CI.

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

from typing import Any

from labsupport import validate
from labsupport.exercises import attempt, judge_fix, register
from labsupport.kernel import ScheduleDivergence, run
from labsupport.shared import Shared

from ... import tracebuf as tb
from .scenarios import counter_program

# -- Chapter 0 --------------------------------------------------------------------------------

#: The run that exercise 0.1 asks the learner to predict.
PREDICT_00 = dict(threads=2, increments=2, seed=5)


def _predict_00(answer: Any) -> tuple[bool, str]:
    if not validate.is_whole(answer):
        return False, f"answer with a whole number (the counter's final value), not {answer!r}"
    p = PREDICT_00
    r = run(counter_program(p["threads"], p["increments"]), policy="random", seed=p["seed"])
    final = r.sim.model.counter.value
    if answer == final:
        return True, f"the counter ends at {final}: {4 - final} update(s) lost"
    return False, f"{answer} is not what this schedule produces"


def _lose_one_00(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str):
        return False, f"answer with a schedule string such as '0101', not {answer!r}"
    try:
        r = run(counter_program(threads=2, increments=1), schedule=answer)
    except (ScheduleDivergence, ValueError) as e:
        return False, f"that schedule cannot be followed: {e}"
    final = r.sim.model.counter.value
    if final == 1:
        return True, f"schedule {answer!r} loses an update: both threads store 1"
    return False, f"with schedule {answer!r} the counter ends at {final}, not 1"


def _fixed_00(answer: Any) -> tuple[bool, str]:
    if not callable(answer):
        return False, "answer with a program: a function of sim that spawns the threads"
    r, problem = attempt(0, lambda: run(answer, policy="random", seed=0, cpus=2))
    if problem:
        return False, problem
    if not isinstance(r.sim.model, Shared):
        return False, "the program must return its counter (the Shared variable)"
    if len(r.sim.threads) != 3:
        return False, f"the program must spawn 3 threads, not {len(r.sim.threads)}"

    def nine(result):
        counter = result.sim.model
        if counter.value != 9:
            return f"the counter ends at {counter.value}, not 9"
        return _counts(result, counter)

    return judge_fix(answer, nine, cpus=2, trace=True)


def _counts(result: Any, counter: Shared) -> str | None:
    """Does the counter count? Each of the three threads stores it three times, and every
    store is one more than the store before it (a constant 9, or idle threads, do not)."""
    _t, kinds, tids, oids, args = result.sim.trace.columns()
    stores = [
        (tid, a)
        for k, tid, oid, a in zip(kinds, tids, oids, args)
        if k == tb.WRITE and oid == counter.oid
    ]
    per_thread = [sum(1 for tid, _ in stores if tid == t.tid) for t in result.sim.threads]
    if per_thread != [3, 3, 3]:
        return (
            f"each thread must add 1 to the counter three times; the threads stored it "
            f"{per_thread} times"
        )
    if counter.initial != 0 or [a for _, a in stores] != list(range(1, 10)):
        return (
            "every store must be one more than the one before it, from 0 to 9; the stores "
            f"were {[a for _, a in stores]}"
        )
    return None


register(
    "0.1",
    _predict_00,
    [
        "what does a store write: the counter as it stands at that moment, or something else?",
        "a store writes the value its own thread loaded plus one, whatever the other thread did "
        "in between",
        "go down the table keeping, for each thread, the value it last loaded; the final value is "
        "what the last store writes",
    ],
)
register(
    "0.2",
    _lose_one_00,
    [
        "for an update to be lost, what must both threads have done before either of them stores?",
        "both threads must load the counter while it is still 0; then both store 1",
        "at the first choice point let T1 take its load, then let T0 run; when the string runs "
        "out the first-come policy finishes the run",
    ],
)
register(
    "0.3",
    _fixed_00,
    [
        "which two steps of an increment must no other thread come between?",
        "one lock shared by the three threads; each increment happens while holding it",
        "in every thread, take the QemuMutex before each increment and release it after; the "
        "program returns the counter",
    ],
)
