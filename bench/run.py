"""The course's performance budgets, each measured as a ratio within one run.

Prints one ``name: value`` line per figure. Ratios compare two things measured on this machine
in the same run, so they travel between machines; the absolute rates printed after them are
labelled as this machine's and are for context only. The ``_ms`` figures are budgets in
milliseconds: how long a learner waits (a widget update, a model measured once).
Usage: ``python bench/run.py [--quick] [--check]``; with ``--check`` every printed figure that
has a goal in ``GOALS`` is held to it, and the run exits with status 1 if any misses.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import gc
import importlib
import io
import os
import re
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import simpy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")
import matplotlib.pyplot as plt  # noqa: E402

from labsupport import QemuMutex, Shared, Simulation, compute, metrics, sleep  # noqa: E402
from labsupport.kernel import run  # noqa: E402
from labsupport.qemu.multiqueue import VM, measure  # noqa: E402

# The one table of goals: a key names a printed figure (``*`` matches any suffix, as in
# fnmatch); a value is a comparison and a number, then any comment. ``--check`` parses these
# very strings, so what the goals line says is what is checked.
GOALS = {
    "mutex_handoff_vs_simpy": ">= 0.6 (tracing off; .traced is the same with the stream on)",
    "trace_overhead": "<= 1.5",
    "trace_bytes_per_event": "<= 100",
    "widget_update_ms.*": "< 200 (median, one per chapter)",
    "multiqueue_measure_ms": "< 1000 (median, measure(VM(iothreads=8)))",
}

_GOAL = re.compile(r"\s*(<=|>=|<|>)\s*([0-9]+(?:\.[0-9]*)?)(?:\s.*)?$")
_COMPARE = {
    "<": lambda v, g: v < g,
    "<=": lambda v, g: v <= g,
    ">": lambda v, g: v > g,
    ">=": lambda v, g: v >= g,
}


def parse_goal(text: str) -> tuple[str, float]:
    """``"< 200 (median)"`` -> ``("<", 200.0)``: the comparison and the number a goal opens with."""
    m = _GOAL.match(text)
    if not m:
        raise ValueError(f"a goal opens with <, <=, > or >= and a number; got {text!r}")
    return m.group(1), float(m.group(2))


def check(figures: dict[str, str], goals: dict[str, str] = GOALS) -> list[str]:
    """The misses among ``figures`` (name -> the value as printed): one ``FAIL`` line for each
    figure that misses the goal its name matches, and for each goal that matched no figure (a
    budget nobody measured is not met). An empty list means every goal was met."""
    parsed = {pattern: parse_goal(text) for pattern, text in goals.items()}
    misses = []
    for pattern, (op, goal) in parsed.items():
        names = [n for n in figures if fnmatch.fnmatchcase(n, pattern)]
        if not names:
            misses.append(f"FAIL {pattern}: no figure printed, goal {op} {goal:g}")
        for name in names:
            value = float(figures[name])
            if not _COMPARE[op](value, goal):  # NaN compares false: a miss
                misses.append(f"FAIL {name}: {figures[name]}, goal {op} {goal:g}")
    return misses


def best_of(fn, repeat: int) -> float:
    """The fastest of ``repeat`` timings of ``fn()`` in seconds (the least disturbed one)."""
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def simpy_pingpong(n: int) -> None:
    env = simpy.Environment()
    res = simpy.Resource(env, capacity=1)

    def proc():
        for _ in range(n):
            req = res.request()
            yield req
            yield env.timeout(1)
            res.release(req)

    env.process(proc())
    env.process(proc())
    env.run()


def mutex_pingpong(n: int, trace: bool = True) -> Simulation:
    sim = Simulation(trace=trace)
    m = QemuMutex(sim, "m")

    def body():
        for _ in range(n):
            yield m.lock()
            yield sleep(1)
            yield m.unlock()

    sim.spawn("a", body)
    sim.spawn("b", body)
    r = sim.run()
    assert r.ok and r.time == 2 * n
    return sim


def contended_workload(trace: bool) -> None:
    def program(sim):
        counter = Shared(sim, "counter", 0)
        lock = QemuMutex(sim, "lock")

        def worker():
            for _ in range(400):
                yield lock.lock()
                yield counter.increment()
                yield compute(2)
                yield lock.unlock()
                yield compute(3)
                sim.mark("iteration")

        for i in range(4):
            sim.spawn(f"T{i}", worker)

    r = run(program, cpus=2, policy="random", seed=1, trace=trace)
    if trace:
        metrics(r)


def trace_bytes(events_wanted: int) -> tuple[float, int]:
    n = events_wanted // 8  # about 8 events per iteration of the ping-pong below
    tracemalloc.start()
    sim = mutex_pingpong(n, trace=True)
    snap = tracemalloc.take_snapshot()
    tracemalloc.stop()
    mine = snap.filter_traces([tracemalloc.Filter(True, "*tracebuf.py")])
    held = sum(s.size for s in mine.statistics("filename"))
    return held / len(sim.trace), len(sim.trace)


def widget_ms(factory, repeat: int) -> float:
    """Median time to move a widget's first slider one step (re-simulate and redraw)."""
    times = []
    with contextlib.redirect_stdout(io.StringIO()):  # the widgets print their tables
        w = factory()
        slider = next(c for c in w.children if hasattr(c, "max") and hasattr(c, "value"))
        for _ in range(repeat):
            t0 = time.perf_counter()
            slider.value = slider.value + 1 if slider.value < slider.max else slider.min
            times.append((time.perf_counter() - t0) * 1000)
    plt.close("all")
    return statistics.median(times)


