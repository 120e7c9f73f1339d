"""Build the course website (``make site``): the chapters, the exercise notebooks, the glossary
and the sources page as one static site, rendered by jupyter-book 1.x (Sphinx) from the outputs
stored in the notebooks. Nothing is executed: each page shows its notebook as it was saved.

- The book's source is assembled from copies in a scratch folder; notebooks/ and exercises/ are
  only read, and solutions/ not even that. The front page is the README's opening followed by
  the list of chapters, made from their titles. A source in which an answer survives is
  refused, by the check the student bundle passes (tools/release.py).
- The site works offline. The widget scripts (``@jupyter-widgets/html-manager`` and
  ``requirejs``, from tools/web/package.json) are served from the site's own
  ``_static/widgets/``, and a build in which a page would load anything from elsewhere (a
  script, a stylesheet, a font, an image, MathJax) is refused, as is a widget library that only
  a CDN could supply.
- A saved widget is a snapshot with no kernel behind it: moving its slider would change
  nothing, and say nothing. So its controls are saved disabled, and a banner above each one
  says so and links the chapter live, in the in-browser build and on Binder; every notebook page
  carries the same two links under its title. The in-browser build (``make lite``, build/lite)
  is served beside the site (build/site) under one root, so its links are relative
  (tools/home.py makes both addresses).

Usage::

    python tools/site.py              # into build/site   (make site)
    python tools/site.py --out DIR    # somewhere else    (make site SITE_ARGS="--out DIR")

Then serve the folder above it with any static web server, e.g.
``python -m http.server -d build``, and open ``/site/``.
"""

from __future__ import annotations

import argparse
import copy
import html
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import home  # beside this file (tests load it through tests/tool_loader.py)
import release

ROOT = home.ROOT
NODE_MODULES = ROOT / "tools" / "web" / "node_modules"
MAKE_WEB = "install the web tools with `make web`"
HTML_MANAGER = NODE_MODULES / "@jupyter-widgets" / "html-manager" / "dist"
REQUIREJS = NODE_MODULES / "requirejs" / "require.js"
#: Runs between require.js and embed-amd.js. The widget modules fetch their fonts from beside
#: the address requirejs gives them, by default under the page's own folder: give them this
#: script's folder, where the fonts are.
WIDGET_PATHS = r"""// Where the widget modules, and so their fonts, are: beside this script.
(function () {
  var here = document.currentScript.src.replace(/\/[^\/]*$/, "");
  require.config({paths: {"@jupyter-widgets": here, "@jupyter-widgets/html-manager/dist": here}});
})();
"""
#: The scripts a page with saved widgets loads, in this order.
WIDGET_SCRIPTS = ("require.js", "widget-paths.js", "embed-amd.js")
WIDGET_FONTS = ("*.woff2", "*.woff")  # what browsers take from the fonts' lists of formats
WIDGET_FOLDER = "widgets"  # their folder in the site's _static/
ASSETS = "_assets"  # the source's folder of static files, the site's _static/
#: jupyter-book's extensions that would reach outside the site: live code (thebe), comments,
#: links into other projects' documentation.
UNUSED_EXTENSIONS = ("sphinx_thebe", "sphinx_comments", "sphinx.ext.intersphinx")
#: The widget libraries embed-amd.js carries; it would fetch any other from a CDN.
BUNDLED_WIDGET_MODULES = (
    "@jupyter-widgets/base",
    "@jupyter-widgets/controls",
    "@jupyter-widgets/output",
)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
#: The in-browser build's address from the site's root: the two are served side by side.
LITE_FROM_SITE = Path(os.path.relpath(home.LITE_OUT, home.SITE_OUT)).as_posix() + "/"
#: Classes of the two banners (the tests look for them).
PAGE_BANNER = "run-live"
SNAPSHOT_BANNER = "widget-snapshot"
STYLE = """\
/* The run-it-live links under a notebook's title, and the banner above each saved widget. */
.run-live, .widget-snapshot {
  border-left: 4px solid #d08700;
  background: #fff6e0;
  color: #3d2c00;
  padding: 0.45em 0.8em;
  margin: 0.6em 0;
  font-size: 0.92em;
}
.run-live a, .widget-snapshot a { font-weight: 600; }
html[data-theme="dark"] .run-live, html[data-theme="dark"] .widget-snapshot {
  background: #3a2d0c;
  color: #f5e6c4;
}
/* pydata-sphinx-theme's top bar only repeats the search and the sidebar buttons that
   sphinx-book-theme's article header already has: keep it for narrow screens only. */
@media (min-width: 960px) { #pst-header { display: none; } }
"""
#: ``<link rel=...>`` values that only name another page: the browser fetches nothing for them.
NAVIGATION_RELS = {"index", "search", "next", "prev", "canonical", "alternate", "author", "license"}


