#!/usr/bin/env bash
# The README's second command: install what is missing, build everything, run the whole test
# suite. Exits non-zero when the build or any test fails.
#
#   bash scripts/test.sh                   # build/ (RelWithDebInfo)
#   ATTNC_SANITIZE=1 bash scripts/test.sh  # build-asan/ with AddressSanitizer + UBSan
#
# Environment: ATTNC_SANITIZE (1: sanitizer build), ATTNC_BUILD_DIR (overrides the directory),
# ATTNC_BUILD_TYPE (default: RelWithDebInfo), ATTNC_JOBS (default: the number of CPUs).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build_type=${ATTNC_BUILD_TYPE:-RelWithDebInfo}
jobs=${ATTNC_JOBS:-$(nproc)}
cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE="$build_type" -DATTNC_BUILD_TESTS=ON)
if [[ "${ATTNC_SANITIZE:-0}" == 1 ]]; then
  build_dir=${ATTNC_BUILD_DIR:-build-asan}
  cmake_args+=(-DATTNC_SANITIZE=ON)
  # Fail on the first report, with a stack trace.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
else
  build_dir=${ATTNC_BUILD_DIR:-build}
  cmake_args+=(-DATTNC_SANITIZE=OFF)
fi

bash scripts/install-deps.sh

echo "test: configuring $build_dir ($build_type${ATTNC_SANITIZE:+, sanitize=$ATTNC_SANITIZE})"
cmake -S . -B "$build_dir" "${cmake_args[@]}" >/dev/null
echo "test: building"
ninja -C "$build_dir" -j "$jobs"
echo "test: running the test suite"
ctest --test-dir "$build_dir" --output-on-failure -j2
