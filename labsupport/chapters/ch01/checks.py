"""Chapter 1's checkers: one thread for everything, before 2009.

QEMU's main loop of 2008 (``main_loop_wait``) ran fd handlers, then timers, then bottom halves
last, on the one thread that also ran every vCPU in turn. The questions ask what that order
does in one pass, how the time slice trades guest speed for I/O latency, why more vCPUs add
nothing, and how a blocking handler was moved to a worker thread that signals the loop back.
Each checker runs the learner's answer (or the simulation the answer predicts) instead of
comparing it with a stored value.

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from labsupport import validate
from labsupport.exercises import judge_fix, register
from labsupport.kernel import Simulation, compute, run
from labsupport.loop import AIO_ORDER, MAIN_LOOP_2008_ORDER, AioContext, aio_poll
from labsupport.qemu.block import Disk
from labsupport.qemu.eras import run_era
from labsupport.qemu.workload import Workload

# -- 1.1 Predict the order of one pass --------------------------------------------------------


def pass_order_program(sim: Simulation) -> list[str]:
    """One guest slice, then one pass of the 2008 loop; returns the callbacks in the order run.

    During the slice the guest starts a disk read (done at t=30) and, in an MMIO exit at t=25,
    a device schedules the bottom half ``dma-restart``. The timer ``rtc-tick`` is due at t=40,
    ``watchdog`` at t=70. The disk's completion handler schedules the bottom half ``raise-irq``.
    """
    ctx = AioContext(sim, "main", order=MAIN_LOOP_2008_ORDER)
    disk = Disk(sim, service_us=30, queue_depth=4)
    ran: list[str] = []

    def dma_restart():  # a bottom half
        ran.append("dma-restart")
        yield compute(2)

    def raise_irq():  # a bottom half
        ran.append("raise-irq")
        yield compute(1)

    def disk_completion():  # an fd handler
        ran.append("disk-completion")
        while disk.completed:
            disk.completed.popleft()
            yield compute(3)
        yield irq_bh.schedule()

    def rtc_tick():  # a timer
        ran.append("rtc-tick")
        yield compute(2)

    def watchdog():  # another timer
        ran.append("watchdog")
        yield compute(2)

    dma_bh = ctx.bh_new(dma_restart, "dma-restart")
    irq_bh = ctx.bh_new(raise_irq, "raise-irq")
    ctx.set_event_notifier(disk.completion, disk_completion)
    ctx.timer_new(rtc_tick, "rtc-tick").arm(40)
    ctx.timer_new(watchdog, "watchdog").arm(70)

    def qemu():
        yield disk.submit("read")  # the guest starts a read ...
        yield compute(25)  # ... and runs
        yield dma_bh.schedule()  # an MMIO exit: the device defers a DMA restart to a BH
        yield compute(25)  # the guest's slice goes on; the disk finishes at t=30
        yield aio_poll(ctx, False)  # one pass of main_loop_wait
        yield compute(25)  # the guest's next slice

    sim.spawn("qemu", qemu)
    return ran


def _names(answer: Any) -> list[str] | None:
    if isinstance(answer, str) or not isinstance(answer, (list, tuple)):
        return None
    if not all(isinstance(a, str) for a in answer):
        return None
    out = []
    for a in answer:
        a = a.strip().lower()
        for prefix in ("fd ", "timer ", "bh "):
            a = a.removeprefix(prefix)
        out.append(a)
    return out


def _order_01(answer: Any) -> tuple[bool, str]:
    names = _names(answer)
    if names is None:
        return False, (
            "answer with a list of callback names in the order they run, such as "
            "['rtc-tick', 'dma-restart']"
        )
    ran = run(pass_order_program).sim.model
    if names == ran:
        return True, (
            f"the pass runs {', '.join(ran)}: fd handlers, then due timers, then "
            f"every BH scheduled so far, the one the handler scheduled included, newest "
            f"first (QEMU's BH list is walked from its head, where the newest BH sits)"
        )
    known = {"dma-restart", "raise-irq", "disk-completion", "rtc-tick", "watchdog"}
    unknown = [n for n in names if n not in known]
    if unknown:
        return False, f"no callback is called {unknown[0]!r}; the names are {sorted(known)}"
    missing = [n for n in ran if n not in names]
    extra = [n for n in names if n not in ran]
    if extra:
        return False, f"{extra[0]} does not run in this pass"
    if missing:
        return False, f"{missing[0]} also runs in this pass"
    i = next(i for i, (a, b) in enumerate(zip(names, ran)) if a != b)
    return False, f"the right callbacks, but {names[i]} is not number {i + 1} to run"


# -- 1.2 The largest time slice under a latency bound -----------------------------------------

#: The workload of exercise 1.2: vCPU 0 reads from the disk one request at a time, the other
#: two compute; a 1 ms device timer.
LATENCY_WORKLOAD = Workload(vcpus=3, io_depth=1, timer_period_us=1000, duration_us=20_000)
#: The bound on the 99th percentile of I/O latency, in microseconds.
P99_BOUND_US = 1200
#: The time slices to choose from.
SLICE_CANDIDATES = tuple(range(50, 1001, 50))


def slice_p99(slice_us: int) -> float:
    """p99 I/O latency (us) of the one-thread era on ``LATENCY_WORKLOAD`` with this slice."""
    return _one_thread(LATENCY_WORKLOAD.replace(slice_us=slice_us))[0]


@cache
def _one_thread(w: Workload) -> tuple[float, float]:
    """(p99 I/O latency, guest_cpus_busy) of the one-thread era on ``w``: a run is
    deterministic, so each workload is run once however often the checkers ask."""
    r = run_era(w, "one-thread", trace=False)
    return r.io_p99_us, r.guest_cpus_busy


def _largest_slice_01(answer: Any) -> tuple[bool, str]:
    if not validate.is_whole(answer):
        return False, f"answer with a time slice in microseconds (a whole number), not {answer!r}"
    if answer not in SLICE_CANDIDATES:
        return False, f"choose one of the candidate slices 50, 100, ..., 1000 us, not {answer}"
    p99 = {s: slice_p99(s) for s in SLICE_CANDIDATES}
    best = max(s for s, p in p99.items() if p <= P99_BOUND_US)
    if p99[answer] > P99_BOUND_US:
        return False, (
            f"with a {answer} us slice the p99 latency is {p99[answer]:.0f} us, "
            f"over the {P99_BOUND_US} us bound"
        )
    if answer < best:
        return False, (
            f"{answer} us keeps p99 at {p99[answer]:.0f} us, but a larger slice "
            f"also stays under {P99_BOUND_US} us"
        )
    nxt = SLICE_CANDIDATES[SLICE_CANDIDATES.index(best) + 1]
    return True, (
        f"{best} us gives p99 {p99[best]:.0f} us; the next candidate, {nxt} us, "
        f"gives {p99[nxt]:.0f} us"
    )


# -- 1.3 More vCPUs, more host CPUs ------------------------------------------------------------

#: The workload of exercise 1.3: guest code only (no disk), a 1 ms device timer.
VCPU_WORKLOAD = Workload(timer_period_us=1000, duration_us=20_000)
#: The grid of (vcpus, host_cpus) to measure.
VCPU_GRID = tuple((v, h) for v in (1, 2, 4, 8) for h in (1, 4))
#: How far an answer to 1.3 may be from the measured value, in vCPUs' worth: rounding to two
#: decimals passes, a different measurement does not.
BUSY_TOLERANCE = 0.005


def grid_busy(vcpus: int, host_cpus: int) -> float:
    """Exercise 1.3's measurement: ``guest_cpus_busy`` of the one-thread era on
    ``VCPU_WORKLOAD`` with this many vCPUs and host CPUs."""
    return _one_thread(VCPU_WORKLOAD.replace(vcpus=vcpus, host_cpus=host_cpus))[1]


def _grid_01(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, dict):
        return False, (
            "answer with a dict {(vcpus, host_cpus): guest_cpus_busy} for every pair in VCPU_GRID"
        )
    missing = [k for k in VCPU_GRID if k not in answer]
    if missing:
        return False, f"the dict has no entry for (vcpus, host_cpus) = {missing[0]}"
    extra = [k for k in answer if k not in VCPU_GRID]
    if extra:
        return False, f"{extra[0]!r} is not in VCPU_GRID"
    for v, h in VCPU_GRID:
        got = answer[(v, h)]
        if not validate.is_number(got):
            return False, f"the value for {(v, h)} must be a number, not {got!r}"
        want = grid_busy(v, h)
        if abs(got - want) > BUSY_TOLERANCE:
            return False, (
                f"for {v} vCPU(s) on {h} host CPU(s) the simulation does not measure "
                f"{got:.3f} (an answer may be off by {BUSY_TOLERANCE:g} at most): run that "
                f"pair again"
            )
    first = answer[VCPU_GRID[0]]
    return True, (
        f"every cell is {first:.2f} vCPUs' worth: one host thread runs the guest, "
        f"however many vCPUs it has and however many host CPUs are free"
    )


# -- 1.4 Move the blocking read to a worker thread ---------------------------------------------

#: Exercise 1.4: the guest asks for READS reads, one per slice; each read blocks for READ_US.
READS, READ_US, SLICE_US = 4, 300, 100
#: Longest delay (us) between two guest slices that counts as "not stalled".
STALL_LIMIT_US = 10
#: Explorer runs a 1.4 answer gets before the verdict says it is a sample.
OFFLOAD_RUNS = 200
#: Simulated time and steps a run of 1.4 may take: a right answer needs about 1.4 ms and a few
#: hundred steps, so a thread that polls forever is stopped early instead of running on.
OFFLOAD_UNTIL_US = 20_000
OFFLOAD_MAX_STEPS = 100_000


def _offload_01(answer: Any) -> tuple[bool, str]:
    if not callable(answer):
        return False, "answer with a program: a function of sim, like io_program"

    def judge(r: Any) -> str | None:
        ok, message = _judge_offload(r)
        return None if ok else message

    return judge_fix(
        answer,
        judge,
        judge_all=True,
        opaque=True,  # the loop's handlers and queues are plain attributes
        max_runs=OFFLOAD_RUNS,
        cpus=2,
        until=OFFLOAD_UNTIL_US,
        max_steps=OFFLOAD_MAX_STEPS,
        because=(
            f": the guest never waits more than {STALL_LIMIT_US} us between slices, and only "
            f"the qemu thread touches requests_done"
        ),
    )


def _judge_offload(r: Any) -> tuple[bool, str]:
    model = r.sim.model
    if not (isinstance(model, dict) and "done" in model and "slices" in model):
        return False, "the program must return {'done': done, 'slices': slices} as io_program does"
    if r.outcome == "time limit":
        if model["done"].value < READS:
            return False, (
                f"after {OFFLOAD_UNTIL_US:,} us of simulated time only "
                f"{model['done'].value} of {READS} reads are done"
            )
        return False, (
            f"every read is done, but the run had not finished after "
            f"{OFFLOAD_UNTIL_US:,} us of simulated time: does a thread poll in a "
            f"loop? A daemon that sleeps and looks again keeps the simulation going; "
            f"let the worker wait on a QemuSemaphore instead"
        )
    if r.outcome != "completed":
        detail = f"\n{r.deadlock.text()}" if r.deadlock else ""
        return False, (
            f"the run ended in {r.outcome} (is the worker spawned with daemon=True?){detail}"
        )
    done, slices = model["done"], model["slices"]
    if done.value != READS:
        return False, f"requests_done = {done.value}, not {READS}"
    names = [t.name for t in r.sim.threads]
    if "qemu" not in names:
        return False, "keep the qemu thread of io_program: it runs the guest and the loop"
    qemu = names.index("qemu")
    slept = 0.0
    read_ends: list[float] = []  # when each read (a sleep of READ_US off the qemu thread) ended
    counted: list[tuple[float, Any]] = []  # each store into requests_done: (when, value)
    for e in r.sim.trace:
        if e.kind == "write" and e.obj == done.oid and e.thread != qemu:
            return False, (
                f"{names[e.thread]} wrote requests_done; only the "
                f"main loop's thread may touch device state, so hand the result "
                f"back through an EventNotifier and count it in a handler"
            )
        if e.kind == "write" and e.obj == done.oid:
            counted.append((e.time, e.arg))
        if e.kind == "sleep" and e.thread == qemu:
            slept += e.arg
        elif e.kind == "sleep" and e.arg >= READ_US:
            read_ends.append(e.time + e.arg)
    if slept:
        return False, (
            f"the qemu thread itself waited {slept:g} us in blocking "
            f"calls; the guest cannot run while it waits"
        )
    stall = max((b - a - SLICE_US for a, b in zip(slices, slices[1:])), default=0.0)
    if stall > STALL_LIMIT_US:
        return False, f"the guest waited {stall:g} us between two slices"
    if len(names) < 2:
        return False, "spawn a worker thread beside the qemu thread to do the blocking read"
    if len(read_ends) < READS:
        return False, (
            f"{len(read_ends)} blocking read(s) of {READ_US} us for {READS} requests: every "
            f"request must still be read, by a thread other than qemu"
        )
    read_ends.sort()
    for when, value in counted:
        finished = sum(1 for end in read_ends if end <= when)
        if validate.is_number(value) and value > finished:
            return False, (
                f"at t={when:g} us requests_done became {value}, but only {finished} read(s) "
                f"had finished: count a request when its read is done, not before"
            )
    return True, ""


# -- 1.5 Which pass runs the BH? ----------------------------------------------------------------


def bh_pass_program(order: tuple[str, ...]) -> Callable[[Simulation], list[int]]:
    """An fd handler schedules a BH; the loop makes up to three passes. Returns the pass
    numbers (1, 2, ...) in which the fd handler and the BH ran."""
    validate.labels("order", order, AIO_ORDER, kind="a tuple arranging 'bh', 'fd' and 'timer'")

    def program(sim: Simulation) -> list[int]:
        ctx = AioContext(sim, "main", order=order)
        disk = Disk(sim, service_us=10, queue_depth=1)
        seen: list[int] = []
        passes = [0]

        def bh():
            seen.append(passes[0])
            yield compute(1)

        the_bh = ctx.bh_new(bh, "raise-irq")

        def completion():
            disk.completed.clear()
            seen.append(passes[0])
            yield the_bh.schedule()

        ctx.set_event_notifier(disk.completion, completion)

        def qemu():
            yield disk.submit("read")
            yield compute(20)
            for _ in range(3):
                passes[0] += 1
                yield aio_poll(ctx, False)

        sim.spawn("qemu", qemu)
        return seen

    return program


def bh_pass(order: tuple[str, ...]) -> int:
    """In which pass does the BH run, counting the fd handler's pass as pass 1?"""
    handler_pass, bh_run_pass = run(bh_pass_program(order)).sim.model
    return bh_run_pass - handler_pass + 1