@dataclass(frozen=True)
class Notebook:
    """One notebook of the site: its path from the repository root, and what it is."""

    path: str  # e.g. notebooks/01-one-thread.ipynb
    kind: str  # "chapter" or "exercise notebook"

    @property
    def depth(self) -> int:
        """How many folders below the site's root its page is."""
        return self.path.count("/")

    def read(self) -> dict:
        return json.loads((ROOT / self.path).read_text(encoding="utf-8"))


def notebooks() -> list[Notebook]:
    """The chapters, then the exercise notebooks (never a learner's ``.bak.ipynb`` backup)."""
    found = []
    for folder, kind in (("notebooks", "chapter"), ("exercises", "exercise notebook")):
        for path in sorted((ROOT / folder).glob("*.ipynb")):
            if not path.name.endswith(".bak.ipynb"):
                found.append(Notebook(f"{folder}/{path.name}", kind))
    return found


def title(notebook: dict, fallback: str) -> str:
    """The notebook's first level-1 heading."""
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            found = re.search(r"^# (.+)$", "".join(cell["source"]), re.MULTILINE)
            if found:
                return found.group(1).strip()
    return fallback


def jupyter_anchor(heading: str) -> str:
    """A heading's anchor as JupyterLab makes it, its text with hyphens for spaces: the
    notebooks' own contents links use these."""
    return heading.replace(" ", "-")


def run_live(notebook: Notebook, depth: int) -> str:
    """Links to ``notebook`` live, in the in-browser build and on Binder, from a page
    ``depth`` folders below the site's root."""
    lite = home.lite_url(notebook.path, base="../" * depth + LITE_FROM_SITE)
    binder = home.binder_url(notebook.path)
    return (
        f'<a class="run-live-lite" href="{html.escape(lite)}">in your browser</a> · '
        f'<a class="run-live-binder" href="{html.escape(binder)}">on Binder</a>'
    )


def page_banner(notebook: Notebook) -> str:
    return (
        f'<div class="{PAGE_BANNER}">This page shows the {notebook.kind} as it was saved: '
        f"nothing runs here. Run it live: {run_live(notebook, notebook.depth)}.</div>"
    )


def snapshot_banner(notebook: Notebook, model_id: str) -> str:
    return (
        f'<div class="{SNAPSHOT_BANNER}" data-model-id="{html.escape(model_id)}">'
        "<strong>Saved snapshot:</strong> the controls below are frozen and do nothing here. "
        f"Run this {notebook.kind} live: {run_live(notebook, notebook.depth)}.</div>"
    )


def prepare(notebook: Notebook) -> dict:
    """The notebook as the site shows it: the run-it-live links under its title, a snapshot
    banner above each saved widget, and every saved control disabled."""
    nb = copy.deepcopy(notebook.read())
    cells = nb["cells"]
    banner = page_banner(notebook)
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and re.search(r"^# ", source, re.MULTILINE):
            cell["source"] = re.sub(
                r"^(# .*)$",
                lambda m: f"{m.group(1)}\n\n{banner}\n",
                source,
                count=1,
                flags=re.MULTILINE,
            )
            break
    else:
        cells.insert(0, {"cell_type": "markdown", "metadata": {}, "source": banner})
    for cell in cells:
        outputs = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view:
                outputs.append(
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {"text/html": snapshot_banner(notebook, view["model_id"])},
                    }
                )
            outputs.append(output)
        if "outputs" in cell:
            cell["outputs"] = outputs
    state = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for model_id, model in state.items():
        if model.get("model_module") not in BUNDLED_WIDGET_MODULES:
            raise SystemExit(
                f"make site: {notebook.path} saves a widget from {model.get('model_module')!r} "
                f"(model {model_id}), which the site's widget scripts do not carry: only a CDN "
                f"could supply it. The site serves {', '.join(BUNDLED_WIDGET_MODULES)}."
            )
        if "disabled" in model.get("state", {}):
            model["state"]["disabled"] = True
    return nb


