"""Known wrong answers to chapter 1's exercises: each one is refused, and the refusal says what
is wrong with that answer.

``WRONG_ANSWERS`` maps each question to answers a learner could plausibly give; ``SAYS`` names,
for the telling ones, a phrase the refusal must contain. The 1.4 programs build on the
exercise notebook's own ``make_machine`` and ``io_program``.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

from notebook_cells import code_cells

from labsupport import QemuMutex, QemuSemaphore, check, sleep
from labsupport.chapters.ch01.checks import (
    BUSY_TOLERANCE,
    READ_US,
    VCPU_GRID,
    grid_busy,
)
from labsupport.loop import EventNotifier

SOLUTIONS = Path(__file__).resolve().parents[2] / "solutions" / "01-one-thread-exercises.ipynb"


def _notebook() -> dict:
    """The exercise notebook's imports and its ``make_machine`` and ``io_program``."""
    ns: dict = {}
    imports = code_cells(SOLUTIONS)[0]
    (machine,) = code_cells(SOLUTIONS, containing="def make_machine")
    for source in (imports, machine):
        exec(compile(source, str(SOLUTIONS), "exec"), ns)
    return ns


NB = _notebook()
make_machine, io_program = NB["make_machine"], NB["io_program"]


def _offload(worker_counts=False, poller=False, daemon=True, read=True, count_early=False):
    """A worker-thread program, right or wrong in one way: the worker counts the request
    itself, a daemon polls for ever, the worker is not a daemon, nobody reads, or the loop
    counts a request when it is queued instead of when its read is done."""

    def program(sim):
        m = make_machine(sim)
        lock = QemuMutex(sim, "aio-queue")
        todo, finished = deque(), deque()
        work = QemuSemaphore(sim, "aio-work")
        read_done = EventNotifier(sim, "aio-done")

        def handle_kick():
            while m.requests:
                request = m.requests.popleft()
                yield lock.lock()
                todo.append(request)
                yield lock.unlock()
                if count_early:
                    yield m.done.increment()
                yield work.post()

        def worker():
            while True:
                yield work.wait()
                yield lock.lock()
                request = todo.popleft()
                yield lock.unlock()
                if read:
                    yield sleep(READ_US)
                if worker_counts:
                    yield m.done.increment()
                    continue
                yield lock.lock()
                finished.append(request)
                yield lock.unlock()
                yield read_done.set()

        def handle_read_done():
            yield lock.lock()
            count = len(finished)
            finished.clear()
            yield lock.unlock()
            if not count_early:
                for _ in range(count):
                    yield m.done.increment()

        m.ctx.set_event_notifier(m.kick, handle_kick)
        m.ctx.set_event_notifier(read_done, handle_read_done)
        sim.spawn("worker", worker, daemon=daemon)
        if poller:

            def poll():
                while True:
                    yield sleep(10)

            sim.spawn("poller", poll, daemon=True)
        sim.spawn("qemu", m.qemu)
        return {"done": m.done, "slices": m.slices}

    return program


worker_counts = _offload(worker_counts=True)
polls_for_ever = _offload(poller=True)
worker_not_a_daemon = _offload(daemon=False)
never_reads = _offload(read=False)
counts_before_the_read = _offload(count_early=True)


def counts_without_reading(sim):
    """The kick handler counts each request at once and an idle worker stands by: no read."""
    m = make_machine(sim)
    idle = QemuSemaphore(sim, "idle")

    def handle_kick():
        while m.requests:
            m.requests.popleft()
            yield m.done.increment()

    def worker():
        yield idle.wait()

    m.ctx.set_event_notifier(m.kick, handle_kick)
    sim.spawn("worker", worker, daemon=True)
    sim.spawn("qemu", m.qemu)
    return {"done": m.done, "slices": m.slices}


def returns_the_counter_only(sim):
    """A program that does not return what io_program returns."""
    io_program(sim)
    return sim.objects[-1]


BUSY = {pair: grid_busy(*pair) for pair in VCPU_GRID}

