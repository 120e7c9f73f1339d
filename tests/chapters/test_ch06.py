"""What chapter 6 teaches, asserted: the notebook's era model is the library's; the static pass
finds the missing lock and passes the fix; the graph lock keeps a graph change safe where the
unlocked change reads a freed node; D6, D7 and D8 hang under their bugs and never under the
fixes; the writer starves without its no-poll drain; the blind spot passes the static pass and
fails at run time; GLOBAL_STATE_CODE checks the BQL and IO_CODE nothing; and the exercises'
checkers accept the model answers and refuse the bugs."""

from __future__ import annotations

import ast
import contextlib
import inspect
import re
import textwrap
from pathlib import Path

import pytest
from chapter_opening import opening, problems
from notebook_cells import code_cells, run_cells

from labsupport import run, trace_table
from labsupport.analysis.tsa import static_check
from labsupport.annotations import no_tsa, tsa_report, tsa_violations
from labsupport.chapters.ch06.checks import _annotate_61, _blind_spot_62, _d6_64, _fix_d7
from labsupport.chapters.ch06.scenarios import (
    CONFIGS,
    SCENARIOS,
    api_class_program,
    bdrv_co_preadv,
    bdrv_replace_child,
    blind_spot_done,
    call_as_reader,
    change_filter,
    classify,
    outcome_table,
    refresh_ineffective_unlock,
    refresh_no_unlock,
    refresh_real_unlock,
    run_blind_spot,
    run_graph,
    run_scenario,
    starvation_table,
)
from labsupport.present import trace_rows
from labsupport.qemu.graphlock import (
    GRAPH_RDLOCK,
    bdrv_drained_begin,
    bdrv_drained_end,
    bdrv_graph_co_rdlock,
    bdrv_graph_co_rdunlock,
    bdrv_graph_wrlock,
    bdrv_graph_wrunlock,
)

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "06-fine-grained-locks.ipynb"
SEEDS = 200


@pytest.fixture(scope="module")
def era_model() -> dict:
    """The notebook's "era-model" cells (the graph lock's read side, its write side and the
    main loop's graph change), run in order in a fresh namespace."""
    return run_cells(NOTEBOOK, "era-model", minimum=2)


@pytest.fixture(scope="module")
def table() -> dict:
    return outcome_table(SEEDS)


def _same(mine, theirs) -> None:
    a, b = mine.result, theirs.result
    assert (a.outcome, a.schedule, a.steps, a.time) == (b.outcome, b.schedule, b.steps, b.time)
    assert trace_table(a, width=40) == trace_table(b, width=40)
    assert str(a.deadlock) == str(b.deadlock)
    assert mine.model.uaf == theirs.model.uaf
    assert tsa_report(a) == tsa_report(b)
    assert mine.model.gl.writer_waits == theirs.model.gl.writer_waits


def _steps(result, width: int = 40) -> list[str]:
    """The trace's steps as text, one per row of the trace table ("thread: what it did"),
    whatever the table's layout."""
    return [f"{r['thread']}: {r['text']}" for r in trace_rows(result)]


def _report_line(text: str, start: str) -> str:
    """The line of a deadlock report that starts (after its indent) with ``start``."""
    (line,) = [s.strip() for s in text.splitlines() if s.strip().startswith(start)]
    return line


def _visible() -> dict:
    """The functions the notebook shows, by name, with the library's own."""
    from labsupport.chapters.ch06 import scenarios as scenarios_ch06
    from labsupport.qemu import graphlock

    return {
        "bdrv_graph_co_rdlock": graphlock.bdrv_graph_co_rdlock,
        "_reader_threads": graphlock._reader_threads,
        "bdrv_graph_wrlock": graphlock.bdrv_graph_wrlock,
        "change_filter": scenarios_ch06.change_filter,
    }


