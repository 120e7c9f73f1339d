"""Every primitive and model prints its state, ``<QemuMutex BQL [locked by vcpu0, waiters:1]>``,
never ``<... object at 0x...>``: a learner who prints a lock in a notebook should see who holds
it and who waits."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import labsupport
from labsupport import (
    QemuCond,
    QemuEvent,
    QemuMutex,
    QemuRecMutex,
    QemuSemaphore,
    RWLock,
    Shared,
    Simulation,
    run,
    sleep,
)
from labsupport.analysis.lockdep import LockOrder
from labsupport.annotations import GuardedAttr, guarded_by
from labsupport.coroutine import CoMutex, CoQueue, Coroutine, aio_co_schedule
from labsupport.kernel import Op, state_repr
from labsupport.loop import AioContext, EventNotifier
from labsupport.qemu.block import BlockDriverState, Disk, VirtioBlk
from labsupport.qemu.bql import BQL, RetakeAt
from labsupport.qemu.dataplane import Dataplane, HandlerGuard
from labsupport.qemu.graphlock import BdrvGraphLock, DrainableNode
from labsupport.qemu.iothread import IOThread, aio_context_acquire, aio_context_release
from labsupport.qemu.multiqueue import MQCosts, NVMeDisk, ReqsCoMutex, ReqsQemuMutex, Request
from labsupport.qemu.vcpu import CPUState
from labsupport.qemu.workload import Workload
from labsupport.sync import RFifoLock


def _classes():
    """Every class defined in labsupport outside the chapters."""
    for info in pkgutil.walk_packages(labsupport.__path__, "labsupport."):
        if ".chapters" in info.name:
            continue
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__:
                yield cls


def test_every_class_a_learner_can_print_has_a_repr():
    """A new class fails here until it has a ``__repr__`` (``kernel.state_repr`` helps).
    Exempt: exceptions, the operations a thread yields (``Step``, ``Note``, ...: tiny values
    that live for one step), and private helpers (a leading ``_``)."""
    missing = [
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in _classes()
        if not issubclass(cls, (BaseException, Op))
        and not cls.__name__.startswith("_")
        and cls.__repr__ is object.__repr__
    ]
    assert not missing, f"give these a state repr: {missing}"


def test_state_repr_leaves_out_empty_parts():
    class Thing:
        name = "x"

    assert state_repr(Thing(), "a", "", "b") == "<Thing x [a, b]>"
    assert state_repr(Thing(), name="") == "<Thing>"


@pytest.fixture(scope="module")
def held():
    """The reprs of objects at t=10, while vcpu0 holds every lock and someone waits for each;
    coroutine req0 (iothread0) holds a CoMutex that req1 (iothread1) waits for."""
    seen: dict[str, str] = {}

    def prog(sim: Simulation):
        bql = BQL(sim)
        io0 = IOThread(sim, "iothread0", lock_kind="rfifo", loop_holds_lock=False)
        io1 = IOThread(sim, "iothread1", lock_kind="rec", loop_holds_lock=False)
        objs = {
            "BQL": bql,
            "IOThread": io1,
            "ProfiledLock": io0.lock,
            "ProfiledLock-rec": io1.lock,
            "QemuMutex": QemuMutex(sim, "m"),
            "QemuRecMutex": QemuRecMutex(sim, "rec"),
            "RFifoLock": RFifoLock(sim, "fifo"),
            "RWLock": RWLock(sim, "rw"),
            "CoMutex": CoMutex(sim, "reqs_lock"),
            "ReqsQemuMutex": ReqsQemuMutex(sim, "reqs_mutex", MQCosts()),
            "HandlerGuard": HandlerGuard(sim, "virtio_blk_handle_vq"),
        }
        plain = [objs[k] for k in ("QemuMutex", "QemuRecMutex", "RFifoLock")]

        def holder():
            yield bql.lock("vcpu")
            yield aio_context_acquire(io0.ctx, "vcpu")
            yield aio_context_acquire(io0.ctx, "vcpu")  # recursive: depth 2
            yield aio_context_acquire(io1.ctx, "vcpu")
            for m in plain:
                yield m.lock()
            yield objs["RWLock"].wrlock()
            yield objs["ReqsQemuMutex"].lock()
            yield objs["HandlerGuard"].enter()
            yield sleep(10)
            seen.update((k, repr(o)) for k, o in objs.items())
            seen["Coroutine-held"] = repr(cos[0])
            seen["Coroutine-waiting"] = repr(cos[1])
            seen["Thread"] = repr(sim.threads[-1])
            yield objs["HandlerGuard"].leave()
            yield objs["ReqsQemuMutex"].unlock()
            yield objs["RWLock"].unlock()
            for m in reversed(plain):
                yield m.unlock()
            yield aio_context_release(io1.ctx)
            yield aio_context_release(io0.ctx)
            yield aio_context_release(io0.ctx)
            yield bql.unlock()

        def waiter():
            yield sleep(1)
            for lock in (bql, io0.lock, io1.lock, *plain, objs["ReqsQemuMutex"]):
                yield lock.lock()
                yield lock.unlock()
            yield objs["RWLock"].rdlock()
            yield objs["RWLock"].unlock()

        def request():
            yield objs["CoMutex"].lock()
            yield sleep(20)
            yield objs["CoMutex"].unlock()

        cos = [Coroutine(sim, request, name=f"req{i}") for i in range(2)]

        def main():
            yield aio_co_schedule(io0.ctx, cos[0])
            yield sleep(2)
            yield aio_co_schedule(io1.ctx, cos[1])

        sim.spawn("main", main)
        sim.spawn("vcpu0", holder)
        sim.spawn("vcpu1", waiter)
        return objs

    r = run(prog, until=100)
    seen["after"] = {k: repr(o) for k, o in r.sim.model.items()}
    return seen


HELD = {
    # what the repr must say while held: its name, its holder, its waiters
    "BQL": ["<BQL [", "QemuMutex", "locked by vcpu0", "waiters:1"],
    "ProfiledLock": ["iothread0.ctx", "RFifoLock", "locked by vcpu0", "depth:2", "ctx iothread0"],
    "ProfiledLock-rec": ["iothread1.ctx", "QemuRecMutex", "locked by vcpu0", "ctx iothread1"],
    "IOThread": ["IOThread iothread1", "asleep in aio_poll", "QemuRecMutex locked by vcpu0"],
    "QemuMutex": ["QemuMutex m", "locked by vcpu0", "waiters:0"],
    "QemuRecMutex": ["QemuRecMutex rec", "locked by vcpu0"],
    "RFifoLock": ["RFifoLock fifo", "locked by vcpu0"],
    "RWLock": ["RWLock rw", "write-locked by vcpu0"],
    "CoMutex": ["CoMutex reqs_lock", "locked by req0 in iothread0", "waiters:1"],
    "ReqsQemuMutex": ["ReqsQemuMutex reqs_mutex", "locked by vcpu0"],
    "HandlerGuard": ["HandlerGuard virtio_blk_handle_vq", "inside: vcpu0"],
    "Coroutine-held": ["Coroutine req0", "running in iothread0", "ctx iothread0"],
    "Coroutine-waiting": ["Coroutine req1", "yielded", "ctx iothread1"],
    "Thread": ["Thread vcpu1", "blocked on BQL"],
}


@pytest.mark.parametrize("key", sorted(HELD))
def test_a_held_object_names_itself_its_holder_and_its_waiters(held, key):
    text = held[key]
    assert "object at 0x" not in text
    for part in HELD[key]:
        assert part in text, (part, text)


@pytest.mark.parametrize(
    "key", ["BQL", "ProfiledLock", "QemuMutex", "RWLock", "CoMutex", "ReqsQemuMutex"]
)
def test_a_released_lock_says_unlocked(held, key):
    text = held["after"][key]
    assert "unlocked" in text and "vcpu0" not in text and "req0" not in text, text


def test_models_and_values_built_outside_a_run():
    sim = Simulation()
    bql = BQL(sim)
    main = AioContext(sim, "main")
    disk = Disk(sim, 100, 4)
    node = DrainableNode(sim, "drive1", main)
    node.quiesce_counter = 1
    expect = [
        (disk, ["<Disk [", "active:0/4", "queued:0"]),
        (VirtioBlk(sim, Workload(), disk), ["<VirtioBlk [", "avail:0", "submitted:0"]),
        (BlockDriverState(sim, "drive0", main), ["drive0", "in_flight:0", "ctx main"]),
        (node, ["DrainableNode drive1", "drained:1", "queued:0"]),
        (Dataplane().start(), ["<Dataplane [", "running", "format=raw"]),
        (CPUState(sim, 0, bql), ["CPUState cpu0", "no thread yet"]),
        (BdrvGraphLock(sim, main, bql), ["BdrvGraphLock", "has_writer=0"]),
        (main.timer_new(lambda: None, "tick"), ["QEMUTimer tick", "idle", "ctx main"]),
        (main, ["AioContext main", "bh:0"]),
        (CoQueue(sim, "q"), ["CoQueue q", "waiters:0"]),
        (ReqsCoMutex(sim, "reqs_lock", MQCosts()), ["ReqsCoMutex reqs_lock", "unlocked"]),
        (Request(3.0, 0, 1), ["<Request [", "vcpu0", "vq1"]),
        (NVMeDisk(sim, 10, 8), ["<NVMeDisk [", "active:0/8"]),
        (guarded_by(bql)(Shared(sim, "g", 1)), ["GuardedShared g = 1", "guarded_by BQL"]),
        (QemuCond(sim, "c"), ["QemuCond c", "waiters:0"]),
        (QemuEvent(sim, "e"), ["QemuEvent e", "clear"]),
        (QemuSemaphore(sim, "s", 2), ["QemuSemaphore s", "count:2"]),
        (EventNotifier(sim, "n"), ["EventNotifier n", "clear"]),
        (RetakeAt(bql, "main loop"), ["RetakeAt BQL", "main loop"]),
        (sim.trace, ["<TraceBuffer [events:"]),
        (sim.policy, ["<FirstCome>"]),
        (sim.cpus, ["HostCPUs", "busy"]),
        (LockOrder(), ["<LockOrder [", "runs:0", "cycles:0"]),
    ]
    for obj, parts in expect:
        text = repr(obj)
        assert "object at 0x" not in text
        for part in parts:
            assert part in text, (part, text)

    class Node:
        children = GuardedAttr("graph_lock")

    assert repr(Node.__dict__["children"]) == "<GuardedAttr children [guarded_by graph_lock]>"
