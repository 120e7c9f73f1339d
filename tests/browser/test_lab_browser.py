"""Acceptance test: a person can use a chapter in JupyterLab, in a real browser.

What a learner does, done by headless chromium through Playwright against the server `make lab`
starts (tools/lab.py): open the chapter (JupyterLab must not ask whether to fetch its news:
tools/lab.py turns the question off), clear the stored
outputs, Run > Run All Cells, wait until the kernel has really finished, move the first slider
with the keyboard and see the widget's printed output change; then play the chapter's "be the
scheduler" level by clicking the threads' buttons until it says the goal is reached. Before
the run, one hidden reveal (an answer stored collapsed) is opened by clicking it. Every cell
must run without an error, and the notebook file must be left as it was.

A full-page screenshot is saved to .scratch/artifacts/browser/<notebook>.png whether the test
passes or fails. The browser and playwright come from `make browser`; without them the test is
skipped with the reason (under CI it fails instead), see conftest.py.
"""

from __future__ import annotations

import json
import time
import urllib.error
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The chapter under test: chapter 2 once it exists (the first chapter built around vCPU sliders),
# until then chapter 0, whose counter_lab() widget has the IntSliders "seed" and "threads".
_CHAPTER_2 = "notebooks/02-vcpu-threads-and-the-bql.ipynb"
NOTEBOOK = _CHAPTER_2 if (ROOT / _CHAPTER_2).is_file() else "notebooks/00-toolkit.ipynb"
ARTIFACTS = ROOT / ".scratch" / "artifacts" / "browser"

LOAD_TIMEOUT = 60  # s: JupyterLab's page, the notebook and its kernel
RUN_TIMEOUT = 120  # s: Run All Cells until the kernel is really idle (nbval allows 120 s a cell)
WIDGET_TIMEOUT = 60  # s: a slider move until the widget has printed its new output
STALL = 5  # s: idle with cells left unrun this long means the run stopped at an error
SETTLE_POLLS = 3  # the "finished" state must hold on this many polls in a row ...
POLL = 0.25  # ... this many seconds apart
ARROW_PRESSES = 3

# JupyterLab 4.6 and ipywidgets 8 markup.
NOTEBOOK_CELLS = ".jp-NotebookPanel .jp-Notebook .jp-Cell"
# An ipywidgets slider rendered in a cell's output (IntSlider, FloatSlider, ...).
SLIDER = ".jp-Notebook .jp-OutputArea-output .jupyter-widgets:is(.widget-slider, .widget-hslider)"
HANDLE = ".noUi-handle"  # ipywidgets 8 sliders are noUiSlider; the handle takes the keyboard
NEWS_TOAST = ".Toastify__toast"  # JupyterLab's notifications; the news question is one of them

