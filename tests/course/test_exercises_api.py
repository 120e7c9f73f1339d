"""check(), hint() and reset(): the learner's side of the exercises (labsupport.exercises)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labsupport import exercises

_real_load_chapter = exercises.load_chapter


@pytest.fixture(autouse=True)
def registry(monkeypatch):
    """Each test starts with an empty registry, and no chapter's checkers are loaded into it;
    the real one is restored afterwards."""
    monkeypatch.setattr(exercises, "_REGISTRY", {})
    monkeypatch.setattr(exercises, "load_chapter", lambda number: None)


@pytest.fixture(autouse=True)
def private_git(monkeypatch, tmp_path):
    """No user or system git settings, and no repository above tmp_path, leak into a test."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))


def is_answer(expected):
    def checker(answer):
        if answer == expected:
            return True, f"{expected} updates survive"
        return False, f"{answer} is not it"

    return checker


def test_check_passes_with_one_line(capsys):
    exercises.register("0.1", is_answer(4), "count the updates")
    assert exercises.check("0.1", 4) is True
    assert capsys.readouterr().out == "✔ 0.1: correct — 4 updates survive\n"


def test_check_fails_with_the_hint(capsys):
    exercises.register("0.1", is_answer(4), "count the updates")
    assert exercises.check("0.1", 3) is False
    out = capsys.readouterr().out
    assert out.startswith("✘ 0.1: not yet — 3 is not it\n")
    assert "count the updates" not in out  # the hint waits until it is asked for
    assert 'stuck? hint("0.1") gives a nudge' in out


def test_a_stub_answer_is_not_answered_yet(capsys):
    def stub():
        raise NotImplementedError("Your answer here")

    exercises.register("1.2", lambda fix: (fix() == 1, ""), "take the lock")
    assert exercises.check("1.2", stub) is False
    assert "not answered yet" in capsys.readouterr().out


def test_unknown_question_lists_the_known_ones_in_order():
    for qid in ("0.10", "0.2", "1.1"):
        exercises.register(qid, is_answer(1), "h")
    with pytest.raises(ValueError, match=r"'9\.9'.*known questions: 0\.2, 0\.10, 1\.1"):
        exercises.check("9.9", 1)
    with pytest.raises(ValueError, match="known questions"):
        exercises.hint("9.9")


def test_unknown_question_with_nothing_registered():
    with pytest.raises(ValueError, match="none registered yet"):
        exercises.check("0.1", 1)


def test_hint_prints_the_hint(capsys):
    exercises.register("2.3", is_answer(1), "the BQL is not recursive")
    assert exercises.hint("2.3") is None
    assert capsys.readouterr().out == "hint for 2.3: the BQL is not recursive\n"


def test_hints_come_in_levels_one_at_a_time(capsys):
    exercises.register("2.4", is_answer(1), ["look at the waits", "who holds the BQL?"])
    exercises.hint("2.4")
    assert capsys.readouterr().out == (
        'hint 1 of 2 for 2.4: look at the waits (more: hint("2.4", 2))\n'
    )
    exercises.hint("2.4", 2)
    assert capsys.readouterr().out == "hint 2 of 2 for 2.4: who holds the BQL?\n"
    with pytest.raises(ValueError, match="level"):
        exercises.hint("2.4", 3)
    with pytest.raises(ValueError, match="at least one hint"):
        exercises.register("2.5", is_answer(1), [])


def test_a_checker_must_return_ok_and_message():
    exercises.register("0.1", lambda answer: True, "h")
    with pytest.raises(TypeError, match=r"must return \(ok, message\)"):
        exercises.check("0.1", 1)


def test_register_refuses_a_second_checker_under_a_taken_id():
    checker = is_answer(1)
    exercises.register("0.1", checker, "h")
    exercises.register("0.1", checker, "a new hint")  # the same function again: fine
    with pytest.raises(ValueError, match="already registered"):
        exercises.register("0.1", lambda answer: (True, ""), "h")
    with pytest.raises(ValueError, match="non-empty string"):
        exercises.register("", checker, "h")


# --- reset -------------------------------------------------------------------------------

