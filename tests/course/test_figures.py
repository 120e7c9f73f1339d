"""Every chapter's figures follow the figure rules, checked on the drawn matplotlib objects.

The rules, one checker each: a log-scaled axis holds no zero or negative data (a point there is
silently dropped); every legend entry names something drawn, with data; tick labels are at least
``MIN_TICK_POINTS``; every bar is named (a tick label or a label on the bar), and never by a bare
chapter number or catalogue id (``ch6``, ``D1``) alone; and a timeline draws, in each sleeping
thread's row, the time it spent blocked in a system call, under a legend entry. Each figure is
drawn by the library function its chapter's cell calls, on small runs that take the same code
paths, with matplotlib's Agg backend. The synthetic figures at the end break one rule each, so
each checker is seen to fail.
"""

from __future__ import annotations

import re
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.collections import Collection, PathCollection  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.text import Annotation  # noqa: E402

from labsupport import QemuMutex, compute, run, sleep, timeline  # noqa: E402
from labsupport import tracebuf as tb  # noqa: E402
from labsupport.qemu import Workload, run_era  # noqa: E402

MIN_TICK_POINTS = 9
#: A bar named only by a chapter number or a catalogue id says nothing to a reader.
BARE_ID = re.compile(r"\s*(?:ch|D|R)\s*\d+\s*")


# -- the checkers --------------------------------------------------------------------------------


def _in_data(artist: Any, ax: Axes) -> tuple[bool, bool]:
    """Whether ``artist``'s x and y coordinates are data coordinates of ``ax`` (an
    ``axhline`` spans the axes: its x is not data)."""
    return artist.get_transform().contains_branch_seperately(ax.transData)


def log_axis_problems(ax: Axes) -> list[str]:
    """Data at or below zero on a log-scaled axis: lines, collections and bars."""
    out = []
    for dim, scale in enumerate((ax.get_xscale(), ax.get_yscale())):
        if scale != "log":
            continue
        name = "xy"[dim]
        for line in ax.get_lines():
            if not _in_data(line, ax)[dim]:
                continue
            data = np.asarray(line.get_xydata(), dtype=float)[:, dim]
            data = data[np.isfinite(data)]
            if (data <= 0).any():
                out.append(f"line {line.get_label()!r}: {name} <= 0 on a log axis")
        for coll in ax.collections:
            if isinstance(coll, PathCollection):  # scatter: the points are offsets
                pts = np.asarray(coll.get_offsets(), dtype=float).reshape(-1, 2)
            elif _in_data(coll, ax)[dim]:
                pts = np.concatenate([p.vertices for p in coll.get_paths()] or [np.zeros((0, 2))])
            else:
                continue
            data = pts[:, dim][np.isfinite(pts[:, dim])]
            if (data <= 0).any():
                out.append(f"collection {coll.get_label()!r}: {name} <= 0 on a log axis")
        for bars in ax.containers:
            if not isinstance(bars, BarContainer):
                continue
            value_dim = 1 if bars.orientation == "vertical" else 0
            for rect, value in zip(bars.patches, bars.datavalues):
                if dim == value_dim:
                    if not value > 0:
                        out.append(f"bar of {float(value):g} on a log axis ({name})")
                else:
                    lo = rect.get_x() if dim == 0 else rect.get_y()
                    if lo <= 0:
                        out.append(f"bar at {name} <= 0 on a log axis")
    return out


def _has_data(artist: Any) -> bool:
    if isinstance(artist, BarContainer):
        return any(p.get_visible() for p in artist.patches)
    if not artist.get_visible():
        return False
    if isinstance(artist, Line2D):
        xy = np.asarray(artist.get_xydata(), dtype=float).reshape(-1, 2)
        return bool(np.isfinite(xy).all(axis=1).any())
    if isinstance(artist, PathCollection):
        return len(artist.get_offsets()) > 0
    if isinstance(artist, Collection):
        return len(artist.get_paths()) > 0
    if isinstance(artist, Patch):
        return True
    return False


