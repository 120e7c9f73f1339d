#!/usr/bin/env bash
# make freethreaded: a free-threaded CPython (no GIL) for chapter 9, in .venv-ft, with a Jupyter
# kernel "Python 3.13 (free-threaded)" that the course's JupyterLab lists.
#
# The interpreter, first found wins:
#   1. $FREETHREADED_PYTHON, or python3.14t / python3.13t on PATH (`uv python install 3.13t` on a
#      networked machine puts one there);
#   2. one this script built before, in .freethreaded/python;
#   3. a build of Debian's own python3.13 source package (`apt-get source`, from the trixie
#      source list; Debian bookworm has no python3.13) with ./configure --disable-gil: about 4
#      minutes on 2 CPUs. Needs root for apt-get and a C compiler.
# Then .venv-ft gets the course's pins where a free-threaded (cp313t) wheel exists, and the
# nearest version that has one where not (requirements/freethreaded.txt says which).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BUILD=$ROOT/.freethreaded
VENV=$ROOT/.venv-ft
KERNEL_PREFIX=$ROOT/.venv
started=$(date +%s)

say() { echo "make freethreaded: $*"; }

is_freethreaded() {
	"$1" -c 'import sys; sys.exit(0 if "t" in sys.abiflags else 1)' 2>/dev/null
}

find_python() {
	local p
	for p in "${FREETHREADED_PYTHON:-}" "$(command -v python3.14t || true)" \
		"$(command -v python3.13t || true)" "$BUILD/python/bin/python3.13t"; do
		if [ -n "$p" ] && [ -x "$p" ] && is_freethreaded "$p"; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

build_python() {
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		say "no free-threaded python found, and building one needs root and apt-get." >&2
		say "install one (uv python install 3.13t) and run again with FREETHREADED_PYTHON=path" >&2
		exit 1
	fi
	say "building CPython 3.13 with --disable-gil from Debian's python3.13 source ..."
	local list=/etc/apt/sources.list.d/unlocking-qemu-python-src.list
	[ -f "$list" ] || echo "deb-src http://deb.debian.org/debian trixie main" >"$list"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential libssl-dev zlib1g-dev \
		libffi-dev libbz2-dev liblzma-dev libsqlite3-dev libreadline-dev >/dev/null
	rm -rf "$BUILD/src" && mkdir -p "$BUILD/src"
	(cd "$BUILD/src" && apt-get source --download-only -qq python3.13 >/dev/null 2>&1)
	tar -C "$BUILD/src" -xf "$BUILD"/src/python3.13_*.orig.tar.xz
	local src
	src=$(find "$BUILD/src" -maxdepth 1 -type d -name 'Python-3.13*' | head -1)
	(cd "$src" && ./configure -q --disable-gil --prefix="$BUILD/python" --with-ensurepip=install \
		>"$BUILD/configure.log" 2>&1 && make -s -j"$(nproc)" >"$BUILD/make.log" 2>&1 &&
		make -s install >"$BUILD/install.log" 2>&1) || {
		say "the build failed; see $BUILD/*.log" >&2
		exit 1
	}
	rm -rf "$BUILD/src"
}

PY=$(find_python) || { build_python && PY=$(find_python); }
say "free-threaded interpreter: $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])'))"

if [ ! -x "$VENV/bin/python" ] || ! is_freethreaded "$VENV/bin/python"; then
	rm -rf "$VENV"
	"$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --prefer-binary \
	-r requirements/freethreaded.txt
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .
"$VENV/bin/python" -m ipykernel install --prefix "$KERNEL_PREFIX" --name python3-freethreaded \
	--display-name "Python 3.13 (free-threaded)" >/dev/null
"$VENV/bin/python" -c 'import sys, labsupport; assert not sys._is_gil_enabled(), "GIL is on"'
say "ready in $(($(date +%s) - started)) s: .venv-ft, and the kernel \"Python 3.13 (free-threaded)\""
