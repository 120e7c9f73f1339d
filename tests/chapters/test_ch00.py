"""What chapter 0 teaches, asserted: each claim of the notebook is a test here too."""

import json
import math
import re
from pathlib import Path

from chapter_opening import heading_id, opening, problems

from labsupport import QemuMutex, Shared, compute, explore, pct, run
from labsupport.chapters.ch00 import checks
from labsupport.chapters.ch00.scenarios import (
    abba_program,
    counter_experiment,
    counter_program,
    first_losing_seed,
)
from labsupport.chapters.ch05.scenarios import r3_program

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "00-toolkit.ipynb"


def test_the_chapter_opens_with_goals_a_time_and_a_map_of_every_section():
    assert problems(NOTEBOOK) == []
    o = opening(NOTEBOOK)
    assert "Be-the-scheduler" in o.map_targets and "Practice:-a-new-problem-from-a-seed" in (
        o.map_targets
    )
    assert len(o.numbered_sections) == 7


def test_the_opening_checker_can_fail(tmp_path):
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    first = "".join(nb["cells"][0]["source"])
    broken = first.replace("(#7.-Every-schedule)", "(#7.-Every-schedules)").replace(
        "**Time:** about", "**Time:** roughly"
    )
    nb["cells"][0]["source"] = broken.splitlines(keepends=True)
    nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": ["word " * 2000]})
    path = tmp_path / "broken.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    found = problems(path)
    assert "map link #7.-Every-schedules reaches no heading" in found
    assert "section 7.-Every-schedule is not in the map" in found
    assert "no '**Time:** about N minutes.' line" in found
    assert any(p.endswith("words of prose (fewer than 2000)") for p in found)
    assert heading_id("3. The fix: a `QemuMutex`") == "3.-The-fix:-a-QemuMutex"


def test_the_choice_notation_is_explained_where_the_first_table_is_shown():
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    first_table = next(
        i
        for i, c in enumerate(cells)
        if c["cell_type"] == "code" and "trace_table(" in "".join(c["source"])
    )
    before = " ".join("".join(cells[first_table - 1]["source"]).split())
    assert "`0/2` means thread 0 went while 2 threads could have" in before
    assert "numbered in the order they were spawned" in before
    assert "[primer](00-primer.ipynb)" in "".join(cells[0]["source"])
    # the question that uses expand=False says what it does
    assert any(
        "expand=False`, which makes" in " ".join("".join(c["source"]).split()) for c in cells
    )


def test_first_come_never_loses_but_most_random_schedules_do():
    assert counter_experiment(seed=0, policy="first-come").lost == 0
    losing = [s for s in range(100) if counter_experiment(seed=s).lost]
    assert len(losing) > 50
    assert first_losing_seed() == losing[0]


def test_the_mutex_fixes_the_counter_on_every_schedule():
    for threads, traces in [(2, 6), (3, 90)]:
        e = explore(counter_program(threads, 2, locked=True), check=counter_is(2 * threads))
        assert e.complete and not e.failures and e.traces == traces
        assert e.verdict == f"no schedule breaks it: {traces} traces, complete"
    for seed in range(300):
        assert counter_experiment(seed=seed, locked=True, threads=2).lost == 0
    for seed in range(50):
        assert counter_experiment(seed=seed, locked=True, threads=5, increments=3).lost == 0


def test_opposite_orders_deadlock_and_one_order_never_does():
    def ordered(sim):
        a, b = QemuMutex(sim, "A"), QemuMutex(sim, "B")

        def worker():
            yield a.lock()
            yield compute(5)
            yield b.lock()
            yield compute(5)
            yield b.unlock()
            yield a.unlock()

        sim.spawn("T1", worker)
        sim.spawn("T2", worker)

    assert explore(ordered, cpus=2).verdict == "no schedule breaks it: 2 traces, complete"
    cx = explore(abba_program(), cpus=2).counterexample
    assert cx.failure.startswith("deadlock: ") and "waits for" in cx.failure
    assert run(abba_program(), cpus=2, schedule=cx.schedule).outcome == "deadlock"
    for seed in range(200):
        assert run(ordered, cpus=2, policy="random", seed=seed).outcome == "completed"
        assert run(abba_program(), cpus=2, policy="random", seed=seed).outcome == "deadlock"


def test_the_shortest_lost_update_schedule():
    r = run(counter_program(2, 1), schedule="10")
    assert r.sim.model.counter.value == 1


def counter_is(expected):
    def check(r):
        value = r.sim.model.counter.value
        return None if value == expected else f"counter = {value}"

    return check


def test_every_schedule_of_the_counter_has_three_outcomes_in_34_traces():
    every = explore(counter_program(2, 2), check=lambda r: None, stop="all")
    assert every.complete and every.traces == every.runs == 34 and every.blocked == 0
    finals = {}
    for _what, (n, schedule) in every.outcomes.items():
        value = run(counter_program(2, 2), schedule=schedule).sim.model.counter.value
        finals[value] = finals.get(value, 0) + n
    assert finals == {2: 12, 3: 16, 4: 6}


def test_dpor_needs_far_fewer_runs_than_interleavings():
    none = explore(counter_program(2, 2), reduction="none", check=lambda r: None, stop="all")
    assert none.runs == math.comb(8, 4) == 70 and none.traces == 34
    three = explore(counter_program(3, 2), check=lambda r: None, stop="all")
    assert three.complete and three.runs == three.traces == 7134
    assert math.factorial(12) // math.factorial(4) ** 3 == 34650