def _drawn(ax: Axes) -> list[Any]:
    return [*ax.lines, *ax.collections, *ax.patches, *ax.containers]


def legend_problems(legend: Any, axes: list[Axes]) -> list[str]:
    """Entries of ``legend`` that name nothing drawn with data in ``axes``."""
    if legend is None:
        return []
    out = []
    texts = [t.get_text() for t in legend.get_texts()]
    if len(legend.legend_handles) != len(texts) or any(h is None for h in legend.legend_handles):
        out.append(f"legend {texts}: an entry has no handle")
    for label in texts:
        if not label.strip() or label.startswith("_"):
            out.append(f"legend entry {label!r} has no words")
            continue
        named = [a for ax in axes for a in _drawn(ax) if a.get_label() == label]
        if not any(_has_data(a) for a in named):
            out.append(f"legend entry {label!r} names nothing drawn")
    return out


def tick_problems(ax: Axes) -> list[str]:
    out = []
    for axis in (ax.xaxis, ax.yaxis):
        for label in axis.get_ticklabels(which="both"):
            if label.get_visible() and label.get_text().strip():
                if label.get_fontsize() < MIN_TICK_POINTS:
                    out.append(
                        f"tick label {label.get_text()!r} at {label.get_fontsize():g} pt "
                        f"(< {MIN_TICK_POINTS})"
                    )
    return out


def _tick_names(ax: Axes, dim: int) -> list[tuple[float, str]]:
    """The visible tick labels along ``dim`` (0: x, 1: y) of ``ax`` and of the axes it shares
    that axis with (shared axes name their bars once), as (position, text)."""
    group = ax.get_shared_x_axes() if dim == 0 else ax.get_shared_y_axes()
    out = []
    for a in group.get_siblings(ax):
        axis = a.xaxis if dim == 0 else a.yaxis
        ticks = axis.get_majorticklocs()
        for pos, label in zip(ticks, axis.get_majorticklabels()):
            if label.get_visible() and label.get_text().strip():
                out.append((float(pos), label.get_text()))
    return out


def _text_positions(ax: Axes, dim: int) -> list[tuple[float, str]]:
    """Texts of ``ax`` placed in data coordinates along ``dim``: bar labels and the like."""
    out = []
    for t in ax.texts:
        if not t.get_text().strip():
            continue
        if isinstance(t, Annotation):
            pos = t.xy[dim]
        elif _in_data(t, ax)[dim]:
            pos = t.get_position()[dim]
        else:
            continue
        out.append((float(pos), t.get_text()))
    return out


def bar_problems(ax: Axes) -> list[str]:
    """Bars without a name, and bars named by a bare chapter number or catalogue id."""
    out = []
    for bars in ax.containers:
        if not isinstance(bars, BarContainer):
            continue
        dim = 0 if bars.orientation == "vertical" else 1
        names = _tick_names(ax, dim) + _text_positions(ax, dim)
        for rect in bars.patches:
            lo = rect.get_x() if dim == 0 else rect.get_y()
            hi = lo + (rect.get_width() if dim == 0 else rect.get_height())
            mine = [text for pos, text in names if lo - 1e-9 <= pos <= hi + 1e-9]
            if not mine:
                out.append(f"a bar at {(lo + hi) / 2:g} has no name")
            out += [f"a bar named only {t!r}" for t in mine if BARE_ID.fullmatch(t)]
    return out


def problems(fig: Any) -> list[str]:
    """Every rule broken in ``fig``, in words (an empty list: none)."""
    fig.canvas.draw()
    out = []
    for ax in fig.axes:
        out += log_axis_problems(ax)
        out += legend_problems(ax.get_legend(), [ax])
        out += tick_problems(ax)
        out += bar_problems(ax)
    for legend in fig.legends:
        out += legend_problems(legend, fig.axes)
    return out


