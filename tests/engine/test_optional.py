"""labsupport without numpy and matplotlib (the offline browser build): the kernel, the
primitives, the trace table and the explorer still run; a figure or a timing analysis says in
one line which module it needs; and a Python that cannot start threads says so for run_real."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from labsupport import optional, real

# A Python in which numpy and matplotlib cannot be imported, as in the offline browser build.
WITHOUT = textwrap.dedent(
    """
    import sys

    class Absent:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("numpy", "matplotlib"):
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, Absent())
    """
)

PROGRAM = textwrap.dedent(
    """
    from labsupport import Shared, explore, metrics, run, timeline, trace_table
    from labsupport.optional import Unavailable, pyplot

    made = []

    def program(sim):
        counter = Shared(sim, "counter", 0)
        made.append(counter)

        def worker():
            yield counter.increment()

        sim.spawn("T0", worker)
        sim.spawn("T1", worker)

    result = run(program, seed=1)
    print(trace_table(result))
    lost = lambda r: None if made[-1].value == 2 else "an update was lost"  # noqa: E731
    found = explore(program, check=lost)
    print("explored:", found.counterexample.failure)
    for use in (lambda: metrics(result), lambda: timeline(result), lambda: pyplot().show()):
        try:
            use()
        except Unavailable as error:
            print("said:", error._render_traceback_())
    assert "numpy" not in sys.modules and "matplotlib" not in sys.modules
    """
)


def test_the_engine_runs_without_numpy_and_matplotlib():
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT + PROGRAM], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "load counter" in out and "t(us)" in out, out
    assert "explored: an update was lost" in out, out
    said = [line for line in out.splitlines() if line.startswith("said:")]
    assert len(said) == 3, out
    assert "needs numpy" in said[0] and "needs matplotlib" in said[1], said
    assert "plt.show needs matplotlib" in said[2], said
    for line in said:  # each notice is one line, naming where the course runs in full
        assert line.count("'") == 2 and "make lab" in line, line


def test_need_returns_the_module_or_says_in_one_line_what_is_missing():
    assert optional.need("json", "this").dumps([]) == "[]"
    with pytest.raises(optional.Unavailable) as caught:
        optional.need("no_such_module_here.sub", "The thing")
    error = caught.value
    assert isinstance(error, ImportError)
    assert error.module == "no_such_module_here"
    (line,) = error._render_traceback_()
    assert line.startswith("Unavailable: The thing needs no_such_module_here") and "\n" not in line


def test_run_real_says_a_browser_cannot_start_threads(monkeypatch):
    monkeypatch.setattr(real.sys, "platform", "emscripten")
    with pytest.raises(optional.Unavailable, match="run_real\\(\\) needs host threads"):
        real.run_real(lambda sim: None)
