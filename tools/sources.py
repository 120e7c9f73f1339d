"""Generate docs/sources.md: every source the course cites, chapter by chapter, in one place.

Each chapter notebook and each exercise notebook ends with a "Sources" cell; that cell is where
an author writes a source, once. This script collects those cells into ``docs/sources.md``,
after a short guide to the citation forms, and adds the Message-ID of every mailing-list
message the course cites, so that each one can be found in the list archives. ``--check`` exits
1 if the file is out of date (a test runs the same comparison).

Usage::

    python tools/sources.py            # rewrite docs/sources.md   (make sources)
    python tools/sources.py --check    # exit 1 if it would change
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "sources.md"

#: A mailing-list citation as the notebooks write it: [list, date, author, "subject"].
LIST_CITATION = re.compile(r"\[(qemu-devel|qemu-block), (\d{4}-\d{2}-\d{2}), ([^,\]]+?)[,(]")

#: The mailing-list messages the course cites, by list, date and author, with the subject as
#: sent and the Message-ID (look one up at https://lore.kernel.org/qemu-devel/<Message-ID>/ or
#: in the archives at https://lists.nongnu.org/archive/html/qemu-devel/ and .../qemu-block/).
MESSAGES = (
    ("qemu-devel", "2020-08-06", "Philippe Mathieu-Daudé",
     "[PATCH-for-5.2] exec: Remove MemoryRegion::global_locking field",
     "20200806150726.962-1-philmd@redhat.com"),
    ("qemu-devel", "2020-08-10", "Zhenyu Ye",
     "[PATCH v1 1/2] util: introduce aio_context_acquire_timeout",
     "20200810145246.1049-2-yezhenyu2@huawei.com"),
    ("qemu-devel", "2020-09-17", "Fam Zheng",
     "Re: [PATCH v1 0/2] Add timeout mechanism to qmp actions",
     "20200917160054.GA2453251@dev"),
    ("qemu-devel", "2020-10-30", "Philippe Mathieu-Daudé",
     "[RFC PATCH-for-5.2] exec: Remove dead code (CID 1432876)",
     "20201030153752.1557776-1-philmd@redhat.com"),
    ("qemu-block", "2020-12-03", "Kevin Wolf",
     "[PATCH 0/3] block: Fix block_resize deadlock with iothreads",
     "20201203172311.68232-1-kwolf@redhat.com"),
    ("qemu-block", "2020-12-03", "Kevin Wolf",
     "[PATCH 3/3] block: Fix deadlock in bdrv_co_yield_to_drain()",
     "20201203172311.68232-4-kwolf@redhat.com"),
    ("qemu-block", "2020-12-11", "Kevin Wolf", "[PULL 00/34] Block layer patches",
     "20201211170812.228643-1-kwolf@redhat.com"),
    ("qemu-block", "2022-12-07", "Kevin Wolf",
     "[PATCH 00/18] block: Introduce a block graph rwlock",
     "20221207131838.239125-1-kwolf@redhat.com"),
    ("qemu-block", "2022-12-12", "Kevin Wolf",
     "Re: [PATCH 00/18] block: Introduce a block graph rwlock",
     "Y5dhjKx4EdeOxJmQ@redhat.com"),
    ("qemu-devel", "2023-08-08", "Stefan Hajnoczi",
     "[PATCH 2/2] block: change reqs_lock to QemuMutex",
     "20230808155852.2745350-3-stefanha@redhat.com"),
    ("qemu-block", "2023-09-04", "Kevin Wolf", "[PULL 00/14] Block layer patches",
     "20230904143643.259916-1-kwolf@redhat.com"),
    ("qemu-devel", "2023-09-12", "Stefan Hajnoczi",
     "[PATCH v3 0/5] block-backend: process I/O in the current AioContext",
     "20230912231037.826804-1-stefanha@redhat.com"),
    ("qemu-devel", "2023-09-14", "Stefan Hajnoczi",
     "[PATCH 0/4] virtio-blk: prepare for the multi-queue block layer",
     "20230914140101.1065008-1-stefanha@redhat.com"),
    ("qemu-devel", "2023-09-14", "Akihiko Odaki",
     "Re: [PATCH v3 03/12] plugins: Check if vCPU is realized",
     "b354bac2-5bf6-404d-b3ce-4a7df3338a09@daynix.com"),
    ("qemu-devel", "2023-09-18", "Stefan Hajnoczi",
     "[PATCH v2 0/2] virtio-blk: add iothread-vq-mapping parameter",
     "20230918161604.1400051-1-stefanha@redhat.com"),
    ("qemu-devel", "2023-11-29", "Stefan Hajnoczi", "[PATCH 00/12] aio: remove AioContext lock",
     "20231129195553.942921-1-stefanha@redhat.com"),
    ("qemu-devel", "2023-11-29", "Stefan Hajnoczi",
     "[PATCH 03/12] aio: make aio_context_acquire()/aio_context_release() a no-op",
     "20231129195553.942921-4-stefanha@redhat.com"),
    ("qemu-devel", "2023-12-04", "Stefan Hajnoczi",
     "[PATCH v2 0/4] scsi: eliminate AioContext lock",
     "20231204164259.1515217-1-stefanha@redhat.com"),
    ("qemu-devel", "2023-12-05", "Stefan Hajnoczi", "[PATCH v2 00/14] aio: remove AioContext lock",
     "20231205182011.1976568-1-stefanha@redhat.com"),
    ("qemu-devel", "2023-12-12", "Stefan Hajnoczi",
     "[PATCH v2 0/5] Make Big QEMU Lock naming consistent",
     "20231212153905.631119-1-stefanha@redhat.com"),
    ("qemu-block", "2023-12-21", "Kevin Wolf",
     "[PULL 23/33] aio-wait: draw equivalence between AIO_WAIT_WHILE() and "
     "AIO_WAIT_WHILE_UNLOCKED()",
     "20231221212339.164439-24-kwolf@redhat.com"),
    ("qemu-devel", "2024-01-19", "Stefan Hajnoczi",
     "[PATCH 5/6] virtio-blk: tolerate failure to set BlockBackend AioContext",
     "20240119135748.270944-6-stefanha@redhat.com"),
    ("qemu-devel", "2024-01-19", "Stefan Hajnoczi",
     "[PATCH 6/6] virtio-blk: always set ioeventfd during startup",
     "20240119135748.270944-7-stefanha@redhat.com"),
    ("qemu-block", "2024-02-09", "Hanna Czenczek",
     "Re: [PATCH 0/2] block: Allow concurrent BB context changes",
     "272941d6-fb76-4c5c-968e-d441c7957646@redhat.com"),
    ("qemu-devel", "2025-03-11", "Stefan Hajnoczi",
     "[PATCH v2 07/13] virtio-scsi: perform TMFs in appropriate AioContexts",
     "20250311101145.1037388-8-stefanha@redhat.com"),
    ("qemu-devel", "2025-04-01", "Zhu Yangyang",
     "[PATCH v4 1/3] io/block: Refactoring the bdrv_drained_begin() function and implement a "
     "timeout mechanism.",
     "20250401130300.1457584-2-zoudongjie@huawei.com"),
    ("qemu-block", "2025-05-08", "Fiona Ebner",
     "[RFC 00/11] do not drain while holding the graph lock",
     "20250508140936.3344485-1-f.ebner@proxmox.com"),
    ("qemu-block", "2025-06-04", "Kevin Wolf", "[PULL 00/24] Block layer patches",
     "20250604175613.344113-1-kwolf@redhat.com"),
)  # fmt: skip

HEADER = """\
# Sources