def test_the_chapter_opens_with_goals_a_time_and_a_map_of_every_section():
    assert problems(NOTEBOOK) == []  # goals, time, a map that reaches every section; < 2000 words
    o = opening(NOTEBOOK)
    assert "Be-the-scheduler-of-D6" in o.map_targets
    assert not any(re.match(r"\d+\.-\([a-h]\)", s) for s in o.heading_ids)  # no "(a)...(h)"


class _Plain(ast.NodeTransformer):
    """A function's code without what does not run: its docstring and its type hints."""

    def visit_FunctionDef(self, node):  # noqa: N802 (ast's name)
        self.generic_visit(node)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]
        node.body, node.returns = body, None
        return node

    def visit_arg(self, node):  # noqa: N802
        node.annotation = None
        return node


def _code(node: ast.FunctionDef) -> str:
    return ast.dump(_Plain().visit(node), include_attributes=False)


def _functions(source: str) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(textwrap.dedent(source))
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_the_code_the_notebook_shows_is_the_librarys():
    shown: dict[str, ast.FunctionDef] = {}
    for src in code_cells(NOTEBOOK, "era-model"):
        shown |= _functions(src)
    assert set(shown) == set(_visible())
    for name, library in _visible().items():
        (theirs,) = _functions(inspect.getsource(library)).values()
        assert _code(shown[name]) == _code(theirs), f"{name} differs from the library's"
    # and the comparison can fail: one changed constant is a difference
    drifted = _functions(
        inspect.getsource(_visible()["bdrv_graph_wrlock"]).replace(
            "gl.has_writer = 1\n", "gl.has_writer = 0\n", 1
        )
    )["bdrv_graph_wrlock"]
    assert _code(drifted) != _code(shown["bdrv_graph_wrlock"])


@contextlib.contextmanager
def _notebook_lock(era_model: dict):
    """Run the library's model with the notebook's functions in place of its own."""
    from labsupport.chapters.ch06 import scenarios as scenarios_ch06
    from labsupport.qemu import graphlock

    names = ("bdrv_graph_co_rdlock", "bdrv_graph_wrlock", "change_filter")
    saved = [
        (m, n, getattr(m, n)) for m in (graphlock, scenarios_ch06) for n in names if hasattr(m, n)
    ]
    try:
        for module, name, _ in saved:
            setattr(module, name, era_model[name])
        yield
    finally:
        for module, name, fn in saved:
            setattr(module, name, fn)


@pytest.mark.parametrize("name", list(SCENARIOS))
@pytest.mark.parametrize("fixed", [False, True])
def test_the_notebooks_lock_gives_the_librarys_runs(era_model, name, fixed):
    from labsupport.chapters.ch06 import scenarios as scenarios_ch06

    cfg = CONFIGS[name][int(fixed)]
    for seed in range(15):
        with _notebook_lock(era_model):
            assert scenarios_ch06.change_filter is era_model["change_filter"]
            mine = run_graph(cfg, seed=seed)
        _same(mine, run_graph(cfg, seed=seed))


def test_the_notebooks_lock_agrees_on_a_stream_of_readers_too(era_model):
    cfg = CONFIGS["D7"][1].replace(
        rate_per_ms=80.0, duration_us=600.0, iothreads=2, drain="none", drain_first=False
    )
    for seed in range(3):
        with _notebook_lock(era_model):
            mine = run_graph(cfg, seed=seed)
        _same(mine, run_graph(cfg, seed=seed))


# -- section 3, annotations: the static pass before the run, the run-time check on the run ---------


def read_without_lock(bs, req):
    yield from bdrv_co_preadv(bs, req)


def read_with_lock(bs, req):
    yield from bdrv_graph_co_rdlock()
    yield from bdrv_co_preadv(bs, req)
    yield from bdrv_graph_co_rdunlock()


def test_the_static_pass_flags_the_missing_lock_and_passes_the_fixed_code():
    report = static_check(read_without_lock, read_with_lock, bdrv_co_preadv, bdrv_replace_child)
    assert [f.function for f in report.findings] == ["read_without_lock"]
    assert report.messages() == ["calling `bdrv_co_preadv` requires holding `graph_lock` (shared)"]
    assert report.findings[0].line == 2
    assert static_check(read_with_lock).ok


