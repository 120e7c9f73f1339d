"""The parameter checks: every helper refuses what is not a number in its range, with a message
that names the parameter and the allowed range, and accepts the edges of the range."""

import math
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import labsupport
from labsupport import validate

#: Values no numeric helper accepts, whatever its range.
NOT_NUMBERS = [math.nan, math.inf, -math.inf, True, False, "3", None, [1], 1j]


def refused(check, *args, match=None, **kw):
    """The message of the ValueError that ``check(*args, **kw)`` raises (it must raise one)."""
    with pytest.raises(ValueError, match=match) as e:
        check(*args, **kw)
    return str(e.value)


# -- number -------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", NOT_NUMBERS)
def test_number_refuses_what_is_not_a_finite_number(bad):
    text = refused(validate.number, "speed", bad, low=0, high=10, match="speed must be a number")
    assert "from 0 to 10" in text and text.endswith(f"got {bad!r}")


@pytest.mark.parametrize(
    "kw, bad, rule",
    [
        (dict(low=0, high=10), -1, "from 0 to 10"),
        (dict(low=0, high=10), 10.5, "from 0 to 10"),
        (dict(low=0), -0.001, ">= 0"),
        (dict(low=0, low_open=True), 0, "> 0"),
        (dict(high=5), 6, "<= 5"),
        (dict(high=5, high_open=True), 5, "< 5"),
        (dict(low=0, high=1, low_open=True), 0, "> 0 and <= 1"),
    ],
)
def test_number_refuses_out_of_range_naming_the_range(kw, bad, rule):
    text = refused(
        validate.number, "speed", bad, match=re.escape(f"speed must be a number {rule}"), **kw
    )
    assert text == f"speed must be a number {rule}; got {bad!r}"


def test_number_accepts_the_edges_and_returns_the_value_unchanged():
    assert validate.number("x", 0, low=0, high=10) == 0
    assert validate.number("x", 10.0, low=0, high=10) == 10.0
    assert type(validate.number("x", 3)) is int and type(validate.number("x", 3.5)) is float
    assert validate.number("x", -1e300) == -1e300  # no bounds: any finite number


@given(st.floats(allow_nan=False, allow_infinity=False), st.floats(0, 1e6), st.floats(0, 1e6))
def test_number_accepts_exactly_the_closed_range(x, a, b):
    low, high = min(a, b), max(a, b)
    if low <= x <= high:
        assert validate.number("x", x, low=low, high=high) == x
    else:
        with pytest.raises(ValueError, match="x must be a number from"):
            validate.number("x", x, low=low, high=high)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_open_bounds_refuse_the_bound_itself(x):
    if x > 0:
        assert validate.number("x", x, low=0, low_open=True) == x
    else:
        with pytest.raises(ValueError, match="> 0"):
            validate.number("x", x, low=0, low_open=True)


def test_wording_and_error_types_follow_the_call_site():
    rate = dict(low=0, kind="a rate", unit="per s", verb="is")
    assert refused(validate.number, "m", -1, **rate) == "m is a rate >= 0 per s; got -1"
    assert refused(validate.number, "f()", -1, low=0, says="takes a time") == (
        "f() takes a time; got -1"
    )
    # A value of the wrong type raises type_error; NaN and out-of-range values raise error.
    with pytest.raises(TypeError, match="x must be a number >= 0; got '3'"):
        validate.number("x", "3", low=0, type_error=TypeError)
    refused(validate.number, "x", math.nan, low=0, type_error=TypeError, match="x must be")
    refused(validate.number, "x", -1, low=0, type_error=TypeError, match="x must be")
    with pytest.raises(TypeError, match="seed must be a whole number; got True"):
        validate.whole("seed", True, error=TypeError)

    class Custom(ValueError):
        pass

    with pytest.raises(Custom, match="from 0 to 3"):
        validate.whole("vq", 7, 0, 3, error=Custom)
    with pytest.raises(Custom):
        validate.whole("vq", "7", 0, 3, error=Custom)


# -- whole --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [*NOT_NUMBERS, 2.0, 2.5])
def test_whole_refuses_what_is_not_an_int(bad):
    text = refused(validate.whole, "vcpus", bad, 1, 32, match="vcpus must be a whole number")
    assert text == f"vcpus must be a whole number from 1 to 32; got {bad!r}"


@pytest.mark.parametrize(
    "low, high, bad, rule",
    [
        (1, 32, 0, "from 1 to 32"),
        (1, 32, 33, "from 1 to 32"),
        (0, None, -1, ">= 0"),
        (None, 9, 10, "<= 9"),
    ],
)
def test_whole_refuses_out_of_range_naming_the_range(low, high, bad, rule):
    text = refused(validate.whole, "n", bad, low, high, match="n must be a whole number")
    assert text == f"n must be a whole number {rule}; got {bad}"


