#!/usr/bin/env bash
# ThreadSanitizer run of the threads backend, with no Python in the process:
#
#   tools/tsan.sh [runs]      default 2 runs of the driver (races depend on the scheduling)
#
# Builds tools/tsan/driver.cpp (a native program that calls the same C++ entry points as the
# bindings: the Hogwild! logistic epochs of every rule, regularisation, step table, batch size and
# mode, the evaluation pass, the LDA epochs, inference and batch statistics, the thread pool and the
# Ctrl-C stop; its header lists them) with -fsanitize=thread, and runs it with 2 to 4 threads on
# small synthetic problems. The shared model's racy accesses are relaxed atomics (core/shared.hpp),
# which TSan does not report, so any report is a plain access two threads made unordered: a real
# data race. Exit status 0 only when no run printed a TSan report and every consistency check of the
# driver passed. About 1 min to build and 10-20 s a run on 2 cores.
#
# Why not under Python, as tools/sanitize.sh runs ASan/UBSan: GCC's libtsan preloaded into the
# uninstrumented CPython segfaults while numpy and scipy import (GCC 12, Debian 12), and clang's TSan
# runtime exists only as a static library linked into an instrumented executable.
#
# Why clang with LLVM's OpenMP runtime (Debian/Ubuntu: apt-get install clang libomp-dev): the
# lockstep epochs and LDA's segment ends, inference and batch statistics are OpenMP regions. TSan
# cannot see the synchronisation inside an uninstrumented OpenMP runtime (libgomp's barriers are
# futexes), so with GCC every region would produce false reports. LLVM's libomp ships Archer
# (libarcher), an OMPT tool that clang links in with -fopenmp -fsanitize=thread and that tells TSan
# about every barrier, fork/join, critical section and task; the driver's output must say Archer was
# active. TSAN_OPTIONS ignore_noninstrumented_modules=1 (which Archer's own start-up message asks
# for) keeps TSan from checking the libc calls that libomp itself makes (its malloc/memset/free of
# dispatch buffers and its pthread mutexes, reported as races between runtime frames only, with no
# frame of this project in the racing accesses). No suppressions file: nothing of this project is
# exempted.
#
# The first run is a canary (driver --canary: a deliberate plain race between two threads) that must
# be reported, so a build that lost its instrumentation cannot pass.
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-2}"
cxx="${TSAN_CXX:-clang++}"
build="${TMPDIR:-/tmp}/asyncopt-tsan"
mkdir -p "$build"
if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "tools/tsan.sh: $cxx not found (Debian/Ubuntu: apt-get install clang libomp-dev)" >&2
  exit 2
fi

start=$(date +%s)
echo "tools/tsan.sh: building $build/driver ($("$cxx" --version | head -1))"
"$cxx" -std=c++17 -fopenmp -fsanitize=thread -fno-omit-frame-pointer -g -O1 -Wall -Wextra \
  -Wno-unused-private-field -Icsrc tools/tsan/driver.cpp -o "$build/driver"

export TSAN_OPTIONS="halt_on_error=0 exitcode=66 ignore_noninstrumented_modules=1 second_deadlock_stack=1"
export ARCHER_OPTIONS="verbose=1"

# the canary: TSan must report its race
set +e
"$build/driver" --canary >"$build/canary.log" 2>&1
rc=$?
set -e
if [ "$rc" -ne 66 ] || ! grep -q "WARNING: ThreadSanitizer: data race" "$build/canary.log"; then
  cat "$build/canary.log" >&2
  echo "tools/tsan.sh: FAILED: the canary's deliberate race was not reported (exit $rc): no TSan?" >&2
  exit 1
fi
echo "tools/tsan.sh: canary reported as it must be"

status=0
for run in $(seq 1 "$runs"); do
  log="$build/run$run.log"
  set +e
  "$build/driver" >"$log" 2>&1
  rc=$?
  set -e
  reports=$(grep -c "WARNING: ThreadSanitizer" "$log" || true)
  grep -v '^ \|^=\|^$' "$log" | grep -v "^SUMMARY\|^WARNING: ThreadSanitizer\|^  \|Previous\|Location\|Thread T" \
    | sed "s/^/  run $run: /" || true
  if ! grep -q "Archer detected OpenMP application with TSan" "$log"; then
    echo "tools/tsan.sh: FAILED: Archer was not active in run $run (clang without LLVM's libomp?)" >&2
    status=1
  fi
  if [ "$rc" -ne 0 ] || [ "$reports" -ne 0 ]; then
    grep -A40 "WARNING: ThreadSanitizer" "$log" | head -200 >&2 || true
    grep "^SUMMARY: ThreadSanitizer" "$log" | sort | uniq -c >&2 || true
    echo "tools/tsan.sh: FAILED: run $run exited $rc with $reports TSan report(s); full log: $log" >&2
    status=1
  fi
done
echo "tools/tsan.sh: $runs run(s), $( [ "$status" -eq 0 ] && echo "no TSan report" || echo "FAILED" ), $(( $(date +%s) - start )) s in all"
exit "$status"
