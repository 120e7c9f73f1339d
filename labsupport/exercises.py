"""Exercises: nbgrader-style feedback for self-paced learners.

In a university lab a grader runs hidden tests after the deadline; at home nobody does. This
module brings that feedback forward to the moment the learner answers. Each question has a
checker, a plain function that looks at an answer and returns ``(ok, message)``, and a hint:
``check("2.3", answer)`` prints one line at once, ``hint("2.3")`` prints the hint, and
``reset(path)`` hands an exercise notebook out afresh, after keeping the learner's version.

Each chapter's ``labsupport.chapters.chNN.checks`` calls ``register`` when it is imported, and
``check("N.M", ...)`` imports chapter N's checkers the first time one of its questions is asked
(so a broken chapter cannot break another); the same checkers run in the tests and in the
graders' hidden-test cells, so a learner, the CI and an instructor agree.

Where the pristine copy comes from: the exercise notebook as the git checkout received it
(``committed_copy``): in a clone, and in every copy nbgitpuller pulled onto a hub, the upstream's
version as last pulled, not HEAD, which holds the learner's edits once nbgitpuller has committed
and merged them; in a checkout without an upstream, such as a Binder image, HEAD. Outside a git
checkout (a zip download, a copied folder), pass the folder of pristine copies as
``pristine_dir``.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import validate
from .analysis import explore
from .kernel import RunawayError, RunResult, SimulationError, ThreadCrashed, run, time_budget

__all__ = [
    "GitRefused",
    "NotAnswered",
    "answered",
    "backup",
    "check",
    "committed_copy",
    "hint",
    "judge_fix",
    "left_at_stub",
    "load_chapter",
    "register",
    "reset",
]

Checker = Callable[[Any], tuple[bool, str]]

#: The wall-clock budget of each run inside ``check()``, in seconds: an answer that loops for
#: ever costs the learner this long, then a verdict that says where it looped.
CHECK_TIME_LIMIT_S = 3.0

#: How many runs ``judge_fix`` explores (per seed of model data) before it says it could not
#: finish, and how many seeded random schedules it then adds (a sample, and it says so).
FIX_RUNS = 2000
FIX_SEEDS = 200


@dataclass(frozen=True)
class _Question:
    checker: Checker
    hints: tuple[str, ...]  # from a nudge to the approach; never the code


_REGISTRY: dict[str, _Question] = {}


def _sort_key(qid: str) -> list[tuple[int, int | str]]:
    """Order "0.2" before "0.10": numeric parts as numbers."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"[.]", qid)]


def load_chapter(number: int) -> None:
    """Import chapter ``number``'s checkers (``labsupport.chapters.chNN.checks``), which
    register its questions. Importing twice does nothing."""
    from .chapters import CHAPTERS

    validate.whole("number", number, kind="a chapter number, a whole number")
    name = f"ch{number:02d}"
    if name not in CHAPTERS:
        raise ValueError(f"there is no chapter {number}; the chapters are 0 to {len(CHAPTERS) - 1}")
    importlib.import_module(f"{__package__}.chapters.{name}.checks")


def _chapter_of(qid: str) -> int | None:
    head = qid.split(".", 1)[0] if isinstance(qid, str) else ""
    return int(head) if head.isdigit() else None


def _lookup(qid: str) -> _Question:
    validate.label("qid", qid, kind="a question id such as '2.3'", type_error=TypeError)
    if qid not in _REGISTRY:
        number = _chapter_of(qid)
        from .chapters import CHAPTERS

        if number is not None and number < len(CHAPTERS):
            load_chapter(number)
    try:
        return _REGISTRY[qid]
    except KeyError:
        from .chapters import CHAPTERS

        for number in range(len(CHAPTERS)):
            try:
                load_chapter(number)
            except Exception:  # a broken chapter must not hide the others' questions
                pass
        known = ", ".join(sorted(_REGISTRY, key=_sort_key)) or "none registered yet"
        raise ValueError(f"unknown question qid={qid!r}; known questions: {known}") from None


