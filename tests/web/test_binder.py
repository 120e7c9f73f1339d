"""Binder (mybinder.org, which builds with repo2docker) can build the course, and the build ends
without a dependency conflict.

- ``test_repo2docker_uses_our_conda_environment``: repo2docker (the version requirements/web.txt
  pins; mybinder.org runs its own, usually newer, so a new repo2docker release is worth a pin
  bump) renders the Dockerfile for the repository, without building it and without warnings. It
  is the conda buildpack, on repo2docker's base environment for the Python environment.yml asks
  for; it copies the repository in, then updates that environment from our environment.yml, then
  runs our postBuild. The Dockerfile is kept in the test's temporary folder.
- ``test_environment_installs_without_conflict``: the environment Binder ends with is
  repo2docker's base environment with environment.yml's pip section installed over it. pip
  installs every pin of requirements/lock.txt (its packages replace the base's) and leaves every
  other package at the base's version, so the final environment is "the lock's pins, plus the
  base's pins for every name the lock does not pin". pip's resolver must accept that set as one
  install (``pip install --dry-run``, against PyPI), and every package in it, the course too
  (postBuild installs it with ``--no-deps``), must find its requirements in it: what ``pip check``
  would say in the built image. The lock must pin notebook to a release whose requirement on
  jupyterlab accepts the lock's jupyterlab, read from notebook's metadata: Binder's base ships
  notebook, and an older one would be left in place next to a newer jupyterlab.

What repo2docker sees: the repository as a commit of the working tree would hold it, i.e. the
files git tracks plus the untracked ones it does not ignore, with their contents on disk, copied
into the test's temporary folder. Binder builds a commit; in CI (a clean checkout) this is exactly
HEAD, and locally it checks the pins being edited rather than the last commit's, while leaving out
.venv, build/ and the other ignored folders that Binder never sees.

Which base pins count: repo2docker installs its base environment from a conda lock file
(``buildpacks/conda/environment.py-X.Y-<platform>.lock``, the file the rendered Dockerfile copies
to $NB_ENVIRONMENT_FILE), then pip-installs $NB_REQUIREMENTS_FILE if there is one. Of the conda
packages, the ones that matter are those that put a Python distribution into site-packages; conda
names them in their build string: conda-build and rattler-build give every package built against
Python a build string starting with ``py`` (``py311h...`` compiled, ``pyh...`` noarch), while
libraries, compilers, nodejs, python itself and metapackages (``typing-extensions``,
``jupyterhub-singleuser``) have builds starting with ``h`` or another prefix. A conda-forge name is
the PyPI name except for the few packages renamed on conda-forge (CONDA_TO_PYPI); a name or
version pip cannot find on PyPI fails the test with that hint.

The resolution needs PyPI: without it the test is skipped with the reason (under CI it fails).
pip runs without the machine's pip configuration files (which may add constraints or local wheel
folders that Binder does not have); PIP_INDEX_URL, PIP_CERT and proxy settings still apply. It
runs on the Python version environment.yml asks for: this interpreter when it is that version
(packages already installed at a pinned version are then read, not downloaded), else a fresh
venv made with ``pythonX.Y`` from PATH. It checks linux on this machine's architecture (Binder
builds linux/amd64).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import need_module, need_program
from headless import missing
from packaging.requirements import Requirement
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the course's own requirements are then not checked
    tomllib = None

ROOT = Path(__file__).resolve().parents[2]
WHAT = "Binder check"
PLATFORM = "linux/amd64"  # what mybinder.org builds
CONDA_PLATFORM = "linux-64"
NB_USER, NB_UID = "jovyan", "1000"  # Binder's user
# conda-forge packages whose PyPI project has another name.
CONDA_TO_PYPI = {
    "brotli-python": "brotli",
    "jupyterhub-base": "jupyterhub",
    "nbconvert-core": "nbconvert",
    "python-fastjsonschema": "fastjsonschema",
}
INTERPRETER = {"python", "cpython", "python_abi"}  # conda packages of the interpreter itself
PYTHON_BUILD = re.compile(r"py(\d+|h)")  # build strings of packages built against Python
# pip settings that only say how to reach the index, kept; every other PIP_* variable is dropped
PIP_CONNECTION = (
    "PIP_INDEX_URL",
    "PIP_CERT",
    "PIP_CLIENT_CERT",
    "PIP_PROXY",
    "PIP_TRUSTED_HOST",
    "PIP_TIMEOUT",
    "PIP_DEFAULT_TIMEOUT",
    "PIP_RETRIES",
)
HOW_PYPI = (
    "The check resolves the pins against PyPI with pip (pip's configuration files are not read; "
    "PIP_INDEX_URL, PIP_CERT and the proxy variables are)"
)
# repo2docker's command line, with every WARNING it logs (or Python warning) kept in a file.
RENDER = """
import logging, sys
from repo2docker.__main__ import main
handler = logging.FileHandler(sys.argv.pop(1))
handler.setLevel(logging.WARNING)
handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
logging.getLogger().addHandler(handler)
logging.captureWarnings(True)
sys.argv[0] = "repo2docker"
main()
"""


def canon(name: str) -> str:
    """A distribution name as PyPI compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Render:
    """The repository as Binder gets it, and repo2docker's Dockerfile for it."""

    folder: Path  # the test's temporary folder
    repository: Path
    dockerfile: str
    warnings: str
    python: str  # "X.Y", from environment.yml
    environment: dict

    def steps(self) -> list[tuple[str, str]]:
        """The Dockerfile's instructions, as (KEYWORD, arguments), continuation lines joined."""
        steps, pending = [], ""
        for line in self.dockerfile.splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            pending += line.rstrip()
            if pending.endswith("\\"):
                pending = pending[:-1] + " "
                continue
            keyword, _, rest = pending.strip().partition(" ")
            steps.append((keyword.upper(), rest.strip()))
            pending = ""
        return steps

    def env(self) -> dict[str, str]:
        """The variables the Dockerfile's ENV instructions set."""
        found = {}
        for keyword, rest in self.steps():
            if keyword == "ENV":
                for item in shlex.split(rest):
                    key, _, value = item.partition("=")
                    found[key] = value
        return found

    def copies(self) -> list[tuple[int, list[str], str]]:
        """The COPY instructions: (step number, sources, destination)."""
        found = []
        for number, (keyword, rest) in enumerate(self.steps()):
            if keyword == "COPY":
                words = [word for word in rest.split() if not word.startswith("--")]
                found.append((number, words[:-1], words[-1]))
        return found

    def base_environment(self) -> tuple[Path, Path | None]:
        """repo2docker's files for its base environment: the conda lock it installs first, and
        the pip requirements it installs next, if any (host paths, from the COPY instructions)."""
        with warnings.catch_warnings():  # repo2docker's own imports warn of deprecations
            warnings.simplefilter("ignore", DeprecationWarning)
            from repo2docker.buildpacks.base import BuildPack

        conda_folder = Path(sys.modules[BuildPack.__module__].__file__).parent / "conda"
        by_context_name = {
            BuildPack.generate_build_context_filename(str(path))[0]: path
            for path in conda_folder.iterdir()
        }
        env = self.env()
        assert "NB_ENVIRONMENT_FILE" in env, (
            f"repo2docker's Dockerfile sets no NB_ENVIRONMENT_FILE: it is not the conda "
            f"buildpack's ({self.folder / 'Dockerfile'})"
        )

        def copied_to(destination: str) -> Path:
            sources = [sources for _, sources, dest in self.copies() if dest == destination]
            assert len(sources) == 1 and len(sources[0]) == 1, (
                f"repo2docker's Dockerfile does not copy exactly one file to {destination}"
            )
            assert sources[0][0] in by_context_name, (
                f"{sources[0][0]}, copied to {destination}, is none of {conda_folder}'s files"
            )
            return by_context_name[sources[0][0]]

        requirements = env.get("NB_REQUIREMENTS_FILE")
        return (
            copied_to(env["NB_ENVIRONMENT_FILE"]),
            copied_to(requirements) if requirements else None,
        )


