"""What the browser test needs: the browser (or a clear skip), a JupyterLab server, a page.

- ``browser``: Debian's chromium at /usr/bin/chromium and Python playwright, installed by
  ``make browser``. When either is missing the test is skipped with the reason, except when the
  ``CI`` environment variable is set: CI installs both, so there a missing browser fails.
- ``lab_server``: the very command ``make lab`` runs (tools/lab.py) with ``--no-browser``, a free
  port and a known token, in private Jupyter, IPython and matplotlib folders under the test's
  temporary folder (``.scratch/browser/`` under ``make test-browser``). Autosave is off in those
  private settings, so running the notebook never rewrites the file in the repository. The server
  is always stopped.
- ``page``: a Playwright page in a headless chromium with a fresh profile; ``page_log`` keeps
  what the page logs, for the failure message.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "tools" / "lab.py"
CHROMIUM = Path("/usr/bin/chromium")
# Playwright's own browser download is not used: it drives the system's chromium with these.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1000}
START_TIMEOUT = 30  # seconds for JupyterLab to answer /api/status


def in_ci() -> bool:
    """True when the ``CI`` environment variable is set (to anything but empty, 0 or false)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _missing(reason: str):
    """Skip with the reason; under CI, fail with it (CI is expected to have the browser)."""
    if in_ci():
        pytest.fail(
            f"browser test failed: {reason} (CI is set, and CI installs the browser: "
            "`make test` runs `make browser` first)",
            pytrace=False,
        )
    pytest.skip(f"browser test skipped: {reason}")


@pytest.fixture(scope="session")
def browser():
    """Playwright's ``sync_playwright``, once chromium and playwright are both known present."""
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        _missing(
            f"{CHROMIUM} is missing. Install it with `make browser` (as "
            "root it runs `apt-get install chromium`), or `sudo apt-get install chromium`"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        _missing(
            f"Python playwright cannot be imported ({error}). Install it "
            "with `make browser` (pip install -r requirements/browser.txt into .venv)"
        )
    return sync_playwright


@dataclass
class LabServer:
    base: str
    token: str
    log: Path

    def url(self, path: str) -> str:
        return f"{self.base}{path}{'&' if '?' in path else '?'}token={self.token}"

    def api(self, path: str):
        """The decoded JSON of a GET on the server's REST API."""
        with urllib.request.urlopen(self.url(path), timeout=5) as response:
            return json.load(response)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _private_jupyter_env(folder: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(folder / "config"),
        "JUPYTER_DATA_DIR": str(folder / "data"),
        "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "JUPYTER_PREFER_ENV_PATH": "1",
        "IPYTHONDIR": str(folder / "ipython"),
        "MPLCONFIGDIR": str(folder / "matplotlib"),
    }
    # The kernel inherits this environment: it must draw inline as for a learner, not into Agg.
    env.pop("MPLBACKEND", None)
    env.pop("JUPYTER_TOKEN", None)
    # JupyterLab's user settings live in the private config folder. Autosave off: the test runs
    # the notebook in the repository and must leave the file as it is.
    settings = folder / "config" / "lab" / "user-settings" / "@jupyterlab"
    (settings / "docmanager-extension").mkdir(parents=True, exist_ok=True)
    (settings / "docmanager-extension" / "plugin.jupyterlab-settings").write_text(
        json.dumps({"autosave": False})
    )
    return env


@pytest.fixture
def lab_server(tmp_path):
    """JupyterLab started by tools/lab.py, answering on 127.0.0.1; stopped afterwards."""
    port, token = _free_port(), secrets.token_hex(16)
    folder = tmp_path / "jupyter"
    env = _private_jupyter_env(folder)
    log_path = tmp_path / "lab.log"
    log = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, str(LAB), "--no-browser", "--port", str(port), "--token", token],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = LabServer(f"http://127.0.0.1:{port}", token, log_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with {process.returncode}:\n{server.log_tail()}")
            try:
                server.api("/api/status")
                break
            except (OSError, urllib.error.URLError, ValueError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"JupyterLab gave no answer within {START_TIMEOUT} s:\n{server.log_tail()}"
                )
            time.sleep(0.25)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        log.close()


@dataclass
class PageLog:
    """What the page printed to its console, and its uncaught errors."""

    lines: list[str] = field(default_factory=list)

    def text(self, last: int = 30) -> str:
        return "\n".join(self.lines[-last:]) or "(nothing)"


@pytest.fixture
def page_log() -> PageLog:
    return PageLog()


@pytest.fixture
def page(browser, page_log, tmp_path):
    """A page in headless chromium with a fresh profile; ``page_log`` keeps what it logs."""
    with browser() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh user data dir, never the user's
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            lines = page_log.lines
            page.on("console", lambda m: lines.append(f"console.{m.type}: {m.text[:500]}"))
            page.on("pageerror", lambda e: lines.append(f"page error: {e}"))
            yield page
        finally:
            context.close()
