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
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from headless import (
    PageLog,
    free_port,
    launch,
    private_jupyter_env,
    sync_playwright,
)

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "tools" / "lab.py"
START_TIMEOUT = 30  # seconds for JupyterLab to answer /api/status


@pytest.fixture(scope="session")
def browser():
    """Playwright's ``sync_playwright``, once chromium and playwright are both known present."""
    return sync_playwright("browser test")


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


def _private_jupyter_env(folder: Path) -> dict[str, str]:
    env = private_jupyter_env(folder)
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
    port, token = free_port(), secrets.token_hex(16)
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


@pytest.fixture
def page_log() -> PageLog:
    return PageLog()


@pytest.fixture
def page(browser, page_log, tmp_path):
    """A page in headless chromium with a fresh profile; ``page_log`` keeps what it logs."""
    with browser() as playwright:
        context, page = launch(playwright, tmp_path / "chromium-profile", page_log)
        try:
            yield page
        finally:
            context.close()
