"""A class on JupyterHub, end to end on 127.0.0.1: what a learner does, and what an instructor's
update does to the learner's work.

The hub runs deploy/jupyterhub/jupyterhub_config.py (the one-machine class) with the test's
changes on top: the dummy authenticator and the simple local spawner, free ports, the proxy
from tools/web/node_modules, its database, cookie secret and the learner's home in the test's
temporary folder. The "upstream" the learner pulls from is a clone of this repository's HEAD
under tmp, so the instructor's update is a commit there. The test then:

1. starts the hub, and the learner's server through the hub's REST API (an admin service token);
2. pulls the course with nbgitpuller, through the route the link's page calls (git-pull/api);
3. runs chapter 0 in a kernel of the learner's own server, over its websocket, every cell
   without an error; meanwhile, in an offline chromium, the learner logs in through the form and
   opens the nbgitpuller link (tools/home.py's, pointed at the upstream), which lands in
   JupyterLab on the primer: a screenshot of it is saved in the test's folder;
4. answers a question of the chapter 0 exercises through the server's contents API (JupyterLab's
   save), commits an update upstream that rewrites the same line and another file, and pulls
   again: nbgitpuller commits the learner's work and merges with -Xours, the learner's line wins;
5. runs ``reset()`` in a kernel in the learner's exercises folder: the notebook is the updated
   upstream copy again, and the learner's answer is kept as a backup.

Hub start and spawn times are printed, not asserted; timeouts are safety limits only, and a
failure shows the end of the hub's log. The hub, the proxy, the server and its kernels are
always stopped. Missing tools skip the test with the reason (under CI they fail it): `make web`
installs them, `make browser` the browser.
"""

from __future__ import annotations

import ast
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
from conftest import need_module, need_npm, need_program
from headless import free_port, private_jupyter_env
from tool_loader import load_tool

ROOT = Path(__file__).resolve().parents[2]
home = load_tool("home")  # the repository's address, and the link made from it
DEPLOY = ROOT / "deploy" / "jupyterhub"
WHAT = "the JupyterHub class test"

LEARNER = "learner"
CHAPTER = "notebooks/00-toolkit.ipynb"
EXERCISE = "exercises/00-toolkit-exercises.ipynb"
STUB = "final_value = ...  # Your answer here"  # question 0.1 of the chapter 0 exercises
ANSWER = "final_value = 4  # the learner's answer"
UPDATED_STUB = "final_value = ...  # Your answer here: a whole number"
UPDATE_NOTE = "\nThe course was updated during the class.\n"

# JupyterLab 4.6's open notebook.
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"
KERNEL_IDLE = re.compile(r"^Python 3 \(ipykernel\) \| Idle$")  # the status bar's kernel item

# The figures the sizing rests on (INSTRUCTORS.md, deploy/jupyterhub/), in MiB.
SERVER_MIB, KERNEL_MIB = 133, 141

# Safety limits only, in seconds; nothing is asserted about how long anything takes.
HUB_START_TIMEOUT = 120
SPAWN_TIMEOUT = 180
PULL_TIMEOUT = 180
CELL_TIMEOUT = 300
CHAPTER_TIMEOUT = 900
PAGE_TIMEOUT = 120
STOP_TIMEOUT = 30


# --- the two deployments' files -------------------------------------------------------------


def one_machine_config():
    """deploy/jupyterhub/jupyterhub_config.py as jupyterhub loads it (traitlets' loader)."""
    need_module(WHAT, "jupyterhub")
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("jupyterhub_config.py", str(DEPLOY)).load_config()


def helm_values() -> dict:
    need_module(WHAT, "ruamel.yaml")
    from ruamel.yaml import YAML

    return YAML(typ="safe").load((DEPLOY / "values.yaml").read_text(encoding="utf-8"))


def mebibytes(size: str) -> float:
    """A JupyterHub byte size ("384M", "1G") in MiB; its suffixes are powers of 1024."""
    from jupyterhub.traitlets import ByteSpecification

    return ByteSpecification().validate(None, size) / 2**20


