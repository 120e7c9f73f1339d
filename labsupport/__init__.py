"""labsupport: the engine behind the Unlocking QEMU course.

Simulated threads, locks, event loops and QEMU models on a seeded, replayable scheduler, with
the analyses (deadlocks, metrics) and the presentations (trace tables, timelines, Perfetto
traces) that the notebooks show. Layers, bottom up: kernel, primitives, event loop, QEMU
models, analysis, presentation, widgets, exercises; each imports only the layers below it.
"""

from .analysis.metrics import Metrics, intervals, metrics, percentile
from .exercises import check, hint, reset
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
    compute,
    note,
    run,
    sleep,
)
from .present import chrome_trace, save_chrome_trace, timeline, timeline_summary, trace_table
from .shared import Shared
from .sync import QemuCond, QemuEvent, QemuMutex, QemuRecMutex, QemuSemaphore, RWLock, holds

__all__ = [
    "DeadlockError",
    "DeadlockReport",
    "Metrics",
    "MisuseError",
    "QemuCond",
    "QemuEvent",
    "QemuMutex",
    "QemuRecMutex",
    "QemuSemaphore",
    "RWLock",
    "RunResult",
    "ScheduleDivergence",
    "Shared",
    "Simulation",
    "SimulationError",
    "StepLimitExceeded",
    "ThreadCrashed",
    "chrome_trace",
    "check",
    "compute",
    "hint",
    "reset",
    "holds",
    "intervals",
    "metrics",
    "note",
    "percentile",
    "run",
    "save_chrome_trace",
    "sleep",
    "timeline",
    "timeline_summary",
    "trace_table",
]
