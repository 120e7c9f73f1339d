"""Known wrong answers to chapter 3's exercises: each one is refused, and the refusal says what
is wrong with that answer.

``WRONG_ANSWERS`` maps each question to answers a learner could plausibly give; ``SAYS`` names,
for the telling ones, a phrase the refusal must contain.
"""

from __future__ import annotations

from labsupport import check, compute, run
from labsupport.chapters.ch03.checks import (
    FEATURES_36,
    GUEST_US_34,
    LAST,
    WALK_IN,
    main_loop_waits_35,
    predict_31_run,
    refusals_36,
    stores,
)
from labsupport.loop import AioContext, EventNotifier, aio_poll
from labsupport.qemu import BQL, HandlerGuard, r2_program
from labsupport.shared import Shared
from labsupport.sync import QemuMutex

# -- Programs for 3.3 ---------------------------------------------------------------------------


def _device(vcpu_does: str, returns_guard: bool = True):
    """The exercise's device, the vCPU's side done one way: "handler" (it kicks and runs the
    handler too: the bug), "mutex" (the same under a lock around the handler), "only" (it runs
    the handler and never kicks), "nothing" (it places requests and never kicks), or "fixed"
    (it only kicks: the dataplane is the one owner, the right answer)."""

    def program(sim, requests=3):
        bql = BQL(sim)
        guard = HandlerGuard(sim, "virtio_blk_handle_vq")
        avail = Shared(sim, "vq.avail_idx", 0)
        last = Shared(sim, "vq.last_avail_idx", 0)
        kick = EventNotifier(sim, "virtqueue-kick")
        ctx = AioContext(sim, "dataplane")
        vq_lock = QemuMutex(sim, "vq-lock")

        def handle_vq():
            if vcpu_does == "mutex":
                yield vq_lock.lock()
            yield guard.enter()
            while (yield last.load()) < (yield avail.load()):
                idx = yield last.load()
                yield compute(2)
                yield last.store(idx + 1)
            yield guard.leave()
            if vcpu_does == "mutex":
                yield vq_lock.unlock()

        ctx.set_event_notifier(kick, handle_vq)

        def vcpu():
            for _ in range(requests):
                yield avail.increment()
                if vcpu_does in ("handler", "mutex", "fixed"):
                    yield kick.set()
                if vcpu_does in ("handler", "mutex", "only"):
                    yield bql.lock("vcpu: virtio notify")
                    yield from handle_vq()
                    yield bql.unlock()
                yield compute(3)

        def dataplane():
            while True:
                yield aio_poll(ctx, True)

        sim.spawn("vcpu0", vcpu)
        sim.spawn("dataplane", dataplane, daemon=True)
        return guard if returns_guard else None

    return program


two_entries = _device("handler")
a_lock_around_the_handler = _device("mutex")
the_vcpu_owns_it = _device("only")
never_kicks = _device("nothing")
forgets_the_guard = _device("handler", returns_guard=False)

TRUTH_31 = [v for _who, v in stores(predict_31_run().sim, LAST)]
HEAVY, LIGHT = GUEST_US_34[0], GUEST_US_34[-1]
WAITS_35 = main_loop_waits_35()
REFUSED_36 = {feature for feature, message in refusals_36().items() if message}

WRONG_ANSWERS = {
    "3.1": [
        list(range(1, len(TRUTH_31) + 1)),  # as if nothing raced
        TRUTH_31[:-1],
        [v + 1 for v in TRUTH_31],
        [*TRUTH_31[:-1], float(TRUTH_31[-1])],
        "".join(str(v) for v in TRUTH_31),
        {v: v for v in TRUTH_31},
    ],
    "3.2": [
        "",  # first-come: vcpu0 is inside first
        "1",
        "111",
        "0000",
        "9",
        0,  # a seed whose run does it: the answer is a schedule
        True,
        -1,
    ],
    "3.3": [
        two_entries,
        a_lock_around_the_handler,
        the_vcpu_owns_it,
        never_kicks,
        forgets_the_guard,
        r2_program(fixed=True, requests=2),
        "a program",
    ],
    "3.4": [5, 50, 200, 1000, 7, True, "100"],
    "3.5": [
        "b",  # the letter alone
        {"why": "a", "main_loop_wait_us": WAITS_35},
        {"why": "c", "main_loop_wait_us": WAITS_35},
        {"why": "b", "main_loop_wait_us": WAITS_35[::-1]},
        {"why": "b", "main_loop_wait_us": (0, 0)},
        {"why": "b", "main_loop_wait_us": tuple(round(w, -2) + 50 for w in WAITS_35)},
        {"why": "b", "main_loop_wait_us": WAITS_35[0]},
        {"why": "d", "main_loop_wait_us": WAITS_35},
        {"why": "b"},
        {"why": "b", "main_loop_wait_us": ...},  # the measurement still at its stub
    ],
    "3.6": [
        {"refused": REFUSED_36, "why": "b"},
        {"refused": REFUSED_36, "why": "c"},
        {"refused": REFUSED_36 | {"flush"}, "why": "a"},
        {"refused": REFUSED_36 - {"block job"}, "why": "a"},
        {"refused": set(FEATURES_36), "why": "a"},
        {"refused": {"hot plug"}, "why": "a"},
        {"refused": REFUSED_36, "why": "d"},
        {"refused": "format=qcow2", "why": "a"},
        {"refused": REFUSED_36, "why": ...},
        REFUSED_36,
    ],
}