def sleeps(result: Any) -> list[tuple[str, float, float]]:
    """(thread, start, end) of every ``sleep()`` of a run: time blocked in a system call."""
    sim = result.sim
    tr = sim.trace
    out = []
    for i in range(len(tr)):
        if tr.kind[i] == tb.SLEEP:
            start = tr.t[i]
            end = min(start + tr.decode(tr.arg[i]), sim.now)
            if end > start:
                out.append((sim.threads[tr.tid[i]].name, start, end))
    return out


#: Words of a legend entry that names time blocked in a system call.
SLEEP_WORDS = re.compile(r"system call|blocked in|asleep|sleep")


def timeline_problems(ax: Axes, result: Any) -> list[str]:
    """Sleeps of ``result`` that the timeline in ``ax`` leaves blank: each must be covered, in
    its thread's row, by a drawn bar under a legend entry that says it is such time (a bar of
    the lock it holds meanwhile does not say what the thread does)."""
    fig = ax.figure
    fig.canvas.draw()
    rows = {
        label.get_text(): pos for pos, label in zip(ax.get_yticks(), ax.yaxis.get_majorticklabels())
    }
    legends = [ax.get_legend(), *fig.legends]
    named = {t.get_text() for leg in legends if leg is not None for t in leg.get_texts()}
    named = {n for n in named if SLEEP_WORDS.search(n)}  # the entry says what the time was
    out = []
    for thread, start, end in sleeps(result):
        y = rows[thread]
        covered = False
        for coll in ax.collections:
            if not coll.get_visible() or not _in_data(coll, ax)[0]:
                continue
            for path in coll.get_paths():
                (x0, y0), (x1, y1) = path.get_extents().get_points()
                if x0 <= start + 1e-6 and x1 >= end - 1e-6 and y0 < y + 0.5 and y1 > y - 0.5:
                    covered = covered or coll.get_label() in named
        if not covered:
            out.append(f"{thread}'s sleep {start:g}-{end:g} us is not drawn under a legend entry")
    return out


# -- small runs that take the chapters' code paths ------------------------------------------------


from labsupport.chapters.ch00.scenarios import busy_program as busy  # noqa: E402


def handler_program(handler_us: float, blocking: bool):
    """Chapter 1's shape: guest slices around a completion handler that computes or blocks in
    ``read()``; ``sim.model`` is the spans to name, as ``slow_handler_program`` keeps them."""

    def program(sim):
        spans = []

        def qemu():
            for k in range(3):
                start = sim.now
                yield compute(100)
                spans.append(("guest", start, sim.now))
                if k == 0:
                    start = sim.now
                    yield sleep(handler_us) if blocking else compute(handler_us)
                    spans.append(("handler", start, sim.now))

        sim.spawn("qemu", qemu)
        return spans

    return program


def syscall_program(sim):
    """A slow io_submit that blocks with a lock held while another thread waits for it."""
    lock = QemuMutex(sim, "ctx")

    def submitter():
        yield lock.lock()
        yield compute(5)
        yield sleep(40)
        yield lock.unlock()

    def monitor():
        yield compute(10)
        yield lock.lock()
        yield compute(5)
        yield lock.unlock()

    sim.spawn("iothread0", submitter)
    sim.spawn("main-loop", monitor)


SHORT = Workload(host_cpus=4, guest_us=100, mmio_emulation_us=5, duration_us=2_000)


def _era(w: Workload, era: str) -> Any:
    return run_era(w, era, trace=False)