def test_the_shortest_counterexample_has_one_preemption_and_replays():
    broken = explore(counter_program(2, 2), check=counter_is(4))
    cx = broken.counterexample
    assert cx.preemptions == 1 and cx.failure == "counter = 2"
    assert cx.replay().sim.model.counter.value == 2
    assert "<- races with" in cx.listing()


def test_one_increment_each_has_four_traces_two_of_them_lose():
    every = explore(counter_program(2, 1), check=counter_is(2), stop="all", minimize=False)
    assert every.complete and every.traces == 4 and len(every.failures) == 2


def test_pct_states_its_guarantee_and_finds_the_lost_update():
    sampled = pct(counter_program(3, 2), runs=300, seed=0, check=counter_is(6))
    assert sampled.failures and "probability >= 1/(3*" in sampled.guarantee
    assert sampled.counterexample.replay().sim.model.counter.value < 6
    # what the chapter says of the bound: 1/(n*k^(d-1)) with n, k, d = 3, 21, 2, and 300 runs
    # that all miss such a bug with a chance under 1%
    assert sampled.probability == 1 / (3 * 21 ** (2 - 1))
    assert (1 - sampled.probability) ** 300 < 0.01
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    prose = " ".join(" ".join("".join(c["source"]) for c in cells).split())
    assert "(here 3, 21 and 2): 300 runs all miss it with a chance under 1%" in prose


def _three_threads(unlocked_last: bool):
    """Exercise 0.3's shape: 3 threads, 3 increments each; optionally the last one unlocked."""

    def program(sim):
        c, m = Shared(sim, "counter", 0), QemuMutex(sim, "lock")

        def worker():
            for k in range(3):
                locked = not (unlocked_last and k == 2)
                if locked:
                    yield m.lock()
                yield c.increment()
                if locked:
                    yield m.unlock()

        for i in range(3):
            sim.spawn(f"T{i}", worker)
        return c

    return program


def test_the_fix_checker_proves_a_right_fix_over_every_schedule():
    ok, message = checks._fixed_00(_three_threads(False))
    assert ok and message == "no schedule breaks it: 1,680 traces, complete"


def test_the_fix_checker_refuses_a_fix_with_the_schedule_that_breaks_it():
    program = _three_threads(True)
    ok, message = checks._fixed_00(program)
    assert not ok and "breaks it" in message
    schedule = re.search(r"schedule='([0-9]+)'", message).group(1)
    final = run(program, schedule=schedule, cpus=2).sim.model.value
    assert message.startswith(f"the counter ends at {final}, not 9") and final < 9


def test_an_opaque_exploration_finds_the_lost_wake_up_and_proves_the_handshake():
    # the context's BH list and notify_me are plain attributes: every step must conflict
    buggy = explore(r3_program(fixed=False), cpus=1, opaque=True)
    assert buggy.counterexample is not None and buggy.counterexample.failure.startswith("stuck")
    assert run(r3_program(False), schedule=buggy.counterexample.schedule).outcome == "stuck"
    fixed = explore(r3_program(fixed=True), cpus=1, opaque=True)
    assert fixed.complete and not fixed.failures


def test_the_fix_checker_refuses_a_counter_that_does_not_count():
    def constant(sim):  # ends at 9 on every schedule: one store, two idle threads
        c = Shared(sim, "counter", 0)

        def setter():
            yield c.store(9)

        def idle():
            yield compute(1)

        sim.spawn("T0", setter)
        sim.spawn("T1", idle)
        sim.spawn("T2", idle)
        return c

    def leaps(sim):  # every thread stores three times, but not one more each time
        c, m = Shared(sim, "counter", 0), QemuMutex(sim, "lock")

        def worker(step):
            def body():
                for k in range(3):
                    yield m.lock()
                    v = yield c.load()
                    yield c.store(v + (step if k == 0 else 1))
                    yield m.unlock()

            return body

        sim.spawn("T0", worker(3))
        sim.spawn("T1", worker(-1))
        sim.spawn("T2", worker(1))
        return c

    ok, message = checks._fixed_00(constant)
    assert not ok and "three times" in message and "[1, 0, 0]" in message
    ok, message = checks._fixed_00(leaps)
    assert not ok and "one more than the one before it" in message


def test_the_fix_checker_explains_a_worker_without_yield():
    def no_yield(sim):
        c, m = Shared(sim, "counter", 0), QemuMutex(sim, "lock")

        def worker():
            for _ in range(3):
                m.lock()
                c.increment()
                m.unlock()

        for i in range(3):
            sim.spawn(f"T{i}", worker)
        return c

    ok, message = checks._fixed_00(no_yield)
    assert not ok and "must be a generator function" in message


def test_blocked_time_is_the_waits_for_the_lock_and_for_a_cpu():
    """Section 5: "`blocked` counts waits for the lock and for a CPU; the lock's row counts only
    its own (60 us of the 70)"."""
    from labsupport import metrics
    from labsupport.chapters.ch00.scenarios import busy_program as busy

    m = metrics(run(busy, cpus=2, policy="random", seed=4))
    assert sum(m.blocked_us.values()) == 70
    assert m.locks["lock"].wait_total == 60
