"""The dataplane (2012-2013): chapter 3's catalogued race, R2.

In the buggy version a vCPU thread's notify path still calls ``virtio_blk_handle_vq`` itself
and also kicks the dataplane, which runs the same handler from its own loop: one handler entered
by two threads at once (``r2_program`` in ``labsupport.qemu.dataplane``, where ``HandlerGuard``
writes down the second entry). The fix gives the virtqueue one owner: the vCPU only kicks.

Layer 9 (chapters): imports the layers below.
"""

from __future__ import annotations

from typing import Any

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

__all__ = ["SCENARIOS"]