def measure_ms(repeat: int) -> float:
    """Median time of one ``measure(VM(iothreads=8))``, chapter 7's largest default model."""
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        measure(VM(iothreads=8))
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def chapter_widgets() -> list[tuple[str, object]]:
    """Every chapter's widget: ``lab`` in ``labsupport/chapters/chNN/widgets.py`` (chapter 0's
    is ``counter_lab``)."""
    found = []
    for path in sorted((ROOT / "labsupport" / "chapters").glob("ch*/widgets.py")):
        chapter = path.parent.name
        module = importlib.import_module(f"labsupport.chapters.{chapter}.widgets")
        found.append((chapter, getattr(module, "lab", None) or module.counter_lab))
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    ap.add_argument(
        "--check",
        action="store_true",
        help="hold every figure to its goal; exit with status 1 if any misses",
    )
    args = ap.parse_args()
    figures: dict[str, str] = {}

    def report(name: str, value: str) -> None:
        figures[name] = value
        print(f"{name}: {value}")

    scale = 10 if args.quick else 1
    n = 20_000 // scale
    repeat = 3 if args.quick else 5

    t_simpy = best_of(lambda: simpy_pingpong(n), repeat)
    t_mutex = best_of(lambda: mutex_pingpong(n, trace=False), repeat)
    t_traced = best_of(lambda: mutex_pingpong(n, trace=True), repeat)
    simpy_rate = 2 * n / t_simpy
    mutex_rate = 2 * n / t_mutex
    traced_rate = 2 * n / t_traced
    report("mutex_handoff_vs_simpy", f"{mutex_rate / simpy_rate:.2f}")
    report("mutex_handoff_vs_simpy.traced", f"{traced_rate / simpy_rate:.2f}")

    t_off = best_of(lambda: contended_workload(False), repeat)
    t_on = best_of(lambda: contended_workload(True), repeat)
    report("trace_overhead", f"{t_on / t_off:.2f}")

    per_event, events = trace_bytes(1_000_000 // scale)
    report("trace_bytes_per_event", f"{per_event:.1f}")

    for chapter, factory in chapter_widgets():
        wms = widget_ms(factory, 11 if not args.quick else 5)
        report(f"widget_update_ms.{chapter}", f"{wms:.1f}")

    report("multiqueue_measure_ms", f"{measure_ms(repeat):.1f}")

    print("# goals: " + "; ".join(f"{k} {v}" for k, v in GOALS.items()))
    print(
        f"# this machine: SimPy Resource ping-pong {simpy_rate:,.0f} hand-offs/s; "
        f"QemuMutex {mutex_rate:,.0f} hand-offs/s ({traced_rate:,.0f} with tracing on); "
        f"{events:,} events recorded for the bytes-per-event figure"
    )
    if args.check:
        misses = check(figures)
        for line in misses:
            print(line)
        if misses:
            print(f"# check: {len(misses)} goal(s) missed")
            sys.exit(1)
        checked = sum(any(fnmatch.fnmatchcase(n, p) for p in GOALS) for n in figures)
        print(f"# check: all {checked} figures with a goal met it")


if __name__ == "__main__":
    main()
