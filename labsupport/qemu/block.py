"""The storage path: a disk with service times and a queue depth, virtio-blk, block nodes.

A guest request reaches ``VirtioBlk`` through a kick (an ioeventfd), goes to the ``Disk`` and
comes back as an interrupt. ``BlockDriverState`` counts requests in flight and opens drained
sections (``bdrv_drained_begin``/``end``), which graph changes and context moves wait on.

Layer 4 (QEMU models).
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from .. import validate
from ..kernel import Simulation, Step, compute, sleep, state_repr
from ..loop import (
    AioContext,
    EventNotifier,
    aio_wait_kick,
    aio_wait_while,
)
from ..shared import Shared
from ..sync import QemuSemaphore
from .workload import Workload

# --------------------------------------------------------------------------------------------
# The disk and the virtio-blk request path.


class Disk:
    """A disk that serves up to ``queue_depth`` requests at once, each in ``service_us``.

    Completed requests queue up and the disk sets ``completion`` (Linux AIO's eventfd).
    """

    def __init__(self, sim: Simulation, service_us: float, queue_depth: int):
        validate.instance("sim", sim, Simulation, kind="a Simulation")
        validate.duration("service_us", service_us, positive=True)
        validate.whole("queue_depth", queue_depth, 1)
        self.sim = sim
        self.service_us = service_us
        self.queue_depth = queue_depth
        self.active = 0
        self.waiting: deque[Any] = deque()
        self.completed: deque[Any] = deque()
        self.completion = EventNotifier(sim, "disk-completion")

    def __repr__(self) -> str:
        return state_repr(
            self,
            f"active:{self.active}/{self.queue_depth}",
            f"queued:{len(self.waiting)}",
            f"completed:{len(self.completed)}",
            f"service {self.service_us:g}us",
        )

    def submit(self, request: Any) -> Step:
        """``yield disk.submit(req)``: hand a request to the disk (``io_submit``); never waits."""
        return Step(lambda t: self._submit(request) or True)

    def _submit(self, request: Any) -> None:
        if self.active < self.queue_depth:
            self._start(request)
        else:
            self.waiting.append(request)

    def _start(self, request: Any) -> None:
        self.active += 1
        ev = self.sim.env.timeout(self.service_us)
        ev.callbacks.append(lambda _ev: self._done(request))

    def _done(self, request: Any) -> None:
        self.active -= 1
        self.completed.append(request)
        self.completion.set_now()
        if self.waiting:
            self._start(self.waiting.popleft())


class VirtioBlk:
    """A virtio-blk device: a virtqueue the guest fills, a kick, and an interrupt back.

    ``handle_vq`` (QEMU: ``virtio_blk_handle_vq``) takes requests off the queue and submits them;
    ``complete`` (the disk's completion handler) finishes them and interrupts the guest. Both run
    in whichever loop watches the kick and the disk: the main loop, which holds the BQL while it
    dispatches, or the dataplane's own loop, which never takes it.
    """

    def __init__(self, sim: Simulation, w: Workload, disk: Disk, block_layer: bool = True):
        validate.instance("sim", sim, Simulation, kind="a Simulation")
        validate.instance("w", w, Workload, kind="a Workload(...)")
        validate.instance("disk", disk, Disk, kind="a Disk")
        validate.flag("block_layer", block_layer)
        self.sim = sim
        self.w = w
        self.disk = disk
        self.submit_us = w.io_submit_us + (w.block_layer_us if block_layer else 0.0)
        self.avail: deque[float] = deque()
        self.kick = EventNotifier(sim, "virtqueue-kick")  # the ioeventfd
        self.irq = QemuSemaphore(sim, "guest-irq")
        self.submitted = 0
        self.completed = 0
        self.latencies: list[float] = []
        # Which io_submit calls block in the host kernel: a stream of its own (see Workload).
        self.slow_rng = random.Random(w.seed * 1_000_003 + 1) if w.slow_syscall_prob else None

    def __repr__(self) -> str:
        return state_repr(
            self,
            f"avail:{len(self.avail)}",
            f"submitted:{self.submitted}",
            f"completed:{self.completed}",
            f"irq pending:{self.irq.count}",
        )

    def handle_vq(self):
        while self.avail:
            start = self.avail.popleft()
            yield compute(self.submit_us)
            if self.slow_rng is not None and self.slow_rng.random() < self.w.slow_syscall_prob:
                yield sleep(self.w.slow_syscall_us)  # io_submit blocks in the host kernel
            yield self.disk.submit(start)
            self.submitted += 1

    def complete(self):
        while self.disk.completed:
            start = self.disk.completed.popleft()
            yield compute(self.w.io_complete_us + self.w.handler_us)
            self.completed += 1
            self.latencies.append(self.sim.now - start)
            self.sim.mark("io", since=start)
            yield self.irq.post()


class BlockDriverState:
    """A block node: its AioContext, requests in flight, and drained sections.

    ``bdrv_inc_in_flight``/``bdrv_dec_in_flight`` count requests; a drained section
    (``bdrv_drained_begin``/``end``) stops new requests (``quiesce_counter``) and waits with
    ``AIO_WAIT_WHILE`` until none is in flight.
    """

    def __init__(self, sim: Simulation, name: str, ctx: AioContext):
        validate.instance("sim", sim, Simulation, kind="a Simulation")
        validate.label("name", name)
        validate.instance("ctx", ctx, AioContext, kind="an AioContext")
        self.sim = sim
        self.name = name
        self.ctx = ctx
        self.in_flight = Shared(sim, f"{name}.in_flight", 0)
        self.quiesce_counter = 0

    def _repr_state(self) -> list[str]:
        return [
            f"in_flight:{self.in_flight.value}",
            f"drained:{self.quiesce_counter}" if self.quiesce_counter else "not drained",
            f"ctx {self.ctx.name}",
        ]

    def __repr__(self) -> str:
        return state_repr(self, *self._repr_state())

    def inc_in_flight(self):
        """``yield bs.inc_in_flight()`` (``bdrv_inc_in_flight``)."""
        return self.in_flight.qatomic_add(1)

    def dec_in_flight(self):
        """``yield from bs.dec_in_flight()``: one request fewer; kick a waiting drain."""
        yield self.in_flight.qatomic_add(-1)
        yield aio_wait_kick()

    def drained_begin(self):
        """``yield from bs.drained_begin()``: no new requests; wait for those in flight."""
        self.quiesce_counter += 1
        yield aio_wait_while(self.ctx, lambda: self.in_flight.value > 0)

    def drained_end(self):
        self.quiesce_counter -= 1
        return
        yield
