#!/usr/bin/env bash
# The checks `npm test` does not run: the C++ tests of the core (native/tests, no Node) and
# the Python cross-checks of the modules they save (scripts/fixtures/models_*check*.py).
# Called by .ci/run after npm test; run it from anywhere after `npm install`.
#
# The tests are built in the addon's own build folder (build/, or GD_BUILD_DIR): its
# libgd_diffusion.a and libgd_models.a are already compiled, so only native/tests/*.cc compile
# here. GD_NATIVE_TESTS is switched off again afterwards, so the next addon build does not
# build the tests too.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${GD_BUILD_DIR:-build}"
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  echo "ci-native: no addon build in $BUILD (run npm install first)" >&2
  exit 1
fi

started=$(date +%s)
tests=()
for src in native/tests/*.cc; do tests+=("$(basename "$src" .cc)"); done

cmake -S . -B "$BUILD" -DGD_NATIVE_TESTS=ON >/dev/null
trap 'cmake -S . -B "$BUILD" -DGD_NATIVE_TESTS=OFF >/dev/null' EXIT
cmake --build "$BUILD" --target "${tests[@]}" -- ${CMAKE_BUILD_PARALLEL_LEVEL:+-j "$CMAKE_BUILD_PARALLEL_LEVEL"}
built=$(date +%s)
echo "ci-native: built ${#tests[@]} C++ tests in $((built - started)) s"

out="$BUILD/models_test_out"
rm -rf "$out"
failed=()
for t in "${tests[@]}"; do
  t0=$(date +%s)
  case "$t" in
    models_*) args=("$out") ;;  # they save modules there for the Python checks below
    *) args=("$PWD") ;;         # the repository root, for test/fixtures
  esac
  case "$t" in training_*) args=() ;; esac  # their argument is the dataset folder
  if "$BUILD/$t" "${args[@]}" >"$BUILD/$t.log" 2>&1; then
    echo "ci-native: $t passed ($(($(date +%s) - t0)) s)"
  else
    echo "ci-native: $t FAILED ($(($(date +%s) - t0)) s); its output:"
    cat "$BUILD/$t.log"
    failed+=("$t")
  fi
done

for check in scripts/fixtures/models_check_saved.py scripts/fixtures/models_spec_check.py; do
  t0=$(date +%s)
  if "${PYTHON:-python3}" "$check" "$out" >"$BUILD/$(basename "$check").log" 2>&1; then
    echo "ci-native: $check passed ($(($(date +%s) - t0)) s)"
  else
    echo "ci-native: $check FAILED; its output:"
    cat "$BUILD/$(basename "$check").log"
    failed+=("$check")
  fi
done

echo "ci-native: $((${#tests[@]} + 2 - ${#failed[@]})) of $((${#tests[@]} + 2)) passed in $(($(date +%s) - started)) s"
[ ${#failed[@]} -eq 0 ]
