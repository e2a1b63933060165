#!/usr/bin/env bash
# tools/gpu/prepare.sh: run HERE (the build machine) before a GPU lease, so that the lent machine
# only runs prepared binaries (tools/gpu/check.sh) and spends none of its minutes building.
#
#   1. deps   copies the header-only dependencies (fmt, used with FMT_HEADER_ONLY, Catch2's single
#             header, CLI11, nlohmann-json, DLPack) into tools/gpu/deps/include: check.sh's fallback
#             build on the GPU machine needs them when prepared binaries cannot run there.
#   2. build  configures build-gpu-stage/ (ignored: /build*/) as Release, ATTNC_WITH_LLVM=OFF (the
#             GPU machine has no LLVM), header-only fmt from tools/gpu/deps, no MPI, no OpenBLAS
#             (neither is on the GPU machine's image), libstdc++ and libgcc linked statically, and
#             builds test_runtime, test_tools, attnc and attnc_gpu_bench.
#   3. stage  copies the four binaries, stripped, into tools/gpu/stage/bin (ignored by its own
#             .gitignore), writes tools/gpu/stage/MANIFEST (commit, sizes, shared libraries) and
#             checks that what a device call carries (the working tree plus tools/gpu/stage and
#             tools/gpu/deps) stays under the 64 MiB limit.
#
# Usage: tools/gpu/prepare.sh [deps] [build] [stage]   (no stage named: all three)
# Then: run(command="tools/gpu/check.sh", carry=["tools/gpu/stage", "tools/gpu/deps"]).
# ATTNC_GPU_PREPARE_JOBS sets the build's parallelism (default 2: the build machine is shared).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
deps="$root/tools/gpu/deps"
build=${ATTNC_GPU_STAGE_BUILD_DIR:-$root/build-gpu-stage}
stage="$root/tools/gpu/stage"
jobs=${ATTNC_GPU_PREPARE_JOBS:-2}
stages=${*:-deps build stage}
has_stage() { [[ " $stages " == *" $1 "* ]]; }
log() { echo "[prepare.sh] $*"; }
limit_bytes=$((64 * 1024 * 1024))
targets=(test_runtime test_tools attnc attnc_gpu_bench)

