"""The course in the browser with nothing installed: ``make lite --offline`` builds JupyterLite
with a local Pyodide, served here on 127.0.0.1 to a headless chromium that may fetch nothing
from anywhere else. Chapter 0 is then run cell by cell in the browser's Python: the install cell
takes the course's wheel from the build, the text cells print their trace tables and verdicts,
a cell that needs numpy or matplotlib (absent offline) says so in one line, and a slider moved
by the keyboard changes what its widget prints.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
from conftest import need_module, need_npm, serve
from tool_loader import load_tool

CHAPTER = "notebooks/00-toolkit.ipynb"
BOOT_TIMEOUT = 600  # s: Pyodide, then the kernel's own packages, on a busy 2-core machine
CELL_TIMEOUT = 300  # s: one cell (nbval allows 120 s in CPython; WebAssembly is slower)
POLL = 0.5

# Every cell of the open notebook: code or not, its prompt, its error outputs, its text.
CELLS_JS = """() => {
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  if (!nb) return null;
  return Array.from(nb.querySelectorAll('.jp-Cell')).map(c => ({
    code: c.classList.contains('jp-CodeCell'),
    prompt: (c.querySelector('.jp-InputPrompt') || {textContent: ''}).textContent.trim(),
    errors: Array.from(c.querySelectorAll(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
      .map(e => e.textContent),
    text: (c.querySelector('.jp-OutputArea') || {textContent: ''}).textContent,
  }));
}"""
STATUS_JS = """() => {
  const i = document.querySelector('.jp-Notebook-ExecutionIndicator');
  return i ? i.dataset.status : null;
}"""
SLIDER = ".jp-OutputArea-output .jupyter-widgets.widget-slider .noUi-handle"


@pytest.fixture
def service_workers() -> str:
    return "allow"  # the kernel syncs the notebook's folder through JupyterLite's service worker


@pytest.fixture(scope="module")
def lite_build(tmp_path_factory) -> tuple[Path, dict]:
    need_module("in-browser build", "jupyterlite_core")
    need_module("in-browser build", "jupyterlite_pyodide_kernel")
    need_npm("in-browser build", "pyodide")
    out = tmp_path_factory.mktemp("lite") / "lite"
    made = load_tool("lite").build(out, offline=True)
    print(f"\nlite build: {made}")
    return out, made


def test_the_offline_build_serves_pyodide_and_every_wheel_itself(lite_build):
    out, made = lite_build
    config = json.loads((out / "jupyter-lite.json").read_text())["jupyter-config-data"]
    kernel = config["litePluginSettings"]["@jupyterlite/pyodide-kernel-extension:kernel"]
    assert kernel["pyodideUrl"].startswith("./"), kernel
    assert kernel["disablePyPIFallback"] is True
    pyodide = out / kernel["pyodideUrl"]
    assert pyodide.is_file(), pyodide
    lock = json.loads((pyodide.parent / "pyodide-lock.json").read_text())["packages"]
    served = [e for e in lock.values() if (pyodide.parent / e["file_name"]).is_file()]
    names = {e["name"].lower().replace("_", "-") for e in served}
    for needed in ("micropip", "ipython", "simpy", "ipywidgets", "traitlets", "jedi"):
        assert needed in names, f"{needed} is not served with Pyodide: {sorted(names)}"
    for entry in served:
        data = (pyodide.parent / entry["file_name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["file_name"]
        for dep in entry["depends"]:
            assert dep in lock, f"{entry['name']} depends on {dep}, which the lock lacks"
    wheels = json.loads((out / "pypi" / "all.json").read_text())
    assert "unlocking-qemu" in wheels, sorted(wheels)
    chapter = json.loads((out / "files" / CHAPTER).read_text())
    first = "".join(chapter["cells"][0]["source"])
    assert "%pip install" in first and "unlocking-qemu" in first, first
    code = ["".join(c["source"]) for c in chapter["cells"] if c["cell_type"] == "code"]
    assert not any("import matplotlib" in c for c in code), "the offline copy imports matplotlib"
    assert made["notebooks"] == len(list(out.joinpath("files").rglob("*.ipynb")))


def cells(page) -> list[dict]:
    return page.evaluate(CELLS_JS) or []


def wait_for(page, what: str, ready, timeout: float, offline_log) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout} s; the page said:\n{offline_log.text()}")
        time.sleep(POLL)


def test_chapter_0_runs_in_the_browser_with_no_request_elsewhere(
    lite_build, offline_page, offline_log, tmp_path
):
    out, _ = lite_build
    page = offline_page
    page.set_default_timeout(120_000)
    with serve(out) as base:
        page.goto(f"{base}/lab/index.html?path={CHAPTER}")
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
        # the kernel is ready when the indicator has said idle on a few polls in a row
        idle = []

        def settled() -> bool:
            idle.append(page.evaluate(STATUS_JS) == "idle")
            return len(idle) > 6 and all(idle[-6:])

        wait_for(page, "the kernel did not start", settled, BOOT_TIMEOUT, offline_log)
        page.locator(".jp-NotebookPanel .jp-Cell").first.click()
        page.keyboard.press("Escape")  # command mode: Shift+Enter runs and moves on
        count = len(cells(page))
        for i in range(count):
            page.keyboard.press("Shift+Enter")
            if not cells(page)[i]["code"]:
                continue

            def done(i=i) -> bool:
                prompt = cells(page)[i]["prompt"]
                return prompt.startswith("[") and prompt[1:-2].isdigit()

            wait_for(page, f"cell {i} did not finish", done, CELL_TIMEOUT, offline_log)
        ran = cells(page)
        screenshot = tmp_path / "lite-chapter-0.png"
        page.screenshot(path=str(screenshot))
        print(f"\nscreenshot: {screenshot}")

        code = [c for c in ran if c["code"]]
        failed = [c for c in code if c["errors"]]
        print(f"{len(code) - len(failed)} of {len(code)} code cells ran cleanly; the others said:")
        for cell in failed:
            print("   ", " ".join(cell["errors"]).strip()[:160])
        for cell in failed:
            text = "\n".join(cell["errors"]).strip()
            assert text.startswith("Unavailable:") and "\n" not in text, (
                f"a cell failed with more than the one-line notice of a missing module:\n{text}"
            )
        clean = len(code) - len(failed)
        assert clean >= 0.6 * len(code), f"only {clean} of {len(code)} code cells ran cleanly"
        assert "Successfully installed" in ran[0]["text"] or not ran[0]["errors"], ran[0]
        everything = "\n".join(c["text"] for c in ran)
        assert "t(us)" in everything, "no trace table was printed"
        assert "lose at least one update" in everything, "the seed sweep printed nothing"

        # a widget: the first slider, moved by the keyboard, changes what it prints
        handle = page.locator(SLIDER).first
        assert handle.count(), "no slider was rendered"
        cell = handle.locator("xpath=ancestor::div[contains(@class,'jp-Cell')][1]")
        before = cell.locator(".jp-OutputArea").inner_text()
        handle.focus()
        for _ in range(3):
            page.keyboard.press("ArrowRight")
        wait_for(
            page,
            "the slider's output did not change",
            lambda: cell.locator(".jp-OutputArea").inner_text() != before,
            CELL_TIMEOUT,
            offline_log,
        )
    assert offline_log.refused == [], f"the page asked for: {offline_log.refused[:10]}"
