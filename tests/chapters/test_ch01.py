"""What chapter 1 teaches, asserted: each claim of notebooks/01-one-thread.ipynb is a test here.

tests/qemu/test_models.py already covers the headline claims on its own workload (flat guest
throughput over vCPUs, latency growing with the slice, a slow handler stalling the guest); the
tests below cover the chapter's visible model, its exact workloads (with the device timer) and
the finer claims its text makes, and the exercises' checkers.
"""

from __future__ import annotations

import contextlib
import io
from collections import deque
from pathlib import Path

import pytest
from chapter_opening import opening, problems
from notebook_cells import code_cells, run_cells

from labsupport import QemuSemaphore, Shared, check, compute, metrics, run, sleep, trace_table
from labsupport.chapters.ch01.checks import (
    LATENCY_WORKLOAD,
    P99_BOUND_US,
    READ_US,
    READS,
    SLICE_CANDIDATES,
    VCPU_GRID,
    VCPU_WORKLOAD,
    _bh_pass_01,
    _grid_01,
    _largest_slice_01,
    _offload_01,
    _order_01,
    bh_pass,
    pass_order_program,
    slice_p99,
)
from labsupport.loop import AIO_ORDER, MAIN_LOOP_2008_ORDER, AioContext, EventNotifier, aio_poll
from labsupport.qemu import Disk, Workload, run_era

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "01-one-thread.ipynb"
SOLUTIONS = ROOT / "solutions" / "01-one-thread-exercises.ipynb"

# The chapter's workloads (sections 3 and 4 of the notebook).
W = Workload(vcpus=3, io_depth=4, timer_period_us=1000, duration_us=20_000)
W_CPU = Workload(timer_period_us=1000, duration_us=20_000)
W_IO = Workload(vcpus=3, io_depth=1, timer_period_us=1000, duration_us=20_000)
W_H = W


def test_the_chapter_opens_with_goals_a_time_and_a_map_of_every_section():
    assert problems(NOTEBOOK) == []
    o = opening(NOTEBOOK)
    for sub in ("4.1-More-vCPUs,-no-more-speed", "4.2-I/O-latency-versus-the-time-slice"):
        assert sub in o.map_targets


def test_the_prose_quotes_the_trace_as_it_prints():
    """Section 1's explanation names step 4 as the trace table prints it."""
    rows = trace_table(run(_one_pass(MAIN_LOOP_2008_ORDER))).splitlines()[2:]
    step4 = next(r for r in rows if r.split()[0] == "4")
    assert "schedule raise-irq" in step4
    assert "Step 4, `schedule raise-irq`" in NOTEBOOK.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def model() -> dict:
    return run_cells(NOTEBOOK, "era-model", ns={}, minimum=3)


# -- the visible model is the library's model ---------------------------------------------------


@pytest.mark.parametrize(
    "w",
    [
        W,
        W.replace(seed=7, host_cpus=1),
        W_CPU.replace(vcpus=1),
        W_CPU.replace(vcpus=8, slice_us=50),
        W_IO.replace(vcpus=1),  # the only vCPU halts: the loop sleeps
        W_IO.replace(vcpus=1, timer_period_us=0, seed=3),
        W_IO.replace(slice_us=50),
        W_IO.replace(slice_us=1000, seed=2),
        W_H.replace(handler_us=400),
        W_H.replace(vcpus=5, io_depth=8, disk_queue_depth=2, guest_us=10),
    ],
    ids=lambda w: f"v{w.vcpus}-io{w.io_depth}-s{w.slice_us:g}-h{w.handler_us:g}-seed{w.seed}",
)
def test_the_era_model_cells_give_exactly_what_run_era_gives(model, w):
    mine = model["run_one_thread"](w)
    library = run_era(w, "one-thread")
    assert mine.summary() == library.summary()
    q, lib = mine.result.sim.model, library.result.sim.model
    assert q.latencies == lib["dev"].latencies
    assert q.guest_us == lib["counters"].guest_us and q.exits == lib["counters"].exits
    assert q.completed == lib["dev"].completed
    assert mine.result.time == library.result.time
    assert [t.name for t in mine.result.sim.threads] == ["qemu"]
    assert sum(q.vcpu_us) == pytest.approx(q.guest_us)