Every fact about QEMU in this course comes with its source, in the "Sources" cell at the end of
the chapter or exercise notebook that states it. This page collects those cells, chapter by
chapter; it is generated from them by `tools/sources.py` (`make sources`), so edit the
notebooks, not this page.

The story the chapters follow is Stefan Hajnoczi's post "QEMU AioContext removal and how it was
done" (his blog, 2 January 2024):
http://blog.vmsplice.net/2024/01/qemu-aiocontext-removal-and-how-it-was.html. Its conclusion,
which chapter 8 comes back to: after the removal the code is about as complex as before, the
BQL is still widely used, and what was gained is fewer undocumented locking assumptions.

## How the sources are written

- `[qemu.git PATH @ abcd1234]`: the file PATH in QEMU's Git repository (GitHub mirror
  `qemu/qemu`) at the commit whose hash starts with `abcd1234`.
- `[qemu-devel, DATE, AUTHOR, "SUBJECT"]` (or `qemu-block`): a message on a QEMU mailing list;
  its Message-ID is in the table at the end of this page.
- `[QEMU source: FILE, c. YEAR version]`: an older copy of a QEMU source file that carries no
  commit hash; the year is estimated from its contents. `[QEMU-derived source: ...]`: the same,
  from a downstream fork (the Android emulator's copy of QEMU), which may differ from QEMU.
- A commit named by a short hash (`195801d700c0`) is a commit of QEMU's repository.
- Addresses (`https://...`) are public pages: blog posts, talks, commit views in Git mirrors.
- "(derived)" marks this course's own inference from cited rules; "(unverified)" marks a claim
  the cited sources do not settle. Every number a chapter prints is its simulation's, not a
  measurement of QEMU, unless a source is given for it.
"""


def _sources_cell(path: Path) -> str | None:
    """The text of a notebook's Sources section: from its "## Sources" heading to the end of
    that cell, without the heading and without a closing "**Next:**" line."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"])
        at = text.find("## Sources")
        if at < 0:
            continue
        body = text[at + len("## Sources") :].strip("\n")
        lines = [line for line in body.splitlines() if not line.startswith("**Next:**")]
        return "\n".join(lines).strip()
    return None


