#!/usr/bin/env bash
# fuzz/run.sh SECONDS [libFuzzer options...]
#
# Build the retry fuzzer (clang, libFuzzer, ASan + UBSan) if needed and run
# it for SECONDS from a copy of the committed seed corpus, so fuzz/corpus/
# is never modified.  Exits non-zero on any crash, invariant violation,
# sanitizer report, leak or timeout; the failing input is kept in
# fuzz-out/ with the command that replays it.
#
#   fuzz/run.sh 300 -runs=100000   # what ./run.sh test runs: 100000
#                                  # inputs, at most 300 s
#   fuzz/run.sh 1800               # the long local run (see fuzz/README.md)
#   fuzz/run.sh 600 -seed=7        # extra options go to libFuzzer
#
# Environment: RETLS_FUZZ_BUILD (default build-fuzz), CC (default clang).
set -euo pipefail

if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ]; then
  echo "usage: fuzz/run.sh SECONDS [libFuzzer options...]" >&2
  exit 2
fi
seconds=$1
shift

root=$(cd "$(dirname "$0")/.." && pwd)
build=${RETLS_FUZZ_BUILD:-$root/build-fuzz}
cc=${CC:-clang}
if ! command -v "$cc" >/dev/null; then
  echo "fuzz/run.sh: $cc not found; libFuzzer needs clang (Debian: apt-get" \
       "install clang libclang-rt-14-dev, or run scripts/setup.sh)" >&2
  exit 1
fi

echo "== fuzz: build $build"
CC=$cc cmake -S "$root" -B "$build" -DRETLS_FUZZ=ON -DRETLS_SANITIZE=ON \
  -DBUILD_PYTHON=OFF -DBUILD_LUA=OFF -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" --target fuzz_retry -j "$(nproc 2>/dev/null || echo 2)"

# The working corpus lives in memory when it can (/dev/shm): libFuzzer
# writes every new input there and deletes the ones it replaces by smaller
# ones, and on a disk file system that was 2 % of the run.
tmp=${TMPDIR:-/tmp}
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
  tmp=/dev/shm
fi
work=$(mktemp -d "$tmp/retls-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$root/fuzz-out"
cp "$root"/fuzz/corpus/* "$work/corpus/"

echo "== fuzz: fuzz_retry for ${seconds}s from $(ls "$work/corpus" | wc -l) seeds"
# -timeout: one input normally takes milliseconds; 30 s means a hang.
# -max_len: 64 operations of at most 4 bytes fit in 512 bytes.
# The log keeps everything; the terminal gets it without the NEW/REDUCE
# lines of corpus growth.
# -entropic_scale_per_exec_time: inputs that run faster (most: see the
# handshake kinds in README.md) are chosen more often.
# -reload=0: libFuzzer would re-read the corpus directory every second for
# inputs other processes added; this run is the only process writing there,
# so that finds nothing new and only costs time (what is explored is the
# same).
# CPU time is recorded too: other processes may share the machine, and
# executions per CPU second do not depend on them.
TIMEFORMAT='%U %S' # of the fuzzer, into $work/cpu
{
  { time "$build/fuzz/fuzz_retry" "$work/corpus" \
      -max_total_time="$seconds" -timeout=30 -max_len=512 \
      -entropic_scale_per_exec_time=1 -reload=0 \
      -artifact_prefix="$root/fuzz-out/" -print_final_stats=1 "$@" 2>&1
    echo $? >"$work/rc"
  } 2>"$work/cpu"
} | tee "$work/log" | grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE)' || true
status=$(cat "$work/rc")

if [ "$status" -ne 0 ] || grep -q -E 'ERROR: libFuzzer|Sanitizer|invariant violated' "$work/log"; then
  echo "== fuzz: FAILED; replay the input with:" >&2
  grep -o "Test unit written to .*" "$work/log" | sed "s|Test unit written to |  $build/fuzz/fuzz_retry |" >&2 || true
  exit 1
fi
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log")
cpu=$(awk '{ printf "%.1f", $1 + $2 }' "$work/cpu")
per_cpu=$(awk -v r="${runs:-0}" -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", r / c; else print "?" }')
echo "== fuzz: no findings: ${runs:-?} executions, ${rate:-?}/s wall clock," \
     "${per_cpu}/s per CPU second (${cpu} s CPU)"