def test_the_era_model_builds_the_2008_loop_without_any_lock(model):
    r = model["run_one_thread"](W)
    q = r.result.sim.model
    assert q.ctx.order == MAIN_LOOP_2008_ORDER
    assert [h[0].name for h in q.ctx.handlers] == ["virtqueue-kick", "disk-completion"]
    assert [t.name for t in q.ctx.timers] == ["periodic"]
    assert q.irq_bh.name == "raise-irq"
    assert not metrics(r.result).locks  # one thread: nothing to lock


# -- section 1: one pass of the loop ----------------------------------------------------------


def _one_pass(order):
    def program(sim):
        ctx = AioContext(sim, "main", order=order)
        disk = Disk(sim, service_us=15, queue_depth=1)
        irq = Shared(sim, "irq", 0)
        seen = []

        def raise_irq():
            yield irq.store(1)

        bh = ctx.bh_new(raise_irq, "raise-irq")

        def completion():
            disk.completed.popleft()
            yield compute(3)
            yield bh.schedule()

        def tick():
            seen.append(("timer", irq.value))
            return None

        ctx.set_event_notifier(disk.completion, completion)
        ctx.timer_new(tick, "tick").arm(10)

        def qemu():
            yield disk.submit("read")
            yield compute(20)
            yield aio_poll(ctx, False)
            seen.append(("guest", (yield irq.load())))

        sim.spawn("qemu", qemu)
        return seen

    return program


def test_a_bh_scheduled_by_a_handler_runs_last_in_the_same_pass():
    assert run(_one_pass(MAIN_LOOP_2008_ORDER)).sim.model == [("timer", 0), ("guest", 1)]
    # BHs first (later QEMU's aio_poll): the guest runs again before its interrupt is raised
    assert run(_one_pass(AIO_ORDER)).sim.model == [("timer", 0), ("guest", 0)]
    assert bh_pass(MAIN_LOOP_2008_ORDER) == 1 and bh_pass(AIO_ORDER) == 2


def test_one_pass_runs_fd_handlers_then_due_timers_then_bhs_newest_first():
    ran = run(pass_order_program).sim.model
    # every ready fd handler, then every due timer (watchdog is not due yet), then the BHs,
    # newest first (the 2008 list was walked from its head, where qemu_bh_new put the newest),
    # the one the fd handler scheduled included
    assert ran == ["disk-completion", "rtc-tick", "raise-irq", "dma-restart"]


# -- section 2: a slow handler stalls the guest -----------------------------------------------


def _slow(handler_us, blocking):
    def program(sim):
        ctx = AioContext(sim, "main", order=MAIN_LOOP_2008_ORDER)
        disk = Disk(sim, service_us=50, queue_depth=1)
        starts = []

        def completion():
            disk.completed.popleft()
            yield sleep(handler_us) if blocking else compute(handler_us)

        ctx.set_event_notifier(disk.completion, completion)

        def qemu():
            yield disk.submit("read")
            for _ in range(3):
                starts.append(sim.now)
                yield compute(100)
                yield aio_poll(ctx, False)

        sim.spawn("qemu", qemu)
        return starts

    return program


@pytest.mark.parametrize(
    "handler_us, blocking, starts, end, ran",
    [
        (5, False, [0, 105, 205], 305, 305),
        (300, False, [0, 400, 500], 600, 600),
        (300, True, [0, 400, 500], 600, 300),  # the CPU idles, and still the guest waits
    ],
)
def test_a_slow_or_blocking_handler_delays_the_next_guest_slice(
    handler_us, blocking, starts, end, ran
):
    r = run(_slow(handler_us, blocking))
    assert r.sim.model == starts and r.time == end
    assert metrics(r).run_us["qemu"] == ran


# -- section 3 and question 4: the thread never waits while a vCPU has guest code --------------


def test_the_loop_sleeps_only_when_no_vcpu_has_guest_code():
    busy = metrics(run_era(W, "one-thread").result)
    assert busy.blocked_us["qemu"] == 0 and busy.run_us["qemu"] == W.duration_us
    assert busy.cpu_utilisation == pytest.approx(0.25)  # one host CPU of four
    alone = metrics(run_era(W_IO.replace(vcpus=1), "one-thread").result)
    assert alone.blocked_us["qemu"] > 0.5 * W_IO.duration_us  # asleep in select()


# -- section 4.1: more vCPUs, no more speed ---------------------------------------------------


