"""Chapter 7's exercises: the multi-queue block layer of QEMU 9.0, judged by running the answers.

The learner maps 8 virtqueues onto 4 IOThreads (the checker measures the mapping against the
best one), moves a coroutine to another IOThread without letting that thread enter it too
early (R6, over many seeds; the answer ``move(new_ctx, old_ctx)`` is handed the context it
moves from, which QEMU's ``aio_co_reschedule_self(new_ctx)`` finds itself), says which request
lock wins and why (the checker measures both),
and finds the number of IOThreads after which the I/O rate stops growing on a host with a
slower disk. Every checker runs the answer in ``labsupport.qemu.multiqueue`` or the
chapter's ``scenarios``.

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

from typing import Any

from labsupport import validate
from labsupport.exercises import judge_fix, register
from labsupport.qemu.multiqueue import VM, MappingError, MQCosts, measure, sweep

from .scenarios import SCENARIOS, classify_result, r6_program

# -- 7.1 Choose an iothread-vq-mapping --------------------------------------------------------

#: The host of exercise 7.1: 4 IOThreads (one per host CPU set aside for them), 8 virtqueues.
MAPPING_VM = VM(iothreads=4, num_queues=8, host_cpus=8, vcpus=8, iodepth=64)
#: How close to the best mapping's rate an answer must come.
MAPPING_SHARE = 0.9


def best_mapping_rate() -> float:
    """The rate of the best mapping we know for ``MAPPING_VM``: 2 virtqueues per IOThread."""
    best = [{"iothread": f"iothread{i}", "vqs": [2 * i, 2 * i + 1]} for i in range(4)]
    return max(
        measure(MAPPING_VM.replace(mapping=best)).iops,
        measure(MAPPING_VM.replace(mapping=None)).iops,
    )


def _mapping_07(answer: Any) -> tuple[bool, str]:
    try:
        vm = MAPPING_VM.replace(mapping=answer)
    except MappingError as e:
        return False, f"this mapping is refused: {e}"
    except ValueError as e:
        return False, str(e)
    load = {}
    for q, name in vm.vq_map.items():
        load.setdefault(name, []).append(q)
    sizes = {n: len(v) for n, v in sorted(load.items())}
    if len(load) < MAPPING_VM.iothreads or max(sizes.values()) - min(sizes.values()) > 1:
        return False, (
            f"valid, but not balanced: virtqueues per IOThread {sizes}; the task asks for "
            f"every one of the {MAPPING_VM.iothreads} IOThreads to serve as many virtqueues "
            f"as the others (one more at most)"
        )
    mine = measure(vm).iops
    best = best_mapping_rate()
    if mine >= MAPPING_SHARE * best:
        return True, (
            f"valid, and {mine / 1000:,.0f}k IOPS against {best / 1000:,.0f}k for "
            f"the best mapping known: every IOThread serves "
            f"{sorted(len(v) for v in load.values())} virtqueues"
        )
    return False, (
        f"valid, but {mine / 1000:,.0f}k IOPS is below {MAPPING_SHARE:.0%} of "
        f"{best / 1000:,.0f}k: virtqueues per IOThread "
        f"{ {n: len(v) for n, v in sorted(load.items())} }; spread them evenly"
    )


# -- 7.2 Fix R6: move a coroutine without being entered too early -----------------------------


def _fix_r6(answer: Any) -> tuple[bool, str]:
    if not callable(answer):
        return False, f"answer with the function move(new_ctx, old_ctx) itself, not {answer!r}"

    def judge(r: Any) -> str | None:
        out = classify_result("R6", True, r)
        if out.outcome != "ok":
            return f"{out.outcome}: {'; '.join(out.findings)}"
        where = r.sim.model["where"]
        if where != ["iothread0"]:
            return (
                f"the coroutine went on in {where or 'nowhere'}, not in iothread0: it must "
                f"really move"
            )
        return None

    return judge_fix(
        r6_program(move=answer),
        judge,
        cpus=SCENARIOS["R6"].cpus,
        trace=False,
        opaque=True,  # the contexts' queues are plain attributes
        data_seeds=4,
        max_runs=300,
        because=": no early entry, and the coroutine finished in iothread0: the BH in the old "
        "context runs only after the yield",
    )


# -- 7.3 Which request lock wins, and why ------------------------------------------------------

RECALL_07 = {
    "a": "the CoMutex does not win: a waiting coroutine does not block its thread, but once "
    "one has queued, every unlock hands the mutex to the next waiter, and a hand-off to another "
    "IOThread costs a BH, an aio_notify and a wake-up",
    "b": "",
    "c": "the QemuMutex does win, but not because it is fair or FIFO; both hand over in order",
    "d": "the QemuMutex is never held across a yield; that is the very reason it may block",
}
LOCK_VM = VM(iothreads=4, num_queues=8, iodepth=64)


def _recall_07(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str) or answer.strip().lower() not in RECALL_07:
        return False, f"answer with one letter, 'a' to 'd', not {answer!r}"
    letter = answer.strip().lower()
    if letter != "b":
        return False, RECALL_07[letter]
    co = measure(LOCK_VM.replace(reqs_lock="CoMutex"))
    qm = measure(LOCK_VM.replace(reqs_lock="QemuMutex"))
    return True, (
        f"right: in the model {qm.iops / 1000:,.0f}k against {co.iops / 1000:,.0f}k "
        f"IOPS ({qm.iops / co.iops:.1f}x); once a queue had formed the CoMutex made "
        f"{co.lock_handoffs} hand-offs ({co.cross_thread_wakes} to another IOThread), each "
        f"while the lock was already the next waiter's; its spin helped only before that "
        f"({co.spins} takers spun)"
    )


# -- 7.4 Where the rate stops growing ----------------------------------------------------------

#: The host of exercise 7.4: 8 host CPUs, a drive that serves only 4 requests at once.
SATURATION_VM = VM(
    iothreads=1, num_queues=8, host_cpus=8, iodepth=64, costs=MQCosts(disk_parallelism=4)
)
#: "Stops growing": one more IOThread adds less than this share.
GROWTH = 0.05


def saturation_point(vm: VM = SATURATION_VM, most: int = 8) -> int:
    """The smallest IOThread count after which one more IOThread adds less than 5%."""
    validate.instance("vm", vm, VM, kind="a VM(...)")
    validate.whole("most", most, 2, 16)
    rates = [r.iops for r in sweep(vm, "iothreads", list(range(1, most + 1)))]
    for n in range(1, most):
        if rates[n] < (1 + GROWTH) * rates[n - 1]:
            return n
    return most


def _saturation_07(answer: Any) -> tuple[bool, str]:
    if not validate.is_whole(answer, 1, 8):
        return False, f"answer with a whole number of IOThreads from 1 to 8, not {answer!r}"
    want = saturation_point()
    at = measure(SATURATION_VM.replace(iothreads=want))
    if answer == want:
        return True, (
            f"right: from {want} IOThreads on the rate stays near "
            f"{at.iops / 1000:,.0f}k IOPS; the {at.limit} is the limit (busy "
            f"{at.disk_busy:.0%})"
        )
    return False, (
        f"not {answer}: sweep iothreads from 1 to 8 and find the first count after "
        f"which one more adds less than 5%"
    )


register(
    "7.1",
    _mapping_07,
    "8 vCPUs use the 8 virtqueues evenly; give each of the 4 "
    "IOThreads the same number of virtqueues, each virtqueue exactly once",
)
register(
    "7.2",
    _fix_r6,
    [
        "who can enter the coroutine as soon as it is scheduled in the new context, and is it "
        "still running in the old one then?",
        "the coroutine must have yielded before the new context may enter it",
        "do the scheduling from a one-shot BH in the old context, which runs only after the "
        "coroutine has yielded; then let the coroutine give up its thread",
    ],
)
register(
    "7.3",
    _recall_07,
    "which lock makes its waiter wait for another thread's event loop "
    "while the lock is already handed over?",
)
register(
    "7.4",
    _saturation_07,
    "use sweep(SATURATION_VM, 'iothreads', [1, ..., 8]) and compare each rate with the one before",
)
