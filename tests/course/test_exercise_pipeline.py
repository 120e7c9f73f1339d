"""The exercises pipeline: solutions/ in, exercises/ out (tools/exercises.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from tool_loader import load_tool

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "exercises.py"
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"


tool = load_tool("exercises")

SOLVED_FUNCTION = """\
def add_lock(counter):
    total = 0
    ### BEGIN SOLUTION
    with counter.lock:
        total = counter.value + 1
    ### END SOLUTION
    return total
"""

SOLVED_TOP_LEVEL = """\
answer = None
### BEGIN SOLUTION
answer = 42
### END SOLUTION
"""

TEST_CELL = """\
assert answer is not None
### BEGIN HIDDEN TESTS
assert answer == 42, "the hidden test"
### END HIDDEN TESTS
print("checked")
"""


def solution_notebook() -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    graded = new_code_cell(SOLVED_TOP_LEVEL, execution_count=3)
    graded.metadata["nbgrader"] = {"grade_id": "q1", "solution": True, "grade": False}
    graded.metadata["execution"] = {"iopub.status.busy": "2024-01-01T00:00:00Z"}
    graded.outputs = [new_output("stream", name="stdout", text="solved\n")]
    nb.cells = [
        new_markdown_cell("# Exercise\nFix the lost update."),
        new_code_cell(SOLVED_FUNCTION, execution_count=1),
        graded,
        new_code_cell(TEST_CELL, execution_count=4),
        new_markdown_cell(
            "Why?\n\n<!-- BEGIN SOLUTION -->\nBecause the read and the write\n"
            "were not atomic.\n<!-- END SOLUTION -->\n\nThen continue."
        ),
        new_code_cell("print('after the stubs')", execution_count=5),
    ]
    return nb


def write(nb: nbformat.NotebookNode, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def course(tmp_path: Path) -> tuple[Path, Path]:
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    write(solution_notebook(), solutions / "01-demo.ipynb")
    return solutions, exercises


def generated(course: tuple[Path, Path]) -> nbformat.NotebookNode:
    solutions, exercises = course
    tool.generate(solutions, exercises)
    return nbformat.read(exercises / "01-demo.ipynb", as_version=4)


def test_solution_block_becomes_stub_at_marker_indentation(course):
    cells = generated(course).cells
    assert cells[1].source == (
        "def add_lock(counter):\n"
        "    total = 0\n"
        '    raise NotImplementedError("Your answer here")\n'
        "    return total\n"
    )
    assert cells[2].source == "answer = None\nanswer = ...  # Your answer here\n"
    for cell in cells:
        assert "BEGIN SOLUTION" not in cell.source and "END SOLUTION" not in cell.source


def test_hidden_tests_are_removed_and_visible_lines_kept(course):
    cell = generated(course).cells[3]
    assert cell.source == 'assert answer is not None\nprint("checked")\n'
    assert "hidden" not in cell.source.lower()


def test_markdown_answer_becomes_placeholder(course):
    cell = generated(course).cells[4]
    assert cell.source == "Why?\n\nYOUR ANSWER HERE\n\nThen continue."


def test_outputs_counts_and_run_records_are_cleared_metadata_kept(course):
    nb = generated(course)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
            assert "execution" not in cell.metadata
    assert "widgets" not in nb.metadata
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.cells[2].metadata["nbgrader"] == {"grade_id": "q1", "solution": True, "grade": False}
    solution = nbformat.read(course[0] / "01-demo.ipynb", as_version=4)
    assert [c.id for c in nb.cells] == [c.id for c in solution.cells]


def test_stub_and_test_cells_are_tagged_raises_exception_and_others_not(course):
    tags = [cell.metadata.get("tags", []) for cell in generated(course).cells]
    assert ["raises-exception" in t for t in tags] == [False, True, True, True, False, False]


def test_autograder_test_cell_is_tagged(tmp_path):
    nb = new_notebook()
    nb.cells = [new_code_cell("assert f() == 1")]
    nb.cells[0].metadata["nbgrader"] = {"grade": True, "solution": False, "points": 1}
    out = tool.make_exercise(nb)
    assert out.cells[0].metadata["tags"] == ["raises-exception"]


def test_solution_notebook_itself_is_not_changed(course):
    before = (course[0] / "01-demo.ipynb").read_bytes()
    generated(course)
    assert (course[0] / "01-demo.ipynb").read_bytes() == before


def test_generation_is_idempotent_and_byte_stable(course):
    solutions, exercises = course
    tool.generate(solutions, exercises)
    first = (exercises / "01-demo.ipynb").read_bytes()
    assert first.endswith(b"\n")
    assert tool.generate(solutions, exercises) == []  # nothing to write the second time
    assert (exercises / "01-demo.ipynb").read_bytes() == first
    assert tool.differences(solutions, exercises) == []


def test_cells_without_ids_get_stable_ids(tmp_path):
    nb = solution_notebook()
    text = nbformat.writes(nb)
    for cell in nb.cells:
        text = text.replace(f' "id": "{cell.id}",\n', "")
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    (solutions / "x.ipynb").write_text(text)
    outputs = [tool.plan(solutions, tmp_path / "ex").outputs["x.ipynb"] for _ in range(2)]
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize(
    "source, message",
    [
        ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
        ("x = 1\n### END SOLUTION\n", "without"),
        ("### BEGIN SOLUTION\n### BEGIN HIDDEN TESTS\n", "inside"),
        ("### BEGIN HIDDEN TESTS\n### END SOLUTION\n", "without"),
    ],
)
def test_unbalanced_markers_are_reported_with_their_place(source, message):
    with pytest.raises(tool.MarkerError, match=message) as error:
        tool.strip_code(source, where="solutions/x.ipynb, cell 2")
    assert "solutions/x.ipynb, cell 2, line" in str(error.value)


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=60
    )


def test_check_detects_a_hand_edit_a_missing_and_an_extra_file(course):
    solutions, exercises = course
    where = ["--solutions", str(solutions), "--exercises", str(exercises)]
    missing = run_tool("--check", *where)
    assert missing.returncode == 1 and "missing:" in missing.stdout

    assert run_tool(*where).returncode == 0
    assert run_tool("--check", *where).returncode == 0

    target = exercises / "01-demo.ipynb"
    target.write_text(target.read_text().replace("Fix the lost update.", "Edited by hand."))
    differs = run_tool("--check", *where)
    assert differs.returncode == 1
    assert "differs: " in differs.stdout and "01-demo.ipynb" in differs.stdout
    assert "make exercises" in differs.stdout

    write(new_notebook(), exercises / "99-orphan.ipynb")
    (exercises / "01-demo.20240101-120000.bak.ipynb").write_text("{}")  # a backup is no extra
    extra = run_tool("--check", *where)
    assert "extra:   " in extra.stdout and "99-orphan.ipynb" in extra.stdout
    assert ".bak.ipynb" not in extra.stdout


def test_check_passes_on_empty_solutions(tmp_path):
    result = run_tool(
        "--check", "--solutions", str(tmp_path / "s"), "--exercises", str(tmp_path / "e")
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_regenerating_over_an_edited_exercise_keeps_a_backup(course, monkeypatch, tmp_path):
    # Outside any git checkout nothing tells an author's output from a learner's edits.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    solutions, exercises = course
    tool.generate(solutions, exercises)
    target = exercises / "01-demo.ipynb"
    edited = target.read_text().replace("Fix the lost update.", "my notes")
    target.write_text(edited)
    report = tool.generate(solutions, exercises)
    backups = list(exercises.glob("01-demo.*.bak.ipynb"))
    assert len(backups) == 1 and backups[0].read_text() == edited
    assert any(line.startswith("kept:") for line in report)
    assert "my notes" not in target.read_text()


def nbval(path: Path, cwd: Path) -> subprocess.CompletedProcess:
    (cwd / "pytest.ini").write_text("[pytest]\n")  # keep the project's pytest settings out
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "--nbval-current-env",
            "--nbval-sanitize-with",
            str(SANITIZE),
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(cwd),
            str(path),
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=180,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )


def test_nbval_runs_an_exercise_up_to_its_stubs(course, tmp_path):
    """The generated exercise passes nbval although its stub and test cells raise; without
    the tag the same notebook fails, so the tag is what makes it pass."""
    solutions, exercises = course
    nb = solution_notebook()
    # A cell that calls the stubbed function raises too; the author tags it in solutions/.
    call = new_code_cell("add_lock(None)")
    call.metadata["tags"] = ["raises-exception"]
    nb.cells.insert(2, call)
    write(nb, solutions / "01-demo.ipynb")
    tool.generate(solutions, exercises)
    exercise = exercises / "01-demo.ipynb"

    passed = nbval(exercise, tmp_path)
    assert passed.returncode == 0, passed.stdout[-3000:]
    assert "5 passed" in passed.stdout

    untagged = nbformat.read(exercise, as_version=4)
    for cell in untagged.cells:
        cell.metadata.pop("tags", None)
    write(untagged, tmp_path / "untagged" / "01-demo.ipynb")
    failed = nbval(tmp_path / "untagged" / "01-demo.ipynb", tmp_path)
    assert failed.returncode == 1
    assert "NotImplementedError" in failed.stdout


# -- Every solutions notebook is an nbgrader source notebook ---------------------------------

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "<!-- BEGIN SOLUTION -->")


@pytest.mark.parametrize(
    "path", sorted((ROOT / "solutions").glob("*-exercises.ipynb")), ids=lambda p: p.name
)
def test_every_solutions_notebook_follows_nbgraders_rules(path):
    """What ``nbgrader generate_assignment`` and ``autograde`` need: answers only in solution
    cells, hidden tests only in locked grade cells with points, grade ids unique."""
    nb = nbformat.read(path, as_version=4)
    ids, graded = [], []
    for i, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        if any(m in cell.source for m in SOLUTION_MARKERS):
            assert meta.get("solution") is True, (
                f"{path.name} cell {i}: a solution region outside a solution cell"
            )
        if "### BEGIN HIDDEN TESTS" in cell.source:
            assert meta.get("grade") is True and meta.get("locked") is True, (
                f"{path.name} cell {i}: hidden tests outside a locked grade cell"
            )
        if meta:
            assert meta.get("grade_id"), f"{path.name} cell {i}: nbgrader metadata needs a grade_id"
            ids.append(meta["grade_id"])
            if meta.get("grade"):
                assert meta.get("points", 0) > 0, f"{path.name} cell {i}: a grade cell needs points"
                graded.append(i)
    assert len(ids) == len(set(ids)), f"{path.name}: grade ids repeat: {ids}"
    assert graded, f"{path.name}: no grade cell, nothing for the autograder to score"


@pytest.mark.parametrize("path", sorted((ROOT / "solutions").glob("*.ipynb")), ids=lambda p: p.name)
def test_hidden_tests_grade_through_the_public_check(path):
    """A grader's hidden tests call ``check(qid, answer, quiet=True)``, the learner's own
    entry point, never a chapter's private checker functions."""
    import re

    blocks = []
    for cell in nbformat.read(path, as_version=4).cells:
        src = cell.source
        if "### BEGIN HIDDEN TESTS" in src:
            blocks.append(src[src.index("### BEGIN HIDDEN TESTS") : src.index("### END HIDDEN")])
    assert blocks, f"{path.name} has no hidden tests"
    for block in blocks:
        assert "labsupport.chapters" not in block
        assert not re.search(r"\b_\w+\(", block), block
        assert re.search(r'check\("\d+\.\d+", .*quiet=True\)', block)
