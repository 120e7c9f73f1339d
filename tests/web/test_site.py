"""The course website (tools/site.py, ``make site``), built from the stored outputs into the
test's temporary folder, served on 127.0.0.1 and read in headless chromium with every request
that leaves the machine refused.

- Every chapter, every exercise notebook, the glossary and the sources page has its page, and no
  answer from solutions/ is published: no ``solutions`` path, no answer marker, and none of the
  answers themselves (each answer line long enough to be telling, that no chapter or exercise
  notebook also holds).
- Every page loads offline: no refused request, no error in the console, no uncaught error.
- Every saved widget renders, from the site's own widget scripts, as a visibly frozen snapshot:
  a banner above it says so, and links the chapter in the in-browser build (served beside the
  site under the same root) and on Binder; every control in it is disabled, and moving a slider
  changes nothing. Each notebook page also carries the two links under its title.
- ``--out`` refuses a folder that is not a site's, naming the parameter.

A screenshot of a chapter's first widget with sliders is saved in the test's folder, and its path
printed. The build's time and size are printed by site.py, never asserted. Missing tools skip
the tests with the reason (under CI they fail): `make web` installs them, `make browser` the
browser.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urljoin

import pytest
from conftest import need_module, need_npm, serve
from tool_loader import load_tool

ROOT = Path(__file__).resolve().parents[2]
WHAT = "the website test"
home = load_tool("home")
release = load_tool("release")

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# What the site marks (tools/site.py): the links under a page's title, the banner of a widget.
PAGE_BANNER = ".run-live"
SNAPSHOT_BANNER = ".widget-snapshot"
# ipywidgets 8 markup, as @jupyter-widgets/html-manager renders it.
RENDERED = ".widget-subarea"  # one per rendered widget view
SLIDER = ".widget-slider"
CONTROLS = "input, button, select, textarea"
SCREENSHOT_CHAPTER = "notebooks/02-vcpu-threads-and-the-bql.ipynb"
MIN_ANSWER = 30  # characters: an answer line shorter than this may occur anywhere by chance
PAGE_TIMEOUT = 60_000  # ms, a safety limit only
# Sphinx's typography ("smart quotes"), undone to compare a page's text with its source.
PLAIN_PUNCTUATION = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "--", "—": "---"})


def notebooks(folder: str) -> list[str]:
    return sorted(
        f"{folder}/{p.name}"
        for p in (ROOT / folder).glob("*.ipynb")
        if not p.name.endswith(".bak.ipynb")
    )


CHAPTERS = notebooks("notebooks")
EXERCISES = notebooks("exercises")


def page_of(notebook: str) -> str:
    return notebook.removesuffix(".ipynb") + ".html"


def saved_widgets(notebook: str) -> tuple[list[str], dict]:
    """The model ids of a notebook's saved widget views, in order, and its saved widget state."""
    nb = json.loads((ROOT / notebook).read_text(encoding="utf-8"))
    views = [
        output["data"][WIDGET_VIEW]["model_id"]
        for cell in nb["cells"]
        for output in cell.get("outputs", [])
        if WIDGET_VIEW in output.get("data", {})
    ]
    state = nb["metadata"].get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    return views, state


def sliders_under(model_id: str, state: dict) -> int:
    """How many slider widgets the saved view ``model_id`` shows, its children's included."""
    seen, todo, count = set(), [model_id], 0
    while todo:
        current = todo.pop()
        if current in seen or current not in state:
            continue
        seen.add(current)
        model = state[current]
        count += model["model_name"].endswith("SliderModel")
        todo += re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(model["state"]))
    return count


WIDGET_CHAPTERS = [c for c in CHAPTERS if saved_widgets(c)[0]]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built by tools/site.py into ``<tmp>/site`` (``<tmp>`` is the served root)."""
    need_module(WHAT, "jupyter_book")
    need_npm(WHAT, "@jupyter-widgets/html-manager")
    need_npm(WHAT, "requirejs")
    out = tmp_path_factory.mktemp("web-root") / "site"
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "site.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, f"tools/site.py failed:\n{done.stdout}\n{done.stderr[-5000:]}"
    print(done.stdout.strip().splitlines()[-1])
    return out


def banner_of(model_id: str) -> str:
    """The snapshot banner of the saved widget view ``model_id``."""
    return f'{SNAPSHOT_BANNER}[data-model-id="{model_id}"]'


def problems(log) -> list[str]:
    """The console's errors and the uncaught errors a page logged."""
    return [line for line in log.lines if line.startswith(("console.error", "page error"))]


