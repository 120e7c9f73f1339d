"""Each layer of labsupport imports only the layers below it."""

import ast
from pathlib import Path

import labsupport

LAYER = {
    "tracebuf": 1,
    "kernel": 1,
    "sync": 2,
    "shared": 2,
    "annotations": 2,
    "loop": 3,
    "coroutine": 3,
    "demos": 4,
    "models": 4,
    "graphlock": 4,
    "multiqueue": 4,
    "analysis": 5,
    "detect": 5,
    "tsa": 5,
    "present": 6,
    "widgets": 7,
    "exercises": 8,
    "checks": 8,
}


def layer(mod: str) -> int:
    """A module's layer; chapter modules are named by theirs (scenarios_ch04, widgets_ch02)."""
    for prefix, n in (("scenarios_", 4), ("widgets_", 7), ("checks_", 8)):
        if mod.startswith(prefix):
            return n
    assert mod in LAYER, f"labsupport/{mod}.py has no layer; add it to LAYER"
    return LAYER[mod]


def test_no_module_imports_a_layer_above_its_own():
    root = Path(labsupport.__file__).parent
    problems = []
    for path in sorted(root.glob("*.py")):
        mod = path.stem
        if mod == "__init__":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                dep = node.module.split(".")[0]
                if layer(dep) > layer(mod):
                    problems.append(f"{mod} ({layer(mod)}) imports {dep} ({layer(dep)})")
    assert not problems, problems


def test_every_module_opens_with_the_idea_it_models():
    root = Path(labsupport.__file__).parent
    for path in root.glob("*.py"):
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and len(doc.splitlines()) >= 3, f"{path.name} needs an opening docstring"
