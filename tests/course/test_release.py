"""The student bundle holds the course and the exercises, and no answer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tool_loader import load_tool

ROOT = Path(__file__).resolve().parents[2]


tool = load_tool("release")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("release") / "unlocking-qemu"
    tool.build(dest)
    return dest


def test_the_bundle_has_the_course_and_the_exercises(bundle):
    for name in ("README.md", "environment.yml", "pyproject.toml", "labsupport/__init__.py"):
        assert (bundle / name).is_file(), name
    chapters = sorted(p.name for p in (bundle / "notebooks").glob("*.ipynb"))
    assert chapters == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    for path in (ROOT / "exercises").glob("*.ipynb"):
        assert (bundle / "exercises" / path.name).read_bytes() == path.read_bytes()


def test_the_bundle_has_no_solution_and_no_test(bundle):
    assert not (bundle / "solutions").exists() and not (bundle / "tests").exists()
    assert tool.leaks(bundle) == []
    for path in (bundle / "exercises").glob("*.ipynb"):
        text = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text, path.name


def test_the_package_imports_from_the_bundle(bundle):
    done = subprocess.run(
        [sys.executable, "-c", "import labsupport; print(labsupport.check.__name__)"],
        cwd=bundle,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout.strip() == "check", done.stderr[-2000:]


def test_a_bundle_that_would_hand_out_an_answer_is_refused(bundle, tmp_path):
    leaky = tmp_path / "leaky"
    (leaky / "exercises").mkdir(parents=True)
    (leaky / "exercises" / "x.py").write_text("### BEGIN SOLUTION\nanswer = 42\n")
    assert tool.leaks(leaky) == ["exercises/x.py"]
