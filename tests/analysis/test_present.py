"""Trace tables (their layout: no name cut, 100 columns, a legend, the line that reads a
choice), timelines, Perfetto export, metrics tables; the names of context locks and loops."""

import json

import matplotlib
import pytest

matplotlib.use("Agg")

from labsupport import (  # noqa: E402
    chrome_trace,
    metrics,
    present,
    run,
    timeline,
    timeline_summary,
    trace_table,
)
from labsupport.chapters.ch00.scenarios import abba_program, counter_experiment, counter_program  # noqa: E402
from labsupport.present import trace_rows  # noqa: E402


def test_trace_table_has_a_column_per_thread_and_the_variable():
    out = counter_experiment(seed=2)
    table = trace_table(out.result)
    head = table.splitlines()[0].split()
    assert head[:3] == ["step", "t(us)", "choice"] and head[-1] == "counter"
    assert "T0" in head and "T1" in head
    assert "load counter -> 0" in table and "store counter = 1" in table
    # the last row shows the final value of the counter; the line under it reads a choice
    *_rows, last, footer = table.splitlines()
    assert last.split()[-1] == str(out.final) and footer.startswith("choice ")


def test_reveal_false_hides_every_value_but_keeps_the_steps():
    out = counter_experiment(seed=2)
    shown = trace_table(out.result)
    hidden = trace_table(out.result, reveal=False)
    assert len(shown.splitlines()) == len(hidden.splitlines())
    assert "load counter -> ?" in hidden and "store counter = ?" in hidden
    for line in hidden.splitlines()[2:-1]:  # the rows, not the line that reads a choice
        assert line.split()[-1] == "?"
        for sep in ("->", "="):
            if sep in line:
                assert line.split(sep)[1].split()[0] == "?"


def test_the_choice_column_spells_the_schedule():
    out = counter_experiment(seed=7, threads=3)
    rows = trace_table(out.result).splitlines()[2:]
    picks = [r.split()[2].split("/")[0] for r in rows if "/" in r.split()[2]]
    assert "".join(picks) == out.schedule


def test_timeline_is_a_white_labelled_figure_and_its_summary_adds_up():
    r = run(counter_program(3, 2, locked=True, work_us=10), cpus=2, policy="random", seed=4)
    fig = timeline(r)
    assert fig.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["T0", "T1", "T2"]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "running on a CPU" in labels and "holds lock" in labels
    assert "waiting for a lock or an event" in labels and "waiting for a CPU" in labels
    hatches = [p.get_hatch() for p in ax.get_legend().get_patches()]
    assert len(set(hatches)) == len(labels)  # each kind of bar its own pattern, not only colour
    summary = timeline_summary(r)
    m = metrics(r)
    for name, ran in m.run_us.items():
        assert f"{name}: " in summary and f"ran {ran:g} us" in summary


def test_chrome_trace_is_valid_trace_event_json():
    r = run(abba_program(), cpus=2)
    doc = json.loads(json.dumps(chrome_trace(r)))
    evs = doc["traceEvents"]
    names = {e["args"]["name"] for e in evs if e["ph"] == "M" and e["name"] == "thread_name"}
    assert names == {"T1", "T2"}
    for e in evs:
        assert e["ph"] in {"M", "X", "b", "e", "i"}
        if e["ph"] != "M":
            assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0
        if e["ph"] == "X":
            assert e["dur"] >= 0
    begins = [e for e in evs if e["ph"] == "b"]
    ends = [e for e in evs if e["ph"] == "e"]
    assert len(begins) == len(ends) == 2  # each thread held one lock until the deadlock


def test_metrics_table_is_text():
    r = run(counter_program(2, 3, locked=True, work_us=5), cpus=2)
    text = metrics(r).table()
    assert "lock" in text and "CPU utilisation" in text


# -- the trace table's layout: no name cut, 100 columns, a legend, a line reading a choice -------


