"""Each layer of labsupport imports only the layers below it; each module opens with its idea."""

import ast
from pathlib import Path

import labsupport

ROOT = Path(labsupport.__file__).parent

#: The layer of every module, by its path under labsupport/ (a package's modules share one).
LAYER = {
    "tracebuf": 1,
    "optional": 1,
    "kernel": 1,
    "validate": 1,
    "stats": 1,
    "sync": 2,
    "shared": 2,
    "annotations": 2,
    "loop": 3,
    "coroutine": 3,
    "real": 3,
    "qemu": 4,
    "analysis": 5,
    "present": 6,
    "widgets": 7,
    "stepper": 7,
    "exercises": 8,
    "catalogue": 8,
    "practice": 8,
    "chapters": 9,
}


def modules() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


def dotted(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    """A module's layer: ``labsupport.qemu.bql`` is in the layer of ``qemu``."""
    parts = module.split(".")
    assert parts[0] == "labsupport", module
    if len(parts) == 1:
        return 99  # the package's table of contents may import anything
    if module == "labsupport.chapters":
        return 1  # the list of chapters: a constant that imports nothing (a test checks it)
    assert parts[1] in LAYER, f"{module} has no layer; add {parts[1]!r} to LAYER"
    return LAYER[parts[1]]


def imports(path: Path) -> list[str]:
    """The labsupport modules ``path`` imports (relative imports resolved)."""
    here = dotted(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("labsupport"):
                continue
            for alias in node.names:  # ``from .. import tracebuf``: the module, not the package
                sub = ROOT.parent.joinpath(*f"{target}.{alias.name}".split("."))
                if sub.with_suffix(".py").exists() or (sub / "__init__.py").exists():
                    out.append(f"{target}.{alias.name}")
                else:
                    out.append(target)
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("labsupport")]
    return out


def test_every_module_has_a_layer():
    for path in modules():
        layer(dotted(path))


def test_no_module_imports_a_layer_above_its_own():
    problems = []
    for path in modules():
        mod = dotted(path)
        for dep in imports(path):
            if layer(dep) > layer(mod):
                problems.append(f"{mod} ({layer(mod)}) imports {dep} ({layer(dep)})")
    assert not problems, problems


def test_the_layer_test_sees_relative_imports():
    """The resolver itself: ``from ..kernel import x`` in qemu/bql.py is labsupport.kernel."""
    assert "labsupport.kernel" in imports(ROOT / "qemu" / "bql.py")
    assert "labsupport.chapters.ch04.scenarios" in imports(ROOT / "chapters" / "ch04" / "checks.py")


def test_the_list_of_chapters_imports_nothing():
    tree = ast.parse((ROOT / "chapters" / "__init__.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


#: Chapters that run other chapters' programs: the retrospective (every era on one workload)
#: and real threads (chapter 0's counter on host threads).
LOOKING_BACK = ("labsupport.chapters.ch08", "labsupport.chapters.ch09")


def test_chapters_import_no_other_chapter_except_those_that_look_back():
    """A chapter is a unit: only chapters 8 and 9, which run earlier chapters' programs again,
    import others."""
    problems = []
    for path in sorted((ROOT / "chapters").rglob("*.py")):
        mod = dotted(path)
        if not mod.startswith("labsupport.chapters.ch") or mod.startswith(LOOKING_BACK):
            continue
        own = ".".join(mod.split(".")[:3])
        for dep in imports(path):
            if dep.startswith("labsupport.chapters.ch") and not dep.startswith(own):
                problems.append(f"{mod} imports {dep}")
    assert not problems, problems


def test_every_module_opens_with_the_idea_it_models():
    for path in modules():
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and len(doc.splitlines()) >= 3, f"{path} needs an opening docstring"


def test_no_chapter_module_sits_at_the_top_of_the_package():
    names = [p.stem for p in ROOT.glob("*.py")]
    assert not [n for n in names if "_ch0" in n or n.startswith(("scenarios", "checks_"))]


def test_the_table_of_contents_exports_what_it_imports():
    """``labsupport/__init__.py`` names in ``__all__`` exactly the public names it imports,
    grouped by layer as its comments say, and each of them is there."""
    tree = ast.parse((ROOT / "__init__.py").read_text())
    imported = {
        a.asname or a.name
        for n in tree.body
        if isinstance(n, ast.ImportFrom)
        for a in n.names
        if not (a.asname or a.name).startswith("_")
    }
    assert set(labsupport.__all__) == imported
    assert len(labsupport.__all__) == len(set(labsupport.__all__))
    for name in labsupport.__all__:
        assert getattr(labsupport, name) is not None


def test_importing_the_package_imports_no_chapter():
    import subprocess
    import sys

    code = "import sys, labsupport; print(sorted(m for m in sys.modules if '.chapters.' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