def _bh_pass_01(answer: Any) -> tuple[bool, str]:
    if (
        not isinstance(answer, tuple)
        or len(answer) != 2
        or not all(validate.is_whole(a) for a in answer)
    ):
        return False, (
            "answer with a pair of whole numbers: (pass with the 2008 order, pass "
            "with BHs first), counting the fd handler's pass as pass 1"
        )
    want = (bh_pass(MAIN_LOOP_2008_ORDER), bh_pass(AIO_ORDER))
    if answer == want:
        return True, (
            f"BHs last: pass {want[0]}, the same pass as the handler; BHs first: "
            f"pass {want[1]}, one pass later"
        )
    wrong = "2008 order" if answer[0] != want[0] else "BHs-first order"
    return False, f"the {wrong} is not right"


register(
    "1.1",
    _order_01,
    [
        "in what order does the 2008 loop visit its three kinds of callback in one pass?",
        "first the fd handlers that are ready, then the timers that are due by now, then every "
        "bottom half scheduled so far, the one a handler scheduled in this pass included",
        "a timer that is not yet due does not run; among the bottom halves the newest runs "
        "first, since the list is walked from its head, where the newest one sits",
    ],
)
register(
    "1.2",
    _largest_slice_01,
    [
        "does the p99 latency grow or shrink as the time slice grows?",
        "measure the one-thread era's p99 I/O latency on the latency workload once for each "
        "candidate slice, with the workload's slice replaced by the candidate",
        "keep the candidates whose p99 is at or below the bound, and answer with the largest",
    ],
)
register(
    "1.3",
    _grid_01,
    [
        "how many host threads run guest code in the one-thread era, whatever the machine?",
        "run the one-thread era on the workload once for every pair of the grid, with its vCPU "
        "count and host CPU count replaced, and read how many vCPUs' worth of guest code ran",
        "key the dict by the pair, as the grid writes it, and give each measurement as it "
        "comes, or rounded to two decimals",
    ],
)
register(
    "1.4",
    _offload_01,
    [
        "which thread is blocked while the read waits, and who else needs that thread?",
        "move the waiting off the qemu thread, and bring the result back to it: only the qemu "
        "thread may touch device state",
        "the kick handler queues the request for a worker thread (a queue under a QemuMutex, a "
        "QemuSemaphore to wake it); the worker waits out the read, then sets an EventNotifier "
        "whose handler, in the qemu thread, counts the request done",
    ],
)
register(
    "1.5",
    _bh_pass_01,
    [
        "in one pass, does the phase that runs bottom halves come before or after the fd handlers?",
        "a BH phase runs the bottom halves scheduled before it starts; one that a handler "
        "schedules after that phase waits for the next pass",
        "for each order, see whether the BH phase follows the fd phase (the same pass) or "
        "precedes it (the pass after)",
    ],
)
