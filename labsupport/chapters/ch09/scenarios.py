"""Chapter 9's programs: chapter 0's counter and deadlock, and chapter 2's BQL, on host threads.

The simulator replays every race; host threads replay none, and that is the point of this
chapter. ``plain_python_counter`` is the counter as a Python programmer writes it
(``counter += 1`` on ``threading`` threads). ``counter_program`` (chapter 0's) runs on
``run_real``, where a load and a store are separate steps: with the GIL a switch between them
is rare, without it (a free-threaded interpreter) it is routine. ``abba_program`` is chapter 0's
deadlock made certain on real threads (each thread waits to hear that the other holds its first
lock). ``devices_program`` is chapter 2's question on real cores: vCPU threads that take one
global lock per exit against a lock per device.

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labsupport import validate
from labsupport.chapters.ch00.scenarios import counter_program
from labsupport.kernel import MAX_THREADS, Simulation, compute
from labsupport.real import RealResult, gil_enabled, run_real
from labsupport.sync import QemuMutex, QemuSemaphore

#: The most increments a thread makes in ``plain_python_counter``.
MAX_PLAIN_INCREMENTS = 10_000_000


def plain_python_counter(threads: int = 4, increments: int = 1_000_000) -> int:
    """``threads`` host threads each run ``counter.n += 1`` ``increments`` times, no lock, no
    simulator; returns how many increments were lost."""
    validate.whole("threads", threads, 1, MAX_THREADS)
    validate.whole("increments", increments, 1, MAX_PLAIN_INCREMENTS)

    class Counter:
        n = 0

    counter = Counter()

    def body() -> None:
        for _ in range(increments):
            counter.n += 1

    hosts = [threading.Thread(target=body) for _ in range(threads)]
    for h in hosts:
        h.start()
    for h in hosts:
        h.join()
    return threads * increments - counter.n


@dataclass
class LostUpdates:
    """Chapter 0's counter on real threads, ``runs`` times: the share of increments lost."""

    threads: int
    increments: int
    locked: bool
    lost: list[int]  # increments lost, run by run

    @property
    def rate(self) -> float:
        """The median share of all increments that were lost."""
        return statistics.median(self.lost) / (self.threads * self.increments)

    @property
    def runs_that_lost(self) -> int:
        return sum(n > 0 for n in self.lost)

    def __str__(self) -> str:
        lock = "with the lock" if self.locked else "no lock"
        return (
            f"{self.threads} threads x {self.increments:,} increments, {lock}: "
            f"{self.runs_that_lost} of {len(self.lost)} runs lost updates; "
            f"lost per run: {', '.join(f'{n:,}' for n in self.lost)}"
        )


def lost_updates(
    threads: int = 4, increments: int = 10_000, locked: bool = False, runs: int = 5
) -> LostUpdates:
    """Run chapter 0's counter on real threads ``runs`` times and count what each run lost."""
    validate.whole("runs", runs, 1, 100)
    program = counter_program(threads, increments, locked=locked)
    lost = []
    for _ in range(runs):
        r = run_real(program, time_limit_s=60)
        lost.append(threads * increments - r.values["counter"])
    return LostUpdates(threads, increments, locked, lost)


def abba_program(sim: Simulation) -> None:
    """Chapter 0's two locks in opposite orders, made certain: T1 takes A and T2 takes B, each
    tells the other (a semaphore) and waits to hear the same, then asks for the other lock."""
    a, b = QemuMutex(sim, "A"), QemuMutex(sim, "B")
    has_a, has_b = QemuSemaphore(sim, "has_a"), QemuSemaphore(sim, "has_b")

    def t1():
        yield a.lock()
        yield has_a.post()
        yield has_b.wait()
        yield b.lock()
        yield b.unlock()
        yield a.unlock()

    def t2():
        yield b.lock()
        yield has_b.post()
        yield has_a.wait()
        yield a.lock()
        yield a.unlock()
        yield b.unlock()

    sim.spawn("T1", t1)
    sim.spawn("T2", t2)


def devices_program(
    vcpus: int = 2,
    exits: int = 200,
    guest_us: float = 20,
    emulation_us: float = 80,
    per_device: bool = False,
) -> Callable[[Simulation], None]:
    """vCPU threads, each running guest code (``guest_us``) then emulating an exit
    (``emulation_us``) ``exits`` times. The emulation holds the one BQL, or, with
    ``per_device``, the lock of the vCPU's own device: chapter 2's question on real cores."""
    validate.whole("vcpus", vcpus, 1, MAX_THREADS)
    validate.whole("exits", exits, 1, 100_000)
    validate.duration("guest_us", guest_us)
    validate.duration("emulation_us", emulation_us)

    def program(sim: Simulation) -> None:
        bql = QemuMutex(sim, "bql")
        devices = [QemuMutex(sim, f"dev{i}") for i in range(vcpus)]

        def vcpu(i):
            lock = devices[i] if per_device else bql
            for _ in range(exits):
                yield compute(guest_us)
                yield lock.lock()
                yield compute(emulation_us)
                yield lock.unlock()

        for i in range(vcpus):
            sim.spawn(f"vcpu{i}", vcpu, i)

    return program