def front_page(chapters: list[tuple[Notebook, str]], exercises: dict[str, Notebook]) -> str:
    """The README's opening (up to its first section), links to run the course live, and the
    chapters with their exercise notebooks."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    opening = re.split(r"^## ", readme, maxsplit=1, flags=re.MULTILINE)[0].rstrip()
    # badges are images from elsewhere (the Binder link is in the banner below instead)
    opening = re.sub(r"^\[!\[[^\]]*\]\([^)]*\)\]\([^)]*\)\n+", "", opening, flags=re.MULTILINE)
    first = chapters[0][0]
    lines = [
        opening,
        "",
        f'<div class="{PAGE_BANNER}">Run the course live, from its first notebook: '
        f"{run_live(first, 0)}.</div>",
        "",
        "## Chapters",
        "",
        "| chapter | exercises |",
        "| --- | --- |",
    ]
    for chapter, name in chapters:
        stem = Path(chapter.path).stem
        exercise = exercises.get(stem)
        link = f"[exercises]({exercise.path})" if exercise else ""
        lines.append(f"| [{name.replace('|', '-')}]({chapter.path}) | {link} |")
    lines += [
        "",
        "## Reference",
        "",
        "- [The glossary](GLOSSARY.md): every QEMU and concurrency term the course uses.",
        "- [The sources](docs/sources.md): every source the chapters cite, in one place.",
        "",
    ]
    return "\n".join(lines)


def assemble(source: Path) -> list[str]:
    """Write the book's source into ``source``: the prepared notebooks, the front page, the
    glossary, the sources page, the table of contents and the static files. Return the
    notebooks' paths."""
    import yaml  # jupyter-book's own dependency

    chosen = notebooks()
    titles = {}
    for notebook in chosen:
        nb = prepare(notebook)
        titles[notebook.path] = title(nb, Path(notebook.path).stem)
        target = source / notebook.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(nb, ensure_ascii=False, indent=1), encoding="utf-8")
    for name in ("GLOSSARY.md", "docs/sources.md", "exercises/README.md"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, source / name)
    chapters = [(n, titles[n.path]) for n in chosen if n.kind == "chapter"]
    exercises = {
        Path(n.path).stem.removesuffix("-exercises"): n
        for n in chosen
        if n.kind == "exercise notebook"
    }
    (source / "index.md").write_text(front_page(chapters, exercises), encoding="utf-8")

    # Not the source's _static/: jupyter-book would add every script there to every page.
    assets = source / ASSETS
    (assets / WIDGET_FOLDER).mkdir(parents=True)
    widgets = assets / WIDGET_FOLDER
    shutil.copyfile(REQUIREJS, widgets / "require.js")
    (widgets / "widget-paths.js").write_text(WIDGET_PATHS, encoding="utf-8")
    shutil.copyfile(HTML_MANAGER / "embed-amd.js", widgets / "embed-amd.js")
    for pattern in WIDGET_FONTS:
        for font in HTML_MANAGER.glob(pattern):
            shutil.copyfile(font, widgets / font.name)
    (assets / "site.css").write_text(STYLE, encoding="utf-8")

    def doc(path: str) -> dict:
        return {"file": path.rsplit(".", 1)[0]}

    toc = {
        "format": "jb-book",
        "root": "index",
        "parts": [
            {"caption": "Chapters", "chapters": [doc(c.path) for c, _ in chapters]},
            {
                "caption": "Exercises",
                "chapters": [
                    {
                        **doc("exercises/README.md"),
                        "sections": [doc(n.path) for n in exercises.values()],
                    }
                ],
            },
            {"caption": "Reference", "chapters": [doc("GLOSSARY.md"), doc("docs/sources.md")]},
        ],
    }
    (source / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False), encoding="utf-8")
    return [n.path for n in chosen]


