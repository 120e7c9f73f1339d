"""Headless chromium for the tests that open pages: where it is, how it starts, and what to do
when a tool is missing (skip with the reason; under CI, fail with it, since CI installs them).

Shared by tests/browser/ (JupyterLab) and tests/web/ (the website, the in-browser build, the hub).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import pytest

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


def in_ci() -> bool:
    """True when the ``CI`` environment variable is set (to anything but empty, 0 or false)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(what: str, reason: str, how: str) -> None:
    """Skip with the reason; under CI, fail with it (CI installs every tool these tests need)."""
    if in_ci():
        pytest.fail(
            f"{what} failed: {reason} (CI is set, and CI installs it: {how})", pytrace=False
        )
    pytest.skip(f"{what} skipped: {reason}. {how}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sync_playwright(what: str):
    """Playwright's ``sync_playwright`` once chromium and playwright are both present."""
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        missing(
            what,
            f"{CHROMIUM} is missing",
            "Install it with `make browser` (as root it runs `apt-get install chromium`)",
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        missing(
            what,
            f"Python playwright cannot be imported ({error})",
            "Install it with `make browser` (pip install -r requirements/browser.txt into .venv)",
        )
    return sync_playwright


@dataclass
class PageLog:
    """What the page printed to its console, its uncaught errors, and (for an offline page)
    every request it was refused."""

    lines: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def text(self, last: int = 30) -> str:
        return "\n".join(self.lines[-last:]) or "(nothing)"


def private_jupyter_env(folder: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (else this process's environment) with Jupyter's, IPython's and matplotlib's
    folders all under ``folder``, as the Makefile's ISOLATED gives the tests: nothing from the
    machine's own folders (a user kernel, a profile, a matplotlibrc) leaks in."""
    return {
        **(os.environ if base is None else base),
        "JUPYTER_CONFIG_DIR": str(folder / "config"),
        "JUPYTER_DATA_DIR": str(folder / "data"),
        "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "JUPYTER_PREFER_ENV_PATH": "1",
        "IPYTHONDIR": str(folder / "ipython"),
        "MPLCONFIGDIR": str(folder / "matplotlib"),
    }


def launch(playwright, profile: Path, log: PageLog, args: tuple[str, ...] = (), **options):
    """Headless chromium with the fresh profile folder ``profile`` (never the user's) and its
    first page, whose console lines and uncaught errors go to ``log``: ``(context, page)``.
    ``args`` are more chromium switches; ``options``, more of Playwright's context options."""
    context = playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS + list(args),
        viewport=VIEWPORT,
        **options,
    )
    page = context.pages[0] if context.pages else context.new_page()
    page.on("console", lambda m: log.lines.append(f"console.{m.type}: {m.text[:500]}"))
    page.on("pageerror", lambda e: log.lines.append(f"page error: {e}"))
    return context, page
