"""The kernel "Python 3.13 (free-threaded)" that ``make freethreaded`` registers runs without
the GIL, with the course loaded. Skips where it is not set up, unless ``FREETHREADED_REQUIRED=1``
(as ``make test-freethreaded`` runs it)."""

from __future__ import annotations

import os

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

KERNEL = "python3-freethreaded"
REQUIRED = os.environ.get("FREETHREADED_REQUIRED") == "1"


def test_the_free_threaded_kernel_runs_the_course_without_the_gil():
    if KERNEL not in KernelSpecManager().find_kernel_specs():
        if REQUIRED:
            pytest.fail(f"kernel {KERNEL!r} is not installed: run make freethreaded")
        pytest.skip(f"kernel {KERNEL!r} is not installed (make freethreaded)")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import sys\nimport labsupport\nfrom labsupport.real import gil_enabled\n"
            "print(sys._is_gil_enabled(), gil_enabled())"
        )
    ]
    NotebookClient(nb, kernel_name=KERNEL, timeout=120).execute()
    assert nb.cells[0].outputs[0]["text"].strip() == "False False"