# ---- 1. deps
if has_stage deps; then
  mkdir -p "$deps/include/fmt" "$deps/include/catch2" "$deps/include/CLI" "$deps/include/nlohmann"
  printf '*\n' > "$deps/.gitignore"
  fmt_dir=${FMT_INCLUDE_DIR:-/usr/include/fmt}
  catch_header=${CATCH2_HEADER:-/usr/include/catch2/catch.hpp}
  cli11_dir=${CLI11_INCLUDE_DIR:-/usr/include/CLI}
  nlohmann_dir=${NLOHMANN_INCLUDE_DIR:-/usr/include/nlohmann}
  [ -f "$fmt_dir/format.h" ] || { echo "prepare.sh: no fmt headers at $fmt_dir (set FMT_INCLUDE_DIR)" >&2; exit 1; }
  [ -f "$catch_header" ] || { echo "prepare.sh: no Catch2 header at $catch_header (set CATCH2_HEADER)" >&2; exit 1; }
  [ -f "$cli11_dir/CLI.hpp" ] || { echo "prepare.sh: no CLI11 headers at $cli11_dir (set CLI11_INCLUDE_DIR)" >&2; exit 1; }
  [ -f "$nlohmann_dir/json.hpp" ] || { echo "prepare.sh: no nlohmann-json at $nlohmann_dir (set NLOHMANN_INCLUDE_DIR)" >&2; exit 1; }
  cp "$fmt_dir"/*.h "$deps/include/fmt/"
  cp "$catch_header" "$deps/include/catch2/catch.hpp"
  cp -r "$cli11_dir"/. "$deps/include/CLI/"
  cp -r "$nlohmann_dir"/. "$deps/include/nlohmann/"
  dlpack_header=${DLPACK_HEADER:-/usr/include/dlpack/dlpack.h}
  if [ -f "$dlpack_header" ]; then
    mkdir -p "$deps/include/dlpack"
    cp "$dlpack_header" "$deps/include/dlpack/dlpack.h"
  fi
  log "copied fmt ($(grep -m1 'define FMT_VERSION' "$fmt_dir/core.h" | awk '{print $3}')), Catch2, CLI11, nlohmann-json and DLPack headers to $deps/include ($(du -sh "$deps" | cut -f1))"
fi

# ---- 2. build
if has_stage build; then
  [ -f "$deps/include/fmt/format.h" ] || { echo "prepare.sh: run the deps stage first" >&2; exit 1; }
  cmake_args=(-DCMAKE_BUILD_TYPE=Release -DATTNC_WITH_LLVM=OFF -DATTNC_WITH_MPI=OFF
              -DATTNC_FMT_HEADER_ONLY=ON -DATTNC_DEPS_INCLUDE_DIR="$deps/include"
              -DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON
              "-DCMAKE_EXE_LINKER_FLAGS=-static-libstdc++ -static-libgcc")
  command -v ninja >/dev/null 2>&1 && cmake_args+=(-G Ninja)
  log "configuring $build: ${cmake_args[*]}"
  mkdir -p "$build"
  cmake -S "$root" -B "$build" "${cmake_args[@]}" > "$build/prepare-configure.log" 2>&1 || {
    tail -n 30 "$build/prepare-configure.log"; echo "prepare.sh: configure failed" >&2; exit 1; }
  log "building ${targets[*]} with $jobs jobs (log: $build/prepare-build.log)"
  nice cmake --build "$build" -j "$jobs" --target "${targets[@]}" > "$build/prepare-build.log" 2>&1 || {
    grep -E "error" "$build/prepare-build.log" | head -n 20; echo "prepare.sh: build failed" >&2; exit 1; }
  log "build done"
fi

# ---- 3. stage
if has_stage stage; then
  rm -rf "$stage"
  mkdir -p "$stage/bin"
  printf '*\n' > "$stage/.gitignore"
  for target in "${targets[@]}"; do
    binary=$(find "$build" -type f -name "$target" -perm -u+x | head -n 1)
    [ -n "$binary" ] || { echo "prepare.sh: no $target in $build: run the build stage" >&2; exit 1; }
    cp "$binary" "$stage/bin/$target"
    strip --strip-unneeded "$stage/bin/$target"
  done
  {
    echo "commit $(git -C "$root" rev-parse HEAD)$(git -C "$root" diff --quiet HEAD -- . ':!tools/gpu/stage' || echo ' (with uncommitted changes)')"
    echo "built $(date -u +%Y-%m-%dT%H:%MZ) on $(uname -m), $(ldd --version | head -n 1)"
    echo "configuration: Release, ATTNC_WITH_LLVM=OFF, header-only fmt, static libstdc++/libgcc"
    for target in "${targets[@]}"; do
      echo "$target $(stat -c %s "$stage/bin/$target") bytes; needs: $(ldd "$stage/bin/$target" | awk '{print $1}' | grep -v '^/' | tr '\n' ' ')"
    done
  } > "$stage/MANIFEST"
  cat "$stage/MANIFEST"
  # What one device call carries: tracked files, untracked files git does not ignore, and the two
  # carried folders.
  tree_bytes=$(git -C "$root" ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null |
               awk '{s += $1} END {print s + 0}')
  stage_bytes=$(du -sb "$stage" | cut -f1)
  deps_bytes=$(du -sb "$deps" 2>/dev/null | cut -f1 || echo 0)
  total=$((tree_bytes + stage_bytes + deps_bytes))
  log "carried: working tree $((tree_bytes / 1024)) KiB + stage $((stage_bytes / 1024)) KiB + deps $((deps_bytes / 1024)) KiB = $((total / 1024 / 1024)) MiB of 64"
  if [ "$total" -ge "$limit_bytes" ]; then
    echo "prepare.sh: $total bytes would not fit one device call (64 MiB)" >&2
    exit 1
  fi
fi