def register(qid: str, checker: Checker, hint: str | Sequence[str]) -> None:
    """Register the checker and hints of question ``qid`` (such as ``"2.3"``).

    A checker takes the learner's answer and returns ``(ok, message)``; the message says what
    was right or what is wrong, in the learner's terms. ``hint`` is one hint or a list of
    them in levels, from a nudge to the approach (``hint(qid, level)`` shows one at a time).
    Registering the same function again (a module re-imported) replaces it; a different
    checker under a taken id is an error.
    """
    if not isinstance(qid, str) or not qid:
        raise ValueError(f"a question id is a non-empty string such as '2.3', not {qid!r}")
    if not callable(checker):
        raise TypeError(f"the checker of {qid} must be a function, not {checker!r}")
    hints = (hint,) if isinstance(hint, str) else tuple(hint)
    if not hints:
        raise ValueError(f"question {qid} needs at least one hint")
    for text in hints:
        validate.label("hint", text)
    old = _REGISTRY.get(qid)
    if old is not None and _name(old.checker) != _name(checker):
        raise ValueError(f"question {qid} is already registered to {_name(old.checker)}")
    _REGISTRY[qid] = _Question(checker, hints)


def _name(function: Callable[..., Any]) -> str:
    module = getattr(function, "__module__", "?")
    return f"{module}.{getattr(function, '__qualname__', repr(function))}"


def judge_fix(
    program: Callable[..., Any],
    judge: Callable[[RunResult], str | None],
    *,
    data_seeds: int = 1,
    max_runs: int = FIX_RUNS,
    opaque: bool = False,
    because: str = "",
    judge_all: bool = False,
    **run_options: Any,
) -> tuple[bool, str]:
    """A learner's fix, judged on every schedule (``because``, if given, ends a verdict that
    accepts it: why the fix works; ``judge_all=True`` hands ``judge`` the runs that did not
    complete too, for a judge that explains those itself).

    ``judge(result)`` says what is wrong with one run (None when nothing is; a run that did
    not complete is wrong anyway). One run on the first-come schedule first checks the
    answer's shape. Then ``explore`` runs the program on every trace, with the model
    data (``sim.rng``) of each of ``data_seeds`` seeds, up to ``max_runs`` runs each
    (``opaque=True`` for the QEMU models, whose state is partly in plain attributes). A
    failing schedule is refused with its replay call and the steps that broke it, so a fix
    that fails on one schedule in a thousand is caught. Explorations that all complete are a
    proof for this program; otherwise the answer also runs on ``FIX_SEEDS`` random schedules
    and the verdict says it is a sample. Counted in runs, not seconds: the same answer gets
    the same verdict on every machine."""

    def verdict(r: RunResult) -> str | None:
        if judge_all:  # the judge explains every ending itself
            return judge(r) or (None if r.outcome == "completed" else f"ended {r.outcome}")
        if r.outcome != "completed":
            why = f"\n{r.deadlock.text()}" if r.deadlock else ""
            return f"the run ended in {r.outcome}{why}"
        return judge(r)

    r, problem = attempt(0, lambda: run(program, seed=0, **run_options))  # first-come
    if problem:
        return False, problem
    problem = verdict(r)
    if problem:
        return False, f"{problem} (on the first-come schedule: {_replay(r.schedule, r.recipe())})"
    traces, complete = 0, True
    for seed in range(data_seeds):
        e = explore(
            program,
            check=verdict,
            max_runs=max_runs,
            time_limit_s=None,
            opaque=opaque,
            seed=seed,
            **run_options,
        )
        cx = e.counterexample
        if cx is not None:
            steps = cx.listing().splitlines()
            shown = steps[:14] + ([f"... ({len(steps) - 14} more)"] if len(steps) > 14 else [])
            return False, (
                f"{cx.failure}: a schedule with {cx.preemptions} preemption(s) breaks it; "
                f"{_replay(cx.schedule, cx.replay_call)}. Its steps:\n" + "\n".join(shown)
            )
        traces += e.traces
        complete = complete and e.complete and not e.unplaced
    data = f" (the model data of {data_seeds} seeds)" if data_seeds > 1 else ""
    if complete:
        return True, f"no schedule breaks it: {traces:,} traces{data}, complete{because}"
    for seed in range(FIX_SEEDS):
        r, problem = attempt(
            seed, lambda s=seed: run(program, policy="random", seed=s, **run_options)
        )
        problem = problem or verdict(r)
        if problem:
            schedule = f" (schedule {r.schedule!r})" if r is not None else ""
            return False, problem if problem.startswith("seed ") else (
                f"seed {seed}{schedule}: {problem}"
            )
    per = " per seed" if data_seeds > 1 else ""
    return True, (
        f"no failure in {traces:,} traces explored{data} nor on {FIX_SEEDS} random "
        f"schedules (a sample, not a proof: the search stopped at {max_runs:,} runs{per}, "
        f"or could not follow an order it planned){because}"
    )