WRONG_ANSWERS = {
    "1.1": [
        ["disk-completion", "rtc-tick", "dma-restart", "raise-irq"],  # BHs in scheduling order
        ["disk-completion", "dma-restart", "raise-irq", "rtc-tick"],  # BHs before timers
        ["dma-restart", "raise-irq", "disk-completion", "rtc-tick"],  # BHs first
        ["disk-completion", "rtc-tick", "watchdog", "raise-irq", "dma-restart"],  # not yet due
        ["disk-completion", "rtc-tick", "dma-restart"],  # the new BH left out
        ["disk completion", "rtc-tick", "raise-irq", "dma-restart"],
        "disk-completion, rtc-tick, raise-irq, dma-restart",
    ],
    "1.2": [150, 250, 1000, 50, 120, 200.0, "200"],
    "1.3": [
        {pair: 1.0 for pair in VCPU_GRID},  # a whole CPU's worth
        {(v, h): BUSY[(v, h)] * min(v, h) for v, h in VCPU_GRID},  # more vCPUs help
        {pair: round(value, 1) for pair, value in BUSY.items()},  # rounded too far
        {pair: value + 2 * BUSY_TOLERANCE for pair, value in BUSY.items()},
        {pair: value for pair, value in BUSY.items() if pair != (1, 1)},
        {**BUSY, (16, 4): BUSY[(8, 4)]},
        {pair: str(value) for pair, value in BUSY.items()},
        list(BUSY.values()),
    ],
    "1.4": [
        io_program,
        worker_counts,
        polls_for_ever,
        worker_not_a_daemon,
        never_reads,
        counts_before_the_read,
        counts_without_reading,
        returns_the_counter_only,
        "a worker thread",
    ],
    "1.5": [(1, 1), (2, 2), (2, 1), (1, 3), [1, 2], (1, 2, 3), "1, 2"],
}

#: (question, wrong answer, a phrase its refusal must contain)
SAYS = [
    ("1.1", WRONG_ANSWERS["1.1"][0], "dma-restart is not number 3"),
    ("1.1", WRONG_ANSWERS["1.1"][3], "watchdog does not run in this pass"),
    ("1.1", WRONG_ANSWERS["1.1"][4], "raise-irq also runs in this pass"),
    ("1.1", WRONG_ANSWERS["1.1"][5], "no callback is called 'disk completion'"),
    ("1.2", 250, "over the 1200 us bound"),
    ("1.2", 150, "a larger slice also stays under"),
    ("1.2", 120, "candidate"),
    ("1.3", WRONG_ANSWERS["1.3"][1], "for 2 vCPU(s) on 4 host CPU(s)"),
    ("1.3", WRONG_ANSWERS["1.3"][2], "off by 0.005 at most"),
    ("1.3", WRONG_ANSWERS["1.3"][4], "no entry for (vcpus, host_cpus) = (1, 1)"),
    ("1.3", WRONG_ANSWERS["1.3"][5], "(16, 4) is not in VCPU_GRID"),
    ("1.4", io_program, "waited 1200 us in blocking calls"),
    ("1.4", worker_counts, "worker wrote requests_done"),
    ("1.4", polls_for_ever, "does a thread poll in a loop"),
    ("1.4", worker_not_a_daemon, "daemon=True"),
    ("1.4", never_reads, "0 blocking read(s)"),
    ("1.4", counts_before_the_read, "count a request when its read is done"),
    ("1.4", counts_without_reading, "every request must still be read"),
    ("1.4", returns_the_counter_only, "must return {'done': done, 'slices': slices}"),
    ("1.5", (1, 1), "the BHs-first order is not right"),
    ("1.5", (2, 2), "the 2008 order is not right"),
    ("1.5", [1, 2], "a pair of whole numbers"),
]


def test_a_wrong_measurement_is_not_told_the_right_value(capsys):
    """1.3's refusal names the pair that is off, not the value the simulation measures."""
    wrong = WRONG_ANSWERS["1.3"][3]
    assert check("1.3", wrong) is False
    printed = capsys.readouterr().out
    for value in BUSY.values():
        for shown in (f"{value:.3f}", f"{value:.4f}", f"{value:g}"):
            assert shown not in printed, printed
