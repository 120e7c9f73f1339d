"""A run never hangs the notebook: every runaway thread body ends with an error that names the
thread and its line, and says what to change.

Each hang reproducer runs in a subprocess (a kernel bug here would otherwise hang the test run);
the subprocess timeout is only a guard against such a hang. Nothing here asserts how long a run
took: a loaded CI machine would fail that.
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from labsupport.kernel import (
    LockHeldAtExit,
    MisuseError,
    Replay,
    Schedule,
    Simulation,
    StepLimitExceeded,
    compute,
    note,
    run,
    sleep,
    time_budget,
)
from labsupport.sync import QemuMutex

HEADER = """
from labsupport.kernel import *
from labsupport.loop import AioContext, aio_poll
from labsupport.coroutine import CoMutex, Coroutine, qemu_coroutine_enter
from labsupport.sync import QemuMutex

def helper():
    return
    yield

def report(call):
    try:
        r = call()
    except SimulationError as e:
        print("ERROR", type(e).__name__, e)
    else:
        print("RESULT", r)
"""


def run_code(body: str) -> str:
    """Run ``body`` (after ``HEADER``) as a script in a fresh interpreter; its output. A script
    file rather than ``-c``, so the messages can quote the source line."""
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "runaway.py"
        script.write_text(HEADER + textwrap.dedent(body))
        done = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 0, done.stderr
    return done.stdout


def one_thread(body: str, **options: str) -> str:
    opts = ", ".join(f"{k}={v}" for k, v in {"time_limit_s": "1", **options}.items())
    return run_code(
        body
        + f"""
def prog(sim):
    sim.spawn("spinner", spinner)
report(lambda: run(prog, {opts}))
"""
    )


def assert_names(out: str, error: str, line: str | tuple[str, ...]) -> None:
    """The error, the thread, and the line it was on (a loop's body or its ``while``: the alarm
    may land on either)."""
    assert out.startswith(f"ERROR {error}"), out
    assert "thread spinner" in out, out
    lines = (line,) if isinstance(line, str) else line
    assert any(text in out for text in lines), out


SPINNERS = {
    "yield from an empty helper": (
        """
def spinner():
    while True:
        yield from helper()
""",
        "TimeLimitExceeded",
        ("helper()", "`while True:`"),
    ),
    "a pure Python loop": (
        """
def spinner():
    yield note("start")
    while True:
        pass
""",
        "TimeLimitExceeded",
        "`while True:`",
    ),
    "sleep(0) for ever": (
        """
def spinner():
    while True:
        yield sleep(0)
""",
        "TimeLimitExceeded",
        "`yield sleep(0)`",
    ),
    "compute(0) for ever": (
        """
def spinner():
    while True:
        yield compute(0)
""",
        "TimeLimitExceeded",
        "`yield compute(0)`",
    ),
    "sleep(1) for ever": (
        """
def spinner():
    while True:
        yield sleep(1)
""",
        "TimeLimitExceeded",
        "`yield sleep(1)`",
    ),
    "yield a helper that returns at once": (
        """
def spinner():
    while True:
        yield helper()
""",
        "StepLimitExceeded",
        "`yield helper()`",
    ),
}


@pytest.mark.parametrize("name", SPINNERS)
def test_a_runaway_thread_body_ends_with_its_name_and_line(name):
    body, error, line = SPINNERS[name]
    out = one_thread(body)
    assert_names(out, error, line)
    assert "line " in out


def test_a_time_limit_says_what_the_learner_can_change():
    out = one_thread(SPINNERS["a pure Python loop"][0])
    assert "time budget of 1 s" in out and "until=" in out and "time_limit_s" in out


def test_a_body_that_yields_itself_is_refused_before_memory_runs_out():
    out = one_thread(
        """
def spinner():
    yield spinner()
"""
    )
    assert_names(out, "MisuseError", "`yield spinner()`")
    assert "100 deep" in out


def test_a_body_that_swallows_the_time_limit_is_stopped_anyway():
    out = one_thread(
        """
def spinner():
    yield note("start")
    while True:
        try:
            while True:
                pass
        except Exception:
            pass
"""
    )
    assert_names(out, "TimeLimitExceeded", "line ")


def test_a_daemon_that_polls_while_another_thread_is_stuck_ends():
    out = run_code(
        """
def prog(sim):
    ctx = AioContext(sim, "main")
    m = QemuMutex(sim, "m")

    def stuck():
        yield m.lock()
        yield m.lock()  # a QemuMutex is not recursive: refused

    def poller():
        while True:
            yield aio_poll(ctx, False)

    def waiter():
        yield sleep(1)
        yield m.lock()

    sim.spawn("spinner", poller, daemon=True)
    sim.spawn("owner", lambda: (yield m.lock()))
    sim.spawn("waiter", waiter)