def test_the_one_machine_config_loads_with_its_key_settings():
    config = one_machine_config()
    from jupyterhub.app import JupyterHub
    from jupyterhub.auth import PAMAuthenticator
    from jupyterhub.spawner import LocalProcessSpawner

    hub = JupyterHub(config=config)
    assert issubclass(hub.authenticator_class, PAMAuthenticator)
    assert hub.concurrent_spawn_limit >= 30 and hub.active_server_limit >= 30
    spawner = LocalProcessSpawner(config=config)
    assert spawner.cmd == [str(ROOT / ".venv" / "bin" / "jupyterhub-singleuser")]
    assert spawner.default_url == "/lab"
    # a learner's limit holds the server and at least two open chapters' kernels
    assert spawner.mem_limit / 2**20 >= SERVER_MIB + 2 * KERNEL_MIB
    args = " ".join(spawner.args)
    assert "cull_idle_timeout" in args and "shutdown_no_activity_timeout" in args
    assert f"--LabApp.app_settings_dir={ROOT / 'tools' / 'lab-settings'}" in spawner.args
    services = [s["name"] for s in config.JupyterHub.get("services", [])]
    try:
        import jupyterhub_idle_culler  # noqa: F401
    except ImportError:
        assert services == []  # the hub's culler only when it is installed
    else:
        assert services == ["idle-culler"]


def test_the_helm_values_are_sized_from_the_measurements():
    values = helm_values()
    user = values["singleuser"]
    assert user["image"]["name"] and user["image"]["tag"] not in ("", "latest")
    assert user["defaultUrl"] == "/lab"
    memory, cpu = user["memory"], user["cpu"]
    assert mebibytes(memory["guarantee"]) >= SERVER_MIB + KERNEL_MIB  # a server and a kernel
    assert mebibytes(memory["guarantee"]) <= mebibytes(memory["limit"])
    assert 0 < cpu["guarantee"] <= cpu["limit"]
    assert user["storage"]["type"] == "dynamic" and user["storage"]["capacity"]
    # the same learner's limit and idle hour as the one machine
    config = one_machine_config()
    assert mebibytes(memory["limit"]) == mebibytes(config.Spawner.mem_limit)
    assert values["cull"]["enabled"] is True
    assert f"shutdown_no_activity_timeout={values['cull']['timeout']}" in " ".join(
        config.Spawner.args
    )
    scheduling = values["scheduling"]
    assert scheduling["userScheduler"]["enabled"] and scheduling["podPriority"]["enabled"]
    assert scheduling["userPlaceholder"]["enabled"] and scheduling["userPlaceholder"]["replicas"]
    assert values["prePuller"]["hook"]["enabled"] and values["prePuller"]["continuous"]["enabled"]
    # the single-user servers' options match the one machine's, the image's paths aside
    (extra,) = values["hub"]["extraConfig"].values()
    assignment = ast.parse(extra).body[0]
    helm_args = ast.literal_eval(assignment.value)
    assert helm_args == [
        arg.replace(str(ROOT), "/srv/unlocking-qemu") for arg in config.Spawner.args
    ]


def test_the_nbgitpuller_link_shown_to_instructors_is_the_one_tools_home_makes():
    link = home.nbgitpuller_url("https://hub.example.edu")
    assert link in (ROOT / "INSTRUCTORS.md").read_text(encoding="utf-8")
    assert link in (DEPLOY / "values.yaml").read_text(encoding="utf-8")
    printed = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "home.py"), "nbgitpuller", "https://hub.example.edu"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert printed.stdout == link + "\n"


# --- the hub ------------------------------------------------------------------------------