def chapter_figures() -> list[tuple[str, Any]]:
    """(name, a function drawing the figure) for every figure of every chapter."""
    from labsupport.catalogue import outcome_table
    from labsupport.chapters.ch01 import figures as f1
    from labsupport.chapters.ch02 import figures as f2
    from labsupport.chapters.ch03 import figures as f3
    from labsupport.chapters.ch04 import figures as f4
    from labsupport.chapters.ch04.scenarios import IOThreadVM, measure_vm
    from labsupport.chapters.ch05 import figures as f5
    from labsupport.chapters.ch05.scenarios import SCENARIOS as CH05
    from labsupport.chapters.ch06 import figures as f6
    from labsupport.chapters.ch07 import figures as f7
    from labsupport.chapters.ch08 import figures as f8
    from labsupport.chapters.ch08.scenarios import COMMON, hunt, measure_eras, story
    from labsupport.qemu.multiqueue import PUBLISHED_REQS_LOCK_IOPS, VM, sweep

    one = Workload(vcpus=3, io_depth=1, timer_period_us=1000, duration_us=3_000)
    dp = Workload(vcpus=3, host_cpus=4, io_depth=4, guest_us=10, io_service_us=20)
    d3_base = IOThreadVM(vcpus=2, io_depth=4, slow_syscall_us=500, monitor_per_s=2_000)
    d3_base = d3_base.replace(duration_us=5_000)
    probs = (0.0, 0.001, 0.01)
    mq = VM(duration_us=300, warmup_us=100)
    counts = [(f"{c:02d}", f"chapter-{c}", 40 + c, c) for c in range(1, 8)]
    return [
        ("ch01 handler timelines", lambda: f1.handler_timelines(
            {f"{u} us{' in read()' * b}": run(handler_program(u, b)) for u, b in
             ((5, False), (300, False), (300, True))})),
        ("ch01 guest work", lambda: f1.guest_work_by_vcpus(
            (1, 2), [_era(one.replace(io_depth=0, vcpus=n), "one-thread").guest_cpus_busy
                     for n in (1, 2)], 4)),
        ("ch01 latency", lambda: f1.latency_by_slice(
            (50, 200), [_era(one.replace(slice_us=s), "one-thread") for s in (50, 200)],
            [200, 800])),
        ("ch01 shares", lambda: f1.handler_shares((0, 50), [(0.8, 0.1, 0.1), (0.6, 0.1, 0.3)])),
        ("ch02 guest work", lambda: f2.guest_work_by_vcpus(
            {n: _era(SHORT.replace(vcpus=n), "kvm") for n in (1, 2)}, 4)),
        ("ch02 exits", lambda: f2.exits_and_bql_waits(
            {g: _era(SHORT.replace(vcpus=2, guest_us=g), "kvm") for g in (200, 20)}, 200_000)),
        ("ch02 tcg", lambda: f2.tcg_vs_mttcg(
            {e: {n: _era(SHORT.replace(vcpus=n), e) for n in (1, 2)}
             for e in ("tcg-rr", "mttcg")}, 4)),
        ("ch03 timelines", lambda: f3.two_paths_timelines(
            run_era(dp.replace(duration_us=100), "kvm"),
            run_era(dp.replace(duration_us=100), "dataplane"))),
        ("ch03 sweep", lambda: f3.sweep_panels((10, 100), {
            g: (_era(dp.replace(guest_us=g, duration_us=2_000), "kvm"),
                _era(dp.replace(guest_us=g, duration_us=2_000), "dataplane"))
            for g in (10, 100)})),
        ("ch04 eras", lambda: f4.era_panels((2, 3), {
            e: {n: _era(dp.replace(vcpus=n, duration_us=2_000), e) for n in (2, 3)}
            for e in ("kvm", "iothread")})),
        ("ch04 monitor", lambda: f4.monitor_latency(probs, {
            (p, lock): measure_vm(
                d3_base.replace(slow_syscall_prob=p, monitor_takes_context_lock=lock))
            for p in probs for lock in (True, False)}, 500)),
        ("ch05 failed runs", lambda: f5.failed_runs(outcome_table(CH05, 3), 3)),
        ("ch06 writer wait", lambda: f6.writer_wait_by_rate(
            (10, 50, 100), [{"no drain": 0.0, "with drain": 0.0},
                            {"no drain": 235.0, "with drain": 72.0},
                            {"no drain": 2275.0, "with drain": 63.0}])),
        ("ch07 iothreads", lambda: f7.iops_by_iothreads((1, 2), {
            "8 host CPUs": sweep(mq, "iothreads", [1, 2]),
            "4 host CPUs": sweep(mq.replace(host_cpus=4), "iothreads", [1, 2])})),
        ("ch07 queues", lambda: f7.iops_by_queues(
            (1, 2, 4), sweep(mq.replace(iothreads=2), "num_queues", [1, 2, 4]))),
        ("ch07 reqs_lock", lambda: f7.reqs_lock_comparison((8, 32), {
            k: sweep(mq.replace(iothreads=2, reqs_lock=k), "iodepth", [8, 32])
            for k in ("CoMutex", "QemuMutex")}, PUBLISHED_REQS_LOCK_IOPS)),
        ("ch08 eras", lambda: f8.era_bars(measure_eras(COMMON.replace(duration_us=5_000)))),
        ("ch08 locking lines", lambda: f8.locking_lines_by_era(counts)),
        ("ch08 story", lambda: f8.story_panels(
            story(measure_eras(COMMON.replace(duration_us=5_000)), hunt(seeds=1),
                  {int(c[0]): c[3] for c in counts}))),
    ]  # fmt: skip


