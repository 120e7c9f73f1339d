"""Trace tables stream: only the rows printed are built, so a run of millions of events prints
its first rows in bounded memory; and the table is the one the full build gives, row for row,
width for width, count of the rows left out included. Then present.py's refusals, each naming
its parameter."""

from __future__ import annotations

import tracemalloc

import matplotlib
import pytest

matplotlib.use("Agg")

from labsupport import (  # noqa: E402
    QemuMutex,
    Shared,
    Simulation,
    chrome_trace,
    compute,
    present,  # noqa: E402
    run,
    save_chrome_trace,
    sleep,
    timeline,
    timeline_summary,
    trace_table,
)
from labsupport.chapters.ch00.scenarios import counter_program  # noqa: E402
from labsupport.loop import AioContext, aio_poll  # noqa: E402
from labsupport.present import trace_rows  # noqa: E402


def full_table(x, reveal=True, show_time=True, max_rows=200, width=22) -> str:
    """The trace table built from every row at once: the layout of the first ``max_rows`` of
    ``trace_rows``, with the count of all of them."""
    sim = x.sim if hasattr(x, "sim") else x
    rows = trace_rows(sim, reveal)
    threads = [t.name for t in sim.threads]
    varnames = [o.name for o in sim.objects if getattr(o, "kind", "") == "variable"]
    return present.table_text(
        rows[:max_rows], threads, varnames, len(rows), reveal, show_time, max_rows, width
    )


def pingpong(n: int, trace: bool = True) -> Simulation:
    """Two threads hand a mutex back and forth ``n`` times each (2n hand-offs)."""
    sim = Simulation(trace=trace)
    m = QemuMutex(sim, "m")

    def body():
        for _ in range(n):
            yield m.lock()
            yield sleep(1)
            yield m.unlock()

    sim.spawn("a", body)
    sim.spawn("b", body)
    assert sim.run().ok
    return sim


def mixed(seed: int):
    """Every kind of row: a counter whose digits grow (and one going negative), random compute
    times, contended locks, a one-shot BH, a long-named thread and a short one."""

    def program(sim):
        up = Shared(sim, "up", 0)
        down = Shared(sim, "down", 5)
        lock = QemuMutex(sim, "lock")
        ctx = AioContext(sim, "ctx")
        done = [0]

        def worker(k):
            def body():
                for i in range(40):
                    yield lock.lock()
                    yield up.increment()
                    yield down.store(5 - 7 * i)
                    yield lock.unlock()
                    yield compute(round(sim.rng.uniform(0.1, 30), 3))
                    if i % 9 == 0:
                        yield ctx.bh_schedule_oneshot(lambda: done.__setitem__(0, done[0] + 1))
                done[0] += 100

            return body

        def loop():
            while done[0] < 300:
                yield aio_poll(ctx, True)

        sim.spawn("the-iothread-with-a-long-name", loop)
        for k in range(3):
            sim.spawn(f"T{k}", worker(k))

    return run(program, cpus=2, policy="random", seed=seed)


CASES = [
    dict(),
    dict(reveal=False),
    dict(show_time=False),
    dict(max_rows=1),
    dict(max_rows=7, width=8),
    dict(max_rows=None),
    dict(width=60),
    dict(width=13, reveal=False, max_rows=50),
]


@pytest.mark.parametrize("seed", [0, 3])
def test_the_streamed_table_is_the_full_table(seed):
    r = mixed(seed)
    for kw in CASES:
        assert trace_table(r, **kw) == full_table(r, **kw), kw


def test_waits_read_got_in_the_streamed_table():
    sim = pingpong(30)
    for kw in CASES:
        assert trace_table(sim, **kw) == full_table(sim, **kw), kw


def test_the_counter_tables_of_chapter_0_are_unchanged():
    for threads in (1, 2, 6):
        for seed in range(4):
            r = run(counter_program(threads, 3), policy="random", seed=seed)
            for kw in CASES:
                assert trace_table(r, **kw) == full_table(r, **kw)


def rows_of(n: int) -> int:
    return len(trace_rows(pingpong(n)))


