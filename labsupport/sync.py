"""QEMU's thread-synchronisation primitives, rebuilt on the simulation kernel.

QEMU wraps the host's pthreads in a thin layer (``include/qemu/thread.h``): ``QemuMutex``,
``QemuRecMutex``, ``QemuCond``, ``QemuSemaphore`` and ``QemuEvent``. The Big QEMU Lock is a
``QemuMutex``; the 2017 AioContext lock is a ``QemuRecMutex``. Here each primitive is a few lines
over one shared waiting-queue mechanism, and every misuse that would be undefined behaviour or a
silent hang in C (unlocking a mutex you do not hold, locking a non-recursive mutex twice,
waiting on a condition without its mutex) raises a ``MisuseError`` that says who did what.

A thread uses them by yielding: ``yield m.lock()``, ``yield m.unlock()``. Locks hand over to
waiters in the order they arrived (a simplification: a real pthread mutex need not be fair).
Layer 2 (primitives): imports only the kernel.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from . import tracebuf as tb
from . import validate
from .kernel import (
    MisuseError,
    Op,
    Simulation,
    Step,
    Thread,
    Waitable,
    check_waitable,
    state_repr,
)


def _state(owner: Thread | None, depth: int, waiters: int) -> str:
    if owner is None:
        return f"unlocked, waiters:{waiters}" if waiters else "unlocked"
    d = f", depth:{depth}" if depth > 1 else ""
    return f"locked by {owner.name}{d}, waiters:{waiters}"


class _OwnedLock(Waitable):
    """The shared machinery of an exclusive lock with an owner, a depth and a FIFO of waiters."""

    recursive = False

    def __init__(self, sim: Simulation, name: str, lock_class: str | None = None):
        check_waitable(sim, name)
        if lock_class is not None:
            validate.label("lock_class", lock_class)
        super().__init__(sim, name)
        #: what the lock-order validator groups locks by (every AioContext's lock is one class)
        self.lock_class = lock_class or name
        self.owner: Thread | None = None
        self.depth = 0
        self._lock_op = Step(self._do_lock)
        self._unlock_op = Step(self._do_unlock)
        self._trylock_op = Step(self._do_trylock)

    # What a thread yields.
    def lock(self) -> Op:
        """``yield m.lock()``: take the lock, waiting if another thread holds it."""
        return self._lock_op

    def unlock(self) -> Op:
        """``yield m.unlock()``: release the lock; the longest waiter gets it next."""
        return self._unlock_op

    def trylock(self) -> Op:
        """``ok = yield m.trylock()``: take the lock if it is free; never waits."""
        return self._trylock_op

    # Queries that are not steps (for assertions and reports).
    def locked(self) -> bool:
        return self.owner is not None

    def held_by(self, thread: Thread | None) -> bool:
        return thread is not None and self.owner is thread

    def holders(self) -> list[Thread]:
        return [self.owner] if self.owner is not None else []

    # The mechanism.
    def _grant(self, thread: Thread) -> None:
        self.owner = thread
        self.depth = 1
        thread.held.append(self)
        self.sim.record(tb.ACQUIRE, thread.tid, self.oid, 1)

    def _do_lock(self, t: Thread) -> bool:
        if self.owner is None:
            self._grant(t)
            return True
        if self.owner is t:
            if self.recursive:
                self.depth += 1
                self.sim.record(tb.ACQUIRE, t.tid, self.oid, self.depth)
                return True
            raise MisuseError(
                f"{t.name} locked {self.kind} {self.name}, which it already holds: a "
                f"{type(self).__name__} is not recursive (in C this thread would wait for "
                f"itself forever); use a QemuRecMutex or unlock first"
            )
        self.waiters.append(t)
        self._contended(t)
        return self.sim.block(t, self)

    def _contended(self, t: Thread) -> None:
        """Called when ``t`` has to wait; RFifoLock uses it to kick the owner."""

    def _do_trylock(self, t: Thread) -> bool:
        if self.owner is None or (self.recursive and self.owner is t):
            self._do_lock(t)
            t._value = True
        else:
            t._value = False
        return True

    def _do_unlock(self, t: Thread) -> bool:
        if self.owner is not t:
            holder = f"which {self.owner.name} holds" if self.owner else "which nobody holds"
            raise MisuseError(
                f"{t.name} unlocked {self.kind} {self.name}, {holder}: only the owner may unlock"
            )
        self.depth -= 1
        self.sim.record(tb.RELEASE, t.tid, self.oid, self.depth)
        if self.depth == 0:
            t.held.remove(self)
            self.owner = None
            self._hand_over()
        return True

    def _hand_over(self) -> None:
        if self.waiters:
            w = self.waiters.popleft()
            self.sim.make_ready(w)  # its ACQUIRE is the wake-up
            self._grant(w)

    def state_text(self) -> str:
        """``locked by vcpu0, depth:2, waiters:1`` or ``unlocked``: the bracket of the repr."""
        return _state(self.owner, self.depth, len(self.waiters))

    def __repr__(self) -> str:
        return state_repr(self, self.state_text())


class QemuMutex(_OwnedLock):
    """A non-recursive mutex that knows its owner (QEMU: ``qemu_mutex_lock``/``unlock``)."""

    kind = "mutex"


class QemuRecMutex(_OwnedLock):
    """A recursive mutex: the owner may lock it again; it is free when the depth returns to 0.

    QEMU: ``qemu_rec_mutex_lock``. The AioContext lock became one in 2017.
    """

    kind = "rec-mutex"
    recursive = True


class RFifoLock(_OwnedLock):
    """The 2013 AioContext lock: recursive, first-come first-served, and it kicks its owner.

    QEMU's ``RFifoLock`` (``util/rfifolock.c``) gave out tickets so that waiters get the lock in
    arrival order, and called a contention callback when a thread had to wait; the AioContext
    lock used it to ``aio_notify`` the context, so that an owner asleep in ``aio_poll`` with the
    lock held (the 2014 IOThread loop did that) would wake up and let go.
    ``on_contention(waiting_thread)`` is that callback; it runs in the waiting thread, before it
    waits, and the trace shows it there ("contention callback"). ``contentions`` counts the
    times a thread had to wait.
    """

    kind = "rfifolock"
    recursive = True

    def __init__(self, sim: Simulation, name: str, on_contention=None, lock_class=None):
        if on_contention is not None:
            validate.function("on_contention", on_contention)
        super().__init__(sim, name, lock_class)
        self.on_contention = on_contention
        self.contentions = 0

    def _contended(self, t: Thread) -> None:
        self.contentions += 1
        if self.on_contention is not None:
            # Part of the waiter's lock step, recorded before its BLOCK: not a step of its own.
            self.sim.record(tb.OP, t.tid, self.sim.label("note", "contention callback"), None)
            self.on_contention(t)


def check_cond_wait(who: Any, cond: str, mutex: Any) -> None:
    """Refuse a condition wait that could not work: without holding the mutex (nothing to
    release, and the wake-up could be missed), or holding a recursive mutex more than once
    (the wait releases one level, so the lock would stay held). The simulator's QemuCond and
    its host-thread twin (``labsupport.real``) both ask this."""
    if mutex.owner is not who:
        raise MisuseError(
            f"{who.name} waited on condition {cond} without holding its mutex "
            f"{mutex.name}: lock {mutex.name} first, then wait in a loop"
        )
    if mutex.depth > 1:
        raise MisuseError(
            f"{who.name} waited on condition {cond} holding {mutex.name} {mutex.depth} "
            f"times; the wait releases it only once, so the lock would stay held"
        )


class QemuCond(Waitable):
    """A condition variable (QEMU: ``qemu_cond_wait``, ``qemu_cond_signal``, ``_broadcast``).

    ``yield cond.wait(m)`` releases ``m``, sleeps until signalled, then takes ``m`` again before
    returning. The caller must hold ``m``. Check the condition in a loop: a wake-up is a hint.
    """

    kind = "condition"

    def __init__(self, sim: Simulation, name: str):
        super().__init__(sim, name)
        self._mutex_of: dict[int, _OwnedLock] = {}
        self._signal_op = Step(partial(self._do_signal, n=1))
        self._broadcast_op = Step(partial(self._do_signal, n=None))

    def wait(self, mutex: _OwnedLock) -> Op:
        validate.instance("mutex", mutex, _OwnedLock, kind="a QemuMutex, QemuRecMutex or RFifoLock")
        return Step(partial(self._do_wait, mutex=mutex))

    def signal(self) -> Op:
        return self._signal_op

    def broadcast(self) -> Op:
        return self._broadcast_op

    def _do_wait(self, t: Thread, mutex: _OwnedLock) -> bool:
        if not isinstance(mutex, _OwnedLock):
            raise TypeError(f"{self.name}.wait() takes the mutex that protects the condition")
        check_cond_wait(t, self.name, mutex)
        mutex._do_unlock(t)
        self._mutex_of[t.tid] = mutex
        self.waiters.append(t)
        return self.sim.block(t, self)

    def _do_signal(self, t: Thread, n: int | None) -> bool:
        self.sim.record(tb.SIGNAL, t.tid, self.oid, len(self.waiters))
        count = len(self.waiters) if n is None else min(n, len(self.waiters))
        for _ in range(count):
            w = self.waiters.popleft()
            mutex = self._mutex_of.pop(w.tid)
            if mutex.owner is None:  # its ACQUIRE, or its BLOCK on the mutex, is the wake-up
                self.sim.make_ready(w)
                mutex._grant(w)
            else:
                mutex.waiters.append(w)
                self.sim.block(w, mutex)
        return True

    def __repr__(self) -> str:
        return f"<QemuCond {self.name} [waiters:{len(self.waiters)}]>"


class QemuEvent(Waitable):
    """A flag threads can wait for (QEMU: ``qemu_event_set``, ``_reset``, ``_wait``).

    Once set it stays set, and every waiter goes on, until someone resets it.
    """

    kind = "event"

    def __init__(self, sim: Simulation, name: str, is_set: bool = False):
        check_waitable(sim, name)
        initially = validate.flag("is_set", is_set)
        super().__init__(sim, name)
        self.is_set = initially
        self._set_op = Step(self._do_set)
        self._reset_op = Step(self._do_reset)
        self._wait_op = Step(self._do_wait)

    def set(self) -> Op:
        return self._set_op

    def reset(self) -> Op:
        return self._reset_op

    def wait(self) -> Op:
        return self._wait_op

    def _do_set(self, t: Thread) -> bool:
        self.sim.record(tb.SIGNAL, t.tid, self.oid, len(self.waiters))
        self.is_set = True
        while self.waiters:
            self.sim.wake(self.waiters.popleft(), self)
        return True

    def _do_reset(self, t: Thread) -> bool:
        self.sim.record(tb.SIGNAL, t.tid, self.oid, -1)
        self.is_set = False
        return True

    def _do_wait(self, t: Thread) -> bool:
        if self.is_set:
            self.sim.record(tb.WAKE, t.tid, self.oid, 0)  # went through without waiting
            return True
        self.waiters.append(t)
        return self.sim.block(t, self)

    def wait_reason(self) -> str:
        return "nobody is left to set it"

    def __repr__(self) -> str:
        state = "set" if self.is_set else "clear"
        return f"<QemuEvent {self.name} [{state}, waiters:{len(self.waiters)}]>"


class QemuSemaphore(Waitable):
    """A counting semaphore (QEMU: ``qemu_sem_post``, ``qemu_sem_wait``)."""

    kind = "semaphore"

    def __init__(self, sim: Simulation, name: str, count: int = 0):
        check_waitable(sim, name)
        validate.whole("a semaphore's count", count, 0, verb="is")
        super().__init__(sim, name)
        self.count = count
        self._post_op = Step(self._do_post)
        self._wait_op = Step(self._do_wait)

    def post(self) -> Op:
        return self._post_op

    def wait(self) -> Op:
        return self._wait_op

    def _do_post(self, t: Thread) -> bool:
        self.sim.record(tb.SIGNAL, t.tid, self.oid, self.count)
        if self.waiters:
            self.sim.wake(self.waiters.popleft(), self)
        else:
            self.count += 1
        return True

    def _do_wait(self, t: Thread) -> bool:
        if self.count > 0:
            self.count -= 1
            self.sim.record(tb.WAKE, t.tid, self.oid, 0)  # went through without waiting
            return True
        self.waiters.append(t)
        return self.sim.block(t, self)

    def wait_reason(self) -> str:
        return "nobody is left to post it"

    def __repr__(self) -> str:
        return f"<QemuSemaphore {self.name} [count:{self.count}, waiters:{len(self.waiters)}]>"


class RWLock(Waitable):
    """A reader/writer lock: many readers or one writer, granted in arrival order.

    A reader that arrives while a writer waits queues behind it, so writers are not starved.
    (QEMU's coroutine version is ``CoRwlock``; the block-graph lock of chapter 6 builds on this.)
    """

    kind = "rwlock"

    def __init__(self, sim: Simulation, name: str):
        super().__init__(sim, name)
        self.writer: Thread | None = None
        self.readers: list[Thread] = []
        self._mode: dict[int, str] = {}
        self._rd_op = Step(lambda t: self._do_lock(t, "read"))
        self._wr_op = Step(lambda t: self._do_lock(t, "write"))
        self._unlock_op = Step(self._do_unlock)

    def rdlock(self) -> Op:
        return self._rd_op

    def wrlock(self) -> Op:
        return self._wr_op

    def unlock(self) -> Op:
        return self._unlock_op

    def holders(self) -> list[Thread]:
        return [self.writer] if self.writer is not None else list(self.readers)

    def _can(self, mode: str) -> bool:
        if mode == "read":
            return self.writer is None
        return self.writer is None and not self.readers

    def _grant(self, t: Thread, mode: str) -> None:
        if mode == "read":
            self.readers.append(t)
        else:
            self.writer = t
        t.held.append(self)
        self.sim.record(tb.ACQUIRE, t.tid, self.oid, 1 if mode == "read" else -1)

    def _do_lock(self, t: Thread, mode: str) -> bool:
        if self.writer is t or t in self.readers:
            raise MisuseError(
                f"{t.name} took rwlock {self.name} for {mode} while already holding it; "
                f"this lock is not recursive"
            )
        if not self.waiters and self._can(mode):
            self._grant(t, mode)
            return True
        self._mode[t.tid] = mode
        self.waiters.append(t)
        return self.sim.block(t, self)

    def _do_unlock(self, t: Thread) -> bool:
        if self.writer is t:
            self.writer = None
        elif t in self.readers:
            self.readers.remove(t)
        else:
            raise MisuseError(f"{t.name} unlocked rwlock {self.name}, which it does not hold")
        t.held.remove(self)
        self.sim.record(tb.RELEASE, t.tid, self.oid, 0)
        while self.waiters:
            w = self.waiters[0]
            mode = self._mode[w.tid]
            if not self._can(mode):
                break
            self.waiters.popleft()
            del self._mode[w.tid]
            self.sim.make_ready(w)  # its ACQUIRE is the wake-up
            self._grant(w, mode)
            if mode == "write":
                break
        return True

    def __repr__(self) -> str:
        if self.writer is not None:
            st = f"write-locked by {self.writer.name}"
        elif self.readers:
            st = "read-locked by " + ",".join(r.name for r in self.readers)
        else:
            st = "unlocked"
        return f"<RWLock {self.name} [{st}, waiters:{len(self.waiters)}]>"


def holds(thread: Thread | None, lock: Any) -> bool:
    """Does ``thread`` hold ``lock`` (in any mode)? Not a step; for assertions."""
    return thread is not None and lock in thread.held
