#!/usr/bin/env bash
# scripts/setup.sh - install what is missing on a Debian machine.
# Debian packages with apt-get (through sudo when not root), Python packages
# with pip for the python3 on PATH (the interpreter the README names).
# Where it cannot install, it names what is missing and stops.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config libssl-dev openssl swig
  lua5.4 liblua5.4-dev lua5.1 liblua5.1-0-dev lua5.3 liblua5.3-dev
  luajit libluajit-5.1-dev lua-busted lua-socket luarocks
  # the LuaSec face (issue 14): LuaSec as peer and baseline, copas (Debian's
  # is for Lua 5.1/LuaJIT only), cqueues
  lua-sec lua-copas lua-cqueues
  gnutls-bin clang libclang-rt-14-dev valgrind
  python3-dev python3-venv
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo); else
    echo "setup: missing packages and neither root nor sudo: ${missing[*]}" >&2
    echo "setup: install them with: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq "${missing[@]}"; } >/tmp/retls-apt.log 2>&1; then
    tail -20 /tmp/retls-apt.log >&2
    echo "setup: could not install: ${missing[*]}" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
if ! "$PY" -c 'import pytest' 2>/dev/null; then
  echo "setup: installing pytest for $PY"
  "$PY" -m pip install -q pytest
fi
if ! "$PY" -c 'import setuptools' 2>/dev/null; then
  "$PY" -m pip install -q setuptools
fi
# tests/packaging: `python -m build` makes the sdist; mypy type-checks the
# examples against the stub (--strict) and the stub against the module.
if ! "$PY" -I -c 'import build, mypy' 2>/dev/null; then  # -I: not ./build/
  echo "setup: installing build and mypy for $PY"
  "$PY" -m pip install -q build mypy
fi
# retls.aio's tests run every case on asyncio's loop and on uvloop.
if ! "$PY" -c 'import uvloop' 2>/dev/null; then
  "$PY" -m pip install -q uvloop
fi
# fuzz/python/fuzz_api.py: the Python API under atheris (libFuzzer for Python).
if ! "$PY" -c 'import atheris' 2>/dev/null; then
  "$PY" -m pip install -q atheris
fi
