"""labsupport: the engine behind the Unlocking QEMU course, and its table of contents.

Simulated threads, locks, event loops and QEMU models on a seeded, replayable scheduler, with
the analyses (deadlocks, lock order, races, metrics) and the presentations (trace tables,
timelines, Perfetto traces) that the notebooks show. Layers, bottom up: kernel, primitives,
event loop, QEMU models, analysis, presentation, widgets, course; each imports only the layers
below it. The chapters' own code is in ``labsupport.chapters.chNN``, imported when asked for.
"""

# The kernel: simulations, threads, steps, schedules, and how a run ends.
from .kernel import (
    DeadlockError,
    DeadlockReport,
    MisuseError,
    RunResult,
    ScheduleDivergence,
    Simulation,
    SimulationError,
    StepLimitExceeded,
    ThreadCrashed,
    TimeLimitExceeded,
    compute,
    note,
    run,
    sleep,
    time_budget,
)

# The primitives, named after QEMU's.
from .sync import QemuCond, QemuEvent, QemuMutex, QemuRecMutex, QemuSemaphore, RWLock, holds
from .shared import Shared

# The event loop and coroutines.
from .loop import AioContext, EventNotifier, aio_poll, aio_wait_kick, aio_wait_while
from .coroutine import (
    CoMutex,
    CoQueue,
    Coroutine,
    aio_co_enter,
    aio_co_schedule,
    aio_co_wake,
    qemu_coroutine_enter,
    qemu_coroutine_yield,
)

# The same programs on host threads, with a watchdog.
from .real import run_real

# The QEMU models: the BQL, IOThreads and the AioContext lock, block nodes, every era.
from .qemu import (
    BQL,
    BlockDriverState,
    IOThread,
    Workload,
    aio_context_acquire,
    aio_context_release,
    qemu_get_aio_context,
    run_era,
)

# The analyses over a run: metrics, lock order (lockdep), races (Eraser); every schedule.
from .analysis import (
    LockOrder,
    Metrics,
    explore,
    find_races,
    intervals,
    metrics,
    pct,
    percentile,
    witness_deadlock,
)

# Presentation: what the notebooks print and draw.
from .present import chrome_trace, save_chrome_trace, timeline, timeline_summary, trace_table

# The exercises: check an answer, ask for a hint, hand a notebook out afresh.
from .exercises import answered, check, hint, reset

__all__ = [
    # kernel
    "Simulation", "run", "compute", "sleep", "note", "RunResult", "DeadlockReport",
    "SimulationError", "MisuseError", "DeadlockError", "ScheduleDivergence",
    "StepLimitExceeded", "ThreadCrashed", "TimeLimitExceeded", "time_budget",
    # primitives
    "QemuMutex", "QemuRecMutex", "QemuCond", "QemuEvent", "QemuSemaphore", "RWLock", "Shared",
    "holds",
    # event loop and coroutines
    "AioContext", "EventNotifier", "aio_poll", "aio_wait_while", "aio_wait_kick",
    "Coroutine", "CoMutex", "CoQueue", "qemu_coroutine_enter", "qemu_coroutine_yield",
    "aio_co_enter", "aio_co_schedule", "aio_co_wake",
    # real threads
    "run_real",
    # QEMU models
    "BQL", "IOThread", "BlockDriverState", "Workload", "run_era", "aio_context_acquire",
    "aio_context_release", "qemu_get_aio_context",
    # analysis
    "Metrics", "metrics", "intervals", "percentile", "LockOrder", "witness_deadlock",
    "find_races", "explore", "pct",
    # presentation
    "trace_table", "timeline", "timeline_summary", "chrome_trace", "save_chrome_trace",
    # exercises
    "answered", "check", "hint", "reset",
]  # fmt: skip
