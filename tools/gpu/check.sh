#!/usr/bin/env bash
# tools/gpu/check.sh: the one prepared script for a GPU machine (an H100/H200 box with cmake, g++,
# nvcc, the CUDA libraries and PyTorch, but no LLVM, no package registry and no network).
#
#   1. build   configure (Release, ATTNC_WITH_LLVM=OFF) and build test_runtime, test_tools, attnc
#              and attnc_gpu_bench; fmt and Catch2 come from tools/gpu/deps (tools/gpu/prepare.sh)
#              when the box has none
#   2. test    every GPU test: test_runtime "[cuda]" and test_tools "[cuda]"
#   3. bench   attnc_gpu_bench and tools/gpu/torch_peers.py (SDPA flash / cuDNN, compiled flex)
#   4. report  bench/results/gpu-<card>-<date>.md (also copied to $OUT when the device tool set it)
#
# Usage: tools/gpu/check.sh [build] [test] [bench] [report]     (no stage: all four)
# A device call may run at most 10 minutes, so on the lent machine run it as two calls:
#   tools/gpu/check.sh build test      then      tools/gpu/check.sh bench report
# Every stage is time-boxed with `timeout` (ATTNC_GPU_*_TIMEOUT seconds) and prints progress.
# ATTNC_GPU_CHECK_DRY_RUN=1 runs everything that needs no GPU (the GPU tests skip and say so; the
# bench stage only checks that its programs start), for checking the script on a build machine.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
dry=${ATTNC_GPU_CHECK_DRY_RUN:-0}
build=${ATTNC_GPU_BUILD_DIR:-$root/build-gpu}
work="$build/gpu-check"
deps="$root/tools/gpu/deps/include"
jobs=${ATTNC_GPU_JOBS:-$(nproc)}
build_timeout=${ATTNC_GPU_BUILD_TIMEOUT:-420}
test_timeout=${ATTNC_GPU_TEST_TIMEOUT:-300}
bench_timeout=${ATTNC_GPU_BENCH_TIMEOUT:-150}
torch_timeout=${ATTNC_GPU_TORCH_TIMEOUT:-330}
stages=${*:-build test bench report}
start=$(date +%s)
failures=0

log() { echo "[check.sh +$(($(date +%s) - start))s] $*"; }
has_stage() { [[ " $stages " == *" $1 "* ]]; }
mkdir -p "$work"

# ---- The CUDA installation: NVRTC is opened at run time, so say where it is.
cuda_root=${CUDA_HOME:-}
if [ -z "$cuda_root" ]; then
  for candidate in /usr/local/cuda /usr/local/cuda-*; do
    if [ -d "$candidate/lib64" ]; then cuda_root=$candidate; break; fi
  done
fi
if [ -n "$cuda_root" ]; then
  export CUDA_HOME="$cuda_root"
  export PATH="$cuda_root/bin:$PATH"
  export LD_LIBRARY_PATH="$cuda_root/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  if [ -z "${ATTNC_NVRTC_LIBRARY:-}" ]; then
    nvrtc=$(ls "$cuda_root"/lib64/libnvrtc.so.[0-9]* 2>/dev/null | grep -v builtins | sort -V | head -n 1)
    [ -n "$nvrtc" ] && export ATTNC_NVRTC_LIBRARY="$nvrtc"
  fi
fi
export ATTNC_CACHE_DIR=${ATTNC_CACHE_DIR:-$build/kernel-cache}
log "stages: $stages; build dir $build; CUDA ${cuda_root:-not found}; NVRTC ${ATTNC_NVRTC_LIBRARY:-default search}"

