"""Where the course lives, and the links made from it: one address, read from pyproject.toml's
``[project.urls] Repository``, behind the website's run-it-live links, the README's Binder badge
and the hub's nbgitpuller link, so moving the repository changes one line.

Printed for an instructor: ``python tools/home.py nbgitpuller https://hub.example.edu`` prints the
link to hand out for that hub (``--path`` opens another notebook than the primer).

The in-browser build (``make lite``) and the website (``make site``) are made to be served side
by side: ``build/site/`` and ``build/lite/`` under one root, so the website links to a chapter
in the browser build with a relative address.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parents[1]
BRANCH = "main"
BUILD = ROOT / "build"
SITE_OUT = BUILD / "site"
LITE_OUT = BUILD / "lite"


def check_out(out: Path, tool: str, marker: str) -> None:
    """Refuse an ``--out`` that ``tool`` (``make site``, ``make lite``) must not replace: the
    repository, a folder above it, the notebooks' folders, the home folder, a file, or a folder
    with something in it that is not one of its own builds (which hold ``marker``)."""
    out = out.resolve()
    protected = [ROOT, *(ROOT / name for name in ("notebooks", "exercises", "solutions"))]
    if out in protected or out in ROOT.parents or out == Path.home():
        raise SystemExit(f"{tool}: --out {out} would replace {out}; choose a folder of its own")
    if out.exists() and not out.is_dir():
        raise SystemExit(f"{tool}: --out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise SystemExit(
            f"{tool}: --out {out} is a folder that holds something else than a build of "
            f"{tool} (it has no {marker}); choose an empty or new folder"
        )


def repository() -> str:
    """The repository's address, e.g. ``https://github.com/OWNER/NAME``."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    found = re.search(r'^Repository\s*=\s*"([^"]+)"', text, re.MULTILINE)
    if not found:
        raise SystemExit('pyproject.toml has no [project.urls] Repository = "..." line')
    return found.group(1).rstrip("/")


def github_slug() -> str:
    """``OWNER/NAME`` of a GitHub repository address."""
    found = re.fullmatch(r"https://github\.com/([^/]+/[^/]+?)(?:\.git)?", repository())
    if not found:
        raise SystemExit(f"the Repository address {repository()!r} is not on github.com")
    return found.group(1)


def binder_url(path: str = "") -> str:
    """mybinder.org's address for the repository, opening ``path`` (e.g. a notebook) in
    JupyterLab; the README's badge and the website's links use it."""
    url = f"https://mybinder.org/v2/gh/{github_slug()}/{BRANCH}"
    return f"{url}?urlpath={quote('lab/tree/' + path, safe='')}" if path else url


def lite_url(path: str, *, base: str = "../lite/") -> str:
    """The in-browser build's address for ``path`` (relative to the repository root, e.g.
    ``notebooks/00-one-thread.ipynb``), from ``base``, the build's address."""
    return f"{base}lab/index.html?{urlencode({'path': path})}"


def nbgitpuller_url(hub: str, path: str = "notebooks/00-primer.ipynb") -> str:
    """The link an instructor hands out: the hub clones (or updates) the course into the
    learner's home and opens ``path`` in JupyterLab. ``hub`` is the hub's address."""
    folder = repository().rsplit("/", 1)[1]
    query = urlencode(
        {
            "repo": repository(),
            "branch": BRANCH,
            "urlpath": f"lab/tree/{folder}/{path}",
        }
    )
    return f"{hub.rstrip('/')}/hub/user-redirect/git-pull?{query}"


def main(argv: list[str] | None = None) -> int:
    """``nbgitpuller HUB [--path P]``: print the nbgitpuller link for the hub at ``HUB``."""
    parser = argparse.ArgumentParser(description="Print the course's links.")
    links = parser.add_subparsers(dest="link", required=True)
    puller = links.add_parser("nbgitpuller", help="the link that hands the course out on a hub")
    puller.add_argument("hub", help="the hub's address, e.g. https://hub.example.edu")
    puller.add_argument("--path", default="notebooks/00-primer.ipynb", help="the notebook to open")
    args = parser.parse_args(argv)
    print(nbgitpuller_url(args.hub, args.path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
