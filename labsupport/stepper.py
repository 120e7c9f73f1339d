"""Be the scheduler: a level in which the learner picks, at every choice point, who moves next.

A seeded schedule shows what one scheduler did; the Deadlock Empire's lesson is that the bug is
found by playing the adversary. A ``Level`` is a program, a goal ("make the counter lose an
update", "deadlock the main loop") and the test that says the goal is reached, run on a
``Pause`` policy: the kernel stops at each choice point and lists who could move, the learner
picks, and the run goes on from there (the same run, not a replay). Undo replays the schedule
without its last choice; "show me" plays the explorer's shortest schedule that reaches the goal
(fewest preemptions, then fewest events), so a stuck learner sees the cheapest way in.

``Stepper`` is the pure core and what the tests drive; ``lab(level)`` puts buttons and a
keyboard box on it (type a thread's character to step it, ``u`` to undo, ``r`` to reset,
``s`` for show me), for a projector as much as for a mouse.

Layer 7 (widgets): imports the kernel, the analysis and the presentation; ipywidgets only when
a widget is built.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import validate
from .analysis.explore import explore
from .kernel import (
    MisuseError,
    Pause,
    Replay,
    RunResult,
    ScheduleDivergence,
    Simulation,
    state_repr,
)
from .present import trace_table
from .widgets import budgeted, int_slider

#: How many runs "show me" may explore before it says it found no way to the goal.
SHOW_ME_RUNS = 20_000


@dataclass(frozen=True)
class Level:
    """A program to be the scheduler of, and the goal to reach.

    ``goal`` is the task in words; ``reached(result)`` looks at a run that has ended and
    returns what was achieved (a sentence) or None. ``run_options`` are ``run()``'s (``cpus``,
    ``seed``, ...); ``opaque`` is the explorer's (for models with state in plain attributes).
    """

    name: str
    program: Callable[[Simulation], Any]
    goal: str
    reached: Callable[[RunResult], str | None]
    run_options: dict = field(default_factory=dict)
    opaque: bool = False

    def __post_init__(self) -> None:
        validate.label("name", self.name)
        validate.function("program", self.program, kind="a program function (sim -> model)")
        validate.label("goal", self.goal)
        validate.function("reached", self.reached, kind="a function (result -> str or None)")
        validate.instance("run_options", self.run_options, dict, kind="a dict of run() options")
        validate.flag("opaque", self.opaque)


@dataclass
class StepView:
    """What the learner sees after a move: the trace so far and who may move next, or how the
    run ended and whether that reached the goal."""

    schedule: str
    status: str  # "choose", or how the run ended: "completed", "deadlock", "stuck", ...
    movable: list[tuple[str, str]]  # (schedule character, thread name)
    trace: str
    goal: str
    won: str = ""  # what the run achieved, when it reached the goal
    report: str = ""  # a deadlock's report
    note: str = ""  # a line about the last action (show me)
    replay: str = ""  # the run() call that replays this schedule

    def announcement(self) -> str:
        """Whose turn it is, or how the run ended: a win with its schedule, or try again."""
        if self.status == "choose":
            who = " or ".join(f"{name} ({c})" for c, name in self.movable)
            return f"schedule {self.schedule!r}: choose who moves next: {who}"
        ended = f"the run ended: {self.status}"
        if self.report:
            ended += f"\n{self.report}"
        if self.won:
            return (
                f"{ended}\n★ goal reached: {self.won}. Your schedule: {self.schedule!r}; "
                f"replay it with {self.replay}"
            )
        return f"{ended}, and the goal is not reached. Undo a move, or reset, and try again"

    def text(self) -> str:
        lines = [f"goal: {self.goal}"]
        if self.note:
            lines.append(self.note)
        return "\n".join([*lines, "", self.trace, "", self.announcement()])


class Stepper:
    """Play ``level``: ``step(c)`` lets the thread with schedule character ``c`` take the next
    choice and runs on to the following one; ``undo()`` takes the last choice back; ``reset()``
    starts again; ``load(s)`` plays a whole schedule; ``show_me()`` plays the explorer's
    shortest schedule that reaches the goal. Each returns a ``StepView`` (also ``.view``)."""

    def __init__(self, level: Level, width: int = 26):
        validate.instance("level", level, Level, kind="a stepper Level")
        validate.whole("width", width, 8, 200)
        self.level = level
        self.width = width
        self._shortest: str | None = None
        self.load("")

    @property
    def schedule(self) -> str:
        return self.view.schedule

    def _start(self, prefix: str) -> None:
        options = {"cpus": 1, **self.level.run_options}
        self.sim = Simulation(policy=Replay(prefix, then=Pause(), strict_end=False), **options)
        self.sim.model = self.level.program(self.sim)

    def _go(self, note: str = "") -> StepView:
        try:
            result = self.sim.run()
        except MisuseError as e:  # QEMU's assertion stopped the run: that is how it ended
            sim = self.sim
            result = RunResult("misuse", sim.now, 0, str(sim.schedule), None, e, sim)
        status = result.outcome
        movable = [(t.char, t.name) for t in self.sim.paused] if status == "paused" else []
        won = ""
        if status != "paused":
            won = self.level.reached(result) or ""
        self.view = StepView(
            schedule=str(self.sim.schedule),
            status="choose" if status == "paused" else status,
            movable=movable,
            trace=trace_table(self.sim, width=self.width, max_rows=None),
            goal=self.level.goal,
            won=won,
            report=result.deadlock.text() if result.deadlock else str(result.error or ""),
            note=note,
            replay=self.sim.schedule.recipe(),
        )
        return self.view

    def step(self, char: str) -> StepView:
        """Let thread ``char`` take the next choice; refused (a ValueError naming the threads
        that can move) if it cannot move now or the run has ended."""
        if self.view.status != "choose":
            raise ValueError(
                f"char: the run has ended ({self.view.status}); undo() or reset() first"
            )
        allowed = [c for c, _ in self.view.movable]
        if not isinstance(char, str) or char not in allowed:
            names = ", ".join(f"{c} ({n})" for c, n in self.view.movable)
            raise ValueError(f"char: thread {char!r} cannot move now; the ones that can: {names}")
        self.sim.choose(char)
        return self._go()

    def undo(self) -> StepView:
        """Take back the last choice (replays the schedule without it)."""
        return self.load(self.schedule[:-1])

    def reset(self) -> StepView:
        """Back to the start: no choice made."""
        return self.load("")

    def load(self, schedule: str, note: str = "") -> StepView:
        """Play ``schedule`` (a string of thread characters) and stop at the next choice; a
        ValueError if a thread in it cannot move where it is asked to."""
        validate.instance("schedule", schedule, str, kind="a schedule string such as '0011'")
        before = self.view.schedule if hasattr(self, "view") else ""
        try:
            self._start(schedule)
            view = self._go(note)
            if len(view.schedule) < len(schedule):
                raise ScheduleDivergence(
                    f"the run ends after {len(view.schedule)} choices, before the rest "
                    f"({schedule[len(view.schedule) :]!r})"
                )
            return view
        except ScheduleDivergence as e:
            self._start(before)
            self._go()
            raise ValueError(f"schedule: {schedule!r} cannot be played here; {e}") from None
        except ValueError as e:  # a character that names no thread
            raise ValueError(f"schedule: {e}") from None

    def __repr__(self) -> str:
        return state_repr(
            self, f"schedule {self.schedule!r}", self.view.status, name=self.level.name
        )

    def shortest(self) -> str:
        """The explorer's schedule that reaches the goal with the fewest preemptions, then
        the fewest events; a ValueError if no schedule of the program reaches it."""
        if self._shortest is None:
            level = self.level
            e = explore(
                level.program,
                check=level.reached,
                max_runs=SHOW_ME_RUNS,
                time_limit_s=None,
                opaque=level.opaque,
                **level.run_options,
            )
            if e.counterexample is None:
                scope = "every schedule" if e.complete else f"{e.runs:,} runs"
                raise ValueError(f"no schedule reaches the goal ({scope} explored)")
            self._shortest = e.counterexample.schedule
        return self._shortest

    def show_me(self) -> StepView:
        """Play the shortest schedule that reaches the goal, from the start."""
        schedule = self.shortest()
        return self.load(schedule, note=f"shown: the shortest schedule to the goal, {schedule!r}")


#: Keys of the keyboard box besides the threads' characters.
KEYS = {"u": "undo", "r": "reset", "s": "show me"}


def lab(level: Level, width: int = 26, recorded: str | None = None) -> Any:
    """The stepper on ``level`` as a widget: the goal, a button per thread (enabled when it
    can move), undo, reset and show me, a keyboard box (a thread's character steps it; ``u``,
    ``r``, ``s``), and the trace with the announcement below. ``.stepper`` is the
    ``Stepper``; ``.buttons`` maps characters to buttons; ``.key_box`` is the box. With
    ``recorded`` (a schedule), a slider comes first that replays its first N choices."""
    import ipywidgets as w

    if recorded is not None:
        validate.label("recorded", recorded, kind="a recorded schedule string such as '0011'")
    stepper = Stepper(level, width=width)
    threads = [(t.char, t.name) for t in stepper.sim.threads]
    buttons = {
        c: w.Button(
            description=f"{name} ({c})",
            tooltip=f"let {name} take the next step (key {c})",
            layout=w.Layout(width="auto"),
        )
        for c, name in threads
    }
    undo = w.Button(description="undo (u)", layout=w.Layout(width="auto"))
    reset = w.Button(description="reset (r)", layout=w.Layout(width="auto"))
    show = w.Button(description="show me (s)", layout=w.Layout(width="auto"))
    keys = w.Text(
        placeholder="type a thread's character, u, r or s",
        description="keys",
        continuous_update=True,
        layout=w.Layout(width="320px"),
    )
    out = w.HTML()
    message = w.HTML()

    def show_view(view: StepView, error: str = "") -> None:
        movable = {c for c, _ in view.movable}
        for c, b in buttons.items():
            b.disabled = c not in movable
        undo.disabled = not view.schedule
        out.value = f"<pre>{html.escape(view.text())}</pre>"
        message.value = f"<b>{html.escape(error)}</b>" if error else ""

    def act(action: Callable[[], StepView]) -> None:
        try:
            show_view(action())
        except ValueError as e:
            show_view(stepper.view, str(e))

    def on_key(change: Any) -> None:
        text = change["new"]
        if not text:
            return
        keys.value = ""
        key = text[-1]
        if key == "u":
            act(stepper.undo)
        elif key == "r":
            act(stepper.reset)
        elif key == "s":
            act(stepper.show_me)
        else:
            act(lambda: stepper.step(key))

    for c, b in buttons.items():
        b.on_click(budgeted(lambda _b, c=c: act(lambda: stepper.step(c))))
    undo.on_click(budgeted(lambda _b: act(stepper.undo)))
    reset.on_click(budgeted(lambda _b: act(stepper.reset)))
    show.on_click(budgeted(lambda _b: act(stepper.show_me)))
    keys.observe(budgeted(on_key), names="value")
    show_view(stepper.view)
    head = []
    if recorded is not None:
        slider = int_slider(0, 0, len(recorded), "replay steps", label_width="120px")
        slider.observe(
            budgeted(lambda change: act(lambda: stepper.load(recorded[: change["new"]]))),
            names="value",
        )
        head.append(slider)
    box = w.VBox(
        [
            *head,
            w.HTML(f"<b>{html.escape(level.name)}</b>: {html.escape(level.goal)}"),
            w.HBox([*buttons.values(), undo, reset, show]),
            keys,
            message,
            out,
        ]
    )
    box.stepper, box.buttons, box.key_box, box.output, box.message = (
        stepper,
        buttons,
        keys,
        out,
        message,
    )
    box.undo_button, box.reset_button, box.show_button = undo, reset, show
    return box
