"""Known wrong answers to chapter 4's exercises: each one is refused, and the refusal says what
is wrong with that answer.

``WRONG_ANSWERS`` maps each question to answers a learner could plausibly give; ``SAYS`` names,
for the telling ones, a phrase the refusal must contain.
"""

from __future__ import annotations

from labsupport import check
from labsupport.chapters.ch04.checks import (
    P99_GRID,
    P99_LIMIT_US,
    SEEDS_04,
    _culprits_04,
    longest_info_block,
    monitor_p99,
    predict_run,
)
from labsupport.chapters.ch04.scenarios import complete_under_bql
from labsupport.qemu import aio_context_acquire, aio_context_release

# -- Wrong completion handlers for 4.5 ----------------------------------------------------------


def no_lock(dev):
    yield dev.stats.increment()


def counts_twice(dev):
    yield aio_context_release(dev.ctx)
    yield dev.bql.lock("iothread: completion")
    yield aio_context_acquire(dev.ctx, "iothread: completion")
    yield dev.stats.increment()
    yield dev.stats.increment()
    yield dev.bql.unlock()


def counts_after_the_unlock(dev):
    """The order is right, but the update comes after the BQL is let go."""
    yield aio_context_release(dev.ctx)
    yield dev.bql.lock("iothread: completion")
    yield aio_context_acquire(dev.ctx, "iothread: completion")
    yield dev.bql.unlock()
    yield dev.stats.increment()


def never_takes_the_context_back(dev):
    """Lets go of the context its loop holds and returns without it."""
    yield aio_context_release(dev.ctx)
    yield dev.bql.lock("iothread: completion")
    yield dev.stats.increment()
    yield dev.bql.unlock()


def not_a_generator(dev):
    dev.bql.lock("iothread: completion")
    dev.stats.increment()
    dev.bql.unlock()


TRUTH_41 = predict_run().sim.model
BEST_SEED = max(SEEDS_04, key=longest_info_block)
BY_LENGTH = sorted(SEEDS_04, key=longest_info_block)
FIRST_P = next(p for p in P99_GRID if monitor_p99(p) > P99_LIMIT_US)
CULPRITS = _culprits_04()
HOLDS_CTX, HOLDS_BQL = "holds AioContext, takes BQL", "holds BQL, takes AioContext"

WRONG_ANSWERS = {
    "4.1": [
        {"info_block_us": 3, "vcpu1_exit_done_at": 10},  # as if nothing held the lock
        {
            "info_block_us": TRUTH_41["vcpu1_exit_done_at"],
            "vcpu1_exit_done_at": TRUTH_41["info_block_us"],
        },
        {"info_block_us": TRUTH_41["info_block_us"] - 3, **{"vcpu1_exit_done_at": 10}},
        {"info_block_us": TRUTH_41["info_block_us"] + 0.5, "vcpu1_exit_done_at": 40},
        {"info_block_us": str(TRUTH_41["info_block_us"]), "vcpu1_exit_done_at": 40},
        {"info_block_us": TRUTH_41["info_block_us"]},
        TRUTH_41["info_block_us"],
    ],
    "4.2": [BY_LENGTH[0], BY_LENGTH[-2], 99, -1, str(BEST_SEED), float(BEST_SEED), True],
    "4.3": [
        {HOLDS_CTX: CULPRITS[HOLDS_BQL], HOLDS_BQL: CULPRITS[HOLDS_CTX]},  # swapped
        {HOLDS_CTX: "iothread0", HOLDS_BQL: CULPRITS[HOLDS_BQL]},
        {HOLDS_CTX: CULPRITS[HOLDS_CTX].upper(), HOLDS_BQL: CULPRITS[HOLDS_BQL]},
        {HOLDS_CTX: CULPRITS[HOLDS_CTX], HOLDS_BQL: "main-loop"},
        {HOLDS_CTX: CULPRITS[HOLDS_CTX]},
        {**CULPRITS, "deadlock": "no"},
        f"{CULPRITS[HOLDS_CTX]} and {CULPRITS[HOLDS_BQL]}",
    ],
    "4.4": [
        0.0034,  # the near miss that once passed as 0.003
        round(FIRST_P + 0.00045, 5),  # rounds to the right grid value, but is not it
        round(FIRST_P - 0.0004, 4),
        round(FIRST_P - 0.001, 3),  # the grid value before
        round(FIRST_P + 0.001, 3),  # the grid value after
        0.0,
        0.02,
        0.0005,
        FIRST_P + 1e-6,
        str(FIRST_P),
        True,
    ],
    "4.5": [
        complete_under_bql,  # the bug
        no_lock,
        counts_twice,
        counts_after_the_unlock,
        never_takes_the_context_back,
        not_a_generator,
        "take the BQL first",
    ],
}

#: (question, wrong answer, a phrase its refusal must contain)
SAYS = [
    ("4.1", WRONG_ANSWERS["4.1"][0], "info_block_us and vcpu1_exit_done_at: not what this run"),
    ("4.1", WRONG_ANSWERS["4.1"][3], "to within 1e-06 us"),
    ("4.1", WRONG_ANSWERS["4.1"][4], "must be a number of microseconds"),
    ("4.2", BY_LENGTH[-2], "another seed does better"),
    ("4.2", 99, f"a seed from 0 to {SEEDS_04[-1]}"),
    ("4.3", WRONG_ANSWERS["4.3"][0], f"{HOLDS_CTX!r} and {HOLDS_BQL!r}: not the thread"),
    ("4.3", WRONG_ANSWERS["4.3"][1], f"{HOLDS_CTX!r}: not the thread the report names"),
    ("4.3", WRONG_ANSWERS["4.3"][4], "each a thread's name"),
    ("4.4", WRONG_ANSWERS["4.4"][0], "exactly, to within 1e-09"),
    ("4.4", WRONG_ANSWERS["4.4"][3], f"not above {P99_LIMIT_US} us"),
    ("4.4", WRONG_ANSWERS["4.4"][4], "but a smaller p already crosses"),
    ("4.5", complete_under_bql, "deadlock"),
    ("4.5", no_lock, "without the BQL held"),
    ("4.5", counts_twice, "every completion must count once"),
    ("4.5", counts_after_the_unlock, "without the BQL held"),
    ("4.5", not_a_generator, "generator function"),
]


def test_a_near_miss_of_4_4_is_refused_and_the_grid_value_passes():
    """0.0034 once passed as 0.003: a value within rounding of the answer is not the answer."""
    near = WRONG_ANSWERS["4.4"][1]
    assert round(near, 3) == FIRST_P != near
    assert not check("4.4", near, quiet=True)
    assert check("4.4", FIRST_P, quiet=True)