@dataclass
class Hub:
    """A running hub: its public address (the proxy's), an admin service token, its log."""

    url: str
    token: str
    log: Path
    process: subprocess.Popen
    timings: dict[str, float] = field(default_factory=dict)

    def log_tail(self, chars: int = 4000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-chars:] or "(empty)"

    def fail(self, message: str) -> None:
        pytest.fail(f"{message}\n--- the hub's log (end) ---\n{self.log_tail()}", pytrace=False)

    def request(self, method: str, path: str, *, expect=(200,), timeout=30, **kwargs):
        import requests

        try:
            response = requests.request(
                method,
                self.url + path,
                headers={"Authorization": f"token {self.token}"},
                timeout=timeout,
                **kwargs,
            )
        except requests.RequestException as error:
            self.fail(f"{method} {path}: {error}")
        if response.status_code not in expect:
            self.fail(f"{method} {path}: HTTP {response.status_code}: {response.text[:800]}")
        return response

    def until(self, what: str, ready: Callable[[], Any], timeout: float) -> Any:
        """Poll ``ready()`` until it returns something true; fail after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.fail(f"the hub exited (status {self.process.returncode}) while {what}")
            value = ready()
            if value:
                return value
            time.sleep(0.2)
        self.fail(f"gave up after {timeout} s (a safety limit): {what}")


def hub_config(tmp: Path, ports: dict[str, int], token: str) -> str:
    """The test's jupyterhub_config.py: the one-machine config, then the test's changes."""
    proxy = need_npm(WHAT, "configurable-http-proxy") / "bin" / "configurable-http-proxy"
    singleuser = need_program(WHAT, "jupyterhub-singleuser")
    settings = {
        "JupyterHub.authenticator_class": "dummy",
        "JupyterHub.spawner_class": "simple",
        "JupyterHub.bind_url": f"http://127.0.0.1:{ports['public']}",
        "JupyterHub.hub_bind_url": f"http://127.0.0.1:{ports['hub']}",
        "JupyterHub.db_url": f"sqlite:///{tmp / 'jupyterhub.sqlite'}",
        "JupyterHub.cookie_secret_file": str(tmp / "jupyterhub_cookie_secret"),
        "ConfigurableHTTPProxy.api_url": f"http://127.0.0.1:{ports['proxy_api']}",
        "ConfigurableHTTPProxy.command": [str(proxy)],
        "ConfigurableHTTPProxy.pid_file": str(tmp / "jupyterhub-proxy.pid"),
        "SimpleLocalProcessSpawner.home_dir_template": str(tmp / "home" / "{username}"),
        "Spawner.cmd": [singleuser],
        # the learner's home is in tmp; these keep git and Jupyter from reading the machine's
        "Spawner.environment": {
            "JUPYTER_PLATFORM_DIRS": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        },
    }
    lines = [
        '"""The class test\'s hub: the one-machine config, then the test\'s changes."""',
        "c = get_config()  # noqa: F821",
        f"load_subconfig({str(DEPLOY / 'jupyterhub_config.py')!r})  # noqa: F821",
        *(f"c.{name} = {value!r}" for name, value in settings.items()),
        f"c.JupyterHub.services.append({{'name': 'class-test', 'api_token': {token!r}}})",
        "c.JupyterHub.load_roles.append({'name': 'class-test', 'services': ['class-test'],"
        " 'scopes': ['admin:users', 'admin:servers', 'access:servers']})",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI run as root
        lines.append("c.Spawner.args.append('--ServerApp.allow_root=True')")
    return "\n".join(lines) + "\n"


#: git, for the test and the hub: no settings of the machine's or its user's.
GIT_ENV = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def private_env(tmp: Path) -> dict[str, str]:
    """The hub's environment: the Makefile's private Jupyter folders (its ISOLATED), in tmp."""
    return private_jupyter_env(tmp / "jupyter", GIT_ENV)


def stop(hub: Hub) -> None:
    """Stop the learner's server and the hub, then anything either left running."""
    import psutil

    try:
        started = psutil.Process(hub.process.pid).children(recursive=True)
    except psutil.Error:
        started = []
    if hub.process.poll() is None:
        try:  # stop the learner's server the hub's way first
            hub.request("DELETE", f"/hub/api/users/{LEARNER}/server", expect=(202, 204, 400, 404))
        except BaseException as error:  # noqa: BLE001 (teardown goes on whatever happened)
            print(f"could not stop the learner's server through the hub: {error}")
        hub.process.send_signal(signal.SIGTERM)  # the hub stops its proxy and servers
        try:
            hub.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            hub.process.kill()
            hub.process.wait(timeout=STOP_TIMEOUT)

    def running(process: psutil.Process) -> bool:
        try:
            return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    left = stopped = [p for p in started if running(p)]
    for signal_them in ("terminate", "kill"):
        for process in left:
            try:
                getattr(process, signal_them)()
            except psutil.Error:  # it ended meanwhile
                pass
        left = psutil.wait_procs(left, timeout=10)[1]
    if stopped:
        print(f"stopped {len(stopped)} process(es) the hub left running:", *stopped, sep="\n  ")


