"""Analyses over one run's event stream: what happened, and what could have happened.

``metrics`` (CPU use, lock waits and holds, throughput and latency percentiles), ``lockdep``
(lock order: a possible deadlock before it happens), ``races`` (Eraser's lockset, with
happens-before for semaphores, events, conditions, joins and atomics), ``explore`` (every
schedule of a program, reduced by partial-order reduction), and ``tsa`` (a static
thread-safety pass with clang's limits), imported from its own module.

Layer 5 (analysis): imports the kernel and the primitives.
"""

from .explore import Counterexample, Exploration, explore, pct
from .lockdep import Dependency, LockOrder, LockOrderReport, witness_deadlock
from .metrics import Interval, LockStats, MarkStats, Metrics, intervals, metrics, percentile
from .races import Access, RaceReport, find_races

__all__ = [
    # metrics
    "Interval", "LockStats", "MarkStats", "Metrics", "intervals", "metrics", "percentile",
    # lock order
    "Dependency", "LockOrder", "LockOrderReport", "witness_deadlock",
    # races
    "Access", "RaceReport", "find_races",
    # every schedule
    "Counterexample", "Exploration", "explore", "pct",
]  # fmt: skip
