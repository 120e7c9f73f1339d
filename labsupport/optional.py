"""What a Python without numpy or matplotlib can still run, and the one line it says otherwise.

The course runs in the browser too, on Pyodide (CPython compiled to WebAssembly). Its offline
build has no numpy and no matplotlib (no browser build of either is published on PyPI or npm),
so the kernel, the primitives and the text traces use only the standard library, and what needs
those two (a figure, the metrics' analyses) asks for them through ``need``: where a module is
missing, the learner reads one line saying what is missing and where it runs, not a traceback.

Layer 1 (kernel). Imports nothing from labsupport.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

WHERE = (
    "run the course with `make lab`, on Binder, or in the browser build that loads Pyodide from "
    "its CDN"
)


class Unavailable(ImportError):
    """A module this Python lacks; shown in a notebook as one line, not a traceback."""

    def __init__(self, module: str, what: str, here: str = "the offline browser build") -> None:
        self.module, self.what = module, what
        super().__init__(
            f"{what} needs {module}, which this Python does not have ({here}): {WHERE}."
        )

    def _render_traceback_(self) -> list[str]:  # IPython shows these lines instead
        return [f"{type(self).__name__}: {self}"]


def need(module: str, what: str) -> ModuleType:
    """``module`` imported, or ``Unavailable`` naming ``what`` needs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise Unavailable(module.split(".")[0], what) from None


class _NoPyplot:
    """Stands for ``matplotlib.pyplot`` where there is none: any use says so in one line."""

    def __getattr__(self, name: str) -> Any:
        raise Unavailable("matplotlib", f"plt.{name}")

    def __repr__(self) -> str:
        return "<no matplotlib.pyplot in this Python>"


def pyplot() -> Any:
    """``matplotlib.pyplot``, or where it is missing a stand-in whose every use says so."""
    try:
        return need("matplotlib.pyplot", "plt")
    except Unavailable:
        return _NoPyplot()