# ---- 1. build
if has_stage build; then
  cmake_args=(-DCMAKE_BUILD_TYPE=Release -DATTNC_WITH_LLVM=OFF)
  if command -v ninja >/dev/null 2>&1; then cmake_args+=(-G Ninja); fi
  have_fmt=0
  for dir in /usr/include /usr/local/include; do [ -f "$dir/fmt/format.h" ] && have_fmt=1; done
  have_catch=0
  for dir in /usr/include /usr/local/include; do [ -f "$dir/catch2/catch.hpp" ] && have_catch=1; done
  if [ "$have_fmt" = 0 ] || [ "$have_catch" = 0 ] || [ "${ATTNC_GPU_USE_DEPS:-0}" = 1 ]; then
    if [ ! -f "$deps/fmt/format.h" ] || [ ! -f "$deps/catch2/catch.hpp" ]; then
      log "FAIL: fmt or Catch2 missing and no copies in $deps: run tools/gpu/prepare.sh on the build machine" \
          "and carry tools/gpu/deps"
      exit 1
    fi
    cmake_args+=(-DATTNC_DEPS_INCLUDE_DIR="$deps")
    [ "$have_fmt" = 0 ] || [ "${ATTNC_GPU_USE_DEPS:-0}" = 1 ] && cmake_args+=(-DATTNC_FMT_HEADER_ONLY=ON)
    log "using carried headers from $deps (system fmt: $have_fmt, system Catch2: $have_catch)"
  fi
  log "configuring: cmake ${cmake_args[*]}"
  if ! timeout 120 cmake -S "$root" -B "$build" "${cmake_args[@]}" >"$work/configure.log" 2>&1; then
    tail -n 30 "$work/configure.log"
    log "FAIL: configure (log: $work/configure.log)"
    exit 1
  fi
  grep -E "attnc:" "$work/configure.log" || true
  log "building with $jobs jobs (time box ${build_timeout}s)"
  if ! timeout "$build_timeout" cmake --build "$build" -j "$jobs" --target test_runtime test_tools attnc \
      attnc_gpu_bench >"$work/build.log" 2>&1; then
    grep -E "error|Error" "$work/build.log" | head -n 30
    tail -n 15 "$work/build.log"
    log "FAIL: build (log: $work/build.log)"
    exit 1
  fi
  log "build done"
fi

# ---- 2. test
run_tests() {  # NAME BINARY FILTER
  local name=$1 binary=$2 filter=$3
  log "running $name \"$filter\" (time box ${test_timeout}s)"
  timeout "$test_timeout" "$binary" "$filter" --durations yes >"$work/$name.log" 2>&1
  local status=$?
  grep -E "warning:|WARN|FAILED|passed|failed" "$work/$name.log" | grep -v "^\s*$" | tail -n 25
  if [ $status -ne 0 ]; then
    log "FAIL: $name exited with $status (log: $work/$name.log)"
    failures=$((failures + 1))
  fi
  tail -n 2 "$work/$name.log" >"$work/$name.summary"
}
if has_stage test; then
  [ -x "$build/tests/test_runtime" ] || { log "FAIL: no test binaries; run the build stage first"; exit 1; }
  run_tests test_runtime "$build/tests/test_runtime" "[cuda]"
  run_tests test_tools "$build/tests/test_tools" "[cuda]"
  if [ "$dry" = 1 ]; then
    # Without a GPU, the host emulation with generated mods is what can run.
    run_tests test_runtime_generated "$build/tests/test_runtime" "[generated]"
  fi
fi

