"""How a chapter opens, read from its notebook: the goals, the time it takes, the map of its
sections (whose links must reach real headings), and how many words of prose it has.

A chapter's first cell, after its title and story, says what the learner will learn (three to
five goals, a line each), about how long it takes, and a map with a link to each section. The
links use JupyterLab's heading anchors: the heading's text with each space made a ``-``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

#: The most words of prose (markdown cells, the Sources section included) a chapter may have.
PROSE_WORDS = 2000

_HEADING = re.compile(r"^(#{1,6})\s+(?P<text>.+?)\s*#*\s*$")
_FRAGMENT = re.compile(r"\]\(#(?P<id>[^)\s]+)\)")


@dataclass
class Opening:
    goals: list[str]
    minutes: int | None
    map_lines: list[str]
    map_targets: list[str]
    heading_ids: list[str]
    numbered_sections: list[str]  # the ids of the "## N. ..." headings
    prose_words: int


def markdown_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


def heading_id(text: str) -> str:
    """JupyterLab's anchor for a heading: its rendered text, spaces made ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link shows its text
    text = text.replace("`", "").replace("**", "").replace("*", "")
    return text.strip().replace(" ", "-")


def opening(path: Path) -> Opening:
    cells = markdown_cells(path)
    first = cells[0].splitlines()

    def block(label: str) -> list[str]:
        """The lines after the bold ``label`` line, up to the next blank line after them."""
        if f"**{label}**" not in first:
            return []
        out: list[str] = []
        for line in first[first.index(f"**{label}**") + 1 :]:
            if not line.strip():
                if out:
                    break
                continue
            out.append(line)
        return out

    goals = [line[2:] for line in block("What you will learn") if line.startswith("- ")]
    minutes = re.search(r"^\*\*Time:\*\* about (\d+) minutes\.$", cells[0], re.M)
    map_lines = block("Map")
    headings = [
        m for cell in cells for line in cell.splitlines() if (m := _HEADING.match(line.strip()))
    ]
    return Opening(
        goals=goals,
        minutes=int(minutes.group(1)) if minutes else None,
        map_lines=map_lines,
        map_targets=[m["id"] for line in map_lines for m in _FRAGMENT.finditer(line)],
        heading_ids=[heading_id(m["text"]) for m in headings],
        numbered_sections=[
            heading_id(m["text"])
            for m in headings
            if len(m.group(1)) == 2 and re.match(r"\d+\.", m["text"])
        ],
        prose_words=sum(len(cell.split()) for cell in cells),
    )


def problems(path: Path) -> list[str]:
    """What is wrong with how the chapter opens, in words; empty when nothing is."""
    o = opening(path)
    out = []
    if not 3 <= len(o.goals) <= 5:
        out.append(f"{len(o.goals)} goals under **What you will learn** (3 to 5)")
    if o.minutes is None:
        out.append("no '**Time:** about N minutes.' line")
    if not o.map_lines:
        out.append("no **Map**")
    out += [f"map link #{t} reaches no heading" for t in o.map_targets if t not in o.heading_ids]
    out += [f"section {s} is not in the map" for s in o.numbered_sections if s not in o.map_targets]
    if o.prose_words >= PROSE_WORDS:
        out.append(f"{o.prose_words} words of prose (fewer than {PROSE_WORDS})")
    return out
