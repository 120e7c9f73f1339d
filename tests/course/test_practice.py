"""Practice problems: the same seed gives the same problem, and every stated answer holds when
the engine checks it again, by other means than the generator used.

The generator answers with optimal DPOR and shortest replayed schedules; these tests replay
every witness schedule strictly, run seeded random schedules, re-prove safety with another
reduction (source DPOR, and every interleaving for the first seeds), and recompute a trace's
verdict from the run itself.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import sys

import pytest

from labsupport import practice, run, trace_table
from labsupport.analysis import explore
from labsupport.present import trace_rows

SEEDS = range(30)
LEVELS = practice.DIFFICULTIES
#: The seeds whose answers are also re-proved over every interleaving (reduction="none").
EVERY_INTERLEAVING = range(6)
#: Seeded random schedules run against each answer.
RANDOM_RUNS = 25


@functools.cache
def made(kind: str, seed: int, difficulty: int) -> practice.Problem:
    return practice.problem(kind, seed, difficulty)


def x_of(result) -> int:
    return result.sim.model[0].value


def random_runs(program, n: int = RANDOM_RUNS):
    return [run(program, policy="random", seed=s, cpus=practice.CPUS) for s in range(n)]


def no_deadlock_proved(program, reduction: str) -> bool:
    e = explore(
        program,
        reduction=reduction,
        stop="first",
        minimize=False,
        max_runs=50_000,
        time_limit_s=None,
        cpus=practice.CPUS,
    )
    if e.failures:
        return False
    assert e.complete and not e.unplaced, e.summary()
    return True


def every_final_value(program) -> set[int]:
    """The final values of ``x`` over every interleaving, not reduced."""
    seen: set[int] = set()
    e = explore(
        program,
        reduction="none",
        stop="all",
        check=lambda r: seen.add(x_of(r)),
        minimize=False,
        max_runs=50_000,
        time_limit_s=None,
        cpus=practice.CPUS,
    )
    assert e.complete and not e.failures, e.summary()
    return seen


def body(text: str) -> str:
    """A problem's text without its first line (which names the seed)."""
    return text.split("\n", 1)[1]


# -- the same seed, the same problem -------------------------------------------------------------


@pytest.mark.parametrize("difficulty", LEVELS)
@pytest.mark.parametrize("kind", practice.KINDS)
def test_the_same_seed_gives_the_same_problem(kind, difficulty):
    for seed in range(4):
        a = practice.problem(kind, seed, difficulty)
        b = getattr(practice, kind)(seed=seed, difficulty=difficulty)
        assert (a.text, a.answer, a.explanation) == (b.text, b.answer, b.explanation)
        assert a.witnesses == b.witnesses and a.schedule == b.schedule
        assert a.text.startswith(f"{kind}(seed={seed}, difficulty={difficulty})\n")
        assert repr(a) == str(a) == a.text


DIGEST = """
import hashlib
from labsupport import practice
h = hashlib.sha256()
for kind in practice.KINDS:
    for difficulty in practice.DIFFICULTIES:
        for seed in range(2):
            p = practice.problem(kind, seed, difficulty)
            h.update(repr((p.text, p.answer, p.explanation, p.witnesses)).encode())
print(h.hexdigest())
"""


def test_the_same_seed_gives_the_same_problem_in_another_process():
    """No set order or string hash decides anything: other hash seeds, the same problems."""
    h = hashlib.sha256()
    for kind in practice.KINDS:
        for difficulty in LEVELS:
            for seed in range(2):
                p = made(kind, seed, difficulty)
                h.update(repr((p.text, p.answer, p.explanation, p.witnesses)).encode())
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", DIGEST], capture_output=True, text=True, check=True, env=env
        )
        assert out.stdout.strip() == h.hexdigest()


@pytest.mark.parametrize("difficulty", LEVELS)
@pytest.mark.parametrize("kind", practice.KINDS)
def test_different_seeds_give_different_problems(kind, difficulty):
    texts = [body(made(kind, seed, difficulty).text) for seed in SEEDS]
    assert len(set(texts)) >= 25, f"only {len(set(texts))} different problems in 30 seeds"
    assert all(a != b for a, b in zip(texts, texts[1:]))


def test_problem_draws_every_kind_from_the_seed():
    drawn = [practice.problem(seed=seed) for seed in range(30)]
    assert {p.kind for p in drawn} == set(practice.KINDS)
    for p in drawn[:5]:
        assert p.text == practice.problem(p.kind, p.seed, p.difficulty).text


# -- the answers hold ----------------------------------------------------------------------------


