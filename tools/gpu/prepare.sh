#!/usr/bin/env bash
# Run HERE (the build machine) before handing the repository to a GPU machine: copies the
# header-only dependencies the GPU box lacks (fmt, used with FMT_HEADER_ONLY, and Catch2's single
# header) into tools/gpu/deps/include. The folder ignores itself (its own .gitignore), so the
# device tool must carry it: run(..., carry=["tools/gpu/deps"]). See docs/cuda-backend.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
deps="$root/tools/gpu/deps"
mkdir -p "$deps/include/fmt" "$deps/include/catch2"
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
echo "prepare.sh: copied fmt ($(grep -m1 'define FMT_VERSION' "$fmt_dir/core.h" | awk '{print $3}')) and Catch2 headers to $deps/include ($(du -sh "$deps" | cut -f1))"
