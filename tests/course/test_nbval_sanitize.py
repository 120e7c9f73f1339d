"""tests/nbval_sanitize.cfg masks what changes between runs and nothing the lesson shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from nbval.plugin import get_sanitize_patterns

CFG = Path(__file__).resolve().parents[1] / "nbval_sanitize.cfg"


def sanitize(text: str) -> str:
    for regex, replace in get_sanitize_patterns(CFG.read_text()):
        text = re.sub(regex, replace, text)
    return text


def test_the_file_holds_three_patterns():
    assert len(get_sanitize_patterns(CFG.read_text())) == 3


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("<QemuMutex at 0x7f3a2c1b9e50 [locked]>", "<QemuMutex at 0xADDRESS [locked]>"),
        ("<function f at 0x10a2B3c4d>", "<function f at 0xADDRESS>"),
        ("<Figure size 640x480 with 1 Axes>", "<Figure>"),
        ("<Figure size 1000x400.5 with 2 Axes>", "<Figure>"),
        ("explored in 1.23 s", "explored in <duration>"),
        ("redraw took 45 ms", "redraw took <duration>"),
        ("done in 0.5s.", "done in <duration>."),
    ],
)
def test_run_dependent_text_is_masked(raw, clean):
    assert sanitize(raw) == clean


@pytest.mark.parametrize(
    "text",
    [
        "a 640x480 screen",  # not an address: the 0x is inside a word
        "flags 0x1f",  # short hex values are data, not addresses
        "vcpu1 waited 120 µs for the BQL",  # simulated time is the lesson
        "p99 latency 35 us at t=4000",
        "4 threads, 2 steps, 10 ms_budget",
    ],
)
def test_lesson_text_is_kept(text):
    assert sanitize(text) == text
