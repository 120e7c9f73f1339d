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
from typing import Any

from labsupport import validate
from labsupport.analysis.metrics import intervals
from labsupport.exercises import judge_fix, register
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
    wrong = [n for n in ("vcpu0", "vcpu1") if abs(answer[n] - truth[n]) > 1e-9]
    if not wrong:
        return True, (
            f"vcpu0 waited {truth['vcpu0']:g} us and vcpu1 {truth['vcpu1']:g} us: "
            f"one BQL, so two exits at the same instant are emulated one after the "
            f"other"
        )
    return False, f"{' and '.join(wrong)}: not what this schedule produces"


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


def _fixed_02(answer: Any) -> tuple[bool, str]:
    if not callable(answer):
        return False, "answer with a handler: a generator function of (bql, dev, cpu)"
    p = FIX_02
    program = irq_device_program(answer, vcpus=p["vcpus"], exits=p["exits"])
    total = p["vcpus"] * p["exits"]

    def judge(r):
        dev = r.sim.model
        if dev.isr.value != dev.all_raised or dev.writes.value != total:
            return (
                f"isr = {dev.isr.value:#06b} and writes = {dev.writes.value}; expected "
                f"{dev.all_raised:#06b} and {total}"
            )
        taken = sum(s.acquisitions for s in dev.bql.sites.values())
        if taken < total:
            return (
                f"the BQL was taken {taken} times for {total} writes: every write must run under it"
            )
        return None

    return judge_fix(program, judge, cpus=p["cpus"], because=", every write under the BQL")


# -- 2.4 Measure and explain -------------------------------------------------------------------

#: Exercise 2.4's machine: 4 vCPUs on 4 host CPUs, 5 us of emulation per exit.
KNEE_02 = Workload(vcpus=4, host_cpus=4, mmio_emulation_us=5, duration_us=20_000)
KNEE_LEVEL = 3.0


def guest_work(guest_us: float) -> float:
    """Exercise 2.4's measurement: vCPUs' worth of guest code at this ``guest_us``."""
    return run_era(KNEE_02.replace(guest_us=guest_us), "kvm", trace=False).guest_cpus_busy


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

RECALL_02 = {
    "a": "speed has nothing to do with it: the rule is about the order in which locks are taken",
    "b": "",
    "c": "the BQL is not recursive: a thread that takes it while holding it is a bug",
    "d": "vCPU threads and device code take other locks too; the rule holds in every thread",
}


def _recall_02(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str) or answer.strip().lower() not in RECALL_02:
        return False, f"answer with one letter, 'a' to 'd', not {answer!r}"
    letter = answer.strip().lower()
    if letter == "b":
        return True, (
            "one global order (the BQL outermost) means no thread ever holds another "
            "lock while it waits for the BQL, so no AB-BA cycle through the BQL can "
            "form"
        )
    return False, RECALL_02[letter]


register(
    "2.1",
    _predict_02,
    "go through the table in order: both vCPUs leave guest mode at "
    "t=10; the one that gets the BQL holds it for its whole emulation, and the other "
    "waits until the unlock; add up the compute times to find the later clock readings",
)
register(
    "2.2",
    _lose_interrupt_02,
    "run it once with a short schedule and print "
    "trace_table(...): you want vcpu1's 'load isr' between vcpu0's 'load isr' and its "
    "'store isr'. One character per choice point; '0' moves vcpu0, '1' moves vcpu1",
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
    "sweep guest_us with guest_work(g) from labsupport.chapters.ch02.checks (or "
    "run_era on KNEE_02.replace(guest_us=g)) and find where the result crosses 3.0",
)
register(
    "2.5",
    _recall_02,
    "think of a thread that holds some device lock and then asks for "
    "the BQL, while the main loop holds the BQL and asks for that device lock",
)
