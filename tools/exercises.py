"""Generate exercises/ from solutions/, the single source of every exercise notebook.

An author writes each exercise once, with its answer, in ``solutions/NAME.ipynb``, marking the
answer and the graders' tests the way nbgrader does. This script hands out
``exercises/NAME.ipynb``, the same notebook with:

- in code cells, the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` (markers
  included) replaced by a stub: at the top level of a cell, ``NAME = ...  # Your answer here``
  for each name the answer assigns or defines (``check`` says "not answered yet" for ``...``,
  and the cell runs without a traceback); inside a function, or when the answer names
  nothing, ``raise NotImplementedError("Your answer here")``, indented like the BEGIN marker;
- in code cells, the lines from ``### BEGIN HIDDEN TESTS`` to ``### END HIDDEN TESTS`` (markers
  included) removed;
- in markdown cells, ``<!-- BEGIN SOLUTION -->...<!-- END SOLUTION -->`` replaced by
  ``YOUR ANSWER HERE``;
- every output, execution count, timing record and stored widget state cleared; all other
  metadata (nbgrader's cell metadata included) kept;
- the tag ``raises-exception`` on each cell that holds a stub or tests (hidden tests, or an
  nbgrader autograder-test cell): such a cell is expected to fail until the learner answers,
  and nbval and nbclient both honour the tag, so an exercise runs "up to its stubs".

The output is a pure function of the solution notebook (fixed JSON layout, trailing newline),
so ``--check`` can tell whether exercises/ is up to date. Before replacing an exercise that
differs from its last committed version (a learner's edits), the script keeps a timestamped
backup beside it, as ``labsupport.exercises.reset`` does.

Usage::

    python tools/exercises.py            # regenerate exercises/   (make exercises)
    python tools/exercises.py --check    # exit 1 if it would change (make check-exercises)
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
STUB = 'raise NotImplementedError("Your answer here")'
VALUE_STUB = "{name} = ...  # Your answer here"
MARKDOWN_SOLUTION = re.compile(r"<!--\s*BEGIN SOLUTION\s*-->.*?<!--\s*END SOLUTION\s*-->", re.S)
MARKDOWN_STUB = "YOUR ANSWER HERE"
RAISES_TAG = "raises-exception"
BACKUP_GLOB = "*.bak.ipynb"


class MarkerError(ValueError):
    """A solution notebook whose markers do not pair up."""


@dataclass
class CellResult:
    source: str
    has_stub: bool = False
    had_hidden_tests: bool = False


def strip_code(source: str, where: str = "cell") -> CellResult:
    """Replace solution blocks by the stub and drop hidden-test blocks in one code cell."""
    out: list[str] = []
    result = CellResult(source="")
    inside: str | None = None  # BEGIN_SOLUTION or BEGIN_HIDDEN while in a block
    begin_line = 0
    for number, line in enumerate(source.split("\n"), start=1):
        marker = line.strip()
        if marker in (BEGIN_SOLUTION, BEGIN_HIDDEN):
            if inside is not None:
                raise MarkerError(
                    f"{where}, line {number}: {marker!r} inside the block opened by "
                    f"{inside!r} on line {begin_line}"
                )
            inside, begin_line = marker, number
            if marker == BEGIN_SOLUTION:
                indent = line[: len(line) - len(line.lstrip())]
                block = []
                result.has_stub = True
            else:
                result.had_hidden_tests = True
        elif marker in (END_SOLUTION, END_HIDDEN):
            expected = BEGIN_SOLUTION if marker == END_SOLUTION else BEGIN_HIDDEN
            if inside != expected:
                raise MarkerError(f"{where}, line {number}: {marker!r} without {expected!r}")
            if inside == BEGIN_SOLUTION:
                out.extend(_stub(block, indent))
            inside = None
        elif inside == BEGIN_SOLUTION:
            block.append(line)
        elif inside is None:
            out.append(line)
    if inside is not None:
        raise MarkerError(f"{where}, line {begin_line}: {inside!r} is never closed")
    result.source = "\n".join(out)
    return result


def _answer_names(block: list[str]) -> list[str]:
    """The names a top-level answer assigns or defines, in order (none if it does not parse)."""
    try:
        tree = ast.parse("\n".join(block))
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found = [node.name]
        elif isinstance(node, ast.Assign):
            found = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found = [node.target.id]
        else:
            found = []
        names += [n for n in found if n not in names]
    return names


def _stub(block: list[str], indent: str) -> list[str]:
    """What replaces one solution block: ``NAME = ...`` for a top-level answer that names
    something, else the ``raise`` line at the marker's indentation."""
    names = _answer_names(block) if indent == "" else []
    if not names:
        return [indent + STUB]
    return [VALUE_STUB.format(name=n) for n in names]


def strip_markdown(source: str) -> str:
    """Replace each markdown answer block by the placeholder the learner overwrites."""
    return MARKDOWN_SOLUTION.sub(MARKDOWN_STUB, source)