def test_every_page_is_built(site):
    expected = [page_of(n) for n in CHAPTERS + EXERCISES] + [
        "index.html",
        "GLOSSARY.html",
        "docs/sources.html",
    ]
    assert CHAPTERS and EXERCISES
    missing = [page for page in expected if not (site / page).is_file()]
    assert missing == [], f"pages missing from {site}: {missing}"


def shown(notebook: str) -> str:
    """A notebook's cells and text outputs, as one text."""
    nb = json.loads((ROOT / notebook).read_text(encoding="utf-8"))
    parts = []
    for cell in nb["cells"]:
        parts.append("".join(cell["source"]))
        for output in cell.get("outputs", []):
            parts.append("".join(output.get("text", "")))
            for mime in ("text/plain", "text/html", "text/markdown"):
                parts.append("".join(output.get("data", {}).get(mime, "")))
    return "\n".join(parts)


def answers() -> list[str]:
    """The answer lines of solutions/ (code between the solution markers, prose between the
    answer comments) that no chapter and no exercise notebook holds."""
    public = " ".join(" ".join(shown(n).split()) for n in CHAPTERS + EXERCISES)
    found = []
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            source = "".join(cell["source"])
            for block in re.findall(
                r"### BEGIN SOLUTION\n(.*?)### END SOLUTION"
                r"|<!-- BEGIN SOLUTION -->(.*?)<!-- END SOLUTION -->",
                source,
                re.DOTALL,
            ):
                for line in "".join(block).splitlines():
                    line = " ".join(line.replace("`", "").replace("*", "").split())
                    if len(line) >= MIN_ANSWER and line not in public and "](" not in line:
                        found.append(line)
    return found


def test_no_answer_is_published(site):
    files = [p for p in site.rglob("*") if p.is_file()]
    assert not [p for p in site.rglob("*") if "solutions" in p.relative_to(site).parts]
    text = {}
    for path in files:
        if path.suffix in (".html", ".js", ".json", ".txt", ".ipynb", ".md"):
            raw = path.read_text(encoding="utf-8", errors="replace")
            words = html.unescape(re.sub(r"<[^>]+>", "", raw)).translate(PLAIN_PUNCTUATION)
            text[path] = " ".join(words.split())
            assert not [m for m in release.ANSWER_MARKERS if m in html.unescape(raw)], path
    secret = answers()
    assert len(secret) >= 10, "too few answer lines found in solutions/ to check the site with"
    leaked = [(str(p.relative_to(site)), a) for a in secret for p, t in text.items() if a in t]
    assert leaked == [], f"answers from solutions/ published on the site: {leaked[:10]}"


def test_every_page_loads_offline(site, offline_page, offline_log):
    pages = [page_of(n) for n in CHAPTERS + EXERCISES] + [
        "index.html",
        "GLOSSARY.html",
        "docs/sources.html",
        "exercises/README.html",
    ]
    with serve(site.parent) as base:
        for page in pages:
            offline_page.goto(f"{base}/site/{page}", wait_until="networkidle")
            notebook = page.removesuffix(".html") + ".ipynb"
            if notebook in WIDGET_CHAPTERS:  # the widgets load their parts after the page
                views = len(saved_widgets(notebook)[0])
                offline_page.wait_for_function(
                    f"n => document.querySelectorAll('{RENDERED}').length >= n",
                    arg=views,
                    timeout=PAGE_TIMEOUT,
                )
                offline_page.wait_for_load_state("networkidle")
            assert offline_page.title(), f"{page} has no title"
    assert offline_log.refused == [], f"requests that left the machine: {offline_log.refused}"
    assert problems(offline_log) == [], offline_log.text(60)


def check_links(page, notebook: str, base: str, where: str) -> None:
    """The run-it-live links under ``where`` lead to ``notebook`` in the in-browser build
    (beside the site, under the served root) and on Binder."""
    lite = page.locator(f"{where} a", has_text="in your browser")
    binder = page.locator(f"{where} a", has_text="on Binder")
    assert lite.count() == 1 and binder.count() == 1, f"{where}: the two links are missing"
    href = lite.get_attribute("href")
    assert href == home.lite_url(notebook, base="../../lite/")
    assert urljoin(page.url, href) == home.lite_url(notebook, base=f"{base}/lite/")
    assert binder.get_attribute("href") == home.binder_url(notebook)


@pytest.mark.parametrize("notebook", [CHAPTERS[0], EXERCISES[0]])
def test_a_notebook_page_links_it_live_under_its_title(site, offline_page, notebook):
    with serve(site.parent) as base:
        offline_page.goto(f"{base}/site/{page_of(notebook)}", wait_until="load")
        banner = offline_page.locator(PAGE_BANNER)
        assert banner.count() == 1
        assert banner.is_visible()
        # Under the title: the element after the page's heading.
        after_title = offline_page.evaluate(
            "() => document.querySelector('article h1').nextElementSibling.className"
        )
        assert PAGE_BANNER.removeprefix(".") in after_title.split()
        check_links(offline_page, notebook, base, PAGE_BANNER)


