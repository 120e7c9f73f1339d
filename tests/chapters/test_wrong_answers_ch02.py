"""Known wrong answers to chapter 2's exercises: each one is refused, and the refusal says what
is wrong with that answer.

``WRONG_ANSWERS`` maps each question to answers a learner could plausibly give; ``SAYS`` names,
for the telling ones, a phrase the refusal must contain.
"""

from __future__ import annotations

from labsupport import QemuMutex, check, compute
from labsupport.chapters.ch02.checks import bql_waits, predict_run, unlocked_mmio_write
from labsupport.qemu import BQL

# -- Wrong handlers for 2.3 ---------------------------------------------------------------------


def never_unlocks(bql, dev, cpu):
    yield bql.lock("irq: raise")
    yield from unlocked_mmio_write(bql, dev, cpu)


def only_isr_locked(bql, dev, cpu):
    """The register under the BQL, the count of writes outside it."""
    yield compute(2)
    yield bql.lock("irq: raise")
    isr = yield dev.isr.load()
    yield dev.isr.store(isr | (1 << cpu))
    yield bql.unlock()
    yield dev.writes.increment()


def raises_every_bit(bql, dev, cpu):
    """Under the BQL, but it sets every vCPU's bit at once: the end value is right by design."""
    yield bql.lock("irq: raise")
    yield compute(2)
    yield dev.isr.store(dev.all_raised)
    yield dev.writes.increment()
    yield bql.unlock()


def forgets_the_other_bits(bql, dev, cpu):
    """Under the BQL, but the store drops the bits already raised."""
    yield bql.lock("irq: raise")
    yield compute(2)
    yield dev.isr.store(1 << cpu)
    yield dev.writes.increment()
    yield bql.unlock()


def a_lock_of_its_own(bql, dev, cpu):
    """A fresh lock on every call: it excludes nobody."""
    mine = QemuMutex(dev.bql.mutex.sim, f"irq-{cpu}-{dev.writes.value}")
    yield mine.lock()
    yield from unlocked_mmio_write(bql, dev, cpu)
    yield mine.unlock()


def takes_the_bql_twice(bql, dev, cpu):
    """The BQL is not recursive."""
    yield bql.lock("irq: raise")
    yield bql.lock("irq: raise again")
    yield from unlocked_mmio_write(bql, dev, cpu)
    yield bql.unlock()
    yield bql.unlock()


def not_a_generator(bql, dev, cpu):
    bql.lock("irq: raise")
    dev.isr.store(dev.all_raised)
    bql.unlock()


# -- Programs for 2.5 ---------------------------------------------------------------------------


def _program(vcpu_steps, main_loop_takes_dev_lock=True):
    """2.5's two threads: the vCPU's steps from ``vcpu_steps(bql, dev_lock)``, the main loop as
    the exercise has it (or without its device lock)."""

    def program(sim):
        bql = BQL(sim)
        dev_lock = QemuMutex(sim, "dev.lock")

        def vcpu():
            yield from vcpu_steps(bql, dev_lock)

        def main_loop():
            yield bql.lock("main loop")
            yield compute(1)
            if main_loop_takes_dev_lock:
                yield dev_lock.lock()
                yield dev_lock.unlock()
            yield bql.unlock()

        sim.spawn("vcpu0", vcpu)
        sim.spawn("main-loop", main_loop)

    return program


def _rule(bql, dev_lock):
    yield bql.lock("vcpu: mmio")
    yield dev_lock.lock()
    yield compute(2)
    yield dev_lock.unlock()
    yield bql.unlock()


def _against_the_rule(bql, dev_lock):
    yield dev_lock.lock()
    yield compute(2)
    yield bql.lock("vcpu: mmio")
    yield bql.unlock()
    yield dev_lock.unlock()


def _one_after_the_other(bql, dev_lock):
    yield bql.lock("vcpu: mmio")
    yield bql.unlock()
    yield dev_lock.lock()
    yield compute(2)
    yield dev_lock.unlock()


def _device_lock_only(bql, dev_lock):
    yield dev_lock.lock()
    yield compute(2)
    yield dev_lock.unlock()


bql_first = _program(_rule)
device_lock_first = _program(_against_the_rule)
one_after_the_other = _program(_one_after_the_other)
device_lock_only = _program(_device_lock_only)
main_loop_changed = _program(_rule, main_loop_takes_dev_lock=False)

TRUTH_21 = bql_waits(predict_run())

