"""Parameter checks: bad input fails at once, naming the parameter and what is allowed.

A model run with ``vcpus=2.5``, ``slow_syscall_prob=float("nan")`` or ``seed=True`` would not
crash: it would run, and print numbers that mean nothing, long after the mistake. So every
public entry point checks its parameters when it is called, and refuses a bad one with an
exception whose message says which parameter, which values are allowed, and what it got:
``vcpus must be a whole number from 1 to 32; got 0``. Each helper here is one such check; it
returns the value, so a call site reads ``n = validate.whole("vcpus", n, 1, 32)``.

What counts as a number is the same everywhere: an ``int`` or a ``float``, finite, and not a
``bool`` (``True`` is an ``int`` to Python, but ``vcpus=True`` is always a slip). Strings such as
``"3"``, ``None``, NaN and the infinities are refused. The ``is_*`` predicates answer the same
question without raising, for the exercise checkers, which reply with feedback instead.

Each helper takes the same optional wording arguments, so a call site keeps its own sentence:
``verb`` ("must be", "is", ...), ``kind`` (what the value is, "a whole number", "a rate", ...),
``unit`` (after the range: "microseconds", "commands per second") and ``says`` (the whole
predicate after the name, for a sentence the pattern does not fit). The message is
``f"{name} {verb} {kind} {range} {unit}; got {value!r}"`` (the range in words: "from 1 to 32",
">= 0", "> 0") or ``f"{name} {says}; got {value!r}"``.

``error`` is the exception raised (``ValueError`` unless the caller says otherwise) and
``type_error`` the one raised for a value of the wrong type (a bool, a string, None; the same
as ``error`` unless given). NaN and the infinities are floats, so they raise
``error``, like a number out of range.

The same holds for what is not a number: ``label`` (a non-empty name: every lock, variable and
event has one), ``labels`` (one name as a str, or a collection of names), ``numbers`` (a
collection of numbers, not a lone number or a string), ``instance`` (an object of a given class:
``sim`` is a Simulation) and ``function`` (something callable).

Layer 1: imports nothing from labsupport, so every layer can use it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Real
from typing import Any

__all__ = [
    "choice",
    "duration",
    "flag",
    "function",
    "instance",
    "is_number",
    "is_whole",
    "items",
    "label",
    "labels",
    "number",
    "numbers",
    "probability",
    "whole",
]


def is_number(value: Any, low: float | None = None, high: float | None = None) -> bool:
    """True if ``value`` is a finite int or float (not a bool) with ``low <= value <= high``."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (low is None or value >= low)
        and (high is None or value <= high)
    )


def is_whole(value: Any, low: int | None = None, high: int | None = None) -> bool:
    """True if ``value`` is an int (not a bool) with ``low <= value <= high``."""
    return isinstance(value, int) and not isinstance(value, bool) and is_number(value, low, high)


def _range(low: Any, high: Any, low_open: bool, high_open: bool) -> str:
    """The allowed range in words: ``from 1 to 32``, ``>= 0``, ``> 0 and <= 1``, or nothing."""
    lo = None if low is None else f"{'>' if low_open else '>='} {low}"
    hi = None if high is None else f"{'<' if high_open else '<='} {high}"
    if lo and hi:
        return f"from {low} to {high}" if not (low_open or high_open) else f"{lo} and {hi}"
    return lo or hi or ""


def _fail(
    exc: type[Exception],
    name: str,
    value: Any,
    says: str | None,
    *words: str,
) -> Exception:
    rule = says if says is not None else " ".join(w for w in words if w)
    return exc(f"{name} {rule}; got {value!r}")


def number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    kind: str = "a number",
    unit: str = "",
    verb: str = "must be",
    says: str | None = None,
    error: type[Exception] = ValueError,
    type_error: type[Exception] | None = None,
) -> float:
    """Return ``value`` (unchanged, an int or a float) if it is a finite number in the range.

    The range is ``low <= value <= high`` (either bound may be None); ``low_open`` and
    ``high_open`` make a bound strict (``value > low``, ``value < high``). A value that is not a
    number at all (a bool, a string, None, ...) raises ``type_error`` (default: ``error``); NaN,
    an infinity or a number outside the range raises ``error``.
    """
    words = (verb, kind, _range(low, high, low_open, high_open), unit)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise _fail(type_error or error, name, value, says, *words)
    if not math.isfinite(value):
        raise _fail(error, name, value, says, *words)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        raise _fail(error, name, value, says, *words)
    return value


