"""An untouched exercise says "not answered yet", the same way for every question."""

from __future__ import annotations

import json
import re
from pathlib import Path

from labsupport import check

ROOT = Path(__file__).resolve().parents[2]
STUB_CHECK = re.compile(r'check\("(\d\.\d)", (\w+)\)')


def test_every_value_stub_is_not_answered_yet_without_a_traceback(capsys):
    """The exercises' top-level stubs are ``NAME = ...``: every question checked with ``...``
    says "not answered yet" and nothing else, and returns False."""
    stubs = 0
    for path in sorted((ROOT / "exercises").glob("*-exercises.ipynb")):
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