report(lambda: run(prog, time_limit_s=1))
"""
    )
    assert out.startswith("ERROR"), out
    assert "thread spinner" in out and "aio_poll(ctx, False)" in out, out


def test_a_daemon_that_sleeps_in_a_loop_while_another_is_stuck_ends():
    out = run_code(
        """
def prog(sim):
    m = QemuMutex(sim, "m")

    def poller():
        while True:
            yield sleep(5)

    def waiter():
        yield sleep(1)
        yield m.lock()

    sim.spawn("spinner", poller, daemon=True)
    sim.spawn("owner", lambda: (yield m.lock()))
    sim.spawn("waiter", waiter)

report(lambda: run(prog, time_limit_s=1, on_exit_holding="ignore"))
"""
    )
    assert_names(out, "TimeLimitExceeded", "`yield sleep(5)`")


def test_an_uncontended_comutex_loop_in_a_coroutine_ends():
    out = run_code(
        """
def prog(sim):
    m = CoMutex(sim, "m")

    def co_body():
        while True:
            yield m.lock()
            yield m.unlock()

    def spinner():
        yield qemu_coroutine_enter(Coroutine(sim, co_body))

    sim.spawn("spinner", spinner)

report(lambda: run(prog, time_limit_s=1))
"""
    )
    assert_names(out, "TimeLimitExceeded", "line ")


def test_check_reports_a_non_terminating_answer_as_a_failed_verdict():
    out = run_code(
        """
import labsupport.exercises as ex
from labsupport.shared import Shared
ex.CHECK_TIME_LIMIT_S = 1

def answer(sim):
    counter = Shared(sim, "counter", 0)

    def spinner():
        while True:
            yield sleep(1)

    for name in ("spinner", "b", "c"):
        sim.spawn(name, spinner)
    return counter

print("VERDICT", ex.check("0.3", answer))
"""
    )
    assert "VERDICT False" in out, out
    assert "✘ 0.3: not yet" in out and "never finished" in out, out
    assert "was at line" in out and "`yield sleep(1)`" in out, out
    assert "max_steps" not in out and "Traceback" not in out, out


def test_a_run_in_a_run_restores_the_outer_alarm():
    out = run_code(
        """
import signal

def inner_prog(sim):
    sim.spawn("inner", lambda: (yield sleep(1)))

def outer(sim):
    def body():
        yield note("before")
        assert run(inner_prog, time_limit_s=5).ok
        while True:
            pass
    sim.spawn("spinner", body)