PRISTINE = b'{"cells": [], "handed": "out"}\n'
EDITED = b'{"cells": ["my work"], "handed": "out"}\n'


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A git checkout whose exercises/ex.ipynb is committed as PRISTINE."""
    repo = tmp_path / "course"
    (repo / "exercises").mkdir(parents=True)
    (repo / "exercises" / "ex.ipynb").write_bytes(PRISTINE)
    git("init", "-q", cwd=repo)
    git("add", ".", cwd=repo)
    git(
        "-c",
        "user.name=Author",
        "-c",
        "user.email=author@example.org",
        "commit",
        "-q",
        "-m",
        "hand out",
        cwd=repo,
    )
    return repo / "exercises" / "ex.ipynb"


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name.removesuffix(".ipynb") + ".*.bak.ipynb"))


def test_reset_restores_the_committed_copy_and_keeps_the_learners(checkout, capsys):
    checkout.write_bytes(EDITED)
    kept = exercises.reset(checkout)
    assert checkout.read_bytes() == PRISTINE
    assert kept is not None and kept.read_bytes() == EDITED
    assert kept.parent == checkout.parent
    assert kept.name.startswith("ex.") and kept.name.endswith(".bak.ipynb")
    assert str(kept) in capsys.readouterr().out


def test_reset_never_overwrites_a_backup(checkout, monkeypatch):
    monkeypatch.setattr(exercises.time, "strftime", lambda fmt: "20240101-120000")
    versions = [EDITED + bytes([n]) for n in range(3)]
    for version in versions:
        checkout.write_bytes(version)
        exercises.reset(checkout)
    kept = backups(checkout)
    assert [p.name for p in kept] == [
        "ex.20240101-120000-2.bak.ipynb",
        "ex.20240101-120000-3.bak.ipynb",
        "ex.20240101-120000.bak.ipynb",
    ]
    assert sorted(p.read_bytes() for p in kept) == sorted(versions)


def test_reset_of_a_pristine_notebook_keeps_no_backup(checkout, capsys):
    assert exercises.reset(checkout) is None
    assert backups(checkout) == []
    assert "nothing to do" in capsys.readouterr().out


def test_reset_brings_back_a_deleted_notebook(checkout):
    checkout.unlink()
    assert exercises.reset(checkout) is None
    assert checkout.read_bytes() == PRISTINE


def test_reset_works_from_the_notebooks_folder(checkout, monkeypatch):
    monkeypatch.chdir(checkout.parent)  # a kernel runs in the notebook's folder
    checkout.write_bytes(EDITED)
    exercises.reset("ex.ipynb")
    assert checkout.read_bytes() == PRISTINE


def test_reset_from_a_pristine_dir(tmp_path):
    handed_out = tmp_path / "handed-out"
    handed_out.mkdir()
    (handed_out / "ex.ipynb").write_bytes(PRISTINE)
    mine = tmp_path / "mine" / "ex.ipynb"
    mine.parent.mkdir()
    mine.write_bytes(EDITED)
    kept = exercises.reset(mine, pristine_dir=handed_out)
    assert mine.read_bytes() == PRISTINE and kept.read_bytes() == EDITED


def test_reset_without_a_pristine_copy_touches_nothing(tmp_path):
    mine = tmp_path / "ex.ipynb"
    mine.write_bytes(EDITED)
    with pytest.raises(FileNotFoundError, match="not in a git checkout.*pristine_dir"):
        exercises.reset(mine)
    with pytest.raises(FileNotFoundError, match="no pristine copy"):
        exercises.reset(mine, pristine_dir=tmp_path / "nowhere")
    assert mine.read_bytes() == EDITED
    assert list(tmp_path.iterdir()) == [mine]


def test_reset_of_an_uncommitted_notebook_touches_nothing(checkout):
    new = checkout.with_name("new.ipynb")
    new.write_bytes(EDITED)
    with pytest.raises(FileNotFoundError, match="not committed"):
        exercises.reset(new)
    assert new.read_bytes() == EDITED and backups(new) == []


@settings(max_examples=40, deadline=None)
@given(learner=st.binary(max_size=200), resets=st.integers(min_value=1, max_value=3))
def test_reset_never_loses_the_learners_version(learner, resets):
    """Whatever the learner's file holds, after any number of resets a copy of it exists."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "pristine").mkdir()
        (root / "pristine" / "ex.ipynb").write_bytes(PRISTINE)
        mine = root / "ex.ipynb"
        mine.write_bytes(learner)
        for _ in range(resets):
            exercises.reset(mine, pristine_dir=root / "pristine")
        assert mine.read_bytes() == PRISTINE
        kept = [p.read_bytes() for p in backups(mine)]
        assert kept == ([] if learner == PRISTINE else [learner])


