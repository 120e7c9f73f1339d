"""The 2012 virtio-blk dataplane: a private thread and loop for one device, and its limits.

It bypassed the BQL and the block layer, so it served raw images only; image formats,
throttling, block jobs and migration were refused. A second way into one handler brought
race R2, and ``HandlerGuard`` the fix.

Layer 4 (QEMU models).
"""

from __future__ import annotations

from typing import Any

from .. import tracebuf as tb
from .. import validate
from ..kernel import Simulation, Step, compute, state_repr
from ..loop import (
    AioContext,
    EventNotifier,
    aio_poll,
)
from ..shared import Shared
from .bql import BQL

# --------------------------------------------------------------------------------------------
# The 2012 dataplane's limits, and the race that came with a second way into one handler.


class DataplaneRefused(Exception):
    """What ``x-data-plane=on`` answered when asked for something it could not do."""


class Dataplane:
    """The configuration of a virtio-blk device with ``x-data-plane=on`` (QEMU 1.4, 2013).

    It served read, write and flush on a raw image from its own thread. Everything else was
    refused or missing: image formats at start-up; block jobs (and hot unplug) with -EBUSY while
    it ran; no live migration; QEMU's throttling ignored (the limits listed when it was merged).
    """

    def __init__(self, image_format: str = "raw", throttling: bool = False):
        validate.label("image_format", image_format)
        validate.flag("throttling", throttling)
        self.image_format = image_format
        self.throttling = throttling
        self.running = False

    def __repr__(self) -> str:
        return state_repr(
            self,
            "running" if self.running else "stopped",
            f"format={self.image_format}",
            "throttling" if self.throttling else "",
        )

    def start(self) -> Dataplane:
        if self.image_format != "raw":
            raise DataplaneRefused(
                f"x-data-plane=on supports only format=raw, not {self.image_format!r}: the "
                f"dataplane thread submits Linux AIO itself and bypasses the block layer that "
                f"understands image formats"
            )
        if self.throttling:
            raise DataplaneRefused(
                "x-data-plane=on ignores QEMU's I/O throttling (it lives in the block layer, "
                "which the dataplane bypasses); QEMU 1.4 silently went on without the limit, "
                "this model refuses so that it is not lost unnoticed; use cgroups blkio instead"
            )
        self.running = True
        return self

    def _busy(self, what: str) -> DataplaneRefused:
        return DataplaneRefused(
            f"-EBUSY: {what} is not possible while the dataplane runs: it needs the block "
            f"layer and the BQL, and the dataplane thread uses neither"
        )

    def start_block_job(self, job: str = "stream") -> None:
        """A block job (stream, mirror, ...) on the device."""
        if self.running:
            raise self._busy(f"block job {job!r}")

    def migrate(self) -> None:
        """Live migration of the guest: not supported with the 2013 dataplane (later versions
        stopped the dataplane for the duration of the migration)."""
        if self.running:
            raise DataplaneRefused(
                "live migration is not supported with x-data-plane=on (QEMU 1.4): the "
                "dataplane's requests bypass the block layer that migration must quiesce"
            )

    def set_throttle(self, iops: int) -> None:
        """QEMU's I/O throttling (block_set_io_throttle)."""
        if self.running:
            raise self._busy(f"throttling to {iops} IOPS")


class HandlerGuard:
    """Notices when two threads are inside one handler at once: the shape of race R2.

    The handler calls ``yield guard.enter()`` first and ``yield guard.leave()`` last; a second
    thread entering while another is inside is written down in ``reports``.
    """

    def __init__(self, sim: Simulation, handler: str):
        validate.instance("sim", sim, Simulation, kind="a Simulation")
        validate.label("handler", handler)
        self.sim = sim
        self.handler = handler
        self.inside: list[Any] = []
        self.reports: list[str] = []

    def __repr__(self) -> str:
        inside = ",".join(t.name for t in self.inside) or "nobody"
        return state_repr(
            self, f"inside: {inside}", f"reports:{len(self.reports)}", name=self.handler
        )

    def enter(self) -> Step:
        def do(t: Any) -> bool:
            for other in self.inside:
                self.reports.append(
                    f"t={self.sim.now:g} us: {t.name} entered {self.handler} while "
                    f"{other.name} was still inside it"
                )
            self.inside.append(t)
            self.sim.record(tb.OP, t.tid, self.sim.label("note", f"enter {self.handler}"), None)
            return True

        return Step(do)

    def leave(self) -> Step:
        def do(t: Any) -> bool:
            self.inside.remove(t)
            self.sim.record(tb.OP, t.tid, self.sim.label("note", f"leave {self.handler}"), None)
            return True

        return Step(do)


def r2_program(fixed: bool = False, requests: int = 3):
    """R2: the virtqueue handler run by a vCPU thread *and* by the dataplane's thread.

    In the buggy version the vCPU's notify path still calls ``virtio_blk_handle_vq`` itself
    (as the vCPU thread did before the dataplane) and also kicks the dataplane, which runs the
    same handler from its own loop; the handler was never written to be entered twice at once.
    The fix gives the queue one owner: the vCPU only kicks.
    """
    validate.flag("fixed", fixed)
    validate.whole("requests", requests, 1, 1000)

    def program(sim: Simulation) -> HandlerGuard:
        bql = BQL(sim)
        guard = HandlerGuard(sim, "virtio_blk_handle_vq")
        avail = Shared(sim, "vq.avail_idx", 0)
        last = Shared(sim, "vq.last_avail_idx", 0)
        kick = EventNotifier(sim, "virtqueue-kick")
        ctx = AioContext(sim, "dataplane")

        def handle_vq():
            yield guard.enter()
            while (yield last.load()) < (yield avail.load()):
                idx = yield last.load()
                yield compute(2)  # parse the request descriptor
                yield last.store(idx + 1)
            yield guard.leave()

        ctx.set_event_notifier(kick, handle_vq)

        def vcpu():
            for _ in range(requests):
                yield avail.increment()
                yield kick.set()  # the ioeventfd: the dataplane's loop wakes up
                if not fixed:  # ... and the old notify path runs the handler here too
                    yield bql.lock("vcpu: virtio notify")
                    yield from handle_vq()
                    yield bql.unlock()
                yield compute(3)

        def dataplane():
            while True:
                yield aio_poll(ctx, True)

        sim.spawn("vcpu0", vcpu)
        sim.spawn("dataplane", dataplane, daemon=True)
        return guard

    return program
