"""Chapter 2's exercises: vCPU threads, MMIO exits and the BQL, judged by running the answers.

The device of these exercises is a toy interrupt controller. Each vCPU that writes to its
"raise" register sets its own bit in the interrupt status register (``isr``) and counts the
write (``writes``). Until 2020 QEMU let a memory region opt out of the BQL (``global_locking``),
so its handler ran in the vCPU thread without the lock; a handler written that way must take
the BQL itself before it touches state that other threads share.

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from labsupport import tracebuf as tb
from labsupport import validate
from labsupport.analysis.metrics import intervals
from labsupport.exercises import judge_fix, left_at_stub, register
from labsupport.kernel import ScheduleDivergence, Simulation, compute, run
from labsupport.qemu.bql import BQL
from labsupport.qemu.eras import run_era
from labsupport.qemu.workload import Workload
from labsupport.shared import Shared

#: Guest time before each exit, and the cost of decoding one access, in the device exercises.
GUEST_US = 10
DECODE_US = 2


@dataclass
class IrqDevice:
    """The toy interrupt controller: its two registers and the BQL of the machine."""

    isr: Shared
    writes: Shared
    bql: BQL
    vcpus: int
    exits: int

    @property
    def all_raised(self) -> int:
        """The ``isr`` value once every vCPU has raised its bit."""
        return (1 << self.vcpus) - 1


# A chapter prints this function's source: the formatter leaves it as written.
# fmt: off
def unlocked_mmio_write(bql: BQL, dev: IrqDevice, cpu: int):
    """The handler as first written: it updates the device's registers without the BQL."""
    yield compute(DECODE_US)                 # decode the access
    isr = yield dev.isr.load()
    yield dev.isr.store(isr | (1 << cpu))    # raise this vCPU's interrupt line
    yield dev.writes.increment()             # count the write: load, add 1, store
# fmt: on


def irq_device_program(handler: Any, vcpus: int = 2, exits: int = 1, guest_us: float = GUEST_US):
    """``vcpus`` vCPU threads; each runs guest code for ``guest_us``, then exits to write the
    device's "raise" register, ``exits`` times. ``handler(bql, dev, cpu)`` is the device model's
    write handler, called in the vCPU's thread without the BQL (the region opted out)."""

    def program(sim: Simulation) -> IrqDevice:
        bql = BQL(sim)
        dev = IrqDevice(Shared(sim, "isr", 0), Shared(sim, "writes", 0), bql, vcpus, exits)

        def vcpu(cpu: int):
            for _ in range(exits):
                yield compute(guest_us)  # guest mode
                yield from handler(bql, dev, cpu)  # MMIO exit, dispatched without the BQL

        for i in range(vcpus):
            sim.spawn(f"vcpu{i}", vcpu, i)
        return dev

    return program


def exits_at_once_program(emulation_us: float = 4):
    """Two KVM vCPUs that leave guest mode at the same instant and both need the BQL.

    vcpu0 runs guest code for 10 us, exits, runs 3 us, exits; vcpu1 runs 10 us, exits, runs
    8 us, exits. Each exit takes the BQL and emulates a write to a doorbell register.
    """

    def program(sim: Simulation) -> BQL:
        bql = BQL(sim)
        doorbells = Shared(sim, "doorbells", 0)

        def vcpu(guest_runs: tuple[float, ...]):
            for us in guest_runs:
                yield compute(us)  # guest mode, no BQL
                yield bql.lock("kvm: mmio exit")
                n = yield doorbells.load()
                yield compute(emulation_us)  # the device model runs
                yield doorbells.store(n + 1)
                yield bql.unlock()

        sim.spawn("vcpu0", vcpu, (10, 3))
        sim.spawn("vcpu1", vcpu, (10, 8))
        return bql

    return program


def bql_waits(result: Any) -> dict[str, float]:
    """Total time each thread of a run spent waiting for the BQL (us)."""
    waits = {t.name: 0.0 for t in result.sim.threads}
    for iv in intervals(result):
        if iv.what == "blocked" and iv.obj == "BQL":
            waits[iv.thread] += iv.length
    return waits


# -- 2.1 Predict the trace ----------------------------------------------------------------------

