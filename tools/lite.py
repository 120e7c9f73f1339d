"""Build the course to run in the browser with nothing installed: JupyterLite with the Pyodide
kernel (Python compiled to WebAssembly), the chapters and exercise notebooks as its files, and
the course's own package as a wheel that each notebook installs in its first cell.

Two variants:

- the default fetches Pyodide (the interpreter and its packages, numpy and matplotlib among
  them) from Pyodide's CDN when a learner opens the site: the smallest build, for a website;
- ``--offline`` serves every file from the build itself, for a workshop room with bad Wi-Fi or
  none: Pyodide's core from the npm package ``pyodide`` (tools/web/package.json), and the
  pure-Python wheels the kernel, the widgets and the course need, taken from PyPI at the
  lock's versions and entered in Pyodide's ``pyodide-lock.json`` (file name and sha256
  rewritten). No browser build of numpy or matplotlib is published on PyPI or npm, so this
  variant has neither: labsupport runs its kernel, primitives and text traces without them, and
  a figure or an analysis that needs them says so in one line.

Threads cannot start in the browser's Python, so chapter 9 (host threads) says so when run.

Usage::

    python tools/lite.py                  # build/lite, Pyodide from its CDN   (make lite)
    python tools/lite.py --offline        # build/lite, everything served locally
    python tools/lite.py --out DIR        # somewhere else

Serve the folder with any static web server, e.g. ``python -m http.server -d build/lite``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import home

ROOT = home.ROOT
NODE_MODULES = ROOT / "tools" / "web" / "node_modules"
PYODIDE_NPM = NODE_MODULES / "pyodide"
LOCK = ROOT / "requirements" / "lock.txt"
# The files of Pyodide's npm package the kernel loads (the rest are docs, types and demos).
PYODIDE_FILES = (
    "pyodide.mjs",
    "pyodide.asm.mjs",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
    "pyodide-lock.json",
    "package.json",
)
# The Pyodide the kernel was built against (jupyterlite_pyodide_kernel.constants).
PYODIDE_PYTHON = "3.14"
# What the browser's Python is, for the environment markers of the wheels' requirements.
BROWSER_MARKERS = {
    "python_version": PYODIDE_PYTHON,
    "python_full_version": f"{PYODIDE_PYTHON}.0",
    "sys_platform": "emscripten",
    "platform_system": "Emscripten",
    "os_name": "posix",
    "platform_machine": "wasm32",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "extra": "",
}
# What the Pyodide kernel installs when it starts (its worker's list), what Pyodide loads
# before that, and what the notebooks need on top: the roots of the offline wheel set.
KERNEL_ROOTS = ("comm", "jedi", "ipython", "micropip", "packaging")
COURSE_ROOTS = ("simpy", "ipywidgets")
# Served by the kernel extension itself (shims and the kernel's own wheels).
PROVIDED = {"ipykernel", "widgetsnbextension", "pyodide-kernel", "piplite"}
# Where the course's chapters and exercises appear in the browser build's file browser.
CONTENT = ("notebooks", "exercises")
CONTENT_FILES = ("GLOSSARY.md", "exercises/README.md")
MARKER = "unlocking-qemu-lite-install"
# Where the offline build keeps Pyodide (the folder JupyterLite copies from a lite dir as is).
OFFLINE_PYODIDE = "static/pyodide"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins() -> dict[str, str]:
    """The version to take of each package, by canonical name: the lock's, else (micropip)
    the one Pyodide's own lock file names."""
    pyodide_lock = json.loads((PYODIDE_NPM / "pyodide-lock.json").read_text(encoding="utf-8"))
    pins = {canonical(k): v["version"] for k, v in pyodide_lock["packages"].items()}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split(";")[0].strip().split("==")
            pins[canonical(name)] = version
    return pins


def install_cell(offline: bool) -> dict:
    """The code cell put first in every notebook of the build: install the course from the site."""
    lines = [
        "# In the browser (JupyterLite): install the course's package from this site first.\n",
        "%pip install -q --no-deps unlocking-qemu\n",
        "%pip install -q simpy ipywidgets",
    ]
    if not offline:
        lines[-1] += "\n"
        lines.append("%pip install -q numpy matplotlib  # Pyodide's own builds, for the figures")
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": MARKER,
        "metadata": {"tags": [MARKER]},
        "outputs": [],
        "source": lines,
    }