def test_the_run_time_check_agrees_and_flags_every_access_on_the_way_down():
    unlocked = call_as_reader(read_without_lock, locked=False)
    texts = [v.text for v in tsa_violations(unlocked)]
    assert unlocked.outcome == "completed"
    assert len(texts) == 5
    assert (
        sum("calling `bdrv_co_preadv` requires holding `graph_lock` (shared)" in t for t in texts)
        == 2
    )
    assert any("reading `filter0.children`" in t for t in texts)
    assert all("[thread iothread0 (coroutine reader)]" in t for t in texts)
    locked = call_as_reader(read_without_lock, locked=True)
    assert locked.ok and tsa_violations(locked) == []


# -- section 4, the graph change with I/O in flight ------------------------------------------------


def test_an_unlocked_graph_change_reads_a_freed_node_and_the_lock_prevents_it(table):
    assert table[("unlocked", "buggy")]["use-after-free"] >= SEEDS * 3 // 4
    assert table[("unlocked", "fixed")] == {"completed": SEEDS}
    g = run_scenario("unlocked", False, seed=0)
    assert g.model.uaf == [
        "request 0 read node 'filter0' after it was freed at t=50 us (now t=84.4 us)"
    ]
    texts = [v.text for v in g.violations()]
    assert any(
        "calling `bdrv_replace_child` requires holding `graph_lock` exclusively" in t for t in texts
    )
    assert any("writing `blk0.root` requires holding `graph_lock` exclusively" in t for t in texts)
    # the prose: six reads in the first 100 us, the change at 50 us
    cfg = CONFIGS["unlocked"][0]
    assert (cfg.requests, 2 * cfg.change_at_us, cfg.change_at_us) == (6, 100, 50)
    for seed in range(SEEDS):
        ok = run_scenario("unlocked", True, seed=seed, trace=False)
        assert ok.model.change_done and ok.model.completed == ok.model.arrivals


# -- section 5, D6 ---------------------------------------------------------------------------------


def test_d6_deadlocks_when_the_writer_polls_with_has_writer_set_and_never_when_clear(table):
    assert table[("D6", "buggy")]["deadlock"] >= SEEDS // 2
    assert table[("D6", "fixed")] == {"completed": SEEDS}
    g = run_scenario("D6", False, seed=0)
    assert g.result.deadlock.kind == "cycle" and g.result.deadlock.cycle == ["main-loop"]
    assert _report_line(
        g.result.deadlock.text(),
        "main-loop waits for AioContext main (in AIO_WAIT_WHILE, for main-loop's work)",
    ).endswith(" by main-loop")
    assert "has_writer=1" in g.diagnosis()
    assert "sleeping in its CoQueue: bdrv_co_get_info" in g.diagnosis()
    # the prose reads the trace in this order: the no-poll drain, the flag set and the poll,
    # later reads stopped by the drain, then the callback's coroutine asleep on has_writer
    rows = _steps(g.result)

    def at(text: str) -> int:
        return next(i for i, r in enumerate(rows) if text in r)

    drain, poll = at("bdrv_drain_all_begin_nopoll"), at("has_writer = 1; poll until")
    asleep = at("bdrv_co_get_info sleep")
    assert at("timer qmp: change filter") < drain < poll < at("timer query info") < asleep
    assert poll < at("req1 yields") < at("req2 yields") < asleep
    assert "bdrv_drain_all_end" not in "\n".join(rows)  # the writer never got the lock
    again = run_graph(CONFIGS["D6"][0], schedule=g.result.schedule)
    assert again.outcome == "deadlock" and again.result.schedule == g.result.schedule
    fixed = run_scenario("D6", True, seed=0)
    assert fixed.outcome == "completed"
    assert fixed.model.extra["sync_reads"] == 1 and fixed.model.change_done


