"""An untouched exercise says "not answered yet", the same way for every question."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from labsupport import check
from labsupport.exercises import NotAnswered, answered, is_stub

ROOT = Path(__file__).resolve().parents[2]
STUB_CHECK = re.compile(r'check\("(\d\.\d)", (\w+)\)')
EXERCISES = sorted((ROOT / "exercises").glob("*-exercises.ipynb"))


def test_every_value_stub_is_not_answered_yet_without_a_traceback(capsys):
    """The exercises' top-level stubs are ``NAME = ...``: every question checked with ``...``
    says "not answered yet" and nothing else, and returns False."""
    stubs = 0
    for path in EXERCISES:
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"])
            for qid, name in STUB_CHECK.findall(source):
                if f"{name} = ...  # Your answer here" in source:
                    stubs += 1
                    assert check(qid, ...) is False
                    assert capsys.readouterr().out == (
                        f"✘ {qid}: not answered yet — replace the `...` with your answer\n"
                    )
    assert stubs >= 20  # most questions take a value; the rest a function that raises


def test_a_function_whose_thread_body_is_the_stub_is_a_stub():
    """The stub of a fix often sits in a thread's body, inside the program: still a stub."""

    def program(sim):
        def vcpu():
            raise NotImplementedError("Your answer here")

        sim.spawn("vcpu0", vcpu)

    def handler(bql, dev, cpu):
        raise NotImplementedError("Your answer here")

    def answered_program(sim):
        def vcpu():
            yield from ()

        sim.spawn("vcpu0", vcpu)

    assert is_stub(program) and is_stub(handler) and is_stub(...)
    assert not is_stub(answered_program) and not is_stub(0) and not is_stub("b")
    with pytest.raises(NotAnswered, match=r"^✘ not answered yet: program\. "):
        answered(program=program, answer="b")
    answered(program=answered_program, answer="b")


def _graded_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return [
        "".join(c["source"])
        for c in cells
        if c.get("metadata", {}).get("nbgrader", {}).get("grade")
        and not c["metadata"]["nbgrader"].get("solution")
        and c["cell_type"] == "code"
    ]


def _checked_stubs(path: Path) -> set[str]:
    """The names an exercise notebook leaves at a stub and passes to ``check``."""
    names = set()
    for cell in json.loads(path.read_text())["cells"]:
        source = "".join(cell["source"])
        stubs = set(re.findall(r"^(\w+) = \.\.\.  # Your answer here$", source, re.M))
        if 'raise NotImplementedError("Your answer here")' in source:
            stubs |= {
                n.name
                for n in ast.parse(source).body
                if isinstance(n, ast.FunctionDef) and "NotImplementedError" in ast.unparse(n)
            }
        names |= {name for _qid, name in STUB_CHECK.findall(source) if name in stubs}
    return names


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_a_graded_cell_first_asks_which_answers_are_left(path):
    """Each graded cell starts with ``answered(name=name, ...)``, before any assert, and the
    graded cells together name every answer the notebook checks."""
    graded = _graded_cells(path)
    assert graded, f"{path.name} has no graded cell"
    named: set[str] = set()
    for source in graded:
        body = ast.parse(source).body
        assert body, source
        first = body[0]
        assert (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Call)
            and isinstance(first.value.func, ast.Name)
            and first.value.func.id == "answered"
        ), f"{path.name}: a graded cell must start with answered(...):\n{source}"
        keywords = first.value.keywords
        assert keywords and not first.value.args, source
        for k in keywords:
            assert isinstance(k.value, ast.Name) and k.value.id == k.arg, (
                f"{path.name}: answered() takes each answer under its own name: {k.arg}="
            )
            named.add(k.arg)
    missing = _checked_stubs(path) - named
    assert not missing, f"{path.name}: the graded cells never ask about {sorted(missing)}"