# The open notebook as the page shows it. The execution indicator in the notebook's toolbar
# carries the kernel status in data-status ("idle", "busy", "starting", ...); a code cell's
# prompt reads "[ ]:" before it runs, "[*]:" while queued or running, "[12]:" once run.
NOTEBOOK_STATE_JS = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const nb = panel && panel.querySelector('.jp-Notebook');
  if (!nb) return null;
  const prompts = Array.from(nb.querySelectorAll('.jp-CodeCell .jp-InputPrompt'))
    .map(e => e.textContent.trim());
  const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator')
    || document.querySelector('.jp-Notebook-ExecutionIndicator');
  const dialog = document.querySelector('.jp-Dialog');
  return {
    status: indicator ? indicator.dataset.status : null,
    running: prompts.filter(p => p.includes('*')).length,
    executed: prompts.filter(p => /^\\[\\d+\\]/.test(p)).length,
    cleared: prompts.every(p => !/\\d|\\*/.test(p)),
    errors: Array.from(nb.querySelectorAll(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
      .map(e => e.textContent.slice(0, 2000)),
    dialog: dialog ? dialog.textContent.slice(0, 500) : null,
  };
}"""

# The text a slider's widget printed. For interact/interactive (and any widget box holding an
# Output widget) that is the Output widgets in the nearest box around the slider; otherwise the
# slider's cell output, less the sliders' own labels and readouts, which move with the slider.
WIDGET_TEXT_JS = """(slider) => {
  const cell = slider.closest('.jp-Cell');
  for (let box = slider.parentElement; box && box !== cell; box = box.parentElement) {
    const outputs = box.querySelectorAll('.widget-output');
    if (box.classList.contains('jupyter-widgets') && outputs.length)
      return Array.from(outputs).map(e => e.textContent).join('\\n').trim();
  }
  const area = cell.querySelector('.jp-OutputArea').cloneNode(true);
  area.querySelectorAll('.widget-slider, .widget-hslider, .widget-label, .widget-readout')
    .forEach(e => e.remove());
  return area.textContent.trim();
}"""


def code_cells_to_run(path: Path) -> int:
    """Code cells with some code: JupyterLab numbers these when it runs them (not empty ones)."""
    cells = json.loads(path.read_text())["cells"]
    return sum(1 for c in cells if c["cell_type"] == "code" and "".join(c["source"]).strip())


def menu(page, label: str, command: str) -> None:
    """Click a menu bar entry, then the menu item that runs ``command``."""
    page.locator(".lm-MenuBar-item", has=page.get_by_text(label, exact=True)).click()
    page.locator(f'.lm-Menu .lm-Menu-item[data-command="{command}"]').click()


def kernels_idle(server) -> bool:
    """The server's word: every kernel it runs reports execution_state "idle"."""
    try:
        kernels = server.api("/api/kernels")
    except (OSError, urllib.error.URLError, ValueError):
        return False
    return bool(kernels) and all(k.get("execution_state") == "idle" for k in kernels)


def notebook_state(page) -> dict:
    return page.evaluate(NOTEBOOK_STATE_JS) or {}


def describe(state: dict, server, page_log) -> str:
    errors = "\n---\n".join(state.get("errors") or []) or "(none)"
    return (
        f"notebook state: status={state.get('status')}, running={state.get('running')}, "
        f"executed={state.get('executed')}, dialog={state.get('dialog')!r}\n"
        f"stderr outputs:\n{errors}\n"
        f"browser log:\n{page_log.text()}\n"
        f"server log (end):\n{server.log_tail(2000)}"
    )


def wait_until_idle(page, server, page_log, expected: int, timeout: float) -> dict:
    """Wait until the kernel has really finished running the notebook.

    The label alone is not enough: it reads "idle" before a queued run starts and between cells.
    Finished means all of these, on SETTLE_POLLS polls in a row: the toolbar's indicator says
    idle, no prompt shows [*], every cell with code has an execution number, and the server
    reports every kernel idle. Idle with cells left unrun for STALL s means a cell raised (Run
    All stops there): that fails at once, with the cell's error output.
    """
    deadline = time.monotonic() + timeout
    settled, stalled_since, state = 0, None, {}
    while time.monotonic() < deadline:
        state = notebook_state(page)
        if state.get("dialog"):
            pytest.fail(f"JupyterLab shows a dialog:\n{describe(state, server, page_log)}")
        quiet = state.get("status") == "idle" and state.get("running") == 0
        if quiet and state.get("executed", 0) >= expected and kernels_idle(server):
            settled += 1
            if settled >= SETTLE_POLLS:
                return state
        else:
            settled = 0
        if quiet and 0 < state.get("executed", 0) < expected:
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > STALL:
                pytest.fail(
                    f"the run stopped after {state['executed']} of {expected} cells:\n"
                    f"{describe(state, server, page_log)}"
                )
        else:
            stalled_since = None
        time.sleep(POLL)
    pytest.fail(
        f"the kernel was not idle with all {expected} cells run within {timeout} s:\n"
        f"{describe(state, server, page_log)}"
    )


def answer_news_question(page_or_toast) -> None:
    """JupyterLab asks whether to fetch Jupyter news; answer No (the course works offline).

    Best effort and quick: a dialog over the page (which the test reports) may block the click.
    """
    toast = page_or_toast
    if hasattr(page_or_toast, "goto"):  # a page: find the question, if it is showing
        toast = page_or_toast.locator(NEWS_TOAST).filter(has_text="news")
    try:
        if toast.count() and toast.first.is_visible():
            toast.first.get_by_role("button", name="No", exact=True).click(timeout=5000)
    except Exception as error:  # reported, never fatal on its own
        print(f"could not answer JupyterLab's news question: {error}")


def save_screenshot(page, path: Path, slider) -> None:
    """Full-page screenshot, with the slider's cell in view when there is one."""
    try:
        answer_news_question(page)
        if slider is not None and slider.count():
            slider.scroll_into_view_if_needed(timeout=5000)
        page.screenshot(path=str(path), full_page=True, timeout=15000)
        print(f"screenshot: {path}")
    except Exception as error:  # a failed screenshot must not hide the test's own failure
        print(f"could not save the screenshot {path}: {error}")


def reveal_cell_index(path: Path) -> int:
    """The index of the notebook's first cell tagged ``reveal`` (its output stored hidden)."""
    cells = json.loads(path.read_text())["cells"]
    return next(i for i, c in enumerate(cells) if "reveal" in c["metadata"].get("tags", []))


def winning_schedule() -> str:
    """A schedule that wins chapter 2's level, as the kernel's own explorer finds it."""
    from labsupport.chapters.ch02.widgets import scheduler_level
    from labsupport.stepper import Stepper

    return Stepper(scheduler_level()).shortest()


def play_level_by_clicking(page, server, page_log, expected: int) -> str:
    """Click the level's thread buttons in the order of a winning schedule, each time waiting
    for the widget to show the schedule so far; return the widget's final text."""
    cell = page.locator(NOTEBOOK_CELLS).filter(has_text="scheduler_lab()").first
    assert cell.count(), f"no cell runs scheduler_lab() in {NOTEBOOK}"
    output = cell.locator(".jp-OutputArea-output pre").first
    schedule = winning_schedule()
    for k, char in enumerate(schedule):
        button = cell.locator("button", has_text=f"({char})").first
        button.scroll_into_view_if_needed()
        button.click()
        done = schedule[: k + 1]
        deadline = time.monotonic() + WIDGET_TIMEOUT
        shown = (f"schedule {done!r}", f"schedule: {done!r}")  # at a choice; at the end
        while not any(text in output.inner_text() for text in shown):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the level did not show schedule {done!r} within {WIDGET_TIMEOUT} s of "
                    f"the click:\n{output.inner_text()}\n"
                    f"{describe(notebook_state(page), server, page_log)}"
                )
            time.sleep(POLL)
    wait_until_idle(page, server, page_log, expected, WIDGET_TIMEOUT)
    return output.inner_text()