# -- section 6, D7 ---------------------------------------------------------------------------------


def test_d7_hangs_when_draining_under_the_write_lock_and_never_when_draining_first(table):
    # a cycle: the drain waits for iothread0's request, which sleeps in the graph lock's queue
    # until the writer, the main loop itself, lets go
    assert table[("D7", "buggy")]["deadlock"] >= SEEDS * 3 // 4
    assert "stuck" not in table[("D7", "buggy")]
    assert table[("D7", "fixed")] == {"completed": SEEDS}
    g = run_scenario("D7", False, seed=0)
    assert g.outcome == "deadlock" and g.result.deadlock.kind == "cycle"
    text = g.result.deadlock.text()
    assert g.result.deadlock.cycle == ["main-loop", "iothread0", "coroutine req2 in iothread0"]
    assert _report_line(
        text, "main-loop waits for AioContext main (in AIO_WAIT_WHILE, for iothread0's work)"
    ).endswith(" by iothread0")
    for line in (
        "2 threads and 1 coroutine wait for each other in a cycle",
        "iothread0 waits for the work left in AioContext iothread0 (asleep in aio_poll), which "
        "is coroutine req2 in iothread0",
        "coroutine req2 in iothread0 waits for graph_lock to read (asleep in its CoQueue), held "
        "by main-loop",
        "main-loop holds BQL",
    ):
        assert line in text, text
    assert "has_writer=1, readers none, sleeping in its CoQueue: req2" in g.diagnosis()
    # the prose: req2 waited (drained) for the writer's no-poll drain to end, which
    # bdrv_graph_wrlock ends before it returns; then it started, and slept on has_writer
    rows = _steps(g.result)
    end = next(i for i, r in enumerate(rows) if "bdrv_drain_all_end" in r)
    locked = next(i for i, r in enumerate(rows) if "graph write-locked" in r)
    drained = next(i for i, r in enumerate(rows) if "bdrv_drained_begin(blk0)" in r)
    sleeps = next(i for i, r in enumerate(rows) if "req2 sleeps" in r)
    assert sum("enter req2" in r for r in rows[:end]) >= 1  # it arrived during the poll
    assert end < locked < drained < sleeps
    assert [v.function for v in g.violations()] == ["bdrv_drained_begin"]
    fixed = run_scenario("D7", True, seed=0)
    assert fixed.outcome == "completed" and fixed.writer_wait_us == 0
    for seed in range(50):
        ch = run_scenario("D7", True, seed=seed, trace=False).model.extra["changes"]
        assert ch[0]["in_flight"] == 0


def test_the_static_pass_flags_the_drain_under_the_lock_once_drained_begin_is_annotated():
    report = static_check(change_filter)
    assert report.messages() == [
        "calling `bdrv_drained_begin` requires NOT holding `graph_lock`, which is held (exclusive)"
    ]


# -- section 10, D8: the graph lock's first months -------------------------------------------------