def _is_autograder_test(cell: nbformat.NotebookNode) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution")


def read_solution(path: Path) -> nbformat.NotebookNode:
    """Read a solution notebook; cells without an id get one derived from name and position.

    nbformat would otherwise invent random ids, and the output would change on every run.
    """
    raw = json.loads(path.read_text(encoding="utf-8"))
    if (raw.get("nbformat"), raw.get("nbformat_minor", 0)) >= (4, 5):
        for index, cell in enumerate(raw.get("cells", [])):
            if "id" not in cell:
                digest = hashlib.sha1(f"{path.stem}:{index}".encode()).hexdigest()
                cell["id"] = digest[:8]
    return nbformat.reads(json.dumps(raw), as_version=4)


def make_exercise(solution: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """Return the exercise notebook for one solution notebook (the input is left unchanged)."""
    nb = copy.deepcopy(solution)
    nb.metadata.pop("widgets", None)
    for index, cell in enumerate(nb.cells):
        cell.metadata.pop("execution", None)
        if cell.cell_type == "markdown":
            cell.source = strip_markdown(cell.source)
            continue
        if cell.cell_type != "code":
            continue
        result = strip_code(cell.source, where=f"{name}, cell {index}")
        cell.source = result.source
        cell.outputs = []
        cell.execution_count = None
        if result.has_stub or result.had_hidden_tests or _is_autograder_test(cell):
            tags = cell.metadata.setdefault("tags", [])
            if RAISES_TAG not in tags:
                tags.append(RAISES_TAG)
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    """The exact text written for a notebook: nbformat's layout plus a trailing newline."""
    text = nbformat.writes(nb, version=nbformat.NO_CONVERT)
    return text if text.endswith("\n") else text + "\n"


@dataclass
class Plan:
    """What regenerating would do: file name -> new text, plus files that have no solution."""

    outputs: dict[str, str] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)


def plan(solutions: Path, exercises: Path) -> Plan:
    result = Plan()
    for path in sorted(solutions.glob("*.ipynb")):
        result.outputs[path.name] = render(make_exercise(read_solution(path), name=str(path)))
    if exercises.is_dir():
        for path in sorted(exercises.glob("*.ipynb")):
            if path.match(BACKUP_GLOB) or path.name in result.outputs:
                continue
            result.extra.append(path.name)
    return result


def _show(path: Path) -> str:
    """A path as a person would type it: relative to the current folder when inside it."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def differences(solutions: Path, exercises: Path) -> list[str]:
    """One line for each exercise file that regenerating would change, add, or not account for."""
    todo = plan(solutions, exercises)
    lines = []
    for name, text in todo.outputs.items():
        target = exercises / name
        if not target.exists():
            lines.append(f"missing: {_show(target)} (from {_show(solutions / name)})")
        elif target.read_text(encoding="utf-8") != text:
            lines.append(f"differs: {_show(target)} (from {_show(solutions / name)})")
    for name in todo.extra:
        lines.append(f"extra:   {_show(exercises / name)} (no {_show(solutions / name)})")
    return lines


def _edited_since_commit(path: Path) -> bool:
    """True when the file may hold a learner's edits: it differs from its committed version.

    A file git does not track, in a git checkout, is an author's fresh output: not a learner's.
    Outside a git checkout nothing can be told, so the answer is True (keep a copy).
    """
    from labsupport.exercises import committed_copy  # the course package, only when needed

    in_checkout, committed = committed_copy(path)
    if committed is None:
        return not in_checkout
    return committed != path.read_bytes()


def generate(solutions: Path, exercises: Path) -> list[str]:
    """Write every exercise notebook; return one line for each file written or kept aside."""
    todo = plan(solutions, exercises)
    report = []
    if todo.outputs:
        exercises.mkdir(parents=True, exist_ok=True)
    for name, text in todo.outputs.items():
        target = exercises / name
        data = text.encode("utf-8")
        if target.exists():
            if target.read_bytes() == data:
                continue
            if _edited_since_commit(target):
                from labsupport.exercises import backup

                report.append(f"kept:    {_show(backup(target))} (the edited {_show(target)})")
        target.write_bytes(data)
        report.append(f"wrote:   {_show(target)}")
    for name in todo.extra:
        report.append(f"extra:   {_show(exercises / name)} has no solution; remove it with git rm")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    parser.add_argument("--solutions", type=Path, default=ROOT / "solutions")
    parser.add_argument("--exercises", type=Path, default=ROOT / "exercises")
    args = parser.parse_args(argv)
    try:
        if args.check:
            lines = differences(args.solutions, args.exercises)
            if lines:
                print("exercises/ is out of date with solutions/; run `make exercises`:")
                print("\n".join("  " + line for line in lines))
                return 1
            count = len(list(args.solutions.glob("*.ipynb")))
            print(f"exercises: {count} notebook(s) match solutions/")
            return 0
        lines = generate(args.solutions, args.exercises)
    except MarkerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\n".join(lines) if lines else "exercises: already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