def steps(line_text: str) -> str:
    """``r = load x`` -> ``load x``; ``store x = r + 1`` -> ``store x``; ``lock m`` as is."""
    words = line_text.replace("r = ", "").split()
    return " ".join(words[:2])


@pytest.mark.parametrize("kind", ["final_value", "deadlock", "trace"])
def test_the_listing_is_the_program_that_runs(kind):
    """Each thread's column in the text is, step for step, what its thread does in a run."""
    for seed in range(10):
        p = made(kind, seed, 3)
        r = run(p.program, cpus=practice.CPUS)
        assert r.ok
        for i, lines in enumerate(p.code.threads):
            done = [
                steps(row["text"])
                for row in trace_rows(r)
                if row["thread"] == f"T{i}" and row["text"] != "exit"
            ]
            assert done == [steps(line.text()) for line in lines]
            for line in lines:
                assert line.text() in p.text


@pytest.mark.parametrize("difficulty", LEVELS)
def test_every_final_value_is_reached_and_no_other(difficulty):
    for seed in SEEDS:
        p = made("final_value", seed, difficulty)
        assert isinstance(p.answer, frozenset) and len(p.answer) >= 2
        assert sorted(p.witnesses) == sorted(p.answer)
        for value, schedule in p.witnesses.items():
            r = run(p.program, schedule=schedule, cpus=practice.CPUS)  # strict replay
            assert r.ok and x_of(r) == value, (seed, value, schedule)
        assert x_of(run(p.program, cpus=practice.CPUS)) in p.answer
        for r in random_runs(p.program):
            assert r.ok and x_of(r) in p.answer, (seed, r.schedule, x_of(r))
        if seed in EVERY_INTERLEAVING:
            seen = every_final_value(p.program)
            assert seen == set(p.answer), (seed, sorted(seen), p.answer)


@pytest.mark.parametrize("difficulty", LEVELS)
def test_a_deadlock_answer_replays_or_is_proved_absent(difficulty):
    answers = set()
    for seed in SEEDS:
        p = made("deadlock", seed, difficulty)
        answers.add(p.answer == "no")
        if p.answer != "no":
            assert p.witnesses == p.answer
            r = run(p.program, schedule=p.answer, cpus=practice.CPUS)
            assert r.outcome == "deadlock", (seed, p.answer, r)
            assert p.traces is None
        else:
            assert p.witnesses is None and p.traces >= 1
            assert no_deadlock_proved(p.program, "source"), seed
            if seed in EVERY_INTERLEAVING:
                assert no_deadlock_proved(p.program, "none"), seed
            assert all(r.ok for r in random_runs(p.program))
    assert answers == {True, False}, "both verdicts occur"


@pytest.mark.parametrize("difficulty", LEVELS)
def test_every_lock_order_choice_is_checked_again(difficulty):
    for seed in SEEDS:
        p = made("lock_order", seed, difficulty)
        assert sorted(p.choices) == list("ABCD") and sorted(p.variants) == list("ABCD")
        assert 1 <= len(p.answer) <= 3 and p.answer == "".join(sorted(p.answer))
        bodies = {code.threads[-1] for code in p.choices.values()}
        assert len(bodies) == 4, "four different bodies"
        for letter, code in p.choices.items():
            assert code.threads[:-1] == p.code.threads  # only the open thread differs
            program = p.variants[letter]
            if letter in p.answer:
                assert p.witnesses[letter] is None
                assert no_deadlock_proved(program, "source"), (seed, letter)
                if seed in EVERY_INTERLEAVING:
                    assert no_deadlock_proved(program, "none"), (seed, letter)
            else:
                r = run(program, schedule=p.witnesses[letter], cpus=practice.CPUS)
                assert r.outcome == "deadlock", (seed, letter)


@pytest.mark.parametrize("difficulty", LEVELS)
def test_a_trace_verdict_is_what_the_run_shows(difficulty):
    verdicts = set()
    for seed in SEEDS:
        p = made("trace", seed, difficulty)
        r = run(p.program, schedule=p.schedule, cpus=practice.CPUS)
        assert trace_table(r, show_time=False, max_rows=None) in strip_indent(p.text)
        increments = sum(1 for t in p.code.threads for line in t if line.op == "store")
        if r.outcome == "deadlock":
            expected = "deadlock"
        else:
            assert r.ok
            expected = "lost update" if x_of(r) != increments else "none"
        assert p.answer == expected, (seed, p.answer, expected)
        verdicts.add(expected)
        if expected != "deadlock":
            losses = practice._losses(r)
            assert sum(loss.current - loss.loaded for loss in losses) == increments - x_of(r)
            for loss in losses:
                assert f"Step {loss.step}: {loss.thread}" in p.explanation
    assert verdicts == set(practice.BUGS)


