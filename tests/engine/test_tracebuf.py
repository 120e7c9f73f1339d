"""The event stream keeps every value exactly, whichever way a batch is packed."""

from labsupport.tracebuf import TraceBuffer


def fill(values):
    tb = TraceBuffer()
    for i, v in enumerate(values):
        tb.record((float(i), 6, i % 3, 7, v))
    return tb


def test_plain_ints_take_the_fast_path_and_round_trip():
    values = list(range(-5, 10_000))
    tb = fill(values)
    assert [e.arg for e in tb] == values
    assert list(tb.tid) == [i % 3 for i in range(len(values))]


def test_mixed_values_round_trip_exactly():
    big = (1 << 63) - 1
    values = [1, True, False, 2.5, None, ("add 1", 3), "text", 1 << 62, -(1 << 62), big, 1 << 70, 0]
    tb = fill(values)
    got = [e.arg for e in tb]
    assert got == values
    assert [type(v) for v in got] == [type(v) for v in values]  # True stays a bool


def test_packing_in_batches_mid_run_changes_nothing():
    values = [i if i % 7 else float(i) for i in range(3 * TraceBuffer.BATCH + 11)]
    a = fill(values)
    b = TraceBuffer()
    for i, v in enumerate(values):
        b.record((float(i), 6, i % 3, 7, v))
        b.maybe_pack()
    assert len(a) == len(b) == len(values)
    assert a.first_difference(b) is None
    b.record((0.0, 6, 0, 7, 99))
    assert a.first_difference(b) == len(values)
