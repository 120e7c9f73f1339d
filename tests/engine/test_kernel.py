"""The kernel: time, CPUs, choice points, schedules, replay, deadlock detection, limits."""

import pytest
import simpy

from labsupport import (
    DeadlockError,
    QemuEvent,
    QemuMutex,
    ScheduleDivergence,
    Shared,
    Simulation,
    StepLimitExceeded,
    ThreadCrashed,
    compute,
    note,
    run,
    sleep,
)
from labsupport.chapters.ch00.scenarios import abba_program, counter_program


def test_simpy_is_the_pinned_version_and_the_internal_clock_we_read_exists():
    # The kernel reads Environment._now on its hot path (Simulation.record; measured faster than
    # env.now, see kernel.py); this pins the SimPy it was tested on (pyproject.toml: simpy<5).
    assert simpy.__version__ == "4.1.2"
    env = simpy.Environment(initial_time=5)
    assert env._now == env.now == 5


def test_compute_needs_a_cpu_and_waits_for_one():
    sim = Simulation(cpus=1)

    def body():
        yield compute(50)

    sim.spawn("a", body)
    sim.spawn("b", body)
    r = sim.run()
    assert r.ok and r.time == 100  # one CPU: the second computation waits for the first

    sim2 = Simulation(cpus=2)
    sim2.spawn("a", body)
    sim2.spawn("b", body)
    assert sim2.run().time == 50


