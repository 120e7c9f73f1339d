"""Chapter 5's lab: be the scheduler of deadlock D1 and find the order that hangs ``savevm``.

In the 2017 design the IOThread's loop holds no lock; its completion handler takes the context
lock itself. The main loop takes that lock twice (``save_vmstate`` and a helper) and waits in
``AIO_WAIT_WHILE``, which lets go of it once. Whether that hangs depends on who moves first.
The level is ``labsupport.stepper``'s; ``lab()`` adds a slider that replays a recorded
deadlocking schedule step by step.

Layer 9 (chapters): imports the layers below; ipywidgets only when a widget is built.
"""

from __future__ import annotations

from typing import Any

from labsupport import stepper
from labsupport.stepper import Level

from .scenarios import SCENARIOS

#: A schedule of the buggy D1 that deadlocks (random policy, seed 0), for the slider to replay.
RECORDED_D1 = "110111"


def scheduler_level() -> Level:
    """D1: choose the order of the IOThread's completion and the main loop's ``savevm``."""
    return SCENARIOS["D1"].level(
        "the main loop runs savevm, taking the IOThread's context lock twice, while a request "
        "completes in the IOThread: make them deadlock",
        seed=0,
    )


def lab(recorded: str = RECORDED_D1) -> Any:
    """The D1 level as a widget, with a slider (the first child) that replays the first N
    choices of a recorded deadlocking schedule."""
    return stepper.lab(scheduler_level(), recorded=recorded)
