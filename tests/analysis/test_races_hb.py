"""The race detector's happens-before half: synchronisation that is not a lock.

Each pattern of Downey's *Little Book of Semaphores* (LBoS) is written for the engine, correct
and broken. The correct version must be reported on none of 50 random schedules; the broken
one on at least one. Eraser's lockset alone reports most of the correct versions (no lock is
held anywhere), so each of them also checks that the happens-before edges were needed.
"""

import pytest

from labsupport import (
    QemuCond,
    QemuEvent,
    QemuMutex,
    QemuSemaphore,
    Shared,
    compute,
    run,
    sleep,
)
from labsupport import tracebuf as tb
from labsupport.analysis import find_races
from labsupport.analysis.lockdep import LOCK_KINDS

SEEDS = range(50)


def runs(program, seeds=SEEDS, **options):
    return [run(program, policy="random", seed=s, **options) for s in seeds]


def assert_never_races(program, **options):
    results = runs(program, **options)
    for r in results:
        assert r.outcome == "completed", (r.sim.seed, r.outcome)
        races = find_races(r)
        assert races == [], f"seed {r.sim.seed}: " + "\n".join(map(str, races))
    return results


def racy_runs(program, **options):
    return [(r, reports) for r in runs(program, **options) if (reports := find_races(r))]


def assert_sometimes_races(program, *variables, **options):
    found = racy_runs(program, **options)
    assert found, "the broken version was never reported"
    named = {rep.variable for _r, reports in found for rep in reports}
    assert set(variables) <= named, named
    for _r, reports in found:
        for rep in reports:
            assert rep.access.thread != rep.previous.thread
            assert "write" in (rep.access.op, rep.previous.op)
            assert not rep.access.locks & rep.previous.locks
            assert rep.previous in rep.history and rep.history[-1] is rep.previous
    return found


def eraser_alone_flags(results) -> bool:
    """Would the lockset alone (every access of a variable under one common lock, once it is
    shared and written) have reported some run? Then happens-before is what made it correct."""
    for r in results:
        sim = r.sim
        held: dict[int, set] = {}
        first: dict[int, int] = {}
        cands: dict[int, set | None] = {}
        written: dict[int, bool] = {}
        for _t, k, tid, oid, a in zip(*sim.trace.columns(), strict=True):
            obj = sim.objects[oid] if oid >= 0 else None
            if k in (tb.ACQUIRE, tb.RELEASE) and getattr(obj, "kind", "") in LOCK_KINDS:
                mine = held.setdefault(tid, set())
                if k == tb.ACQUIRE:
                    mine.add(oid)
                elif a == 0:
                    mine.discard(oid)
            elif k in (tb.READ, tb.WRITE) and not obj.atomic:
                if first.setdefault(oid, tid) == tid and cands.get(oid) is None:
                    continue
                locks = held.get(tid, set())
                cands[oid] = set(locks) if cands.get(oid) is None else cands[oid] & locks
                written[oid] = written.get(oid, False) or k == tb.WRITE
                if written[oid] and not cands[oid]:
                    return True
    return False


def waited_and_went_straight_through(results, kind: str) -> tuple[bool, bool]:
    """Across the runs: did some wait on a ``kind`` block, and some go through at once?"""
    blocked = passed = False
    for r in results:
        sim = r.sim
        kinds = [getattr(o, "kind", "") for o in sim.objects]
        for _t, k, _tid, oid, a in zip(*sim.trace.columns(), strict=True):
            if oid >= 0 and kinds[oid] == kind:
                blocked |= k == tb.BLOCK
                passed |= k == tb.WAKE and a == 0
    return blocked, passed


# -- LBoS 3.1 signaling ------------------------------------------------------------------------


def signaling(sem: bool):
    """a1 writes a message, then signals; b waits, then reads and answers in the same place."""

    def program(sim):
        msg = Shared(sim, "msg", 0)
        a1_done = QemuSemaphore(sim, "a1_done", 0)

        def a():
            yield msg.store(42)  # statement a1
            if sem:
                yield a1_done.post()

        def b():
            if sem:
                yield a1_done.wait()
            v = yield msg.load()  # statement b1 must see a1
            yield msg.store(v + 1)

        sim.spawn("a", a)
        sim.spawn("b", b)
        return msg

    return program