def strip_indent(text: str) -> str:
    return "\n".join(line[2:] if line.startswith("  ") else line for line in text.splitlines())


@pytest.mark.parametrize("difficulty", LEVELS)
def test_a_predicted_value_is_what_the_run_leaves(difficulty):
    for seed in SEEDS:
        p = made("predict", seed, difficulty)
        r = run(p.program, schedule=p.schedule, cpus=practice.CPUS)
        assert r.ok and x_of(r) == p.answer
        hidden = trace_table(r, reveal=False, show_time=False, max_rows=None)
        assert hidden in strip_indent(p.text) and "?" in hidden
        shown = trace_table(r, show_time=False, max_rows=None)
        assert shown in strip_indent(p.explanation)
        assert hidden != shown
        assert x_of(run(p.program, cpus=practice.CPUS)) != p.answer  # the interleaving matters


# -- checking answers ----------------------------------------------------------------------------


def right_answers(p: practice.Problem) -> list:
    """The answer, and other spellings of it that mean the same."""
    if p.kind == "final_value":
        return [p.answer, set(p.answer), sorted(p.answer), tuple(p.answer)]
    if p.kind == "deadlock":
        return [p.answer, "yes", True] if p.answer != "no" else ["no", "No", False]
    if p.kind == "lock_order":
        return [p.answer, set(p.answer), p.answer.lower(), ", ".join(p.answer)]
    if p.kind == "trace":
        return [p.answer, p.answer.upper(), p.answer.replace(" ", "_")]
    return [p.answer]


@pytest.mark.parametrize("kind", practice.KINDS)
def test_right_answers_pass(kind, capsys):
    for difficulty in LEVELS:
        for seed in range(10):
            p = made(kind, seed, difficulty)
            for answer in right_answers(p):
                assert p.check(answer, quiet=True) is True, (seed, answer)
            assert p.check(p.answer) is True
            out = capsys.readouterr().out
            assert out.startswith(f"✔ {p.name}: right — ")


def refused(p: practice.Problem, answer, capsys) -> str:
    """Check a wrong answer: it fails, and the message says why."""
    assert p.check(answer) is False, (p.name, answer)
    out = capsys.readouterr().out
    assert out.startswith(f"✘ {p.name}: not yet — ") and "p.explain()" in out
    return out


def test_wrong_final_values_are_refused_with_the_reason(capsys):
    for seed in range(10):
        p = made("final_value", seed, 2)
        low = min(p.answer)
        out = refused(p, set(p.answer) - {low}, capsys)
        assert f"you missed {low}: schedule " in out
        assert repr(p.witnesses[low]) in out
        impossible = max(p.answer) + 1000
        out = refused(p, set(p.answer) | {impossible}, capsys)
        assert f"{impossible} cannot happen" in out and "missed" not in out


def test_wrong_deadlock_answers_are_refused_with_the_reason(capsys):
    for difficulty in LEVELS:
        for seed in range(8):
            p = made("deadlock", seed, difficulty)
            if p.answer != "no":
                assert "it can: schedule" in refused(p, "no", capsys)
            else:
                assert "no schedule deadlocks" in refused(p, "yes", capsys)
            # T0 first, then first-come: T0 again until it ends, then the next; no deadlock
            assert "runs to its end" in refused(p, "0", capsys)
            if difficulty > 1:  # T0 has ended while T1 and T2 still choose: no thread 0 then
                assert "cannot be followed" in refused(p, "0" * 30, capsys)


def test_a_deadlocking_schedule_with_characters_to_spare_is_right(capsys):
    p = next(made("deadlock", s, 1) for s in SEEDS if made("deadlock", s, 1).answer != "no")
    full = str(run(p.program, schedule=p.answer, cpus=practice.CPUS).schedule)
    assert p.check(full + "01") is True
    assert "is never used" in capsys.readouterr().out


def test_wrong_lock_orders_are_refused_with_the_reason(capsys):
    for difficulty in LEVELS:
        for seed in range(5):
            p = made("lock_order", seed, difficulty)
            unsafe = sorted(set("ABCD") - set(p.answer))[0]
            out = refused(p, p.answer + unsafe, capsys)
            assert f"{unsafe} is not safe: schedule {p.witnesses[unsafe]!r}" in out
            if len(p.answer) > 1:
                out = refused(p, p.answer[1:], capsys)
                assert f"you left out {p.answer[0]}" in out
            out = refused(p, unsafe, capsys)
            assert "is not safe" in out and "left out" in out