#: A replay call whose schedule is longer than this is not worth copying: a verdict gives the
#: schedule's length instead (an answer that spins makes schedules of 100,000 steps).
LONGEST_REPLAY = 200


def _replay(schedule: str, call: str) -> str:
    """How a verdict tells the learner to replay a run: the call, with the answer as the
    program, or the schedule's length when it is too long to copy."""
    if len(schedule) > LONGEST_REPLAY:
        return f"its schedule is {len(schedule):,} steps long, too long to copy"
    return "replay it with " + call.replace("run(program", "run(answer", 1)


def attempt(seed: int, call: Callable[[], Any]) -> tuple[Any, str]:
    """Run a learner's answer on one seeded schedule: ``call()`` runs it (``run(...)``, or a
    chapter's own runner). Returns ``(its result, "")``, or ``(None, what went wrong)`` in the
    learner's terms. A ``NotImplementedError`` from the exercise's stub goes on up, so ``check``
    says "not answered yet"."""
    validate.whole("seed", seed)
    validate.function("call", call)
    try:
        return call(), ""
    except ThreadCrashed as e:
        cause = e.__cause__
        if isinstance(cause, NotImplementedError):
            raise cause from None
        if isinstance(cause, TypeError) and "iterable" in str(cause):
            return None, (
                "the answer must be a generator function: it yields each step "
                "(yield lock.lock(...), yield compute(...), ...)"
            )
        return None, f"seed {seed}: {e}"
    except RunawayError as e:
        return None, f"seed {seed}: {runaway(e)}"
    except SimulationError as e:
        return None, f"seed {seed}: {type(e).__name__}: {e}"
    except TypeError as e:
        return None, f"seed {seed}: {e} (is it a generator function, with yield?)"


def runaway(e: RunawayError) -> str:
    """What a learner reads when the answer never finished (it never asks them to raise a
    limit, which they cannot do from ``check``)."""
    where = e.where or "a thread kept running"
    return (
        f"the answer never finished: {where}. A loop in a thread must end, or wait for "
        f"something (a lock, an event, sleep()) so that the others can move"
    )


def ended_badly(seed: int, r: RunResult) -> str:
    """ "" if run ``r`` completed; otherwise how it ended, with the deadlock report if any."""
    validate.whole("seed", seed)
    validate.instance("r", r, RunResult, kind="a RunResult")
    if r.outcome == "completed":
        return ""
    why = f"\n{r.deadlock.text()}" if r.deadlock else ""
    return f"seed {seed}: the run ended in {r.outcome}{why}"