def test_a_big_run_prints_the_rows_of_a_small_one_and_counts_the_rest_in_bounded_memory():
    n = 100_000  # 200,000 hand-offs, a million events
    small = full_table(pingpong(500))
    big_sim = pingpong(n)
    tracemalloc.start()
    try:
        big = trace_table(big_sim)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    cut = [line for line in big.splitlines() if line.startswith("... ")]
    same = [line for line in big.splitlines() if not line.startswith("... ")]
    assert same == [line for line in small.splitlines() if not line.startswith("... ")]
    per_round = rows_of(2) - rows_of(1)  # the rows one more round of hand-offs adds
    expected = rows_of(1) + per_round * (n - 1) - 200
    assert cut == [f"... {expected} more steps (max_rows=200)"]
    assert peak < 200e6  # generous: the rows built to print are 200, not a million


def test_max_rows_none_prints_every_row_and_no_cut_line():
    sim = pingpong(20)
    table = trace_table(sim, max_rows=None)
    assert "more steps" not in table
    steps = [int(line[:4]) for line in table.splitlines()[2:] if line[:4].strip().isdigit()]
    assert steps == list(range(1, len(trace_rows(sim)) + 1))


# -- refusals, each naming the parameter ------------------------------------------------------


@pytest.fixture(scope="module")
def r():
    return run(counter_program(2, 2))


@pytest.mark.parametrize("bad", [-1, 0, 1.5, True, "200"])
def test_max_rows_must_be_none_or_a_whole_number_from_1(r, bad):
    with pytest.raises(ValueError, match=r"^max_rows must be None or a whole number >= 1"):
        trace_table(r, max_rows=bad)


@pytest.mark.parametrize("bad", [0, -5, present.MIN_WIDTH - 1, 22.0, False, "22", None])
def test_width_must_be_a_whole_number_of_at_least_the_minimum(r, bad):
    with pytest.raises(ValueError, match=rf"^width must be a whole number >= {present.MIN_WIDTH}"):
        trace_table(r, width=bad)
    assert trace_table(r, width=present.MIN_WIDTH)


@pytest.mark.parametrize("name", ["reveal", "show_time"])
@pytest.mark.parametrize("bad", [1, 0, None, "yes"])
def test_the_switches_must_be_true_or_false(r, name, bad):
    with pytest.raises(ValueError, match=rf"^{name} must be True or False"):
        trace_table(r, **{name: bad})
    if name == "reveal":
        with pytest.raises(ValueError, match=r"^reveal must be True or False"):
            trace_rows(r, reveal=bad)


@pytest.mark.parametrize("fn", [trace_table, trace_rows, timeline, timeline_summary, chrome_trace])
def test_what_to_show_must_be_a_simulation_or_a_run(fn):
    with pytest.raises(TypeError, match=r"^x must be a Simulation or a RunResult; got 5"):
        fn(5)


def test_timeline_refuses_an_ax_that_is_not_a_matplotlib_axes(r):
    with pytest.raises(TypeError, match=r"^ax must be None or a matplotlib Axes"):
        timeline(r, ax="left")
    with pytest.raises(TypeError, match=r"^title must be None or a string; got 3"):
        timeline(r, title=3)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert timeline(r, title="mine", ax=ax) is fig
    assert ax.get_title() == "mine"
    plt.close("all")


def test_save_chrome_trace_refuses_a_path_that_is_not_a_file_name(r, tmp_path):
    with pytest.raises(TypeError, match=r"^path must be a file name"):
        save_chrome_trace(r, 5)
    with pytest.raises(ValueError, match=r"^path must be a file name"):
        save_chrome_trace(r, "  ")
    with pytest.raises(TypeError, match=r"^x must be a Simulation or a RunResult"):
        save_chrome_trace(None, tmp_path / "t.json")
    assert save_chrome_trace(r, tmp_path / "t.json").exists()


def test_a_run_without_a_trace_is_refused_with_why(r):
    quiet = run(counter_program(2, 2), trace=False)
    for fn in (trace_table, trace_rows, timeline_summary, chrome_trace):
        with pytest.raises(ValueError, match="trace=False"):
            fn(quiet)
