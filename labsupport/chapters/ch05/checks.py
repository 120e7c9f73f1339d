"""Chapter 5's exercises: handlers that take the AioContext lock, judged by running the answers.

The learner fixes D1 (a caller that holds an IOThread's context twice while ``AIO_WAIT_WHILE``
lets go of it once) and D2 (a coroutine that keeps the context locked across a yield), predicts
a trace of the fixed D1, finds the schedule that loses a wake-up (R3), and says why nesting the
lock was discouraged, with a number that follows from the reason. Every checker runs the
answer in the chapter's scenarios (``scenarios``): the fixes on every schedule the explorer
finds, for the model data of several seeds.

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

from typing import Any

from labsupport import validate
from labsupport.exercises import is_stub, judge_fix, register
from labsupport.kernel import RunResult, ScheduleDivergence, run
from labsupport.loop import aio_wait_while
from labsupport.qemu import aio_context_acquire, aio_context_release

from ... import tracebuf as tb
from .scenarios import d1_program, d2_program, r3_program


def _generator_function(answer: Any, what: str) -> str | None:
    if is_stub(answer):  # the exercise's stub: check() says "not answered yet"
        raise NotImplementedError(what)
    if not callable(answer):
        return f"answer with the function {what} itself, not {answer!r}"
    return None


# -- 5.1 Fix D1 by removing the nesting --------------------------------------------------------

#: How long after the request has finished the main loop may take to notice (us): waiting in
#: ``AIO_WAIT_WHILE`` it notices at once (the completion's kick wakes it); a fixed sleep does not.
NOTICE_SLACK_US = 1.0


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
            return f"iothread0.ctx is still held by {lock.owner.name} when the run ends"
        if not _acquisitions(r, lock, "main-loop"):
            return (
                "save_vmstate never took iothread0's context: the main loop must hold it "
                "(once) while it works on the IOThread's node"
            )
        late = _noticed_after(r)
        if late > NOTICE_SLACK_US:
            return (
                f"the main loop went on {late:g} us after the request had finished: it waited "
                f"for a length of time, not for the request (it must go on within "
                f"{NOTICE_SLACK_US:g} us of in_flight dropping to 0)"
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


def _events(r: RunResult) -> list[tuple[float, int, int, int, int]]:
    """The run's trace as (time, kind, thread id, object id, argument) rows."""
    return list(zip(*r.sim.trace.columns()))


def _tid(r: RunResult, thread: str) -> int:
    return next(t.tid for t in r.sim.threads if t.name == thread)


def _finished_before_exit(r: RunResult) -> bool:
    """Did the request's ``in_flight = 0`` happen before the main loop's last step?"""
    var, main = r.sim.model.oid, _tid(r, "main-loop")
    events = _events(r)
    wrote = [i for i, (_t, k, _tid_, oid, _a) in enumerate(events) if k == tb.WRITE and oid == var]
    ended = [i for i, (_t, k, tid, _o, _a) in enumerate(events) if k == tb.EXIT and tid == main]
    return bool(wrote and ended) and wrote[0] < ended[0]


def _noticed_after(r: RunResult) -> float:
    """How long after ``in_flight = 0`` the main loop took its next step (us)."""
    var, main = r.sim.model.oid, _tid(r, "main-loop")
    events = _events(r)
    wrote = next(
        i for i, (_t, k, _tid_, oid, _a) in enumerate(events) if k == tb.WRITE and oid == var
    )
    later = [t for t, _k, tid, _o, _a in events[wrote + 1 :] if tid == main]
    return later[0] - events[wrote][0] if later else 0.0


def _ctx_lock(r: RunResult) -> Any:
    """The ``QemuRecMutex`` of iothread0's context in a finished run."""
    return next(o for o in r.sim.objects if getattr(o, "name", "") == "iothread0.ctx")


