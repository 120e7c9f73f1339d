"""Known wrong answers to chapter 7's exercises: each one is refused, and the refusal says what
is wrong with that answer.

``WRONG_ANSWERS`` maps each question to answers a learner could plausibly give (the answers
themselves: values and functions); ``SAYS`` names, for the telling ones, a phrase the refusal
must contain.
"""

from __future__ import annotations

from labsupport import check, compute
from labsupport.chapters.ch07.checks import (
    RECALL_KEYS_07,
    SHARE_TOLERANCE,
    cross_thread_share,
    saturation_point,
)
from labsupport.coroutine import aio_co_schedule, current_coroutine, qemu_coroutine_yield

# -- Wrong mappings for 7.1 ---------------------------------------------------------------------


def _explicit(*groups):
    return [{"iothread": f"iothread{i}", "vqs": list(vqs)} for i, vqs in enumerate(groups)]


LOPSIDED = _explicit(range(6), (6, 7))
THREE_THREE_ONE_ONE = _explicit((0, 1, 2), (3, 4, 5), (6,), (7,))
ALL_ON_ONE = _explicit(range(8))
THREE_IOTHREADS = [{"iothread": f"iothread{i}"} for i in range(3)]
A_QUEUE_TWICE = _explicit((0, 1), (1, 2), (3, 4), (5, 6))
NO_SUCH_QUEUE = _explicit((1, 2), (3, 4), (5, 6), (7, 8))
NO_SUCH_IOTHREAD = [{"iothread": f"iothread{i + 1}", "vqs": [2 * i, 2 * i + 1]} for i in range(4)]

# -- Wrong moves for 7.2 (move(new_ctx, old_ctx)) ----------------------------------------------


def schedules_then_works(new_ctx, old_ctx):
    """R6 itself: schedules itself in the new context, finishes its bookkeeping, then yields."""
    yield aio_co_schedule(new_ctx, current_coroutine(old_ctx.sim))
    yield compute(2)
    yield qemu_coroutine_yield()


def schedules_then_yields(new_ctx, old_ctx):
    """Yields at once after scheduling itself: the window is short, but it is there."""
    yield aio_co_schedule(new_ctx, current_coroutine(old_ctx.sim))
    yield qemu_coroutine_yield()


def bh_in_the_new_context(new_ctx, old_ctx):
    """A one-shot BH, but in the context it moves to: that context can run it at once."""
    co = current_coroutine(old_ctx.sim)

    def move_bh():
        yield aio_co_schedule(new_ctx, co)

    yield new_ctx.bh_schedule_oneshot(move_bh, "reschedule self")
    yield qemu_coroutine_yield()


def never_yields(new_ctx, old_ctx):
    """Schedules the move from a BH, but never gives up the thread."""
    co = current_coroutine(old_ctx.sim)

    def move_bh():
        yield aio_co_schedule(new_ctx, co)

    yield old_ctx.bh_schedule_oneshot(move_bh, "reschedule self")


def back_to_the_old_context(new_ctx, old_ctx):
    """Reschedules itself where it already is."""
    yield aio_co_schedule(old_ctx, current_coroutine(old_ctx.sim))
    yield qemu_coroutine_yield()


def yields_only(new_ctx, old_ctx):
    """Yields with nobody left to enter it again."""
    yield qemu_coroutine_yield()


def stays(new_ctx, old_ctx):
    """Does not move at all."""
    yield compute(1)


# -- 7.3 ---------------------------------------------------------------------------------------

LETTER, SHARE = RECALL_KEYS_07
MEASURED = cross_thread_share()

