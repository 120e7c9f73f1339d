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

from typing import Any

from labsupport import validate
from labsupport.exercises import judge_fix, register
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
    """Run the buggy R2 program on a schedule string or a seed; (run, error message)."""
    if not (isinstance(answer, str) or validate.is_whole(answer)):
        return None, (
            f"answer with a schedule string such as '0110' or a seed such as 7, not {answer!r}"
        )
    try:
        if isinstance(answer, str):
            return run(r2_program(fixed=False), schedule=answer, cpus=2), ""
        if answer < 0:
            return None, f"a seed is a whole number >= 0, not {answer}"
        return run(r2_program(fixed=False), policy="random", seed=answer, cpus=2), ""
    except (ScheduleDivergence, ValueError) as e:
        return None, f"that schedule cannot be followed: {e}"


def _walk_in_32(answer: Any) -> tuple[bool, str]:
    r, error = _run_r2(answer)
    if r is None:
        return False, error
    reports = r.sim.model.reports
    how = f"schedule {answer!r}" if isinstance(answer, str) else f"seed {answer}"
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
    w = WORKLOAD_34.replace(guest_us=guest_us)
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


def explain_35_facts() -> dict[str, bool]:
    """Which statement of exercise 3.5 the measurements support, lightest and heaviest load."""
    light, heavy = GUEST_US_34[-1], GUEST_US_34[0]
    (bql_l, dp_l), (bql_h, dp_h) = pair_34(light), pair_34(heavy)

    def main_loop_wait(r: EraResult) -> float:
        return r.result.sim.model["bql"].sites["main loop"].wait_us

    return {
        "a": dp_h.io_per_s > 1.05 * dp_l.io_per_s,
        "b": bql_h.io_per_s < 0.95 * bql_l.io_per_s
        and main_loop_wait(bql_h) > 2 * main_loop_wait(bql_l),
        "c": dp_h.io_p50_us > 1.05 * dp_l.io_p50_us,
    }


def _explain_35(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str) or answer.strip().lower() not in EXPLAIN_35:
        return False, f"answer with one letter: {', '.join(EXPLAIN_35)}"
    letter = answer.strip().lower()
    facts = explain_35_facts()
    if facts[letter]:
        return True, (
            "the measurements agree: the dataplane's rate and latency stay flat, the "
            "main loop's wait for the BQL grows with the exit rate"
        )
    return False, f"the measurements do not support ({letter}); compare both paths' numbers"


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


def _recall_36(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, dict) or set(answer) != {"refused", "why"}:
        return False, "answer with a dict: {'refused': {...features...}, 'why': 'a', 'b' or 'c'}"
    refused = answer["refused"]
    if isinstance(refused, str) or not hasattr(refused, "__iter__"):
        return False, f"'refused' is a set of features from {FEATURES_36}"
    refused = set(refused)
    unknown = refused - set(FEATURES_36)
    if unknown:
        return False, f"unknown feature(s) {sorted(unknown)}; choose from {FEATURES_36}"
    messages = refusals_36()
    truth = {f for f, m in messages.items() if m}
    if refused != truth:
        missing, extra = truth - refused, refused - truth
        parts = []
        if missing:
            parts.append(f"{len(missing)} refused feature(s) missing")
        if extra:
            parts.append(f"{', '.join(sorted(extra))} worked with the dataplane")
        return False, "; ".join(parts)
    why = answer["why"]
    if not isinstance(why, str) or why.strip().lower() not in WHY_36:
        return False, f"'why' is one letter: {', '.join(WHY_36)}"
    # The reason is read from the refusals themselves: each one names the block layer.
    reason = "a" if all("block layer" in messages[f] for f in truth) else "?"
    if why.strip().lower() != reason:
        return False, "the features are right; read the refusal messages again for the reason"
    return True, (
        f"{len(truth)} refusals, and every message names the block layer that the "
        f"dataplane bypassed"
    )


register(
    "3.1",
    _predict_31,
    "a store writes the value its thread loaded plus one; find each "
    "thread's last load of vq.last_avail_idx before its store",
)
register(
    "3.2",
    _walk_in_32,
    "at t=0 both threads are ready: let the dataplane (thread 1) go "
    "first, and pick 1 again when vcpu0 has kicked it; or try seeds in a loop",
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
    "measure advantage = dataplane io_per_s / BQL io_per_s for every "
    "guest_us in GUEST_US_34 and take the largest guest_us where it is >= 2",
)
register(
    "3.5",
    _explain_35,
    "compare, at guest_us=5 and 1000, each path's io_per_s and the BQL "
    "wait of the 'main loop' call site (result.sim.model['bql'].sites)",
)
register(
    "3.6",
    _recall_36,
    "try each feature on labsupport.qemu.Dataplane and read the refusal messages",
)
