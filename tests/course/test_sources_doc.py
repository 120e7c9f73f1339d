"""docs/sources.md lists every chapter's sources, and every cited list message has its ID."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tool_loader import load_tool

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sources():
    return load_tool("sources")


def test_docs_sources_md_is_up_to_date(sources):
    assert (ROOT / "docs" / "sources.md").read_text(encoding="utf-8") == sources.render(), (
        "docs/sources.md is out of date: run make sources"
    )


def test_every_chapter_has_a_sources_cell(sources):
    chapters = [p for p in sources.notebooks() if p.parent.name == "notebooks"]
    assert len(chapters) >= 9
    for path in chapters:
        assert sources._sources_cell(path), f"{path.name} has no Sources cell"


def test_every_cited_list_message_has_a_message_id(sources):
    cited = set()
    for folder in ("notebooks", "solutions"):
        for path in (ROOT / folder).glob("*.ipynb"):
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
            cited |= sources.cited_messages("\n".join("".join(c["source"]) for c in cells))
    assert len(cited) > 20
    assert [k for k in cited if not sources._known(k)] == []
    # and the check can fail
    assert not sources._known(("qemu-devel", "1999-01-01", "Nobody"))


def test_the_post_the_course_follows_is_cited_in_the_readme_chapter_0_and_the_sources():
    url = "http://blog.vmsplice.net/2024/01/qemu-aiocontext-removal-and-how-it-was.html"
    assert url in (ROOT / "docs" / "sources.md").read_text(encoding="utf-8")
    assert "QEMU AioContext removal and how it was done" in (ROOT / "README.md").read_text(
        encoding="utf-8"
    )
    cells = json.loads((ROOT / "notebooks" / "00-toolkit.ipynb").read_text(encoding="utf-8"))
    text = "\n".join("".join(c["source"]) for c in cells["cells"])
    assert url in text and "QEMU AioContext removal and how it was done" in text


def test_the_chapters_that_tell_the_lock_story_cite_the_post(sources):
    url = "http://blog.vmsplice.net/2024/01/qemu-aiocontext-removal-and-how-it-was.html"
    for stem in ("00", "02", "04", "05", "06", "07", "08"):
        (path,) = [
            p for p in (ROOT / "notebooks").glob(f"{stem}-*.ipynb") if "primer" not in p.name
        ]
        assert url in sources._sources_cell(path), f"{path.name} does not cite the post"


def test_every_relative_link_in_docs_sources_md_leads_to_a_file():
    import re

    text = (ROOT / "docs" / "sources.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\((?![a-z]+:|#)([^)\s#]+)", text)
    assert links, "docs/sources.md links no chapter"
    dead = [link for link in links if not (ROOT / "docs" / link).resolve().is_file()]
    assert not dead, f"links in docs/sources.md that lead nowhere: {dead}"
