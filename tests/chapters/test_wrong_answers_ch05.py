"""Known wrong answers to chapter 5's exercises: each one is refused, and the refusal says what
is wrong with that answer.

``WRONG_ANSWERS`` maps each question to answers a learner could plausibly give (the answers
themselves: values and functions); ``SAYS`` names, for the telling ones, a phrase the refusal
must contain.
"""

from __future__ import annotations

from labsupport import check, compute, sleep
from labsupport.chapters.ch05.checks import (
    PREDICT_KEYS,
    RECALL_KEYS,
    RECALL_NESTING,
    _predict_answer,
)
from labsupport.coroutine import qemu_coroutine_yield
from labsupport.loop import aio_wait_while
from labsupport.qemu import aio_context_acquire, aio_context_release

# -- Wrong fixes for 5.1 (save_vmstate(io, main_ctx, in_flight)) ------------------------------


def nested(io, main_ctx, in_flight):
    """D1 itself: the context taken twice, released once by the wait."""
    yield aio_context_acquire(io.ctx, "main: save_vmstate")
    yield aio_context_acquire(io.ctx, "main: bdrv_flush")
    yield aio_wait_while(io.ctx, lambda: in_flight.value > 0)
    yield aio_context_release(io.ctx)
    yield aio_context_release(io.ctx)


def no_wait(io, main_ctx, in_flight):
    """Takes and releases the context, and returns with the request still in flight."""
    yield aio_context_acquire(io.ctx, "main: save_vmstate")
    yield aio_context_release(io.ctx)


def never_locks(io, main_ctx, in_flight):
    """Waits without ever holding the IOThread's context."""
    yield aio_wait_while(io.ctx, lambda: in_flight.value > 0)


def never_releases(io, main_ctx, in_flight):
    """Waits well, but keeps the context when it returns."""
    yield aio_context_acquire(io.ctx, "main: save_vmstate")
    yield aio_wait_while(io.ctx, lambda: in_flight.value > 0)


def releases_first(io, main_ctx, in_flight):
    """Lets go of the context before the wait, which then releases a lock nobody holds."""
    yield aio_context_acquire(io.ctx, "main: save_vmstate")
    yield aio_context_release(io.ctx)
    yield aio_wait_while(io.ctx, lambda: in_flight.value > 0)


def sleeps_instead(io, main_ctx, in_flight):
    """Waits a fixed 100 us without the lock instead of waiting for the request."""
    yield aio_context_acquire(io.ctx, "main: save_vmstate")
    yield aio_context_release(io.ctx)
    yield sleep(100)
    yield aio_context_acquire(io.ctx, "main: save_vmstate")
    yield aio_context_release(io.ctx)


def spins(io, main_ctx, in_flight):
    """Drops and retakes the context in a loop without ever letting time pass."""
    yield aio_context_acquire(io.ctx, "main: save_vmstate")
    while in_flight.value > 0:
        yield aio_context_release(io.ctx)
        yield aio_context_acquire(io.ctx, "main: save_vmstate")
    yield aio_context_release(io.ctx)


def not_a_generator(io, main_ctx, in_flight):
    """Calls the tools but yields nothing."""
    aio_context_acquire(io.ctx, "main: save_vmstate")
    return None


# -- Wrong fixes for 5.2 (block_resize(io, drain_bh, resized)) ---------------------------------


def _resize(io, drain_bh, resized, *, drop=True, retake=True, wait=True, release=True):
    """block_resize with its steps switched on and off one by one."""
    yield aio_context_acquire(io.ctx, "qmp: block_resize")
    yield compute(10)
    yield io.ctx.bh_schedule_oneshot(drain_bh, "drain")
    if drop:
        yield aio_context_release(io.ctx)
    if wait:
        yield qemu_coroutine_yield()
    if drop and retake:
        yield aio_context_acquire(io.ctx, "qmp: block_resize")
    yield compute(5)
    yield resized.store(1)
    if release and (retake or not drop):
        yield aio_context_release(io.ctx)


def held_across_the_yield(io, drain_bh, resized):
    """D2 itself."""
    yield from _resize(io, drain_bh, resized, drop=False)


def never_retaken(io, drain_bh, resized):
    """Drops the lock for the yield and resizes without it."""
    yield from _resize(io, drain_bh, resized, retake=False)


def never_yields(io, drain_bh, resized):
    """Schedules the drain but does not wait for it."""
    yield from _resize(io, drain_bh, resized, wait=False)


def kept_at_the_end(io, drain_bh, resized):
    """Retakes the lock after the yield and never lets it go."""
    yield from _resize(io, drain_bh, resized, release=False)


def resizes_first(io, drain_bh, resized):
    """Resizes before it drains."""
    yield aio_context_acquire(io.ctx, "qmp: block_resize")
    yield compute(15)
    yield resized.store(1)
    yield io.ctx.bh_schedule_oneshot(drain_bh, "drain")
    yield aio_context_release(io.ctx)
    yield qemu_coroutine_yield()


def no_resize(io, drain_bh, resized):
    """Every lock step right, the resize forgotten."""
    yield aio_context_acquire(io.ctx, "qmp: block_resize")
    yield io.ctx.bh_schedule_oneshot(drain_bh, "drain")
    yield aio_context_release(io.ctx)
    yield qemu_coroutine_yield()
    yield aio_context_acquire(io.ctx, "qmp: block_resize")
    yield aio_context_release(io.ctx)