def test_d8_the_80_writer_polls_holding_the_context_lock_and_the_2023_fix_releases_it(table):
    # "deadlocks on most of 200 seeds, and never once fixed"
    assert table[("D8", "buggy")]["deadlock"] > SEEDS // 2
    assert set(table[("D8", "buggy")]) <= {"deadlock", "completed"}
    assert table[("D8", "fixed")] == {"completed": SEEDS}
    g = run_scenario("D8", False, seed=0)
    d = g.result.deadlock
    assert g.outcome == "deadlock" and d.kind == "cycle"
    assert sorted(d.cycle) == ["iothread0", "main-loop"]
    lock_wait = _report_line(d.text(), "iothread0 waits for ")
    assert "rec-mutex iothread0.ctx" in lock_wait and lock_wait.endswith(", held by main-loop")
    assert _report_line(
        d.text(), "main-loop waits for AioContext main (in AIO_WAIT_WHILE, for iothread0's work)"
    ).endswith(" by iothread0")
    assert "main-loop holds BQL, iothread0.ctx" in d.text()
    assert "iothread0's AioContext lock: locked by main-loop, waiters:1" in g.diagnosis()
    assert "readers {'iothread0': 2}" in g.diagnosis()  # two reads inside, waiting for the disk
    # the IOThread blocked where the disk's completion wakes a read (aio_co_enter took the lock)
    rows = _steps(g.result)
    assert "timer disk" in rows[-2] and "wait: iothread0.ctx" in rows[-1]
    fixed = run_scenario("D8", True, seed=0)
    assert fixed.outcome == "completed" and fixed.model.change_done and not fixed.model.uaf
    rows = _steps(fixed.result)
    change = next(i for i, r in enumerate(rows) if "timer qmp: change filter" in r)
    locked = next(i for i, r in enumerate(rows) if "graph write-locked" in r)
    between = rows[change:locked]
    # the writer let go of the context lock once it had it, and the IOThread took it meanwhile
    assert [i for i, r in enumerate(between) if "unlock iothread0.ctx" in r][0] == 2
    assert sum("timer disk" in r for r in between) >= 1
    assert fixed.writer_wait_us > 0  # it did wait for readers, with the lock released


def test_the_d8_prose_quotes_the_table_and_says_why_the_rest_complete(table):
    import re

    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    text = " ".join(" ".join(c.source for c in nb.cells if c.cell_type == "markdown").split())
    m = re.search(
        r"The (\d+) seeds on which the 8\.0 writer completes are those where no read", text
    )
    buggy, fixed = table[("D8", "buggy")], table[("D8", "fixed")]
    assert m and int(m[1]) == buggy["completed"] and buggy["deadlock"] > SEEDS // 2
    assert fixed.get("deadlock", 0) == 0
    # "the schedules where no read was inside the graph when the change came"
    for seed in range(SEEDS):
        g = run_scenario("D8", False, seed=seed, trace=False)
        if g.outcome == "completed":
            assert g.writer_wait_us == 0 and g.model.gl.history[1][1] == 0


def test_d8_needs_both_locks():
    # the same schedules without any context lock (QEMU 9.0, and the rest of this chapter)
    for seed in range(30):
        assert (
            run_graph(CONFIGS["D8"][0].replace(ctx_lock="none"), seed=seed).outcome == "completed"
        )
    # and without the graph lock's wait (a writer that takes no graph lock) nothing hangs
    for seed in range(30):
        g = run_graph(CONFIGS["D8"][0].replace(locked=False), seed=seed, trace=False)
        assert g.outcome == "completed"


def test_the_d8_record_is_chapter_6s_and_chapter_8_lists_it():
    from labsupport.chapters.ch08.scenarios import CATALOGUE

    d8 = SCENARIOS["D8"]
    assert (d8.id, d8.chapter, d8.kind) == ("D8", 6, "deadlock")
    assert d8 in CATALOGUE
    assert d8.found(False, 0) and not d8.found(True, 0)


# -- where the writer's drain ends -----------------------------------------------------------


def test_the_writer_ends_its_nopoll_drain_before_it_returns_and_wrunlock_ends_none():
    for seed in range(20):
        g = run_scenario("unlocked", True, seed=seed, trace=False)  # locked, no drain of its own
        (change,) = g.model.extra["changes"]
        assert change["quiesce_counter"] == 0  # inside the write section, nothing is drained
        f = run_scenario("D7", True, seed=seed, trace=False)  # the caller's own drain
        assert f.model.extra["changes"][0]["quiesce_counter"] == 1


# -- section 7, writer starvation ------------------------------------------------------------------