WRONG_ANSWERS = {
    "2.1": [
        {"vcpu0": TRUTH_21["vcpu1"], "vcpu1": TRUTH_21["vcpu0"]},  # swapped
        {"vcpu0": 0, "vcpu1": 0},
        {"vcpu0": TRUTH_21["vcpu0"], "vcpu1": 0},  # the first exit only
        {"vcpu0": TRUTH_21["vcpu0"] + 0.5, "vcpu1": TRUTH_21["vcpu1"]},
        {"vcpu0": str(TRUTH_21["vcpu0"]), "vcpu1": TRUTH_21["vcpu1"]},
        {"vcpu0": TRUTH_21["vcpu0"]},
        TRUTH_21["vcpu0"] + TRUTH_21["vcpu1"],
    ],
    "2.2": ["", "0", "0000", "0101", "1111", "9", 1],
    "2.3": [
        unlocked_mmio_write,
        never_unlocks,
        only_isr_locked,
        raises_every_bit,
        forgets_the_other_bits,
        a_lock_of_its_own,
        takes_the_bql_twice,
        not_a_generator,
        "the BQL",
    ],
    "2.4": [15, 40, 22, 24, 22.5, 501, "23"],
    "2.5": [
        "b",  # the letter alone
        {"why": "b", "program": device_lock_first},
        {"why": "b", "program": one_after_the_other},
        {"why": "b", "program": device_lock_only},
        {"why": "b", "program": main_loop_changed},
        {"why": "a", "program": bql_first},
        {"why": "c", "program": bql_first},
        {"why": "d", "program": bql_first},
        {"why": "e", "program": bql_first},
        {"why": "b", "program": "bql_first"},
        {"why": "b"},
        {"why": "b", "program": ...},  # the program's name still at its stub
    ],
}

#: (question, wrong answer, a phrase its refusal must contain)
SAYS = [
    ("2.1", WRONG_ANSWERS["2.1"][0], "vcpu0 and vcpu1: not what this schedule produces"),
    ("2.1", WRONG_ANSWERS["2.1"][2], "vcpu1: not what this schedule produces"),
    ("2.1", WRONG_ANSWERS["2.1"][3], "to within 1e-06 us"),
    ("2.1", WRONG_ANSWERS["2.1"][4], "must be a number of microseconds"),
    ("2.2", "", "isr ends at 0b11, not 0b10"),
    ("2.2", "0101", "isr ends at 0b01"),
    ("2.2", "9", "cannot be followed"),
    ("2.3", unlocked_mmio_write, "the BQL was taken 0 times"),
    ("2.3", never_unlocks, "is not recursive"),
    ("2.3", only_isr_locked, "a schedule with"),
    ("2.3", raises_every_bit, "a write must raise only the writer's own bit"),
    ("2.3", forgets_the_other_bits, "expected 0b1111"),
    ("2.3", a_lock_of_its_own, "the BQL was taken 0 times"),
    ("2.3", not_a_generator, "generator function"),
    ("2.4", 15, "below 3: look at longer guest runs"),
    ("2.4", 40, "look at shorter guest runs"),
    ("2.4", 22.5, "a whole number of microseconds"),
    ("2.5", "b", "answer with a dict"),
    ("2.5", WRONG_ANSWERS["2.5"][1], "the program is not right yet: the run ended in deadlock"),
    ("2.5", WRONG_ANSWERS["2.5"][2], "never both at once"),
    ("2.5", WRONG_ANSWERS["2.5"][3], "vcpu0 never took BQL"),
    ("2.5", WRONG_ANSWERS["2.5"][4], "main-loop never took dev.lock"),
    ("2.5", WRONG_ANSWERS["2.5"][5], "the program is right, but (a) is not the reason"),
    ("2.5", WRONG_ANSWERS["2.5"][8], "one letter from 'a' to 'd'"),
    ("2.5", WRONG_ANSWERS["2.5"][11], "'program' still holds the stub ...: put your answer there"),
]


def test_the_right_program_with_the_right_letter_passes_and_no_letter_alone_does():
    """2.5 cannot be passed by trying letters: each needs the program, and with it only one
    letter passes."""
    assert check("2.5", {"why": "b", "program": bql_first}, quiet=True)
    for letter in "abcd":
        assert not check("2.5", {"why": letter, "program": device_lock_first}, quiet=True)
    passing = [w for w in "abcd" if check("2.5", {"why": w, "program": bql_first}, quiet=True)]
    assert passing == ["b"]


def test_a_wrong_letters_refusal_does_not_point_at_another_letter(capsys):
    for letter in "acd":
        check("2.5", {"why": letter, "program": bql_first})
        printed = capsys.readouterr().out
        assert "cycle" not in printed and "order" not in printed, printed
        assert not any(f"({other})" in printed for other in "abcd" if other != letter), printed


def test_a_part_left_at_its_stub_is_named_and_no_ellipsis_shows(capsys):
    assert not check("2.5", {"why": ..., "program": ...})
    printed = capsys.readouterr().out
    assert "'why' and 'program' still hold the stub" in printed and "Ellipsis" not in printed
