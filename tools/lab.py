"""Open the course in JupyterLab, safely: ``python tools/lab.py`` (what ``make lab`` runs).

- Bound to 127.0.0.1: nobody else on the network can reach the server.
- Token authentication on: a fresh random token each start (or ``--token``, which tests use);
  an empty token is refused. The URL printed below carries it.
- Serves the repository root and opens the start page, ``notebooks/00-primer.ipynb``.
- ``--allow-root`` only when running as root (as in containers and CI).
- Nothing is fetched at run time: JupyterLab's news feed and update check are off, and so is
  its question whether to fetch the news (``tools/lab-settings/overrides.json``); its extension
  manager is read-only (the pinned environment is the course's).

Options: ``--port N`` (default: 8888, or the next free port), ``--no-browser``, ``--token T``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_PAGE = "notebooks/00-primer.ipynb"
HOST = "127.0.0.1"
DEFAULT_PORT = 8888


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Open Unlocking QEMU in JupyterLab.")
    parser.add_argument("--port", type=int, default=None, help="port on 127.0.0.1")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument("--token", default=None, help="token to use (default: a random one)")
    args = parser.parse_args(argv)
    if args.token is not None and not args.token.strip():
        parser.error("the token must not be empty: an empty token turns authentication off")
    if args.port is not None and not 0 < args.port < 65536:
        parser.error(f"--port must be between 1 and 65535, not {args.port}")
    return args


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def pick_port(start: int = DEFAULT_PORT, tries: int = 50) -> int:
    """The first free port from ``start`` on, as Jupyter itself would choose."""
    for port in range(start, start + tries):
        if port_is_free(port):
            return port
    raise SystemExit(f"no free port between {start} and {start + tries - 1}; use --port")


def start_url() -> str:
    """Path of the page to open: the start notebook when it exists, else the launcher."""
    if (ROOT / START_PAGE).is_file():
        return f"/lab/tree/{START_PAGE}"
    return "/lab"


def offline_lab_argv(root: Path = ROOT) -> list[str]:
    """JupyterLab fetching nothing at run time: no news feed, no update check, a read-only
    extension manager, and the course's settings overrides from ``root``/tools/lab-settings
    (never ask whether to fetch Jupyter news). The hub's single-user servers take the same
    options (deploy/jupyterhub/jupyterhub_config.py)."""
    return [
        "--LabApp.news_url=None",
        f"--LabApp.app_settings_dir={root / 'tools' / 'lab-settings'}",
        "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
    ]


def server_argv(port: int, token: str, open_browser: bool, as_root: bool) -> list[str]:
    """JupyterLab's command line (jupyter_server 2 ``ServerApp`` options)."""
    if not token:
        raise ValueError("refusing to start JupyterLab without a token")
    argv = [
        f"--ServerApp.ip={HOST}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={ROOT}",
        # The lab extension sets the server's default URL, so the start page is its option.
        f"--LabApp.default_url={start_url()}",
        f"--ServerApp.open_browser={open_browser}",
        f"--IdentityProvider.token={token}",
        *offline_lab_argv(),
    ]
    if as_root:
        argv.append("--ServerApp.allow_root=True")
    return argv


def choose_token(given: str | None) -> str:
    """The token to require: the one given, else a fresh random one (256 bits)."""
    return given if given else secrets.token_urlsafe(32)


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        from jupyterlab.labapp import LabApp
    except ImportError:
        print(
            "JupyterLab is not installed here; run `make lab` (or `make venv`) first.",
            file=sys.stderr,
        )
        return 1
    port = args.port if args.port is not None else pick_port()
    token = choose_token(args.token)
    # Kernels from this environment win over any user-level kernel of the same name.
    os.environ.setdefault("JUPYTER_PREFER_ENV_PATH", "1")
    url = f"http://{HOST}:{port}{start_url()}?token={token}"
    print(
        f"Unlocking QEMU: opening JupyterLab at\n\n    {url}\n\nStop it with Ctrl-C.\n", flush=True
    )
    LabApp.launch_instance(argv=server_argv(port, token, not args.no_browser, running_as_root()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