def test_sleep_uses_no_cpu():
    sim = Simulation(cpus=1)

    def body():
        yield sleep(30)

    for i in range(3):
        sim.spawn(f"t{i}", body)
    assert sim.run().time == 30


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "5", None, True])
def test_bad_durations_are_refused_at_once(bad):
    with pytest.raises((ValueError, TypeError), match="microseconds"):
        compute(bad)
    with pytest.raises((ValueError, TypeError), match="microseconds"):
        sleep(bad)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(cpus=0), "cpus"),
        (dict(cpus=1.5), "cpus"),
        (dict(seed="x"), "seed"),
        (dict(policy="fastest"), "unknown policy"),
        (dict(schedule="0?1"), "not allowed"),
        (dict(on_deadlock="explode"), "on_deadlock"),
    ],
)
def test_bad_simulation_parameters_say_what_is_allowed(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        Simulation(**kwargs)


def test_a_body_must_be_a_generator():
    sim = Simulation()
    with pytest.raises(TypeError, match="generator function"):
        sim.spawn("t", lambda: 42)
    sim.spawn("ok", lambda: (yield))
    with pytest.raises(ValueError, match="already a thread"):
        sim.spawn("ok", lambda: (yield))


def test_yielding_something_else_is_explained():
    sim = Simulation()

    def body():
        yield 5

    sim.spawn("t", body)
    with pytest.raises(TypeError, match="may yield an operation"):
        sim.run()


def test_first_come_runs_a_thread_until_it_waits():
    r = run(counter_program(threads=2, increments=3))
    assert r.sim.model.counter.value == 6  # no interleaving inside a zero-time burst
    assert set(r.schedule) == {"0"}  # thread 0 keeps going while it can


def test_choices_are_only_recorded_where_more_than_one_thread_could_move():
    def prog(sim):
        sim.spawn("only", lambda: (yield note("x")))

    assert run(prog).schedule == ""
    r = run(counter_program(threads=2, increments=1))
    assert len(r.schedule) == 4  # load, add, store, exit by thread 0 while thread 1 waited


def test_random_policy_finds_a_lost_update_and_the_same_seed_gives_the_same_run():
    finals = {}
    for seed in range(30):
        r = run(counter_program(threads=2, increments=2), policy="random", seed=seed)
        finals[seed] = r.sim.model.counter.value
    assert min(finals.values()) < 4 and max(finals.values()) == 4
    r1 = run(counter_program(2, 2), policy="random", seed=2)
    r2 = run(counter_program(2, 2), policy="random", seed=2)
    assert r1.schedule == r2.schedule and r1.sim.trace.same_as(r2.sim.trace)


def test_replay_reproduces_a_run_event_for_event():
    r1 = run(counter_program(3, 2), policy="random", seed=11)
    r2 = run(counter_program(3, 2), schedule=r1.schedule)
    assert r2.sim.trace.first_difference(r1.sim.trace) is None
    assert r2.sim.model.counter.value == r1.sim.model.counter.value


def test_replay_that_diverges_says_where():
    r1 = run(counter_program(2, 2), policy="random", seed=3)
    with pytest.raises(ScheduleDivergence, match="choice 1"):
        run(counter_program(2, 2), schedule="5" + r1.schedule[1:])
    with pytest.raises(ScheduleDivergence, match="ended after"):
        run(counter_program(2, 2), schedule=r1.schedule + "0000000")


def test_a_schedule_prefix_is_followed_then_first_come():
    # Thread 1 goes first, then thread 0 is chosen after its load: a lost update, by hand.
    r = run(counter_program(2, 1), schedule="10")
    # 1 loads 0; 0 runs to completion (stores 1); 1 stores 1.
    assert r.sim.model.counter.value == 1


def test_abba_deadlock_is_detected_reported_and_never_hangs():
    r = run(abba_program(), cpus=2)
    assert r.outcome == "deadlock"
    rep = r.deadlock
    assert sorted(rep.cycle) == ["T1", "T2"]
    text = rep.text()
    assert "T1 waits for mutex B, held by T2" in text
    assert "T2 waits for mutex A, held by T1" in text
    # the reported schedule replays into the same deadlock
    again = run(abba_program(), cpus=2, schedule=rep.schedule)
    assert again.outcome == "deadlock" and again.time == r.time


def test_deadlock_can_raise_instead():
    with pytest.raises(DeadlockError) as ei:
        run(abba_program(), cpus=2, on_deadlock="raise")
    assert ei.value.report.kind == "cycle"


def test_join_cycle_through_a_lock_is_a_deadlock():
    def prog(sim):
        m = QemuMutex(sim, "m")

        def child():
            yield sleep(1)
            yield m.lock()

        def parent():
            yield m.lock()
            yield c.join()

        c = sim.spawn("child", child)
        sim.spawn("parent", parent)

    r = run(prog)
    assert r.outcome == "deadlock"
    assert "thread child to finish" in r.deadlock.text()


def test_waiting_for_an_event_nobody_sets_is_reported_as_stuck():
    def prog(sim):
        ev = QemuEvent(sim, "done")
        sim.spawn("waiter", lambda: (yield ev.wait()))

    r = run(prog)
    assert r.outcome == "stuck"
    assert "waiter waits for event done (nobody is left to set it)" in r.deadlock.text()


def test_a_spinning_thread_is_stopped_with_an_explanation():
    def prog(sim):
        flag = Shared(sim, "flag", 0)

        def spinner():
            while (yield flag.load()) == 0:
                pass

        def setter():
            yield flag.store(1)

        sim.spawn("spinner", spinner)
        sim.spawn("setter", setter)

    with pytest.raises(StepLimitExceeded, match="spinning"):
        run(prog, max_steps_per_instant=1000)
    # a random scheduler lets the setter in, and the run completes
    assert run(prog, policy="random", seed=1).ok


def test_a_failed_assert_in_a_thread_is_reported_with_its_name():
    def prog(sim):
        def body():
            yield note("about to fail")
            assert 1 == 2, "invariant broken"

        sim.spawn("checker", body)

    with pytest.raises(ThreadCrashed, match="checker raised AssertionError"):
        run(prog)
    r = run(prog, on_crash="return")
    assert r.outcome == "crashed" and "invariant broken" in str(r.error)


def test_sub_generators_are_steps_of_the_same_thread():
    def helper(x):
        v = yield x.load()
        yield x.store(v * 10)
        return v

    def prog(sim):
        x = Shared(sim, "x", 4)

        def body():
            old = yield helper(x)
            yield x.store(old + (yield x.load()))

        sim.spawn("t", body)
        return x

    assert run(prog).sim.model.value == 44


def test_time_limit_stops_a_run_and_it_can_go_on():
    sim = Simulation()

    def body():
        for _ in range(10):
            yield sleep(10)

    sim.spawn("t", body)
    r = sim.run(until=35)
    assert r.outcome == "time limit" and r.time == 35
    assert sim.run().ok and sim.now == 100


def test_marks_give_throughput_and_latency():
    from labsupport import metrics

    def prog(sim):
        def body():
            for _ in range(5):
                start = sim.now
                yield compute(20)
                sim.mark("op", since=start)

        sim.spawn("t", body)

    m = metrics(run(prog))
    assert m.marks["op"].count == 5
    assert m.marks["op"].p(99) == 20
    assert m.marks["op"].throughput_per_s == pytest.approx(5 / 100e-6)


def test_a_polling_daemon_is_bounded_by_until_and_idle_daemons_are_not_stuck():
    def prog(sim):
        def poller():
            while True:
                yield sleep(10)
                yield note("poll")

        sim.spawn("poller", poller, daemon=True)
        sim.spawn("worker", lambda: (yield compute(35)))

    r = run(prog, until=100)
    assert r.outcome == "time limit" and r.time == 100

    def idle(sim):
        from labsupport import QemuEvent

        ev = QemuEvent(sim, "never")
        sim.spawn("loop", lambda: (yield ev.wait()), daemon=True)
        sim.spawn("worker", lambda: (yield compute(5)))

    assert run(idle).outcome == "completed"