report(lambda: run(outer, time_limit_s=1))
print("HANDLER", signal.getsignal(signal.SIGALRM) is signal.SIG_DFL)
print("TIMER", signal.getitimer(signal.ITIMER_REAL))
"""
    )
    assert_names(out, "TimeLimitExceeded", "`while True:`")
    assert "HANDLER True" in out and "TIMER (0.0, 0.0)" in out, out


# --------------------------------------------------------------------------------------------
# The time budget and the limits, in process (no runaway here).


def test_time_budget_is_what_runs_inside_inherit():
    sim = Simulation()
    sim.spawn("t", lambda: (yield sleep(1)))
    with time_budget(3):
        assert sim.run().ok
    assert sim._limit_s == 3
    sim2 = Simulation(time_limit_s=7)
    sim2.spawn("t", lambda: (yield sleep(1)))
    with time_budget(3):
        sim2.run()
    assert sim2._limit_s == 7


def test_valid_work_at_one_instant_is_not_a_spin():
    from labsupport.chapters.ch00.scenarios import counter_experiment

    outcome = counter_experiment(threads=4, increments=9000)
    assert outcome.expected == 36000 and outcome.result.ok


def test_the_step_limit_names_the_thread_that_spun_not_the_ones_that_never_ran():
    def prog(sim):
        flag = {"set": False}

        def spinner():
            while not flag["set"]:
                yield note("poll")

        def setter():
            yield sleep(1)
            flag["set"] = True

        def bystander():
            yield sleep(1)

        sim.spawn("spinner", spinner)
        sim.spawn("setter", setter)
        sim.spawn("bystander", bystander)

    with pytest.raises(StepLimitExceeded) as e:
        run(prog, max_steps_per_instant=1000)
    text = str(e.value)
    assert "spinner seems to be spinning" in text
    assert "setter" not in text and "bystander" not in text
    assert '`yield note("poll")`' in text
    assert "sleep()" in text and "max_steps_per_instant" in text
    assert "thread spinner" in e.value.where


def test_sub_generator_resumptions_count_as_steps():
    def helper():
        return 1
        yield

    def prog(sim):
        def body():
            for _ in range(50):
                yield helper()
            yield sleep(1)

        sim.spawn("t", body)

    assert run(prog).steps >= 2
    with pytest.raises(StepLimitExceeded, match="t seems to be spinning"):
        run(lambda sim: sim.spawn("t", lambda: (yield from iter_helpers())), max_steps=10)


def iter_helpers():
    def helper():
        return
        yield

    while True:
        yield helper()


def test_a_generator_the_kernel_cannot_drive_is_refused():
    def helper():
        yield note("a")

    def prog(sim):
        g = helper()

        def body():
            yield g
            yield g  # finished: yielding it again would silently do nothing

        sim.spawn("t", body)

    with pytest.raises(MisuseError, match="already started"):
        run(prog)

    async def not_a_generator():
        return None

    def prog2(sim):
        def body():
            co = not_a_generator()
            try:
                yield co
            finally:
                co.close()

        sim.spawn("t", body)

    with pytest.raises(TypeError, match="async def"):
        run(prog2)


# --------------------------------------------------------------------------------------------
# A thread that ends holding a lock.


def holder_program(sim):
    m = QemuMutex(sim, "m")

    def forgetful():
        yield m.lock()
        yield sleep(1)

    sim.spawn("forgetful", forgetful)
    return m


def test_a_thread_that_ends_holding_a_lock_is_a_warning():
    r = run(holder_program)
    assert r.ok
    assert len(r.warnings) == 1
    assert "thread forgetful ended at t=1 us while holding mutex m" in r.warnings[0]
    assert "warning: thread forgetful" in str(r)


def test_a_thread_that_ends_holding_a_lock_is_an_error_on_request():
    with pytest.raises(LockHeldAtExit, match="forgetful"):
        run(holder_program, on_exit_holding="raise")
    assert run(holder_program, on_exit_holding="ignore").warnings == []


def test_a_thread_that_unlocks_gives_no_warning():
    def prog(sim):
        m = QemuMutex(sim, "m")

        def tidy():
            yield m.lock()
            yield m.unlock()

        sim.spawn("tidy", tidy)

    r = run(prog)
    assert r.warnings == [] and "warning" not in str(r)


# --------------------------------------------------------------------------------------------
# Replays that replay.


def drawing_program(sim):
    """Two threads whose work depends on the seed (``sim.rng``) and on who goes first."""
    m = QemuMutex(sim, "m")
    order = []

    def worker(i):
        for _ in range(3):
            yield m.lock()
            order.append(i)
            yield compute(sim.rng.randint(1, 9))
            yield m.unlock()
            yield sleep(sim.rng.randint(0, 3))

    for i in range(3):
        sim.spawn(f"w{i}", worker, i)
    return order


def abba(sim):
    a, b = QemuMutex(sim, "a"), QemuMutex(sim, "b")

    def t(first, second):
        yield first.lock()
        yield sleep(1)
        yield second.lock()

    sim.spawn("t1", t, a, b)
    sim.spawn("t2", t, b, a)


def test_replay_reruns_the_same_run():
    r = run(drawing_program, policy="random", seed=3, cpus=2, until=200)
    again = r.replay()
    assert (again.outcome, again.time, again.schedule) == (r.outcome, r.time, r.schedule)
    assert again.sim.model == r.sim.model
    assert again.sim.seed == 3 and again.sim.cpus.n == 2


def test_the_recipe_is_the_whole_call():
    r = run(drawing_program, policy="random", seed=3, cpus=2, until=200)
    assert (
        r.recipe()
        == f"run(drawing_program, schedule={str(r.schedule)!r}, seed=3, cpus=2, until=200)"
    )
    plain = run(abba)
    assert plain.recipe() == f"run(abba, schedule={str(plain.schedule)!r})"
    closure = run(lambda sim: abba(sim), expand=False)
    assert (
        closure.recipe().startswith("run(program, schedule=") and "expand=False" in closure.recipe()
    )


def test_a_deadlock_report_prints_the_recipe():
    r = run(abba, cpus=2, seed=4)
    assert r.outcome == "deadlock"
    assert (
        f"replay it with run(abba, schedule={str(r.schedule)!r}, seed=4, cpus=2)"
        in r.deadlock.text()
    )


def test_the_recorded_schedule_brings_its_options():
    r = run(drawing_program, policy="random", seed=3, cpus=2)
    again = run(drawing_program, schedule=r.schedule)
    assert (again.outcome, again.time, again.sim.model) == (r.outcome, r.time, r.sim.model)


@pytest.mark.parametrize("option", [dict(seed=4), dict(cpus=1), dict(expand=False), dict(until=5)])
def test_a_replay_with_other_options_is_refused(option):
    r = run(drawing_program, policy="random", seed=3, cpus=2)
    name = next(iter(option))
    with pytest.raises(ValueError, match=f"{name}=.*recorded with {name}=") as e:
        run(drawing_program, schedule=r.schedule, **option)
    assert "run(drawing_program, schedule=" in str(e.value)


def test_a_recorded_schedule_in_a_replay_policy_is_checked_too():
    r = run(drawing_program, policy="random", seed=3)
    with pytest.raises(ValueError, match="seed=0 .recorded with seed=3"):
        Simulation(policy=Replay(r.schedule))


def test_a_hand_written_or_edited_schedule_replays_as_given():
    r = run(drawing_program, policy="random", seed=3)
    assert isinstance(r.schedule, Schedule)
    cut = r.schedule[:3]
    assert type(cut) is str
    run(drawing_program, schedule=cut, seed=5)  # no recorded options: no refusal
    assert run(drawing_program, schedule=str(r.schedule), seed=3).schedule == r.schedule


def test_replay_needs_a_program():
    sim = Simulation()
    sim.spawn("t", lambda: (yield sleep(1)))
    with pytest.raises(ValueError, match="not started by run"):
        sim.run().replay()


# --------------------------------------------------------------------------------------------
# run() and Simulation() refuse bad arguments, naming them.


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(until=-5), "until"),
        (dict(until=math.nan), "until"),
        (dict(until="10"), "until"),
        (dict(max_steps=math.nan), "max_steps"),
        (dict(max_steps="1e6"), "max_steps"),
        (dict(max_steps=0), "max_steps"),
        (dict(max_steps_per_instant=2.5), "max_steps_per_instant"),
        (dict(trace="no"), "trace"),
        (dict(expand="no"), "expand"),
        (dict(policy="fastest"), "policy"),
        (dict(time_limit_s=0), "time_limit_s"),
        (dict(time_limit_s=-1), "time_limit_s"),
        (dict(time_limit_s="5"), "time_limit_s"),
        (dict(time_limit_s=math.inf), "time_limit_s"),
        (dict(on_exit_holding="maybe"), "on_exit_holding"),
    ],
)
def test_bad_run_arguments_are_refused_with_their_name(kwargs, name):
    with pytest.raises((ValueError, TypeError)) as e:
        run(abba, **kwargs)
    text = str(e.value)
    assert text.startswith(name) or f"policy {kwargs.get('policy')!r}" in text, text
    assert repr(next(iter(kwargs.values()))) in text or "nan" in text


def test_a_program_must_be_callable():
    with pytest.raises(TypeError, match="program must be a function .*got 'text'"):
        run("text")


def test_time_budget_refuses_a_bad_budget():
    with pytest.raises((ValueError, TypeError), match="time_budget"):
        with time_budget(0):
            pass


def test_bad_until_in_simulation_run():
    sim = Simulation()
    sim.spawn("t", lambda: (yield sleep(1)))
    with pytest.raises(ValueError, match="until must be None"):
        sim.run(until=-1)


def test_zero_time_steps_with_a_generous_budget_still_complete():
    def prog(sim):
        def body():
            for _ in range(5000):
                yield note("x")

        for i in range(3):
            sim.spawn(f"t{i}", body)

    assert run(prog, max_steps_per_instant=6000).ok  # 5,000 steps each, 6,000 allowed each
    assert run(prog, max_steps_per_instant=6000, trace=False).steps >= 15000
    _ = compute  # (imported for the subprocess header's parity)


def test_a_widget_view_runs_under_the_widget_budget(capsys):
    import labsupport.kernel as kernel
    from labsupport.widgets import WIDGET_TIME_LIMIT_S, budgeted

    seen = []

    def view(n: int = 1) -> int:
        """A view."""
        seen.append(kernel._budget_s)
        raise StepLimitExceeded("spun", "thread t was at line 1")

    wrapped = budgeted(view)
    assert wrapped.__name__ == "view" and wrapped.__wrapped__ is view
    assert wrapped(3) is None
    assert seen == [WIDGET_TIME_LIMIT_S]
    assert "this setting did not finish: spun" in capsys.readouterr().out
    assert kernel._budget_s == kernel.DEFAULT_TIME_LIMIT_S


def test_outside_the_main_thread_the_clock_still_stops_a_time_loop():
    out = run_code(
        """
import threading

def spinner():
    while True:
        yield sleep(1)

def prog(sim):
    sim.spawn("spinner", spinner)

worker = threading.Thread(target=lambda: report(lambda: run(prog, time_limit_s=1)))
worker.start()
worker.join()
"""
    )
    assert_names(out, "TimeLimitExceeded", "`yield sleep(1)`")
