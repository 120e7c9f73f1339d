"""Every question has known wrong answers, and its checker refuses each one.

Each chapter N keeps them in ``tests/chapters/test_wrong_answers_chNN.py``: a dict
``WRONG_ANSWERS = {"N.M": [answer, ...]}``, and ``SAYS``, a list of ``(qid, answer, phrase)``
for the telling ones, whose refusal must contain the phrase (beside the chapter's own tests).
Here each chapter's lists are loaded by path, held against the questions it registers, and
every answer in them is checked.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import pytest

from labsupport import check, exercises
from labsupport.chapters import CHAPTERS

ROOT = Path(__file__).resolve().parents[2]
#: How many known wrong answers each question needs at least.
MINIMUM = 2


@functools.cache
def load(number: int):
    path = ROOT / "tests" / "chapters" / f"test_wrong_answers_ch{number:02d}.py"
    assert path.is_file(), f"chapter {number} has no {path.relative_to(ROOT)}"
    spec = importlib.util.spec_from_file_location(f"_coverage_wrong_answers_ch{number:02d}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def questions_of(number: int) -> list[str]:
    exercises.load_chapter(number)
    mine = [q for q in exercises._REGISTRY if q.split(".", 1)[0] == str(number)]
    return sorted(mine, key=exercises._sort_key)


@pytest.mark.parametrize("number", range(len(CHAPTERS)), ids=lambda n: f"chapter {n}")
def test_every_question_has_at_least_two_known_wrong_answers(number):
    questions = questions_of(number)
    assert questions, f"chapter {number} registers no question"
    known = load(number).WRONG_ANSWERS
    assert isinstance(known, dict)
    short = {q: len(known.get(q, ())) for q in questions if len(known.get(q, ())) < MINIMUM}
    assert not short, (
        f"chapter {number}: these questions have fewer than {MINIMUM} known wrong answers "
        f"(question: how many): {short}"
    )
    stale = sorted(set(known) - set(questions), key=exercises._sort_key)
    assert not stale, f"chapter {number}: wrong answers for questions it does not have: {stale}"


@pytest.mark.parametrize("number", range(len(CHAPTERS)), ids=lambda n: f"chapter {n}")
def test_the_wrong_answers_are_lists_with_no_answer_twice(number):
    for qid, answers in load(number).WRONG_ANSWERS.items():
        assert isinstance(answers, list), qid
        seen = []
        for answer in answers:
            assert not any(answer is s or _equal(answer, s) for s in seen), (qid, answer)
            seen.append(answer)


def _equal(a, b) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # values whose == does not give a plain bool
        return False


def _known():
    for number in range(len(CHAPTERS)):
        module = load(number)
        for qid, answers in module.WRONG_ANSWERS.items():
            for k, answer in enumerate(answers):
                yield pytest.param(qid, answer, id=f"{qid}-{k}")


def _telling():
    for number in range(len(CHAPTERS)):
        for k, (qid, answer, says) in enumerate(getattr(load(number), "SAYS", [])):
            yield pytest.param(qid, answer, says, id=f"{qid}-{k}")


@pytest.mark.parametrize("qid, answer", list(_known()))
def test_a_known_wrong_answer_is_refused(qid, answer):
    assert check(qid, answer, quiet=True) is False


@pytest.mark.parametrize("qid, answer, says", list(_telling()))
def test_the_refusal_says_what_is_wrong_with_that_answer(capsys, qid, answer, says):
    assert check(qid, answer) is False
    printed = capsys.readouterr().out
    assert printed.startswith(f"✘ {qid}: not yet — ")
    assert says in printed, printed


@pytest.mark.parametrize("qid, answer, says", list(_telling()))
def test_every_telling_case_is_a_known_wrong_answer(qid, answer, says):
    number = int(qid.split(".", 1)[0])
    known = load(number).WRONG_ANSWERS[qid]
    assert any(answer is a or _equal(answer, a) for a in known), (qid, answer)
