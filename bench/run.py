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
import inspect
import io
import itertools
import linecache
import os
import re
import statistics
import subprocess
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
from labsupport.analysis import explore  # noqa: E402
from labsupport.chapters.ch00.classics import indexer, lastzero, lost_update  # noqa: E402
from labsupport.kernel import run  # noqa: E402
from labsupport.qemu.multiqueue import VM, measure  # noqa: E402
from labsupport.real import gil_enabled  # noqa: E402

# The one table of goals: a key names a printed figure (``*`` matches any suffix, as in
# fnmatch); a value is a comparison and a number, then any comment. ``--check`` parses these
# very strings, so what the goals line says is what is checked.
GOALS = {
    "mutex_handoff_vs_simpy": ">= 0.6 (tracing off; .traced is the same with the stream on)",
    "trace_overhead": "<= 1.5",
    "trace_bytes_per_event": "<= 100",
    "widget_update_ms.*": "< 200 (median, one per chapter)",
    "multiqueue_measure_ms": "< 1000 (median, measure(VM(iothreads=8)))",
    "trace_table_mb_1m": "< 50 (tracemalloc peak: 200 rows of a million mutex hand-offs)",
    "widget_worst_ms.*": "< 300 (median, each chapter's view at its slowest slider corner)",
    "notebook_run_s.*": "< 10 (Run All of each chapter in a fresh kernel)",
    "notebooks_total_s": "< 90 (make test-notebooks: nbval over every notebook, one per CPU)",
    "stepper_move_ms.*": "< 200 (median of a level's clicks: every step to the end, every undo)",
    "stepper_show_me_ms.*": "< 1000 (show me: the explorer's shortest win, found and played)",
    "check_worst_s": "< 5 (slowest check() verdict: right, wrong and runaway answers)",
    "runaway_stop_s": "< 3 (time_limit_s=2: the worst of a Python, a time and a zero-time loop)",
    "explore_lost_update_s": "< 0.1 (2-thread lost update, every schedule, optimal DPOR)",
    "explore_reduction.lastzero4": ">= 10 (interleavings / runs with optimal DPOR)",
    "explore_s.*": "< 10 (complete optimal explorations; stretch 3)",
    "real_watchdog_s": "< 3 (a real ABBA deadlock on host threads: start to report, all ended)",
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


def trace_table_mb(handoffs: int) -> float:
    """Peak memory (MB, tracemalloc) of ``trace_table(sim, max_rows=200)`` on a run of
    ``handoffs`` traced mutex hand-offs; the run itself is made before measuring."""
    from labsupport import trace_table

    sim = mutex_pingpong(handoffs // 2, trace=True)
    gc.collect()
    tracemalloc.start()
    trace_table(sim, max_rows=200)
    _now, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1e6


def _extremes(control) -> list:
    """The values a control's corners take: a slider's min and max, a checkbox's two states,
    every option of a dropdown; a ``fixed`` value is itself."""
    value = getattr(control, "value", None)
    if isinstance(value, bool):
        return [False, True]
    if hasattr(control, "min") and hasattr(control, "max"):
        return [control.min, control.max]
    if hasattr(control, "options"):
        return [o[1] if isinstance(o, tuple) else o for o in control.options]
    return [value]


def widget_worst_ms(factory, repeat: int) -> tuple[float, dict]:
    """The median time of a chapter's widget view at its slowest corner: every combination of
    its controls' extremes is run once (printing and drawing, as the widget does), then the
    slowest again, ``repeat`` times. A widget that is not ``interactive`` (chapter 5's stepper)
    has one slider: its corners are its two ends, reached by moving it there."""
    with contextlib.redirect_stdout(io.StringIO()):
        w = factory()
        if hasattr(w, "kwargs_widgets"):
            names = [c._kwarg for c in w.kwargs_widgets]
            corners = [
                dict(zip(names, combo))
                for combo in itertools.product(*(_extremes(c) for c in w.kwargs_widgets))
            ]

            def view(kw):
                w.f(**kw)
        else:
            slider = next(c for c in w.children if hasattr(c, "max") and hasattr(c, "value"))
            corners = [{"value": slider.min}, {"value": slider.max}]

            def view(kw):
                slider.value = slider.min if kw["value"] != slider.min else slider.max
                slider.value = kw["value"]

        def timed(kw) -> float:
            t0 = time.perf_counter()
            view(kw)
            took = (time.perf_counter() - t0) * 1000
            plt.close("all")
            return took

        view(corners[0])  # warm up (imports, caches)
        plt.close("all")
        once = [(timed(kw), kw) for kw in corners]
        worst = max(once, key=lambda x: x[0])[1]
        times = [timed(worst) for _ in range(repeat)]
    return statistics.median(times), worst


def _wrong_answers(right) -> list:
    """A few wrong answers shaped like ``right``: a function that does nothing for a function,
    a generator function that yields nothing for a generator function, None and a nearby
    number for a number, an empty value for a collection or a string."""
    if inspect.isgeneratorfunction(right):

        def nothing(*_args, **_kwargs):
            yield from ()

        return [nothing]
    if callable(right):
        return [lambda *_args, **_kwargs: None]
    wrong: list = [None]
    if isinstance(right, (int, float)) and not isinstance(right, bool):
        wrong.append(right + 1)
    elif isinstance(right, (str, list, tuple, dict, set)):
        wrong.append(type(right)())
    return wrong


def _runaway(*_args, **_kwargs):
    """A runaway answer to a generator-style exercise: it loops for ever before its first step
    (a ``while not done:`` whose condition never changes), so only the run's wall-clock budget
    (``kernel.time_budget``, which ``check()`` sets) stops it."""
    while True:
        pass
    yield  # a generator function, like the answers it stands in for


def check_worst_s(runaway: bool) -> tuple[float, str, float, str]:
    """The slowest ``check()`` verdict over every exercise: the answers ``solutions/`` gives
    (each solution notebook's code run, its ``check`` calls timed), then wrong answers shaped
    like them; with ``runaway``, one answer that loops for ever per generator-style exercise,
    timed apart. Returns (worst seconds, its question and kind, worst runaway seconds, its
    question)."""
    import nbformat

    import labsupport
    import labsupport.exercises as ex

    real = ex.check
    answers: dict[str, object] = {}
    times: list[tuple[float, str]] = []

    def timed_check(qid, answer, *, quiet=False):
        answers.setdefault(qid, answer)
        t0 = time.perf_counter()
        try:
            return real(qid, answer, quiet=True)
        finally:
            times.append((time.perf_counter() - t0, f"{qid} right"))

    ex.check = labsupport.check = timed_check
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            for path in sorted((ROOT / "solutions").glob("*.ipynb")):
                ns: dict = {"__name__": "solutions"}
                for n, cell in enumerate(nbformat.read(path, as_version=4).cells):
                    if cell.cell_type == "code" and "### BEGIN HIDDEN TESTS" not in cell.source:
                        # each cell a file of its own, for inspect.getsource (the static TSA
                        # pass reads an answer's source), as Jupyter does
                        name = f"<{path.stem} cell {n}>"
                        src = cell.source + "\n"
                        linecache.cache[name] = (len(src), None, src.splitlines(True), name)
                        exec(compile(src, name, "exec"), ns)
                plt.close("all")
    finally:
        ex.check, labsupport.check = real, real
    runaways: list[tuple[float, str]] = [(0.0, "none")]
    with contextlib.redirect_stdout(io.StringIO()):
        for qid, right in answers.items():
            wrong = _wrong_answers(right)
            if runaway and inspect.isgeneratorfunction(right):
                t0 = time.perf_counter()
                real(qid, _runaway, quiet=True)
                runaways.append((time.perf_counter() - t0, f"{qid} runaway"))
            for answer in wrong:
                t0 = time.perf_counter()
                with contextlib.suppress(Exception):  # a verdict or a refusal: timed alike
                    real(qid, answer, quiet=True)
                times.append((time.perf_counter() - t0, f"{qid} wrong"))
            plt.close("all")
    worst, what = max(times)
    worst_runaway, which = max(runaways)
    return worst, what, worst_runaway, which


def notebook_run_s(path: Path) -> float:
    """Seconds to run every cell of ``path`` in a fresh kernel (kernel start included), as Run
    All does; the file is not written."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        allow_errors=True,  # an exercise's stubs and graded cells fail by design
        resources={"metadata": {"path": str(path.parent)}},
    )
    t0 = time.perf_counter()
    client.execute()
    return time.perf_counter() - t0


def notebook_runs() -> tuple[dict[str, float], float]:
    """Each chapter's Run All time (one at a time), and the wall time of ``make
    test-notebooks``: nbval over every notebook, solution and exercise, one notebook per CPU."""
    chapters = {}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        chapters[path.stem.split("-")[0] + "-" + path.stem.split("-")[1]] = notebook_run_s(path)
    t0 = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the notebooks' own
    done = subprocess.run(
        ["make", "--no-print-directory", "test-notebooks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"make test-notebooks failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
        )
    return chapters, time.perf_counter() - t0


def stepper_ms(level) -> tuple[float, float]:
    """A "be the scheduler" level as its widget is clicked: the median time of a move (the
    first thread that can move, step after step to the end of the run, then undo after undo
    back to the start), and the time of "show me" on a fresh widget (explorer and replay)."""
    from labsupport.stepper import lab

    box = lab(level)
    times = []

    def click(button) -> None:
        t0 = time.perf_counter()
        button.click()
        times.append((time.perf_counter() - t0) * 1000)

    while box.stepper.view.status == "choose":
        click(box.buttons[box.stepper.view.movable[0][0]])
    while box.stepper.schedule:
        click(box.undo_button)
    fresh = lab(level)
    t0 = time.perf_counter()
    fresh.show_button.click()
    show = (time.perf_counter() - t0) * 1000
    return statistics.median(times), show


def scheduler_levels() -> list[tuple[str, object]]:
    """Every chapter's "be the scheduler" level (``scheduler_level`` in its widgets)."""
    found = []
    for path in sorted((ROOT / "labsupport" / "chapters").glob("ch*/widgets.py")):
        module = importlib.import_module(f"labsupport.chapters.{path.parent.name}.widgets")
        if hasattr(module, "scheduler_level"):
            found.append((path.parent.name, module.scheduler_level()))
    return found


def chapter_widgets() -> list[tuple[str, object]]:
    """Every chapter's widget: ``lab`` in ``labsupport/chapters/chNN/widgets.py`` (chapter 0's
    is ``counter_lab``)."""
    found = []
    for path in sorted((ROOT / "labsupport" / "chapters").glob("ch*/widgets.py")):
        chapter = path.parent.name
        module = importlib.import_module(f"labsupport.chapters.{chapter}.widgets")
        found.append((chapter, getattr(module, "lab", None) or module.counter_lab))
    return found


def runaway_stop_s(limit_s: float = 2.0) -> float:
    """Wall seconds until a runaway thread body is stopped with ``time_limit_s=limit_s``: the
    worst of a pure-Python loop (the alarm), a loop that advances time (the clock every few
    thousand steps) and a zero-time loop (the per-instant step limit)."""
    from labsupport.kernel import RunawayError, note

    def python_loop():
        yield note("start")
        while True:
            pass

    def time_loop():
        while True:
            yield sleep(1)

    def zero_time_loop():
        while True:
            yield note("poll")

    worst = 0.0
    for body in (python_loop, time_loop, zero_time_loop):
        start = time.perf_counter()
        try:
            run(lambda sim, body=body: sim.spawn("runaway", body), time_limit_s=limit_s)
        except RunawayError:
            pass
        worst = max(worst, time.perf_counter() - start)
    return worst


def real_lost_update_rate() -> float:
    """The median share of increments chapter 0's counter loses on real threads, unlocked
    (4 threads x 10,000, 5 runs), on this interpreter."""
    from labsupport.chapters.ch09.scenarios import lost_updates

    return lost_updates(4, 10_000, runs=5).rate


def real_lost_update_rate_freethreaded() -> float | None:
    """The same on the free-threaded interpreter ``make freethreaded`` set up, if there is one."""
    import subprocess

    from labsupport.chapters.ch09.scenarios import freethreaded_python

    python = freethreaded_python()
    if python is None:
        return None
    code = (
        "from labsupport.chapters.ch09.scenarios import lost_updates; "
        "print(lost_updates(4, 10_000, runs=5).rate)"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def real_watchdog_s() -> float:
    """Wall seconds from starting a real ABBA deadlock to ``run_real`` returning its report."""
    from labsupport.chapters.ch09.scenarios import abba_program
    from labsupport.real import run_real

    t0 = time.perf_counter()
    r = run_real(abba_program, time_limit_s=5)
    took = time.perf_counter() - t0
    if r.outcome != "deadlock":
        raise RuntimeError(f"the real ABBA run ended {r.outcome}, not in a deadlock")
    return took


def exhaust(program, reduction: str = "optimal"):
    """Every schedule of ``program``, every run accepted (an exploration to count, not judge)."""
    e = explore(
        program,
        reduction=reduction,
        check=lambda r: None,
        stop="all",
        minimize=False,
        max_runs=None,
        time_limit_s=None,
    )
    assert e.complete, e.summary()
    return e


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

    def report(name: str, value: str, note: str = "") -> None:
        figures[name] = value
        print(f"{name}: {value}" + (f" ({note})" if note else ""))

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

    report("trace_table_mb_1m", f"{trace_table_mb(1_000_000 // scale):.1f}")

    worst_corners = {}
    for chapter, factory in chapter_widgets():
        wms, worst_corners[chapter] = widget_worst_ms(factory, 3 if args.quick else 5)
        report(f"widget_worst_ms.{chapter}", f"{wms:.1f}")

    chapters, total = notebook_runs()
    for name, seconds in chapters.items():
        report(f"notebook_run_s.{name}", f"{seconds:.1f}")
    report("notebooks_total_s", f"{total:.1f}")

    for chapter, level in scheduler_levels():
        move, show = stepper_ms(level)
        report(f"stepper_move_ms.{chapter}", f"{move:.1f}")
        report(f"stepper_show_me_ms.{chapter}", f"{show:.1f}")

    # A runaway answer is stopped by the run's wall-clock budget (check() sets it, with
    # kernel.time_budget): the slowest verdict is the worst of right, wrong and runaway answers.
    worst_s, worst_what, runaway_s, runaway_what = check_worst_s(runaway=True)
    report("check_worst_s", f"{max(worst_s, runaway_s):.2f}")
    report("runaway_stop_s", f"{runaway_stop_s():.2f}")

    # Real threads (chapter 9): what the counter loses, with the GIL and without, and how soon
    # the watchdog reports a real deadlock.
    report(
        "real_lost_update_rate.gil" if gil_enabled() else "real_lost_update_rate.freethreaded",
        f"{real_lost_update_rate():.2f}",
    )
    free = real_lost_update_rate_freethreaded() if gil_enabled() else None
    if free is not None:
        report("real_lost_update_rate.freethreaded", f"{free:.2f}")
    report("real_watchdog_s", f"{statistics.median(real_watchdog_s() for _ in range(3)):.2f}")

    # The explorer: a small exhaustive check, the reduction it buys, and two published
    # benchmarks explored completely (their trace counts printed beside the times).
    report("explore_lost_update_s", f"{best_of(lambda: exhaust(lost_update(2)), repeat):.4f}")
    every, few = exhaust(lastzero(4), "none"), exhaust(lastzero(4))
    report(
        "explore_reduction.lastzero4",
        f"{every.runs / few.runs:.1f}",
        f"{every.runs:,} interleavings, {few.runs:,} runs, {few.traces:,} traces",
    )
    for name, program in [("lastzero10", lastzero(10)), ("indexer15", indexer(15))]:
        t0 = time.perf_counter()
        e = exhaust(program)
        report(f"explore_s.{name}", f"{time.perf_counter() - t0:.2f}", f"{e.traces:,} traces")

    print("# goals: " + "; ".join(f"{k} {v}" for k, v in GOALS.items()))
    print(
        f"# this machine: SimPy Resource ping-pong {simpy_rate:,.0f} hand-offs/s; "
        f"QemuMutex {mutex_rate:,.0f} hand-offs/s ({traced_rate:,.0f} with tracing on); "
        f"{events:,} events recorded for the bytes-per-event figure"
    )
    print(f"# slowest check(): {worst_what}; slowest runaway answer: {runaway_what}")
    for chapter, corner in worst_corners.items():
        print(f"# widget_worst_ms.{chapter} corner: {corner}")
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