def _acquisitions(r: RunResult, lock: Any, thread: str) -> int:
    """How many times ``thread`` took ``lock`` from free (nested takes not counted)."""
    tid = _tid(r, thread)
    return sum(
        1
        for _t, k, who, oid, a in _events(r)
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
        lock = _ctx_lock(r)
        if lock.owner is not None:
            return (
                f"iothread0.ctx is still held by {lock.owner.name} when the run ends: "
                f"block_resize must let go of it once it has resized"
            )
        order = _resize_order(r, lock)
        if order:
            return order
        if _acquisitions(r, lock, "main-loop") < 2:
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


def _resize_order(r: RunResult, lock: Any) -> str | None:
    """What is wrong with where the resize happened: before the drain's BH ran, or without
    iothread0's context held (None when neither)."""
    var, main, io = r.sim.model.oid, _tid(r, "main-loop"), _tid(r, "iothread0")
    events = _events(r)
    store = next(
        i for i, (_t, k, _tid_, oid, a) in enumerate(events) if k == tb.WRITE and oid == var
    )
    names = [
        getattr(r.sim.objects[oid], "name", "") if k == tb.OP else ""
        for _t, k, _tid_, oid, _a in events[:store]
    ]
    ran = [i for i, name in enumerate(names) if name == "bh drain" and events[i][2] == io]
    woken = ran and any(name == "enter block_resize" for name in names[ran[0] :])
    if not woken:
        return (
            "the resize happened before the drain's BH had woken the coroutine: it must "
            "wait for the drain before it resizes"
        )
    holder, depth = None, 0
    for _t, k, tid, oid, a in events[:store]:
        if oid == lock.oid and k in (tb.ACQUIRE, tb.RELEASE):
            holder, depth = tid, a
    if holder != main or depth < 1:
        return (
            "resized was set while block_resize did not hold iothread0's context: the "
            "resize must happen under the lock"
        )
    return None


# -- 5.3 Predict the trace ---------------------------------------------------------------------

#: The fixed D1, replayed from the schedule that the random policy chose with seed 3.
PREDICT_SCHEDULE = "00110011001110"
PREDICT_KEYS = ("in_flight at step 4", "in_flight at step 8", "main-loop retakes the lock at step")


def predict_run() -> RunResult:
    """Exercise 5.3's run: the fixed D1 with ``PREDICT_SCHEDULE``."""
    return run(d1_program(fixed=True), cpus=2, schedule=PREDICT_SCHEDULE)


def _predict_rows() -> list[dict[str, Any]]:
    from labsupport.present import trace_rows

    return trace_rows(predict_run())


def _predict_answer() -> dict[str, int]:
    rows = _predict_rows()
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
    rows = {r["step"]: r for r in _predict_rows()}
    for key in PREDICT_KEYS[:2]:
        if not validate.is_whole(answer[key], 0, 1):
            return False, f"{key!r}: in_flight counts the requests in flight, 0 or 1 here"
    if not validate.is_whole(answer[PREDICT_KEYS[2]], 1, len(rows)):
        return False, (
            f"{PREDICT_KEYS[2]!r}: a step of the table, a whole number from 1 to {len(rows)}"
        )
    want = _predict_answer()
    wrong = [k for k in PREDICT_KEYS if answer[k] != want[k]]
    if not wrong:
        return True, (
            "right: main-loop goes to sleep at step 8 although in_flight is already "
            "0; the kick's BH (step 9) is what wakes it at once"
        )
    notes = [f"look again at {', '.join(repr(k) for k in wrong)}"]
    if PREDICT_KEYS[2] in wrong:
        row = rows[answer[PREDICT_KEYS[2]]]
        if row["thread"] != "main-loop":
            notes.append(f"step {row['step']} is a step of {row['thread']}, not of main-loop")
        elif not row["text"].startswith("lock iothread0.ctx"):
            notes.append(f"at step {row['step']} main-loop does not take the lock")
        else:
            notes.append(
                f"at step {row['step']} main-loop takes the lock before it waits, not after"
            )
    return False, "; ".join(notes)


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
    return False, f"with {answer!r} the run {r.outcome}: {_r3_story(r)}"


def _r3_story(r: RunResult) -> str:
    """What happened in a run of R3 that did not lose the wake-up, in the steps' order."""
    from labsupport.present import trace_rows

    step = {}
    for row in trace_rows(r):
        for key in ("check for work", "schedule complete", "wait: iothread0"):
            if row["text"].startswith(key):
                step.setdefault(key, row["step"])
    looked, scheduled = step.get("check for work"), step.get("schedule complete")
    slept = step.get("wait: iothread0")
    if scheduled is not None and (looked is None or scheduled < looked):
        return (
            f"the main loop scheduled the BH (step {scheduled}) before iothread0 looked for "
            f"work, so iothread0 found it"
        )
    if slept is not None and scheduled is not None and slept < scheduled:
        return (
            f"iothread0 was already asleep (step {slept}) when the BH was scheduled (step "
            f"{scheduled}), and the BH's notification woke it"
        )
    return "iothread0 ran the BH"  # pragma: no cover (the two cases above are all there is)


# -- 5.5 Recall, with the number that follows from the reason ----------------------------------

RECALL_05 = {
    "a": "a recursive mutex costs no more to take twice; speed was not the reason",
    "b": "",
    "c": "the lock stayed recursive all through 2017-2023; it was not turned into a plain mutex",
    "d": "the rule about other contexts is about ordering between contexts, not nesting one",
}
#: 5.5's answer: the letter, and how deep a caller that nested the context ``RECALL_NESTING``
#: times still holds it while it waits in ``AIO_WAIT_WHILE`` (a whole number, exact).
RECALL_KEYS = ("letter", "depth while waiting")
RECALL_NESTING = 3


def nested_save_vmstate(levels: int = RECALL_NESTING) -> Any:
    """A ``save_vmstate`` body that takes iothread0's context ``levels`` times, then waits."""
    validate.whole("levels", levels, 1, 8)

    def body(io, main_ctx, in_flight):
        for level in range(1, levels + 1):
            yield aio_context_acquire(io.ctx, f"main: level {level}")
        yield aio_wait_while(io.ctx, lambda: in_flight.value > 0)
        for _ in range(levels):
            yield aio_context_release(io.ctx)

    return body


def depth_while_waiting(levels: int = RECALL_NESTING) -> int:
    """How deep the main loop still holds iothread0's context while it waits, measured: the
    lock's depth when the nested caller's run hangs (on the first seed where it does)."""
    for seed in range(20):
        r = run(
            d1_program(save_vmstate_body=nested_save_vmstate(levels)),
            cpus=2,
            seed=seed,
            policy="random",
        )
        if r.outcome == "deadlock":
            return _ctx_lock(r).depth
    return 0  # pragma: no cover (a nested caller hangs on most seeds)


def _recall_05(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, dict) or set(answer) != set(RECALL_KEYS):
        return False, f"answer with a dict with exactly these keys: {list(RECALL_KEYS)}"
    letter, depth = answer["letter"], answer["depth while waiting"]
    if not isinstance(letter, str) or letter.strip().lower() not in RECALL_05:
        return False, f"'letter' is one letter, 'a' to 'd', not {letter!r}"
    if not validate.is_whole(depth, 0, 100):
        return False, f"'depth while waiting' is a whole number of levels, not {depth!r}"
    problems = []
    letter = letter.strip().lower()
    if letter != "b":
        problems.append(f"{letter}: {RECALL_05[letter]}")
    want = depth_while_waiting()
    if depth != want:
        if depth == RECALL_NESTING:
            why = "that is how deep it holds the context before it waits"
        elif depth == 0:
            why = (
                "with the context free while the main loop waits, the IOThread could take it "
                "and finish the request, and nothing would hang"
            )
        else:
            why = "count the levels the caller took and the levels the wait lets go of"
        problems.append(f"depth while waiting {depth}: {why}")
    if problems:
        return False, "; ".join(problems)
    return True, (
        f"AIO_WAIT_WHILE lets go of the context once; a caller that took it {RECALL_NESTING} "
        f"times still holds it {want} deep while it waits (the run hangs with the lock at "
        f"depth {want}), and the IOThread that must finish the work can never take it (D1)"
    )


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
    [
        "which thread stores in_flight, and at which step does that store show in the table?",
        "a store shows in the in_flight column from its own step on; the rows before it show "
        "the value the request started with",
        "AIO_WAIT_WHILE checks its condition before it lets go of the lock, and the main loop "
        "takes the lock back only after something has woken it: find the wake-up first",
    ],
)
register(
    "5.4",
    _lose_wakeup_05,
    [
        "in the buggy poll, what does iothread0 do first: look for work, or announce that it "
        "will sleep?",
        "each character picks who moves at one choice point, the digit 0 for iothread0 and "
        "the digit 1 for the main loop; once the string runs out, the rest is first come",
        "let iothread0 look for work and find none, then let the main loop schedule its BH "
        "before iothread0 goes to sleep",
    ],
)
register(
    "5.5",
    _recall_05,
    [
        "how many times does AIO_WAIT_WHILE let go of the context it waits on?",
        "a recursive mutex is free only when every take has been matched by a release",
        "subtract the releases the wait makes from the takes the caller made: what is left is "
        "what the IOThread still finds held",
    ],
)
