"""What chapter 0 teaches, asserted: each claim of the notebook is a test here too."""

from labsupport import QemuMutex, compute, run
from labsupport.chapters.ch00.scenarios import (
    abba_program,
    counter_experiment,
    counter_program,
    first_losing_seed,
)


def test_first_come_never_loses_but_most_random_schedules_do():
    assert counter_experiment(seed=0, policy="first-come").lost == 0
    losing = [s for s in range(100) if counter_experiment(seed=s).lost]
    assert len(losing) > 50
    assert first_losing_seed() == losing[0]


def test_the_mutex_fixes_the_counter_on_every_schedule():
    for seed in range(300):
        assert counter_experiment(seed=seed, locked=True, threads=2).lost == 0
    for seed in range(50):
        assert counter_experiment(seed=seed, locked=True, threads=5, increments=3).lost == 0


def test_opposite_orders_deadlock_and_one_order_never_does():
    def ordered(sim):
        a, b = QemuMutex(sim, "A"), QemuMutex(sim, "B")

        def worker():
            yield a.lock()
            yield compute(5)
            yield b.lock()
            yield compute(5)
            yield b.unlock()
            yield a.unlock()

        sim.spawn("T1", worker)
        sim.spawn("T2", worker)

    for seed in range(200):
        assert run(ordered, cpus=2, policy="random", seed=seed).outcome == "completed"
        assert run(abba_program(), cpus=2, policy="random", seed=seed).outcome == "deadlock"


def test_the_shortest_lost_update_schedule():
    r = run(counter_program(2, 1), schedule="10")
    assert r.sim.model.counter.value == 1
