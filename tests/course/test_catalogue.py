"""The bug catalogue: a run that QEMU would refuse with an assertion counts as "misuse"."""

from labsupport import MisuseError, compute
from labsupport.catalogue import MISUSE, Scenario, hunt, outcome_table


def _program(fixed):
    def program(sim):
        def body():
            yield compute(1)
            if not fixed:
                raise MisuseError("refused, as QEMU's assertion would")

        sim.spawn("t", body)

    return program


SC = Scenario("X1", 5, "misuse", "a call QEMU refuses", program=_program)


def test_a_misuse_is_an_outcome_not_a_crash_of_the_table():
    assert SC.classify(False, 0) == MISUSE and SC.classify(True, 0) == "completed"
    table = outcome_table({"X1": SC}, 3)
    assert table[("X1", "buggy")] == {MISUSE: 3} and table[("X1", "fixed")] == {"completed": 3}
    [found] = hunt([SC], 4)
    assert (found.buggy, found.fixed) == (4, 0)