def without_matplotlib(source: str) -> str:
    """A cell's code for a Python without matplotlib: its pyplot import becomes
    ``labsupport.optional.pyplot()``, which is matplotlib.pyplot where there is one, and
    otherwise says in one line, when used, that this build draws no figures."""
    return re.sub(
        r"^import matplotlib\.pyplot as plt$",
        "from labsupport.optional import pyplot  # no matplotlib in this build: figures say so\n"
        "\nplt = pyplot()",
        source,
        flags=re.MULTILINE,
    )


def write_contents(folder: Path, offline: bool) -> int:
    """Copy the chapters and exercises (install cell first, outputs kept) into ``folder``."""
    count = 0
    for sub in CONTENT:
        for source in sorted((ROOT / sub).glob("*.ipynb")):
            if source.name.endswith(".bak.ipynb"):
                continue
            nb = json.loads(source.read_text(encoding="utf-8"))
            if offline:
                for cell in nb["cells"]:
                    if cell["cell_type"] == "code":
                        cell["source"] = without_matplotlib("".join(cell["source"]))
            nb["cells"].insert(0, install_cell(offline))
            target = folder / sub / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", "utf-8")
            count += 1
    for name in CONTENT_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, folder / name)
    return count


def run(command: list[str], what: str, cwd: Path = ROOT) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"make lite: {what} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


def course_wheel(folder: Path) -> Path:
    """The course's package as a wheel (its dependencies are not installed in the browser)."""
    run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
        + ["--wheel-dir", str(folder), str(ROOT)],
        "building the course's wheel",
    )
    (found,) = folder.glob("unlocking_qemu-*.whl")
    return found


def wheel_requirements(wheel: Path) -> list[str]:
    """The names a wheel requires in the browser's Python (markers evaluated)."""
    import zipfile

    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as archive:
        (meta,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(meta).decode("utf-8")
    names = []
    for line in text.splitlines():
        if line.startswith("Requires-Dist:"):
            requirement = Requirement(line.split(":", 1)[1].strip())
            if requirement.marker is None or requirement.marker.evaluate(BROWSER_MARKERS):
                names.append(canonical(requirement.name))
    return names


def download_closure(roots: tuple[str, ...], folder: Path) -> dict[str, Path]:
    """Pure-Python wheels of ``roots`` and everything they need in the browser, at the lock's
    versions, downloaded from PyPI into ``folder``. Fails on a package that has no such wheel."""
    pins, wheels, todo = lock_pins(), {}, [canonical(r) for r in roots]
    while todo:
        batch = sorted({n for n in todo if n not in wheels and n not in PROVIDED})
        todo = []
        if not batch:
            break
        missing = [n for n in batch if n not in pins]
        if missing:
            raise SystemExit(f"make lite: no version of {missing} in {LOCK.name} to take")
        run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
            + ["--python-version", PYODIDE_PYTHON, "--platform", "any"]
            + ["--dest", str(folder)]
            + [f"{n}=={pins[n]}" for n in batch],
            f"downloading {batch} from PyPI",
        )
        for name in batch:
            found = [
                w
                for w in folder.glob("*.whl")
                if canonical(w.name.split("-")[0]) == name and f"-{pins[name]}-" in w.name
            ]
            if not found or not found[0].name.endswith("-none-any.whl"):
                raise SystemExit(f"make lite: {name} {pins[name]} has no pure-Python wheel")
            wheels[name] = found[0]
            todo += wheel_requirements(found[0])
    return wheels


