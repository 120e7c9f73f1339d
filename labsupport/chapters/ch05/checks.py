"""Chapter 5's exercises: handlers that take the AioContext lock, judged by running the answers.

The learner fixes D1 (a caller that holds an IOThread's context twice while ``AIO_WAIT_WHILE``
lets go of it once) and D2 (a coroutine that keeps the context locked across a yield), predicts
a trace of the fixed D1, finds the schedule that loses a wake-up (R3), and says why nesting the
lock was discouraged. Every checker runs the answer in the chapter's scenarios
(``scenarios``) over many seeded schedules.

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

from typing import Any

from labsupport.exercises import judge_fix, register
from labsupport.kernel import RunResult, ScheduleDivergence, run

from ... import tracebuf as tb
from .scenarios import d1_program, d2_program, r3_program


def _generator_function(answer: Any, what: str) -> str | None:
    if not callable(answer):
        return f"answer with the function {what} itself, not {answer!r}"
    return None


# -- 5.1 Fix D1 by removing the nesting --------------------------------------------------------


def _fix_d1(answer: Any) -> tuple[bool, str]:
    bad = _generator_function(answer, "save_vmstate(io, main_ctx, in_flight)")
    if bad:
        return False, bad

    def judge(r: RunResult) -> str | None:
        if not _finished_before_exit(r):
            return (
                "save_vmstate returned while in_flight was still 1: it must wait until the "
                "request has finished"
            )
        lock = _ctx_lock(r)
        if lock.owner is not None:
            return f"iothread0.ctx is still held by {lock.owner.name}"
        if not _acquisitions(r, lock, "main-loop"):
            return (
                "save_vmstate never took iothread0's context: the main loop must hold it "
                "(once) while it works on the IOThread's node"
            )
        return None

    return _judge_fix(
        d1_program(save_vmstate_body=answer),
        judge,
        because=": the context is held once, so AIO_WAIT_WHILE's one release frees it for "
        "the IOThread",
    )


def _judge_fix(program: Any, judge: Any, because: str) -> tuple[bool, str]:
    """The chapter's fixes on every schedule, for the model data of several seeds (the
    models' contexts keep state in plain attributes: every step may conflict)."""
    return judge_fix(
        program, judge, cpus=2, opaque=True, data_seeds=4, max_runs=150, because=because
    )


def _finished_before_exit(r: RunResult) -> bool:
    """Did the request's ``in_flight = 0`` happen before the main loop's last step?"""
    sim = r.sim
    var, main = sim.model.oid, next(t.tid for t in sim.threads if t.name == "main-loop")
    _t, kinds, tids, oids, _a = sim.trace.columns()
    events = list(zip(kinds, tids, oids))
    wrote = [i for i, (k, _tid, oid) in enumerate(events) if k == tb.WRITE and oid == var]
    ended = [i for i, (k, tid, _oid) in enumerate(events) if k == tb.EXIT and tid == main]
    return bool(wrote and ended) and wrote[0] < ended[0]


def _ctx_lock(r: RunResult) -> Any:
    """The ``QemuRecMutex`` of iothread0's context in a finished run."""
    return next(o for o in r.sim.objects if getattr(o, "name", "") == "iothread0.ctx")


def _acquisitions(r: RunResult, lock: Any, thread: str) -> int:
    """How many times ``thread`` took ``lock`` from free (nested takes not counted)."""
    tid = next(t.tid for t in r.sim.threads if t.name == thread)
    _t, kinds, tids, oids, args = r.sim.trace.columns()
    return sum(
        1
        for k, who, oid, a in zip(kinds, tids, oids, args)
        if k == tb.ACQUIRE and oid == lock.oid and who == tid and a == 1
    )


# -- 5.2 Fix D2 by dropping the lock across the yield ------------------------------------------


def _fix_d2(answer: Any) -> tuple[bool, str]:
    bad = _generator_function(answer, "block_resize(io, drain_bh, resized)")
    if bad:
        return False, bad

    def judge(r: RunResult) -> str | None:
        if r.sim.model.value != 1:
            return f"resized = {r.sim.model.value}; the resize must happen"
        if _acquisitions(r, _ctx_lock(r), "main-loop") < 2:
            return (
                "block_resize must hold iothread0's context while it resizes: take it "
                "before the drain and again after the yield"
            )
        return None

    return _judge_fix(
        d2_program(block_resize_body=answer),
        judge,
        because=" (the guest's command arriving at each seed's time): the IOThread gets the lock "
        "while the coroutine sleeps",
    )


