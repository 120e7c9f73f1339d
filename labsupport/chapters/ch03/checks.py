"""The checkers behind chapter 3's exercises: the 2012 dataplane, its limits, and race R2.

In 2013 one virtio-blk device could leave the Big QEMU Lock behind: ``x-data-plane=on`` gave it
a thread of its own that served raw-image reads, writes and flushes without the BQL and without
the block layer. Each checker here judges an answer by running it, as chapter 0's do: a
predicted trace is compared with the seeded run, a schedule is replayed on ``r2_program``, a
fixed program runs on many seeds, a measurement is taken again with ``run_era``, and a recall
answer is held against what ``Dataplane`` refuses.

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from labsupport import validate
from labsupport.exercises import judge_fix, left_at_stub, register
from labsupport.kernel import (
    ScheduleDivergence,
    Simulation,
    run,
)
from labsupport.qemu.dataplane import Dataplane, DataplaneRefused, HandlerGuard, r2_program
from labsupport.qemu.eras import EraResult, run_era
from labsupport.qemu.workload import Workload
from labsupport.shared import Shared

from ... import tracebuf as tb

# -- Common pieces ----------------------------------------------------------------------------

LAST = "vq.last_avail_idx"
AVAIL = "vq.avail_idx"
HANDLER = "virtio_blk_handle_vq"


def stores(sim: Simulation, name: str) -> list[tuple[str, Any]]:
    """Every store into the shared variable ``name``, in order: (thread name, value stored)."""
    variables = [o for o in sim.objects if isinstance(o, Shared) and o.name == name]
    if not variables:
        return []
    oid = variables[0].oid
    tr = sim.trace
    return [
        (sim.threads[tr.tid[i]].name, tr.decode(tr.arg[i]))
        for i in range(len(tr))
        if tr.kind[i] == tb.WRITE and tr.obj[i] == oid
    ]


def _variable(sim: Simulation, name: str) -> Shared | None:
    found = [o for o in sim.objects if isinstance(o, Shared) and o.name == name]
    return found[0] if found else None


# -- 3.1 Predict the trace --------------------------------------------------------------------

#: The run that exercise 3.1 shows with every value hidden: two requests, seed 3, two CPUs.
PREDICT_31 = dict(requests=2, seed=3, cpus=2)


def predict_31_run():
    """The seeded R2 run of exercise 3.1 (the buggy device, two guest requests)."""
    p = PREDICT_31
    return run(
        r2_program(fixed=False, requests=p["requests"]),
        policy="random",
        seed=p["seed"],
        cpus=p["cpus"],
    )


def _predict_31(answer: Any) -> tuple[bool, str]:
    if isinstance(answer, (str, bytes)) or not hasattr(answer, "__iter__"):
        return False, f"answer with a list of whole numbers, such as [1, 2], not {answer!r}"
    answer = list(answer)
    if not all(validate.is_whole(v) for v in answer):
        return False, f"every value stored is a whole number; got {answer!r}"
    truth = [v for _who, v in stores(predict_31_run().sim, LAST)]
    if len(answer) != len(truth):
        return False, (
            f"the table shows {len(truth)} stores into {LAST}; your list has {len(answer)} values"
        )
    if answer == truth:
        return True, (
            f"{len(truth)} stores for {PREDICT_31['requests']} requests: each request "
            f"was parsed by both threads, so the disk would get it twice"
        )
    wrong = next(i for i, (a, b) in enumerate(zip(answer, truth)) if a != b)
    return False, f"store number {wrong + 1} (in table order) is not {answer[wrong]}"


# -- 3.2 Find the schedule that breaks it -----------------------------------------------------

WALK_IN = f"vcpu0 entered {HANDLER} while dataplane was still inside it"


def _run_r2(answer: Any):
    """Run the buggy R2 program on a schedule string; (run, error message)."""
    if validate.is_whole(answer):
        return None, (
            f"answer with a schedule string such as '0110', not a seed: a seed's run shows you "
            f"a schedule (run(..., seed={answer}).schedule), and the string is the answer"
        )
    if not isinstance(answer, str):
        return None, f"answer with a schedule string such as '0110', not {answer!r}"
    try:
        return run(r2_program(fixed=False), schedule=answer, cpus=2), ""
    except (ScheduleDivergence, ValueError) as e:
        return None, f"that schedule cannot be followed: {e}"


def _walk_in_32(answer: Any) -> tuple[bool, str]:
    r, error = _run_r2(answer)
    if r is None:
        return False, error
    reports = r.sim.model.reports
    how = f"schedule {answer!r}"
    if not reports:
        return False, f"with {how} nobody was inside {HANDLER} twice"
    first = reports[0]
    if WALK_IN in first:
        return True, (
            f"with {how} the dataplane is inside {HANDLER} first and vcpu0 walks in "
            f"on it ({first}); {r.recipe()} replays it"
        )
    return False, f"with {how} the first report is the other way round: {first}"


# -- 3.3 Fix the bug --------------------------------------------------------------------------

REQUESTS_33 = 3


def _one_owner_33(answer: Any) -> tuple[bool, str]:
    if not callable(answer):
        return False, "answer with a program: a function of sim that spawns vcpu0 and dataplane"

    def judge(r):
        sim = r.sim
        guard = sim.model
        if not isinstance(guard, HandlerGuard):
            return "the program must return its HandlerGuard (as the buggy one does)"
        names = {t.name for t in sim.threads}
        if not {"vcpu0", "dataplane"} <= names:
            return f"keep the two threads vcpu0 and dataplane; this program has {sorted(names)}"
        if guard.reports:
            return str(guard.reports[0])
        avail, last = _variable(sim, AVAIL), _variable(sim, LAST)
        if avail is None or last is None:
            return f"keep the shared variables {AVAIL!r} and {LAST!r}"
        if avail.value != REQUESTS_33:
            return (
                f"the guest must still place {REQUESTS_33} requests; {AVAIL} ended at {avail.value}"
            )
        parsed = stores(sim, LAST)
        if last.value != REQUESTS_33 or len(parsed) != REQUESTS_33:
            return (
                f"{len(parsed)} request(s) parsed and {LAST} = {last.value}; each of the "
                f"{REQUESTS_33} requests must be parsed exactly once"
            )
        owners = sorted({who for who, _v in parsed})
        if owners != ["dataplane"]:
            return (
                f"nobody is inside the handler twice now, but {' and '.join(owners)} "
                f"both run it: the queue still has two owners. Let the dataplane "
                f"thread alone run the handler; the vCPU only kicks"
            )
        return None

    # the guard's bookkeeping is plain attributes: every step may matter (opaque)
    return judge_fix(
        answer,
        judge,
        cpus=2,
        opaque=True,
        max_runs=500,
        trace=True,
        because="; each request parsed once, by the dataplane",
    )


# -- 3.4 and 3.5 Measure and explain ----------------------------------------------------------

#: A cheaper block layer than the chapter's (6 us instead of 10) and six vCPUs on six CPUs.
WORKLOAD_34 = Workload(
    vcpus=6, host_cpus=6, io_depth=8, io_service_us=20, block_layer_us=6, duration_us=20_000
)
#: The MMIO loads of exercise 3.4: guest code between two exits, in microseconds.
GUEST_US_34 = (5, 10, 20, 50, 100, 200, 500, 1000)


def pair_34(guest_us: float) -> tuple[EraResult, EraResult]:
    """The BQL path ("kvm") and the dataplane on ``WORKLOAD_34`` at one MMIO load."""
    return _pair(WORKLOAD_34.replace(guest_us=guest_us))


@cache
def _pair(w: Workload) -> tuple[EraResult, EraResult]:
    """Both paths on ``w``: the runs are deterministic, so each workload is run once however
    often the checkers ask."""
    return run_era(w, "kvm", trace=False), run_era(w, "dataplane", trace=False)


def advantage_34(guest_us: float) -> float:
    """The dataplane's I/O rate divided by the BQL path's, on ``WORKLOAD_34``."""
    bql, dp = pair_34(guest_us)
    return dp.io_per_s / bql.io_per_s


def _crossing_34(answer: Any) -> tuple[bool, str]:
    if not validate.is_number(answer) or answer not in GUEST_US_34:
        return False, f"answer with one of the guest_us values measured: {GUEST_US_34}"
    here = advantage_34(answer)
    if here < 2:
        return False, (
            f"at guest_us={answer} the dataplane does {here:.2f} times the BQL "
            f"path's I/O rate: not yet twice"
        )
    i = GUEST_US_34.index(answer)
    if i + 1 < len(GUEST_US_34):
        lighter = GUEST_US_34[i + 1]
        there = advantage_34(lighter)
        if there >= 2:
            return False, (
                f"at guest_us={answer} it is {here:.2f} times, but a lighter load, "
                f"guest_us={lighter}, still gives {there:.2f} times"
            )
        return True, (
            f"{here:.2f} times at guest_us={answer}, {there:.2f} times at "
            f"guest_us={lighter}: the advantage passes 2x between those loads"
        )
    return True, f"{here:.2f} times even at the lightest load measured"


EXPLAIN_35 = {
    "a": "The dataplane thread serves more requests per second when the guest exits more often.",
    "b": "The BQL path serves fewer: before each pass that runs the virtqueue handler and the "
    "completions, its main loop must win the BQL from the vCPUs' MMIO exits, and it waits "
    "longer the more often they exit.",
    "c": "The disk itself serves requests more slowly when the guest exits more often.",
}
#: How far a wait in a 3.5 answer may be from the measured one, in microseconds.
WAIT_TOLERANCE_US = 1.0


def _main_loop_wait(r: EraResult) -> float:
    return r.result.sim.model["bql"].sites["main loop"].wait_us


def main_loop_waits_35() -> tuple[float, float]:
    """3.5's evidence: the BQL path's main loop, its total wait for the BQL (us) at the heaviest
    MMIO load of 3.4 (the first guest_us) and at the lightest (the last)."""
    heavy, light = GUEST_US_34[0], GUEST_US_34[-1]
    return _main_loop_wait(pair_34(heavy)[0]), _main_loop_wait(pair_34(light)[0])


def explain_35_facts() -> dict[str, bool]:
    """Which statement of exercise 3.5 the measurements support, lightest and heaviest load."""
    light, heavy = GUEST_US_34[-1], GUEST_US_34[0]
    (bql_l, dp_l), (bql_h, dp_h) = pair_34(light), pair_34(heavy)
    return {
        "a": dp_h.io_per_s > 1.05 * dp_l.io_per_s,
        "b": bql_h.io_per_s < 0.95 * bql_l.io_per_s
        and _main_loop_wait(bql_h) > 2 * _main_loop_wait(bql_l),
        "c": dp_h.io_p50_us > 1.05 * dp_l.io_p50_us,
    }


def _against_35(letter: str) -> str:
    """What the measurements say against statement ``letter`` of 3.5 (it refutes that one)."""
    light, heavy = GUEST_US_34[-1], GUEST_US_34[0]
    (bql_l, dp_l), (bql_h, dp_h) = pair_34(light), pair_34(heavy)
    if letter == "a":
        return (
            f"the dataplane serves {dp_h.io_per_s:,.0f} requests/s at guest_us={heavy} and "
            f"{dp_l.io_per_s:,.0f} at guest_us={light}"
        )
    if letter == "c":
        return (
            f"the dataplane's median latency, which the disk's service time makes, is "
            f"{dp_h.io_p50_us:g} us at guest_us={heavy} and {dp_l.io_p50_us:g} us at "
            f"guest_us={light}"
        )
    return (
        f"the BQL path serves {bql_h.io_per_s:,.0f} requests/s at guest_us={heavy} and "
        f"{bql_l.io_per_s:,.0f} at guest_us={light}"
    )


def _explain_35(answer: Any) -> tuple[bool, str]:
    heavy, light = GUEST_US_34[0], GUEST_US_34[-1]
    shape = (
        f"answer with a dict: {{'why': one letter from {', '.join(EXPLAIN_35)}, "
        f"'main_loop_wait_us': (the wait at guest_us={heavy}, the wait at guest_us={light})}}"
    )
    if not isinstance(answer, dict) or set(answer) != {"why", "main_loop_wait_us"}:
        return False, shape
    left = left_at_stub(answer)
    if left:
        return False, left
    why, waits = answer["why"], answer["main_loop_wait_us"]
    if not isinstance(why, str) or why.strip().lower() not in EXPLAIN_35:
        return False, f"'why' is one letter from {', '.join(EXPLAIN_35)}, not {why!r}"
    if (
        not isinstance(waits, (tuple, list))
        or len(waits) != 2
        or not all(validate.is_number(w) for w in waits)
    ):
        return False, (
            f"'main_loop_wait_us' is a pair of numbers of microseconds: the wait at "
            f"guest_us={heavy}, then the wait at guest_us={light}; not {waits!r}"
        )
    for load, got, want in zip((heavy, light), waits, main_loop_waits_35()):
        if abs(got - want) > WAIT_TOLERANCE_US:
            return False, (
                f"at guest_us={load} the main loop of the BQL path did not wait {got:g} us "
                f"for the BQL in all (a wait may be off by {WAIT_TOLERANCE_US:g} us at most)"
            )
    letter = why.strip().lower()
    if not explain_35_facts()[letter]:
        return False, (
            f"the waits are right, but the measurements do not support ({letter}): "
            f"{_against_35(letter)}"
        )
    return True, (
        "the measurements agree: the dataplane's rate and latency stay flat, the "
        "main loop's wait for the BQL grows with the exit rate"
    )


# -- 3.6 Recall -------------------------------------------------------------------------------

FEATURES_36 = (
    "format=raw",
    "format=qcow2",
    "read",
    "write",
    "flush",
    "I/O throttling",
    "block job",
    "live migration",
)
WHY_36 = {
    "a": "They live in QEMU's block layer or need the BQL, and the dataplane thread used neither.",
    "b": "Linux AIO cannot read or write image files.",
    "c": "They were too slow to run on a dedicated thread.",
}


@cache
def refusals_36() -> dict[str, str]:
    """What ``Dataplane`` refuses, feature by feature: feature -> the refusal message
    ('' when it is served). Read, write and flush are the requests the dataplane era serves."""

    def attempt(action: Any) -> str:
        try:
            action()
        except DataplaneRefused as e:
            return str(e)
        return ""

    served = (
        run_era(Workload(vcpus=1, io_depth=2, duration_us=2_000), "dataplane", trace=False).io_per_s
        > 0
    )
    request = "" if served else "the dataplane served no request"
    return {
        "format=raw": attempt(lambda: Dataplane(image_format="raw").start()),
        "format=qcow2": attempt(lambda: Dataplane(image_format="qcow2").start()),
        "read": request,
        "write": request,
        "flush": request,
        "I/O throttling": attempt(lambda: Dataplane(throttling=True).start()),
        "block job": attempt(lambda: Dataplane().start().start_block_job("stream")),
        "live migration": attempt(lambda: Dataplane().start().migrate()),
    }


#: What each wrong reason of 3.6 gets: it refutes that statement only.
WHY_NOT_36 = {
    "b": "the dataplane itself reads and writes the raw image with Linux AIO",
    "c": "no refusal message is about speed",
}


def _recall_36(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, dict) or set(answer) != {"refused", "why"}:
        return False, "answer with a dict: {'refused': {...features...}, 'why': 'a', 'b' or 'c'}"
    left = left_at_stub(answer)
    if left:
        return False, left
    refused = answer["refused"]
    if isinstance(refused, str) or not hasattr(refused, "__iter__"):
        return False, f"'refused' is a set of features from {FEATURES_36}"
    refused = set(refused)
    unknown = refused - set(FEATURES_36)
    if unknown:
        return False, f"unknown feature(s) {sorted(unknown)}; choose from {FEATURES_36}"
    why = answer["why"]
    if not isinstance(why, str) or why.strip().lower() not in WHY_36:
        return False, f"'why' is one letter: {', '.join(WHY_36)}"
    messages = refusals_36()
    truth = {f for f, m in messages.items() if m}
    if refused != truth:
        served, missing = len(refused - truth), len(truth - refused)
        parts = []
        if served:
            parts.append(f"the dataplane served {served} of the features in your set")
        if missing:
            parts.append(f"{missing} feature(s) it refused are not in your set")
        return False, " and ".join(parts)
    # The reason is read from the refusals themselves: each one names the block layer.
    reason = "a" if all("block layer" in messages[f] for f in truth) else "?"
    letter = why.strip().lower()
    if letter != reason:
        why_not = WHY_NOT_36.get(letter, "the refusal messages say otherwise")
        return False, f"the features are right, but ({letter}) is not the reason: {why_not}"
    return True, (
        f"{len(truth)} refusals, and every message names the block layer that the "
        f"dataplane bypassed"
    )


register(
    "3.1",
    _predict_31,
    [
        "what value does a store into vq.last_avail_idx write?",
        "a store writes the value its own thread last loaded from vq.last_avail_idx, plus one",
        "for each store in the table, find the same thread's last load of vq.last_avail_idx "
        "before it, and list the stores in table order",
    ],
)
register(
    "3.2",
    _walk_in_32,
    [
        "with the first-come policy vcpu0 reaches the handler first: what must change for the "
        "dataplane to be first?",
        "at the start both threads are ready; the dataplane must move first, and still be ahead "
        "when the vCPU's kick wakes it",
        "pick the dataplane at the first choice points until it has entered the handler; or try "
        "seeds one after another until the first report is the one the question asks for, and "
        "answer with that run's schedule",
    ],
)
register(
    "3.3",
    _one_owner_33,
    [
        "the guard saw two threads inside the handler: who are they, and does the queue need both?",
        "give the virtqueue one owner; the other thread only tells the owner there is work",
        "keep the vCPU's kick and let only the dataplane's loop run the handler; the vCPU's own "
        "call to it goes, and the BQL around that call with it",
    ],
)
register(
    "3.4",
    _crossing_34,
    [
        "does the dataplane's advantage grow or shrink as the guest exits less often?",
        "for each guest time in the list, measure both paths on the workload and divide the "
        "dataplane's I/O rate by the BQL path's",
        "answer with the largest guest time whose ratio is at least 2",
    ],
)
register(
    "3.5",
    _explain_35,
    [
        "which of the two paths changes between the heaviest and the lightest MMIO load?",
        "measure both paths at the heaviest and at the lightest load: their I/O rates, the "
        "dataplane's median latency and the main loop's wait for the BQL",
        "the main loop's wait is in the BQL's call sites of the BQL path's result, under the "
        "main loop's name; choose the statement that all those numbers support",
    ],
)
register(
    "3.6",
    _recall_36,
    [
        "what happens when you ask the modelled dataplane for each feature?",
        "try each feature on the modelled Dataplane: start it with that option, or start it and "
        "then ask for the job or the migration; a refusal raises an error with a message",
        "collect the features that are refused, and read their messages: the reason is what "
        "every one of them names",
    ],
)