#: (question, wrong answer, a phrase its refusal must contain)
SAYS = [
    ("3.1", WRONG_ANSWERS["3.1"][0], "store number 2 (in table order) is not 2"),
    ("3.1", WRONG_ANSWERS["3.1"][1], f"the table shows {len(TRUTH_31)} stores"),
    ("3.1", WRONG_ANSWERS["3.1"][3], "whole number"),
    ("3.2", "", "the first report is the other way round"),
    ("3.2", "9", "cannot be followed"),
    ("3.2", 0, "not a seed"),
    ("3.3", two_entries, "entered virtio_blk_handle_vq while"),
    ("3.3", a_lock_around_the_handler, "the queue still has two owners"),
    ("3.3", the_vcpu_owns_it, "the queue still has two owners"),
    ("3.3", never_kicks, "each of the 3 requests must be parsed exactly once"),
    ("3.3", forgets_the_guard, "must return its HandlerGuard"),
    ("3.3", WRONG_ANSWERS["3.3"][5], "the guest must still place 3 requests"),
    ("3.4", 200, "not yet twice"),
    ("3.4", 50, "a lighter load, guest_us=100, still gives"),
    ("3.4", 7, "one of the guest_us values measured"),
    ("3.5", "b", "answer with a dict"),
    (
        "3.5",
        WRONG_ANSWERS["3.5"][1],
        "the waits are right, but the measurements do not support (a)",
    ),
    ("3.5", WRONG_ANSWERS["3.5"][2], "the measurements do not support (c)"),
    ("3.5", WRONG_ANSWERS["3.5"][3], f"at guest_us={HEAVY} the main loop of the BQL path"),
    ("3.5", WRONG_ANSWERS["3.5"][5], "off by 1 us at most"),
    ("3.5", WRONG_ANSWERS["3.5"][6], "a pair of numbers"),
    ("3.6", WRONG_ANSWERS["3.6"][0], "the features are right, but (b) is not the reason"),
    ("3.6", WRONG_ANSWERS["3.6"][2], "the dataplane served 1 of the features in your set"),
    ("3.6", WRONG_ANSWERS["3.6"][3], "1 feature(s) it refused are not in your set"),
    ("3.6", WRONG_ANSWERS["3.6"][5], "unknown feature(s) ['hot plug']"),
    ("3.5", WRONG_ANSWERS["3.5"][9], "'main_loop_wait_us' still holds the stub ..."),
    ("3.6", WRONG_ANSWERS["3.6"][8], "'why' still holds the stub ..."),
]


def test_the_schedule_of_a_seed_that_finds_it_is_a_right_answer():
    runs = [run(r2_program(fixed=False), policy="random", seed=s, cpus=2) for s in range(10)]
    walk_ins = [r for r in runs if r.sim.model.reports and WALK_IN in r.sim.model.reports[0]]
    assert walk_ins
    assert check("3.2", walk_ins[0].schedule, quiet=True)


def test_3_5_and_3_6_cannot_be_passed_by_trying_letters():
    """Without the measured waits no letter passes 3.5; without the refused set none passes
    3.6; with them, exactly one does."""
    for letter in "abc":
        assert not check("3.5", {"why": letter, "main_loop_wait_us": (0, 0)}, quiet=True)
        assert not check("3.6", {"refused": set(FEATURES_36), "why": letter}, quiet=True)
    waits = WAITS_35
    right_35 = [
        w for w in "abc" if check("3.5", {"why": w, "main_loop_wait_us": waits}, quiet=True)
    ]
    right_36 = [w for w in "abc" if check("3.6", {"refused": REFUSED_36, "why": w}, quiet=True)]
    assert len(right_35) == len(right_36) == 1


def test_a_wrong_set_is_told_how_many_features_are_wrong_not_which(capsys):
    check("3.6", {"refused": set(FEATURES_36), "why": "a"})
    printed = capsys.readouterr().out
    served = set(FEATURES_36) - REFUSED_36
    assert f"served {len(served)} of the features" in printed
    assert not any(feature in printed for feature in FEATURES_36), printed


def test_a_wrong_wait_is_not_told_the_measured_one(capsys):
    check("3.5", {"why": "b", "main_loop_wait_us": (0, 0)})
    printed = capsys.readouterr().out
    assert not any(f"{w:g}" in printed or f"{w:,.0f}" in printed for w in WAITS_35), printed


def test_a_part_left_at_its_stub_shows_no_ellipsis(capsys):
    for qid, answer in (
        ("3.5", {"why": ..., "main_loop_wait_us": ...}),
        ("3.6", {"refused": ..., "why": ...}),
    ):
        assert not check(qid, answer)
        printed = capsys.readouterr().out
        assert "still hold the stub" in printed and "Ellipsis" not in printed, printed