def test_more_vcpus_and_more_host_cpus_add_nothing_to_the_digit():
    runs = [run_era(W_CPU.replace(vcpus=n), "one-thread") for n in (1, 2, 4, 8)]
    busy = {r.guest_cpus_busy for r in runs}
    assert len(busy) == 1  # identical, not merely close
    (b,) = busy
    assert b == pytest.approx(50 / 55, abs=0.02)  # 5 us of MMIO emulation per 50 us of guest
    for r in runs:
        assert metrics(r.result).cpu_utilisation * r.workload.host_cpus == pytest.approx(1.0)
    for h in (1, 64):
        assert run_era(W_CPU.replace(vcpus=8, host_cpus=h), "one-thread").guest_cpus_busy == b


def test_each_vcpu_gets_an_equal_share_of_the_one_thread(model):
    q = model["run_one_thread"](W_CPU.replace(vcpus=4)).result.sim.model
    share = [us / q.guest_us for us in q.vcpu_us]
    assert all(s == pytest.approx(0.25, abs=0.03) for s in share)


# -- section 4.2: I/O latency versus the time slice ---------------------------------------------


def test_latency_grows_with_the_slice_and_tends_to_two_rounds():
    slices = (50, 100, 200, 500, 1000)
    runs = [run_era(W_IO.replace(slice_us=s), "one-thread") for s in slices]
    p50 = [r.io_p50_us for r in runs]
    p99 = [r.io_p99_us for r in runs]
    assert p50 == sorted(p50) and len(set(p50)) == len(p50)
    assert p99 == sorted(p99) and len(set(p99)) == len(p99)
    for s, r in zip(slices, runs):
        two_rounds = 2 * (W_IO.vcpus - 1) * s
        assert r.io_p50_us > two_rounds
        if s >= 500:
            assert r.io_p50_us < 1.2 * two_rounds
    # the guest hardly notices; the disk's request rate falls more than tenfold
    busy = [r.guest_cpus_busy for r in runs]
    assert max(busy) - min(busy) < 0.05 * max(busy)
    assert runs[0].io_per_s > 10 * runs[-1].io_per_s
    # question 2: halving the slice from 200 to 100 us cuts the median by about 40%
    assert 0.5 < p50[1] / p50[2] < 0.7
    assert (round(p50[2]), round(p50[1])) == (991, 591)  # "991 to 591 us"
    assert abs(busy[1] - busy[2]) < 0.02


# -- section 4.3: handler cost comes out of the guest's time ------------------------------------


def test_what_handlers_take_the_guest_loses():
    costs = (0, 50, 100, 200, 400)
    runs = [run_era(W_H.replace(handler_us=h), "one-thread") for h in costs]
    guest, loop = [], []
    for r in runs:
        d = r.workload.duration_us
        thread = metrics(r.result).run_us["qemu"] / d
        assert thread == pytest.approx(1.0)  # the three shares add up to one host CPU
        mmio = r.result.sim.model["counters"].exits * r.workload.mmio_emulation_us / d
        guest.append(r.guest_cpus_busy)
        loop.append(thread - r.guest_cpus_busy - mmio)
    assert guest == sorted(guest, reverse=True) and len(set(guest)) == len(guest)
    assert loop == sorted(loop) and len(set(loop)) == len(loop)
    assert guest[-1] < 0.5 * guest[0]
    rates = [r.io_per_s for r in runs]
    p50 = [r.io_p50_us for r in runs]
    assert rates == sorted(rates, reverse=True) and p50 == sorted(p50)


# -- the exercises' checkers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def solutions() -> dict:
    """The solution notebook's code, run (its checks print; the grader cell is left out)."""
    ns: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        for source in code_cells(SOLUTIONS):
            if "### BEGIN HIDDEN TESTS" in source:
                continue
            exec(compile(source, str(SOLUTIONS), "exec"), ns)
    return ns


def test_1_1_order(solutions):
    assert _order_01(solutions["order"])[0]
    assert _order_01(["fd disk-completion", "timer rtc-tick", "bh raise-irq", "bh dma-restart"])[0]
    ok, why = _order_01(["disk-completion", "rtc-tick", "dma-restart", "raise-irq"])
    assert not ok and "dma-restart is not number 3" in why  # the order they were scheduled
    ok, why = _order_01(["disk-completion", "dma-restart", "raise-irq", "rtc-tick"])
    assert not ok and "dma-restart is not number 2" in why
    ok, why = _order_01(["disk-completion", "rtc-tick", "watchdog", "dma-restart", "raise-irq"])
    assert not ok and "watchdog does not run" in why
    assert not _order_01("disk-completion")[0]


