#!/usr/bin/env bash
# ctest's `install` test (tests/install/CMakeLists.txt): installs a finished build into a temporary
# prefix with `cmake --install`, then configures, builds and runs tests/install/consumer against it
# with the same generator, compilers and build type, as a C++ user would (find_package through
# CMAKE_PREFIX_PATH). On the way it checks that the package came from the prefix and that nothing
# installed or compiled names the source or build tree, so the consumer saw installed files only.
#
#   run_consumer_test.sh SOURCE_DIR BUILD_DIR GENERATOR MAKE_PROGRAM C_COMPILER CXX_COMPILER BUILD_TYPE
#                        [-DVAR=VALUE ...]      (passed to the consumer's configure)
#
# ATTNC_KEEP_INSTALL_TEST=1 keeps the temporary folder (printed) for a look afterwards.
set -euo pipefail

if [[ $# -lt 7 ]]; then
  echo "usage: $0 SOURCE_DIR BUILD_DIR GENERATOR MAKE_PROGRAM C_COMPILER CXX_COMPILER BUILD_TYPE [-DVAR=VALUE ...]" >&2
  exit 2
fi
source_dir=$(cd "$1" && pwd)
build_dir=$(cd "$2" && pwd)
generator=$3 make_program=$4 c_compiler=$5 cxx_compiler=$6 build_type=$7
shift 7

work=$(mktemp -d "${TMPDIR:-/tmp}/attnc-install-test.XXXXXX")
if [[ "${ATTNC_KEEP_INSTALL_TEST:-0}" == 1 ]]; then
  echo "install test: keeping $work"
else
  trap 'rm -rf "$work"' EXIT
fi
prefix=$work/prefix
step() { echo "install test [+${SECONDS}s]: $*"; }
fail() {
  echo "install test: FAILED: $*" >&2
  exit 1
}
# Lists text files under the given folders that name the source or build tree.
naming_the_tree() { grep -rlIF -e "$source_dir" -e "$build_dir" "$@" 2>/dev/null || true; }

step "cmake --install $build_dir --prefix $prefix"
cmake --install "$build_dir" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log"; fail "install"; }
[[ -f "$prefix/include/attnc/runtime/Attention.h" ]] || fail "no include/attnc/runtime/Attention.h in the prefix"
[[ -x "$prefix/bin/attnc" ]] || fail "no bin/attnc in the prefix"
ls "$prefix"/share/attnc/kernels/*.cuh >/dev/null 2>&1 || fail "no kernel templates in share/attnc/kernels"
leaks=$(naming_the_tree "$prefix/include" "$prefix/share" "$prefix"/lib*/cmake)
[[ -z "$leaks" ]] || fail "installed files name the source or build tree: $leaks"
"$prefix/bin/attnc" --help >/dev/null || fail "the installed attnc does not run"

# The consumer is copied out, so that no path of the source tree is legitimately on its command lines.
cp -r "$source_dir/tests/install/consumer" "$work/consumer"
step "configuring the consumer ($generator, $build_type)"
if ! cmake -S "$work/consumer" -B "$work/build" -G "$generator" -DCMAKE_MAKE_PROGRAM="$make_program" \
    -DCMAKE_C_COMPILER="$c_compiler" -DCMAKE_CXX_COMPILER="$cxx_compiler" -DCMAKE_BUILD_TYPE="$build_type" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON "$@" >"$work/configure.log" 2>&1; then
  cat "$work/configure.log"
  fail "configuring the consumer"
fi
found=$(sed -n 's/^attnc_DIR:PATH=//p' "$work/build/CMakeCache.txt")
[[ "$found" == "$prefix"/* ]] || fail "find_package(attnc) found $found, not the package in $prefix"

step "building the consumer"
cmake --build "$work/build" >"$work/build.log" 2>&1 || { cat "$work/build.log"; fail "building the consumer"; }
leaks=$(naming_the_tree "$work/build/compile_commands.json")
[[ -z "$leaks" ]] || fail "the consumer's compile commands name the source or build tree"

step "running the consumer"
"$work/build/app" || fail "the consumer exited with $?"
step "passed"