def commit_snapshot(git: str, target: Path) -> Path:
    """Copy what a commit of the working tree would hold (tracked files and untracked ones that
    are not ignored, as they are on disk) to ``target``."""
    top = subprocess.run(
        [git, "-C", str(ROOT), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != ROOT:
        missing(WHAT, f"{ROOT} is not the top of a git checkout", "Run it in a clone")
    listed = subprocess.run(
        [git, "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    for name in sorted(set(listed.stdout.decode().split("\0")) - {""}):
        source = ROOT / name
        if source.is_dir() and not source.is_symlink():  # a submodule
            continue
        if not source.exists() and not source.is_symlink():  # deleted, not yet committed
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name, follow_symlinks=False)
    return target


@pytest.fixture(scope="module")
def render(tmp_path_factory) -> Render:
    """repo2docker's Dockerfile for the repository, rendered with ``--no-build``."""
    with warnings.catch_warnings():  # repo2docker's own imports warn of deprecations
        warnings.simplefilter("ignore", DeprecationWarning)
        need_module(WHAT, "repo2docker")
    need_module(WHAT, "ruamel.yaml")
    git = need_program(WHAT, "git")
    folder = tmp_path_factory.mktemp("binder")
    repository = commit_snapshot(git, folder / "repository")
    workdir = folder / "render"  # repo2docker reads repo2docker_config.py from its cwd
    workdir.mkdir()
    command = [
        sys.executable,
        "-c",
        RENDER,
        str(folder / "repo2docker-warnings.txt"),
        "--no-build",
        "--debug",
        f"--user-name={NB_USER}",
        f"--user-id={NB_UID}",
        f"--Repo2Docker.platform={PLATFORM}",
        str(repository),
    ]
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300)
    (folder / "Dockerfile").write_text(done.stdout, encoding="utf-8")
    (folder / "repo2docker.log").write_text(done.stderr, encoding="utf-8")
    print(f"repo2docker's Dockerfile: {folder / 'Dockerfile'} (its log: repo2docker.log)")
    assert done.returncode == 0 and "FROM " in done.stdout, (
        f"repo2docker --no-build failed ({done.returncode}):\n{done.stderr[-3000:]}"
    )

    from ruamel.yaml import YAML

    environment_yml = repository / "environment.yml"
    assert environment_yml.is_file(), "there is no environment.yml at the repository's root"
    environment = YAML(typ="safe").load(environment_yml.read_text(encoding="utf-8")) or {}
    pythons = [
        found.group(1)
        for dep in environment.get("dependencies", [])
        if isinstance(dep, str) and (found := re.fullmatch(r"python\s*=+\s*(\d+\.\d+)\S*", dep))
    ]
    assert len(pythons) == 1, (
        "environment.yml must pin Python once, e.g. `python=3.11` (without a pin repo2docker "
        f"picks its default and warns); found {pythons}"
    )
    return Render(
        folder=folder,
        repository=repository,
        dockerfile=done.stdout,
        warnings=(folder / "repo2docker-warnings.txt").read_text(encoding="utf-8").strip(),
        python=pythons[0],
        environment=environment,
    )


def test_repo2docker_uses_our_conda_environment(render):
    assert not render.warnings, f"repo2docker warns while rendering:\n{render.warnings}"
    base_lock, _ = render.base_environment()
    assert base_lock.name == f"environment.py-{render.python}-{CONDA_PLATFORM}.lock", (
        f"repo2docker's base environment is {base_lock.name}, not the one for environment.yml's "
        f"Python {render.python} on {CONDA_PLATFORM}"
    )
    env = render.env()
    assert "KERNEL_ENVIRONMENT_FILE" not in env, "repo2docker made a separate kernel environment"

    steps = render.steps()
    repository_copies = [number for number, _, dest in render.copies() if dest == "${REPO_DIR}/"]
    updates = [
        number
        for number, (keyword, rest) in enumerate(steps)
        if keyword == "RUN"
        and re.search(r"\benv update\b", rest)
        and re.search(r"""--file\s+["']?environment\.yml\b""", rest)
    ]
    post_builds = [
        number
        for number, (keyword, rest) in enumerate(steps)
        if keyword == "RUN" and rest == "./postBuild"
    ]
    where = f"(see {render.folder / 'Dockerfile'})"
    assert len(repository_copies) == 1, f"the Dockerfile does not copy the repository {where}"
    assert len(updates) == 1, f"the Dockerfile does not apply our environment.yml {where}"
    assert len(post_builds) == 1, f"the Dockerfile does not run our postBuild {where}"
    # environment.yml's pip section reads requirements/lock.txt, so the repository must be there
    assert repository_copies[0] < updates[0], (
        f"the environment is updated before the repository (and requirements/) is copied {where}"
    )
    assert updates[0] < post_builds[0], f"postBuild runs before the environment exists {where}"
    post_build = render.repository / "postBuild"
    assert post_build.read_text(encoding="utf-8").startswith("#!"), "postBuild has no #! line"
    print(
        f"conda buildpack: base environment {base_lock.name}, then environment.yml "
        f"(step {updates[0]}), then postBuild (step {post_builds[0]})"
    )


def pip_environment() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PIP_") or key in PIP_CONNECTION
    }
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


def binder_python(version: str, folder: Path) -> str:
    """An interpreter of Binder's Python version with pip: this one, or a fresh venv."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    program = need_program(WHAT, f"python{version}")
    venv = folder / f"python{version}"
    made = subprocess.run(
        [program, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=300
    )
    if made.returncode != 0:
        missing(WHAT, f"`{program} -m venv` failed: {made.stderr.strip()[-500:]}", HOW_PYPI)
    return str(venv / "bin" / "python")


def pip(python: str, *args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, "-m", "pip", *args],
        cwd=cwd,
        env=pip_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def conda_lock_pins(path: Path) -> dict[str, tuple[str, str]]:
    """canonical name -> (PyPI name, version) of the Python packages of an explicit conda lock."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith(("http://", "https://")):
            continue
        filename = line.split("#", 1)[0].rsplit("/", 1)[1]
        stem = re.sub(r"\.(conda|tar\.bz2)$", "", filename)
        name, version, build = stem.rsplit("-", 2)
        if name in INTERPRETER or not PYTHON_BUILD.match(build):
            continue
        name = CONDA_TO_PYPI.get(name, name)
        pins[canon(name)] = (name, version)
    return pins


def requirement_pins(lines: list[str], folder: Path, origin: str, pins: dict, top: Path) -> None:
    """Add the exact pins of pip requirement lines (following ``-r`` relative to ``folder``) to
    ``pins``: canonical name -> (name, version, the file, relative to ``top``)."""
    for raw in lines:
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        nested = re.fullmatch(r"(?:-r|--requirement)\s*=?\s*(\S+)", line)
        if nested:
            path = folder / nested.group(1)
            lines_there = path.read_text(encoding="utf-8").splitlines()
            where = path.relative_to(top) if path.is_relative_to(top) else path
            requirement_pins(lines_there, path.parent, str(where), pins, top)
            continue
        assert not line.startswith("-"), f"{origin}: the check does not model `{line}`"
        requirement = Requirement(line)
        if requirement.marker and not requirement.marker.evaluate():
            continue
        specs = list(requirement.specifier)
        assert len(specs) == 1 and specs[0].operator in ("==", "==="), (
            f"{origin}: {line} is not an exact pin; Binder's environment would then depend on "
            "the day it is built"
        )
        pins[canon(requirement.name)] = (requirement.name, specs[0].version, origin)


def conflict_excerpt(output: str, cwd: Path) -> str:
    """pip's account of a failed resolution, each ``-r FILE (line N)`` replaced by that line."""

    def line_of(found: re.Match) -> str:
        path = cwd / found.group(1)
        lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        number = int(found.group(2))
        pin = lines[number - 1].strip() if 0 < number <= len(lines) else found.group(0)
        return f"{pin} (from {path.name})"

    lines = [re.sub(r"-r (\S+) \(line (\d+)\)", line_of, line) for line in output.splitlines()]
    keep = [
        line
        for number, line in enumerate(lines)
        if line.startswith(("ERROR", "The conflict is caused by"))
        or (line.startswith("    ") and "The conflict is caused by:" in lines[:number])
    ]
    return "\n".join(keep) or output[-3000:]


def test_environment_installs_without_conflict(render, tmp_path):
    # environment.yml: conda installs python and pip, pip installs its pip section
    conda_deps = [dep for dep in render.environment["dependencies"] if isinstance(dep, str)]
    pip_sections = [
        dep["pip"] for dep in render.environment["dependencies"] if isinstance(dep, dict)
    ]
    conda_names = {re.split(r"[\s=<>!~]", dep, maxsplit=1)[0] for dep in conda_deps}
    assert conda_names <= {"python", "pip"}, (
        f"environment.yml installs conda packages {sorted(conda_names - {'python', 'pip'})}; "
        "this check models only python, pip and the pip section"
    )
    assert len(pip_sections) == 1, "environment.yml needs one pip section"
    lock: dict[str, tuple[str, str, str]] = {}
    requirement_pins(pip_sections[0], render.repository, "environment.yml", lock, render.repository)

    base_lock, base_requirements = render.base_environment()
    base = {key: (*pin, "repo2docker's base") for key, pin in conda_lock_pins(base_lock).items()}
    if base_requirements:
        requirement_pins(
            base_requirements.read_text(encoding="utf-8").splitlines(),
            base_requirements.parent,
            "repo2docker's base",
            base,
            base_requirements.parent,
        )
    kept = {key: pin for key, pin in base.items() if key not in lock}
    final = {**kept, **lock}

    python = binder_python(render.python, tmp_path)
    probe = pip(
        python,
        "index",
        "versions",
        "jupyterlab",
        "--retries",
        "1",
        "--timeout",
        "30",
        cwd=tmp_path,
        timeout=120,
    )
    if probe.returncode != 0:
        index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple")
        causes = re.findall(r"\[Errno -?\d+\][^'\"]*|SSLError\(.{0,120}|timed out", probe.stderr)
        said = (causes or probe.stderr.strip().splitlines() or ["no message"])[-1]
        missing(WHAT, f"pip cannot reach the package index {index} ({said})", HOW_PYPI)

    # the pip section as mamba hands it to pip: a requirements file beside environment.yml
    pip_section = render.repository / "binder-pip-section.txt"
    pip_section.write_text("\n".join(pip_sections[0]) + "\n", encoding="utf-8")
    kept_file = tmp_path / "binder-base-kept.txt"
    kept_file.write_text(
        f"# {base_lock.name}: the Python packages requirements/lock.txt does not pin\n"
        + "".join(f"{name}=={version}\n" for name, version, _ in kept.values()),
        encoding="utf-8",
    )
    report = tmp_path / "pip-report.json"
    resolved = pip(
        python,
        "install",
        "--dry-run",
        "--report",
        str(report),
        "-r",
        str(pip_section),
        "-r",
        str(kept_file),
        cwd=render.repository,
    )
    (tmp_path / "pip.log").write_text(resolved.stdout + resolved.stderr, encoding="utf-8")
    if resolved.returncode != 0:
        hint = ""
        if "No matching distribution found" in resolved.stdout + resolved.stderr:
            hint = (
                "\n(a base package pip cannot find on PyPI: if conda-forge names it differently "
                "from PyPI, add it to CONDA_TO_PYPI)"
            )
        excerpt = conflict_excerpt(resolved.stdout + resolved.stderr, render.repository)
        pytest.fail(
            f"pip cannot install environment.yml's pins together with the {len(kept)} packages "
            f"of repo2docker's base environment ({base_lock.name}) that they leave in place "
            f"({kept_file}):\n{excerpt}{hint}",
            pytrace=False,
        )

    # every package's metadata: pip's report for what it would install, pip inspect for the rest
    data = json.loads(report.read_text(encoding="utf-8"))
    marker_env = {**data["environment"], "extra": ""}
    metadata = {canon(item["metadata"]["name"]): item["metadata"] for item in data["install"]}
    inspected = pip(python, "inspect", "--local", cwd=tmp_path, timeout=120)
    assert inspected.returncode == 0, inspected.stderr[-2000:]
    for item in json.loads(inspected.stdout)["installed"]:
        metadata.setdefault(canon(item["metadata"]["name"]), item["metadata"])

    # the final environment, and what each of its packages requires (pip check's view)
    requires = {}
    if tomllib:
        pyproject = (render.repository / "pyproject.toml").read_text(encoding="utf-8")
        project = tomllib.loads(pyproject)["project"]
        requires[f"{project['name']} (postBuild, --no-deps)"] = project.get("dependencies", [])
    for key, (name, version, origin) in final.items():
        found = metadata.get(key)
        assert found and Version(found["version"]) == Version(version), (
            f"pip gave no metadata for {name} {version} ({origin})"
        )
        requires[f"{name} {version} ({origin})"] = found.get("requires_dist", [])
    problems = []
    for who, lines in requires.items():
        for line in lines:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate(marker_env):
                continue
            have = final.get(canon(requirement.name))
            if have is None:
                problems.append(f"{who} requires {requirement}, which Binder would not have")
            elif not requirement.specifier.contains(have[1], prereleases=True):
                problems.append(
                    f"{who} requires {requirement}, but Binder would have {have[0]} {have[1]} "
                    f"({have[2]})"
                )
    assert not problems, "Binder's environment would be inconsistent:\n" + "\n".join(problems)

    # notebook: Binder's base ships it, so the lock pins one that accepts the lock's jupyterlab
    base_notebook = base["notebook"][1] if "notebook" in base else "(none)"
    assert "notebook" in lock, (
        f"environment.yml's pins leave repo2docker's notebook {base_notebook} in place; pin "
        "notebook in requirements/lock.txt to a release that accepts its jupyterlab"
    )
    assert "jupyterlab" in lock, "environment.yml's pins do not pin jupyterlab"
    notebook_needs = [Requirement(line) for line in metadata["notebook"].get("requires_dist", [])]
    wanted = [
        need
        for need in notebook_needs
        if canon(need.name) == "jupyterlab"
        and (not need.marker or need.marker.evaluate(marker_env))
    ]
    jupyterlab = lock["jupyterlab"][1]
    assert wanted and all(r.specifier.contains(jupyterlab, prereleases=True) for r in wanted), (
        f"notebook {lock['notebook'][1]} requires {[str(r) for r in wanted]}, which does not "
        f"accept the lock's jupyterlab {jupyterlab}"
    )
    print(
        f"{len(lock)} pins from environment.yml + {len(kept)} kept from {base_lock.name} "
        f"({len(base)} Python packages there): pip resolves them together and each finds its "
        f"requirements; notebook {lock['notebook'][1]} requires {wanted[0]}, the lock has "
        f"jupyterlab {jupyterlab} (pip's report: {report})"
    )
