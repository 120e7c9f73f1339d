"""Chapter 9: real threads. What the chapter says of them, checked on this interpreter (and on the
free-threaded one by tests/freethreaded, under ``make test-freethreaded``)."""

from __future__ import annotations

import json
from pathlib import Path

from chapter_opening import problems

from labsupport import run, run_real
from labsupport.chapters.ch09.scenarios import (
    STORED,
    abba_program,
    devices_program,
    freethreaded_results,
    lost_updates,
    plain_python_counter,
)
from labsupport.real import gil_enabled

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "09-real-threads.ipynb"


def _prose() -> str:
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    text = " ".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return " ".join(text.split())


def test_the_chapter_opens_with_goals_a_time_and_a_map_of_every_section():
    assert problems(NOTEBOOK) == []


def test_counter_plus_equals_loses_nothing_with_the_gil_and_the_lock_loses_nothing_anywhere():
    if gil_enabled():  # "With the GIL, none."
        assert plain_python_counter(4, 200_000) == 0
    locked = lost_updates(4, 2_000, locked=True, runs=3)
    assert locked.lost == [0, 0, 0] and "0 of 3 runs lost updates" in str(locked)


def test_the_watchdogs_report_names_both_threads_both_locks_and_their_lines():
    r = run_real(abba_program, time_limit_s=5)
    assert r.outcome == "deadlock"
    for phrase in ("T1: waits for B, holds A", "T2: waits for A, holds B", "`yield b.lock()`"):
        assert phrase in r.report
    assert "The report names both threads, both locks and the line each thread waits at" in _prose()


def test_the_simulated_bql_and_device_locks_take_what_the_chapter_says():
    times = [
        run(devices_program(2, 200, per_device=pd), cpus=2).time / 1000 for pd in (False, True)
    ]
    assert [round(t, 1) for t in times] == [32.0, 20.0]  # printed with one decimal
    prose = _prose()
    assert "The BQL run takes 32.0 ms" in prose and "takes 20.0 ms, 1.6 times faster" in prose
    assert round(times[0] / times[1], 1) == 1.6


def test_the_stored_free_threaded_results_say_what_the_chapter_says_and_are_labelled():
    data = json.loads(STORED.read_text(encoding="utf-8"))
    assert data["gil"] is False and "free-threaded" in data["python"]
    shares = [n / 4_000_000 for n in data["plain_lost"]] + [
        n / 40_000 for n in data["unlocked_lost"]
    ]
    assert all(0.4 <= s <= 0.65 for s in shares), shares  # "about half"
    assert data["locked_lost"] == [0, 0, 0]
    assert round(data["bql_s"] / data["per_device_s"], 1) == 1.6  # "about 1.6 times faster"
    shown = str(freethreaded_results(measure=False))
    assert "STORED results, measured 2026-12-07" in shown and "(not this run)" in shown
    assert "loses about half of its updates" in _prose()


def test_the_simulator_replays_the_loss_that_real_threads_cannot():
    from labsupport.chapters.ch00.scenarios import counter_program

    lossy = run(counter_program(threads=2, increments=1), schedule="10")
    assert lossy.sim.model.counter.value == 1 == lossy.replay().sim.model.counter.value
    assert "one schedule string gives the same lost update every time" in _prose()