def widget_figures() -> list[tuple[str, Any]]:
    """The figures the chapters' widgets draw."""
    from labsupport.chapters.ch06 import widgets as w6
    from labsupport.chapters.ch07 import widgets as w7
    from labsupport.qemu.multiqueue import VM, measure

    def ch06_lab():
        w6.view(reader_rate=40, iothreads=2, plot=True)
        return plt.gcf()

    return [
        ("ch06 lab", ch06_lab),
        ("ch07 lab", lambda: w7.draw(measure(VM(iothreads=2, duration_us=300, warmup_us=100)))),
    ]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# -- the chapters' figures follow the rules ------------------------------------------------------


@pytest.mark.parametrize("name, draw", chapter_figures() + widget_figures(), ids=lambda x: x)
def test_every_chapter_figure_follows_the_rules(name, draw, capsys):
    fig = draw()
    assert problems(fig) == [], name


TIMELINE_RUNS = {
    "ch00 busy": lambda: run(busy, cpus=2, policy="random", seed=4),
    "a slow system call": lambda: run(syscall_program, cpus=2),
    "ch01 blocking read": lambda: run(handler_program(300, True)),
    "ch03 BQL path": lambda: run_era(SHORT.replace(vcpus=2, duration_us=100), "kvm").result,
}


@pytest.mark.parametrize("name", list(TIMELINE_RUNS))
def test_a_timeline_draws_every_kind_of_time_and_names_only_what_it_drew(name):
    r = TIMELINE_RUNS[name]()
    fig = timeline(r, sleep_label="blocked in a system call")
    assert problems(fig) == []
    assert timeline_problems(fig.axes[0], r) == []


def test_the_chapter_1_timelines_draw_the_blocking_read():
    from labsupport.chapters.ch01.figures import handler_timelines

    runs = {"blocking": run(handler_program(300, True)), "quick": run(handler_program(5, False))}
    fig = handler_timelines(runs)
    assert sleeps(runs["blocking"]) == [("qemu", 100, 400)]
    for ax, r in zip(fig.axes, runs.values()):
        assert timeline_problems(ax, r) == []
    words = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "blocked in read() (no CPU)" in words and "running on a CPU" in words