def whole(
    name: str,
    value: Any,
    low: int | None = None,
    high: int | None = None,
    *,
    kind: str = "a whole number",
    unit: str = "",
    verb: str = "must be",
    says: str | None = None,
    error: type[Exception] = ValueError,
    type_error: type[Exception] | None = None,
) -> int:
    """Return ``value`` if it is an int (not a bool, not ``3.0``) with ``low <= value <= high``.

    Either bound may be None. A value that is not an int raises ``type_error`` (default:
    ``error``); one outside the range, ``error``.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        words = (verb, kind, _range(low, high, False, False), unit)
        raise _fail(type_error or error, name, value, says, *words)
    wording = dict(kind=kind, unit=unit, verb=verb, says=says, error=error)
    return int(number(name, value, low=low, high=high, **wording))


def probability(name: str, value: Any, **wording: Any) -> float:
    """Return ``value`` if it is a number from 0 to 1 (both included). ``wording`` (``verb``,
    ``says``, ``error``, ``type_error``) is as for ``number``."""
    return number(name, value, low=0, high=1, kind="a probability", **wording)


def duration(
    name: str,
    value: Any,
    *,
    positive: bool = False,
    high: float | None = None,
    kind: str = "a duration in microseconds",
    **wording: Any,
) -> float:
    """Return ``value`` if it is a time in microseconds: finite and >= 0 (> 0 if ``positive``),
    and at most ``high`` if given. ``wording`` (``unit``, ``verb``, ``says``, ``error``,
    ``type_error``) is as for ``number``."""
    return number(name, value, low=0, high=high, low_open=positive, kind=kind, **wording)


def flag(
    name: str,
    value: Any,
    *,
    verb: str = "must be",
    says: str | None = None,
    error: type[Exception] = ValueError,
) -> bool:
    """Return ``value`` if it is ``True`` or ``False`` (not 0, 1, None or a string)."""
    if not isinstance(value, bool):
        raise _fail(error, name, value, says, verb, "True or False")
    return value


def choice(
    name: str,
    value: Any,
    allowed: Iterable[Any],
    *,
    verb: str = "must be",
    says: str | None = None,
    error: type[Exception] = ValueError,
) -> Any:
    """Return ``value`` if it equals one of ``allowed``; a bool matches only a bool (``True``
    is not ``1`` here), and NaN matches nothing. The message lists the allowed values:
    ``drain must be 'none', 'before' or 'inside'; got 'after'``."""
    allowed = tuple(allowed)
    if not any(value == a and isinstance(value, bool) == isinstance(a, bool) for a in allowed):
        reprs = [repr(a) for a in allowed]
        listed = reprs[0] if len(reprs) == 1 else f"{', '.join(reprs[:-1])} or {reprs[-1]}"
        raise _fail(error, name, value, says, verb, listed)
    return value


def _listed(allowed: Iterable[Any]) -> str:
    reprs = [repr(a) for a in allowed]
    if not reprs:
        return "(nothing)"
    return reprs[0] if len(reprs) == 1 else f"{', '.join(reprs[:-1])} or {reprs[-1]}"


def label(
    name: str,
    value: Any,
    *,
    kind: str = "a non-empty string",
    verb: str = "must be",
    says: str | None = None,
    error: type[Exception] = ValueError,
    type_error: type[Exception] | None = None,
) -> str:
    """Return ``value`` if it is a non-empty ``str`` (a lock's, a variable's, a thread's name).
    A value that is not a str raises ``type_error`` (default: ``error``); ``""``, ``error``."""
    if not isinstance(value, str):
        raise _fail(type_error or error, name, value, says, verb, kind)
    if not value.strip():
        raise _fail(error, name, value, says, verb, kind)
    return value


def labels(
    name: str,
    value: Any,
    allowed: Iterable[Any] | None = None,
    *,
    empty: bool = False,
    kind: str = "a name or a collection of names",
    error: type[Exception] = ValueError,
) -> tuple[str, ...]:
    """Return ``value`` as a tuple of names: a lone ``str`` is one name (``"BQL"`` is not the
    set ``{'B', 'Q', 'L'}``), a list, tuple, set or frozenset of non-empty strs is each of them.
    With ``allowed`` every name must be one of those (the message lists them); with
    ``empty=False`` at least one name is needed."""
    if isinstance(value, str):
        items: tuple[Any, ...] = (value,)
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = tuple(value)
    else:
        raise _fail(TypeError, name, value, None, "must be", kind)
    if not items and not empty:
        raise _fail(error, name, value, None, "must be", kind, "(at least one)")
    for item in items:
        label(name, item, kind=f"{kind}, each a non-empty string", error=error)
        if allowed is not None:
            allowed = tuple(allowed)
            if item not in allowed:
                raise _fail(error, name, item, None, "must name", _listed(allowed))
    return items


def items(
    name: str,
    value: Any,
    *,
    kind: str = "a list",
    empty: bool = True,
    error: type[Exception] = ValueError,
) -> list[Any]:
    """Return ``value`` as a list if it is a collection (a list, a tuple, a range, a set, a numpy
    array, a generator: any iterable but a str, bytes or a dict). A lone number or a string
    raises ``TypeError`` (``values must be a list; got 4``, not ``'int' object is not
    iterable``); an empty one, ``error`` unless ``empty``."""
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, Iterable):
        raise _fail(TypeError, name, value, None, "must be", kind)
    out = list(value)
    if not out and not empty:
        raise _fail(error, name, value, None, "must be", kind, "(at least one)")
    return out


def numbers(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    whole_numbers: bool = False,
    empty: bool = True,
    kind: str | None = None,
    error: type[Exception] = ValueError,
) -> list[Any]:
    """Return ``value`` as a list if it is a collection (a list, a tuple, a range, a numpy
    array, any iterable but a str, a dict or an iterator used once) of finite numbers, each
    within ``low``..``high`` (whole numbers if ``whole_numbers``). A lone number or a string
    raises ``TypeError``; an item that is not a number, ``error`` naming ``name[i]``."""
    what = kind or ("a list of whole numbers" if whole_numbers else "a list of numbers")
    rng = _range(low, high, False, False)
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, Iterable):
        raise _fail(TypeError, name, value, None, "must be", what, rng)
    out = list(value)
    if not out and not empty:
        raise _fail(error, name, value, None, "must be", what, "(at least one)")
    check = whole if whole_numbers else number
    for i, item in enumerate(out):
        if not isinstance(item, (int, float)) and isinstance(item, Real) and hasattr(item, "item"):
            out[i] = item = item.item()  # a numpy scalar: numpy.int64 is not an int
        if whole_numbers:
            check(f"{name}[{i}]", item, low, high, error=error)
        else:
            check(f"{name}[{i}]", item, low=low, high=high, error=error)
    return out


def instance(
    name: str,
    value: Any,
    types: type | tuple[type, ...],
    *,
    kind: str | None = None,
    error: type[Exception] = TypeError,
) -> Any:
    """Return ``value`` if it is an instance of ``types``: ``sim must be a Simulation; got
    'x'`` (the slip of passing the arguments in the wrong order)."""
    if not isinstance(value, types):
        if kind is None:
            names = [t.__name__ for t in (types if isinstance(types, tuple) else (types,))]
            kind = "a " + " or a ".join(names)
        raise _fail(error, name, value, None, "must be", kind)
    return value


def function(
    name: str, value: Any, *, kind: str = "a function", error: type[Exception] = TypeError
) -> Any:
    """Return ``value`` if it can be called (a function, a method, a class)."""
    if not callable(value):
        raise _fail(error, name, value, None, "must be", kind)
    return value
