#!/usr/bin/env bash
# Run HERE (the build machine) before handing the repository to a GPU machine: copies the
# header-only dependencies the GPU box lacks (fmt, used with FMT_HEADER_ONLY, Catch2's single
# header, CLI11 and nlohmann-json) into tools/gpu/deps/include. The folder ignores itself (its own
# .gitignore), so the device tool must carry it: run(..., carry=["tools/gpu/deps"]). See docs/cuda-backend.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
deps="$root/tools/gpu/deps"
mkdir -p "$deps/include/fmt" "$deps/include/catch2" "$deps/include/CLI" "$deps/include/nlohmann"
printf '*\n' > "$deps/.gitignore"
fmt_dir=${FMT_INCLUDE_DIR:-/usr/include/fmt}
catch_header=${CATCH2_HEADER:-/usr/include/catch2/catch.hpp}
[ -f "$fmt_dir/format.h" ] || { echo "prepare.sh: no fmt headers at $fmt_dir (set FMT_INCLUDE_DIR)" >&2; exit 1; }
[ -f "$catch_header" ] || { echo "prepare.sh: no Catch2 header at $catch_header (set CATCH2_HEADER)" >&2; exit 1; }
cp "$fmt_dir"/*.h "$deps/include/fmt/"
cp "$catch_header" "$deps/include/catch2/catch.hpp"
# DLPack's single header, so Tensor::from_dlpack / to_dlpack work in the GPU build too.
dlpack_header=${DLPACK_HEADER:-/usr/include/dlpack/dlpack.h}
if [ -f "$dlpack_header" ]; then
  mkdir -p "$deps/include/dlpack"
  cp "$dlpack_header" "$deps/include/dlpack/dlpack.h"
fi
cli11_dir=${CLI11_INCLUDE_DIR:-/usr/include/CLI}
nlohmann_dir=${NLOHMANN_INCLUDE_DIR:-/usr/include/nlohmann}
[ -f "$cli11_dir/CLI.hpp" ] || { echo "prepare.sh: no CLI11 headers at $cli11_dir (set CLI11_INCLUDE_DIR)" >&2; exit 1; }
[ -f "$nlohmann_dir/json.hpp" ] || { echo "prepare.sh: no nlohmann-json at $nlohmann_dir (set NLOHMANN_INCLUDE_DIR)" >&2; exit 1; }
cp -r "$cli11_dir"/. "$deps/include/CLI/"
cp -r "$nlohmann_dir"/. "$deps/include/nlohmann/"
echo "prepare.sh: copied fmt ($(grep -m1 'define FMT_VERSION' "$fmt_dir/core.h" | awk '{print $3}')), Catch2, CLI11, nlohmann-json and DLPack headers to $deps/include ($(du -sh "$deps" | cut -f1))"
