"""The kernel's interface for primitive authors is public and documented, and nothing above the
kernel reaches past it: no ``sim._x``, no attributes of its own stored on a ``Simulation``."""

import ast
from pathlib import Path

import pytest

import labsupport
from labsupport import kernel
from labsupport.kernel import Policy, Simulation, run, simulation_of, sleep

ROOT = Path(labsupport.__file__).parent

#: What a primitive author may call on a Simulation (see the kernel's module docstring).
INTERFACE = [
    "register",
    "label",
    "record",
    "make_ready",
    "block",
    "block_for",
    "wake",
    "extension",
    "watch_waits",
    "check_waits",
]

#: Attributes set on a Simulation from outside the kernel that are known and not yet moved to
#: ``sim.extension`` (none: keep it that way).
KNOWN_STORES: set[tuple[str, str]] = set()


def _declared() -> set[str]:
    """The public names a Simulation has: its class's and those its constructor sets."""
    return {n for n in set(dir(Simulation)) | set(vars(Simulation())) if not n.startswith("_")}


def _is_sim(node: ast.AST) -> bool:
    """``sim``, ``simulation``, ``x.sim`` (``self.sim``, ``ctx.sim``, ``result.sim`` ...),
    ``Simulation`` or ``Simulation.active``."""
    if isinstance(node, ast.Name):
        return node.id in ("sim", "simulation", "Simulation")
    if isinstance(node, ast.Attribute):
        return node.attr == "sim" or (
            node.attr == "active"
            and isinstance(node.value, ast.Name)
            and node.value.id == "Simulation"
        )
    return False


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _problems(src: str, rel: str, declared: set[str]) -> list[str]:
    """What module ``rel`` (source ``src``) does to a Simulation that it should not."""
    out = []
    for node in ast.walk(ast.parse(src, rel)):
        where = f"{rel}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Attribute) and _is_sim(node.value):
            if _private(node.attr) or node.attr == "__dict__":
                out.append(f"{where}: uses the kernel's private {ast.unparse(node)}")
            elif isinstance(node.ctx, ast.Store) and node.attr not in declared:
                if (rel, node.attr) not in KNOWN_STORES:
                    out.append(
                        f"{where}: stores {ast.unparse(node)} on a Simulation; use "
                        f"sim.extension(key, factory)"
                    )
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and node.args
            and _is_sim(node.args[0])
        ):
            name = (
                node.args[1].value
                if len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
                else None
            )
            if node.func.id != "getattr" or not isinstance(name, str) or name not in declared:
                out.append(
                    f"{where}: {ast.unparse(node)} reaches around the Simulation's interface"
                )
    return out


def test_no_module_but_the_kernel_touches_a_simulations_private_parts():
    declared = _declared()
    problems = []
    for path in sorted(ROOT.rglob("*.py")):
        if path == ROOT / "kernel.py":
            continue
        problems += _problems(path.read_text(), path.relative_to(ROOT.parent).as_posix(), declared)
    assert not problems, "\n".join(problems)


def test_the_scan_catches_what_it_is_meant_to():
    """The scanner itself, on a module that does every forbidden thing once."""
    src = (
        "def f(sim, self, result, ctx):\n"
        "    sim._record(1, 2, 3, 4)\n"
        "    self.sim._block(None, None)\n"
        "    result.sim._steps\n"
        "    ctx.sim._make_ready(None)\n"
        "    sim.__dict__.setdefault('x', [])\n"
        "    sim.my_state = 1\n"
        "    getattr(sim, 'my_state', None)\n"
        "    setattr(sim, 'model', None)\n"
        "    sim.model = 1\n"
        "    sim.record(1, 2, 3, 4)\n"
        "    getattr(sim, 'model', None)\n"
    )
    problems = _problems(src, "labsupport/probe.py", _declared())
    lines = sorted(int(p.split(":")[1]) for p in problems)
    assert lines == [2, 3, 4, 5, 6, 7, 8, 9], problems


@pytest.mark.parametrize("name", INTERFACE)
def test_the_interface_is_public_documented_and_has_no_private_alias(name):
    method = getattr(Simulation, name)
    assert method.__doc__ and len(method.__doc__.split()) >= 8, (
        f"Simulation.{name} needs a docstring"
    )
    assert not hasattr(Simulation, f"_{name}"), f"Simulation._{name} is left as an alias"
    assert f"sim.{name}(" in kernel.__doc__, f"the kernel's docstring does not list sim.{name}"
    assert "interface for primitive authors" in kernel.__doc__


def test_simulation_of_is_public_and_documented_and_nobody_keeps_a_copy():
    assert simulation_of.__doc__ and "simulation_of(x)" in kernel.__doc__
    copies = [
        p.relative_to(ROOT).as_posix()
        for p in ROOT.rglob("*.py")
        if p.name != "kernel.py" and "def _sim(" in p.read_text()
    ]
    assert not copies, copies


def test_record_is_bound_per_simulation_for_speed():
    assert "record" in vars(Simulation(trace=True))
    assert "record" in vars(Simulation(trace=False))


def test_simulation_of_takes_a_simulation_or_a_result_and_explains_anything_else():
    r = run(lambda sim: sim.spawn("a", lambda: (yield sleep(1))))
    assert simulation_of(r) is r.sim and simulation_of(r.sim) is r.sim
    with pytest.raises(TypeError, match="expected a Simulation or a RunResult; got int"):
        simulation_of(3)
    quiet = run(lambda sim: None, trace=False)
    assert simulation_of(quiet) is quiet.sim
    with pytest.raises(ValueError, match="nothing to measure"):
        simulation_of(quiet, needs_trace=True)
    with pytest.raises(ValueError, match="the detectors read the trace"):
        simulation_of(quiet, needs_trace=True, untraced="the detectors read the trace")


def test_an_extension_is_made_once_per_simulation_and_kept():
    a, b = Simulation(), Simulation()
    made = []

    def factory():
        made.append(1)
        return {"n": len(made)}

    first = a.extension("test.state", factory)
    assert a.extension("test.state", factory) is first and made == [1]
    assert b.extension("test.state", factory) is not first and made == [1, 1]
    assert a.extension("test.other", list) == []


def test_no_thread_is_current_after_a_run_a_policy_interrupted():
    class Stop(Exception):
        pass

    class StopAtSecondChoice(Policy):  # a steps first, so a thread is current when it stops
        calls = 0

        def choose(self, sim, ready):
            self.calls += 1
            if self.calls == 2:
                raise Stop
            return ready[0]

    sim = Simulation(policy=StopAtSecondChoice())
    for name in "ab":
        sim.spawn(name, lambda: (yield sleep(1)))
    with pytest.raises(Stop):
        sim.run()
    assert sim.current is None
