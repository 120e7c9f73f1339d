"""The checkers behind ``check("9.1", ...)`` and ``check("9.2", ...)``: each answer runs twice,
on every schedule in the simulator and on real threads.

9.1 asks for chapter 0's counter made right without a lock: the simulator proves it over every
schedule of a small size (``judge_fix``), and real threads run it at a size where a lost update
would show. 9.2 asks for a program that deadlocks on real threads: the explorer must find the
deadlock, and the watchdog must report one on a real run (a deadlock the host's timing usually
avoids does not count: on real threads it would pass its tests and hang in production).

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

from typing import Any

from labsupport.analysis import explore
from labsupport.exercises import attempt, judge_fix, register
from labsupport.kernel import run
from labsupport.real import NotReal, run_real
from labsupport.shared import Shared
from labsupport.sync import QemuMutex, QemuRecMutex

#: 9.1: the sizes the simulator proves (every schedule) and real threads run (three times).
PROVE_AT = (2, 2)
REAL_AT = (4, 5_000)
REAL_RUNS = 3
#: 9.2: how long a real run may take before the watchdog's verdict.
DEADLOCK_LIMIT_S = 5.0


def _counter_91(answer: Any) -> tuple[bool, str]:
    if not callable(answer):
        return False, (
            "answer with a function of (threads, increments) that returns a program, as "
            "chapter 0's counter_program does"
        )
    try:
        small = answer(*PROVE_AT)
    except NotImplementedError:
        raise
    except Exception as e:  # noqa: BLE001 - the learner's code, reported in its terms
        return False, f"calling it with threads=2, increments=2 raised {type(e).__name__}: {e}"
    if not callable(small):
        return False, "it must return a program: a function of sim that spawns the threads"
    r, problem = attempt(0, lambda: run(small, policy="random", seed=0))
    if problem:
        return False, problem
    counter = r.sim.model
    if not isinstance(counter, Shared):
        return False, "the program must return its counter (the Shared variable)"
    locks = [o for o in r.sim.objects if isinstance(o, QemuMutex | QemuRecMutex)]
    if locks:
        return False, f"the counter must count without a lock; this program makes {locks[0].name}"
    if len(r.sim.threads) != PROVE_AT[0]:
        return False, f"with threads=2 the program must spawn 2 threads, not {len(r.sim.threads)}"
    expected = PROVE_AT[0] * PROVE_AT[1]

    def counts(result):
        value = result.sim.model.value
        return None if value == expected else f"the counter ends at {value}, not {expected}"

    ok, message = judge_fix(small, counts)
    if not ok:
        return False, message
    threads, increments = REAL_AT
    try:
        runs = run_real(answer(threads, increments), repeat=REAL_RUNS, time_limit_s=30)
    except NotReal as e:
        return False, f"on real threads: {e}"
    finals = [r.values.get(counter.name) for r in runs.runs]
    want = threads * increments
    if any(f != want for f in finals) or runs.failures:
        return False, (
            f"on real threads ({threads} x {increments:,}) the counter ended at "
            f"{', '.join(map(str, finals))}, not {want} every time"
        )
    return True, (
        f"every schedule of the small program ends at {expected} (a proof), and {REAL_RUNS} "
        f"real runs of {threads} threads x {increments:,} lost nothing"
    )


def _deadlock_92(answer: Any) -> tuple[bool, str]:
    if not callable(answer):
        return False, "answer with a program: a function of sim that spawns the threads"
    r, problem = attempt(0, lambda: run(answer, policy="random", seed=0))
    if problem and "deadlock" not in problem.lower():
        return False, problem
    found = explore(answer, max_runs=5_000, time_limit_s=None)
    deadlocks = [f for f in found.failures if f.failure.startswith("deadlock")]
    if not deadlocks:
        what = found.verdict if not found.failures else found.failures[0].failure
        return False, f"the explorer finds no deadlock in this program: {what}"
    try:
        real = run_real(answer, time_limit_s=DEADLOCK_LIMIT_S)
    except NotReal as e:
        return False, f"on real threads: {e}"
    if real.outcome != "deadlock":
        return False, (
            f"the explorer finds a deadlock (schedule {deadlocks[0].schedule!r}), but on real "
            f"threads this run ended {real.outcome}: the host's timing avoided it"
        )
    return (
        True,
        "the explorer finds the deadlock, and the watchdog reports it on real threads:\n"
        + (real.report.splitlines()[0]),
    )


register(
    "9.1",
    _counter_91,
    [
        "which steps of chapter 0's increment can another thread come between, and is there one "
        "step that does all of them?",
        "QEMU's atomic helpers add in one indivisible step, and a Shared variable offers the same",
        "keep chapter 0's counter program as it is, with no lock, and make each increment the "
        "atomic one",
    ],
)
register(
    "9.2",
    _deadlock_92,
    [
        "what must each of two threads hold, and ask for, for neither to go on?",
        "two locks in opposite orders deadlock only if each thread has its first lock before the "
        "other asks for it; on real threads one thread often finishes first",
        "after taking its first lock, each thread tells the other with a semaphore and waits for "
        "the other's word before asking for its second lock",
    ],
)