# ---- 3. bench
if has_stage bench; then
  bench_args=()
  [ "${ATTNC_GPU_BENCH_QUICK:-0}" = 1 ] && bench_args+=(--quick)
  if [ "$dry" = 1 ]; then
    log "dry run: checking that the bench programs start"
    "$build/tools/gpu/attnc_gpu_bench" --bogus >/dev/null 2>&1
    [ $? -eq 2 ] || { log "FAIL: attnc_gpu_bench does not start"; failures=$((failures + 1)); }
    "$build/tools/gpu/attnc_gpu_bench" >"$work/attnc.csv" 2>"$work/attnc.err"
    log "attnc_gpu_bench without a GPU: exit $? ($(tail -n 1 "$work/attnc.err"))"
    python3 -m py_compile "$root/tools/gpu/torch_peers.py" && log "torch_peers.py compiles"
    rm -rf "$root/tools/gpu/__pycache__"
  else
    log "attnc timings (time box ${bench_timeout}s)"
    timeout "$bench_timeout" "$build/tools/gpu/attnc_gpu_bench" "${bench_args[@]}" >"$work/attnc.csv" \
      2> >(tee "$work/attnc.err" >&2)
    status=$?
    [ $status -eq 0 ] || { log "FAIL: attnc_gpu_bench exited with $status"; failures=$((failures + 1)); }
    log "PyTorch timings (time box ${torch_timeout}s)"
    timeout "$torch_timeout" python3 "$root/tools/gpu/torch_peers.py" "${bench_args[@]}" >"$work/torch.csv" \
      2> >(tee "$work/torch.err" | grep -v "^\s*$" | tail -n 200 >&2)
    status=$?
    [ $status -eq 0 ] || { log "torch_peers.py exited with $status (partial results kept)"; }
  fi
fi

# ---- 4. report
if has_stage report; then
  card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
  card=${card:-no-gpu}
  slug=$(echo "$card" | tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '-' | sed 's/^-//; s/-$//')
  date=$(date +%Y-%m-%d)
  if [ "$dry" = 1 ]; then report="$work/gpu-$slug-$date.md"; else report="$root/bench/results/gpu-$slug-$date.md"; fi
  mkdir -p "$(dirname "$report")"
  {
    echo "# attnc on $card ($date)"
    echo
    echo "Written by tools/gpu/check.sh (stages: $stages). Build: Release, ATTNC_WITH_LLVM=OFF."
    echo
    echo '```'
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null || echo "nvidia-smi: none"
    (nvcc --version 2>/dev/null | tail -n 2) || echo "nvcc: none"
    echo "NVRTC: ${ATTNC_NVRTC_LIBRARY:-default search}"
    python3 -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)' 2>/dev/null || echo "torch: none"
    echo '```'
    echo
    echo "## GPU tests"
    echo
    for name in test_runtime test_tools test_runtime_generated; do
      [ -f "$work/$name.summary" ] && { echo "- $name: $(grep -v '^=*$' "$work/$name.summary" | tr '\n' ' ')"; }
    done
    echo
    echo "## Timings (B=4, H=16, bf16; TFLOP/s counting only unmasked work; median of 10 after 3 warm-up)"
    echo
    python3 - "$work/attnc.csv" "$work/torch.csv" <<'PY'
import csv, math, os, sys
rows = {}
for path in sys.argv[1:]:
    if not os.path.exists(path):
        continue
    with open(path) as f:
        for r in csv.DictReader(f):
            try:
                rows.setdefault((r["mod"], int(r["S"]), int(r["D"])), {})[r["impl"]] = float(r["tflops"])
            except (KeyError, ValueError):
                pass
impls = ["attnc", "flex", "sdpa_flash", "sdpa_cudnn"]
print("| mod | S | D | attnc | flex (compiled) | SDPA flash | SDPA cuDNN | attnc / flex |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
order = ["none", "causal", "alibi", "sliding_window_1024", "document", "softcap"]
for key in sorted(rows, key=lambda k: (k[1], k[2], order.index(k[0]) if k[0] in order else 99)):
    r = rows[key]
    cell = lambda i: "" if i not in r or math.isnan(r[i]) else f"{r[i]:.1f}"
    ratio = ""
    if "attnc" in r and "flex" in r and r["flex"] > 0 and not math.isnan(r["flex"]) and not math.isnan(r["attnc"]):
        ratio = f"{r['attnc'] / r['flex']:.2f}x"
    print(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cell(i) for i in impls) + f" | {ratio} |")
if not rows:
    print("(no timings)")
PY
  } >"$report"
  log "report: $report"
  if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
    cp "$report" "$OUT/" && cp -r "$work" "$OUT/gpu-check-logs" 2>/dev/null
    log "copied the report and logs to \$OUT"
  fi
fi

log "done: $failures failure(s)"
[ $failures -eq 0 ]