def _chapter_tables():
    """The chapters' trace tables: their runs and the arguments their cells print them with."""
    from labsupport.chapters.ch01.checks import pass_order_program
    from labsupport.chapters.ch02.checks import predict_run as ch02_predict
    from labsupport.chapters.ch03.checks import predict_31_run
    from labsupport.chapters.ch04.checks import predict_run as ch04_predict
    from labsupport.chapters.ch04.scenarios import kick_scene
    from labsupport.chapters.ch05.checks import predict_run as ch05_predict
    from labsupport.chapters.ch05.scenarios import d1_program, d2_program, r1_program, r3_program
    from labsupport.chapters.ch06.scenarios import CONFIGS, run_graph
    from labsupport.chapters.ch07.scenarios import (
        first_buggy_seed,
        handover_program,
        r4_program,
        r5_program,
        removal_program,
    )
    from labsupport.qemu import r2_program

    r4_seed = first_buggy_seed("R4")
    r5_threads = ["iothread0", "main-loop", "vcpu0"]
    return {
        "ch00 counter": (counter_experiment(seed=2).result, {}),
        "ch00 abba": (run(abba_program(), cpus=2), {}),
        "ch01 pass order": (run(pass_order_program), dict(reveal=False, max_rows=3)),
        "ch02 predict": (ch02_predict(), dict(reveal=False, show_time=False, width=26)),
        "ch03 r2": (run(r2_program(requests=1), policy="random", seed=4, cpus=2), dict(width=30)),
        "ch03 3.1": (predict_31_run(), dict(reveal=False, show_time=False, width=30)),
        "ch04 kick": (kick_scene(2014).result, dict(width=26)),
        "ch04 predict": (ch04_predict(), dict(reveal=False, show_time=False, width=24)),
        "ch05 d1": (run(d1_program(False), policy="random", seed=0, cpus=2), dict(width=30)),
        "ch05 d2": (run(d2_program(False), policy="random", seed=5, cpus=2), dict(width=30)),
        "ch05 r3": (run(r3_program(False), policy="random", seed=4), dict(width=26)),
        "ch05 r1": (run(r1_program(False), policy="random", seed=0, cpus=2), dict(width=34)),
        "ch05 r1 fixed": (run(r1_program(True), policy="random", seed=0, cpus=2), dict(width=34)),
        "ch05 predict": (ch05_predict(), dict(reveal=False, width=30)),
        "ch06 d6": (run_graph(CONFIGS["D6"][0], seed=0).result, dict(width=34)),
        "ch07 removal": (run(removal_program("no-op"), cpus=2), dict(width=40)),
        "ch07 handover": (run(handover_program(), cpus=2), dict(width=30)),
        "ch07 r4": (
            run(r4_program(False), cpus=4, policy="random", seed=r4_seed),
            dict(width=34),
        ),
        "ch07 r5": (
            run(r5_program(recheck=True), cpus=4, policy="random", seed=8),
            dict(width=30, threads=r5_threads),
        ),
        "ch07 r5 fixed": (
            run(r5_program(fixed=True), cpus=4, policy="random", seed=8),
            dict(width=30, threads=r5_threads),
        ),
    }


def _blocks(table: str) -> dict[int, list[str]]:
    """Each row's lines, by step: its numbered line and the lines its step wraps onto."""
    out: dict[int, list[str]] = {}
    step = None
    for line in table.splitlines()[2:]:
        if line[:4].strip().isdigit():
            step = int(line[:4])
            out[step] = [line]
        elif step is not None and line[:4] == "    ":
            out[step].append(line)
        else:
            step = None  # the lines under the table
    return out


def _uncut(r, **kw) -> list[str]:
    """What ``trace_table(r, **kw)`` cut: steps whose words are not all in their lines, whole
    and in order; thread and variable names missing from the heading and the legend."""
    table = trace_table(r, **kw)
    rows = {row["step"]: row for row in trace_rows(r, kw.get("reveal", True))}
    out = []
    for step, lines in _blocks(table).items():
        tokens = " ".join(lines).split()
        words = rows[step]["text"].split()
        it = iter(tokens)
        if not all(any(t == w for t in it) for w in words):
            out.append(f"step {step}: {rows[step]['text']!r} in {lines}")
    head = table.splitlines()[0].split()
    legend = [w.strip(",") for line in table.splitlines() if line.startswith(("variables:", " "))
              for w in line.split()]  # fmt: skip
    shown = kw.get("threads") or [t.name for t in r.sim.threads]
    out += [f"thread {n}" for n in shown if n not in head]
    varnames = [o.name for o in r.sim.objects if getattr(o, "kind", "") == "variable"]
    out += [f"variable {v}" for v in kw.get("variables", varnames) if v not in head + legend]
    return out


def test_no_step_and_no_name_is_ever_cut():
    cases = [(r, kw) for r, kw in _chapter_tables().values()]
    cases += [(counter_experiment(seed=3, threads=3).result, dict(width=present.MIN_WIDTH))]
    for r, kw in cases:
        assert _uncut(r, **kw) == [], kw
        assert _uncut(r, **{**kw, "width": present.MIN_WIDTH}) == [], kw


def test_the_chapters_tables_fit_in_100_columns():
    for name, (r, kw) in _chapter_tables().items():
        table = trace_table(r, **kw)
        widest = max(len(line) for line in table.splitlines())
        assert widest <= present.LINE_WIDTH == 100, (name, widest)
        assert "columns: show fewer" not in table, name


