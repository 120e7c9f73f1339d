"""`make lab` serves the course: 127.0.0.1 only, token required, repository root, start page.

The server test starts the very command `make lab` runs (tools/lab.py), with --no-browser, a
free port and a known token, in private Jupyter folders; it always stops the server.
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
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tool_loader import load_tool

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "tools" / "lab.py"
START_TIMEOUT = 30


lab = load_tool("lab")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def get(url: str) -> tuple[int, dict, bytes]:
    """Status, headers and body of a GET; redirects are returned, not followed."""
    try:
        with OPENER.open(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def server(tmp_path):
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "MPLCONFIGDIR": str(tmp_path / "matplotlib"),
    }
    env.pop("JUPYTER_TOKEN", None)
    log = open(tmp_path / "lab.log", "w+")
    process = subprocess.Popen(
        [sys.executable, str(LAB), "--no-browser", "--port", str(port), "--token", token],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                log.seek(0)
                pytest.fail(f"JupyterLab exited with {process.returncode}:\n{log.read()[-3000:]}")
            try:
                if get(f"{base}/api/status?token={token}")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"no answer within {START_TIMEOUT} s:\n{log.read()[-3000:]}")
            time.sleep(0.25)
        yield base, token
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        log.close()


def test_lab_serves_the_course_with_a_token(server):
    base, token = server

    status, _, body = get(f"{base}/api/status?token={token}")
    assert status == 200 and "started" in json.loads(body)

    # Without the token: the API refuses, the pages send you to the login form.
    assert get(f"{base}/api/status")[0] == 403
    assert get(f"{base}/api/contents")[0] == 403
    status, headers, _ = get(f"{base}/lab")
    assert status == 302 and "/login" in headers["Location"]
    assert get(f"{base}/api/status?token=wrong-{token}")[0] == 403

    # The repository root is served, and notebooks/ is the course's folder.
    status, _, body = get(f"{base}/api/contents?token={token}")
    assert status == 200
    assert {"README.md", "tools"} <= {item["name"] for item in json.loads(body)["content"]}
    status, _, body = get(f"{base}/api/contents/notebooks?token={token}")
    notebooks = ROOT / "notebooks"
    if notebooks.is_dir():
        assert status == 200
        listed = {item["name"] for item in json.loads(body)["content"]}
        assert {p.name for p in notebooks.glob("*.ipynb")} <= listed
    else:
        assert status == 404

    # The home page opens the start notebook (or the launcher until it exists).
    status, headers, _ = get(f"{base}/?token={token}")
    assert status == 302 and urlsplit(headers["Location"]).path.endswith(lab.start_url())


def test_server_command_is_local_and_authenticated():
    argv = lab.server_argv(8888, "t0ken", open_browser=False, as_root=False)
    assert "--ServerApp.ip=127.0.0.1" in argv
    assert "--IdentityProvider.token=t0ken" in argv
    assert "--ServerApp.open_browser=False" in argv
    assert f"--ServerApp.root_dir={ROOT}" in argv
    assert not any("allow_root" in a for a in argv)
    assert "--ServerApp.allow_root=True" in lab.server_argv(1, "t", True, as_root=True)
    with pytest.raises(ValueError):
        lab.server_argv(8888, "", open_browser=False, as_root=False)


def test_start_page_is_the_primer_when_present():
    expected = "/lab/tree/notebooks/00-primer.ipynb"
    present = (ROOT / "notebooks" / "00-primer.ipynb").is_file()
    assert lab.start_url() == (expected if present else "/lab")


@pytest.mark.parametrize("argv", [["--token", ""], ["--token", "  "], ["--port", "0"]])
def test_an_empty_token_or_bad_port_is_refused(argv):
    result = subprocess.run(
        [sys.executable, str(LAB), "--no-browser", *argv],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "token must not be empty" in result.stderr or "--port" in result.stderr


def test_a_token_is_random_and_long_unless_given():
    first, second = lab.choose_token(None), lab.choose_token(None)
    assert first != second and len(first) >= 32
    assert lab.choose_token("given") == "given"


def test_the_news_question_is_switched_off_by_the_settings_the_server_is_given():
    argv = lab.server_argv(8888, "t", open_browser=False, as_root=False)
    (settings,) = [a.split("=", 1)[1] for a in argv if a.startswith("--LabApp.app_settings_dir=")]
    overrides = json.loads((Path(settings) / "overrides.json").read_text())
    notification = overrides["@jupyterlab/apputils-extension:notification"]
    assert notification["fetchNews"] == "false" and notification["checkForUpdates"] is False