def test_the_writer_starves_without_the_nopoll_drain_and_waits_briefly_with_it():
    rows = {r["rate_per_ms"]: r for r in starvation_table((10, 50, 100, 200), seeds=3)}
    for rate in (10, 50, 100, 200):
        assert rows[rate]["with drain"] < 130  # "under 130 us at every rate here"
    for rate in (100, 200):  # the writer gets in only when the 2.5 ms stream thins out
        assert rows[rate]["no drain"] >= 2_000
    assert rows[200]["no drain"] > rows[50]["no drain"] > rows[10]["no drain"]
    assert rows[200]["with drain"] < rows[200]["no drain"] / 10


# -- section 8, the blind spot ---------------------------------------------------------------------


def test_the_blind_spot_passes_the_static_pass_and_fails_at_run_time():
    assert not static_check(refresh_no_unlock).ok
    assert static_check(refresh_ineffective_unlock).ok and static_check(refresh_real_unlock).ok
    bad = run_blind_spot("ineffective unlock")
    assert bad.outcome == "deadlock" and not blind_spot_done(bad)
    first = tsa_violations(bad)[0]
    assert first.function == "bdrv_graph_rdunlock_main_loop" and "had no effect" in first.text
    assert tsa_violations(bad)[1].function == "bdrv_drained_begin"
    none = run_blind_spot("no unlock")
    assert none.outcome == "deadlock"
    good = run_blind_spot("real unlock")
    assert good.ok and blind_spot_done(good) and tsa_violations(good) == []
    for seed in range(30):
        assert run_blind_spot("ineffective unlock", seed).outcome == "deadlock"
        assert blind_spot_done(run_blind_spot("real unlock", seed))


# -- section 9, GLOBAL_STATE_CODE / IO_CODE --------------------------------------------------------


def test_global_state_code_checks_the_bql_and_io_code_checks_nothing():
    r = run(api_class_program(), policy="random", seed=0, cpus=3)
    assert r.ok and r.sim.model.completed == 2  # both reads, one in each IOThread
    kinds = [(v.kind, v.function, v.thread) for v in tsa_violations(r)]
    assert kinds == [
        ("GLOBAL_STATE_CODE", "bdrv_graph_rdlock_main_loop", "vcpu0"),
        ("GLOBAL_STATE_CODE", "bdrv_graph_rdunlock_main_loop", "vcpu0"),
    ]  # vcpu1 holds the BQL: it passes; IO_CODE() records nothing, wherever it runs
    assert "which does not hold the BQL" in tsa_violations(r)[0].text
    for seed in range(20):
        again = run(api_class_program(), policy="random", seed=seed, cpus=3)
        assert again.ok and {v.thread for v in tsa_violations(again)} == {"vcpu0"}


# -- predict, then reveal, and determinism ---------------------------------------------------


def test_the_revealed_answers():
    assert run_scenario("D7", True, seed=0).writer_wait_us == 0
    rows = starvation_table((200,), seeds=3)
    assert 60 < rows[0]["with drain"] < 130  # one or two 60-us reads


def test_runs_are_the_same_for_the_same_seed():
    for name in SCENARIOS:
        a, b = run_scenario(name, False, seed=7), run_scenario(name, False, seed=7)
        assert trace_table(a.result) == trace_table(b.result)
        assert classify(a) == classify(b)


def test_unknown_scenarios_and_bad_configs_are_refused():
    with pytest.raises(ValueError, match="unlocked, D6, D7, D8"):
        run_scenario("D9", False)
    with pytest.raises(ValueError, match="drain is 'none', 'before' or 'inside'"):
        CONFIGS["D7"][0].replace(drain="sometimes")
    with pytest.raises(ValueError, match="iothreads is a whole number from 1 to 8"):
        CONFIGS["D7"][0].replace(iothreads=0)
    with pytest.raises(ValueError, match="ctx_lock is 'none', 'held' or 'released'"):
        CONFIGS["D8"][0].replace(ctx_lock="sometimes")
    with pytest.raises(ValueError, match="variant must be one of"):
        run_blind_spot("maybe")


# -- the exercises' checkers -----------------------------------------------------------------


