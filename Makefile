# Unlocking QEMU: one command for each everyday job. `make help` lists them.
#
# Everything runs in .venv, built from the exact pins in requirements/ by the machine's python3
# (override with `make PYTHON=python3.12 ...`).

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCKS := requirements/lock.txt requirements/lock-py310.txt
# The lock for .venv's Python: lock-py310.txt on 3.10, lock.txt on 3.11 and newer.
WHICH_LOCK := $(VPY) -c 'import sys; print("requirements/lock.txt" if sys.version_info >= (3, 11) else "requirements/lock-py310.txt")'
SCRATCH := $(CURDIR)/.scratch

# Tests and notebook runs see only their own Jupyter, IPython and matplotlib folders, so
# nothing from elsewhere on the machine (a user kernel, a profile, a matplotlibrc) leaks in.
ISOLATED := JUPYTER_CONFIG_DIR="$(SCRATCH)/jupyter/config" \
	JUPYTER_DATA_DIR="$(SCRATCH)/jupyter/data" \
	JUPYTER_RUNTIME_DIR="$(SCRATCH)/jupyter/runtime" \
	JUPYTER_PLATFORM_DIRS=1 JUPYTER_PREFER_ENV_PATH=1 \
	IPYTHONDIR="$(SCRATCH)/ipython" \
	MPLCONFIGDIR="$(SCRATCH)/matplotlib" \
	PYTHONHASHSEED=0 PYDEVD_DISABLE_FILE_VALIDATION=1

NOTEBOOK_DIRS := notebooks solutions exercises
# Each notebook runs whole in one worker (--dist loadfile: its cells share one kernel), the
# notebooks spread over every CPU (-n auto, pytest-xdist).
NBVAL := --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
	--nbval-cell-timeout=120 -p no:cacheprovider --ignore-glob='*.bak.ipynb' \
	-n auto --dist loadfile
LINT_PATHS := labsupport tests tools bench notebooks solutions deploy
# The browser test drives Debian's chromium through Python playwright (requirements/browser.txt).
CHROMIUM := /usr/bin/chromium

.DEFAULT_GOAL := help
.PHONY: help venv lab test test-unit test-notebooks test-browser browser browser-if-possible \
	notebooks exercises sources check-exercises bench lint format clean distclean scratch release \
	freethreaded test-freethreaded web web-if-possible test-web site lite

help: ## list the targets
	@echo "Unlocking QEMU - make targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  make %-16s %s\n", $$1, $$2}'

venv: $(STAMP) ## create .venv from the pinned versions and install the course (re-runs when pins change)

$(STAMP): pyproject.toml $(LOCKS)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { \
		echo "Unlocking QEMU needs Python 3.10 or newer; $(PYTHON) is $$($(PYTHON) --version 2>&1)." >&2; \
		echo "Run make with PYTHON=/path/to/python3.x" >&2; exit 1; }
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV) || { \
		echo "Could not create $(VENV). On Debian or Ubuntu: apt install python3-venv" >&2; exit 1; }
	@lock=$$($(WHICH_LOCK)); \
		echo "Installing the pinned versions from $$lock into $(VENV) ..."; \
		$(VPY) -m pip install --quiet --disable-pip-version-check -r $$lock && \
		$(VPY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)
	@echo "$(VENV) is ready ($$($(VPY) --version))."

lab: venv ## set up (if needed) and open the course in JupyterLab on 127.0.0.1 with a token
	$(VPY) tools/lab.py $(LAB_ARGS)

scratch: ## (used by the test targets) give tests fresh, private Jupyter and IPython folders
	@rm -rf "$(SCRATCH)/jupyter" "$(SCRATCH)/ipython"
	@mkdir -p "$(SCRATCH)/jupyter/config" "$(SCRATCH)/jupyter/data" \
		"$(SCRATCH)/jupyter/runtime" "$(SCRATCH)/ipython" "$(SCRATCH)/matplotlib"

test: venv browser-if-possible web-if-possible ## set up (if needed) and run every test: unit tests, notebooks (nbval), exercise sync, lint, browser, web
	@failed=""; \
	$(MAKE) --no-print-directory test-unit || failed="$$failed test-unit"; \
	$(MAKE) --no-print-directory test-notebooks || failed="$$failed test-notebooks"; \
	$(MAKE) --no-print-directory check-exercises || failed="$$failed check-exercises"; \
	$(MAKE) --no-print-directory lint || failed="$$failed lint"; \
	$(MAKE) --no-print-directory test-browser || failed="$$failed test-browser"; \
	$(MAKE) --no-print-directory test-web || failed="$$failed test-web"; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed"; exit 1; fi; \
	echo "make test: unit tests, notebooks, exercise sync, lint, the browser test and the web tests all passed"

