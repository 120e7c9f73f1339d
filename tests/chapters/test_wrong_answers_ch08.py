"""Known wrong answers to chapter 8's exercises: each one is refused, and the refusal says what
is wrong with that answer.

``WRONG_ANSWERS`` maps each question to answers a learner could plausibly give; ``SAYS`` names,
for the telling ones, a phrase the refusal must contain. The right answers are measured here as
the checkers measure them, never copied.
"""

from __future__ import annotations

from labsupport import check
from labsupport.chapters.ch08.checks import SLOW_GRID, THRESHOLD_US, p99_2017
from labsupport.chapters.ch08.scenarios import CHAPTER_ERAS, COMMON, measure_eras

NAMES = [era.run_era_name for era in CHAPTER_ERAS]
GUEST = {r.era.run_era_name: r.guest_cpus_busy for r in measure_eras(COMMON)}
BY_GUEST_TIME = sorted(NAMES, key=lambda n: -GUEST[n])
#: The era most people put too high: the BQL's, whose vCPUs wait for the main loop's I/O.
BQL_ABOVE_ONE_THREAD = [n for n in BY_GUEST_TIME if n != "kvm"]
BQL_ABOVE_ONE_THREAD.insert(BQL_ABOVE_ONE_THREAD.index("one-thread"), "kvm")
FIRST = SLOW_GRID.index(next(p for p in SLOW_GRID if p99_2017(p) > THRESHOLD_US))

WRONG_ANSWERS = {
    "8.1": [
        list(reversed(BY_GUEST_TIME)),
        BQL_ABOVE_ONE_THREAD,
        NAMES,  # the eras in the order of the chapters
        BY_GUEST_TIME[:-1],
        BY_GUEST_TIME[:-1] + BY_GUEST_TIME[:1],
        [*BY_GUEST_TIME[:-1], "qemu-9.0"],
        "dataplane",
        [1, 2, 3, 4, 5, 6],
    ],
    "8.2": [
        SLOW_GRID[FIRST - 1],
        SLOW_GRID[FIRST + 1],
        SLOW_GRID[0],
        SLOW_GRID[-1],
        0.42,
        str(SLOW_GRID[FIRST]),
        None,
    ],
}

#: (question, wrong answer, a phrase its refusal must contain)
SAYS = [
    ("8.1", BQL_ABOVE_ONE_THREAD, "one-thread"),
    ("8.1", BQL_ABOVE_ONE_THREAD, "which your order puts before it"),
    ("8.1", BY_GUEST_TIME[:-1], "missing"),
    ("8.1", BY_GUEST_TIME[:-1] + BY_GUEST_TIME[:1], "more than once"),
    ("8.1", [*BY_GUEST_TIME[:-1], "qemu-9.0"], "not an era name"),
    ("8.1", "dataplane", "a list of the era names"),
    ("8.2", SLOW_GRID[FIRST - 1], "not above the threshold of 1,000 us"),
    ("8.2", SLOW_GRID[FIRST + 1], "is not the first"),
    ("8.2", 0.42, "one of the probabilities on the grid"),
]


def test_the_grid_has_a_point_on_each_side_of_the_answer():
    """8.2's wrong answers just before and just after the first point above the threshold."""
    assert 0 < FIRST < len(SLOW_GRID) - 1
    assert p99_2017(SLOW_GRID[FIRST - 1]) <= THRESHOLD_US < p99_2017(SLOW_GRID[FIRST])


def test_a_refusal_gives_away_neither_the_order_nor_the_grid_point(capsys):
    for answer in WRONG_ANSWERS["8.1"][:3]:
        assert check("8.1", answer) is False
        assert str(BY_GUEST_TIME) not in capsys.readouterr().out
    assert check("8.2", SLOW_GRID[FIRST + 1]) is False
    assert f"{SLOW_GRID[FIRST]} " not in capsys.readouterr().out


def test_the_right_answers_pass():
    assert check("8.1", BY_GUEST_TIME, quiet=True)
    assert check("8.2", SLOW_GRID[FIRST], quiet=True)