def _title(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    first = "".join(cells[0]["source"]).splitlines()[0]
    return first.lstrip("# ").strip()


def notebooks() -> list[Path]:
    """Each chapter followed by its exercises, in chapter order."""
    out: list[Path] = []
    for chapter in sorted((ROOT / "notebooks").glob("*.ipynb")):
        out.append(chapter)
        exercises = ROOT / "solutions" / f"{chapter.stem}-exercises.ipynb"
        if exercises.exists():
            out.append(exercises)
    return out


def cited_messages(text: str) -> set[tuple[str, str, str]]:
    """(list, date, author) of every mailing-list citation in ``text``."""
    return {(m[1], m[2], m[3].strip()) for m in LIST_CITATION.finditer(text)}


def _known(key: tuple[str, str, str]) -> bool:
    lst, date, author = key
    return any(m[0] == lst and m[1] == date and author.startswith(m[2]) for m in MESSAGES)


def _links_from_docs(body: str, path: Path) -> str:
    """``body`` with its relative links (``[chapter 0](00-toolkit.ipynb)``), written for the
    notebook's own folder, made to work from docs/ (a solutions notebook is handed out in
    exercises/)."""
    folder = "exercises" if path.parent.name == "solutions" else path.parent.name
    return re.sub(r"\]\((?![a-z]+:|#|/|\.\./)([^)\s]+)\)", rf"](../{folder}/\1)", body)


def render() -> str:
    parts = [HEADER]
    cited: set[tuple[str, str, str]] = set()
    for path in notebooks():
        body = _sources_cell(path)
        if body is None:
            continue
        cited |= cited_messages(body)
        rel = path.relative_to(ROOT).as_posix()
        parts.append(f"## {_title(path)}\n\n(`{rel}`)\n\n{_links_from_docs(body, path)}\n")
    unknown = sorted(k for k in cited if not _known(k))
    if unknown:
        raise SystemExit(f"no Message-ID is recorded for these cited messages: {unknown}")
    rows = [
        "## Mailing-list messages\n",
        "| date | list | author | subject as sent | Message-ID |",
        "| --- | --- | --- | --- | --- |",
    ]
    for lst, date, author, subject, mid in sorted(MESSAGES, key=lambda m: (m[1], m[0], m[4])):
        rows.append(f"| {date} | {lst} | {author} | {subject} | `{mid}` |")
    parts.append("\n".join(rows) + "\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/sources.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print("docs/sources.md is out of date: run make sources", file=sys.stderr)
            return 1
        print("docs/sources.md: up to date")
        return 0
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