def test_a_table_that_cannot_fit_says_how_to_narrow_it_and_narrowing_works():
    from labsupport.chapters.ch07.scenarios import r5_program

    r = run(r5_program(recheck=True), cpus=4, policy="random", seed=8)
    table = trace_table(r, width=30)
    wide = max(len(line) for line in table.splitlines())
    assert wide > 100
    assert table.splitlines()[-1] == (
        f"{wide} columns: show fewer with threads=[...] or variables=[...], or show_time=False"
    )
    narrow = trace_table(r, width=30, threads=["iothread0", "main-loop", "vcpu0"])
    assert max(len(line) for line in narrow.splitlines()) <= 100
    assert "iothread1" not in narrow.splitlines()[0]
    # the rows left are numbered as in the whole run, and only the shown threads' rows count
    steps = sorted(_blocks(narrow))
    every = [row["step"] for row in trace_rows(r) if row["thread"] != "iothread1"]
    assert steps == every
    fewer = trace_table(r, width=30, variables=["blk.ctx", "bs.ctx"])
    assert "done" not in fewer.splitlines()[0] and "blk.in_flight" not in fewer
    cut = trace_table(r, max_rows=5, threads=["vcpu0"], variables=[])
    vcpu0 = [row for row in trace_rows(r) if row["thread"] == "vcpu0"]
    assert f"... {len(vcpu0) - 5} more steps (max_rows=5)" in cut.splitlines()


def test_threads_and_variables_must_name_this_runs():
    r = counter_experiment(seed=2).result
    with pytest.raises(ValueError, match=r"^threads must be 'T0' or 'T1'; got 'T9'"):
        trace_table(r, threads=["T9"])
    with pytest.raises(TypeError, match=r"^threads must be None or a list of thread names"):
        trace_table(r, threads="T0")
    with pytest.raises(ValueError, match=r"^variables must be 'counter'; got 'x'"):
        trace_table(r, variables=["x"])
    assert trace_table(r, threads=["T1"], variables=[]).splitlines()[0].split()[-1] == "T1"


def test_the_line_under_the_table_reads_a_choice_only_when_there_is_a_choice_column():
    out = counter_experiment(seed=2)
    table = trace_table(out.result)
    assert "choice" in table.splitlines()[0].split()
    first = next(row for row in trace_rows(out.result) if row["choice"])
    char, ready = first["choice"].split("/")
    assert table.splitlines()[-1] == (
        f"choice {first['choice']}: thread {char} ({first['thread']}) went, {ready} could have"
    )
    assert out.result.sim.threads[int(char)].name == first["thread"]  # the schedule's character
    from labsupport.chapters.ch01.checks import pass_order_program

    alone = trace_table(run(pass_order_program))  # one thread: nobody to choose between
    assert "choice" not in alone


def test_long_variable_names_move_to_a_legend_when_that_wraps_less():
    from labsupport.qemu import r2_program

    r = run(r2_program(requests=1), policy="random", seed=4, cpus=2)
    table = trace_table(r, width=30)
    assert table.splitlines()[0].split()[-2:] == ["v1", "v2"]
    assert "variables: v1 = vq.avail_idx, v2 = vq.last_avail_idx" in table.splitlines()
    assert all(len(block) == 1 for block in _blocks(table).values())  # nothing wraps
    # with room for the names, they stay
    short = counter_experiment(seed=2).result
    assert "counter" in trace_table(short).splitlines()[0] and "variables:" not in trace_table(
        short
    )


def test_a_step_wraps_between_words_and_keeps_a_parenthesis_together():
    wrap = present._wrap
    assert wrap("wait: BQL (main-loop has it)", 24) == ["wait: BQL", "(main-loop has it)"]
    assert wrap("wait: BQL (main-loop has it)", 12) == ["wait: BQL", "(main-loop", "has it)"]
    assert wrap("bdrv_drain_all_begin_nopoll", 8) == ["bdrv_drain_all_begin_nopoll"]
    for text in ("store vq.last_avail_idx = 1", "a  b", "", "(open paren only"):
        for width in (1, 5, 9, 40):
            assert " ".join(wrap(text, width)) == text


def test_context_locks_and_loops_are_named_for_what_they_are():
    """A context's lock reads "iothread0's AioContext lock", held by its owner; a loop in
    AIO_WAIT_WHILE is not held by anyone: it waits to be woken by the thread whose work it
    needs, in the deadlock report and in the trace table alike."""
    from labsupport.chapters.ch05.scenarios import d1_program

    r = run(d1_program(False), policy="random", seed=0, cpus=2)
    text = r.deadlock.text()
    assert (
        "iothread0 waits for iothread0's AioContext lock (rec-mutex iothread0.ctx), held by "
        "main-loop"
    ) in text
    assert (
        "main-loop waits for AioContext main (in AIO_WAIT_WHILE, for iothread0's work), "
        "to be woken by iothread0"
    ) in text
    assert "held by iothread0" not in text
    texts = [row["text"] for row in trace_rows(r)]
    assert "wait: main (to be woken by iothread0)" in texts
    assert "wait: iothread0.ctx (main-loop has it)" in texts
