"""vCPU threads (2009 on): ``CPUState``, ``qemu_cpu_kick`` and ``run_on_cpu``.

Each KVM or MTTCG vCPU has a thread that runs guest code without the BQL and takes it on an
MMIO exit; ``run_on_cpu`` queues work for a vCPU and waits for it with the BQL as the
condition's mutex, as QEMU's ``cpus-common.c`` does.

Layer 4 (QEMU models).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from .. import validate
from ..kernel import MisuseError, Simulation, compute
from ..sync import QemuCond
from .bql import BQL

# --------------------------------------------------------------------------------------------
# vCPUs as objects: kicking one, and running a function in its thread.


class CPUState:
    """One guest CPU and the thread that runs it (QEMU: ``CPUState``).

    Other threads reach a vCPU in two ways: ``qemu_cpu_kick`` makes it leave guest mode (or
    wakes it from ``halt_cond``) at its next chance, and ``run_on_cpu`` queues a function for
    its thread and waits, with the BQL as the condition's mutex, until the function has run.
    The vCPU thread calls ``process_queued_cpu_work`` between guest runs.
    """

    def __init__(self, sim: Simulation, index: int, bql: BQL):
        validate.instance("sim", sim, Simulation, kind="a Simulation")
        validate.whole("index", index, 0)
        validate.instance("bql", bql, BQL, kind="a BQL")
        self.sim = sim
        self.index = index
        self.bql = bql
        self.thread: Any = None
        self.exit_request = False
        self.halted = False
        self.work: deque[list[Any]] = deque()
        self.halt_cond = QemuCond(sim, f"cpu{index}.halt_cond")
        self.work_cond = QemuCond(sim, f"cpu{index}.work_cond")

    def __repr__(self) -> str:
        who = self.thread.name if self.thread else "no thread yet"
        return f"<CPUState cpu{self.index} [{who}, queued work:{len(self.work)}]>"


def qemu_cpu_kick(cpu: CPUState):
    """``yield qemu_cpu_kick(cpu)``: ask the vCPU to leave guest mode and look at its work."""
    validate.instance("cpu", cpu, CPUState, kind="a CPUState")
    cpu.exit_request = True
    yield cpu.halt_cond.broadcast()


def run_on_cpu(cpu: CPUState, fn: Any):
    """``yield run_on_cpu(cpu, fn)``: run ``fn()`` in ``cpu``'s thread and wait for it.

    The caller must hold the BQL (the wait uses it as the condition's mutex). Called from the
    vCPU's own thread, ``fn`` simply runs.
    """
    validate.instance("cpu", cpu, CPUState, kind="a CPUState")
    validate.function("fn", fn)
    sim = cpu.sim
    me = sim.current
    if me is cpu.thread:
        return (yield from _call_fn(fn))
    if not cpu.bql.mutex.held_by(me):
        raise MisuseError(
            f"{me.name} called run_on_cpu(cpu{cpu.index}) without the BQL: the wait for the "
            f"vCPU uses the BQL as its mutex, so take it first"
        )
    item = [fn, False, None]
    cpu.work.append(item)
    yield from qemu_cpu_kick(cpu)
    while not item[1]:
        yield cpu.work_cond.wait(cpu.bql.mutex)
    return item[2]


def process_queued_cpu_work(cpu: CPUState):
    """Run the functions queued for this vCPU (its thread holds the BQL), then wake the askers."""
    validate.instance("cpu", cpu, CPUState, kind="a CPUState")
    ran = False
    while cpu.work:
        item = cpu.work.popleft()
        item[2] = yield from _call_fn(item[0])
        item[1] = True
        ran = True
    cpu.exit_request = False
    if ran:
        yield cpu.work_cond.broadcast()


def _call_fn(fn: Any):
    result = fn()
    if hasattr(result, "send"):
        return (yield from result)
    return result


def vcpu_thread_fn(cpu: CPUState, guest_us: float, until: float):
    """A KVM vCPU thread that also serves kicks and queued work: guest mode without the BQL,
    then, holding it, the queued work; a halted vCPU sleeps on ``halt_cond``."""
    validate.instance("cpu", cpu, CPUState, kind="a CPUState")
    validate.duration("guest_us", guest_us, positive=True)
    validate.duration("until", until)
    sim = cpu.sim
    cpu.thread = sim.current
    yield cpu.bql.lock("vcpu: work")
    while sim.now < until:
        yield from process_queued_cpu_work(cpu)
        if cpu.halted and not cpu.work:
            yield cpu.halt_cond.wait(cpu.bql.mutex)
            continue
        yield cpu.bql.unlock()
        yield compute(guest_us)  # guest mode; a kick takes effect when it comes out
        yield cpu.bql.lock("vcpu: work")
    yield cpu.bql.unlock()
