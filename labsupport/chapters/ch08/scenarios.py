"""Every era on one workload: chapter 8's retrospective.

Chapters 1-7 each built one era of QEMU's concurrency model and measured it on a workload of its
own. Here the eras run on one common workload, so that what each step bought (I/O rate, guest
time, monitor latency) and what it cost (lines of locking code, bugs of a new kind) can be read
off one table. ``measure_eras`` runs the eras that ``run_era`` knows; ``hunt`` runs every
bug of the course's catalogue, buggy and fixed, on seeded schedules and counts what the
detectors report; ``locking_lines`` counts the lines of an era model that take or drop a lock,
and ``library_era_model`` gives the part of an era model that a chapter keeps in labsupport.

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

import inspect
import io
import math
import re
import tokenize
from dataclasses import dataclass
from typing import Any

from labsupport import validate
from labsupport.catalogue import HuntResult, Scenario, Verification, verify
from labsupport.catalogue import format_verify as format_verify  # the notebook imports it here
from labsupport.catalogue import hunt as catalogue_hunt
from labsupport.qemu import graphlock, multiqueue
from labsupport.qemu.eras import run_era
from labsupport.qemu.multiqueue import VM, MQResult, measure
from labsupport.qemu.workload import Workload

from ..ch03 import scenarios as ch03
from ..ch04 import scenarios as ch04
from ..ch05 import scenarios as ch05
from ..ch06 import scenarios as ch06
from ..ch07 import scenarios as ch07

#: The one workload every era runs: four vCPUs on eight host CPUs, MMIO exits every 20 us of
#: guest code on average, 32 disk requests kept in flight on a disk that serves 64 at once in
#: 50 us each, one io_submit in 500 blocking for 2 ms, and 1000 ``info block`` per second.
COMMON = Workload(
    vcpus=4,
    host_cpus=8,
    guest_us=20,
    mmio_emulation_us=5,
    io_depth=32,
    io_service_us=50,
    disk_queue_depth=64,
    slow_syscall_prob=0.002,
    slow_syscall_us=2_000,
    monitor_per_s=1_000,
    duration_us=50_000,
)


@dataclass(frozen=True)
class Era:
    """One row of the retrospective: a chapter's era and how ``run_era`` runs it."""

    chapter: int
    name: str
    years: str
    run_era_name: str


CHAPTER_ERAS: tuple[Era, ...] = (
    Era(1, "one thread for everything", "before 2009", "one-thread"),
    Era(2, "vCPU threads and the BQL", "2009-2011", "kvm"),
    Era(3, "the dataplane (raw images only)", "2012-2013", "dataplane"),
    Era(4, "IOThread, the loop holds its context lock", "2013-2017", "iothread"),
    Era(5, "IOThread, handlers take the context lock", "2017-2023", "iothread-2017"),
    Era(7, "IOThread, no context lock (QEMU 9.0)", "2024-", "iothread-9.0"),
)


@dataclass
class EraRow:
    """What one era measured on the common workload (rates per simulated second, times in us)."""

    era: Era
    io_per_s: float
    io_p99_us: float
    guest_cpus_busy: float
    monitor_p99_us: float
    bql_wait_us: float

    def cells(self) -> list[str]:
        return [
            f"{self.era.chapter}",
            self.era.name,
            f"{self.io_per_s / 1000:,.1f}",
            f"{self.io_p99_us:,.0f}",
            f"{self.guest_cpus_busy:.2f}",
            f"{self.monitor_p99_us:,.0f}",
        ]


def measure_eras(w: Workload = COMMON, eras: tuple[Era, ...] = CHAPTER_ERAS) -> list[EraRow]:
    """Run each era on ``w`` (same seed, same workload) and measure it."""
    if not isinstance(w, Workload):
        raise TypeError(f"expected a Workload; got {type(w).__name__}")
    eras = validate.items("eras", eras, kind="a tuple of Era", empty=False)
    for era in eras:
        validate.instance("eras", era, Era, kind="a tuple of Era")
    rows = []
    for era in eras:
        r = run_era(w, era.run_era_name, trace=False)
        rows.append(
            EraRow(era, r.io_per_s, r.io_p99_us, r.guest_cpus_busy, r.monitor_p99_us, r.bql_wait_us)
        )
    return rows


