"""What the chapter tests share: a notebook's code cells read and run, two runs compared,
a widget's printing captured.

The chapters build their era models in visible cells (tagged ``era-model``); the tests run those
very cells and compare them with the library, so a notebook cannot drift from ``labsupport``.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import nbformat


def code_cells(path: Path, tag: str | None = None, containing: str | None = None) -> list[str]:
    """The sources of ``path``'s code cells, optionally only those tagged ``tag`` and/or whose
    source contains ``containing``, in notebook order."""
    nb = nbformat.read(path, as_version=4)
    return [
        c.source
        for c in nb.cells
        if c.cell_type == "code"
        and (tag is None or tag in c.metadata.get("tags", []))
        and (containing is None or containing in c.source)
    ]


def run_cells(path: Path, *tags: str, ns: dict | None = None, minimum: int = 1) -> dict:
    """Run the cells with these tags (tag by tag, each in notebook order) in one namespace.

    No IPython magics or shell escapes are allowed in them: they must run as plain Python.
    """
    ns = {"__name__": "era_model"} if ns is None else ns
    for tag in tags:
        sources = code_cells(path, tag)
        assert len(sources) >= minimum, (
            f"{path.name}: {len(sources)} cell(s) tagged {tag!r}, expected at least {minimum}"
        )
        for src in sources:
            assert not any(line.lstrip().startswith(("%", "!")) for line in src.splitlines())
            exec(compile(src, f"{path.name}[{tag}]", "exec"), ns)
    return ns


def run_cell_containing(path: Path, ns: dict, containing: str, prelude: str = "") -> dict:
    """Run the one code cell containing ``containing`` in a copy of ``ns``, quietly."""
    ns = dict(ns)
    if prelude:
        exec(prelude, ns)
    (src,) = code_cells(path, containing=containing)
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(src, str(path), "exec"), ns)
    return ns


def assert_same_run(mine, theirs) -> None:
    """Two kernel runs were the same run: outcome, schedule, steps, time, trace, report."""
    from labsupport import trace_table

    assert (mine.outcome, mine.schedule, mine.steps, mine.time) == (
        theirs.outcome,
        theirs.schedule,
        theirs.steps,
        theirs.time,
    )
    assert trace_table(mine, width=40) == trace_table(theirs, width=40)
    assert str(mine.deadlock) == str(theirs.deadlock)


def quiet(fn, *args, **kwargs):
    """Call ``fn`` with its printing captured: ``(its result, what it printed)``. Widgets print
    their text summary; the tests read it."""
    with contextlib.redirect_stdout(io.StringIO()) as out:
        result = fn(*args, **kwargs)
    return result, out.getvalue()