@pytest.fixture
def hub(tmp_path) -> Iterator[Hub]:
    for module in ("jupyterhub", "nbgitpuller", "requests", "websocket", "psutil"):
        need_module(WHAT, module)
    need_program(WHAT, "git")
    need_program(WHAT, "node")
    jupyterhub = need_program(WHAT, "jupyterhub")
    folder = tmp_path / "hub"
    folder.mkdir()
    ports = {name: free_port() for name in ("public", "hub", "proxy_api")}
    token = secrets.token_hex(32)
    config = folder / "jupyterhub_config.py"
    config.write_text(hub_config(folder, ports, token))
    log = folder / "jupyterhub.log"
    started = time.monotonic()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [jupyterhub, "-f", str(config)],
            cwd=folder,
            env=private_env(folder),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Hub(f"http://127.0.0.1:{ports['public']}", token, log, process)
    try:
        running.until(
            "the hub started", lambda: answers(running.url + "/hub/api/"), HUB_START_TIMEOUT
        )
        running.timings["hub start"] = time.monotonic() - started
        yield running
    finally:
        stop(running)


def answers(url: str) -> bool:
    import requests

    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


# --- what the learner does ------------------------------------------------------------------


def start_server(hub: Hub) -> None:
    hub.request("POST", f"/hub/api/users/{LEARNER}", expect=(201,))
    started = time.monotonic()
    hub.request("POST", f"/hub/api/users/{LEARNER}/server", expect=(201, 202))

    def ready() -> bool:
        user = hub.request("GET", f"/hub/api/users/{LEARNER}").json()
        return bool(user.get("servers", {}).get("", {}).get("ready"))

    hub.until("the learner's server started", ready, SPAWN_TIMEOUT)
    hub.timings["learner's server"] = time.monotonic() - started


def pull(hub: Hub, repo: str, branch: str) -> str:
    """One nbgitpuller pull, through the API the link's page streams (git-pull/api)."""
    query = urlencode({"repo": repo, "branch": branch})
    response = hub.request(
        "GET", f"/user/{LEARNER}/git-pull/api?{query}", stream=True, timeout=(30, PULL_TIMEOUT)
    )
    lines, phase = [], None
    with response:
        for line in response.iter_lines(decode_unicode=True):
            if not line or not line.startswith("data: "):
                continue
            event = json.loads(line.removeprefix("data: "))
            phase = event.get("phase")
            lines.append(event.get("output") or event.get("message") or "")
            if phase in ("finished", "error"):
                break
    output = "".join(lines)
    if phase != "finished":
        hub.fail(f"nbgitpuller ended in phase {phase!r}:\n{output}")
    return output


@dataclass
class Ran:
    """One cell run in a kernel: the execute_reply's status and the outputs' messages."""

    status: str
    outputs: list[dict]

    def text(self) -> str:
        return "".join(m["content"].get("text", "") for m in self.outputs)

    def errors(self) -> list[str]:
        return [
            f"{m['content']['ename']}: {m['content']['evalue']}"
            for m in self.outputs
            if m["msg_type"] == "error"
        ]


class Kernel:
    """A kernel of the learner's server, started in ``folder`` (relative to the learner's home),
    run over the server's websocket as JupyterLab runs it."""

    def __init__(self, hub: Hub, folder: str) -> None:
        import websocket

        self.hub = hub
        started = hub.request(
            "POST",
            f"/user/{LEARNER}/api/kernels",
            json={"name": "python3", "path": folder},
            expect=(201,),
        )
        self.id = started.json()["id"]
        url = urlsplit(hub.url)._replace(scheme="ws").geturl()
        self.ws = websocket.create_connection(
            f"{url}/user/{LEARNER}/api/kernels/{self.id}/channels",
            header=[f"Authorization: token {hub.token}"],
            timeout=60,
        )
        self.session = uuid.uuid4().hex

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc) -> None:
        self.ws.close()
        self.hub.request("DELETE", f"/user/{LEARNER}/api/kernels/{self.id}", expect=(204, 404))

    def run(self, code: str) -> Ran:
        import websocket

        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "session": self.session,
            "username": LEARNER,
            "version": "5.3",
        }
        content = {"code": code, "silent": False, "store_history": True, "allow_stdin": False}
        request = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
        self.ws.send(json.dumps({**request, "channel": "shell", "buffers": []}))
        status, idle, outputs = None, False, []
        deadline = time.monotonic() + CELL_TIMEOUT
        while status is None or not idle:
            self.ws.settimeout(max(1.0, deadline - time.monotonic()))
            try:
                frame = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                self.hub.fail(
                    f"no answer from the kernel in {CELL_TIMEOUT} s (a safety limit) to:\n{code}"
                )
            if not isinstance(frame, str):  # a binary frame: a widget's buffers
                continue
            message = json.loads(frame)
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message["msg_type"]
            if kind == "execute_reply":
                status = message["content"]["status"]
            elif kind == "status":
                idle = message["content"]["execution_state"] == "idle"
            elif kind in ("stream", "error", "execute_result", "display_data"):
                outputs.append(message)
        return Ran(status, outputs)