def check(qid: str, answer: Any, *, quiet: bool = False) -> bool:
    """Check ``answer`` to question ``qid``, print one verdict line, and return whether it passed.

    An answer that is still the exercise's stub (``...``, or a function that raises
    ``NotImplementedError``) counts as "not answered yet"; one that never finishes fails,
    after ``CHECK_TIME_LIMIT_S`` seconds of each run at most (``time_budget``), with where it
    looped. Unknown ids raise ``ValueError``
    listing the known ones. ``quiet=True`` prints nothing (a grader's hidden test:
    ``assert check("2.3", answer, quiet=True)``).
    """
    validate.flag("quiet", quiet)
    question = _lookup(qid)
    if answer is ...:  # the exercise's stub: ``name = ...  # Your answer here``
        if not quiet:
            print(f"✘ {qid}: not answered yet — replace the `...` with your answer")
        return False
    try:
        with time_budget(CHECK_TIME_LIMIT_S):
            result = question.checker(answer)
    except NotImplementedError:
        if not quiet:
            print(f"✘ {qid}: not answered yet — replace the `raise NotImplementedError` line")
        return False
    except RunawayError as e:  # the checker did not catch it: still a verdict, not a traceback
        result = (False, runaway(e))
    if not (isinstance(result, tuple) and len(result) == 2):
        raise TypeError(
            f"the checker of {qid} ({_name(question.checker)}) must return (ok, message), "
            f"not {result!r}"
        )
    ok, message = bool(result[0]), str(result[1])
    detail = f" — {message}" if message else ""
    if quiet:
        return ok
    if ok:
        print(f"✔ {qid}: correct{detail}")
    else:
        print(f'✘ {qid}: not yet{detail}\n  stuck? hint("{qid}") gives a nudge')
    return ok


class NotAnswered(AssertionError):
    """A graded cell's check that failed because questions are still at their stub.

    It is an error, so nbgrader scores the cell 0 and ``raises-exception`` lets Run All go
    on; IPython shows ``_render_traceback_``'s lines in place of a traceback, so the learner
    reads one sentence naming what is left, not a stack of frames.
    """

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


def is_stub(answer: Any) -> bool:
    """Whether ``answer`` is still an exercise's stub: ``...``, or a function whose body, or
    the body of a function defined inside it (a thread's body), raises ``NotImplementedError``."""
    if answer is ...:
        return True
    code = getattr(answer, "__code__", None)
    return code is not None and _raises_not_implemented(code)


def _raises_not_implemented(code: Any) -> bool:
    if "NotImplementedError" in code.co_names:
        return True
    return any(_raises_not_implemented(c) for c in code.co_consts if hasattr(c, "co_names"))


def left_at_stub(answer: dict) -> str:
    """What a checker says when parts of a dict answer still hold the exercise's stub (``...``
    or a function that raises ``NotImplementedError``), or "" when none does."""
    left = [repr(key) for key, value in answer.items() if is_stub(value)]
    if not left:
        return ""
    verb = "holds" if len(left) == 1 else "hold"
    return f"{' and '.join(left)} still {verb} the stub ...: put your answer there"


def answered(**answers: Any) -> None:
    """The first line of a graded cell: ``answered(order=order, busy=busy)``. Raises
    ``NotAnswered`` naming every answer still at its stub, so an untouched notebook's graded
    cell says what is left in one line and counts as failed."""
    if not answers:
        raise TypeError("answered() needs the answers by name: answered(order=order, ...)")
    left = [name for name, value in answers.items() if is_stub(value)]
    if left:
        raise NotAnswered(
            f"✘ not answered yet: {', '.join(left)}. This graded cell fails (0 points) until "
            f"{'it is' if len(left) == 1 else 'they are'} answered above"
        )


def hint(qid: str, level: int = 1) -> None:
    """Print hint ``level`` of question ``qid`` (1, the first, is a nudge; the last is the
    approach, never the code), and whether there is more."""
    hints = _lookup(qid).hints
    validate.whole("level", level, 1, len(hints))
    more = f' (more: hint("{qid}", {level + 1}))' if level < len(hints) else ""
    which = f" {level} of {len(hints)}" if len(hints) > 1 else ""
    print(f"hint{which} for {qid}: {hints[level - 1]}{more}")


def _path(name: str, value: Any) -> Path:
    """``value`` as a Path: a str (not empty) or an ``os.PathLike``, else a TypeError."""
    if isinstance(value, str):
        validate.label(name, value, kind="a file path (a str or a Path)")
    else:
        validate.instance(name, value, os.PathLike, kind="a file path (a str or a Path)")
    return Path(value)