def test_signaling_a_semaphore_orders_a_write_before_a_read():
    good = assert_never_races(signaling(True))
    assert all(r.sim.model.value == 43 for r in good)
    assert eraser_alone_flags(good)
    assert waited_and_went_straight_through(good, "semaphore") == (True, True)
    assert_sometimes_races(signaling(False), "msg")


# -- LBoS 3.3 rendezvous -----------------------------------------------------------------------


def rendezvous(both_ways: bool):
    """a1 before b2 and b1 before a2. Broken: only b waits for a (one-way signaling)."""

    def program(sim):
        from_a = Shared(sim, "from_a", 0)
        from_b = Shared(sim, "from_b", 0)
        a_arrived = QemuSemaphore(sim, "a_arrived", 0)
        b_arrived = QemuSemaphore(sim, "b_arrived", 0)

        def a():
            yield from_a.store(1)  # a1
            yield a_arrived.post()
            if both_ways:
                yield b_arrived.wait()
            yield from_b.increment()  # a2 uses b1's result

        def b():
            yield from_b.store(1)  # b1
            yield b_arrived.post()
            yield a_arrived.wait()
            yield from_a.increment()  # b2 uses a1's result

        sim.spawn("a", a)
        sim.spawn("b", b)
        return from_a, from_b

    return program


def test_rendezvous():
    good = assert_never_races(rendezvous(True))
    assert all([v.value for v in r.sim.model] == [2, 2] for r in good)
    assert eraser_alone_flags(good)
    found = assert_sometimes_races(rendezvous(False), "from_b")
    assert all({rep.variable for rep in reports} == {"from_b"} for _r, reports in found)


# -- LBoS 3.4 mutex, and a counter under QemuSemaphore(1) ------------------------------------


def mutex_by_semaphore(threads: int, increments: int, guarded: bool, work_us: float = 0):
    def program(sim):
        count = Shared(sim, "count", 0)
        mutex = QemuSemaphore(sim, "mutex", 1)

        def worker():
            for _ in range(increments):
                if guarded:
                    yield mutex.wait()
                yield count.increment()  # load, add, store: three steps
                if guarded:
                    yield mutex.post()
                if work_us:
                    yield compute(work_us)

        for i in range(threads):
            sim.spawn(f"T{i}", worker)
        return count

    return program


def test_mutex_lbos_two_threads_one_increment_each():
    good = assert_never_races(mutex_by_semaphore(2, 1, True))
    assert all(r.sim.model.value == 2 for r in good)
    assert eraser_alone_flags(good)
    assert_sometimes_races(mutex_by_semaphore(2, 1, False), "count")


def test_a_counter_protected_by_a_qemu_semaphore_of_one_is_not_a_race():
    good = assert_never_races(mutex_by_semaphore(3, 3, True, work_us=1), cpus=2)
    assert all(r.sim.model.value == 9 for r in good)
    assert eraser_alone_flags(good)
    assert waited_and_went_straight_through(good, "semaphore") == (True, True)
    found = assert_sometimes_races(mutex_by_semaphore(3, 3, False, work_us=1), "count", cpus=2)
    assert len(found) == len(SEEDS)  # no synchronisation at all: every run is reported


# -- LBoS 3.5 multiplex --------------------------------------------------------------------------


def multiplex(inner_mutex: bool):
    """At most two of four threads inside; inside, they count themselves. A multiplex is not a
    mutex: the count needs its own semaphore(1)."""

    def program(sim):
        inside = Shared(sim, "inside", 0)
        most = Shared(sim, "most", 0)
        multiplex = QemuSemaphore(sim, "multiplex", 2)
        mutex = QemuSemaphore(sim, "mutex", 1)

        def worker():
            yield multiplex.wait()
            if inner_mutex:
                yield mutex.wait()
            n = (yield inside.load()) + 1
            yield inside.store(n)
            if n > (yield most.load()):
                yield most.store(n)
            if inner_mutex:
                yield mutex.post()
            yield compute(1)
            if inner_mutex:
                yield mutex.wait()
            yield inside.store((yield inside.load()) - 1)
            if inner_mutex:
                yield mutex.post()
            yield multiplex.post()

        for i in range(4):
            sim.spawn(f"T{i}", worker)
        return most

    return program


def test_multiplex():
    good = assert_never_races(multiplex(True), cpus=4)
    assert {r.sim.model.value for r in good} == {2}  # two inside at once, never three
    assert eraser_alone_flags(good)
    assert_sometimes_races(multiplex(False), "inside", cpus=4)


