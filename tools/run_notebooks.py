"""Re-execute notebooks in place, keeping their outputs: what ``make notebooks`` runs.

The notebooks are stored with their outputs (nbval compares them), so after a change to a
chapter or to labsupport its notebook is re-run here and committed. Each notebook runs top to
bottom in a fresh kernel of this environment's Python, in the notebook's own folder, with a
120 s limit per cell. Runs are made repeatable: PYTHONHASHSEED=0, no timing records; widget
state is kept so a widget still shows in a static view of the notebook.

A notebook whose run fails is left as it was, and the script exits 1 after trying the rest.
Cells tagged ``raises-exception`` may raise, as under nbval.

Usage::

    python tools/run_notebooks.py                       # notebooks/ and solutions/
    python tools/run_notebooks.py notebooks/01-*.ipynb  # just these
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("notebooks", "solutions")
CELL_TIMEOUT = 120


def default_notebooks() -> list[Path]:
    found: list[Path] = []
    for folder in FOLDERS:
        found += sorted(p for p in (ROOT / folder).glob("*.ipynb") if not p.match("*.bak.ipynb"))
    return found


def execute(path: Path, timeout: int = CELL_TIMEOUT) -> None:
    """Run one notebook top to bottom and write it back with its new outputs."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
        store_widget_state=True,
    )
    client.execute()
    text = nbformat.writes(nb, version=nbformat.NO_CONVERT)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Re-execute notebooks in place.")
    parser.add_argument("paths", nargs="*", type=Path, help="default: notebooks/ and solutions/")
    parser.add_argument("--timeout", type=int, default=CELL_TIMEOUT, help="seconds per cell")
    args = parser.parse_args(argv)
    # Set before any kernel starts: kernels inherit it, so set and dict order repeat.
    os.environ["PYTHONHASHSEED"] = "0"
    os.environ.setdefault("JUPYTER_PREFER_ENV_PATH", "1")
    paths = args.paths or default_notebooks()
    if not paths:
        print("notebooks: nothing to run")
        return 0
    failed = []
    for path in paths:
        started = time.perf_counter()
        print(f"running {path} ...", end=" ", flush=True)
        try:
            execute(path, args.timeout)
        except Exception as error:  # report every failure, then go on with the next notebook
            print("FAILED")
            print(f"  {type(error).__name__}: {str(error).strip()[-2000:]}", file=sys.stderr)
            failed.append(path)
            continue
        print(f"ok ({time.perf_counter() - started:.1f} s)")
    if failed:
        print(f"{len(failed)} notebook(s) failed and were left unchanged:", file=sys.stderr)
        print("\n".join(f"  {p}" for p in failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
