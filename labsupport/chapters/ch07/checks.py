"""Chapter 7's exercises: the multi-queue block layer of QEMU 9.0, judged by running the answers.

The learner maps 8 virtqueues onto 4 IOThreads (the checker measures the mapping against the
best one), moves a coroutine to another IOThread without letting that thread enter it too
early (R6, on every schedule for the model data of many seeds; the answer
``move(new_ctx, old_ctx)`` is handed the context it moves from, which QEMU's
``aio_co_reschedule_self(new_ctx)`` finds itself), says which request lock wins and why (the
checker measures both, and the share of the hand-offs that the reason is about), and finds the
number of IOThreads after which the I/O rate stops growing on a host with a slower disk. Every
checker runs the answer in ``labsupport.qemu.multiqueue`` or the chapter's ``scenarios``.

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

from typing import Any

from labsupport import validate
from labsupport.exercises import is_stub, judge_fix, register
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
    if not isinstance(answer, (list, tuple)):
        return False, (
            f'answer with a list of entries such as {{"iothread": "iothread0", "vqs": [0, 1]}}, '
            f"one for each IOThread; not {answer!r}"
            + (" (None is no mapping at all: the VM's default)" if answer is None else "")
        )
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

#: The seeds of model data 7.2's answer is explored with: the IOThread's guest request takes a
#: seeded 0-4 us, and a move that leaves the window open only briefly fails on a few of these
#: seeds alone; each seed's schedules are explored to the end.
MOVE_DATA_SEEDS = 16


def _fix_r6(answer: Any) -> tuple[bool, str]:
    if is_stub(answer):  # the exercise's stub: check() says "not answered yet"
        raise NotImplementedError("move(new_ctx, old_ctx)")
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
        data_seeds=MOVE_DATA_SEEDS,
        max_runs=400,
        because=": no early entry, and the coroutine finished in iothread0: the BH in the old "
        "context runs only after the yield",
    )


# -- 7.3 Which request lock wins, and why ------------------------------------------------------

RECALL_07 = {
    "a": "measure both locks on LOCK_VM: the CoMutex's rate is not the higher one",
    "b": "",
    "c": "neither lock hands over out of order: both wake their waiters first come, first "
    "served, so fairness cannot tell them apart",
    "d": "a QemuMutex must not be held across a yield: a coroutine that yielded holding it "
    "would block every other coroutine of its thread",
}
LOCK_VM = VM(iothreads=4, num_queues=8, iodepth=64)
#: 7.3's answer: the letter, and the share of the CoMutex's hand-offs (on ``LOCK_VM``, seed 0)
#: that went to a coroutine of another IOThread, a fraction from 0 to 1.
RECALL_KEYS_07 = ("letter", "cross-thread share")
#: How far the share may be from the one measured (the learner rounds it).
SHARE_TOLERANCE = 0.02


def cross_thread_share(vm: VM = LOCK_VM) -> float:
    """The share of the CoMutex's hand-offs on ``vm`` that went to another IOThread."""
    validate.instance("vm", vm, VM, kind="a VM(...)")
    co = measure(vm.replace(reqs_lock="CoMutex"))
    return co.cross_thread_wakes / co.lock_handoffs if co.lock_handoffs else 0.0


def _recall_07(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, dict) or set(answer) != set(RECALL_KEYS_07):
        return False, f"answer with a dict with exactly these keys: {list(RECALL_KEYS_07)}"
    letter, share = answer["letter"], answer["cross-thread share"]
    if not isinstance(letter, str) or letter.strip().lower() not in RECALL_07:
        return False, f"'letter' is one letter, 'a' to 'd', not {letter!r}"
    if not validate.is_number(share):
        return False, f"'cross-thread share' is a number from 0 to 1, not {share!r}"
    letter = letter.strip().lower()
    problems = [f"{letter}: {RECALL_07[letter]}"] if letter != "b" else []
    want = cross_thread_share()
    if not 0 <= share <= 1:
        problems.append(
            f"cross-thread share {share:g}: a share is a fraction from 0 to 1, not a count"
        )
    elif abs(share - want) > SHARE_TOLERANCE:
        same = abs(share - (1 - want)) <= SHARE_TOLERANCE
        problems.append(
            f"cross-thread share {share:g}: "
            + (
                "that is the share of hand-offs that stayed in the unlocker's own IOThread"
                if same
                else f"not within {SHARE_TOLERANCE} of the share measured on LOCK_VM (seed 0)"
            )
        )
    if problems:
        return False, "; ".join(problems)
    co = measure(LOCK_VM.replace(reqs_lock="CoMutex"))
    qm = measure(LOCK_VM.replace(reqs_lock="QemuMutex"))
    return True, (
        f"right: in the model {qm.iops / 1000:,.0f}k against {co.iops / 1000:,.0f}k "
        f"IOPS ({qm.iops / co.iops:.1f}x); once a queue had formed the CoMutex made "
        f"{co.lock_handoffs} hand-offs, {co.cross_thread_wakes} of them ({want:.0%}) to another "
        f"IOThread, each while the lock was already the next waiter's; its spin helped only "
        f"before that ({co.spins} takers spun)"
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
        return False, (
            f"answer with a whole number of IOThreads from 1 to 8 (exactly: a count has no "
            f"tolerance), not {answer!r}"
        )
    want = saturation_point()
    at = measure(SATURATION_VM.replace(iothreads=want))
    if answer == want:
        return True, (
            f"right: from {want} IOThreads on the rate stays near "
            f"{at.iops / 1000:,.0f}k IOPS; the {at.limit} is the limit (busy "
            f"{at.disk_busy:.0%})"
        )
    rates = [r.iops for r in sweep(SATURATION_VM, "iothreads", list(range(1, 9)))]
    if answer < want:
        return False, (
            f"not {answer}: at {answer} IOThread(s) the rate is still growing, one more "
            f"adds {rates[answer] / rates[answer - 1] - 1:.0%} (the threshold is "
            f"{GROWTH:.0%})"
        )
    return False, (
        f"not {answer}: the rate had stopped growing at a smaller count already; the answer "
        f"is the first count after which one more IOThread adds less than {GROWTH:.0%}"
    )


register(
    "7.1",
    _mapping_07,
    [
        "how evenly do the 8 vCPUs use the 8 virtqueues, and what happens to an IOThread that "
        "serves more of them than the others?",
        "every virtqueue must appear exactly once, and every one of the 4 IOThreads should "
        "appear too",
        "give each of the 4 IOThreads the same number of virtqueues, each virtqueue to exactly "
        "one of them",
    ],
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
    [
        "which lock makes its waiter wait for another thread's event loop while the lock is "
        "already handed over?",
        "a hand-off to a coroutine of the same IOThread costs little; one to another IOThread "
        "needs a BH, a notification and a wake-up",
        "measure the CoMutex on LOCK_VM and divide its hand-offs to another IOThread by all "
        "of its hand-offs",
    ],
)
register(
    "7.4",
    _saturation_07,
    [
        "what limits the rate once there are enough IOThreads: the IOThreads, or the drive?",
        "sweep the number of IOThreads from 1 to 8 on SATURATION_VM and look at the rate of "
        "each count next to the one before",
        "walk the counts in order and stop at the first one after which one more IOThread "
        "adds less than 5%",
    ],
)