# -- LBoS 3.6 barrier (with a turnstile) -------------------------------------------------------

N = 3


def barrier(turnstile_starts_at: int):
    """Each thread writes its slot, meets the others at the barrier, then updates its right
    neighbour's slot. Broken: the turnstile starts open (1 instead of 0)."""

    def program(sim):
        count = Shared(sim, "count", 0)
        slots = [Shared(sim, f"slot{i}", 0) for i in range(N)]
        mutex = QemuSemaphore(sim, "mutex", 1)
        turnstile = QemuSemaphore(sim, "barrier", turnstile_starts_at)

        def worker(i):
            yield slots[i].store(10 * (i + 1))  # before the barrier
            yield mutex.wait()
            n = (yield count.load()) + 1
            yield count.store(n)
            yield mutex.post()
            if n == N:
                yield turnstile.post()
            yield turnstile.wait()  # the turnstile: one through, and it lets the next one in
            yield turnstile.post()
            yield slots[(i + 1) % N].increment()  # after the barrier: a neighbour's slot

        for i in range(N):
            sim.spawn(f"T{i}", worker, i)
        return slots

    return program


def test_barrier_with_a_turnstile():
    good = assert_never_races(barrier(0), cpus=2)
    assert all([s.value for s in r.sim.model] == [11, 21, 31] for r in good)
    assert eraser_alone_flags(good)
    assert_sometimes_races(barrier(1), cpus=2)


# -- LBoS 3.7 reusable barrier (the preloaded turnstiles of 3.7.7) ----------------------------

ROUNDS = 3


def reusable_barrier(two_phases: bool):
    """Every round each thread writes its slot, waits for all, reads its neighbour's slot (it
    must be this round's value), and waits for all again before the next round writes.
    Broken: one phase only (the last to arrive resets the count), so a fast thread laps."""

    def program(sim):
        count = Shared(sim, "count", 0)
        slots = [Shared(sim, f"slot{i}", 0) for i in range(N)]
        seen: list[tuple[int, int]] = []
        mutex = QemuSemaphore(sim, "mutex", 1)
        turnstile = QemuSemaphore(sim, "turnstile", 0)
        turnstile2 = QemuSemaphore(sim, "turnstile2", 0)

        def phase1():
            yield mutex.wait()
            n = (yield count.load()) + 1
            yield count.store(n)
            if n == N:
                if not two_phases:
                    yield count.store(0)
                for _ in range(N):  # turnstile.signal(n)
                    yield turnstile.post()
            yield mutex.post()
            yield turnstile.wait()

        def phase2():
            yield mutex.wait()
            n = (yield count.load()) - 1
            yield count.store(n)
            if n == 0:
                for _ in range(N):
                    yield turnstile2.post()
            yield mutex.post()
            yield turnstile2.wait()

        def worker(i):
            for rnd in range(1, ROUNDS + 1):
                yield slots[i].store(rnd)
                yield from phase1()
                seen.append((rnd, (yield slots[(i + 1) % N].load())))
                yield compute(i)  # the threads are not equally fast
                if two_phases:
                    yield from phase2()

        for i in range(N):
            sim.spawn(f"T{i}", worker, i)
        return seen

    return program


def test_reusable_barrier():
    good = assert_never_races(reusable_barrier(True), cpus=3)
    assert all(all(rnd == v for rnd, v in r.sim.model) for r in good)
    assert eraser_alone_flags(good)
    assert_sometimes_races(reusable_barrier(False), cpus=3)


# -- LBoS 4.1 producer-consumer with a bounded buffer -----------------------------------------

SIZE = 2


