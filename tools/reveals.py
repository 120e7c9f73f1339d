"""Mark the reveal cells of the chapter notebooks: stored with their outputs collapsed.

A chapter asks the learner to predict (a markdown cell with **Predict**, "Predict first",
"Reveal:" or a "Predict, then reveal" section without a <details> answer), and the next code
cell shows the answer. Its outputs are stored (nbval checks them) but collapsed (JupyterLab's
``jupyter.outputs_hidden``), so the answer stays hidden until the learner opens it; the cell is
tagged ``reveal``. A code cell that only shows the question (a table with ``reveal=False`` or
``show_time=False``) is not a reveal: the "Reveal:" cell after it is. The explanation that
follows a reveal (the markdown right after it, up to its first heading) is an answer too: it is
folded into a ``<details>`` block, so that scrolling on does not give it away.

Usage: ``python tools/reveals.py [--check]`` (``--check``: exit 1 if a notebook would change).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = re.compile(
    r"\*\*Predict|Predict first|(^|\n| )Reveal\b[^\n]*:\s*$|## \d+\. Predict, then reveal"
)
QUESTION = re.compile(r"reveal=False|show_time=False")
TAG = "reveal"


def is_prompt(cell: dict) -> bool:
    source = "".join(cell["source"])
    return (
        cell["cell_type"] == "markdown"
        and bool(PROMPT.search(source))
        and ("<details>" not in source)
    )


def reveal_cells(cells: list[dict]) -> list[int]:
    """The indices of the code cells that answer a prompt."""
    out = []
    for i, cell in enumerate(cells):
        if not is_prompt(cell):
            continue
        j = next((k for k in range(i + 1, len(cells)) if cells[k]["cell_type"] == "code"), None)
        if j is not None and not QUESTION.search("".join(cells[j]["source"])) and j not in out:
            out.append(j)
    return out


#: How the explanation after a reveal is folded.
FOLD_OPEN = "<details><summary>The answer, explained (open it after the reveal)</summary>\n\n"
FOLD_CLOSE = "\n\n</details>"


def answer_text(cell: dict) -> str:
    """The part of a markdown cell before its first heading."""
    return re.split(r"(?m)^#", "".join(cell["source"]), maxsplit=1)[0].strip()


def fold(cell: dict) -> None:
    """Fold ``cell``'s text before its first heading into a <details> block (once)."""
    source = "".join(cell["source"])
    head = answer_text(cell)
    if not head or head.startswith("<details>"):
        return
    rest = source[source.index(head) + len(head) :].lstrip("\n")
    text = FOLD_OPEN + head + FOLD_CLOSE + ("\n\n" + rest if rest else "")
    cell["source"] = text.splitlines(keepends=True)


def mark(nb: dict) -> dict:
    cells = nb["cells"]
    for i in reveal_cells(cells):
        meta = cells[i].setdefault("metadata", {})
        tags = meta.setdefault("tags", [])
        if TAG not in tags:
            tags.append(TAG)
        meta.setdefault("jupyter", {})["outputs_hidden"] = True
        if i + 1 < len(cells) and cells[i + 1]["cell_type"] == "markdown":
            fold(cells[i + 1])
    return nb


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    stale = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        text = path.read_text(encoding="utf-8")
        new = json.dumps(mark(json.loads(text)), indent=1, ensure_ascii=False) + "\n"
        if new != text:
            stale.append(path.name)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    verb = "would mark" if args.check else "marked"
    print(f"reveals: {verb} {', '.join(stale)}" if stale else "reveals: up to date")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
