"""The glossary: every term the course uses, and each chapter links a term the first time it
uses it, so a beginner can look it up where they meet it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GLOSSARY = ROOT / "GLOSSARY.md"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ENTRY = re.compile(
    r"^### (?P<head>[^\n]+)\n<a id=\"(?P<anchor>[a-z0-9-]+)\"></a>\n(?P<body>.*?)(?=^##|\Z)",
    re.M | re.S,
)
LINK = re.compile(r"\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]*)\)")


def entries() -> dict[str, list[str]]:
    """anchor -> the forms of the term a chapter may use (the heading's, and its *Also* list)."""
    out = {}
    for m in ENTRY.finditer(GLOSSARY.read_text(encoding="utf-8")):
        head = m["head"]
        forms = [re.sub(r"\s*\(.*?\)", "", head).strip()]
        forms += re.findall(r"\((.*?)\)", head)
        also = re.search(r"\*Also: (.*?)\.", " ".join(m["body"].split()))
        if also:
            forms += [f.strip() for f in also.group(1).split(",")]
        out[m["anchor"]] = [f for f in forms if f]
    return out


def pattern(form: str) -> re.Pattern:
    """A form as a whole word (plurals too), in any case; acronyms and names (a capital after
    the first letter: BQL, vCPU, AioContext) only as written."""
    flags = 0 if any(c.isupper() for c in form[1:]) else re.I
    return re.compile(r"(?<![\w-])" + re.escape(form) + r"(?:s|es)?(?![\w-])", flags)


def prose(path: Path) -> str:
    """A chapter's markdown, in order, without headings, link targets or HTML tags' insides."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    text = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def first_use(text: str, forms: list[str]) -> re.Match | None:
    """The first place any form of a term stands in ``text``, outside link targets."""
    targets = [(m.start("target"), m.end("target")) for m in LINK.finditer(text)]
    best = None
    for form in forms:
        for m in pattern(form).finditer(text):
            if any(a <= m.start() < b for a, b in targets):
                continue
            if best is None or m.start() < best.start():
                best = m
            break
    return best


def test_the_glossary_has_its_terms_each_with_an_anchor_and_a_chapter():
    found = entries()
    assert len(found) >= 40
    text = GLOSSARY.read_text(encoding="utf-8")
    assert len(re.findall(r"<a id=", text)) == len(found)  # every anchor belongs to an entry
    for m in ENTRY.finditer(text):
        assert re.search(r"Chapter \d\.\*", m["body"]), m["head"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_each_term_is_linked_to_the_glossary_where_the_chapter_first_uses_it(path):
    text = prose(path)
    links = [(m.start(), m.end(), m["target"]) for m in LINK.finditer(text)]
    unlinked = []
    for anchor, forms in entries().items():
        use = first_use(text, forms)
        if use is None:
            continue
        inside = [t for a, b, t in links if a <= use.start() < b]
        if not any(t.endswith(f"GLOSSARY.md#{anchor}") for t in inside):
            line = text[: use.start()].count("\n") + 1
            unlinked.append(f"{anchor} ({use.group()!r}, prose line {line})")
    assert not unlinked, f"{path.name}: link the first use of: " + "; ".join(unlinked)


def test_the_link_checker_sees_a_linked_and_an_unlinked_first_use():
    forms = ["BQL"]
    linked = "The [BQL](../GLOSSARY.md#bql) is one lock. The BQL again."
    use = first_use(linked, forms)
    assert use is not None and linked[use.start() - 1] == "["
    plain = "The BQL is one lock, see [BQL](../GLOSSARY.md#bql)."
    use = first_use(plain, forms)
    assert use is not None and plain[use.start() - 1] == " "
    assert first_use("The IOThread's lock", ["thread"]) is None  # not part of another word
