"""A class on one machine: JupyterHub for a university lab of up to about 30 learners on a
2-core box, each learner with their own JupyterLab and their own copy of the course.

The course is installed once, for everyone: the single-user servers and the kernels run from
one Python environment that holds the course (``labsupport``), ``jupyterhub-singleuser`` and
nbgitpuller. The simplest such environment is this repository's own ``.venv``:

    git clone https://github.com/unlocking-qemu/unlocking-qemu /opt/unlocking-qemu
    cd /opt/unlocking-qemu
    make venv web        # the course; then jupyterhub, nbgitpuller and the proxy (tools/web)
    sudo mkdir -m 700 -p /srv/unlocking-qemu-hub
    sudo .venv/bin/jupyterhub -f deploy/jupyterhub/jupyterhub_config.py

(or any environment with ``pip install /opt/unlocking-qemu jupyterhub==6.1.1
nbgitpuller==1.3.0``: set ``COURSE_ENV`` below). Each learner's notebooks are their own: the
nbgitpuller link (``tools/home.py nbgitpuller HUB``, see INSTRUCTORS.md) clones the course into
their home the first time and merges the instructor's updates every time after, keeping their
edits. When ``labsupport`` itself changes upstream, update the shared environment too (``git
pull && make venv`` in /opt/unlocking-qemu), so the learners' notebooks and the package agree.

Sized from measurements on a 2-core, 24 GiB machine (JupyterHub 6.1.1, configurable-http-proxy
5.3.0, nbgitpuller 1.3.0): a single-user server takes 133 MiB, each kernel 105-141 MiB; a server
starts in 3.5-7.4 s, 15 at once are ready in 30-40 s; nbgitpuller's first clone of the course
takes about 1 s. CPU, not memory, is the limit: about 30 learners pressing Run All together is
fine, 100 is marginal, 300 is impossible on one box. A larger class: Zero to JupyterHub on
Kubernetes, ``values.yaml`` beside this file.

The settings that are derived from those figures rather than measured say so.
"""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

c = get_config()  # noqa: F821 (jupyterhub defines get_config when it loads this file)

#: The repository this file lives in (deploy/jupyterhub/ is two levels down).
REPOSITORY = Path(__file__).resolve().parents[2]
#: The environment with the course, jupyterhub-singleuser and nbgitpuller (`make venv web`).
COURSE_ENV = REPOSITORY / ".venv"
#: Where the hub keeps its state: its database and its cookie secret (create it, mode 700).
STATE = Path("/srv/unlocking-qemu-hub")


def importable(module: str) -> bool:
    """Whether ``module`` can be imported by the hub's Python (an optional add-on)."""
    return importlib.util.find_spec(module) is not None