def bounded_buffer(producers: int, consumers: int, mutex_too: bool, items: int = 4):
    """``spaces`` and ``items`` count the free and full slots; with several producers or
    consumers the indexes need ``mutex`` as well. One producer and one consumer need none."""
    assert (producers * items) % consumers == 0

    def program(sim):
        buf = [Shared(sim, f"buf[{k}]", None) for k in range(SIZE)]
        tail = Shared(sim, "tail", 0)
        head = Shared(sim, "head", 0)
        mutex = QemuSemaphore(sim, "mutex", 1)
        full = QemuSemaphore(sim, "items", 0)
        free = QemuSemaphore(sim, "spaces", SIZE)
        got: list[int] = []

        def producer(p):
            for n in range(items):
                yield free.wait()
                if mutex_too:
                    yield mutex.wait()
                k = yield tail.load()
                yield buf[k].store(100 * p + n)
                yield tail.store((k + 1) % SIZE)
                if mutex_too:
                    yield mutex.post()
                yield full.post()

        def consumer():
            for _ in range(producers * items // consumers):
                yield full.wait()
                if mutex_too:
                    yield mutex.wait()
                k = yield head.load()
                got.append((yield buf[k].load()))
                yield buf[k].store(None)
                yield head.store((k + 1) % SIZE)
                if mutex_too:
                    yield mutex.post()
                yield free.post()

        for p in range(producers):
            sim.spawn(f"producer{p}", producer, p)
        for c in range(consumers):
            sim.spawn(f"consumer{c}", consumer)
        return got

    return program


def test_producer_consumer_with_a_bounded_buffer():
    good = assert_never_races(bounded_buffer(2, 2, True), cpus=2)
    assert all(sorted(r.sim.model) == [0, 1, 2, 3, 100, 101, 102, 103] for r in good)
    assert eraser_alone_flags(good)
    assert_sometimes_races(bounded_buffer(2, 2, False), "tail", "head", cpus=2)


def test_one_producer_and_one_consumer_need_no_mutex():
    good = assert_never_races(bounded_buffer(1, 1, False, items=5), cpus=2)
    assert all(r.sim.model == [0, 1, 2, 3, 4] for r in good)
    assert eraser_alone_flags(good)
    # a consumer that does not wait for an item reads a slot the producer may be writing
    broken = bounded_buffer(1, 1, False, items=5)

    def no_items_semaphore(sim):
        got = broken(sim)
        full = next(o for o in sim.objects if getattr(o, "name", "") == "items")
        full.count = 10**6  # as if it were not there: every wait goes straight through
        return got

    assert_sometimes_races(no_items_semaphore, cpus=2)


# -- LBoS 4.2 readers-writers (the lightswitch) ------------------------------------------------


def readers_writers(readers_use_the_lightswitch: bool):
    def program(sim):
        data = Shared(sim, "data", 0)
        readers = Shared(sim, "readers", 0)
        room_empty = QemuSemaphore(sim, "room_empty", 1)
        mutex = QemuSemaphore(sim, "read_switch.mutex", 1)
        seen: list[int] = []

        def lock_switch():  # the first reader in locks the room
            yield mutex.wait()
            n = (yield readers.load()) + 1
            yield readers.store(n)
            if n == 1:
                yield room_empty.wait()
            yield mutex.post()

        def unlock_switch():  # the last reader out unlocks it
            yield mutex.wait()
            n = (yield readers.load()) - 1
            yield readers.store(n)
            if n == 0:
                yield room_empty.post()
            yield mutex.post()

        def writer(w):
            for _ in range(2):
                yield room_empty.wait()
                v = yield data.load()
                yield data.store(v + 1)
                yield room_empty.post()
                yield compute(1 + w)

        def reader():
            for _ in range(2):
                if readers_use_the_lightswitch:
                    yield from lock_switch()
                seen.append((yield data.load()))
                yield compute(1)
                if readers_use_the_lightswitch:
                    yield from unlock_switch()

        for w in range(2):
            sim.spawn(f"writer{w}", writer, w)
        for i in range(3):
            sim.spawn(f"reader{i}", reader)
        return data

    return program


def test_readers_writers_with_the_lightswitch():
    good = assert_never_races(readers_writers(True), cpus=3)
    assert all(r.sim.model.value == 4 for r in good)
    assert eraser_alone_flags(good)
    assert_sometimes_races(readers_writers(False), "data", cpus=3)


# -- QemuEvent: an event flag hands data over ---------------------------------------------------


def event_handoff(set_after_the_write: bool):
    def program(sim):
        data = Shared(sim, "data", 0)
        ready = QemuEvent(sim, "ready")

        def producer():
            if set_after_the_write:
                yield data.store(42)
                yield ready.set()
            else:  # the bug: announced before it is there
                yield ready.set()
                yield data.store(42)

        def consumer(n):
            yield ready.wait()
            v = yield data.load()
            yield data.store(v + n)

        sim.spawn("producer", producer)
        sim.spawn("consumer", consumer, 1)
        return data

    return program


def test_an_event_flag_orders_the_write_before_the_waiters():
    good = assert_never_races(event_handoff(True))
    assert all(r.sim.model.value == 43 for r in good)
    assert eraser_alone_flags(good)
    assert waited_and_went_straight_through(good, "event") == (True, True)
    found = assert_sometimes_races(event_handoff(False), "data")
    assert len(found) == len(SEEDS)


def test_an_event_reset_publishes_nothing():
    def program(sim):
        data = Shared(sim, "data", 0)
        ev = QemuEvent(sim, "ev")

        def a():
            yield data.store(1)
            yield ev.reset()  # not a set: it publishes nothing

        def c():
            yield sleep(1)
            yield ev.set()  # c never touched data

        def b():
            yield ev.wait()
            yield data.store(2)

        sim.spawn("a", a)
        sim.spawn("b", b)
        sim.spawn("c", c)

    assert len(racy_runs(program, seeds=range(10))) == 10


# -- QemuCond: a condition variable hands data over ----------------------------------------------


def condition_handoff(data_before_signal: bool):
    """The producer fills ``data`` with no lock, then sets ``ready`` and signals under the
    mutex; the consumer (already waiting: the producer starts 1 us late) uses ``data`` outside
    the mutex once woken. The signal orders the two. Broken: the producer writes ``data``
    after it has signalled."""

    def program(sim):
        data = Shared(sim, "data", 0)
        ready = Shared(sim, "ready", 0)
        m = QemuMutex(sim, "m")
        cond = QemuCond(sim, "cond")

        def producer():
            yield sleep(1)
            if data_before_signal:
                yield data.store(42)
            yield m.lock()
            yield ready.store(1)
            yield cond.signal()
            yield m.unlock()
            if not data_before_signal:
                yield data.store(42)

        def consumer():
            yield m.lock()
            while not (yield ready.load()):
                yield cond.wait(m)
            yield m.unlock()
            v = yield data.load()
            yield data.store(v + 1)

        sim.spawn("producer", producer)
        sim.spawn("consumer", consumer)
        return data

    return program


def test_a_condition_signal_orders_the_write_before_the_woken_waiter():
    good = assert_never_races(condition_handoff(True))
    assert all(r.sim.model.value == 43 for r in good)
    assert eraser_alone_flags(good)
    assert waited_and_went_straight_through(good, "condition")[0]
    assert_sometimes_races(condition_handoff(False), "data")


def monitor_queue(consumer_locks: bool):
    """The usual monitor: producers put items in a queue and broadcast; consumers wait in a
    loop and take them, all under the mutex. Broken: a consumer peeks without the mutex."""

    def program(sim):
        queued = Shared(sim, "queued", 0)
        taken = Shared(sim, "taken", 0)
        m = QemuMutex(sim, "m")
        nonempty = QemuCond(sim, "nonempty")

        def producer():
            for _ in range(2):
                yield m.lock()
                yield queued.increment()
                yield nonempty.broadcast()
                yield m.unlock()
                yield compute(1)

        def consumer():
            for _ in range(2):
                if not consumer_locks:
                    yield queued.load()  # "just a peek"
                yield m.lock()
                while (yield queued.load()) == 0:
                    yield nonempty.wait(m)
                yield queued.store((yield queued.load()) - 1)
                yield taken.increment()
                yield m.unlock()

        for i in range(2):
            sim.spawn(f"producer{i}", producer)
            sim.spawn(f"consumer{i}", consumer)
        return taken

    return program


def test_a_monitor_queue_with_broadcast():
    good = assert_never_races(monitor_queue(True), cpus=2)
    assert all(r.sim.model.value == 4 for r in good)
    assert waited_and_went_straight_through(good, "condition")[0]
    assert_sometimes_races(monitor_queue(False), "queued", cpus=2)


# -- spawn and join ------------------------------------------------------------------------------


def join_program(joins: bool):
    """The parent sets up ``result``, spawns a child that fills it in, joins it, and uses it."""

    def program(sim):
        result = Shared(sim, "result", 0)

        def child():
            v = yield result.load()  # the parent's set-up, seen through the spawn
            yield compute(1)
            yield result.store(v + 1)

        def parent():
            yield result.store(41)
            c = sim.spawn("child", child)
            yield sleep(sim.rng.choice((0.5, 2)))  # the child may be done before the join
            if joins:
                yield c.join()
            v = yield result.load()
            yield result.store(v + 1)

        sim.spawn("parent", parent)
        sim.spawn("bystander", lambda: (yield compute(1)))
        return result

    return program


def test_join_orders_the_childs_writes_before_the_parents_reads():
    good = assert_never_races(join_program(True), cpus=2)
    assert all(r.sim.model.value == 43 for r in good)
    assert eraser_alone_flags(good)
    assert waited_and_went_straight_through(good, "thread") == (True, True)
    assert_sometimes_races(join_program(False), "result", cpus=2)


def test_spawn_orders_the_parents_writes_before_the_child():
    def program(sim):
        config = Shared(sim, "config", 0)

        def child():
            yield config.store((yield config.load()) + 1)

        def parent():
            yield config.store(1)
            sim.spawn("child", child)

        sim.spawn("parent", parent)

    good = assert_never_races(program)
    assert eraser_alone_flags(good)
    spawns = [
        a for _t, k, _tid, _o, a in zip(*good[0].sim.trace.columns(), strict=True) if k == tb.SPAWN
    ]
    assert spawns == [-1, 0]  # the program spawned the parent; the parent spawned the child


# -- atomics: an atomic store happens-before a later atomic load --------------------------------


def flag_program(flag_atomic: bool, data_first: bool = True):
    def program(sim):
        data = Shared(sim, "data", 0)
        flag = Shared(sim, "flag", 0, atomic=flag_atomic)

        def writer():
            if data_first:
                yield data.store(42)
            yield flag.store(1)  # qatomic_store_release
            if not data_first:
                yield data.store(42)

        def reader():
            while not (yield flag.load()):  # qatomic_load_acquire
                yield sleep(1)
            yield data.store((yield data.load()) + 1)

        sim.spawn("writer", writer)
        sim.spawn("reader", reader)
        return data

    return program


def test_an_atomic_flag_publishes_the_data_written_before_it():
    good = assert_never_races(flag_program(True))
    assert eraser_alone_flags(good)
    assert_sometimes_races(flag_program(False), "flag")
    found = assert_sometimes_races(flag_program(True, data_first=False), "data")
    assert len(found) == len(SEEDS)


# -- what still is a race ------------------------------------------------------------------------


def test_a_lock_hand_over_orders_nothing_so_the_lockset_still_decides():
    """Written under a lock here, with no lock there: reported on every schedule, even when
    the two threads pass the lock from one to the other (Eraser's discipline, kept: that is
    how chapter 7's R7 is found without a lucky schedule)."""

    def program(sim):
        node = Shared(sim, "node", "A")
        bql = QemuMutex(sim, "BQL")

        def vcpu():
            yield bql.lock()
            yield node.store("B")
            yield bql.unlock()

        def coroutine():
            yield sleep(1)
            yield bql.lock()
            yield bql.unlock()
            yield node.store((yield node.load()) + "'")

        sim.spawn("vcpu0", vcpu)
        sim.spawn("iothread0", coroutine)

    found = racy_runs(program, seeds=range(10))
    assert len(found) == 10
    for _r, (rep,) in found:
        pair = {(a.thread, a.op, a.locks) for a in (rep.access, rep.previous)}
        assert ("vcpu0", "write", frozenset({"BQL"})) in pair


def test_a_post_that_comes_after_the_write_it_should_publish_does_not_order_it():
    def program(sim):
        x = Shared(sim, "x", 0)
        s = QemuSemaphore(sim, "s", 0)

        def a():
            yield s.post()
            yield x.store(1)

        def b():
            yield s.wait()
            yield x.store(2)

        sim.spawn("a", a)
        sim.spawn("b", b)

    assert len(racy_runs(program)) == len(SEEDS)


@pytest.mark.parametrize("seed", range(3))
def test_reports_keep_their_format(seed):
    r = run(mutex_by_semaphore(2, 2, False), policy="random", seed=seed)
    (rep,) = find_races(r)
    lines = rep.text().splitlines()
    assert lines[0] == "RACE on count: no lock protects every access"
    assert lines[1].startswith(f"  {rep.access.thread} ") and "holding no lock" in lines[1]
    assert lines[2].endswith("(the previous access by another thread)")
    assert rep.previous.step < rep.access.step