#: The author nbgitpuller gives the commit it makes of a learner's work before it pulls.
NBGITPULLER_EMAIL = "nbgitpuller@nbgitpuller.link"


class GitRefused(RuntimeError):
    """git will not read this checkout (it belongs to another user: "dubious ownership")."""


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True)
    if done.returncode != 0 and b"dubious ownership" in done.stderr:
        raise GitRefused(
            f"git refuses to read {folder}: the checkout belongs to another user (git's "
            f"'dubious ownership'). Run `git config --global --add safe.directory "
            f"{folder}` in a terminal, or pass the folder that holds the handed-out "
            f"notebooks as pristine_dir"
        )
    return done


#: How many of nbgitpuller's commits ``_handed_out_revision`` steps back over, at most, in a
#: checkout without an upstream (each of its pulls adds at most two: one of the learner's work,
#: one merge).
NBGITPULLER_WALK = 1000


def _handed_out_revision(folder: Path) -> tuple[str, str]:
    """The commit that holds the files as handed out to the checkout around ``folder``, and
    what to call it in a message.

    nbgitpuller, on every pull, commits the learner's edits as its own author
    (``NBGITPULLER_EMAIL``) and merges the upstream branch with ``-Xours``: where the learner
    and the instructor changed the same lines, the learner's lines win, so HEAD holds the
    learner's answers and no commit on HEAD's own history holds the instructor's update alone.

    - A branch that tracks an upstream (nbgitpuller clones with ``--branch``, and so does a
      learner's ``git clone``): the newest upstream commit the checkout has taken in,
      ``git merge-base HEAD @{upstream}``. Every commit on HEAD's side, nbgitpuller's or the
      learner's own, is the learner's work; an upstream commit fetched but not yet merged was
      not handed out to this copy.
    - No upstream (a detached checkout, a Binder image, a copy whose remote was removed): from
      HEAD, step back over nbgitpuller's commits (from one of its merges to the side it merged
      in, from one of its commits of the learner's work to its parent); in an ordinary
      checkout that is HEAD itself.
    """
    upstream = _git(folder, "rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}")
    if upstream.returncode == 0:
        base = _git(folder, "merge-base", "HEAD", "@{upstream}")
        if base.returncode == 0:
            name = upstream.stdout.decode(errors="replace").strip()
            return base.stdout.decode().strip(), f"{name}, as last pulled"
    revision = "HEAD"
    for _ in range(NBGITPULLER_WALK):
        shown = _git(folder, "log", "-1", "--format=%ae%n%P", revision)
        if shown.returncode != 0:
            break
        email, _, parents = shown.stdout.decode(errors="replace").partition("\n")
        if email != NBGITPULLER_EMAIL or not parents.split():
            break
        revision = parents.split()[-1]  # a merge's last parent is the side merged in
    return revision, "committed in git"


def _handed_out(path: Path) -> tuple[bool, bytes | None, str]:
    """``committed_copy``, with what to call the copy: ``(in_git_checkout, content, where)``."""
    path = path.absolute()
    folder = path.parent if path.parent.is_dir() else Path.cwd()
    try:
        inside = _git(folder, "rev-parse", "--is-inside-work-tree")
    except OSError:  # git is not installed
        return False, None, ""
    if inside.returncode != 0 or inside.stdout.strip() != b"true":
        return False, None, ""
    revision, where = _handed_out_revision(folder)
    shown = _git(folder, "cat-file", "--filters", f"{revision}:./{path.name}")
    return True, (shown.stdout if shown.returncode == 0 else None), where


def committed_copy(path: str | os.PathLike[str]) -> tuple[bool, bytes | None]:
    """Return ``(in_git_checkout, content as handed out)`` for a file; content is None if the
    file was never handed out (not in the commit below).

    "As handed out" is the file at the commit ``_handed_out_revision`` finds: the upstream's
    version as last pulled when the branch tracks one (so after an nbgitpuller pull it is the
    instructor's updated copy, never the learner's edits that nbgitpuller committed and merged),
    and otherwise the newest commit on HEAD that nbgitpuller did not make. Line endings are
    those a checkout would write (git's ``--filters``), so an unedited file on any platform
    compares equal to its committed copy. Raises ``GitRefused`` when git will not read the
    checkout, rather than calling it "not a git checkout".
    """
    in_checkout, data, _ = _handed_out(_path("path", path))
    return in_checkout, data