def sphinx_config(source: Path) -> dict:
    """jupyter-book's Sphinx configuration for the book in ``source``, made offline."""
    from jupyter_book.config import get_final_config

    name = re.match(r"# (.+)", (ROOT / "README.md").read_text(encoding="utf-8")).group(1)
    book = {
        "title": name,
        "author": f"the {name} authors",
        "copyright": "",
        "only_build_toc_files": True,
        "execute": {"execute_notebooks": "off"},
        # No dollarmath: no page has mathematics, and MathJax would come from a CDN.
        "parse": {"myst_enable_extensions": ["colon_fence", "linkify", "tasklist"]},
        "html": {
            "use_repository_button": True,
            "home_page_in_navbar": True,
            "extra_footer": "Code under the MIT licence; prose and figures under CC BY 4.0.",
        },
        "launch_buttons": {"binderhub_url": "", "jupyterhub_url": "", "thebe": False},
        "repository": {"url": home.repository(), "branch": home.BRANCH},
    }
    config, _ = get_final_config(
        user_yaml=book,
        cli_config={
            "external_toc_path": (source / "_toc.yml").as_posix(),
            "latex_individualpages": False,
            "html_static_path": [ASSETS],
            "html_css_files": ["site.css"],
            "nb_ipywidgets_js": {f"{WIDGET_FOLDER}/{name}": {} for name in WIDGET_SCRIPTS},
            # No copy of a page's source to download: it would be the site's copy of the
            # notebook, with the banners and the frozen controls.
            "html_copy_source": False,
            "html_theme_options": {"use_download_button": False},
            # The theme's colour mode, said (an empty one is logged as an error on each page).
            "html_context": {"default_mode": "auto"},
            "html_show_sourcelink": False,
            # The notebooks' own contents links use JupyterLab's heading anchors.
            "myst_heading_anchors": 6,
            "myst_heading_slug_func": jupyter_anchor,
            # A fresh build each time: no saved environment, so an unpicklable setting is fine.
            "suppress_warnings": ["myst.domains", "config.cache"],
        },
        sourcedir=source,
        raise_on_invalid=True,
    )
    config["extensions"] = [e for e in config["extensions"] if e not in UNUSED_EXTENSIONS]
    config.pop("comments_config", None)
    return config


def explicit_anchors(app, doctree) -> None:
    """Count each ``<a id="x"></a>`` a page writes (the glossary does, under each term) as an
    anchor of its section, so that MyST resolves a link to ``page.md#x``."""
    from docutils import nodes

    slugs = app.env.metadata[app.env.docname].setdefault("myst_slugs", {})
    for raw in doctree.findall(nodes.raw):
        section = raw.parent
        while section is not None and not isinstance(section, nodes.section):
            section = section.parent
        for anchor in re.findall(r"<a\s+id=\"([^\"]+)\"", raw.astext()):
            if section is not None:
                slugs.setdefault(anchor, (section.line, section["ids"][0], section[0].astext()))


class _Relative(io.TextIOBase):
    """Sphinx's warnings, naming the repository's files rather than their scratch copies."""

    def __init__(self, prefix: str, stream) -> None:
        self.prefix, self.stream, self.warnings = prefix, stream, 0

    def write(self, text: str) -> int:
        self.warnings += text.count("WARNING:")
        return self.stream.write(text.replace(self.prefix, ""))