def local_pyodide(target: Path, wheels: dict[str, Path]) -> None:
    """Pyodide's core from npm at ``target``, with ``wheels`` beside it and in its lock file."""
    if not (PYODIDE_NPM / "pyodide-lock.json").is_file():
        raise SystemExit(
            f"make lite --offline: the npm package pyodide is not in {NODE_MODULES} (run make web)"
        )
    target.mkdir(parents=True)
    for name in PYODIDE_FILES:
        shutil.copy2(PYODIDE_NPM / name, target / name)
    lock = json.loads((target / "pyodide-lock.json").read_text(encoding="utf-8"))
    by_name = {canonical(key): key for key in lock["packages"]}
    for name, wheel in wheels.items():
        shutil.copy2(wheel, target / wheel.name)
        key = by_name.get(name, name)
        entry = lock["packages"].get(key, {})
        lock["packages"][key] = {
            **entry,
            "name": key,
            "version": wheel.name.split("-")[1],
            "file_name": wheel.name,
            "install_dir": "site",
            "package_type": "package",
            "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
            "imports": entry.get("imports", []),
            "depends": [
                by_name.get(dep, dep) for dep in wheel_requirements(wheel) if dep not in PROVIDED
            ],
            "unvendored_tests": False,
        }
    (target / "pyodide-lock.json").write_text(json.dumps(lock), encoding="utf-8")


def lite_config(offline: bool) -> dict:
    """jupyter-lite.json: in the offline build, Pyodide from the build's own static/pyodide/
    and no falling back to PyPI for a wheel."""
    settings = (
        {"pyodideUrl": f"./{OFFLINE_PYODIDE}/pyodide.mjs", "disablePyPIFallback": True}
        if offline
        else {}
    )
    return {
        "jupyter-lite-schema-version": 0,
        "jupyter-config-data": {
            "appName": "Unlocking QEMU",
            "litePluginSettings": {"@jupyterlite/pyodide-kernel-extension:kernel": settings},
        },
    }


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def build(out: Path, offline: bool) -> dict:
    """Build into ``out`` (replaced); returns what was built: notebooks, wheels, bytes, seconds."""
    home.check_out(out, "make lite", "jupyter-lite.json")
    try:
        import jupyterlite_core  # noqa: F401
        import jupyterlite_pyodide_kernel  # noqa: F401
    except ImportError as error:
        raise SystemExit(f"make lite: {error}; install the web tools with `make web`") from None
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lite-") as scratch:
        scratch = Path(scratch)
        lite_dir, contents, wheel_dir = scratch / "lite", scratch / "contents", scratch / "wheels"
        for folder in (lite_dir, contents, wheel_dir):
            folder.mkdir()
        notebooks = write_contents(contents, offline)
        wheels = [course_wheel(wheel_dir)]
        closure = download_closure(COURSE_ROOTS + (KERNEL_ROOTS if offline else ()), wheel_dir)
        if offline:
            local_pyodide(lite_dir / OFFLINE_PYODIDE, closure)
        wheels += [w for n, w in closure.items() if n not in ("micropip", "packaging")]
        (lite_dir / "jupyter-lite.json").write_text(json.dumps(lite_config(offline), indent=1))
        if out.exists():
            shutil.rmtree(out)
        command = [sys.executable, "-m", "jupyterlite_core", "build", "--lite-dir", str(lite_dir)]
        command += ["--contents", str(contents), "--output-dir", str(out)]
        command += ["--no-sourcemaps", "--no-unused-shared-packages"]
        for wheel in wheels:
            command += ["--piplite-wheels", str(wheel)]
        run(command, "jupyter lite build", cwd=scratch)  # its build database stays in scratch
    return {
        "notebooks": notebooks,
        "wheels": len(wheels),
        "bytes": folder_size(out),
        "seconds": time.perf_counter() - started,
        "offline": offline,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=home.LITE_OUT, help="output folder")
    parser.add_argument(
        "--offline", action="store_true", help="serve Pyodide and every wheel from the build"
    )
    args = parser.parse_args(argv)
    made = build(args.out.resolve(), args.offline)
    variant = "offline: Pyodide served locally" if args.offline else "Pyodide from its CDN"
    print(
        f"{args.out}: {made['notebooks']} notebooks, {made['wheels']} wheels, "
        f"{made['bytes'] / 1e6:.1f} MB ({variant}), built in {made['seconds']:.1f} s"
    )
    print(f"Serve it: python -m http.server --bind 127.0.0.1 -d {args.out} 8000")
    return 0


if __name__ == "__main__":
    sys.exit(main())
