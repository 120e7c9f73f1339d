"""Hints come in levels, from a nudge to the approach, and never hand out the code; a refusal
says what is wrong with the answer, and leaves the hints to ``hint()``."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from labsupport import check, exercises
from labsupport.chapters import CHAPTERS

ROOT = Path(__file__).resolve().parents[2]

#: The exercises whose answer is a fix: their hints are the ones most tempted to give it away.
FIXES = ("0.3", "1.4", "2.3", "3.3", "4.5", "5.1", "5.2", "6.1", "6.3", "7.2")

#: What counts as code in a hint: ``yield``; a call, that is a name right before ``(`` (the
#: plural "(s)" aside); an assignment or a comparison (`` = ``, ``==``, ``a=b``); a ``lambda``;
#: and anything in backticks with punctuation in it (a dot, a bracket, an operator).
CODE = re.compile(
    r"\byield\b"
    r"|\b[A-Za-z_]\w*\((?!s\))"
    r"|\s=\s|==|\w=\w"
    r"|\blambda\b"
    r"|`[^`]*[^\w`\s-][^`]*`"
)


def test_the_code_pattern_catches_code_and_leaves_prose_alone():
    for code in (
        "yield the lock",
        "call lock() first",
        "take bql.lock('site')",
        "set done = 3",
        "done=3",
        "if a == b",
        "use `sim.spawn`",
        "map it with lambda",
        "run(program",
        "then unlock()",
    ):
        assert CODE.search(code), code
    for prose in (
        "which thread holds the BQL, and until when?",
        "every update(s) counts; the p99 moves",
        "the 2008 loop runs fd handlers, timers, then bottom halves (newest first) in one pass",
        "read `isr` before the store",
        "see whether it follows the fd phase (the same pass)",
    ):
        assert not CODE.search(prose), prose


@pytest.fixture(scope="module")
def registry():
    for number in range(len(CHAPTERS)):
        exercises.load_chapter(number)
    return exercises._REGISTRY


def _all_questions() -> list[str]:
    for number in range(len(CHAPTERS)):
        exercises.load_chapter(number)
    return sorted(exercises._REGISTRY, key=exercises._sort_key)


@pytest.mark.parametrize("qid", FIXES)
def test_a_fix_has_hints_in_levels_and_none_is_code(registry, qid):
    hints = registry[qid].hints
    assert len(hints) >= 3, qid
    for level, text in enumerate(hints, start=1):
        assert not CODE.search(text), (qid, level, text)
    assert hints[0].rstrip().endswith("?"), (qid, "the first level is a question, a nudge")


@pytest.mark.parametrize("qid", _all_questions())
def test_every_question_has_hints_in_levels_and_none_is_code(registry, qid):
    hints = registry[qid].hints
    assert len(hints) >= 2, f"{qid} has {len(hints)} hint level(s); it needs a nudge and more"
    for level, text in enumerate(hints, start=1):
        found = CODE.search(text)
        assert not found, f"hint {level} of {qid} holds code ({found.group(0)!r}): {text}"
    assert len(set(hints)) == len(hints), f"{qid} repeats a hint level"


# -- A refusal never holds a hint -----------------------------------------------------------


def wrong_answers(number: int) -> dict:
    """``WRONG_ANSWERS`` of tests/chapters/test_wrong_answers_chNN.py, loaded by path."""
    path = ROOT / "tests" / "chapters" / f"test_wrong_answers_ch{number:02d}.py"
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing: no known wrong answers"
    spec = importlib.util.spec_from_file_location(f"_wrong_answers_ch{number:02d}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.WRONG_ANSWERS


def _phrases(hint: str) -> list[str]:
    """The hint, and each of its clauses of four words or more, lower case."""
    clauses = [c.strip() for c in re.split(r"[;:,.?()]", hint)]
    return [hint.lower()] + [c.lower() for c in clauses if len(c.split()) >= 4]


def _flat(text: str) -> str:
    return " ".join(text.lower().split())


@pytest.mark.parametrize("number", range(len(CHAPTERS)), ids=lambda n: f"chapter {n}")
def test_a_refusal_never_holds_a_hints_text(registry, capsys, number):
    """Each known wrong answer's refusal is checked against every hint level of its question."""
    known = wrong_answers(number)
    checked = 0
    for qid, answers in known.items():
        phrases = [p for text in registry[qid].hints for p in _phrases(text)]
        for answer in answers:
            assert check(qid, answer) is False
            printed = _flat(capsys.readouterr().out)
            for phrase in phrases:
                assert _flat(phrase) not in printed, (qid, answer, phrase)
            checked += 1
    assert checked >= 2 * len(known)