@dataclass
class Speedup:
    """Wall time of ``devices_program`` with one BQL and with a lock per device."""

    vcpus: int
    bql_s: float
    per_device_s: float
    gil: bool

    @property
    def ratio(self) -> float:
        return self.bql_s / self.per_device_s

    def __str__(self) -> str:
        where = "with the GIL" if self.gil else "free-threaded"
        return (
            f"{self.vcpus} vCPU threads, {where}: one BQL {self.bql_s * 1000:.0f} ms, "
            f"a lock per device {self.per_device_s * 1000:.0f} ms: {self.ratio:.2f}x"
        )


def bql_against_device_locks(vcpus: int = 2, exits: int = 200) -> Speedup:
    """The median of three runs of each (wall clock on this machine's cores)."""

    def wall(per_device: bool) -> float:
        program = devices_program(vcpus, exits, per_device=per_device)
        runs: list[RealResult] = [run_real(program, time_limit_s=60) for _ in range(3)]
        return statistics.median(r.wall_s for r in runs)

    return Speedup(vcpus, wall(False), wall(True), gil_enabled())


# -- the free-threaded interpreter --------------------------------------------------------------
#: Where ``make freethreaded`` puts the free-threaded interpreter's venv.
FREETHREADED_VENV = Path(__file__).resolve().parents[3] / ".venv-ft"
#: Results measured on a free-threaded CPython, kept for a machine that has none.
STORED = Path(__file__).with_name("freethreaded.json")

_MEASURE = """
import json, platform, sys, os
from labsupport.chapters.ch09.scenarios import (
    bql_against_device_locks, lost_updates, plain_python_counter)
plain = [plain_python_counter(4, 1_000_000) for _ in range(3)]
unlocked = lost_updates(4, 10_000)
locked = lost_updates(4, 10_000, locked=True, runs=3)
speed = bql_against_device_locks(2, 200)
print(json.dumps(dict(
    python=platform.python_version() + (" free-threaded" if "t" in sys.abiflags else ""),
    gil=sys._is_gil_enabled() if hasattr(sys, "_is_gil_enabled") else True,
    cpus=os.cpu_count(), plain_lost=plain, unlocked_lost=unlocked.lost,
    locked_lost=locked.lost, bql_s=speed.bql_s, per_device_s=speed.per_device_s)))
"""


def freethreaded_python() -> Path | None:
    """The free-threaded interpreter ``make freethreaded`` set up (or ``$FREETHREADED_PYTHON``)."""
    given = os.environ.get("FREETHREADED_PYTHON")
    for candidate in (Path(given) if given else None, FREETHREADED_VENV / "bin" / "python"):
        if candidate is not None and candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass
class FreeThreaded:
    """Chapter 0's counter and chapter 2's locks on a free-threaded interpreter: measured now
    (``stored`` False) or read from the results kept with the course (``stored`` True)."""

    python: str
    gil: bool
    cpus: int
    plain_lost: list[int]
    unlocked_lost: list[int]
    locked_lost: list[int]
    bql_s: float
    per_device_s: float
    stored: bool
    measured: str = ""  # for stored results: when and where

    def __str__(self) -> str:
        where = (
            f"STORED results, measured {self.measured} (not this run)"
            if self.stored
            else "measured now on this machine"
        )
        plain = ", ".join(f"{n:,}" for n in self.plain_lost)
        unlocked = ", ".join(f"{n:,}" for n in self.unlocked_lost)
        return "\n".join(
            [
                f"CPython {self.python}, GIL {'on' if self.gil else 'off'}, {self.cpus} CPUs: "
                f"{where}",
                f"  counter += 1, 4 threads x 1,000,000: lost {plain} (run by run)",
                f"  chapter 0's counter on run_real, no lock: lost {unlocked} of 40,000",
                f"  with the lock: lost {', '.join(map(str, self.locked_lost))}",
                f"  2 vCPUs: one BQL {self.bql_s * 1000:.0f} ms, a lock per device "
                f"{self.per_device_s * 1000:.0f} ms: {self.bql_s / self.per_device_s:.2f}x",
            ]
        )


def freethreaded_results(measure: bool = True, timeout_s: float = 120) -> FreeThreaded:
    """Measure on the free-threaded interpreter if there is one (and ``measure``), else return
    the stored results, labelled as such."""
    validate.flag("measure", measure)
    python = freethreaded_python() if measure else None
    if python is not None:
        out = subprocess.run(
            [str(python), "-c", _MEASURE],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        )
        return FreeThreaded(**json.loads(out.stdout.strip().splitlines()[-1]), stored=False)
    data = json.loads(STORED.read_text(encoding="utf-8"))
    return FreeThreaded(**data, stored=True)
