"""A reveal stays hidden until the learner opens it: stored collapsed, after its question."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tool_loader import load_tool

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


tool = load_tool("reveals")


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_reveal_is_stored_collapsed_after_its_question(path):
    nb = cells(path)
    reveals = [i for i, c in enumerate(nb) if tool.TAG in c.get("metadata", {}).get("tags", [])]
    assert reveals, f"{path.name} has no reveal"
    assert reveals == tool.reveal_cells(nb), "a prompt's answer is not marked (tools/reveals.py)"
    for i in reveals:
        cell = nb[i]
        assert cell["metadata"]["jupyter"]["outputs_hidden"] is True, (path.name, i)
        assert cell["outputs"], (path.name, i)  # stored, so nbval still checks it
        before = [c for c in nb[:i] if c["cell_type"] == "markdown"]
        assert before and any(tool.is_prompt(c) for c in before[-2:]), (path.name, i)


def test_the_reveals_the_course_was_faulted_for_are_hidden():
    for name, text in [
        ("04-iothreads-and-the-aiocontext-lock", "def one_slow_request"),
        ("06-fine-grained-locks", "writer wait after the drain"),
        ("07-removing-the-aiocontext-lock", "two = measure(VM(iothreads=4, num_queues=2))"),
    ]:
        nb = cells(ROOT / "notebooks" / f"{name}.ipynb")
        [cell] = [c for c in nb if text in "".join(c["source"]) and c["cell_type"] == "code"]
        assert cell["metadata"]["jupyter"]["outputs_hidden"] is True, name


def test_a_question_cell_is_not_a_reveal_but_the_cell_after_reveal_is():
    nb = [
        {"cell_type": "markdown", "source": ["**Predict** the value."]},
        {"cell_type": "code", "source": ["print(trace_table(r, reveal=False))"]},
        {"cell_type": "markdown", "source": ["Reveal:"]},
        {"cell_type": "code", "source": ["print(trace_table(r))"]},
        {"cell_type": "markdown", "source": ["## Predict, then reveal\n<details>x</details>"]},
        {"cell_type": "code", "source": ["print('exercises')"]},
    ]
    assert tool.reveal_cells(nb) == [3]


def test_the_tool_finds_nothing_to_change():
    assert tool.main(["--check"]) == 0


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_explanation_right_after_a_reveal_is_folded_too(path):
    """Scrolling past a collapsed reveal must not show its answer in the prose below it."""
    nb = cells(path)
    for i in tool.reveal_cells(nb):
        if i + 1 < len(nb) and nb[i + 1]["cell_type"] == "markdown":
            head = tool.answer_text(nb[i + 1])
            assert not head or (head.startswith("<details>") and head.endswith("</details>")), (
                path.name,
                i + 1,
                head[:80],
            )


def test_folding_keeps_the_heading_below_and_happens_once():
    text = ["At t = 50 it ran.\n", "\n", "## 4. Next\n", "Text"]
    cell = {"cell_type": "markdown", "source": text}
    tool.fold(cell)
    once = "".join(cell["source"])
    assert once.startswith(tool.FOLD_OPEN + "At t = 50 it ran.")
    assert once.endswith("</details>\n\n## 4. Next\nText")
    tool.fold(cell)
    assert "".join(cell["source"]) == once