def run_notebook(hub: Hub, notebook: Path, folder: str, stop: threading.Event) -> list[str]:
    """Run ``notebook``'s code cells in a new kernel in ``folder``; return what went wrong."""
    problems = []
    with Kernel(hub, folder) as kernel:
        where = kernel.run("import os; print(os.getcwd())").text().strip()
        if Path(where) != notebook.parent:
            problems.append(f"the kernel runs in {where}, not in the learner's {notebook.parent}")
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        for number, cell in enumerate(cells):
            if stop.is_set():
                problems.append("stopped: the test failed elsewhere")
                break
            if cell["cell_type"] != "code":
                continue
            ran = kernel.run("".join(cell["source"]))
            for error in ran.errors() or ([] if ran.status == "ok" else [ran.status]):
                problems.append(f"cell {number}: {error}")
    return problems


def edit_in_lab(hub: Hub, path: str, old: str, new: str) -> None:
    """What JupyterLab does when the learner edits a cell and saves: the contents API."""
    model = hub.request("GET", f"/user/{LEARNER}/api/contents/{path}?content=1").json()
    cells = [c for c in model["content"]["cells"] if old in c["source"]]
    assert len(cells) == 1, f"{path} should have one cell with {old!r}"
    cells[0]["source"] = cells[0]["source"].replace(old, new)
    body = {"type": "notebook", "format": "json", "content": model["content"]}
    hub.request("PUT", f"/user/{LEARNER}/api/contents/{path}", json=body)


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=GIT_ENV)
    assert done.returncode == 0, f"git {' '.join(args)} failed: {done.stderr}"
    return done.stdout


def instructor_commits(upstream: Path, exercise_line: tuple[str, str]) -> None:
    """The instructor's update: a line of the exercise notebook, and another file."""
    exercise = upstream / EXERCISE
    text = exercise.read_text(encoding="utf-8")
    assert text.count(exercise_line[0]) == 1
    exercise.write_text(text.replace(*exercise_line), encoding="utf-8")
    with open(upstream / "README.md", "a", encoding="utf-8") as readme:
        readme.write(UPDATE_NOTE)
    author = ("-c", "user.name=Instructor", "-c", "user.email=instructor@example.edu")
    git(*author, "commit", "-q", "-am", "An update during the class", cwd=upstream)


def open_the_link_in_chromium(page, offline_log, hub: Hub, link: str, shot: Path) -> None:
    """The learner logs in through the form, opens the link, and lands in JupyterLab."""
    timeout = PAGE_TIMEOUT * 1000
    try:
        page.goto(f"{hub.url}/hub/login", timeout=timeout)
        page.fill("#username_input", LEARNER)
        page.fill("#password_input", "any password will do")
        page.click("#login_submit")
        page.wait_for_url(re.compile(rf"/user/{LEARNER}/"), timeout=timeout)
        page.goto(link, timeout=timeout)
        primer = Path(parse_qs(urlsplit(link).query)["urlpath"][0]).name
        tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tabLabel", has_text=primer)
        tab.first.wait_for(timeout=timeout)
        # the notebook drawn, and its kernel, in the learner's server, started and idle
        page.locator(f"{NOTEBOOK} .jp-MarkdownCell .jp-RenderedMarkdown").first.wait_for(
            timeout=timeout
        )
        page.get_by_text(KERNEL_IDLE).first.wait_for(timeout=timeout)
        assert f"/user/{LEARNER}/lab" in page.url, page.url
    except Exception as error:
        hub.fail(
            f"the learner did not reach JupyterLab through the link ({error})\n"
            f"page: {page.url}\nbrowser log:\n{offline_log.text()}"
        )
    finally:
        try:
            page.screenshot(path=str(shot), timeout=30000)
            print(f"screenshot: {shot}")
        except Exception as error:  # a missing screenshot must not hide the test's failure
            print(f"could not save the screenshot {shot}: {error}")