def test_attempt_turns_a_failed_run_into_a_message_and_lets_a_stub_through():
    from labsupport import QemuMutex, run
    from labsupport.exercises import attempt, ended_badly

    def stub(sim):
        def body():
            raise NotImplementedError("Your answer here")
            yield

        sim.spawn("t", body)

    with pytest.raises(NotImplementedError):
        attempt(0, lambda: run(stub))

    def not_a_generator(sim):
        sim.spawn("t", lambda: 42)

    r, why = attempt(3, lambda: run(not_a_generator))
    assert r is None and why

    def abba(sim):
        a, b = QemuMutex(sim, "a"), QemuMutex(sim, "b")

        def one():
            yield a.lock()
            yield b.lock()

        def two():
            yield b.lock()
            yield a.lock()

        sim.spawn("one", one)
        sim.spawn("two", two)

    r, why = attempt(7, lambda: run(abba, schedule="010"))
    assert why == "" and r.outcome == "deadlock"
    text = ended_badly(7, r)
    assert text.startswith("seed 7: the run ended in deadlock") and "DEADLOCK" in text
    assert ended_badly(7, run(lambda sim: None)) == ""


def test_a_chapter_is_imported_when_check_asks_for_it():
    """``import labsupport`` imports no chapter; ``check("3.1", ...)`` imports chapter 3 only."""
    code = (
        "import sys, labsupport\n"
        "chapters = lambda: sorted(m for m in sys.modules if 'chapters.ch' in m)\n"
        "print(chapters())\n"
        "labsupport.hint('3.1')\n"
        "print(chapters())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "[]"
    assert out[-1] == "['labsupport.chapters.ch03', 'labsupport.chapters.ch03.checks']"


def test_a_question_of_a_chapter_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="there is no chapter 12"):
        _real_load_chapter(12)


def test_a_quiet_check_prints_nothing_and_returns_the_verdict(capsys):
    """What a grader's hidden test calls: the same checker, no verdict line."""
    exercises.register("0.1", is_answer(4), "count the updates")
    assert exercises.check("0.1", 4, quiet=True) is True
    assert exercises.check("0.1", 3, quiet=True) is False

    def stub():
        raise NotImplementedError("Your answer here")

    exercises.register("1.2", lambda fix: (fix() == 1, ""), "take the lock")
    assert exercises.check("1.2", stub, quiet=True) is False
    assert capsys.readouterr().out == ""


def test_reset_from_the_repository_root_points_to_the_notebook(checkout, monkeypatch):
    monkeypatch.chdir(checkout.parent.parent)  # the repository root, not exercises/
    with pytest.raises(FileNotFoundError, match=r"Did you mean reset\('exercises/ex\.ipynb'\)"):
        exercises.reset("ex.ipynb")
    with pytest.raises(FileNotFoundError, match=r"Did you mean reset\('exercises/ex\.ipynb'\)"):
        exercises.reset("exercises/ex2.ipynb")  # a typo
    assert checkout.read_bytes() == PRISTINE


def test_reset_after_nbgitpuller_committed_the_learners_work(checkout, capsys):
    checkout.write_bytes(EDITED)
    git(
        "-c",
        "user.name=nbgitpuller",
        "-c",
        f"user.email={exercises.NBGITPULLER_EMAIL}",
        "commit",
        "-q",
        "-am",
        "WIP",
        cwd=checkout.parent,
    )
    kept = exercises.reset(checkout)  # not "already as handed out": HEAD is the learner's
    assert checkout.read_bytes() == PRISTINE and kept.read_bytes() == EDITED
    assert "already as handed out" not in capsys.readouterr().out


def test_reset_says_when_git_refuses_the_checkout(checkout, monkeypatch):
    checkout.write_bytes(EDITED)

    def refused(args, **kwargs):
        return subprocess.CompletedProcess(
            args, 128, b"", b"fatal: detected dubious ownership in repository at '/x'\n"
        )

    monkeypatch.setattr(exercises.subprocess, "run", refused)
    with pytest.raises(exercises.GitRefused, match="safe.directory"):
        exercises.reset(checkout)
    assert checkout.read_bytes() == EDITED and backups(checkout) == []


# --- reset after nbgitpuller's pulls -------------------------------------------------------
# nbgitpuller 1.3.0 (nbgitpuller/pull.py, GitPuller) clones with `git clone --depth 1 --branch
# <branch>`; each later pull fetches, commits the learner's edits as nbgitpuller, then merges the
# upstream with -Xours, so the learner's lines win wherever both sides changed the same lines.

FILLER = [f' "line {n}": {n},' for n in range(12)]
STUB = ' "answer": "final_value = ...  # Your answer here",'
HANDED_OUT = "\n".join(["{", ' "title": "Chapter 0",', *FILLER, STUB, ' "end": 1', "}", ""])
ANSWERED = HANDED_OUT.replace("final_value = ...  # Your answer here", "final_value = 3")
AUTHOR = ("-c", "user.name=Instructor", "-c", "user.email=instructor@example.org")
NBGITPULLER = ("-c", "user.name=nbgitpuller", "-c", f"user.email={exercises.NBGITPULLER_EMAIL}")


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    """The instructor's repository: branch main, exercises/ex.ipynb as HANDED_OUT."""
    repo = tmp_path / "upstream"
    (repo / "exercises").mkdir(parents=True)
    (repo / "exercises" / "ex.ipynb").write_text(HANDED_OUT)
    (repo / "README.md").write_text("The course\n")
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", ".", cwd=repo)
    git(*AUTHOR, "commit", "-q", "-m", "hand out", cwd=repo)
    return repo


