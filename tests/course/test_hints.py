"""Hints come in levels, from a nudge to the approach, and never hand out the code."""

from __future__ import annotations

import re

import pytest

from labsupport import exercises
from labsupport.chapters import CHAPTERS

#: The exercises whose answer is a fix: their hints are the ones most tempted to give it away.
FIXES = ("0.3", "1.4", "2.3", "3.3", "4.5", "5.1", "5.2", "6.1", "6.3", "7.2")
CODE = re.compile(r"\byield\b|\w\(|\)\s*$|\blambda\b|==|\w=\w")


@pytest.fixture(scope="module")
def registry():
    for number in range(len(CHAPTERS)):
        exercises.load_chapter(number)
    return exercises._REGISTRY


@pytest.mark.parametrize("qid", FIXES)
def test_a_fix_has_hints_in_levels_and_none_is_code(registry, qid):
    hints = registry[qid].hints
    assert len(hints) >= 3, qid
    for level, text in enumerate(hints, start=1):
        assert not CODE.search(text), (qid, level, text)
    assert hints[0].rstrip().endswith("?"), (qid, "the first level is a question, a nudge")