@pytest.fixture
def upstream(tmp_path) -> Path:
    """A clone of this repository's HEAD, on branch main, in a folder named as the real one
    (the link opens notebooks under the repository's name)."""
    need_program(WHAT, "git")
    name = home.repository().rsplit("/", 1)[1]
    clone = tmp_path / "upstream" / name
    clone.parent.mkdir()
    git("clone", "-q", str(ROOT), str(clone), cwd=tmp_path)
    git("checkout", "-q", "-B", home.BRANCH, cwd=clone)
    return clone


def test_a_learner_pulls_the_course_runs_chapter_0_and_resets_after_an_update(
    offline_page, offline_log, upstream, hub, tmp_path
):
    start_server(hub)
    repo = upstream.as_uri()
    copy = tmp_path / "hub" / "home" / LEARNER / upstream.name  # where nbgitpuller clones it

    started = time.monotonic()
    output = pull(hub, repo, home.BRANCH)
    hub.timings["first pull"] = time.monotonic() - started
    assert (copy / CHAPTER).is_file(), (
        f"nbgitpuller did not clone the course into {copy}:\n{output}"
    )

    # The link an instructor hands out, pointed at the test's upstream.
    link = urlsplit(home.nbgitpuller_url(hub.url))
    query = {**parse_qs(link.query), "repo": [repo]}
    link = urlunsplit(link._replace(query=urlencode(query, doseq=True)))
    assert urlsplit(link).path == "/hub/user-redirect/git-pull"

    stopping = threading.Event()
    with futures.ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        chapter = pool.submit(run_notebook, hub, copy / CHAPTER, f"{copy.name}/notebooks", stopping)
        try:
            shot = tmp_path / "jupyterhub-learner-lab.png"
            open_the_link_in_chromium(offline_page, offline_log, hub, link, shot)
            hub.timings["browser: login, link, JupyterLab"] = time.monotonic() - started
            try:
                problems = chapter.result(timeout=CHAPTER_TIMEOUT)
            except futures.TimeoutError:  # Python 3.10's is not the built-in one
                hub.fail(f"chapter 0 did not finish in {CHAPTER_TIMEOUT} s (a safety limit)")
            hub.timings["chapter 0 in the learner's kernel"] = time.monotonic() - started
        finally:
            stopping.set()
    assert not problems, "chapter 0 in the learner's kernel:\n" + "\n".join(problems)
    if offline_log.refused:
        print("requests the page was refused (not local):", *offline_log.refused, sep="\n  ")

    # The learner answers 0.1 and saves; the instructor rewrites that very line, and README.md.
    edit_in_lab(hub, f"{copy.name}/{EXERCISE}", STUB, ANSWER)
    answered = (copy / EXERCISE).read_bytes()
    instructor_commits(upstream, (STUB, UPDATED_STUB))
    started = time.monotonic()
    output = pull(hub, repo, home.BRANCH)
    hub.timings["second pull"] = time.monotonic() - started
    assert (copy / "README.md").read_text(encoding="utf-8").endswith(UPDATE_NOTE), output
    assert (copy / EXERCISE).read_bytes() == answered  # -Xours: the learner's line won
    authors = git("log", "--format=%ae", cwd=copy).split()
    assert "nbgitpuller@nbgitpuller.link" in authors, "nbgitpuller made no commit:\n" + output

    with Kernel(hub, f"{copy.name}/exercises") as kernel:
        ran = kernel.run("from labsupport import reset\nreset('00-toolkit-exercises.ipynb')")
    assert ran.status == "ok" and not ran.errors(), ran.errors() or ran.status
    said = ran.text()
    assert "already as handed out" not in said and "is kept as" in said, said
    assert (copy / EXERCISE).read_bytes() == (upstream / EXERCISE).read_bytes(), said
    assert "origin/main, as last pulled" in said, said  # the upstream's copy, not HEAD's
    (kept,) = (copy / "exercises").glob("00-toolkit-exercises.*.bak.ipynb")
    assert kept.read_bytes() == answered

    print("measured here:", ", ".join(f"{k} {v:.1f} s" for k, v in hub.timings.items()))
