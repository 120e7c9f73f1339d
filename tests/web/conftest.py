"""What the web tests share: the repository's web tools (or a clear skip), a static file server
on 127.0.0.1, and an offline page: headless chromium in which every request that does not go to
127.0.0.1 or localhost is refused, and remembered, so a test can say what the page tried to fetch.

The tools come from ``make web`` (requirements/web.txt into .venv, tools/web/package.json into
tools/web/node_modules); a missing one skips the test with the reason, or fails it under CI.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from headless import PageLog, launch, missing, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "tools" / "web" / "node_modules"
MAKE_WEB = "Install the web tools with `make web`"
LOCAL_HOSTS = ("127.0.0.1", "localhost")
OFFLINE_RESOLVER = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"


def need_module(what: str, module: str) -> None:
    """Skip (fail under CI) unless ``module`` imports in this Python."""
    try:
        __import__(module)
    except ImportError as error:
        missing(what, f"{module} cannot be imported ({error})", MAKE_WEB)


def need_npm(what: str, package: str) -> Path:
    """The folder of an npm package of tools/web/package.json; skip (fail under CI) if absent."""
    folder = NODE_MODULES / package
    if not (folder / "package.json").is_file():
        missing(what, f"the npm package {package} is not in {NODE_MODULES}", MAKE_WEB)
    return folder


def need_program(what: str, program: str) -> str:
    """The path of a program in .venv/bin or on PATH; skip (fail under CI) if there is none."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    found = shutil.which(program, path=path)
    if not found:
        missing(what, f"{program} is not on PATH", MAKE_WEB)
    return found


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".wasm": "application/wasm",
        ".json": "application/json",
    }

    def log_message(self, *args) -> None:  # the tests read what the page fetched, not this
        pass


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (a free port) while the block runs; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def offline_log() -> PageLog:
    return PageLog()


@pytest.fixture
def service_workers() -> str:
    """Playwright's ``service_workers`` for ``offline_page``: "block" unless a test needs them
    (JupyterLite's kernel reads its files through one), overriding this fixture with "allow".
    A service worker's own requests may bypass the routing, never the resolver rule."""
    return "block"


@pytest.fixture
def offline_page(offline_log, tmp_path, service_workers):
    """A page in headless chromium that may fetch from 127.0.0.1 and localhost only."""
    playwright_factory = sync_playwright("web test")
    with playwright_factory() as playwright:
        # below the routing (which a service worker's requests could bypass), no name but the
        # local ones resolves
        context, page = launch(
            playwright,
            tmp_path / "chromium-profile",
            offline_log,
            args=(OFFLINE_RESOLVER,),
            service_workers=service_workers,
        )

        def route(request_route) -> None:
            url = request_route.request.url
            host = urlsplit(url).hostname
            if url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
                request_route.continue_()
            else:
                offline_log.refused.append(url)
                request_route.abort("blockedbyclient")

        context.route("**/*", route)
        try:
            yield page
        finally:
            context.close()