def test_wrong_bugs_are_refused_with_the_reason(capsys):
    for seed in range(12):
        p = made("trace", seed, 2)
        for wrong in sorted(set(practice.BUGS) - {p.answer}):
            assert refused(p, wrong, capsys)


def test_wrong_predictions_are_refused_with_the_reason(capsys):
    for seed in range(10):
        p = made("predict", seed, 1)
        serial = x_of(run(p.program, cpus=practice.CPUS))
        assert "one after another" in refused(p, serial, capsys)
        other = next(v for v in range(p.answer + 1, p.answer + 3) if v != serial)
        assert f"does not end at {other}" in refused(p, other, capsys)


def test_answer_checks_at_once(capsys):
    p = practice.final_value(seed=0, difficulty=1, answer=set(made("final_value", 0, 1).answer))
    assert capsys.readouterr().out.startswith("✔ final_value(seed=0, difficulty=1)")
    assert isinstance(p, practice.Problem)
    practice.problem("predict", 0, 1, answer=made("predict", 0, 1).answer + 1)
    assert capsys.readouterr().out.startswith("✘ predict(seed=0, difficulty=1)")


def test_explain_prints_the_explanation(capsys):
    for kind in practice.KINDS:
        p = made(kind, 0, 1)
        p.explain()
        assert capsys.readouterr().out == p.explanation + "\n"


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "names"),
    [
        (lambda: practice.problem("race"), ValueError, "kind"),
        (lambda: practice.problem(kind=3), ValueError, "kind"),
        (lambda: practice.final_value(difficulty=7), ValueError, "difficulty"),
        (lambda: practice.deadlock(difficulty=0), ValueError, "difficulty"),
        (lambda: practice.lock_order(difficulty="2"), TypeError, "difficulty"),
        (lambda: practice.trace(difficulty=2.0), TypeError, "difficulty"),
        (lambda: practice.predict(seed=-1), ValueError, "seed"),
        (lambda: practice.problem(seed=1.5), TypeError, "seed"),
        (lambda: practice.final_value(seed=True), TypeError, "seed"),
        (lambda: practice.final_value(answer=2), TypeError, "answer"),
        (lambda: practice.final_value(answer="12"), TypeError, "answer"),
        (lambda: practice.final_value(answer={1.5}), ValueError, "answer"),
        (lambda: practice.deadlock(answer=3), TypeError, "answer"),
        (lambda: practice.deadlock(answer="maybe"), ValueError, "answer"),
        (lambda: practice.deadlock(answer="0120"), ValueError, "answer"),
        (lambda: practice.lock_order(answer="AZ"), ValueError, "answer"),
        (lambda: practice.lock_order(answer=""), ValueError, "answer"),
        (lambda: practice.lock_order(answer=1), TypeError, "answer"),
        (lambda: practice.lock_order(answer=[1, 2]), TypeError, "answer"),
        (lambda: practice.trace(answer="race"), ValueError, "answer"),
        (lambda: practice.trace(answer=0), TypeError, "answer"),
        (lambda: practice.predict(answer="3"), TypeError, "answer"),
        (lambda: practice.predict(answer=2.5), TypeError, "answer"),
        (lambda: made("predict", 0, 1).check(1, quiet="yes"), ValueError, "quiet"),
    ],
)
def test_bad_arguments_are_refused_at_once(call, error, names):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert message.startswith(names) and "got" in message


def test_the_allowed_answers_are_named():
    with pytest.raises(ValueError, match="'lost update', 'deadlock' or 'none'"):
        made("trace", 0, 1).check("race")
    with pytest.raises(ValueError, match="A, B, C and D"):
        made("lock_order", 0, 1).check("E")
    with pytest.raises(ValueError, match="thread numbers 0 to 1"):
        made("deadlock", 0, 1).check("02")
    with pytest.raises(TypeError, match=r"for one value: \{2\}"):
        made("final_value", 0, 1).check(2)


def test_an_unverified_problem_is_refused_not_stated(monkeypatch):
    """With too few runs to finish an exploration, no answer is given at all."""
    monkeypatch.setattr(practice, "MAX_RUNS", 1)
    monkeypatch.setattr(practice, "ATTEMPTS", 3)
    with pytest.raises(practice.ProblemUnverified, match="try another seed"):
        practice.final_value(seed=0, difficulty=2)
    with pytest.raises(practice.ProblemUnverified):
        practice.lock_order(seed=0, difficulty=2)