def backup(path: str | os.PathLike[str]) -> Path:
    """Copy a file to ``<name>.<YYYYmmdd-HHMMSS>.bak<suffix>`` beside it and return the copy.

    An existing backup is never overwritten: a second one in the same second gets ``-2``,
    then ``-3``, and so on. The copy is created exclusively, so two resets cannot collide.
    """
    path = _path("path", path)
    data = path.read_bytes()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    stem, suffix = path.name.removesuffix(path.suffix), path.suffix
    count = 1
    while True:
        tag = stamp if count == 1 else f"{stamp}-{count}"
        target = path.with_name(f"{stem}.{tag}.bak{suffix}")
        try:
            with open(target, "xb") as copy:
                copy.write(data)
        except FileExistsError:
            count += 1
            continue
        return target


def _pristine(path: Path, pristine_dir: str | os.PathLike[str] | None) -> tuple[bytes, str]:
    if pristine_dir is not None:
        source = Path(pristine_dir) / path.name
        if not source.is_file():
            raise FileNotFoundError(f"no pristine copy of {path.name} in {pristine_dir}")
        return source.read_bytes(), str(source)
    in_checkout, data, where = _handed_out(path)
    if data is None and not path.exists():
        guess = _nearest_notebook(path)
        where = f" Did you mean reset({str(guess)!r})?" if guess else ""
        raise FileNotFoundError(
            f"there is no notebook {path} (looked in {path.absolute().parent}); reset takes "
            f"the path of an exercise notebook, such as "
            f"'exercises/00-toolkit-exercises.ipynb'.{where}"
        )
    if data is None:
        where = (
            "is not committed in this git checkout" if in_checkout else "is not in a git checkout"
        )
        raise FileNotFoundError(
            f"{path} {where}, so there is no pristine copy to restore; pass the folder "
            f"that holds the handed-out notebooks: reset({str(path)!r}, pristine_dir=...)"
        )
    return data, f"the copy as handed out ({where})"


def _nearest_notebook(path: Path) -> Path | None:
    """The exercise notebook a mistyped or misplaced path most likely means."""
    import difflib

    here = path.absolute().parent
    candidates = [p for folder in (here, here / "exercises") for p in folder.glob("*.ipynb")]
    names = [p.name for p in candidates]
    best = difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
    if not best:
        return None
    chosen = candidates[names.index(best[0])]
    try:
        return chosen.relative_to(Path.cwd())
    except ValueError:
        return chosen


def reset(
    path: str | os.PathLike[str], pristine_dir: str | os.PathLike[str] | None = None
) -> Path | None:
    """Restore an exercise notebook as handed out, keeping the learner's version first.

    The pristine copy is ``pristine_dir/<name>`` when given, else the file as the git checkout
    received it (``committed_copy``: after an nbgitpuller pull, the upstream's updated copy, not
    the learner's edits that nbgitpuller committed and merged). The current file is first
    copied to ``<name>.<YYYYmmdd-HHMMSS>.bak.ipynb`` beside it (never over an existing backup);
    only then is it replaced, atomically. Nothing is touched when no pristine copy can be found.
    Returns the backup's path, or None when there was nothing to keep (no file, or the file was
    already pristine).
    """
    path = _path("path", path)
    if pristine_dir is not None:
        _path("pristine_dir", pristine_dir)
    data, source = _pristine(path, pristine_dir)
    kept = None
    if path.exists():
        if path.read_bytes() == data:
            print(f"{path} is already as handed out; nothing to do.")
            return None
        kept = backup(path)
        print(f"Your version of {path.name} is kept as {kept}")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        if path.exists():
            shutil.copymode(path, temporary)
        else:
            os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    print(f"{path} is restored from {source}. Reload it in JupyterLab (File > Reload Notebook).")
    return kept
