"""The course's performance budgets, each measured as a ratio within one run.

Prints one ``name: value`` line per figure. Ratios compare two things measured on this machine
in the same run, so they travel between machines; the absolute rates printed after them are
labelled as this machine's and are for context only. Usage: ``python bench/run.py [--quick]``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import io
import os
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

GOALS = {
    "mutex_handoff_vs_simpy": ">= 0.6 (tracing off; .traced is the same with the stream on)",
    "trace_overhead": "<= 1.5",
    "trace_bytes_per_event": "<= 100",
    "widget_update_ms.*": "< 200 (median, one per chapter)",
}


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


def chapter_widgets() -> list[tuple[str, object]]:
    """Every chapter's widget: ``counter_lab`` for chapter 0, ``lab`` in ``widgets_chNN``."""
    from labsupport.chapters.ch00.widgets import counter_lab

    found = [("ch00", counter_lab)]
    for path in sorted((ROOT / "labsupport").glob("widgets_ch*.py")):
        module = importlib.import_module(f"labsupport.{path.stem}")
        found.append((path.stem.split("_")[1], module.lab))
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    args = ap.parse_args()
    scale = 10 if args.quick else 1
    n = 20_000 // scale
    repeat = 3 if args.quick else 5

    t_simpy = best_of(lambda: simpy_pingpong(n), repeat)
    t_mutex = best_of(lambda: mutex_pingpong(n, trace=False), repeat)
    t_traced = best_of(lambda: mutex_pingpong(n, trace=True), repeat)
    simpy_rate = 2 * n / t_simpy
    mutex_rate = 2 * n / t_mutex
    traced_rate = 2 * n / t_traced
    print(f"mutex_handoff_vs_simpy: {mutex_rate / simpy_rate:.2f}")
    print(f"mutex_handoff_vs_simpy.traced: {traced_rate / simpy_rate:.2f}")

    t_off = best_of(lambda: contended_workload(False), repeat)
    t_on = best_of(lambda: contended_workload(True), repeat)
    print(f"trace_overhead: {t_on / t_off:.2f}")

    per_event, events = trace_bytes(1_000_000 // scale)
    print(f"trace_bytes_per_event: {per_event:.1f}")

    for chapter, factory in chapter_widgets():
        wms = widget_ms(factory, 11 if not args.quick else 5)
        print(f"widget_update_ms.{chapter}: {wms:.1f}")

    print("# goals: " + "; ".join(f"{k} {v}" for k, v in GOALS.items()))
    print(
        f"# this machine: SimPy Resource ping-pong {simpy_rate:,.0f} hand-offs/s; "
        f"QemuMutex {mutex_rate:,.0f} hand-offs/s ({traced_rate:,.0f} with tracing on); "
        f"{events:,} events recorded for the bytes-per-event figure"
    )


if __name__ == "__main__":
    main()