# -- 5.3 Predict the trace ---------------------------------------------------------------------

#: The fixed D1, replayed from the schedule that the random policy chose with seed 3.
PREDICT_SCHEDULE = "00110011001110"
PREDICT_KEYS = ("in_flight at step 4", "in_flight at step 8", "main-loop retakes the lock at step")


def predict_run() -> RunResult:
    """Exercise 5.3's run: the fixed D1 with ``PREDICT_SCHEDULE``."""
    return run(d1_program(fixed=True), cpus=2, schedule=PREDICT_SCHEDULE)


def _predict_answer() -> dict[str, int]:
    from labsupport.present import trace_rows

    rows = trace_rows(predict_run())
    values = {r["step"]: r["values"].get("in_flight") for r in rows}
    retake = [
        r["step"]
        for r in rows
        if r["thread"] == "main-loop" and r["text"].startswith("lock iothread0.ctx")
    ][-1]
    return {PREDICT_KEYS[0]: values[4], PREDICT_KEYS[1]: values[8], PREDICT_KEYS[2]: retake}


def _predict_05(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, dict) or set(answer) != set(PREDICT_KEYS):
        return False, f"answer with a dict with exactly these keys: {list(PREDICT_KEYS)}"
    want = _predict_answer()
    wrong = [k for k in PREDICT_KEYS if answer[k] != want[k]]
    if not wrong:
        return True, (
            "right: main-loop goes to sleep at step 8 although in_flight is already "
            "0; the kick's BH (step 9) is what wakes it at once"
        )
    return False, f"not quite: look again at {', '.join(wrong)}"


# -- 5.4 Find the schedule that loses the wake-up ----------------------------------------------


def _lose_wakeup_05(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str) or not answer:
        return False, f"answer with a schedule string such as '10', not {answer!r}"
    try:
        r = run(r3_program(fixed=False), schedule=answer)
    except (ScheduleDivergence, ValueError) as e:
        return False, f"that schedule cannot be replayed: {e}"
    if r.outcome == "stuck":
        return True, (
            f"lost: iothread0 checked for work, the BH arrived, then it slept "
            f"(schedule {r.schedule!r}). With the handshake the same schedule "
            f"ends {run(r3_program(fixed=True), schedule=answer).outcome}"
        )
    return False, (
        f"with {answer!r} the run {r.outcome}: the BH must be scheduled after "
        f"iothread0 has looked for work and before it sleeps"
    )


# -- 5.5 Recall --------------------------------------------------------------------------------

RECALL_05 = {
    "a": "a recursive mutex costs no more to take twice; speed was not the reason",
    "b": "",
    "c": "the lock stayed recursive all through 2017-2023; it was not turned into a plain mutex",
    "d": "the rule about other contexts is about ordering between contexts, not nesting one",
}


def _recall_05(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str) or answer.strip().lower() not in RECALL_05:
        return False, f"answer with one letter, 'a' to 'd', not {answer!r}"
    letter = answer.strip().lower()
    if letter == "b":
        return True, (
            "AIO_WAIT_WHILE lets go of the context once; a caller that holds it "
            "twice still holds it while it waits, and the IOThread that must finish "
            "the work can never take it (D1)"
        )
    return False, RECALL_05[letter]


register(
    "5.1",
    _fix_d1,
    [
        "how many times is iothread0's context taken, and how many times does AIO_WAIT_WHILE let "
        "go of it?",
        "AIO_WAIT_WHILE lets go of the context once: the caller must hold it exactly once",
        "take the context once, wait in AIO_WAIT_WHILE until nothing is in flight, then release "
        "it once",
    ],
)
register(
    "5.2",
    _fix_d2,
    [
        "what does the IOThread's handler need while the coroutine is asleep?",
        "a coroutine must not sleep holding the context lock that the drain's BH needs",
        "let go of the context after scheduling the drain BH and before the coroutine yields; "
        "take it again when the coroutine resumes",
    ],
)
register(
    "5.3",
    _predict_05,
    "AIO_WAIT_WHILE checks its condition before it lets go of the "
    "lock; a store shows in the in_flight column from its own step on",
)
register(
    "5.4",
    _lose_wakeup_05,
    "'0' moves iothread0, '1' the main loop; let iothread0 take "
    "one step ('check for work: none') before the main loop schedules its BH",
)
register(
    "5.5",
    _recall_05,
    "count how many times AIO_WAIT_WHILE releases the lock, and how "
    "many times a nested caller took it",
)