test-unit: venv scratch ## run the pytest suite in tests/ (unit, property, widget, lab, pipeline)
	@echo "pytest tests/ (private Jupyter, IPython and matplotlib folders in .scratch/)"
	@$(ISOLATED) MPLBACKEND=Agg $(VPY) -m pytest -p no:cacheprovider \
		--basetemp="$(SCRATCH)/artifacts" --ignore=tests/browser --ignore=tests/web tests/

test-notebooks: venv scratch ## validate notebooks/, solutions/ and exercises/ with nbval
	@dirs=""; for d in $(NOTEBOOK_DIRS); do \
		if ls $$d/*.ipynb >/dev/null 2>&1; then dirs="$$dirs $$d/"; fi; done; \
	if [ -z "$$dirs" ]; then echo "nbval: no notebooks yet in $(NOTEBOOK_DIRS); skipped"; exit 0; fi; \
	echo "nbval over:$$dirs"; \
	$(ISOLATED) $(VPY) -m pytest $(NBVAL) $$dirs; status=$$?; \
	if [ $$status -eq 5 ]; then echo "nbval: no notebook cells to validate"; status=0; fi; \
	exit $$status

# Runs after test-unit in `make test`: pytest empties its --basetemp, .scratch/artifacts, which
# also holds this test's screenshot (.scratch/artifacts/browser/).
test-browser: venv scratch ## run the browser test: JupyterLab in headless chromium, run a chapter, move a slider
	@echo "pytest tests/browser (JupyterLab from tools/lab.py, driven in $(CHROMIUM); screenshot in .scratch/artifacts/browser/)"
	@$(ISOLATED) $(VPY) -m pytest -p no:cacheprovider --basetemp="$(SCRATCH)/browser" \
		-rA --durations=0 tests/browser

browser: venv ## install the headless browser for the browser test: Debian's chromium and Python playwright
	@echo "Installing playwright (requirements/browser.txt) into $(VENV) ..."
	@$(VPY) -m pip install --quiet --disable-pip-version-check -r requirements/browser.txt || { \
		echo "make browser: could not install playwright into $(VENV) (see pip's message above)" >&2; \
		exit 1; }
	@if [ -x $(CHROMIUM) ]; then \
		echo "$(CHROMIUM) is installed ($$($(CHROMIUM) --version 2>/dev/null))."; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's chromium (apt-get update && apt-get install -y chromium) ..."; \
		{ DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || { \
			echo "make browser: apt-get could not install chromium (see its message above)" >&2; \
			exit 1; }; \
		test -x $(CHROMIUM) || { \
			echo "make browser: apt-get installed chromium, but $(CHROMIUM) is still missing" >&2; \
			exit 1; }; \
		echo "$(CHROMIUM) is installed ($$($(CHROMIUM) --version 2>/dev/null))."; \
	else \
		if command -v apt-get >/dev/null 2>&1; then \
			why="installing a Debian package needs root, and this is $$(id -un)"; \
			how="sudo apt-get update && sudo apt-get install -y chromium"; \
		else \
			why="there is no apt-get here (the test expects Debian's chromium)"; \
			how="install Chromium so that it is at $(CHROMIUM) with your system's package manager"; \
		fi; \
		echo "make browser: $(CHROMIUM) is missing and cannot be installed from here: $$why." >&2; \
		echo "make browser: to install it: $$how" >&2; \
		exit 1; \
	fi

# Used by `make test`: install the browser if possible; if not, say so and go on, and the browser
# test then skips with the reason (except under CI, where it fails).
browser-if-possible: venv
	@$(MAKE) --no-print-directory browser || { \
		echo "make test: the headless browser could not be installed (see above), so the browser" \
			"test will be skipped (under CI it fails). Run make browser to try again." >&2; }

freethreaded: venv ## find or build a free-threaded CPython 3.13 (no GIL): .venv-ft and its Jupyter kernel, for chapter 9
	@bash tools/freethreaded.sh

test-freethreaded: freethreaded scratch ## run chapter 9's claims and the real-thread tests on the free-threaded interpreter
	@echo "pytest on .venv-ft (free-threaded): tests/freethreaded, tests/course/test_real.py"
	@$(ISOLATED) FREETHREADED_REQUIRED=1 .venv-ft/bin/python -m pytest -p no:cacheprovider \
		--basetemp="$(SCRATCH)/freethreaded" tests/freethreaded tests/course/test_real.py
	@$(ISOLATED) FREETHREADED_REQUIRED=1 $(VPY) -m pytest -p no:cacheprovider \
		--basetemp="$(SCRATCH)/freethreaded-kernel" tests/course/test_freethreaded_kernel.py

# The web tools: the website (jupyter-book), the in-browser build (JupyterLite), a class on
# JupyterHub and the Binder check. Python pins in requirements/web.txt (into .venv, on top of the
# lock), npm pins in tools/web/package.json (into tools/web/node_modules).
WEB_STAMP := $(VENV)/.web-installed
NPM_STAMP := tools/web/node_modules/.installed

web: $(WEB_STAMP) $(NPM_STAMP) ## install the web tools: jupyter-book, JupyterLite, JupyterHub, repo2docker; Pyodide and the widget scripts (npm)

$(WEB_STAMP): $(STAMP) requirements/web.txt
	@echo "Installing the web tools (requirements/web.txt) into $(VENV) ..."
	@lock=$$($(WHICH_LOCK)); \
		$(VPY) -m pip install --quiet --disable-pip-version-check -r requirements/web.txt \
		-c $$lock || { \
		echo "make web: could not install requirements/web.txt (see pip's message above)" >&2; exit 1; }
	@touch $@

$(NPM_STAMP): tools/web/package.json tools/web/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
		echo "make web: npm is missing. On Debian or Ubuntu: apt install npm" >&2; exit 1; }
	@echo "Installing tools/web/package.json's npm packages into tools/web/node_modules ..."
	@cd tools/web && npm ci --no-audit --no-fund --loglevel=error || { \
		echo "make web: npm ci failed in tools/web (see its message above)" >&2; exit 1; }
	@touch $@

# Used by `make test`: install the web tools if possible; if not, say so and go on, and the web
# tests then skip with the reason (except under CI, where they fail).
web-if-possible: venv
	@$(MAKE) --no-print-directory web || { \
		echo "make test: the web tools could not be installed (see above), so the web tests" \
			"will be skipped (under CI they fail). Run make web to try again." >&2; }

test-web: venv scratch ## run the web tests: the website and the in-browser build offline in chromium, a hub class, Binder's environment
	@echo "pytest tests/web (the site, the in-browser build, JupyterHub, Binder; pages in $(CHROMIUM), non-local requests refused)"
	@$(ISOLATED) $(VPY) -m pytest -p no:cacheprovider --basetemp="$(SCRATCH)/web" \
		-rA --durations=0 tests/web

site: web ## build the course website into build/site (jupyter-book, from the stored outputs)
	@$(ISOLATED) $(VPY) tools/site.py $(SITE_ARGS)

lite: web ## build the course to run in the browser, no install, into build/lite (JupyterLite; LITE_ARGS=--offline for a local Pyodide)
	@$(ISOLATED) $(VPY) tools/lite.py $(LITE_ARGS)

notebooks: venv scratch ## re-execute notebooks/ and solutions/ in place, then regenerate exercises/
	@echo "tools/run_notebooks.py $(NOTEBOOKS) (private Jupyter, IPython and matplotlib folders)"
	@$(ISOLATED) $(VPY) tools/run_notebooks.py $(NOTEBOOKS)
	$(VPY) tools/reveals.py
	$(VPY) tools/exercises.py
	$(VPY) tools/sources.py

release: ## write the student bundle to dist/unlocking-qemu (no solutions, no tests)
	python3 tools/release.py

exercises: venv ## regenerate exercises/ from solutions/
	$(VPY) tools/exercises.py

sources: venv ## regenerate docs/sources.md from the notebooks' Sources cells
	$(VPY) tools/sources.py

check-exercises: venv ## fail if regenerating exercises/ from solutions/ would change it
	$(VPY) tools/exercises.py --check

bench: venv scratch ## run the benchmarks (bench/run.py --check): fails if a budget is missed
	@echo "bench/run.py --check $(BENCH_ARGS)"
	@$(ISOLATED) $(VPY) bench/run.py --check $(BENCH_ARGS)

lint: venv ## lint the code and notebooks with ruff, and check that they are formatted
	$(VPY) -m ruff check $(wildcard $(LINT_PATHS))
	$(VPY) -m ruff format --check $(wildcard $(LINT_PATHS))

format: venv ## format the code and notebooks with ruff, and apply ruff's safe fixes
	$(VPY) -m ruff format $(wildcard $(LINT_PATHS))
	$(VPY) -m ruff check --fix $(wildcard $(LINT_PATHS))

clean: ## remove .scratch and caches (keeps .venv)
	rm -rf .scratch .pytest_cache .ruff_cache .hypothesis build dist *.egg-info
	find . -path ./.venv -prune -o \( -name __pycache__ -o -name .ipynb_checkpoints \) \
		-type d -print0 | xargs -0 -r rm -rf

distclean: clean ## clean, and remove .venv too
	rm -rf $(VENV) .venv-ft .freethreaded tools/web/node_modules
