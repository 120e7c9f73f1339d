"""The QEMU models, and the quantitative claims chapters 1-3 make about them."""

import pytest

from labsupport import compute, run
from labsupport.qemu import Dataplane, DataplaneRefused, Workload, r2_program, run_era

BASE = Workload(duration_us=20_000)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("vcpus", 0, "vcpus must be a whole number from 1 to 32"),
        ("host_cpus", 2.5, "host_cpus must be a whole number"),
        ("guest_us", 0, "guest_us must be > 0"),
        ("mmio_emulation_us", -1, "mmio_emulation_us must be >= 0"),
        ("io_depth", -3, "io_depth must be a whole number from 0"),
        ("slice_us", float("nan"), "slice_us must be a number"),
        ("slow_syscall_prob", 1.5, "slow_syscall_prob is a probability from 0 to 1"),
        ("monitor_per_s", -1, "monitor_per_s is a rate from 0 to 100000"),
    ],
)
def test_impossible_workloads_are_refused_with_what_is_allowed(field, value, message):
    with pytest.raises(ValueError, match=message):
        BASE.replace(**{field: value})
    with pytest.raises(ValueError, match="unknown workload field"):
        BASE.replace(vpcus=2)
    with pytest.raises(ValueError, match="unknown era"):
        run_era(BASE, "kvm2")


def test_same_seed_same_measurements():
    w = BASE.replace(vcpus=3, io_depth=4)
    a, b = run_era(w, "kvm"), run_era(w, "kvm")
    assert a.summary() == b.summary() and a.bql_profile == b.bql_profile
    assert a.summary() != run_era(w.replace(seed=1), "kvm").summary()


# Chapter 1: one thread for everything.


def test_ch1_more_vcpus_add_no_speed_on_one_thread():
    busy = [run_era(BASE.replace(vcpus=n), "one-thread").guest_cpus_busy for n in (1, 2, 4, 8)]
    assert max(busy) <= 1.0
    assert max(busy) - min(busy) < 0.05 * max(busy)


def test_ch1_io_latency_grows_with_the_time_slice():
    w = BASE.replace(vcpus=3, io_depth=1)
    p50 = [run_era(w.replace(slice_us=s), "one-thread").io_p50_us for s in (50, 200, 1000)]
    assert p50[0] < p50[1] < p50[2]
    assert p50[2] > 4 * p50[0]


def test_ch1_a_slow_handler_stalls_the_guest():
    w = BASE.replace(vcpus=3, io_depth=4)
    fast = run_era(w, "one-thread").guest_cpus_busy
    slow = run_era(w.replace(handler_us=200), "one-thread").guest_cpus_busy
    assert slow < 0.7 * fast


# Chapter 2: vCPU threads and the BQL.


def test_ch2_guest_compute_scales_with_vcpus_up_to_host_cpus():
    w = BASE.replace(host_cpus=4, guest_us=200)
    busy = {n: run_era(w.replace(vcpus=n), "kvm").guest_cpus_busy for n in (1, 2, 4, 8)}
    assert busy[4] >= 3 * busy[1]
    assert busy[8] < 1.1 * busy[4]  # no more host CPUs to run on


def test_ch2_device_emulation_serialises_on_the_bql():
    w = BASE.replace(vcpus=4, host_cpus=4, mmio_emulation_us=5)
    runs = [run_era(w.replace(guest_us=g), "kvm") for g in (200, 50, 20, 10, 5)]
    waits = [r.bql_wait_us for r in runs]
    assert waits == sorted(waits) and waits[-1] > 20 * max(waits[0], 1)
    # one lock, 5 us per exit: never more than 200,000 exits/s however many vCPUs exit
    assert all(r.exits_per_s <= 1e6 / 5 * 1.001 for r in runs)
    assert runs[-1].exits_per_s > 0.9 * 1e6 / 5
    assert "kvm: mmio exit" in runs[-1].bql_profile.splitlines()[1]


def test_ch2_round_robin_tcg_is_flat_and_mttcg_scales():
    w = BASE.replace(host_cpus=4, guest_us=200)
    rr = [run_era(w.replace(vcpus=n), "tcg-rr").guest_cpus_busy for n in (1, 4)]
    mt = [run_era(w.replace(vcpus=n), "mttcg").guest_cpus_busy for n in (1, 4)]
    assert rr[1] < 1.05 * rr[0]
    assert mt[1] >= 3 * mt[0]


# Chapter 3: the dataplane.

HIGH_MMIO = BASE.replace(vcpus=4, host_cpus=4, io_depth=8, guest_us=10, io_service_us=20)


def test_ch3_dataplane_io_rate_beats_the_bql_path_under_mmio_load():
    bql = run_era(HIGH_MMIO, "kvm")
    dp = run_era(HIGH_MMIO, "dataplane")
    assert dp.io_per_s >= 2 * bql.io_per_s
    assert dp.io_p99_us < bql.io_p99_us


