"""The interleaving explorer: published trace counts, run counts, counterexamples, replays."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from labsupport import QemuMutex, Shared, run, sleep
from labsupport.analysis import explore, pct
from labsupport.chapters.ch00.classics import (
    indexer,
    lastzero,
    locked_increment,
    lost_update,
    writer_readers,
)

ACCEPT_ALL = lambda r: None  # noqa: E731  (every run is acceptable: count them all)


def everything(program, reduction="optimal"):
    e = explore(program, reduction=reduction, check=ACCEPT_ALL, stop="all", minimize=False)
    assert e.complete, e.summary()
    return e


def interleavings(*events_per_thread):
    """The number of interleavings of threads with these numbers of events."""
    total = math.factorial(sum(events_per_thread))
    for k in events_per_thread:
        total //= math.factorial(k)
    return total


# -- the published counts (GenMC, Nidhugg and Concuerror test suites) ----------------------------
PUBLISHED = [
    *[(f"inc{n}", lost_update(n), count) for n, count in [(2, 4), (3, 36)]],
    *[(f"locked{n}", locked_increment(n), math.factorial(n)) for n in range(2, 6)],
    *[(f"readers{n}", writer_readers(n), 2**n) for n in range(2, 9)],
    *[(f"lastzero{n}", lastzero(n), c) for n, c in zip(range(1, 6), [2, 5, 12, 28, 64])],
]


@pytest.mark.parametrize("name, program, count", PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_optimal_reduction_runs_exactly_one_run_per_trace(name, program, count):
    e = everything(program, "optimal")
    assert e.traces == count
    assert e.runs == count and e.blocked == 0, e.summary()


@pytest.mark.parametrize("name, program, count", PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_source_reduction_finds_every_trace_in_at_least_as_many_runs(name, program, count):
    e = everything(program, "source")
    assert e.traces == count and e.runs >= count


def test_source_reduction_needs_more_runs_than_optimal_on_lastzero():
    assert everything(lastzero(5), "source").runs > everything(lastzero(5), "optimal").runs


@pytest.mark.parametrize("n", [2, 3])
def test_without_reduction_the_lost_update_runs_every_interleaving(n):
    e = everything(lost_update(n), "none")
    assert e.runs == interleavings(*[2] * n)  # a load and a store per thread: 6, 90
    assert e.traces == [4, 36][n - 2]


def test_without_reduction_the_readers_run_every_interleaving():
    e = everything(writer_readers(3), "none")
    assert e.runs == interleavings(1, 1, 1, 1) and e.traces == 8


@pytest.mark.parametrize("n, count", [(12, 8), (13, 64)])
def test_the_indexer_has_its_published_trace_counts(n, count):
    # no collisions below 12 threads: one trace; then 8 per extra thread (Abdulla et al.)
    e = everything(indexer(n), "optimal")
    assert e.traces == count and e.runs == count


def test_the_indexer_below_twelve_threads_has_one_trace():
    assert everything(indexer(11), "optimal").traces == 1


# -- counterexamples -------------------------------------------------------------------------
def lost(n):
    return lambda r: None if r.sim.model.value == n else f"x = {r.sim.model.value}"


def test_the_lost_update_counterexample_has_one_preemption_and_final_x_one():
    program = lost_update(2)
    e = explore(program, check=lost(2))
    cx = e.counterexample
    assert cx is not None and cx.failure == "x = 1" and cx.preemptions == 1
    assert cx.replay().sim.model.value == 1
    assert run(program, schedule=cx.schedule).sim.model.value == 1
    assert "1 preemption" in e.summary() and "1 failure" in e.summary()
    assert e.verdict == "fails: x = 1"


def test_the_counterexample_lists_its_events_and_marks_the_race():
    cx = explore(lost_update(2), check=lost(2)).counterexample
    text = cx.listing()
    assert "reads x" in text and "writes x" in text and "<- races with" in text
    assert len([line for line in text.splitlines() if line.startswith("#")]) == cx.steps
    assert "replay: run(program, schedule=" in str(cx)


def test_a_fixed_program_is_proven_for_every_schedule():
    e = explore(locked_increment(3), check=lost(3))
    assert e.complete and not e.failures and e.counterexample is None
    assert e.verdict == "no schedule breaks it: 6 traces, complete"


def test_every_outcome_is_tabled_with_a_schedule_that_shows_it():
    e = everything(lost_update(2))
    assert sum(n for n, _ in e.outcomes.values()) == e.traces == 4
    for what, (_, schedule) in e.outcomes.items():
        value = run(lost_update(2), schedule=schedule).sim.model.value
        assert what == f"completed, x={value}"
    assert {k for k in e.outcomes} == {"completed, x=1", "completed, x=2"}
    assert "example schedule" in e.outcome_table()


def ab_ba(sim):
    a, b = QemuMutex(sim, "A"), QemuMutex(sim, "B")

    def t(first, second):
        def body():
            yield first.lock()
            yield second.lock()
            yield second.unlock()
            yield first.unlock()

        return body

    sim.spawn("T0", t(a, b))
    sim.spawn("T1", t(b, a))


def test_a_deadlock_is_a_failure_by_default_with_its_shortest_schedule_and_cycle():
    e = explore(ab_ba)
    cx = e.counterexample
    assert cx.failure.startswith("deadlock") and cx.preemptions == 1
    assert run(ab_ba, schedule=cx.schedule).outcome == "deadlock"
    assert "waits for" in cx.listing() and "deadlock" in cx.listing().lower()


def test_the_deadlock_is_one_of_the_ab_ba_traces():
    e = everything(ab_ba)
    assert e.traces == 3 and e.runs == 3  # T0 first, T1 first, and the deadlock
    assert sum(n for what, (n, _) in e.outcomes.items() if what.startswith("deadlock")) == 1


def test_limits_make_an_exploration_incomplete_and_say_which():
    e = explore(lost_update(3), reduction="none", check=ACCEPT_ALL, stop="all", max_runs=10)
    assert not e.complete and e.runs == 10 and "max_runs=10" in e.summary()
    assert "incomplete" in e.verdict


def test_a_bound_limits_preemptions():
    within = [
        explore(lost_update(3), bound=b, reduction="none", check=ACCEPT_ALL, stop="all")
        for b in (0, 1, 2)
    ]
    assert [e.runs for e in within] == sorted(e.runs for e in within)
    assert within[0].runs == math.factorial(3)  # no preemption: one order of whole threads
    assert "complete up to 0 preemptions" in within[0].summary()
    assert explore(lost_update(2), bound=0, reduction="none", check=lost(2)).failures == []
    assert all(e.bounded for e in within)


def test_a_bound_that_left_nothing_out_is_every_schedule():
    whole = explore(lost_update(2), reduction="none", check=ACCEPT_ALL, stop="all")
    roomy = explore(lost_update(2), bound=50, reduction="none", check=ACCEPT_ALL, stop="all")
    assert roomy.complete and not roomy.bounded and roomy.runs == whole.runs
    assert "preemption" not in roomy.summary() and "at most" not in roomy.verdict
    tight = explore(lost_update(2), bound=1, reduction="none", check=ACCEPT_ALL, stop="all")
    assert tight.bounded and tight.runs < whole.runs
    assert "no schedule with at most 1 preemption breaks it" in tight.verdict


def test_bad_arguments_are_refused_naming_the_parameter():
    with pytest.raises(ValueError, match="reduction"):
        explore(lost_update(2), reduction="optimal-ish")
    with pytest.raises(ValueError, match="bound"):
        explore(lost_update(2), bound=2, reduction="source")
    with pytest.raises(ValueError, match="policy"):
        explore(lost_update(2), policy="random")
    with pytest.raises(ValueError, match="schedule"):
        pct(lost_update(2), schedule="01")
    with pytest.raises(ValueError, match="stop"):
        explore(lost_update(2), stop="never")
    with pytest.raises((TypeError, ValueError), match="program"):
        explore(42)


def test_compare_and_swap_is_one_step_that_writes_only_when_it_succeeds():
    def program(sim):
        x = Shared(sim, "x", 0)
        seen = []

        def body(v):
            def go():
                seen.append((yield x.qatomic_cmpxchg(0, v)))

            return go

        sim.spawn("A", body(1))
        sim.spawn("B", body(2))
        return x

    e = everything(program)
    assert e.traces == 2  # who wins; the loser only reads
    assert {k for k in e.outcomes} == {"completed, x=1", "completed, x=2"}


# -- probabilistic concurrency testing ---------------------------------------------------------
def test_pct_finds_the_lost_update_and_states_its_guarantee():
    e = pct(lost_update(2), runs=200, seed=1, check=lost(2))
    assert e.failures and e.counterexample.replay().sim.model.value == 1
    assert e.counterexample.preemptions >= 1
    assert "probability >= 1/(2*" in e.guarantee and "confidence" in e.guarantee


def test_pct_is_seeded():
    a = pct(lost_update(3), runs=50, seed=7, check=ACCEPT_ALL)
    b = pct(lost_update(3), runs=50, seed=7, check=ACCEPT_ALL)
    assert a.outcomes == b.outcomes and a.traces == b.traces


def test_pct_says_what_it_did_not_prove():
    e = pct(locked_increment(2), runs=50, check=lost(2))
    assert not e.failures and not e.complete and "PCT" in e.verdict


# -- the explorer's own properties ------------------------------------------------------------
def increments(n, k, locked=False):
    """``n`` threads each doing ``k`` increments of ``x``, with or without a lock."""
    return (locked_increment if locked else lost_update)(n, increments=k)


@settings(max_examples=12, deadline=None)
@given(n=st.integers(2, 3), k=st.integers(1, 2), locked=st.booleans())
def test_every_reported_failure_replays_and_optimal_never_needs_more_runs(n, k, locked):
    if n == 3 and k == 2 and not locked:
        k = 1  # thousands of traces: too slow for a property test
    program, check = increments(n, k, locked), lost(n * k)
    runs = {}
    for reduction in ("optimal", "source"):
        e = explore(program, reduction=reduction, check=check, stop="all", minimize=False)
        assert e.complete
        runs[reduction] = e
        for f in e.failures:
            assert f"x = {run(program, schedule=f.schedule).sim.model.value}" == f.failure
            assert f.replay().sim.model.value == int(f.failure.split("= ")[1])
    assert runs["optimal"].runs <= runs["source"].runs
    assert runs["optimal"].traces == runs["source"].traces
    assert set(runs["optimal"].outcomes) == set(runs["source"].outcomes)
    assert bool(runs["optimal"].failures) == (not locked)


@settings(max_examples=10, deadline=None)
@given(shape=st.lists(st.integers(1, 3), min_size=2, max_size=3).filter(lambda s: sum(s) <= 6))
def test_with_no_reduction_the_runs_are_the_interleavings(shape):
    """Threads that each store their own variable ``k`` times: no event conflicts, so every
    interleaving is a run of its own and all of them are one trace."""

    def program(sim):
        for i, k in enumerate(shape):
            v = Shared(sim, f"v{i}", 0)

            def body(v=v, k=k):
                for j in range(k):
                    yield v.store(j)

            sim.spawn(f"T{i}", body)

    none = everything(program, "none")
    assert none.runs == interleavings(*shape) and none.traces == 1
    assert everything(program, "optimal").runs == 1


@settings(max_examples=10, deadline=None)
@given(n=st.integers(2, 3), k=st.integers(1, 2))
def test_every_reduction_sees_the_same_traces_and_outcomes(n, k):
    if n == 3 and k == 2:
        k = 1  # 1,680 interleavings: too slow unreduced for a property test
    program, check = increments(n, k), lost(n * k)
    full = explore(program, reduction="none", check=check, stop="all", minimize=False)
    assert full.complete and full.runs == interleavings(*[2 * k] * n)
    for reduction in ("sleep", "source", "optimal"):
        e = explore(program, reduction=reduction, check=check, stop="all", minimize=False)
        assert e.complete and e.traces == full.traces and e.runs <= full.runs
        assert set(e.outcomes) == set(full.outcomes)


@pytest.mark.parametrize("name, program, count", PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_dpor_follows_every_order_it_plans_on_the_classics(name, program, count):
    for reduction in ("optimal", "source"):
        assert everything(program, reduction).unplaced == 0


# -- lock programs: every reduction against every schedule the kernel can make ----------------
def lock_program(bodies, naps=()):
    """Threads that take and release mutexes ``a``, ``b``, ``c`` as ``bodies`` says (a list
    of ("lock" | "unlock", name) per thread); the model is each lock's acquisition order.
    ``naps``: thread i first sleeps ``naps[i]`` microseconds, a step that touches nothing the
    engine records (an event only under ``opaque``)."""

    def program(sim):
        locks = {n: QemuMutex(sim, n) for n in "abc"}
        order = {n: [] for n in "abc"}

        def body(i, ops):
            if i < len(naps) and naps[i]:
                yield sleep(naps[i])
            for op, name in ops:
                if op == "lock":
                    yield locks[name].lock()
                    order[name].append(i)
                else:
                    yield locks[name].unlock()

        for i, ops in enumerate(bodies):
            sim.spawn(f"T{i}", body, i, ops)
        return order

    return program


def every_order(bodies):
    """Mutex semantics worked out by hand, independently of the kernel and the explorer: a
    lock that is free is taken, one that is held queues the taker (first come, first served),
    an unlock hands the lock to the first in its queue. Every interleaving of the threads'
    operations, memoised by state: the acquisition orders of the runs that complete, and
    whether some run deadlocks."""
    completed, deadlocks, seen = set(), False, set()

    def go(pcs, holder, queues, order):
        nonlocal deadlocks
        state = (pcs, holder, queues, order)
        if state in seen:
            return
        seen.add(state)
        waiting = {t for q in queues for t in q[1]}
        movable = [i for i, pc in enumerate(pcs) if pc < len(bodies[i]) and i not in waiting]
        if not movable:
            if all(pc == len(b) for pc, b in zip(pcs, bodies)):
                completed.add(" ".join(f"{n}:{''.join(map(str, v))}" for n, v in order))
            else:
                deadlocks = True
            return
        for i in movable:
            op, name = bodies[i][pcs[i]]
            h, q, o = dict(holder), {n: list(w) for n, w in queues}, {n: list(v) for n, v in order}
            nxt = list(pcs)
            nxt[i] += 1
            if op == "lock" and h.get(name) is None:
                h[name] = i
                o[name].append(i)
            elif op == "lock":  # it waits; it takes its next step once the lock is its own
                q[name].append(i)
            else:
                h[name] = None
                if q[name]:
                    h[name] = q[name].pop(0)
                    o[name].append(h[name])
            go(
                tuple(nxt),
                tuple(sorted(h.items())),
                tuple((n, tuple(q[n])) for n in "abc"),
                tuple((n, tuple(o[n])) for n in "abc"),
            )

    go(
        (0,) * len(bodies),
        (),
        tuple((n, ()) for n in "abc"),
        tuple((n, ()) for n in "abc"),
    )
    return completed, deadlocks


def orders(model) -> str:
    return " ".join(f"{n}:{''.join(map(str, v))}" for n, v in sorted(model.items()))


def explored(program, reduction):
    """What ``explore`` finds: the same two things, read from its failures (every completed
    run is made to fail with its acquisition orders, so each trace reports them)."""
    e = explore(
        program,
        reduction=reduction,
        check=lambda r: "orders " + orders(r.sim.model),
        stop="all",
        minimize=False,
    )
    assert e.complete, reduction
    completed = {f.failure[len("orders ") :] for f in e.failures if f.failure.startswith("orders")}
    return e, completed, any(f.failure.startswith("deadlock") for f in e.failures)


def _bodies(draw_names):
    """Valid lock/unlock sequences: each name toggles its lock; what is held at the end is
    released, last taken first."""
    bodies = []
    for names in draw_names:
        held, ops = [], []
        for n in names:
            if n in held:
                held.remove(n)
                ops.append(("unlock", n))
            else:
                held.append(n)
                ops.append(("lock", n))
        ops += [("unlock", n) for n in reversed(held)]
        bodies.append(ops)
    return bodies


THREE_LOCKS = [
    [
        ("lock", "b"),
        ("lock", "a"),
        ("lock", "c"),
        ("unlock", "c"),
        ("unlock", "a"),
        ("unlock", "b"),
    ],
    [("lock", "c"), ("unlock", "c"), ("lock", "b"), ("unlock", "b")],
    [
        ("lock", "b"),
        ("lock", "c"),
        ("unlock", "b"),
        ("lock", "a"),
        ("unlock", "a"),
        ("unlock", "c"),
    ],
]


@pytest.mark.parametrize("reduction", ["none", "sleep", "source", "optimal"])
def test_a_deadlock_among_three_locks_is_found_alike_by_every_reduction(reduction):
    """A lock handed over to a waiter, and attempts still waiting when the run deadlocks: every
    reduction finds every way the runs complete and the deadlock, and none of them crashes."""
    program = lock_program(THREE_LOCKS)
    truth, deadlocks = every_order(THREE_LOCKS)
    e, completed, deadlocked = explored(program, reduction)
    assert completed == truth and len(truth) == 12
    assert deadlocked and deadlocks
    assert e.traces == 16  # 12 that complete, 4 that deadlock


@settings(max_examples=40, deadline=None)
@given(
    names=st.lists(
        st.lists(st.sampled_from("abc"), min_size=1, max_size=3), min_size=2, max_size=3
    ).filter(lambda ns: sum(len(n) + len(set(n)) for n in ns) <= 12)
)
def test_on_lock_programs_every_reduction_finds_what_every_schedule_shows(names):
    bodies = _bodies(names)
    program = lock_program(bodies)
    truth, deadlocks = every_order(bodies)
    for reduction in ("none", "sleep", "source", "optimal"):
        _, completed, deadlocked = explored(program, reduction)
        assert completed == truth, (reduction, names)
        assert deadlocked == deadlocks, (reduction, names)


@settings(max_examples=25, deadline=None)
@given(
    names=st.lists(
        st.lists(st.sampled_from("ab"), min_size=1, max_size=3), min_size=2, max_size=3
    ).filter(lambda ns: sum(len(n) + len(set(n)) for n in ns) <= 10),
    naps=st.lists(st.integers(0, 1), min_size=3, max_size=3),
    opaque=st.booleans(),
)
# a thread asleep where the plan wants it: the other orders at that point are still run
@example(names=[["a"], ["a"], ["a"]], naps=[0, 1, 0], opaque=False)
# under opaque, a step that touches nothing is an event when replayed as when explored
@example(names=[["a"], ["a"]], naps=[1, 0, 0], opaque=True)
def test_a_bound_covers_every_outcome_its_preemptions_allow(names, naps, opaque):
    """A failure the explorer reports with ``p`` preemptions is also found by a search bounded
    at ``p``, whichever way the explorer reached it and counted them (every interleaving, or
    DPOR, which replays a failure to count; opaque or not); a bounded search reports only
    failures within its bound."""
    program = lock_program(_bodies(names), naps)
    tell = lambda r: "orders " + orders(r.sim.model)  # noqa: E731
    within = {}
    for bound in range(3):
        for reduction in ("none", "sleep"):
            e = explore(
                program,
                bound=bound,
                reduction=reduction,
                check=tell,
                stop="all",
                minimize=False,
                opaque=opaque,
            )
            assert e.complete and all(f.preemptions <= bound for f in e.failures)
            within[bound, reduction] = {f.failure for f in e.failures}
    for reduction in ("none", "optimal"):
        e = explore(
            program, reduction=reduction, check=tell, stop="all", minimize=False, opaque=opaque
        )
        for f in e.failures:
            for bound in range(f.preemptions, 3):
                for bounded in ("none", "sleep"):
                    assert f.failure in within[bound, bounded], (f.schedule, reduction, bound)