WRONG_ANSWERS = {
    "7.1": [
        LOPSIDED,
        THREE_THREE_ONE_ONE,
        ALL_ON_ONE,
        THREE_IOTHREADS,
        A_QUEUE_TWICE,
        NO_SUCH_QUEUE,
        NO_SUCH_IOTHREAD,
        None,
        "round-robin",
    ],
    "7.2": [
        schedules_then_works,
        schedules_then_yields,
        bh_in_the_new_context,
        never_yields,
        back_to_the_old_context,
        yields_only,
        stays,
        "aio_co_reschedule_self",
    ],
    "7.3": [
        "b",
        {LETTER: "a", SHARE: MEASURED},
        {LETTER: "c", SHARE: MEASURED},
        {LETTER: "d", SHARE: MEASURED},
        {LETTER: "b", SHARE: 1 - MEASURED},
        {LETTER: "b", SHARE: MEASURED + 3 * SHARE_TOLERANCE},
        {LETTER: "b", SHARE: 624},
        {LETTER: "b", SHARE: "most"},
        {LETTER: "e", SHARE: MEASURED},
    ],
    "7.4": [
        saturation_point() - 1,
        saturation_point() + 1,
        8,
        1,
        0,
        str(saturation_point()),
        float(saturation_point()),
    ],
}

#: (question, wrong answer, a phrase its refusal must contain)
SAYS = [
    ("7.1", LOPSIDED, "not balanced"),
    ("7.1", THREE_THREE_ONE_ONE, "'iothread2': 1"),
    ("7.1", THREE_IOTHREADS, "'iothread2': 2"),
    ("7.1", A_QUEUE_TWICE, "virtqueue 1 is mapped more than once"),
    ("7.1", NO_SUCH_QUEUE, "virtqueue 8 does not exist"),
    ("7.1", NO_SUCH_IOTHREAD, "IOThread 'iothread4' does not exist"),
    ("7.1", None, "None is no mapping at all"),
    ("7.2", schedules_then_works, "seed 0: MisuseError"),
    ("7.2", schedules_then_yields, "replay it with run(answer, schedule="),
    ("7.2", schedules_then_yields, "while it is still running in main-loop"),
    ("7.2", bh_in_the_new_context, "while it is still running in main-loop"),
    ("7.2", never_yields, "must really move"),
    ("7.2", back_to_the_old_context, "must really move"),
    ("7.2", yields_only, "stuck"),
    ("7.2", "aio_co_reschedule_self", "answer with the function"),
    ("7.3", "b", "a dict with exactly these keys"),
    ("7.3", WRONG_ANSWERS["7.3"][1], "the CoMutex's rate is not the higher one"),
    ("7.3", WRONG_ANSWERS["7.3"][2], "fairness cannot tell them apart"),
    ("7.3", WRONG_ANSWERS["7.3"][4], "stayed in the unlocker's own IOThread"),
    ("7.3", WRONG_ANSWERS["7.3"][5], f"not within {SHARE_TOLERANCE}"),
    ("7.3", WRONG_ANSWERS["7.3"][6], "not a count"),
    ("7.4", saturation_point() - 1, "still growing"),
    ("7.4", saturation_point() + 1, "had stopped growing at a smaller count"),
    ("7.4", 0, "a whole number of IOThreads from 1 to 8"),
]


def test_the_share_is_accepted_within_its_tolerance_and_not_beyond():
    assert 0 < MEASURED < 1
    for share in (MEASURED, round(MEASURED, 2), MEASURED - 0.9 * SHARE_TOLERANCE):
        assert check("7.3", {LETTER: "b", SHARE: share}, quiet=True), share
    assert not check("7.3", {LETTER: "b", SHARE: MEASURED + 1.5 * SHARE_TOLERANCE}, quiet=True)


def test_a_wrong_letter_is_explained_without_naming_the_right_one(capsys):
    for letter in "acd":
        assert check("7.3", {LETTER: letter, SHARE: MEASURED}) is False
        printed = capsys.readouterr().out
        assert "hand-off" not in printed  # they are the reason: said only to a right answer
        for other in "abcd".replace(letter, ""):
            assert f"{other}:" not in printed and f"'{other}'" not in printed, printed


def test_a_wrong_count_is_not_told_the_right_one(capsys):
    want = saturation_point()
    for wrong in (want - 1, want + 1, 8):
        assert check("7.4", wrong) is False
        printed = capsys.readouterr().out
        assert f" {want} " not in printed.replace(f"not {wrong}", ""), printed