def hand_out(upstream: Path, exercise: str) -> None:
    """The instructor's update: exercises/ex.ipynb becomes ``exercise``; README.md changes."""
    (upstream / "exercises" / "ex.ipynb").write_text(exercise)
    with open(upstream / "README.md", "a") as readme:
        readme.write("An update.\n")
    git(*AUTHOR, "commit", "-q", "-am", "update", cwd=upstream)


def pulled(upstream: Path) -> Path:
    """The learner's copy, as nbgitpuller's first pull clones it; returns its exercise."""
    learner = upstream.parent / "learner"
    url = upstream.as_uri()
    git("clone", "-q", "--depth", "1", "--branch", "main", "--", url, str(learner), cwd=upstream)
    return learner / "exercises" / "ex.ipynb"


def pull_again(exercise: Path) -> None:
    """What nbgitpuller's GitPuller.update does to the learner's copy around ``exercise``."""
    learner = exercise.parent.parent
    git("fetch", "-q", cwd=learner)
    git("reset", "-q", "--mixed", cwd=learner)
    if subprocess.run(["git", "diff-files", "--quiet"], cwd=learner).returncode:
        git(*NBGITPULLER, "commit", "-q", "-am", "Automatic commit by nbgitpuller", cwd=learner)
    git(*NBGITPULLER, "merge", "-q", "-Xours", "origin/main", cwd=learner)


def test_reset_after_a_pull_that_kept_the_learners_lines_restores_the_update(upstream, capsys):
    """The instructor rewrote the very line the learner answered on: nbgitpuller's merge keeps
    the learner's line, and reset hands out the instructor's new one."""
    exercise = pulled(upstream)
    exercise.write_text(ANSWERED)
    updated = HANDED_OUT.replace("# Your answer here", "# Your answer here: a whole number")
    hand_out(upstream, updated)
    pull_again(exercise)
    assert exercise.read_text() == ANSWERED  # -Xours: the learner's line won the merge
    assert (exercise.parent.parent / "README.md").read_text().endswith("An update.\n")

    kept = exercises.reset(exercise)
    assert exercise.read_text() == updated
    assert kept is not None and kept.read_text() == ANSWERED
    out = capsys.readouterr().out
    assert "already as handed out" not in out and "origin/main, as last pulled" in out


def test_reset_after_a_pull_that_merged_both_sides_restores_the_update(upstream):
    """The instructor changed another line: the merge holds both, reset only the update."""
    exercise = pulled(upstream)
    exercise.write_text(ANSWERED)
    updated = HANDED_OUT.replace('"title": "Chapter 0"', '"title": "Chapter 0, revised"')
    hand_out(upstream, updated)
    pull_again(exercise)
    merged = exercise.read_text()
    assert "final_value = 3" in merged and "Chapter 0, revised" in merged

    kept = exercises.reset(exercise)
    assert exercise.read_text() == updated and kept.read_text() == merged


def test_reset_after_the_learners_own_commit_restores_the_handed_out_copy(upstream):
    exercise = pulled(upstream)
    exercise.write_text(ANSWERED)
    git(*AUTHOR, "commit", "-q", "-am", "my answers", cwd=exercise.parent)
    kept = exercises.reset(exercise)
    assert exercise.read_text() == HANDED_OUT and kept.read_text() == ANSWERED


def test_an_update_fetched_but_not_pulled_was_not_handed_out_yet(upstream):
    exercise = pulled(upstream)
    hand_out(upstream, HANDED_OUT.replace("Chapter 0", "Chapter 0, revised"))
    git("fetch", "-q", cwd=exercise.parent)
    assert exercises.committed_copy(exercise) == (True, HANDED_OUT.encode())


def test_reset_without_an_upstream_steps_back_over_nbgitpullers_merge(upstream):
    """A copy whose branch no longer tracks the upstream: from nbgitpuller's merge, the side it
    merged in is the instructor's."""
    exercise = pulled(upstream)
    exercise.write_text(ANSWERED)
    updated = HANDED_OUT.replace("# Your answer here", "# Your answer here: a whole number")
    hand_out(upstream, updated)
    pull_again(exercise)
    git("branch", "--unset-upstream", cwd=exercise.parent)
    kept = exercises.reset(exercise)
    assert exercise.read_text() == updated and kept.read_text() == ANSWERED
