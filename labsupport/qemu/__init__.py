"""QEMU models: the parts each era of the course is built from, named as QEMU names them.

``workload`` (what the guest does), ``bql`` (the Big QEMU Lock), ``vcpu`` (vCPU threads),
``block`` (disk, virtio-blk, block nodes), ``iothread`` (IOThreads and the AioContext lock),
``dataplane`` (the 2012 dataplane), ``eras`` (``run_era``: every era on one workload), and the
later machinery of chapters 6 and 7: ``graphlock`` (the block-graph lock) and ``multiqueue``
(the 9.0 multi-queue block layer), imported from their own modules.

Layer 4 (QEMU models): imports the kernel, the primitives and the event loop.
"""

from .block import BlockDriverState, Disk, VirtioBlk
from .bql import BQL, ProfiledLock, SiteStats
from .dataplane import Dataplane, DataplaneRefused, HandlerGuard, r2_program
from .eras import EraResult, era_program, run_era
from .iothread import (
    IOThread,
    aio_context_acquire,
    aio_context_new_lock,
    aio_context_release,
    info_block,
    iothread_get_aio_context,
    qemu_get_aio_context,
)
from .vcpu import CPUState, process_queued_cpu_work, qemu_cpu_kick, run_on_cpu, vcpu_thread_fn
from .workload import ERAS, Workload

__all__ = [
    # the workload and the eras
    "ERAS", "Workload", "EraResult", "era_program", "run_era",
    # the Big QEMU Lock
    "BQL", "ProfiledLock", "SiteStats",
    # vCPU threads
    "CPUState", "qemu_cpu_kick", "run_on_cpu", "process_queued_cpu_work", "vcpu_thread_fn",
    # storage
    "Disk", "VirtioBlk", "BlockDriverState",
    # IOThreads and the AioContext lock
    "IOThread", "aio_context_new_lock", "aio_context_acquire", "aio_context_release",
    "iothread_get_aio_context", "qemu_get_aio_context", "info_block",
    # the 2012 dataplane
    "Dataplane", "DataplaneRefused", "HandlerGuard", "r2_program",
]  # fmt: skip
