"""Each layer of labsupport imports only the layers below it."""

import ast
from pathlib import Path

import labsupport

LAYER = {
    "tracebuf": 1, "kernel": 1,
    "sync": 2, "shared": 2,
    "loop": 3,
    "demos": 4, "models": 4,
    "analysis": 5,
    "present": 6,
    "widgets": 7,
    "exercises": 8, "checks": 8,
}


def test_no_module_imports_a_layer_above_its_own():
    root = Path(labsupport.__file__).parent
    problems = []
    for path in sorted(root.glob("*.py")):
        mod = path.stem
        if mod == "__init__":
            continue
        assert mod in LAYER, f"labsupport/{path.name} has no layer; add it to LAYER"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                dep = node.module.split(".")[0]
                if LAYER.get(dep, 0) > LAYER[mod]:
                    problems.append(
                        f"{mod} (layer {LAYER[mod]}) imports {dep} (layer {LAYER[dep]})"
                    )
    assert not problems, problems


def test_every_module_opens_with_the_idea_it_models():
    root = Path(labsupport.__file__).parent
    for path in root.glob("*.py"):
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and len(doc.splitlines()) >= 3, f"{path.name} needs an opening docstring"
