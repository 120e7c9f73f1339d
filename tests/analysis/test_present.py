"""Trace tables, timelines, Perfetto export, metrics tables."""

import json

import matplotlib

matplotlib.use("Agg")

from labsupport import chrome_trace, metrics, run, timeline, timeline_summary, trace_table  # noqa: E402
from labsupport.chapters.ch00.scenarios import abba_program, counter_experiment, counter_program  # noqa: E402


def test_trace_table_has_a_column_per_thread_and_the_variable():
    out = counter_experiment(seed=2)
    table = trace_table(out.result)
    head = table.splitlines()[0].split()
    assert head[:3] == ["step", "t(us)", "choice"] and head[-1] == "counter"
    assert "T0" in head and "T1" in head
    assert "load counter -> 0" in table and "store counter = 1" in table
    # the last row shows the final value of the counter
    assert table.splitlines()[-1].split()[-1] == str(out.final)


def test_reveal_false_hides_every_value_but_keeps_the_steps():
    out = counter_experiment(seed=2)
    shown = trace_table(out.result)
    hidden = trace_table(out.result, reveal=False)
    assert len(shown.splitlines()) == len(hidden.splitlines())
    assert "load counter -> ?" in hidden and "store counter = ?" in hidden
    for line in hidden.splitlines()[2:]:
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
    hatches = {p.get_hatch() for p in ax.get_legend().get_patches()}
    assert len(hatches) == 3  # solid, waiting and lock bars differ by pattern, not only colour
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