#: The run that exercise 2.1 shows: two host CPUs, the random policy with this seed.
PREDICT_02 = dict(cpus=2, policy="random", seed=4)
#: How far a predicted wait may be from the run's, in microseconds: the clock of this run moves
#: in whole microseconds, so a prediction is exact or wrong.
PREDICT_TOLERANCE_US = 1e-6


def predict_run() -> Any:
    """The run of exercise 2.1."""
    return run(exits_at_once_program(), **PREDICT_02)


def _predict_02(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, dict) or set(answer) != {"vcpu0", "vcpu1"}:
        return False, (
            "answer with a dict of microseconds waited, such as {'vcpu0': 1, 'vcpu1': 2}"
        )
    for name, v in answer.items():
        if not validate.is_number(v):
            return False, f"{name}'s wait must be a number of microseconds, not {v!r}"
    truth = bql_waits(predict_run())
    wrong = [n for n in ("vcpu0", "vcpu1") if abs(answer[n] - truth[n]) > PREDICT_TOLERANCE_US]
    if not wrong:
        return True, (
            f"vcpu0 waited {truth['vcpu0']:g} us and vcpu1 {truth['vcpu1']:g} us: "
            f"one BQL, so two exits at the same instant are emulated one after the "
            f"other"
        )
    return False, (
        f"{' and '.join(wrong)}: not what this schedule produces (a wait must be exact, to "
        f"within {PREDICT_TOLERANCE_US:g} us)"
    )


# -- 2.2 Find the schedule that breaks it ------------------------------------------------------


def _lose_interrupt_02(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str):
        return False, f"answer with a schedule string such as '0101', not {answer!r}"
    try:
        r = run(irq_device_program(unlocked_mmio_write), cpus=2, schedule=answer)
    except (ScheduleDivergence, ValueError) as e:
        return False, f"that schedule cannot be followed: {e}"
    isr = r.sim.model.isr.value
    if isr == 0b10:
        return True, (
            f"schedule {answer!r} loses vcpu0's interrupt: vcpu1 loaded isr before "
            f"vcpu0 stored its bit, then stored its own over it"
        )
    return False, f"with schedule {answer!r} isr ends at {isr:#04b}, not 0b10"


# -- 2.3 Fix the bug ---------------------------------------------------------------------------

FIX_02 = dict(vcpus=4, exits=3, cpus=4)
#: The machines a 2.3 answer is judged on, each on every schedule: FIX_02, then a smaller one, so
#: that a handler written for one machine's numbers does not pass.
FIX_02_MACHINES = (FIX_02, dict(vcpus=3, exits=2, cpus=3))


def _fixed_02(answer: Any) -> tuple[bool, str]:
    if not callable(answer):
        return False, "answer with a handler: a generator function of (bql, dev, cpu)"
    verdicts = []
    for p in FIX_02_MACHINES:
        program = irq_device_program(answer, vcpus=p["vcpus"], exits=p["exits"])
        ok, message = judge_fix(
            program,
            _judge_irq(p["vcpus"] * p["exits"]),
            cpus=p["cpus"],
            trace=True,
            because=", every write under the BQL",
        )
        if not ok:
            where = f"with {p['vcpus']} vCPUs writing {p['exits']} times each: "
            return False, where + message
        verdicts.append(message)
    return True, verdicts[0]


def _judge_irq(total: int):
    """What one run of a 2.3 answer must show: every bit raised, every write counted, each
    store into isr adding the writer's own bit to what isr held, all of it under the BQL."""

    def judge(r: Any) -> str | None:
        dev = r.sim.model
        if not isinstance(dev, IrqDevice):
            return "the handler must not change the device program"
        if dev.isr.value != dev.all_raised or dev.writes.value != total:
            return (
                f"isr = {dev.isr.value:#06b} and writes = {dev.writes.value}; expected "
                f"{dev.all_raised:#06b} and {total}"
            )
        names = [t.name for t in r.sim.threads]
        before = dev.isr.initial
        for t, k, tid, oid, a in zip(*r.sim.trace.columns()):
            if k == tb.WRITE and oid == dev.isr.oid:
                value = r.sim.trace.decode(a)
                if not (names[tid].startswith("vcpu") and names[tid][4:].isdigit()):
                    return f"{names[tid]} stored isr: only the vCPUs' handler writes the device"
                cpu = int(names[tid][4:])
                if value != before | (1 << cpu):
                    return (
                        f"at t={t:g} us {names[tid]} stored isr = {value:#06b} over "
                        f"{before:#06b}: a write must raise only the writer's own bit"
                    )
                before = value
        taken = sum(s.acquisitions for s in dev.bql.sites.values())
        if taken < total:
            return (
                f"the BQL was taken {taken} times for {total} writes: every write must run under it"
            )
        return None

    return judge


