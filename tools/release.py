"""Write the student bundle: what a learner is handed, and nothing an instructor keeps back.

The bundle holds the chapters (``notebooks/``), the exercise notebooks (``exercises/``, stubs
in place of answers), the ``labsupport`` package, ``docs/`` and what installs them (README,
licence, ``environment.yml``, ``pyproject.toml``, ``requirements/``, ``postBuild``). It leaves
out ``solutions/``, the tests (hidden tests included), the benchmarks and the authors' tools.
Files are taken from git (what is committed), so scratch files and a learner's backups never
travel. Refuses to write a bundle in which an answer would survive.

Usage: ``python tools/release.py [DEST]`` (default ``dist/unlocking-qemu``; ``make release``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = (
    "notebooks/",
    "exercises/",
    "labsupport/",
    "docs/",
    "requirements/",
    "README.md",
    "GLOSSARY.md",
    "LICENSE",
    "environment.yml",
    "pyproject.toml",
    "postBuild",
)
#: Text that only an answer key holds: a bundle file containing one is refused.
ANSWER_MARKERS = ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS", "<!-- BEGIN SOLUTION -->")


def files(root: Path = ROOT) -> list[str]:
    """The committed files that go into the bundle."""
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return [f for f in listed if any(f == p or f.startswith(p) for p in INCLUDE)]


def leaks(dest: Path) -> list[str]:
    """Files of a bundle that would hand out an answer."""
    found = [str(p.relative_to(dest)) for p in dest.rglob("solutions") if p.is_dir()]
    for path in dest.rglob("*"):
        if path.is_file() and path.suffix in (".ipynb", ".py", ".md"):
            text = path.read_text(encoding="utf-8", errors="replace")
            if any(marker in text for marker in ANSWER_MARKERS):
                found.append(str(path.relative_to(dest)))
    return found


def build(dest: Path, root: Path = ROOT) -> list[str]:
    """Write the bundle to ``dest`` (replaced if it exists); return the files written."""
    if dest.exists():
        shutil.rmtree(dest)
    chosen = files(root)
    for name in chosen:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    bad = leaks(dest)
    if bad:
        shutil.rmtree(dest)
        raise SystemExit(f"release: refused, answers would be handed out in: {', '.join(bad)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dest", nargs="?", default=str(ROOT / "dist" / "unlocking-qemu"))
    args = ap.parse_args(argv)
    written = build(Path(args.dest))
    print(f"release: {len(written)} files in {args.dest} (no solutions, no tests)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