def test_the_retrospective_names_eras_and_says_what_was_not_measured():
    from labsupport.chapters.ch08.figures import era_names, story_panels
    from labsupport.chapters.ch08.scenarios import COMMON, measure_eras, story

    rows = measure_eras(COMMON.replace(duration_us=5_000))
    fig = story_panels(story(rows, [], {}))
    names = [t.get_text().replace("\n", " ") for t in fig.axes[0].get_yticklabels()]
    assert names == list(era_names().values())
    assert not any(re.search(r"\bch\d", n) for n in names)
    texts = [t.get_text() for ax in fig.axes[:3] for t in ax.texts]
    assert texts.count("not measured") == 3  # chapter 6's era, in each of the three panels


# -- each checker fails on a figure that breaks its rule ------------------------------------------


def _figure():
    fig, ax = plt.subplots()
    return fig, ax


def test_the_log_axis_checker_sees_a_zero():
    fig, ax = _figure()
    ax.plot([10, 50, 100], [0, 235, 2275], label="no drain")  # chapter 6's old figure
    ax.set_yscale("log")
    assert log_axis_problems(ax) == ["line 'no drain': y <= 0 on a log axis"]
    ax.lines[0].set_ydata([1, 235, 2275])
    assert log_axis_problems(ax) == []
    ax.axvline(0.0)  # in axes coordinates along y: not data
    assert log_axis_problems(ax) == []
    ax.bar([1, 2], [0, 5])
    assert log_axis_problems(ax) == ["bar of 0 on a log axis (y)"]


def test_the_legend_checker_sees_a_proxy_and_an_empty_line():
    fig, ax = _figure()
    ax.plot([0, 1], [0, 1], label="running on a CPU")
    (empty,) = ax.plot([], [], label="waiting")
    ax.legend()
    assert problems(fig) == ["legend entry 'waiting' names nothing drawn"]
    empty.remove()
    proxy = Patch(facecolor="#DDDDDD", hatch="xx", label="waiting")  # the old timeline's
    ax.legend(handles=[ax.lines[0], proxy])
    assert problems(fig) == ["legend entry 'waiting' names nothing drawn"]


def test_the_tick_checker_sees_small_labels():
    fig, ax = _figure()
    ax.bar(["one thread", "dataplane"], [1, 2])
    ax.tick_params(labelsize=7)  # chapter 8's old five panels
    found = problems(fig)
    assert found and all("at 7 pt" in p for p in found)


def test_the_bar_checker_sees_bare_chapter_numbers_ids_and_nameless_bars():
    fig, ax = _figure()
    ax.bar(range(3), [1, 2, 3])
    ax.set_xticks(range(3), ["ch1", "ch2", "ch3"])
    assert bar_problems(ax) == [f"a bar named only 'ch{n}'" for n in (1, 2, 3)]
    fig, ax = _figure()
    ax.bar([-0.2, 0.8], [174, 97], width=0.4)
    ax.set_xticks([0, 1], ["D1", "D2"])  # chapter 5's old labels
    assert bar_problems(ax) == ["a bar named only 'D1'", "a bar named only 'D2'"]
    fig, ax = _figure()
    ax.bar([0, 1], [1, 2])
    ax.set_xticks([])
    assert bar_problems(ax) == ["a bar at 0 has no name", "a bar at 1 has no name"]
    bars = ax.containers[0]
    ax.bar_label(bars, labels=["one thread", "dataplane"])
    assert bar_problems(ax) == []


def test_the_timeline_checker_sees_a_blank_sleep():
    r = run(syscall_program, cpus=2)
    fig = timeline(r)
    ax = fig.axes[0]
    assert timeline_problems(ax, r) == []
    for coll in ax.collections:  # what the old timeline drew: nothing for a sleep
        if coll.get_gid() == "timeline:sleep":
            coll.set_visible(False)
    assert timeline_problems(ax, r) == [
        "iothread0's sleep 5-45 us is not drawn under a legend entry"
    ]


def test_every_chapter_with_a_figure_has_its_figures_checked():
    drawn = {name.split()[0] for name, _draw in chapter_figures()}
    assert drawn == {f"ch0{n}" for n in range(1, 9)}