def course_tool(name: str) -> ModuleType:
    """The repository's ``tools/<name>.py``, loaded under a name of its own."""
    spec = importlib.util.spec_from_file_location(
        f"unlocking_qemu_{name}", REPOSITORY / "tools" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- The hub and its proxy ---------------------------------------------------------------------
# Learners' passwords cross the network: keep the hub on 127.0.0.1 behind a reverse proxy that
# serves HTTPS (nginx, Caddy), or give it a certificate (c.JupyterHub.ssl_cert, ssl_key) and
# bind it to "https://:443".
c.JupyterHub.bind_url = "http://127.0.0.1:8000"
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(STATE / "jupyterhub-proxy.pid")
# The proxy from `make web` (tools/web/node_modules), else one on PATH
# (`npm install -g configurable-http-proxy`).
_proxy = REPOSITORY / "tools" / "web" / "node_modules" / ".bin" / "configurable-http-proxy"
if _proxy.exists():
    c.ConfigurableHTTPProxy.command = [str(_proxy)]

# --- Who logs in -------------------------------------------------------------------------------
# The lab machine's own accounts (PAM): each learner is a Unix user in the group below, and the
# hub runs as root to start their servers as them. To switch:
#   - university single sign-on: pip install oauthenticator, then
#     c.JupyterHub.authenticator_class = "generic-oauth" (or "azuread", "github", ...) and its
#     client id, secret and URLs; with the local spawner, learners still need Unix accounts
#     (c.LocalAuthenticator.create_system_users = True makes them);
#   - a learning platform (Moodle, Canvas): pip install jupyterhub-ltiauthenticator and set its
#     LTI13Authenticator as c.JupyterHub.authenticator_class (its documentation has the rest);
#   - a quick try on a laptop, never on a shared network: c.JupyterHub.authenticator_class =
#     "dummy" (any password) with c.JupyterHub.spawner_class = "simple" (no Unix users, no
#     isolation); the repository's test runs the hub that way (tests/web/test_jupyterhub.py).
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.allowed_groups = {"unlocking-qemu"}
c.Authenticator.admin_users = {"instructor"}

# --- Each learner's server ---------------------------------------------------------------------
# systemdspawner (pip install jupyterhub-systemdspawner) runs each learner's server as a systemd
# unit, so the memory and CPU limits below are enforced by the kernel's cgroups; without it the
# plain local spawner starts the same servers, and the limits are only advisory (it passes them
# on as MEM_LIMIT and CPU_LIMIT). The Littlest JupyterHub (tljh.jupyter.org) sets up the same
# arrangement, users and all, if you would rather not assemble it.
if importable("systemdspawner"):
    c.JupyterHub.spawner_class = "systemdspawner.SystemdSpawner"
    c.SystemdSpawner.isolate_tmp = True
    c.SystemdSpawner.isolate_devices = True
    c.SystemdSpawner.disable_user_sudo = True
else:
    c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(COURSE_ENV / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"  # nbgitpuller clones the course into ~/unlocking-qemu

# Memory: a server (133 MiB) and two open chapters (2 x 105-141 MiB) come to about 415 MiB; 30
# learners so about 12 GiB of the 24 (derived). The limit, 1 GiB, lets one learner open about
# six chapters at once (133 + 6 x 141 = 979 MiB, derived); a seventh kernel is refused rather
# than slowing the whole room. Idle kernels are shut down (below), which frees theirs.
c.Spawner.mem_limit = "1G"
# CPU: no limit. The box has two cores, and chapter 9 runs two threads on real cores side by
# side; the learners share the cores (with systemdspawner, each learner's unit gets an equal
# share, however many processes it runs). The measured capacity, about 30 learners pressing Run
# All together, is what the two cores give; 100 at once is marginal.

# Logins at the start of a class: 15 servers at once were ready in 30-40 s, so the whole class
# (30) at once takes about 60-80 s (derived); the timeouts leave half as much again.
c.JupyterHub.concurrent_spawn_limit = 30
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
# Room for the class and its teaching assistants, and no more: at 100 running servers the box is
# marginal (measured), so the hub refuses new ones past this rather than slowing everyone.
c.JupyterHub.active_server_limit = 40
# A shared lab machine: logging out stops the learner's server and frees its memory.
c.JupyterHub.shutdown_on_logout = True

# --- Idle servers and kernels; JupyterLab offline ----------------------------------------------
# Always, in each learner's own server (jupyter_server's settings, no add-on): a kernel idle for
# 20 minutes is shut down, and a server with no activity for an hour stops itself. JupyterLab
# fetches nothing at run time, with the options `make lab` gives it (tools/lab.py).
c.Spawner.args = [
    "--MappingKernelManager.cull_idle_timeout=1200",
    "--MappingKernelManager.cull_interval=120",
    "--ServerApp.shutdown_no_activity_timeout=3600",
    *course_tool("lab").offline_lab_argv(REPOSITORY),
]
# And, when it is installed (pip install jupyterhub-idle-culler into the hub's Python), the hub's
# own culler, which also stops a server whose browser tab was left open over lunch: it is enabled
# only when importable, so this file loads without it.
if importable("jupyterhub_idle_culler"):
    c.JupyterHub.services = [
        {
            "name": "idle-culler",
            "command": [sys.executable, "-m", "jupyterhub_idle_culler", "--timeout=3600"],
        }
    ]
    c.JupyterHub.load_roles = [
        {
            "name": "idle-culler",
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": ["idle-culler"],
        }
    ]
