"""Known wrong answers to chapter 6's exercises: each one is refused, and the refusal says what
is wrong with that answer.

``WRONG_ANSWERS`` maps each question to answers a learner could plausibly give (the answers
themselves: values and functions); ``SAYS`` names, for the telling ones, a phrase the refusal
must contain.
"""

from __future__ import annotations

from labsupport import check
from labsupport.annotations import no_tsa
from labsupport.chapters.ch06.checks import CHOICE_KEYS_64
from labsupport.chapters.ch06.scenarios import bdrv_co_preadv, bdrv_replace_child
from labsupport.qemu.graphlock import (
    GRAPH_RDLOCK,
    GRAPH_UNLOCKED,
    GRAPH_WRLOCK,
    bdrv_drained_begin,
    bdrv_drained_end,
    bdrv_graph_co_rdlock,
    bdrv_graph_co_rdunlock,
    bdrv_graph_wrlock,
    bdrv_graph_wrunlock,
)

# -- Wrong answers to 6.1 (bdrv_co_read_child(bs, req), annotated) -----------------------------


def unannotated(bs, req):
    """The function as the exercise shows it."""
    children = bs.children
    if children:
        yield from bdrv_co_preadv(children[0], req)


@GRAPH_RDLOCK
def does_nothing(bs, req):
    """Annotated right, and reads nothing."""
    yield from ()


@GRAPH_RDLOCK
def reads_the_filter_itself(bs, req):
    """Annotated right, but passes the request to the filter it was given, not to its child."""
    yield from bdrv_co_preadv(bs, req)


@GRAPH_RDLOCK
def reads_twice(bs, req):
    """Annotated right, but reads the child twice."""
    children = bs.children
    if children:
        yield from bdrv_co_preadv(children[0], req)
        yield from bdrv_co_preadv(children[0], req)


@GRAPH_WRLOCK
def asks_for_the_write_lock(bs, req):
    """Asks its callers for the graph lock exclusively."""
    children = bs.children
    if children:
        yield from bdrv_co_preadv(children[0], req)


@GRAPH_UNLOCKED
def says_unlocked(bs, req):
    """Promises the opposite of what it needs."""
    children = bs.children
    if children:
        yield from bdrv_co_preadv(children[0], req)


def takes_the_lock_itself(bs, req):
    """Takes the read lock inside, and tells its callers nothing."""
    yield from bdrv_graph_co_rdlock()
    children = bs.children
    if children:
        yield from bdrv_co_preadv(children[0], req)
    yield from bdrv_graph_co_rdunlock()


@no_tsa
def switched_off(bs, req):
    """Hides the warning with the escape hatch."""
    children = bs.children
    if children:
        yield from bdrv_co_preadv(children[0], req)


def not_a_generator(bs, req):
    """Calls the read without yield from: nothing happens."""
    children = bs.children
    if children:
        bdrv_co_preadv(children[0], req)


# -- Wrong fixes for 6.3 (change_filter_fixed(blk, new)) ---------------------------------------


def drain_inside(blk, new):
    """D7 itself: the drain under the write lock."""
    yield from bdrv_graph_wrlock()
    yield from bdrv_drained_begin(blk)
    yield from bdrv_replace_child(blk, new)
    yield from bdrv_drained_end(blk)
    yield from bdrv_graph_wrunlock()


def no_drain(blk, new):
    """The write lock without a drained section."""
    yield from bdrv_graph_wrlock()
    yield from bdrv_replace_child(blk, new)
    yield from bdrv_graph_wrunlock()


def no_write_lock(blk, new):
    """A drained section without the write lock."""
    yield from bdrv_drained_begin(blk)
    yield from bdrv_replace_child(blk, new)
    yield from bdrv_drained_end(blk)


def drain_after(blk, new):
    """Changes the graph first and drains afterwards."""
    yield from bdrv_graph_wrlock()
    yield from bdrv_replace_child(blk, new)
    yield from bdrv_graph_wrunlock()
    yield from bdrv_drained_begin(blk)
    yield from bdrv_drained_end(blk)


def never_ends_the_drain(blk, new):
    """Forgets bdrv_drained_end: the requests the drain held back wait for ever."""
    yield from bdrv_drained_begin(blk)
    yield from bdrv_graph_wrlock()
    yield from bdrv_replace_child(blk, new)
    yield from bdrv_graph_wrunlock()


def never_unlocks(blk, new):
    """Forgets bdrv_graph_wrunlock."""
    yield from bdrv_drained_begin(blk)
    yield from bdrv_graph_wrlock()
    yield from bdrv_replace_child(blk, new)
    yield from bdrv_drained_end(blk)


def no_replace(blk, new):
    """Every lock step right, the change forgotten."""
    yield from bdrv_drained_begin(blk)
    yield from bdrv_graph_wrlock()
    yield from bdrv_graph_wrunlock()
    yield from bdrv_drained_end(blk)


def replaces_twice(blk, new):
    """Replaces the filter, then replaces its replacement with itself, freeing it."""
    yield from bdrv_drained_begin(blk)
    yield from bdrv_graph_wrlock()
    yield from bdrv_replace_child(blk, new)
    yield from bdrv_replace_child(blk, new)
    yield from bdrv_graph_wrunlock()
    yield from bdrv_drained_end(blk)


