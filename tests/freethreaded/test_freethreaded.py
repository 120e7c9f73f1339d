"""Chapter 9's claims on the free-threaded interpreter: the GIL stays off with the course and
the kernel loaded, ``counter += 1`` loses updates on host threads, and chapter 0's counter on
``run_real`` loses them without a lock and never with one.

``make test-freethreaded`` runs these on .venv-ft with ``FREETHREADED_REQUIRED=1`` (then they
fail rather than skip on an interpreter with a GIL); elsewhere they skip, saying why.
"""

from __future__ import annotations

import os
import sys

import pytest

from labsupport.chapters.ch09.scenarios import lost_updates, plain_python_counter
from labsupport.real import gil_enabled

REQUIRED = os.environ.get("FREETHREADED_REQUIRED") == "1"

pytestmark = pytest.mark.skipif(
    gil_enabled() and not REQUIRED,
    reason="needs the free-threaded interpreter: make test-freethreaded",
)


def test_the_gil_stays_off_with_the_course_and_the_kernel_loaded():
    import ipykernel.kernelapp  # noqa: F401
    import numpy  # noqa: F401
    import simpy  # noqa: F401
    import zmq  # noqa: F401

    import labsupport  # noqa: F401

    assert "t" in sys.abiflags, "this interpreter is not a free-threaded build"
    assert not sys._is_gil_enabled()


#: Runs a race test makes at most, looking for one lost update: threads that each finish
#: within one time slice never overlap on a busy machine, so a run may lose nothing; a race
#: shows as soon as two of them do.
MAX_RUNS = 20


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="two host CPUs are needed to race")
def test_counter_plus_equals_loses_updates_on_host_threads_without_the_gil():
    lost = []
    while len(lost) < MAX_RUNS and not any(lost):
        lost.append(plain_python_counter(4, 2_000_000))
    assert any(lost), lost


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="two host CPUs are needed to race")
def test_run_real_loses_updates_without_a_lock_and_never_with_one():
    lost = []
    while len(lost) < MAX_RUNS and not any(lost):
        lost += lost_updates(4, 10_000, runs=1).lost
    assert any(lost), lost
    locked = lost_updates(4, 5_000, locked=True, runs=5)
    assert locked.runs_that_lost == 0 and locked.lost == [0] * 5