def test_ch3_dataplane_refuses_what_it_cannot_do():
    with pytest.raises(DataplaneRefused, match="format=raw"):
        run_era(HIGH_MMIO, "dataplane", dataplane=Dataplane(image_format="qcow2"))
    with pytest.raises(DataplaneRefused, match="throttling"):
        Dataplane(throttling=True).start()
    dp = Dataplane().start()
    for action, arg in ((dp.start_block_job, "mirror"), (dp.set_throttle, 1000)):
        with pytest.raises(DataplaneRefused, match="-EBUSY"):
            action(arg)
    with pytest.raises(DataplaneRefused, match="live migration is not supported"):
        dp.migrate()
    Dataplane().migrate()  # not running: nothing to refuse


def test_ch3_r2_two_threads_inside_one_handler_and_the_fix():
    for seed in range(30):
        buggy = run(r2_program(fixed=False), policy="random", seed=seed, cpus=2)
        assert buggy.sim.model.reports, seed
        assert "entered virtio_blk_handle_vq while" in buggy.sim.model.reports[0]
        fixed = run(r2_program(fixed=True), policy="random", seed=seed, cpus=2)
        assert fixed.ok and not fixed.sim.model.reports


# vCPU objects: kick and run_on_cpu.


def _cpu_program(halted: bool, with_bql: bool = True):
    from labsupport import sleep
    from labsupport.qemu import BQL, CPUState, run_on_cpu, vcpu_thread_fn

    def program(sim):
        bql = BQL(sim)
        cpu = CPUState(sim, 0, bql)
        cpu.halted = halted
        ran = []

        def fn():
            ran.append((sim.current.name, sim.now))
            return 42

        def main_loop():
            yield sleep(5)
            if with_bql:
                yield bql.lock("main loop")
            got = yield run_on_cpu(cpu, fn)
            ran.append(("returned", got))
            if with_bql:
                yield bql.unlock()

        sim.spawn("vcpu0", vcpu_thread_fn, cpu, 20, 100, daemon=halted)  # a halted guest idles
        sim.spawn("main-loop", main_loop)
        return ran

    return program


def test_run_on_cpu_runs_in_the_vcpu_thread_and_waits_for_it():
    for halted in (False, True):
        r = run(_cpu_program(halted), cpus=2)
        assert r.ok, r
        (who, when), returned = r.sim.model
        assert who == "vcpu0" and returned == ("returned", 42)
        # a running vCPU notices at the end of its guest run (t=20); a halted one at once
        assert when == (5 if halted else 20)


def test_run_on_cpu_without_the_bql_is_refused():
    from labsupport import MisuseError

    with pytest.raises(MisuseError, match="without the BQL"):
        run(_cpu_program(False, with_bql=False), cpus=2)


# IOThreads, the AioContext lock, info block, drained sections.


def _iothread_program(slow_us: float, loop_holds_lock: bool = True):
    from labsupport import sleep
    from labsupport.qemu import BQL, IOThread, info_block

    def program(sim):
        bql = BQL(sim)
        io = IOThread(sim, "iothread0", loop_holds_lock=loop_holds_lock)
        latency = []

        def slow_request():  # a handler doing a slow io_submit
            yield compute(slow_us)

        bh = io.ctx.bh_new(slow_request, "submit")

        def guest():
            yield bh.schedule()

        def monitor():
            yield sleep(1)
            latency.append((yield info_block(bql, [io.ctx], cost_us=5)))

        sim.spawn("vcpu0", guest)
        sim.spawn("main-loop", monitor)
        return latency, io

    return program


def test_info_block_waits_behind_a_slow_request_under_the_context_lock():
    fast = run(_iothread_program(10), cpus=2).sim.model[0][0]
    slow = run(_iothread_program(500), cpus=2).sim.model[0][0]
    assert fast < 20 and slow > 490
    # in 2017 the loop no longer holds the lock, and this handler takes none
    assert run(_iothread_program(500, loop_holds_lock=False), cpus=2).sim.model[0][0] == 5


def test_the_context_lock_profile_names_the_monitor():
    r = run(_iothread_program(500), cpus=2)
    prof = r.sim.model[1].lock.profile()
    assert prof.splitlines()[1].startswith("monitor: info block")