# -- 2.4 Measure and explain -------------------------------------------------------------------

#: Exercise 2.4's machine: 4 vCPUs on 4 host CPUs, 5 us of emulation per exit.
KNEE_02 = Workload(vcpus=4, host_cpus=4, mmio_emulation_us=5, duration_us=20_000)
KNEE_LEVEL = 3.0


def guest_work(guest_us: float) -> float:
    """Exercise 2.4's measurement: vCPUs' worth of guest code at this ``guest_us``."""
    return _kvm_busy(KNEE_02.replace(guest_us=guest_us))


@cache
def _kvm_busy(w: Workload) -> float:
    """``guest_cpus_busy`` of the KVM era on ``w``: a run is deterministic, so each workload is
    run once however often the checker asks."""
    return run_era(w, "kvm", trace=False).guest_cpus_busy


def _knee_02(answer: Any) -> tuple[bool, str]:
    if not validate.is_whole(answer, 2, 500):
        return False, f"answer with a whole number of microseconds from 2 to 500, not {answer!r}"
    here, below = guest_work(answer), guest_work(answer - 1)
    if here >= KNEE_LEVEL > below:
        return True, (
            f"guest_us={answer} gives {here:.2f} vCPUs' worth, guest_us={answer - 1} "
            f"only {below:.2f}"
        )
    if here < KNEE_LEVEL:
        return False, (
            f"at guest_us={answer} the 4 vCPUs do {here:.2f} vCPUs' worth, below "
            f"{KNEE_LEVEL:g}: look at longer guest runs"
        )
    return False, (
        f"guest_us={answer - 1} still gives {below:.2f} vCPUs' worth: look at shorter guest runs"
    )


# -- 2.5 Recall --------------------------------------------------------------------------------

#: Why each wrong letter of 2.5 is wrong: it refutes that statement only.
RECALL_02 = {
    "a": "the BQL is not faster to take than any other lock",
    "b": "",
    "c": "the BQL is not recursive: a thread that takes it while holding it is a bug",
    "d": "vCPU threads and device code take other locks too",
}
#: The two locks of 2.5's program, as the lock-order report names them.
BQL_CLASS, DEVICE_LOCK = "BQL", "dev.lock"


def nestings(r: Any) -> dict[str, set[tuple[str, str]]]:
    """For each thread of a run, the pairs (lock held, lock taken): every lock it took, or
    waited for, while it held another."""
    sim = r.sim
    names = [t.name for t in sim.threads]
    held: dict[int, list[str]] = {}
    pairs: dict[str, set[tuple[str, str]]] = {name: set() for name in names}
    for _t, k, tid, oid, _a in zip(*sim.trace.columns()):
        if k not in (tb.ACQUIRE, tb.RELEASE, tb.BLOCK) or oid < 0:
            continue
        name = getattr(sim.objects[oid], "name", "")
        if getattr(sim.objects[oid], "kind", "") != "mutex":
            continue
        mine = held.setdefault(tid, [])
        if k == tb.RELEASE:
            if name in mine:
                mine.remove(name)
            continue
        pairs[names[tid]].update((h, name) for h in mine if h != name)
        if k == tb.ACQUIRE:
            mine.append(name)
    return pairs


def taken(r: Any) -> dict[str, set[str]]:
    """For each thread of a run, the names of the mutexes it acquired."""
    sim = r.sim
    names = [t.name for t in sim.threads]
    out: dict[str, set[str]] = {name: set() for name in names}
    for _t, k, tid, oid, _a in zip(*sim.trace.columns()):
        if k == tb.ACQUIRE and oid >= 0 and getattr(sim.objects[oid], "kind", "") == "mutex":
            out[names[tid]].add(sim.objects[oid].name)
    return out