def test_saved_widgets_render_frozen_and_marked(site, offline_page, offline_log, tmp_path):
    assert WIDGET_CHAPTERS, "no chapter saves a widget: nothing to check"
    assert SCREENSHOT_CHAPTER in WIDGET_CHAPTERS
    sliders_seen = 0
    with serve(site.parent) as base:
        for chapter in WIDGET_CHAPTERS:
            views, state = saved_widgets(chapter)
            page = offline_page
            page.goto(f"{base}/site/{page_of(chapter)}", wait_until="networkidle")
            page.wait_for_function(
                f"n => document.querySelectorAll('{RENDERED}').length >= n",
                arg=len(views),
                timeout=PAGE_TIMEOUT,
            )
            rendered = page.locator(RENDERED)
            assert rendered.count() == len(views), chapter
            for index, model_id in enumerate(views):
                where = f"{chapter}, widget {index + 1}"
                widget = rendered.nth(index)
                # The banner sits just above the widget, in the same output.
                banner = page.locator(banner_of(model_id))
                assert banner.count() == 1, f"{where}: no snapshot banner"
                assert banner.is_visible(), f"{where}: the banner is hidden"
                assert "frozen" in banner.inner_text()
                assert banner.bounding_box()["y"] < widget.bounding_box()["y"], where
                check_links(page, chapter, base, banner_of(model_id))
                # Every control is disabled, and so is every slider.
                controls = widget.locator(CONTROLS)
                enabled = [
                    controls.nth(i).evaluate("e => e.outerHTML.slice(0, 120)")
                    for i in range(controls.count())
                    if controls.nth(i).is_enabled()
                ]
                assert enabled == [], f"{where}: controls left enabled: {enabled}"
                sliders = widget.locator(SLIDER)
                assert sliders.count() == sliders_under(model_id, state), where
                for i in range(sliders.count()):
                    slider = sliders.nth(i)
                    assert slider.locator(".noUi-target").get_attribute("disabled") is not None
                    assert slider.locator(".widget-readout").get_attribute("contenteditable") in (
                        "false",
                        None,
                    ), f"{where}: a slider's readout can be typed in"
                sliders_seen += sliders.count()
            if chapter == SCREENSHOT_CHAPTER:
                move_a_slider_and_see_nothing_change(page, chapter)
                # The first widget with sliders, from its banner down.
                pictured = next(m for m in views if sliders_under(m, state))
                page.locator(banner_of(pictured)).scroll_into_view_if_needed()
                page.evaluate("window.scrollBy(0, -120)")
                shot = tmp_path / f"site-{Path(chapter).stem}.png"
                page.screenshot(path=str(shot))
                print(f"screenshot: {shot}")
    assert sliders_seen > 0, "no slider rendered in any chapter"
    assert offline_log.refused == [], f"requests that left the machine: {offline_log.refused}"
    assert problems(offline_log) == [], offline_log.text(60)


def move_a_slider_and_see_nothing_change(page, chapter: str) -> None:
    """Drag a slider's handle and press keys on it: its value stays as saved."""
    slider = page.locator(f"{RENDERED} {SLIDER}").first
    readout = slider.locator(".widget-readout")
    handle = slider.locator(".noUi-handle")
    handle.scroll_into_view_if_needed()
    before = readout.inner_text(), handle.get_attribute("aria-valuenow")
    box = handle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + 200, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    handle.focus()
    for key in ("ArrowRight", "PageUp", "End"):
        page.keyboard.press(key)
    after = readout.inner_text(), handle.get_attribute("aria-valuenow")
    assert after == before, f"{chapter}: a frozen slider moved from {before} to {after}"


def test_a_page_that_would_fetch_from_elsewhere_is_found(tmp_path):
    site_tool = load_tool("site")
    (tmp_path / "ok.html").write_text(
        '<a href="https://mybinder.org/">a link fetches nothing</a>'
        '<link rel="next" href="https://example.org/">'
        '<script src="_static/local.js"></script>',
        encoding="utf-8",
    )
    (tmp_path / "cdn.html").write_text(
        '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>'
        '<link rel="stylesheet" href="//fonts.googleapis.com/css?family=Roboto">',
        encoding="utf-8",
    )
    (tmp_path / "font.css").write_text("@font-face { src: url(https://x.test/f.woff2) }")
    assert site_tool.external_loads(tmp_path) == [
        "cdn.html: https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js",
        "cdn.html: //fonts.googleapis.com/css?family=Roboto",
        "font.css: https://x.test/f.woff2",
    ]