def test_1_2_largest_slice(solutions):
    assert solutions["largest_slice"] == 200
    p99 = {s: slice_p99(s) for s in SLICE_CANDIDATES}
    assert p99[200] <= P99_BOUND_US < p99[250]
    assert _largest_slice_01(200)[0]
    assert not _largest_slice_01(150)[0] and not _largest_slice_01(250)[0]
    assert "candidate" in _largest_slice_01(120)[1]
    assert not _largest_slice_01(200.0)[0]
    assert LATENCY_WORKLOAD == W_IO


def test_1_3_grid(solutions):
    busy = solutions["busy"]
    assert set(busy) == set(VCPU_GRID) and len(set(busy.values())) == 1
    assert _grid_01(busy)[0]
    assert not _grid_01({**busy, (8, 4): 3.6})[0]
    assert not _grid_01({k: v for k, v in busy.items() if k != (1, 1)})[0]
    assert VCPU_WORKLOAD == W_CPU.replace(vcpus=VCPU_WORKLOAD.vcpus)


def test_1_4_the_blocking_handler_fails_and_the_worker_thread_fixes_it(solutions):
    ok, why = _offload_01(solutions["io_program"])
    assert not ok and f"waited {READS * READ_US:g} us" in why
    assert _offload_01(solutions["offloaded_program"])[0]

    make_machine = solutions["make_machine"]

    def worker_touches_device_state(sim):
        m = make_machine(sim)
        todo = deque()
        work = QemuSemaphore(sim, "aio-work")

        def handle_kick():
            while m.requests:
                todo.append(m.requests.popleft())
                yield work.post()

        def worker():
            while True:
                yield work.wait()
                todo.popleft()
                yield sleep(READ_US)
                yield m.done.increment()  # the bug: device state changed by a worker

        m.ctx.set_event_notifier(m.kick, handle_kick)
        sim.spawn("worker", worker, daemon=True)
        sim.spawn("qemu", m.qemu)
        return {"done": m.done, "slices": m.slices}

    ok, why = _offload_01(worker_touches_device_state)
    assert not ok and "worker wrote requests_done" in why

    def worker_thread(daemon, poller=False):
        def program(sim):
            m = make_machine(sim)
            todo, finished = deque(), deque()
            work = QemuSemaphore(sim, "aio-work")
            read_done = EventNotifier(sim, "aio-done")

            def handle_kick():
                while m.requests:
                    todo.append(m.requests.popleft())
                    yield work.post()

            def worker():  # waits for work forever
                while True:
                    yield work.wait()
                    request = todo.popleft()
                    yield sleep(READ_US)
                    finished.append(request)
                    yield read_done.set()

            def handle_read_done():
                while finished:
                    finished.popleft()
                    yield m.done.increment()

            m.ctx.set_event_notifier(m.kick, handle_kick)
            m.ctx.set_event_notifier(read_done, handle_read_done)
            sim.spawn("worker", worker, daemon=daemon)
            if poller:  # a daemon that sleeps and looks again never lets a run end

                def poll():
                    while True:
                        yield sleep(10)

                sim.spawn("poller", poll, daemon=True)
            sim.spawn("qemu", m.qemu)
            return {"done": m.done, "slices": m.slices}

        return program

    assert _offload_01(worker_thread(daemon=True))[0]
    ok, why = _offload_01(worker_thread(daemon=True, poller=True))
    assert not ok and "does a thread poll in a loop" in why
    ok, why = _offload_01(worker_thread(daemon=False))
    assert not ok and "stuck" in why and "daemon=True" in why


def test_1_5_bh_pass(solutions):
    assert solutions["passes"] == (1, 2)
    assert _bh_pass_01((1, 2))[0]
    assert not _bh_pass_01((1, 1))[0] and not _bh_pass_01((2, 2))[0]
    assert not _bh_pass_01([1, 2])[0]


def test_a_stub_answer_reads_as_not_answered_yet():
    def stub(sim):
        raise NotImplementedError("Your answer here")

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert check("1.4", stub) is False
    assert "not answered yet" in out.getvalue()