def _follows_the_rule(r: Any) -> str | None:
    """One run of 2.5's program: both threads take both locks, the vCPU holds them together,
    and nobody takes the BQL while holding the device lock."""
    locks = taken(r)
    for thread in ("vcpu0", "main-loop"):
        if thread not in locks:
            return f"keep the two threads vcpu0 and main-loop; this program has {sorted(locks)}"
        missing = {BQL_CLASS, DEVICE_LOCK} - locks[thread]
        if missing:
            return f"{thread} never took {', '.join(sorted(missing))}: it needs both locks"
    pairs = nestings(r)
    for thread, nested in pairs.items():
        if (DEVICE_LOCK, BQL_CLASS) in nested:
            return f"{thread} took the BQL while holding {DEVICE_LOCK}: that is the order to avoid"
    if (BQL_CLASS, DEVICE_LOCK) not in pairs["vcpu0"]:
        return (
            f"vcpu0 took the two locks one after the other, never both at once; its device "
            f"work needs {DEVICE_LOCK} and the BQL held together"
        )
    if (BQL_CLASS, DEVICE_LOCK) not in pairs["main-loop"]:
        return f"keep the main loop as it was: it takes {DEVICE_LOCK} while it holds the BQL"
    return None


def _recall_02(answer: Any) -> tuple[bool, str]:
    shape = "answer with a dict: {'why': one letter from 'a' to 'd', 'program': bql_first}"
    if not isinstance(answer, dict) or set(answer) != {"why", "program"}:
        return False, shape
    left = left_at_stub(answer)
    if left:
        return False, left
    why, program = answer["why"], answer["program"]
    if not isinstance(why, str) or why.strip().lower() not in RECALL_02:
        return False, f"'why' is one letter from 'a' to 'd', not {why!r}"
    if not callable(program):
        return False, "'program' is a program: a function of sim, as device_lock_first is"
    ok, message = judge_fix(program, _follows_the_rule, cpus=2, trace=True)
    if not ok:
        return False, f"the program is not right yet: {message}"
    letter = why.strip().lower()
    if letter != "b":
        return False, f"the program is right, but ({letter}) is not the reason: {RECALL_02[letter]}"
    return True, (
        f"{message}. One global order (the BQL outermost) means no thread ever holds another "
        f"lock while it waits for the BQL, so no AB-BA cycle through the BQL can form"
    )


register(
    "2.1",
    _predict_02,
    [
        "both vCPUs leave guest mode at the same instant: can both hold the BQL at once?",
        "the vCPU that gets the BQL holds it for its whole emulation; the other waits until the "
        "unlock",
        "go through the table in order, adding up the compute times to find the clock at each "
        "lock and unlock, and sum each vCPU's time between asking for the BQL and getting it",
    ],
)
register(
    "2.2",
    _lose_interrupt_02,
    [
        "which step of vcpu1 must come between vcpu0's load of isr and its store?",
        "run a short schedule and print its trace table to see which step each character moved; "
        "one character per choice point, 0 moves vcpu0 and 1 moves vcpu1",
        "let vcpu0 go up to its load of isr, then let vcpu1 load isr before vcpu0 stores; after "
        "that, either order loses vcpu0's bit",
    ],
)
register(
    "2.3",
    _fixed_02,
    [
        "which two vCPUs' steps interleave in the lost interrupt, and what lock do device models "
        "run under?",
        "the whole read-modify-write of the register must run under one lock that every vCPU takes",
        "the handler takes the BQL before its first access to the device and releases it after "
        "its last",
    ],
)
register(
    "2.4",
    _knee_02,
    [
        "does the guest work grow or shrink as the guest runs longer between exits?",
        "measure the guest work for one guest time after another, a microsecond apart, with the "
        "function the exercise gives",
        "answer with the first guest time at which the measurement reaches 3 vCPUs' worth; one "
        "microsecond less must fall short of it",
    ],
)
register(
    "2.5",
    _recall_02,
    [
        "a thread holds a device lock and waits for the BQL: what could the BQL's holder be "
        "waiting for?",
        "a deadlock needs a cycle of waits, and a cycle needs two threads that take the same two "
        "locks in opposite orders",
        "choose the statement about cycles; in the program, let the vCPU take the BQL before the "
        "device lock, hold both for its device work, and release them in the opposite order",
    ],
)
