"""Properties that must hold for every program the generator can think of."""

from hypothesis import given, settings
from hypothesis import strategies as st

from labsupport import QemuMutex, Shared, compute, run, sleep

# A random program: each thread is a list of actions on a few shared variables and mutexes.
ACTION = st.one_of(
    st.tuples(st.just("inc"), st.integers(0, 1)),
    st.tuples(st.just("locked_inc"), st.integers(0, 1), st.integers(0, 1)),
    st.tuples(st.just("compute"), st.integers(0, 3)),
    st.tuples(st.just("sleep"), st.integers(0, 3)),
    st.tuples(st.just("lock"), st.integers(0, 1)),
    st.tuples(st.just("unlock_all")),
    st.tuples(st.just("nest"), st.permutations([0, 1]), st.integers(0, 2)),
)
PROGRAM = st.lists(st.lists(ACTION, max_size=6), min_size=1, max_size=4)


def build(spec, check_exclusion=None):
    def program(sim):
        xs = [Shared(sim, f"x{i}", 0) for i in range(2)]
        ms = [QemuMutex(sim, f"m{i}") for i in range(2)]
        inside = [0, 0]

        def body(actions):
            held = []
            for a in actions:
                if a[0] == "inc":
                    yield xs[a[1]].increment()
                elif a[0] == "locked_inc":
                    m = ms[a[2]]
                    if m in held:
                        continue
                    yield m.lock()
                    inside[a[2]] += 1
                    if check_exclusion is not None:
                        check_exclusion.append(inside[a[2]])
                    yield xs[a[1]].increment()
                    yield compute(1)
                    inside[a[2]] -= 1
                    yield m.unlock()
                elif a[0] == "compute":
                    yield compute(a[1])
                elif a[0] == "sleep":
                    yield sleep(a[1])
                elif a[0] == "nest":  # take both mutexes in the given order, then drop them
                    if held:
                        continue
                    for i in a[1]:
                        yield ms[i].lock()
                        yield sleep(a[2])
                    for i in reversed(a[1]):
                        yield ms[i].unlock()
                elif a[0] == "lock":
                    if ms[a[1]] not in held:
                        yield ms[a[1]].lock()
                        held.append(ms[a[1]])
                else:
                    while held:
                        yield held.pop().unlock()
            while held:
                yield held.pop().unlock()

        for i, actions in enumerate(spec):
            sim.spawn(f"T{i}", body, actions)
        return xs

    return program


@settings(max_examples=150, deadline=None)
@given(PROGRAM, st.integers(0, 10_000), st.integers(1, 3))
def test_mutual_exclusion_always_holds(spec, seed, cpus):
    counts = []
    run(build(spec, counts), policy="random", seed=seed, cpus=cpus)
    assert all(c == 1 for c in counts)


@settings(max_examples=150, deadline=None)
@given(PROGRAM, st.integers(0, 10_000), st.integers(1, 3))
def test_same_seed_same_trace(spec, seed, cpus):
    a = run(build(spec), policy="random", seed=seed, cpus=cpus)
    b = run(build(spec), policy="random", seed=seed, cpus=cpus)
    assert a.outcome == b.outcome and a.schedule == b.schedule
    assert a.sim.trace.first_difference(b.sim.trace) is None


@settings(max_examples=150, deadline=None)
@given(PROGRAM, st.integers(0, 10_000), st.integers(1, 3))
def test_replaying_the_schedule_gives_the_same_trace(spec, seed, cpus):
    a = run(build(spec), policy="random", seed=seed, cpus=cpus)
    b = run(build(spec), schedule=a.schedule, cpus=cpus)
    assert b.outcome == a.outcome
    assert b.sim.trace.first_difference(a.sim.trace) is None


@settings(max_examples=200, deadline=None)
@given(PROGRAM, st.integers(0, 10_000), st.integers(1, 3))
def test_every_deadlocked_run_is_reported_and_never_hangs(spec, seed, cpus):
    r = run(build(spec), policy="random", seed=seed, cpus=cpus)  # returns: it cannot hang
    blocked = [t for t in r.sim.threads if t.state == "blocked"]
    if r.outcome == "completed":
        assert not blocked and r.deadlock is None
    else:
        assert r.outcome in ("deadlock", "stuck")
        assert r.deadlock is not None
        reported = {w[0] for w in r.deadlock.waits}
        assert reported <= {t.name for t in blocked} and reported
        if r.outcome == "deadlock":
            # every thread in the cycle waits for a lock held by the next one
            names = r.deadlock.cycle
            for (_t, _what, by), nxt in zip(r.deadlock.waits, names[1:] + names[:1]):
                assert by == [nxt]


def test_the_generated_programs_do_deadlock_sometimes():
    # Guards the property above against passing vacuously.
    from hypothesis import find

    spec = find(
        PROGRAM,
        lambda sp: run(build(sp), cpus=2).outcome == "deadlock",
        settings=settings(max_examples=2000, database=None),
    )
    assert run(build(spec), cpus=2).deadlock.kind == "cycle"
