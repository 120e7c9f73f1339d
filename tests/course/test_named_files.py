"""Every file a notebook or a document names is in the repository.

A chapter that sends a learner to ``exercises/04-...ipynb`` or cites a document of the project
must name something the learner can open. Names of QEMU's own files (inside ``[qemu.git FILE @
hash]`` or ``[QEMU source: ...]`` citations) and addresses on the web are not the course's
files and are left out; so are bare file names without a folder (``busy.json``, which a cell
writes, or OSTEP's ``x86.py``), except notebooks and Markdown documents, which are always ours,
and templates such as ``notebooks/NN-name.ipynb``. A name is looked up from the repository's
root, from the naming file's folder, and from the folders a document speaks of by default
(``labsupport/`` for the package's modules, ``notebooks/``, ``exercises/``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(
    p
    for folder in ("notebooks", "solutions", "exercises")
    for p in (ROOT / folder).glob("*.ipynb")
    if not p.name.endswith(".bak.ipynb")
)
DOCUMENTS = sorted(
    p
    for p in [*ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md"), *(ROOT / "exercises").glob("*.md")]
)

#: a relative path with a known extension; the look-behind keeps parts of longer words out
NAME = re.compile(
    r"(?<![\w/.:~-])((?:\.\.?/)*[A-Za-z0-9_][\w.-]*(?:/[\w.-]+)*"
    r"\.(?:ipynb|md|py|ya?ml|toml|cfg|txt|json|sh|ini))(?![\w/])"
)
#: citations of QEMU's tree, whose file names are QEMU's, not the course's
QEMU_CITATION = re.compile(r"\[(?:qemu\.git|QEMU source:|QEMU-derived source:)[^\]]*\]")
URL = re.compile(r"https?://\S+")


def named_files(text: str) -> list[str]:
    """The course-file names in ``text``: with a folder, or a notebook or Markdown document."""
    text = URL.sub(" ", QEMU_CITATION.sub(" ", text))
    return [
        m.group(1)
        for m in NAME.finditer(text)
        if "/" in m.group(1) or m.group(1).endswith((".ipynb", ".md"))
    ]


def test_the_scanner_finds_course_names_and_skips_qemu_citations():
    text = (
        "see `exercises/04-x.ipynb` and [ch1](01-one-thread.ipynb); "
        '[qemu.git docs/multiple-iothreads.txt @ 5273a45e]; `save(r, "busy.json")`; '
        "https://example.org/a/b.md; `labsupport/loop.py`"
    )
    assert named_files(text) == [
        "exercises/04-x.ipynb",
        "01-one-thread.ipynb",
        "labsupport/loop.py",
    ]


#: the folders a bare name may be relative to, besides the naming file's own
BASES = (ROOT, ROOT / "labsupport", ROOT / "notebooks", ROOT / "exercises")


def _missing(path: Path, text: str) -> list[str]:
    return [
        name
        for name in named_files(text)
        if "NN" not in name
        and "..." not in name
        and not any((base / name).exists() for base in (*BASES, path.parent))
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_file_a_notebook_names_exists(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    missing = [
        (i, name)
        for i, cell in enumerate(cells)
        for name in _missing(path, "".join(cell["source"]))
    ]
    assert not missing, f"{path.name} names files that are not in the repository: {missing}"


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_a_document_names_exists(path):
    missing = _missing(path, path.read_text(encoding="utf-8"))
    assert not missing, f"{path.name} names files that are not in the repository: {missing}"


def test_a_missing_name_is_reported():
    assert _missing(ROOT / "notebooks" / "x.ipynb", "see `reference/qemu-history.md`") == [
        "reference/qemu-history.md"
    ]