RIGHT_53 = _predict_answer()
DEPTH = RECALL_KEYS[1]
#: What 5.5's reason gives: the caller's takes, less the one release of AIO_WAIT_WHILE.
HELD = RECALL_NESTING - 1

WRONG_ANSWERS = {
    "5.1": [
        nested,
        no_wait,
        never_locks,
        never_releases,
        releases_first,
        sleeps_instead,
        not_a_generator,
        "aio_wait_while",
    ],
    "5.2": [
        held_across_the_yield,
        never_retaken,
        never_yields,
        kept_at_the_end,
        resizes_first,
        no_resize,
        None,
    ],
    "5.3": [
        {**RIGHT_53, PREDICT_KEYS[0]: 0},
        {**RIGHT_53, PREDICT_KEYS[1]: 1},
        {**RIGHT_53, PREDICT_KEYS[2]: 3},
        {**RIGHT_53, PREDICT_KEYS[2]: 5},
        {**RIGHT_53, PREDICT_KEYS[2]: 12},
        {**RIGHT_53, PREDICT_KEYS[2]: 40},
        {**RIGHT_53, PREDICT_KEYS[0]: 2},
        [1, 0, 13],
    ],
    "5.4": ["1", "0", "00", "10", "2", "0011", "", 1],
    "5.5": [
        "b",
        {"letter": "a", DEPTH: HELD},
        {"letter": "c", DEPTH: HELD},
        {"letter": "d", DEPTH: HELD},
        {"letter": "b", DEPTH: RECALL_NESTING},
        {"letter": "b", DEPTH: HELD - 1},
        {"letter": "b", DEPTH: 0},
        {"letter": "e", DEPTH: HELD},
        {"letter": "b", DEPTH: str(HELD)},
    ],
}

#: (question, wrong answer, a phrase its refusal must contain)
SAYS = [
    ("5.1", nested, "replay it with run(answer, schedule="),
    ("5.1", no_wait, "in_flight was still 1"),
    ("5.1", never_locks, "never took iothread0's context"),
    ("5.1", never_releases, "still held by main-loop"),
    ("5.1", releases_first, "which nobody holds"),
    ("5.1", sleeps_instead, "went on 100 us after the request had finished"),
    ("5.1", not_a_generator, "never took iothread0's context"),
    ("5.2", held_across_the_yield, "take it before the drain and again after the yield"),
    ("5.2", never_retaken, "did not hold iothread0's context"),
    ("5.2", never_yields, "before the drain's BH had woken the coroutine"),
    ("5.2", kept_at_the_end, "still held by main-loop when the run ends"),
    ("5.2", resizes_first, "before the drain's BH had woken the coroutine"),
    ("5.2", no_resize, "the resize must happen"),
    ("5.3", WRONG_ANSWERS["5.3"][0], "look again at 'in_flight at step 4'"),
    ("5.3", WRONG_ANSWERS["5.3"][2], "before it waits, not after"),
    ("5.3", WRONG_ANSWERS["5.3"][3], "a step of iothread0, not of main-loop"),
    ("5.3", WRONG_ANSWERS["5.3"][4], "main-loop does not take the lock"),
    ("5.3", WRONG_ANSWERS["5.3"][5], "a step of the table"),
    ("5.3", WRONG_ANSWERS["5.3"][6], "0 or 1 here"),
    ("5.4", "1", "before iothread0 looked for work"),
    ("5.4", "0", "was already asleep"),
    ("5.4", "2", "cannot be replayed"),
    ("5.5", "b", "a dict with exactly these keys"),
    ("5.5", WRONG_ANSWERS["5.5"][1], "speed was not the reason"),
    ("5.5", WRONG_ANSWERS["5.5"][4], "before it waits"),
    ("5.5", WRONG_ANSWERS["5.5"][6], "nothing would hang"),
    ("5.5", WRONG_ANSWERS["5.5"][8], "a whole number of levels"),
]


def test_a_spinning_answer_is_told_where_it_spins_in_a_few_lines(capsys):
    """Kept out of ``WRONG_ANSWERS``: its runs last until the step limit, some seconds."""
    assert check("5.1", spins) is False
    printed = capsys.readouterr().out
    assert "seems to be spinning" in printed and "of spins()" in printed
    assert "steps long" in printed and len(printed) < 3_000


def test_a_wrong_letter_is_explained_without_naming_the_right_one(capsys):
    """The refusal of a wrong letter speaks of that letter only: it never names another."""
    for letter in "acd":
        assert check("5.5", {"letter": letter, DEPTH: HELD}) is False
        printed = capsys.readouterr().out
        for other in "abcd".replace(letter, ""):
            assert f"{other}:" not in printed and f"'{other}'" not in printed, printed


def test_the_right_answers_pass():
    from labsupport.chapters.ch05.scenarios import R3_LOST_SCHEDULE

    assert check("5.3", RIGHT_53, quiet=True)
    assert check("5.4", R3_LOST_SCHEDULE, quiet=True)
    assert check("5.5", {"letter": " B ", DEPTH: HELD}, quiet=True)
