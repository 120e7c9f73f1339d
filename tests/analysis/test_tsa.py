"""The static pass: clang's checks over one function body at a time, and clang's limits."""

from __future__ import annotations

import pytest

from labsupport import QemuMutex, Shared, Simulation
from labsupport.analysis.tsa import check_function, static_check
from labsupport.annotations import acquires, guarded_by, no_tsa, releases, requires

sim = Simulation()
m = QemuMutex(sim, "m")
x = guarded_by(m)(Shared(sim, "x"))


@requires(m)
def update():
    v = yield x.load()
    yield x.store(v + 1)


@acquires("lock")
def take(lock):
    yield lock.lock()


@releases("lock")
def give(lock):
    yield lock.unlock()


def caller_ok():
    yield m.lock()
    yield from update()
    yield m.unlock()


def caller_missing():
    yield from update()


def reads_unguarded():
    v = yield x.load()
    return v


def test_a_missing_lock_and_an_unguarded_access_are_warned_about():
    assert static_check(caller_ok, update).ok
    assert static_check(caller_missing).messages() == [
        "calling `update` requires holding `m` exclusively"
    ]
    assert static_check(reads_unguarded).messages() == [
        "reading `x` requires holding `m` (`x` is guarded by `m`)"
    ]
    text = static_check(caller_missing).text()
    assert text.splitlines()[0] == "static TSA: 1 function(s) checked, 1 warning"
    assert "caller_missing, line 2: warning:" in text and "[-Wthread-safety]" in text


def test_callee_annotations_are_read_with_their_parameters_substituted():
    def uses(node):
        yield from take(node.lock)
        yield from give(node.lock)

    def unbalanced(node):
        yield from take(node.lock)

    assert static_check(uses).ok
    assert static_check(unbalanced).messages() == [
        "`node.lock` is still held at the end of `unbalanced`"
    ]


def test_no_aliasing_a_lock_reached_through_another_name_is_another_lock():
    def aliased():
        lock = m
        yield lock.lock()
        yield from update()
        yield lock.unlock()

    assert static_check(aliased).messages() == ["calling `update` requires holding `m` exclusively"]


def test_no_function_pointers_a_call_through_a_variable_is_not_checked():
    def through_pointer(fn=update):
        yield from fn()

    holder = {"f": update}

    def through_table():
        yield from holder["f"]()

    assert static_check(through_pointer).ok and static_check(through_table).ok


def test_callee_bodies_are_not_analysed_only_their_annotations():
    @requires(m)
    def lies():
        yield m.unlock()  # the body breaks its promise; its callers are still judged by it

    def caller():
        yield m.lock()
        yield from lies()
        yield m.unlock()

    assert static_check(caller).ok
    assert not static_check(lies).ok


def test_no_tsa_skips_the_body_but_its_promises_bind_callers():
    @no_tsa
    @requires(m)
    def hidden():
        yield x.store(0)

    def caller():
        yield from hidden()

    report = static_check(hidden, caller)
    assert report.skipped == ["hidden"] and report.checked == ["caller"]
    assert report.messages() == ["calling `hidden` requires holding `m` exclusively"]


def test_nested_functions_are_other_functions():
    def outer():
        def inner():
            yield from update()

        yield from inner()

    assert check_function(outer) == []


def test_bad_input_is_refused():
    with pytest.raises(TypeError, match="takes functions"):
        static_check(3)
    with pytest.raises(ValueError, match="needs the source"):
        static_check(len)
