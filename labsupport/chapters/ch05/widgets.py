"""Chapter 5's lab: be the scheduler of deadlock D1 and find the order that hangs ``savevm``.

In the 2017 design the IOThread's loop holds no lock; its completion handler takes the context
lock itself. The main loop takes that lock twice (``save_vmstate`` and a helper) and waits in
``AIO_WAIT_WHILE``, which lets go of it once. Whether that hangs depends on who moves first.
``Stepper`` is the pure core: it holds a schedule prefix, replays it with the kernel, and stops
at the next point where more than one thread could move; ``lab()`` puts buttons on it.

Layer 9 (chapters): imports the layers below; ipywidgets only when a widget is built.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from labsupport import validate
from labsupport.kernel import Policy, Replay, RunResult, ScheduleDivergence, Simulation
from labsupport.present import trace_table
from labsupport.widgets import budgeted, int_slider

from .scenarios import d1_program

#: A schedule of the buggy D1 that deadlocks (random policy, seed 0), for the slider to replay.
RECORDED_D1 = "110111"


class _Paused(Exception):
    """Raised by the stepping policy when its prefix is used up and a choice is due."""

    def __init__(self, ready: list[Any]):
        super().__init__("paused")
        self.ready = ready


class _PauseHere(Policy):
    """The policy after the replayed prefix: at the next choice, pause for the learner."""

    name = "stepper"

    def choose(self, sim: Simulation, ready: list[Any]) -> Any:
        raise _Paused(list(ready))


@dataclass
class StepView:
    """What the learner sees after a step: the trace so far and who may move next."""

    schedule: str
    status: str  # "choose", "DEADLOCK", "STUCK", "COMPLETED"
    movable: list[tuple[str, str]]  # (schedule character, thread name)
    trace: str
    report: str = ""
    threads: list[tuple[str, str]] = field(default_factory=list)

    def announcement(self) -> str:
        """One or more lines: whose turn it is, or how the run ended (with the report)."""
        if self.status == "choose":
            who = " or ".join(f"{name} ({c})" for c, name in self.movable)
            return f"schedule {self.schedule!r}: choose who moves next: {who}"
        if self.status == "DEADLOCK":
            return f"DEADLOCK with schedule {self.schedule!r}\n{self.report}"
        if self.status == "STUCK":
            return f"STUCK with schedule {self.schedule!r}\n{self.report}"
        return (
            f"COMPLETED with schedule {self.schedule!r}: the request finished before "
            f"save_vmstate waited, so nothing hung"
        )

    def text(self) -> str:
        return f"{self.trace}\n\n{self.announcement()}"


class Stepper:
    """Replay a program's choices from a schedule prefix and stop at the next choice point.

    ``step("1")`` appends thread 1 to the prefix and replays; ``undo()`` drops the last choice;
    ``reset()`` starts again; ``load(s)`` takes a whole prefix. Every call returns a
    ``StepView``. Each replay runs the program from the start, so the view is always the
    kernel's own account of that schedule.
    """

    def __init__(self, program: Any = None, cpus: int = 2, width: int = 30):
        if program is not None:
            validate.function("program", program, kind="a program function (sim -> model)")
        validate.whole("cpus", cpus, 1, 64)
        validate.whole("width", width, 8, 200)
        self.program = program if program is not None else d1_program(fixed=False)
        self.cpus = cpus
        self.width = width
        self.schedule = ""
        self.view = self._replay("")

    def _replay(self, schedule: str) -> StepView:
        prefix = Replay(schedule, then=_PauseHere(), strict_end=False)
        sim = Simulation(cpus=self.cpus, policy=prefix)
        sim.model = self.program(sim)
        threads = [(t.char, t.name) for t in sim.threads]
        try:
            result: RunResult = sim.run()
        except _Paused as p:
            return StepView(
                schedule,
                "choose",
                [(t.char, t.name) for t in p.ready],
                trace_table(sim, width=self.width),
                threads=threads,
            )
        status = {"deadlock": "DEADLOCK", "stuck": "STUCK"}.get(result.outcome, "COMPLETED")
        if result.outcome not in ("deadlock", "stuck", "completed"):
            status = result.outcome.upper()
        report = result.deadlock.text() if result.deadlock else ""
        return StepView(schedule, status, [], trace_table(sim, width=self.width), report, threads)

    def step(self, char: str) -> StepView:
        """Let thread ``char`` take the next choice; refused if it cannot move now."""
        if self.view.status != "choose":
            raise ValueError(f"the run has ended ({self.view.status}); undo() or reset() first")
        allowed = [c for c, _ in self.view.movable]
        if not isinstance(char, str) or char not in allowed:
            raise ValueError(f"char: thread {char!r} cannot move now; choose one of {allowed}")
        self.view = self._replay(self.schedule + char)
        self.schedule += char
        return self.view

    def undo(self) -> StepView:
        """Take back the last choice."""
        return self.load(self.schedule[:-1])

    def reset(self) -> StepView:
        """Back to the start: no choice made."""
        return self.load("")

    def load(self, schedule: str) -> StepView:
        """Replay ``schedule`` as the prefix (a ``ValueError`` if it diverges)."""
        validate.instance("schedule", schedule, str, kind="a schedule string such as '0011'")
        try:
            view = self._replay(schedule)
        except ScheduleDivergence as e:
            raise ValueError(f"{schedule!r}: a thread in it cannot move here; {e}") from None
        self.schedule, self.view = schedule, view
        return view


def lab(recorded: str = RECORDED_D1) -> Any:
    """The stepper on D1: a slider (the first child) replays the first N choices of a recorded
    deadlocking schedule; a button per thread makes the next choice; undo and reset; the trace
    table and the announcement below. ``.stepper`` is the ``Stepper``."""
    import ipywidgets as w

    validate.label("recorded", recorded, kind="a recorded schedule string such as '0011'")

    stepper = Stepper()
    slider = int_slider(0, 0, len(recorded), "replay steps", label_width="120px", width="420px")
    out = w.HTML()
    buttons = {
        c: w.Button(description=f"step {name} ({c})", layout=w.Layout(width="210px"))
        for c, name in stepper.view.threads
    }
    undo = w.Button(description="undo", layout=w.Layout(width="90px"))
    reset = w.Button(description="reset", layout=w.Layout(width="90px"))

    def show(view: StepView) -> None:
        movable = {c for c, _ in view.movable}
        for c, b in buttons.items():
            b.disabled = c not in movable
        undo.disabled = not view.schedule
        out.value = f"<pre>{html.escape(view.text())}</pre>"

    def on_slider(change: Any) -> None:
        show(stepper.load(recorded[: change["new"]]))

    def on_step(char: str) -> Any:
        return lambda _b: show(stepper.step(char))

    slider.observe(budgeted(on_slider), names="value")
    for c, b in buttons.items():
        b.on_click(budgeted(on_step(c)))
    undo.on_click(budgeted(lambda _b: show(stepper.undo())))
    reset.on_click(budgeted(lambda _b: show(stepper.reset())))
    show(stepper.view)
    box = w.VBox([slider, w.HBox([*buttons.values(), undo, reset]), out])
    box.stepper = stepper
    box.buttons = buttons
    box.undo_button, box.reset_button, box.output = undo, reset, out
    return box