def test_6_1_accepts_the_annotation_and_refuses_no_annotation_or_no_tsa():
    def unannotated(bs, req):
        children = bs.children
        if children:
            yield from bdrv_co_preadv(children[0], req)

    @GRAPH_RDLOCK
    def annotated(bs, req):
        children = bs.children
        if children:
            yield from bdrv_co_preadv(children[0], req)

    @no_tsa
    def switched_off(bs, req):
        yield from bdrv_co_preadv(bs, req)

    assert _annotate_61(annotated)[0]
    ok, msg = _annotate_61(unannotated)
    assert not ok and "requires holding `graph_lock` (shared)" in msg
    ok, msg = _annotate_61(switched_off)
    assert not ok and "no_tsa" in msg
    assert not _annotate_61(None)[0]

    @GRAPH_RDLOCK
    def does_nothing(bs, req):  # annotated right, but reads nothing
        yield from ()

    @GRAPH_RDLOCK
    def reads_the_filter_itself(bs, req):  # quiet and annotated, but only looks
        children = bs.children
        if not children:
            yield from bdrv_co_preadv(bs, req)

    for wrong in (does_nothing, reads_the_filter_itself):
        ok, msg = _annotate_61(wrong)
        assert not ok and "it must still read" in msg, wrong.__name__


def test_6_2_names_the_ineffective_unlock():
    assert _blind_spot_62("bdrv_graph_rdunlock_main_loop")[0]
    assert _blind_spot_62(" bdrv_graph_rdunlock_main_loop() ")[0]
    assert not _blind_spot_62("bdrv_drained_begin")[0]
    assert not _blind_spot_62(3)[0]


def test_6_3_accepts_drain_then_lock_and_refuses_the_bug_and_the_missing_drain():
    def fixed(blk, new):
        yield from bdrv_drained_begin(blk)
        yield from bdrv_graph_wrlock()
        yield from bdrv_replace_child(blk, new)
        yield from bdrv_graph_wrunlock()
        yield from bdrv_drained_end(blk)

    from test_wrong_answers_ch06 import drain_inside as inside
    from test_wrong_answers_ch06 import no_drain
    from test_wrong_answers_ch06 import no_write_lock as unlocked

    assert _fix_d7(fixed)[0]
    ok, msg = _fix_d7(inside)
    assert not ok and "requires NOT holding `graph_lock`" in msg
    ok, msg = _fix_d7(no_drain)
    assert not ok and "drained section" in msg
    ok, msg = _fix_d7(unlocked)
    assert not ok and "requires holding `graph_lock` exclusively" in msg


def test_6_4_wants_the_callback_that_waits_for_the_writer_and_its_name():
    g = run_scenario("D6", False, seed=0)
    (sleeper,) = [co.name for co in g.model.gl.queue.waiters]
    ok, msg = _d6_64({"letter": "b", "sleeper": sleeper})
    assert ok and "deadlocks with has_writer=1" in msg and sleeper in msg
    assert not _d6_64({"letter": "d", "sleeper": sleeper})[0]
    assert not _d6_64({"letter": "z", "sleeper": sleeper})[0]
    assert not _d6_64({"letter": "b", "sleeper": "req0"})[0]
    assert not _d6_64("b")[0]  # the letter alone is not enough


def test_the_settings_the_prose_quotes():
    from labsupport.chapters.ch06.scenarios import STARVE
    from labsupport.chapters.ch06.widgets import LAB

    # "Two IOThreads, reads of 60 us each ... for 2.5 ms, the writer asking at 300 us"
    assert (STARVE.iothreads, STARVE.service_us, STARVE.duration_us, STARVE.change_at_us) == (
        2,
        60,
        2_500,
        300,
    )
    assert STARVE.duration_us - STARVE.change_at_us == 2_200  # "2.2 ms after the writer asked"
    # the lab "re-runs 1.5 ms of simulated time"
    assert LAB.duration_us == 1_500
