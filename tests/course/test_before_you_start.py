"""README's "Before you start" gives each notebook the time the notebook itself opens with."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_readme_gives_each_notebook_the_time_its_opening_gives():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| (primer|\d) [^|]*\|[^|]*\| (\d+) min \|$", readme, re.M))
    assert len(rows) == len(NOTEBOOKS)
    for path in NOTEBOOKS:
        key = "primer" if "primer" in path.name else str(int(path.name[:2]))
        first = "".join(json.loads(path.read_text(encoding="utf-8"))["cells"][0]["source"])
        (minutes,) = re.findall(r"Time:\**\s*about (\d+) minutes", first)
        assert rows[key] == minutes, path.name
