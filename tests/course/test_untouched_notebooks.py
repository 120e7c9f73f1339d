"""Run All on an exercise notebook as handed out, before the learner has typed anything.

Every stub says "not answered yet" in one line and nothing else; the graded cells are the only
cells that fail, each with ``NotAnswered``'s one line and no frames (nbgrader scores them 0 and
``raises-exception`` lets Run All go on); and no output shows an ``Ellipsis`` that a stub's
``...`` let through.

A *stub cell* is a code cell whose source holds a stub (``NAME = ...  # Your answer here`` or
the generated ``raise NotImplementedError("Your answer here")``), or a later cell whose
``check("N.M", ...)`` calls are on those stubs' names. A *graded cell* is an nbgrader grade cell
that is not a solution cell.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
EXERCISES = ROOT / "exercises"
NOTEBOOKS = sorted(p for p in EXERCISES.glob("*-exercises.ipynb") if not p.match("*.bak.ipynb"))
#: nbclient's limit for one cell, in seconds: a cell that hangs fails the run instead of the
#: suite waiting for ever. Untouched, every cell takes a moment.
CELL_TIMEOUT_S = 120

VALUE_STUB = re.compile(r"^(\w+) = \.\.\.  # Your answer here$", re.M)
RAISE_STUB = 'raise NotImplementedError("Your answer here")'
NOT_ANSWERED = re.compile(r"✘ (\d+\.\d+): not answered yet — \S.*")


def is_graded(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution")


def stub_names(source: str) -> set[str]:
    """The names a cell leaves at their stub: ``NAME = ...`` lines, and the top-level functions
    whose body (or a function inside it) raises the stub's NotImplementedError."""
    names = set(VALUE_STUB.findall(source))
    if RAISE_STUB in source:
        lines = source.split("\n")
        for node in ast.parse(source).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = "\n".join(lines[node.lineno - 1 : node.end_lineno])
                if RAISE_STUB in body:
                    names.add(node.name)
    return names


def checks_on(source: str, names: set[str]) -> list[str]:
    """The question ids of the ``check("N.M", answer)`` calls in ``source`` whose answer uses
    one of ``names``, in order."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "check"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and len(node.args) > 1
        ):
            used = {n.id for arg in node.args[1:] for n in ast.walk(arg) if isinstance(n, ast.Name)}
            if used & names:
                found.append((node.lineno, node.col_offset, node.args[0].value))
    return [qid for *_, qid in sorted(found)]


def classify(nb) -> dict[int, tuple[str, list[str]]]:
    """Cell index -> ("stub", the qids it checks) or ("graded", []) or ("other", [])."""
    kinds: dict[int, tuple[str, list[str]]] = {}
    stubs: set[str] = set()
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        source = cell.source
        own = stub_names(source)
        if is_graded(cell):
            kinds[index] = ("graded", [])
        elif own or checks_on(source, stubs):
            stubs |= own
            kinds[index] = ("stub", checks_on(source, stubs))
        else:
            kinds[index] = ("other", [])
    return kinds


def texts(output) -> list[str]:
    """Everything an output shows as text."""
    if output.output_type == "stream":
        return [output.text]
    if output.output_type == "error":
        return [output.ename, output.evalue, *output.traceback]
    return [str(v) for v in output.get("data", {}).values()]


@pytest.fixture(scope="module", params=NOTEBOOKS, ids=lambda p: p.name)
def executed(request):
    """One exercise notebook, run top to bottom as handed out, in exercises/."""
    nb = nbformat.read(request.param, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        allow_errors=True,
        record_timing=False,
        resources={"metadata": {"path": str(EXERCISES)}},
    )
    client.execute(env={**os.environ, "PYTHONHASHSEED": "0"})
    return request.param.name, nb, classify(nb)


def test_the_notebooks_are_found():
    assert len(NOTEBOOKS) >= 9, NOTEBOOKS


def test_only_graded_cells_fail_and_each_in_one_line(executed):
    name, nb, kinds = executed
    for index, (kind, _) in kinds.items():
        errors = [o for o in nb.cells[index].outputs if o.output_type == "error"]
        if kind != "graded":
            assert not errors, (
                f"{name}, cell {index}: {errors[0].ename}: {errors[0].evalue}\n"
                + nb.cells[index].source
            )
            continue
        assert len(errors) == 1, f"{name}, cell {index}: an untouched graded cell must fail"
        error = errors[0]
        assert error.ename == "NotAnswered", (
            f"{name}, cell {index}: {error.ename}: {error.evalue}; a graded cell starts with "
            f"answered(name=name, ...)"
        )
        assert len(error.traceback) == 1 and "\n" not in error.traceback[0], (
            f"{name}, cell {index}: NotAnswered shows frames:\n" + "\n".join(error.traceback)
        )
        assert error.traceback[0].startswith("✘ not answered yet: "), error.traceback


def test_every_stub_cell_prints_exactly_its_not_answered_lines(executed):
    name, nb, kinds = executed
    stubs = {i: qids for i, (kind, qids) in kinds.items() if kind == "stub"}
    assert stubs, f"{name} has no stub cell"
    for index, qids in stubs.items():
        cell = nb.cells[index]
        where = f"{name}, cell {index}:\n{cell.source}\n"
        assert qids, where + "a stub cell checks its answer with check(...)"
        printed = "".join(o.text for o in cell.outputs if o.output_type == "stream")
        streams = {o.name for o in cell.outputs if o.output_type == "stream"}
        assert streams <= {"stdout"}, where + f"it wrote to {sorted(streams)}"
        lines = printed.splitlines()
        assert all(NOT_ANSWERED.fullmatch(line) for line in lines), where + printed
        assert [NOT_ANSWERED.fullmatch(line).group(1) for line in lines] == qids, where + printed
        shown = [o for o in cell.outputs if o.output_type in ("execute_result", "display_data")]
        assert all(o.data.get("text/plain") == "False" for o in shown), where + str(shown)


def test_no_output_shows_an_ellipsis(executed):
    name, nb, _ = executed
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            for text in texts(output):
                assert "Ellipsis" not in text, f"{name}, cell {index}: {text[:500]}"


def test_the_graded_cells_name_every_answer_still_at_its_stub(executed):
    """Untouched, every answer is left: the graded cells' one lines name each one checked."""
    name, nb, kinds = executed
    checked = {
        n
        for i, (kind, _) in kinds.items()
        if kind == "stub"
        for n in stub_names(nb.cells[i].source)
        if checks_on(nb.cells[i].source, {n})
    }
    named: set[str] = set()
    for index, (kind, _) in kinds.items():
        errors = [o for o in nb.cells[index].outputs if o.output_type == "error"]
        if kind == "graded" and errors and errors[0].ename == "NotAnswered":
            listed = errors[0].evalue.split(":", 1)[1].split(".", 1)[0]
            named |= {n.strip() for n in listed.split(",")}
    assert checked <= named, f"{name}: the graded cells do not name {sorted(checked - named)}"
