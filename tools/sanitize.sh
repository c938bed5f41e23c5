#!/usr/bin/env bash
# Build the extension with AddressSanitizer + UndefinedBehaviorSanitizer in a virtualenv of its own
# and run tests against it:
#
#   tools/sanitize.sh [pytest args...]     default: the whole suite (tests/)
#
# Python itself is not instrumented, so the sanitizers' runtimes are preloaded (LD_PRELOAD) into it
# and every process the tests start (mpiexec's ranks, the CLI) inherits them. Leak checking is off:
# CPython keeps its interned objects until exit by design, and every report would be CPython's.
# ASan and UBSan abort the process at the first finding, so the exit status is 0 only when every
# test passed and neither fired.
#
# ThreadSanitizer is not here: GCC's libtsan preloaded into the uninstrumented CPython segfaults while
# numpy and scipy import (tried with GCC 12 on Debian 12), and clang's TSan runtime exists only as a
# static library for instrumented executables. tools/tsan.sh runs the threads backend under TSan
# from a native driver instead (tools/tsan/driver.cpp).
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${TMPDIR:-/tmp}/asyncopt-asan-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet scikit-build-core pybind11
fi
# shellcheck disable=SC1091
source "$venv/bin/activate"
# the test extra's dependencies, then the instrumented build in a directory of its own (pyproject's
# build-dir is per wheel tag, shared with normal builds)
pip install --quiet numpy scipy scikit-learn
python - <<'EOF' | xargs pip install --quiet
import tomllib
print(" ".join(f'"{d}"' for d in tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["test"]))
EOF
ASYNCOPT_SANITIZE="address,undefined" ASYNCOPT_CUDA=OFF \
  pip install --quiet --no-build-isolation --no-deps --config-settings=build-dir=build/sanitize-asan .

lib() { g++ -print-file-name="$1"; }
runtime="$(lib libasan.so):$(lib libubsan.so)"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_init_order=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
[ "$#" -gt 0 ] || set -- tests
echo "tools/sanitize.sh: ASan + UBSan, LD_PRELOAD=$runtime; pytest $*"
LD_PRELOAD="$runtime" python -m pytest -q -p no:cacheprovider "$@"