def format_rows(rows: list[EraRow]) -> str:
    """The era table as text."""
    head = ["ch", "era", "k I/O per s", "I/O p99 us", "guest CPUs", "info block p99 us"]
    table = [head] + [r.cells() for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = []
    for n, row in enumerate(table):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 1 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The catalogue: every deadlock, stall and race the course reproduced, buggy and fixed.


#: Every catalogued bug of chapters 3 to 7, in the order the course meets them: each chapter's
#: own ``SCENARIOS`` records (``labsupport.catalogue.Scenario``), nothing written again here.
CATALOGUE: list[Scenario] = [
    *ch03.SCENARIOS.values(),
    *ch04.SCENARIOS.values(),
    *ch05.SCENARIOS.values(),
    *ch06.SCENARIOS.values(),
    *ch07.SCENARIOS.values(),
]


def hunt(seeds: int = 20, catalogue: list[Scenario] | None = None) -> list[HuntResult]:
    """Run every catalogue item on ``seeds`` seeded schedules, buggy and fixed."""
    validate.whole("seeds", seeds, 1, 1000, verb="is")
    return catalogue_hunt(CATALOGUE if catalogue is None else catalogue, seeds)


def format_hunt(results: list[HuntResult]) -> str:
    """The hunt as text: one row per catalogue item."""
    lines = [
        f"{'bug':<4} {'ch':>2}  {'kind':<8} {'buggy':>7} {'fixed':>7}  what",
        f"{'-' * 4} {'-' * 2}  {'-' * 8} {'-' * 7} {'-' * 7}  {'-' * 4}",
    ]
    for h in results:
        lines.append(
            f"{h.bug.id:<4} {h.bug.chapter:>2}  {h.bug.kind:<8} "
            f"{h.buggy:>3}/{h.seeds:<3} {h.fixed:>3}/{h.seeds:<3}  {h.bug.what}"
        )
    return "\n".join(lines)


def verify_all(catalogue: list[Scenario] | None = None) -> list[Verification]:
    """Every catalogue item found by the explorer (or PCT) and its fix tried on every schedule
    (``labsupport.catalogue.verify``)."""
    return [verify(sc) for sc in (CATALOGUE if catalogue is None else catalogue)]


# --------------------------------------------------------------------------------------------
# Lines of locking code.

_LOCKING = re.compile(
    r"\b(lock|unlock|acquire|release|aio_context_acquire|aio_context_release|bql_lock|"
    r"bql_unlock|rdlock|rdunlock|wrlock|wrunlock|bdrv_graph_\w+|aio_context_new_lock)\s*\("
    r"|\bdrop\s*=|\block_kind\s*=\s*\"s\""
)


#: The parts of their era models that chapters 6 and 7 keep in labsupport: their notebooks show
#: only the locking they teach (chapter 6 the graph lock's read side, its write side and the
#: graph change; chapter 7 the empty context lock, the 9.0 ``AIO_WAIT_WHILE`` and
#: ``aio_co_reschedule_self``), and the rest of the model, which their tests run against what
#: the notebooks show, is here. Nothing here is also in a notebook's ``era-model`` cells.
LIBRARY_ERA_MODELS: dict[int, tuple[Any, ...]] = {
    6: (
        ch06.bdrv_co_preadv,
        ch06.blk_co_preadv,
        ch06.bdrv_replace_child,
        graphlock.bdrv_graph_co_rdunlock,
        graphlock.bdrv_graph_rdlock_main_loop,
        graphlock.bdrv_graph_rdunlock_main_loop,
        graphlock.bdrv_graph_wrunlock,
        ch06.bdrv_co_get_info,
        ch06.bdrv_get_info_sync,
        ch06.graph_program,
        ch06.run_graph,
    ),
    7: (
        ch07.removal_program,
        ch07.handover_program,
        ch07.r4_program,
        ch07.r5_program,
        ch07.r6_program,
        ch07.r7_program,
        multiqueue.ReqsCoMutex,
        multiqueue.ReqsQemuMutex,
    ),
}


def library_era_model(chapter: int) -> list[str]:
    """The source of each part of chapter ``chapter``'s era model kept in labsupport (none for a
    chapter whose notebook builds all of its model in ``era-model`` cells)."""
    validate.whole("chapter", chapter, 0, 8, verb="is")
    return [inspect.getsource(part) for part in LIBRARY_ERA_MODELS.get(chapter, ())]


def locking_lines(source: str) -> int:
    """Lines of Python ``source`` that take, drop or create a lock (strings and comments do not
    count: a docstring that talks about a lock is not locking code)."""
    if not isinstance(source, str):
        raise TypeError("locking_lines counts the lines of a source text (a str)")
    code: dict[int, list[str]] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT or not tok.string.strip():
                continue
            text = '"s"' if tok.type == tokenize.STRING else tok.string  # no words from strings
            code.setdefault(tok.start[0], []).append(text)
    except (tokenize.TokenError, IndentationError, SyntaxError) as e:
        raise ValueError(f"locking_lines needs Python source that tokenizes: {e}") from None
    joined = (" ".join(toks).replace(" (", "(").replace(" = ", "=") for toks in code.values())
    return sum(1 for line in joined if _LOCKING.search(line))


# --------------------------------------------------------------------------------------------
# What QEMU 9.0 added on top: one device's virtqueues on several IOThreads (chapter 7's model).

#: Chapter 7's published-like configuration: 8 vCPUs, 8 host CPUs, 8 virtqueues, depth 64.
MQ_BASE = VM(iothreads=1, num_queues=8, vcpus=8, host_cpus=8, iodepth=64)


def multiqueue_rows(
    iothreads: tuple[int, ...] = (1, 2, 4, 8), seed: int = 0
) -> list[tuple[int, str, MQResult]]:
    """``(IOThreads, reqs_lock kind, result)`` for each IOThread count and each lock kind."""
    return [
        (n, kind, measure(MQ_BASE.replace(iothreads=n, reqs_lock=kind), seed=seed))
        for n in iothreads
        for kind in ("CoMutex", "QemuMutex")
    ]


def format_multiqueue(rows: list[tuple[int, str, MQResult]]) -> str:
    """The multi-queue rows as text."""
    lines = [
        f"{'IOThreads':>9}  {'reqs_lock':<9}  {'k I/O per s':>11}  {'p99 us':>6}  limit",
        f"{'-' * 9}  {'-' * 9}  {'-' * 11}  {'-' * 6}  {'-' * 9}",
    ]
    for n, kind, r in rows:
        lines.append(f"{n:>9}  {kind:<9}  {r.iops / 1000:>11,.0f}  {r.p99_us:>6,.0f}  {r.limit}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The whole story in one table.


@dataclass
class StoryRow:
    """One chapter's era in the summary: what it bought and what it cost."""

    chapter: int
    era: str
    io_per_s: float  # NaN where the chapter has no row of its own in ``measure_eras``
    io_p99_us: float
    monitor_p99_us: float
    deadlocks: int  # catalogue deadlocks and hangs of this chapter that the detectors caught
    other_bugs: int  # races, stalls and freed reads of this chapter that they caught
    locking_lines: int


def story(rows: list[EraRow], hunted: list[HuntResult], locking: dict[int, int]) -> list[StoryRow]:
    """One row per chapter 1-7: the era table's measurements (chapter 6 has none of its own),
    the catalogue items caught under each chapter, and its era model's locking lines."""
    by_chapter = {r.era.chapter: r for r in rows}
    names = {
        1: "one thread",
        2: "vCPU threads + BQL",
        3: "dataplane",
        4: "IOThread, loop holds ctx lock",
        5: "handlers take ctx lock",
        6: "graph lock + annotations",
        7: "no ctx lock (9.0)",
    }
    out = []
    for ch in range(1, 8):
        r = by_chapter.get(ch)
        caught = [h.bug.kind for h in hunted if h.bug.chapter == ch and h.buggy > 0]
        dead = sum(k in ("deadlock", "hang") for k in caught)
        out.append(
            StoryRow(
                ch,
                names[ch],
                r.io_per_s if r else math.nan,
                r.io_p99_us if r else math.nan,
                r.monitor_p99_us if r else math.nan,
                dead,
                len(caught) - dead,
                locking.get(ch, 0),
            )
        )
    return out


def format_story(story_rows: list[StoryRow]) -> str:
    """The summary as text; a chapter without its own measurement shows "-"."""

    def num(v: float, scale: float = 1, digits: int = 0) -> str:
        return "-" if math.isnan(v) else f"{v / scale:,.{digits}f}"

    lines = [
        f"{'ch':>2}  {'era':<30} {'k I/O per s':>11} {'I/O p99':>7} {'monitor p99':>11} "
        f"{'deadlocks':>9} {'other bugs':>10} {'locking lines':>13}",
        f"{'-' * 2}  {'-' * 30} {'-' * 11} {'-' * 7} {'-' * 11} {'-' * 9} {'-' * 10} {'-' * 13}",
    ]
    for r in story_rows:
        lines.append(
            f"{r.chapter:>2}  {r.era:<30} {num(r.io_per_s, 1000, 1):>11} {num(r.io_p99_us):>7} "
            f"{num(r.monitor_p99_us):>11} {r.deadlocks:>9} {r.other_bugs:>10} "
            f"{r.locking_lines:>13}"
        )
    return "\n".join(lines)


def ratio(a: float, b: float) -> float:
    """``a / b``, NaN when ``b`` is 0."""
    return a / b if b else math.nan
