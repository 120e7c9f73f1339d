"""``make site`` and ``make lite`` replace their ``--out`` folder, so both refuse one that is not
their own build: the repository, a folder above it, the notebooks' folders, a file, or a folder
holding something else. The refusal comes before any work, and names ``--out``."""

from __future__ import annotations

from pathlib import Path

import pytest
from tool_loader import load_tool

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "build",
    [
        lambda out: load_tool("site").build(out),
        lambda out: load_tool("lite").build(out, offline=True),
    ],
    ids=["site", "lite"],
)
def test_out_must_be_a_folder_of_the_tools_own(tmp_path, build):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine", encoding="utf-8")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine", encoding="utf-8")
    for out in (a_file, busy, ROOT, ROOT / "notebooks", ROOT.parent):
        with pytest.raises(SystemExit, match="--out") as refused:
            build(out)
        assert str(out.resolve()) in str(refused.value), refused.value
    assert (busy / "keep.txt").read_text(encoding="utf-8") == "mine"
    assert a_file.read_text(encoding="utf-8") == "mine"


def test_a_previous_build_may_be_replaced(tmp_path):
    home = load_tool("home")
    for tool, marker in (("make site", ".buildinfo"), ("make lite", "jupyter-lite.json")):
        out = tmp_path / tool.split()[1]
        out.mkdir()
        (out / marker).write_text("", encoding="utf-8")
        (out / "index.html").write_text("", encoding="utf-8")
        home.check_out(out, tool, marker)  # no refusal
        home.check_out(tmp_path / "new", tool, marker)