def open_a_reveal(page, index: int) -> str:
    """Click the collapsed output of cell ``index`` open; return the text it then shows."""
    cell = page.locator(NOTEBOOK_CELLS).nth(index)
    cell.scroll_into_view_if_needed()
    area = cell.locator(".jp-OutputArea")
    assert not area.is_visible(), "a reveal's output is shown before it is opened"
    cell.locator(".jp-OutputPlaceholder").click()
    area.wait_for(state="visible", timeout=WIDGET_TIMEOUT * 1000)
    return area.inner_text()


def test_a_person_can_run_the_notebook_and_move_a_slider(lab_server, page, page_log):
    path = ROOT / NOTEBOOK
    assert path.is_file(), f"{NOTEBOOK} does not exist"
    original = path.read_bytes()
    expected = code_cells_to_run(path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / f"{path.stem}.png"
    page.set_default_timeout(LOAD_TIMEOUT * 1000)
    slider = None
    started = time.monotonic()
    try:
        # The news question must not show (tools/lab.py turns it off); if it ever shows over the
        # notebook before a click or key press, it is answered, so that the rest of the test
        # can go on, and counted, so that the test fails at the end.
        news = page.locator(NEWS_TOAST).filter(has_text="news")
        asked = []

        def news_question(toast) -> None:
            asked.append(True)
            answer_news_question(toast)

        page.add_locator_handler(news, news_question, no_wait_after=True)
        page.goto(lab_server.url(f"/lab/tree/{NOTEBOOK}"))

        # Wait for: the notebook's cells in the page (or a dialog, such as "Cannot open", which
        # fails at once), then its kernel started and connected (indicator idle, and the server
        # lists an idle kernel).
        page.wait_for_selector(f"{NOTEBOOK_CELLS}, .jp-Dialog", state="attached")
        if page.locator(".jp-Dialog").count():
            pytest.fail(f"JupyterLab shows a dialog:\n{page.locator('.jp-Dialog').inner_text()}")
        deadline = time.monotonic() + LOAD_TIMEOUT
        while not (notebook_state(page).get("status") == "idle" and kernels_idle(lab_server)):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the kernel did not start within {LOAD_TIMEOUT} s:\n"
                    f"{describe(notebook_state(page), lab_server, page_log)}"
                )
            time.sleep(POLL)

        # A reveal is stored collapsed: as opened, it shows its answer only when clicked open.
        # (Clearing every output below shows every output area again, as JupyterLab does.)
        revealed = open_a_reveal(page, reveal_cell_index(path))
        assert "t(us)" in revealed, revealed

        # The notebook is stored with its outputs and execution numbers; clear them first, so
        # that every number and output seen afterwards comes from this run.
        # Wait for: every prompt back to "[ ]".
        menu(page, "Edit", "editmenu:clear-all")
        page.wait_for_function(f"() => ({NOTEBOOK_STATE_JS})().cleared")

        menu(page, "Run", "runmenu:run-all")
        wait_until_idle(page, lab_server, page_log, expected, RUN_TIMEOUT)
        ran_all = time.monotonic()

        # The first slider in the notebook's outputs, and the text its widget printed.
        slider = page.locator(SLIDER).first
        assert slider.count(), (
            f"no ipywidgets slider in the outputs of {NOTEBOOK}:\n"
            f"{describe(notebook_state(page), lab_server, page_log)}"
        )
        handle = slider.locator(HANDLE)
        before = slider.evaluate(WIDGET_TEXT_JS)
        value_before = float(handle.get_attribute("aria-valuenow"))
        assert before, f"the slider's widget printed nothing after Run All:\n{slider.inner_html()}"

        # As a person would with the keyboard: focus the handle, press the right arrow (the left
        # one if the slider is already at its maximum).
        at_max = value_before >= float(handle.get_attribute("aria-valuemax"))
        key = "ArrowLeft" if at_max else "ArrowRight"
        handle.scroll_into_view_if_needed()
        handle.focus()
        for _ in range(ARROW_PRESSES):
            handle.press(key)

        # Wait for: the printed text to change (the kernel re-ran the widget's callback), and
        # then the kernel to be really idle again, so the text read below is the final one.
        deadline = time.monotonic() + WIDGET_TIMEOUT
        while slider.evaluate(WIDGET_TEXT_JS) in (before, ""):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the widget's output did not change within {WIDGET_TIMEOUT} s of moving "
                    f"the slider (aria-valuenow {handle.get_attribute('aria-valuenow')}):\n"
                    f"{describe(notebook_state(page), lab_server, page_log)}"
                )
            time.sleep(POLL)
        wait_until_idle(page, lab_server, page_log, expected, WIDGET_TIMEOUT)
        after = slider.evaluate(WIDGET_TEXT_JS)
        value_after = float(handle.get_attribute("aria-valuenow"))

        assert (value_after < value_before) if at_max else (value_after > value_before), (
            f"{key} x{ARROW_PRESSES} did not move the slider: {value_before:g} -> {value_after:g}"
        )
        assert after and after != before

        # Be the scheduler: click the threads' buttons in a winning order.
        final = play_level_by_clicking(page, lab_server, page_log, expected)
        assert "goal reached" in final and "interrupt line was lost" in final, final

        print(
            f"{NOTEBOOK}: {expected} cells ran in {ran_all - started:.1f} s (with page load); "
            f"slider {value_before:g} -> {value_after:g} changed the widget's output in "
            f"{time.monotonic() - ran_all:.1f} s"
        )
    finally:
        save_screenshot(page, screenshot, slider)

    assert not asked and not news.count(), "JupyterLab asked whether to fetch its news"
    # Autosave is off and nothing saves: the chapter in the repository is untouched.
    assert path.read_bytes() == original, f"{NOTEBOOK} was modified on disk by the test"