LETTER, SLEEPER = CHOICE_KEYS_64
RIGHT_SLEEPER = "bdrv_co_get_info"  # the name the D6 trace shows (the checker runs D6)

WRONG_ANSWERS = {
    "6.1": [
        unannotated,
        does_nothing,
        reads_the_filter_itself,
        reads_twice,
        asks_for_the_write_lock,
        says_unlocked,
        takes_the_lock_itself,
        switched_off,
        not_a_generator,
        None,
    ],
    "6.2": [
        "bdrv_drained_begin",
        "bdrv_drained_end",
        "bdrv_graph_rdlock_main_loop",
        "refresh_ineffective_unlock",
        "compute",
        "bdrv_graph_co_rdunlock",
        "",
        3,
    ],
    "6.3": [
        drain_inside,
        no_drain,
        no_write_lock,
        drain_after,
        never_ends_the_drain,
        never_unlocks,
        no_replace,
        replaces_twice,
        "drain first",
    ],
    "6.4": [
        "b",
        {LETTER: "a", SLEEPER: RIGHT_SLEEPER},
        {LETTER: "c", SLEEPER: RIGHT_SLEEPER},
        {LETTER: "d", SLEEPER: RIGHT_SLEEPER},
        {LETTER: "b", SLEEPER: "req0"},
        {LETTER: "b", SLEEPER: "main-loop"},
        {LETTER: "b", SLEEPER: "bdrv_graph_wrlock"},
        {LETTER: "b", SLEEPER: 3},
        {LETTER: "e", SLEEPER: RIGHT_SLEEPER},
    ],
}

#: (question, wrong answer, a phrase its refusal must contain)
SAYS = [
    ("6.1", unannotated, "requires holding `graph_lock` (shared)"),
    ("6.1", does_nothing, "it must still read"),
    ("6.1", reads_the_filter_itself, "through the first child"),
    ("6.1", reads_twice, "through the first child"),
    ("6.1", asks_for_the_write_lock, "exclusively"),
    ("6.1", takes_the_lock_itself, "does not say what its caller must hold"),
    ("6.1", switched_off, "no_tsa"),
    ("6.2", "bdrv_drained_begin", "its annotation (GRAPH_UNLOCKED) is right"),
    ("6.2", "bdrv_graph_rdlock_main_loop", "does what its annotation says"),
    ("6.2", "refresh_ineffective_unlock", "the helper itself"),
    ("6.2", "compute", "carries no lock annotation"),
    ("6.2", "bdrv_graph_co_rdunlock", "calls no function named"),
    ("6.3", drain_inside, "requires NOT holding `graph_lock`"),
    ("6.3", no_drain, "drained section"),
    ("6.3", no_write_lock, "requires holding `graph_lock` exclusively"),
    ("6.3", drain_after, "outside a drained section"),
    ("6.3", never_ends_the_drain, "the drained section was never ended"),
    ("6.3", never_unlocks, "still held at the end"),
    ("6.3", no_replace, "never replaced"),
    ("6.3", replaces_twice, "after it was freed"),
    ("6.4", "b", "a dict with exactly these keys"),
    ("6.4", WRONG_ANSWERS["6.4"][1], "speed is not what it is about"),
    ("6.4", WRONG_ANSWERS["6.4"][3], "backwards"),
    ("6.4", WRONG_ANSWERS["6.4"][4], "not asleep in the graph lock's queue"),
    ("6.4", WRONG_ANSWERS["6.4"][5], "that is a thread"),
    ("6.4", WRONG_ANSWERS["6.4"][6], "no coroutine of that name"),
]


def test_the_sleeper_is_the_one_the_hung_run_shows():
    from labsupport.chapters.ch06.checks import SLEEPER_SEED
    from labsupport.chapters.ch06.scenarios import run_scenario

    g = run_scenario("D6", False, seed=SLEEPER_SEED)
    assert g.outcome == "deadlock"
    assert f"sleeping in its CoQueue: {RIGHT_SLEEPER}" in g.diagnosis()
    assert check("6.4", {LETTER: "b", SLEEPER: RIGHT_SLEEPER}, quiet=True)
    assert check("6.4", {LETTER: " B", SLEEPER: f"{RIGHT_SLEEPER}()"}, quiet=True)


def test_a_wrong_letter_is_explained_without_naming_the_right_one(capsys):
    for letter in "acd":
        assert check("6.4", {LETTER: letter, SLEEPER: RIGHT_SLEEPER}) is False
        printed = capsys.readouterr().out
        assert "deadlock" not in printed  # what D6 shows is said only to a right answer
        for other in "abcd".replace(letter, ""):
            assert f"{other}:" not in printed and f"'{other}'" not in printed, printed


def test_a_stub_fix_is_not_answered_yet(capsys):
    def change_filter_fixed(blk, new):
        raise NotImplementedError("Your answer here")

    assert check("6.3", change_filter_fixed) is False
    assert capsys.readouterr().out == (
        "✘ 6.3: not answered yet — replace the `raise NotImplementedError` line\n"
    )
