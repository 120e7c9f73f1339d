"""The dataplane (2012-2013): chapter 3's catalogued race, R2.

In the buggy version a vCPU thread's notify path still calls ``virtio_blk_handle_vq`` itself
and also kicks the dataplane, which runs the same handler from its own loop: one handler entered
by two threads at once (``r2_program`` in ``labsupport.qemu.dataplane``, where ``HandlerGuard``
writes down the second entry). The fix gives the virtqueue one owner: the vCPU only kicks.
``whole_us`` rounds a timeline summary to whole microseconds for section 2.

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

import math
import re
from typing import Any

from labsupport import validate
from labsupport.catalogue import Scenario
from labsupport.kernel import RunResult
from labsupport.qemu.dataplane import r2_program


def _r2_program(fixed: bool) -> Any:
    return r2_program(fixed=fixed)


def _r2_outcome(r: RunResult) -> str:
    """ "race" when the handler guard saw two threads inside ``virtio_blk_handle_vq``."""
    return "race" if r.sim.model.reports else "completed"


SCENARIOS: dict[str, Scenario] = {
    "R2": Scenario(
        "R2",
        3,
        "race",
        "one virtqueue handler entered from two threads",
        program=_r2_program,
        cpus=2,
        outcome=_r2_outcome,
    ),
}

#: A duration in a summary: a number with a fraction, then its unit.
_DURATION = re.compile(r"(?<![\w.])(\d+\.\d+)(?=\s*(?:us|µs)\b)")


def whole_us(summary: str) -> str:
    """``summary`` (a ``timeline_summary``, say) with every duration rounded to a whole
    microsecond, half up. The engine keeps times exact (``61.8757 us``); a learner reads a
    200 us timeline to the microsecond, so section 2 prints ``62 us``."""
    validate.instance("summary", summary, str, kind="a string (a timeline_summary)")
    return _DURATION.sub(lambda m: str(math.floor(float(m.group(1)) + 0.5)), summary)


__all__ = ["SCENARIOS", "whole_us"]