def run_sphinx(source: Path, html_dir: Path, doctrees: Path, *, quiet: bool) -> tuple[int, int]:
    """Build the book in ``source`` into ``html_dir``; Sphinx's status code, and how many
    warnings it gave."""
    from sphinx.application import Sphinx
    from sphinx.util.docutils import docutils_namespace, patch_docutils

    config = sphinx_config(source)
    warnings = _Relative(f"{source}{os.sep}", sys.stderr)
    with patch_docutils(None), docutils_namespace():
        app = Sphinx(
            srcdir=source,
            confdir=None,
            outdir=html_dir,
            doctreedir=doctrees,
            buildername="html",
            confoverrides=config,
            status=None if quiet else sys.stdout,
            warning=warnings,
            freshenv=True,
        )
        app.connect("doctree-read", explicit_anchors)
        app.build()
        return app.statuscode, warnings.warnings


class _Loads(HTMLParser):
    """The addresses a page makes the browser fetch: scripts, stylesheets, images, frames."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "link":
            rels = set((found.get("rel") or "").lower().split())
            if rels and rels <= NAVIGATION_RELS:
                return
            self.urls.append(found.get("href") or "")
        elif tag in ("script", "img", "iframe", "source", "video", "audio", "embed", "track"):
            self.urls.append(found.get("src") or "")
        elif tag == "object":
            self.urls.append(found.get("data") or "")


def remote(url: str) -> bool:
    return url.strip().lower().startswith(("http:", "https:", "//"))


def external_loads(site: Path) -> list[str]:
    """``page: address`` for everything a page or stylesheet of ``site`` fetches from
    elsewhere."""
    found = []
    for path in sorted(site.rglob("*")):
        if path.suffix == ".html":
            parser = _Loads()
            parser.feed(path.read_text(encoding="utf-8"))
            urls = parser.urls
        elif path.suffix == ".css":
            text = path.read_text(encoding="utf-8", errors="replace")
            urls = re.findall(r"""(?:url\(|@import\s+)\s*['"]?([^'")\s]+)""", text)
        else:
            continue
        found += [f"{path.relative_to(site)}: {url}" for url in urls if remote(url)]
    return found


def size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def build(out: Path, *, quiet: bool = True) -> dict:
    """Build the site into ``out`` (replaced); return what was built."""
    home.check_out(out, "make site", ".buildinfo")
    try:
        import jupyter_book  # noqa: F401
    except ImportError as error:
        raise SystemExit(
            f"make site: jupyter-book cannot be imported ({error}); {MAKE_WEB}"
        ) from None
    needed = (REQUIREJS, HTML_MANAGER / "embed-amd.js")
    absent = [str(p.relative_to(ROOT)) for p in needed if not p.is_file()]
    if absent:
        raise SystemExit(
            f"make site: the widget scripts are missing ({', '.join(absent)}); {MAKE_WEB}"
        )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="unlocking-qemu-site-") as scratch:
        source = Path(scratch) / "book"
        html_dir = Path(scratch) / "html"
        assembled = assemble(source)
        leaked = release.leaks(source)
        if leaked:
            raise SystemExit(f"make site: refused, answers would be published from: {leaked}")
        status, warnings = run_sphinx(source, html_dir, Path(scratch) / "doctrees", quiet=quiet)
        if status != 0:
            raise SystemExit(f"make site: jupyter-book failed ({status}); see its messages above")
        refused = external_loads(html_dir)
        if refused:
            raise SystemExit(
                "make site: refused, the site would fetch from outside itself:\n  "
                + "\n  ".join(refused)
            )
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(html_dir, out)
    return {
        "notebooks": assembled,
        "warnings": warnings,
        "pages": sum(1 for _ in out.rglob("*.html")),
        "bytes": size(out),
        "seconds": time.perf_counter() - started,
    }


def shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        default=home.SITE_OUT,
        help=f"the folder to build the site into, replaced (default: {shown(home.SITE_OUT)})",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show jupyter-book's progress messages"
    )
    args = parser.parse_args(argv)
    built = build(args.out, quiet=not args.verbose)
    warned = f" ({built['warnings']} warnings, above)" if built["warnings"] else ""
    print(
        f"{shown(args.out)}: {built['pages']} pages, {built['bytes'] / 1e6:.1f} MB, "
        f"built in {built['seconds']:.1f} s{warned}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