def test_a_drained_section_waits_for_requests_in_flight():
    from labsupport import sleep
    from labsupport.loop import aio_poll, qemu_get_aio_context
    from labsupport.qemu import BlockDriverState, IOThread

    def program(sim):
        main_ctx = qemu_get_aio_context(sim)
        io = IOThread(sim, "iothread0", lock_kind=None)
        bs = BlockDriverState(sim, "disk0", io.ctx)
        done = []

        def request():
            yield compute(30)
            yield from bs.dec_in_flight()

        bh = io.ctx.bh_new(request, "request")

        def main_loop():
            yield aio_poll(main_ctx, False)  # this thread is the main context's home
            yield bs.inc_in_flight()
            yield bh.schedule()
            yield sleep(1)
            yield from bs.drained_begin()
            done.append((sim.now, bs.in_flight.value))
            yield from bs.drained_end()

        sim.spawn("main-loop", main_loop)
        return done

    r = run(program, cpus=2)
    assert r.ok and r.sim.model == [(30, 0)]


def test_ch4_io_leaves_the_bql_on_an_iothread():
    w = BASE.replace(vcpus=4, host_cpus=4, io_depth=8, guest_us=10, io_service_us=20)
    bql_path, iothread = run_era(w, "kvm"), run_era(w, "iothread")
    assert iothread.bql_wait_us < 0.5 * bql_path.bql_wait_us
    assert iothread.guest_cpus_busy > 3 * bql_path.guest_cpus_busy
    assert iothread.io_per_s >= bql_path.io_per_s
    assert "virtio" not in iothread.bql_profile and "iothread0" in [
        t.name for t in iothread.result.sim.threads
    ]


def test_qemu_get_aio_context_is_one_main_context_per_simulation():
    from labsupport import Simulation
    from labsupport.qemu import IOThread, iothread_get_aio_context, qemu_get_aio_context

    sim = Simulation()
    assert qemu_get_aio_context(sim) is qemu_get_aio_context(sim)
    assert qemu_get_aio_context(Simulation()) is not qemu_get_aio_context(sim)
    io = IOThread(sim, "iothread0")
    assert iothread_get_aio_context(io) is io.ctx and io.ctx.home is io.thread


# -- Every era on one workload: slow system calls and the monitor (the retrospective's columns) --

SLOW = Workload(
    vcpus=4,
    host_cpus=8,
    io_depth=16,
    guest_us=20,
    io_service_us=20,
    slow_syscall_prob=0.02,
    monitor_per_s=1000,
    duration_us=20_000,
)


def test_switching_the_monitor_and_slow_calls_off_leaves_a_run_as_it_was():
    plain = Workload(vcpus=3, host_cpus=4, io_depth=4, duration_us=5_000)
    quiet = plain.replace(slow_syscall_us=9_999, info_block_us=99)  # used only when switched on
    for era in ("one-thread", "kvm", "iothread", "iothread-2017", "iothread-9.0"):
        a, b = run_era(plain, era), run_era(quiet, era)
        assert a.result.schedule == b.result.schedule and a.summary() == b.summary()
        assert a.monitor_us == [] and "info block" not in a.summary()
    assert "monitor_per_s" not in repr(plain) and "slow_syscall" not in repr(plain)
    assert "monitor_per_s=1000" in repr(SLOW) and "slow_syscall_prob=0.02" in repr(SLOW)


@pytest.mark.parametrize(
    "era, sites",
    [
        ("iothread", {"iothread: aio_poll", "monitor: info block"}),
        ("iothread-2017", {"iothread: handle_vq", "iothread: complete", "monitor: info block"}),
    ],
)
def test_until_9_0_info_block_waits_behind_a_slow_submit_under_the_context_lock(era, sites):
    r = run_era(SLOW, era)
    assert len(r.monitor_us) >= 5
    assert r.monitor_p99_us > SLOW.slow_syscall_us / 2
    lock = r.result.sim.model["io_ctx"].lock
    assert set(lock.sites) == sites  # who took the context lock, by call site
    assert lock.sites["monitor: info block"].wait_us > SLOW.slow_syscall_us / 2


def test_in_9_0_info_block_no_longer_waits_for_the_iothread():
    locked, unlocked = run_era(SLOW, "iothread-2017"), run_era(SLOW, "iothread-9.0")
    assert getattr(unlocked.result.sim.model["io_ctx"], "lock", None) is None
    assert unlocked.monitor_p99_us < 3 * SLOW.info_block_us
    assert locked.monitor_p99_us > 20 * unlocked.monitor_p99_us
    # the monitor held the BQL while it waited, so the vCPUs' MMIO exits waited too
    assert unlocked.guest_cpus_busy > 1.5 * locked.guest_cpus_busy


def test_a_slow_submit_on_the_bql_path_stalls_the_monitor_and_the_guest():
    kvm, dp = run_era(SLOW, "kvm"), run_era(SLOW, "dataplane")
    assert kvm.monitor_p99_us > SLOW.slow_syscall_us / 2
    assert dp.monitor_p99_us < 3 * SLOW.info_block_us
    assert dp.guest_cpus_busy > 2 * kvm.guest_cpus_busy
