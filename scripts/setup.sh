#!/usr/bin/env bash
# The README's first command: install what is missing, build attnc, and run it once on an
# example so a fresh machine ends with a working tool.
#
#   bash scripts/setup.sh
#
# Environment: ATTNC_BUILD_DIR (default: build), ATTNC_BUILD_TYPE (default: RelWithDebInfo),
# ATTNC_JOBS (default: the number of CPUs).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build_dir=${ATTNC_BUILD_DIR:-build}
build_type=${ATTNC_BUILD_TYPE:-RelWithDebInfo}
jobs=${ATTNC_JOBS:-$(nproc)}

bash scripts/install-deps.sh

echo "setup: configuring $build_dir ($build_type)"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="$build_type" >/dev/null
echo "setup: building attnc and its libraries"
ninja -C "$build_dir" -j "$jobs" attnc attnc_runtime attnc_compiler attnc_dsl

attnc="$build_dir/tools/attnc/attnc"
out="$build_dir/example_out.npy"
inputs=examples/inputs

# The main job: Mistral's causal sliding window (shrunk to 16 keys for 100-token inputs) with
# grouped-query attention (4 query heads, 2 KV heads), on the CPU reference kernel.
"$attnc" check examples/*.attn
"$attnc" run examples/mistral.attn --mask-mod sliding_window --arg window=16 \
  --q "$inputs/q.npy" --k "$inputs/k.npy" --v "$inputs/v.npy" -o "$out"

# A short summary from the output's .npy header (plain ASCII, within the first 128 bytes).
header=$(head -c 128 "$out" | tr -d '\000' | tr -c '[:print:]' ' ')
shape=$(grep -o "'shape': ([^)]*)" <<<"$header" | sed "s/'shape': //" || true)
descr=$(grep -o "'descr': '[^']*'" <<<"$header" | sed "s/'descr': //" || true)
echo "setup: ok: attnc run examples/mistral.attn --mask-mod sliding_window --arg window=16" \
  "wrote $out (shape ${shape:-?}, dtype ${descr:-?}, $(wc -c <"$out") bytes)"
echo "setup: next: bash scripts/test.sh"