@given(st.integers(-1000, 1000))
def test_whole_accepts_exactly_the_range(n):
    if 1 <= n <= 32:
        assert validate.whole("n", n, 1, 32) == n and type(validate.whole("n", n, 1, 32)) is int
    else:
        with pytest.raises(ValueError, match=r"n must be a whole number from 1 to 32; got"):
            validate.whole("n", n, 1, 32)


def test_whole_without_bounds_takes_any_int():
    assert validate.whole("seed", -(2**70)) == -(2**70)
    assert refused(validate.whole, "seed", 1.5) == "seed must be a whole number; got 1.5"


# -- probability, duration ----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [*NOT_NUMBERS, -0.01, 1.01, 2])
def test_probability_refuses_outside_0_to_1(bad):
    text = refused(validate.probability, "p", bad, match="p must be a probability from 0 to 1")
    assert text.endswith(f"; got {bad!r}")


@given(st.floats(0, 1))
def test_probability_accepts_0_to_1_inclusive(p):
    assert validate.probability("p", p) == p
    assert validate.probability("p", 0) == 0 and validate.probability("p", 1) == 1


@pytest.mark.parametrize("bad", [*NOT_NUMBERS, -1, -1e-9])
def test_duration_refuses_negative_and_non_numbers(bad):
    text = refused(validate.duration, "slice_us", bad, match="slice_us must be a duration")
    assert text == f"slice_us must be a duration in microseconds >= 0; got {bad!r}"


def test_duration_edges():
    assert validate.duration("t", 0) == 0 and validate.duration("t", 1e12) == 1e12
    refused(
        validate.duration, "t", 0, positive=True, match="t must be a duration in microseconds > 0"
    )
    assert validate.duration("t", 1e-9, positive=True) == 1e-9
    assert validate.duration("t", 100, high=100) == 100
    refused(validate.duration, "t", 100.5, high=100, match="from 0 to 100")


# -- flag, choice -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, 1, None, "True", math.nan, 1.0])
def test_flag_takes_only_true_or_false(bad):
    text = refused(validate.flag, "atomic", bad, match="atomic must be True or False")
    assert text.endswith(f"got {bad!r}")
    assert validate.flag("atomic", True) is True and validate.flag("atomic", False) is False


def test_choice_lists_what_is_allowed_and_does_not_confuse_bools_with_numbers():
    assert validate.choice("drain", "none", ("none", "before", "inside")) == "none"
    text = refused(validate.choice, "drain", "after", ("none", "before", "inside"), match="drain")
    assert text == "drain must be 'none', 'before' or 'inside'; got 'after'"
    assert refused(validate.choice, "x", 3, ("a", "b")) == "x must be 'a' or 'b'; got 3"
    refused(validate.choice, "k", True, (0, 1), match=r"k must be 0 or 1; got True")
    refused(validate.choice, "k", math.nan, (math.nan,), match="k must be nan")
    assert validate.choice("k", 1.0, (0, 1)) == 1.0


# -- predicates ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", NOT_NUMBERS)
def test_predicates_say_no_to_what_the_helpers_refuse(bad):
    assert not validate.is_number(bad) and not validate.is_whole(bad)


def test_predicates_check_the_range():
    assert (
        validate.is_whole(3, 1, 8) and not validate.is_whole(9, 1, 8) and not validate.is_whole(3.0)
    )
    assert (
        validate.is_number(2.5, 0, 3) and not validate.is_number(-0.1, 0) and validate.is_number(7)
    )


# -- no hand-written checks left ----------------------------------------------------------------

#: ``isinstance(x, bool)`` is how a hand-written number check refuses ``True``; the helpers here
#: do that once. Files allowed to contain the pattern anyway, with the reason.
ALLOWED = {
    "validate.py": "the one place that does the check",
}


#: ``isinstance(v, bool)`` (also split over lines, as the formatter leaves long conditions) and
#: ``math.isfinite(v)``.
HAND_WRITTEN = re.compile(r"isinstance\(\s*[\w.\[\]'\"]+\s*,\s*bool\s*\)|math\.isfinite\(")


def test_the_pattern_finds_what_it_is_for():
    assert HAND_WRITTEN.search("if isinstance(v, bool) or not isinstance(v, int):")
    assert HAND_WRITTEN.search("if (\n    isinstance(\n        self.count, bool\n    )\n)")
    assert HAND_WRITTEN.search("or not math.isfinite(us)")
    assert not HAND_WRITTEN.search("def flag(name: str, value: Any) -> bool:")


def test_no_hand_written_number_checks_outside_validate():
    root = Path(labsupport.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in ALLOWED:
            continue
        text = path.read_text()
        for m in HAND_WRITTEN.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            found.append(f"labsupport/{rel}:{line}: {' '.join(m.group().split())}")
    assert not found, "use labsupport.validate instead of:\n" + "\n".join(found)
