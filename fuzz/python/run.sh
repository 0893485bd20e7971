#!/usr/bin/env bash
# fuzz/python/run.sh BUILD_DIR RUNS [atheris/libFuzzer options...]
#
# Fuzz the Python API (fuzz_api.py) with atheris against the module built
# in BUILD_DIR, from a copy of the committed corpus, for RUNS inputs.  When
# BUILD_DIR was configured with RETLS_SANITIZE=ON the ASan runtime is
# preloaded into python3, as the CTest registration of the Python suite
# does (cmake/sanitizer_runtime.cmake), so a memory error in the core or
# the SWIG wrapper aborts the run.  Exits non-zero on any finding.
#
#   fuzz/python/run.sh build-asan 3000     # what ./run.sh test runs
#   fuzz/python/run.sh build-asan 200000 -max_total_time=1800
set -euo pipefail

if [ $# -lt 2 ] || ! [[ $2 =~ ^[0-9]+$ ]]; then
  echo "usage: fuzz/python/run.sh BUILD_DIR RUNS [options...]" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" && pwd)
runs=$2
shift 2
PY=${PYTHON:-python3}

env=(PYTHONPATH="$build/bindings/python" PYTHONDONTWRITEBYTECODE=1)
if grep -q '^RETLS_SANITIZE:.*=ON$' "$build/CMakeCache.txt"; then
  cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
  case "$("$cc" --version)" in
    *clang*) asan=$("$cc" -print-file-name="libclang_rt.asan-$(uname -m).so") ;;
    *) asan=$("$cc" -print-file-name=libasan.so) ;;
  esac
  # As for pytest: CPython keeps objects alive until exit on purpose, so
  # leak detection would only report the interpreter.
  env+=(LD_PRELOAD="$(readlink -f "$asan")"
        ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1
        UBSAN_OPTIONS=print_stacktrace=1)
  echo "== fuzz_api: ASan runtime $asan preloaded"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/retls-fuzz-api.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$root/fuzz-out"
cp "$root"/fuzz/python/corpus/* "$work/corpus/" 2>/dev/null || true

echo "== fuzz_api: $runs inputs from $(ls "$work/corpus" | wc -l) seeds"
status=0
env "${env[@]}" "$PY" "$root/fuzz/python/fuzz_api.py" "$work/corpus" \
  -runs="$runs" -max_len=4096 -timeout=60 -artifact_prefix="$root/fuzz-out/" \
  -print_final_stats=1 "$@" >"$work/log" 2>&1 || status=$?
grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$work/log" | tail -25
# Real reports only: libFuzzer's own notes mention "LeakSanitizer" too.
if [ "$status" -ne 0 ] || grep -q -E 'ERROR: (libFuzzer|[A-Za-z]*Sanitizer)|runtime error:|Traceback' "$work/log"; then
  echo "== fuzz_api: FAILED; replay with:" >&2
  grep -o "Test unit written to .*" "$work/log" | sed "s|Test unit written to |  env ${env[*]} $PY $root/fuzz/python/fuzz_api.py |" >&2 || true
  exit 1
fi
echo "== fuzz_api: no findings in $(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log") inputs"
