#!/usr/bin/env bash
# run.sh - the two commands of the README.
#   ./run.sh demo   install what is missing, build, run the demonstration
#   ./run.sh test   install what is missing, build, run every test suite
#   ./run.sh bench  install the peers, build, print the benchmark table
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
JOBS=$(nproc 2>/dev/null || echo 2)

build() { # build DIR [cmake options...]
  local dir=$1; shift
  cmake -S . -B "$dir" -DPython3_EXECUTABLE="$(command -v "$PY")" "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
}

case "${1:-}" in
  test)
    scripts/setup.sh
    echo "== build (Lua 5.4, Python) and run C, Python and Lua suites"
    build build -DBUILD_PYTHON=ON -DBUILD_LUA=ON -DRETLS_LUA=5.4 -DRETLS_SANITIZE=OFF
    ctest --test-dir build --output-on-failure -j "$JOBS"
    # Every Lua the README names: the Lua suites (busted, valgrind, the Lua
    # interop clients, luarocks make + the smoke spec) on each.
    for lua in luajit 5.1 5.3; do
      dir=build-lua${lua/./}; dir=${dir/lualuajit/luajit}  # build-luajit, build-lua51
      echo "== Lua suite on Lua $lua"
      build "$dir" -DRETLS_LUA="$lua" -DBUILD_PYTHON=OFF
      ctest --test-dir "$dir" --output-on-failure -L lua
    done
    echo "== C, Python and Lua suites under AddressSanitizer + UndefinedBehaviorSanitizer"
    # The interpreters get the ASan runtime preloaded by the CTest
    # registrations (cmake/sanitizer_runtime.cmake); no valgrind test here.
    build build-asan -DRETLS_SANITIZE=ON -DBUILD_PYTHON=ON -DBUILD_LUA=ON -DRETLS_LUA=5.4
    ctest --test-dir build-asan --output-on-failure -j "$JOBS" -L "c|python|lua"
    echo "== the Python API under atheris (fuzz/python), ASan runtime preloaded"
    fuzz/python/run.sh build-asan 3000
    echo "== C suite under ThreadSanitizer (tests/c/test_threads.c shares contexts between threads)"
    build build-tsan -DRETLS_SANITIZE=thread -DBUILD_PYTHON=ON -DBUILD_LUA=OFF
    ctest --test-dir build-tsan --output-on-failure -j "$JOBS" -L c
    echo "== the Python GIL-release paths (tests/python/test_gil.py) under ThreadSanitizer"
    # The TSan runtime preloaded into the interpreter itself (sys.executable:
    # pyenv's shell shim crashes under it); any report fails the run.
    LD_PRELOAD="$(readlink -f "$(cc -print-file-name=libtsan.so)")" \
      PYTHONPATH=build-tsan/bindings/python \
      "$("$PY" -c 'import sys; print(sys.executable)')" \
      -m pytest -q -p no:cacheprovider tests/python/test_gil.py
    echo "== the retry state machine under libFuzzer (ASan + UBSan), 100000 inputs"
    # About a minute on an idle 2-core machine; 300 s bounds it when busy.
    fuzz/run.sh 300 -runs=100000
    echo "== all suites passed"
    ;;
  demo)
    scripts/setup.sh
    build build -DBUILD_PYTHON=ON -DBUILD_LUA=ON -DRETLS_LUA=5.4 -DRETLS_SANITIZE=OFF
    exec "$PY" examples/demo.py "${@:2}"
    ;;
  bench)
    # Not part of `test`: timings are never asserted.  The peers compared:
    # pyOpenSSL and M2Crypto (built from source: swig, libssl-dev) in the
    # README's python3, LuaSec and LuaSocket for the Lua rows.
    scripts/setup.sh
    if ! dpkg-query -W -f='${Status}' lua-sec 2>/dev/null | grep -q "install ok installed"; then
      apt-get install -y -qq lua-sec lua-socket >/dev/null
    fi
    "$PY" -c 'import OpenSSL, M2Crypto' 2>/dev/null \
      || "$PY" -m pip install -q pyOpenSSL M2Crypto
    build build -DBUILD_PYTHON=ON -DBUILD_LUA=ON -DRETLS_LUA=5.4 -DRETLS_SANITIZE=OFF -DRETLS_BENCH=ON
    build build-luajit -DRETLS_LUA=luajit -DBUILD_PYTHON=OFF
    "$PY" bench/run_bench.py --build build --build-luajit build-luajit "${@:2}"
    if [ -f bench/bench_aio.py ]; then
      PYTHONPATH=build/bindings/python "$PY" bench/bench_aio.py
    fi
    ;;
  *)
    echo "usage: ./run.sh demo | ./run.sh test | ./run.sh bench [--quick]" >&2
    exit 2
    ;;
esac
