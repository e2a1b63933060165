#!/usr/bin/env bash
# tools/gpu/check.sh: the one prepared script for a GPU lease (an H100/H200 box with the CUDA
# toolkit and PyTorch, but no LLVM, no registry and no network). It builds nothing when
# tools/gpu/prepare.sh staged binaries here beforehand (tools/gpu/stage/bin), so the lease's minutes
# go to the tests and the timings:
#
#   1. probe   the staged binaries start (else, as a fallback, configure and build them here:
#              Release, ATTNC_WITH_LLVM=OFF, with tools/gpu/deps; several minutes)
#   2. test    every GPU test: test_runtime "[gpu]" and test_tools "[cuda]", with ATTNC_SOURCE_DIR
#              and ATTNC_BINARY pointing at this checkout and the staged attnc (the compile-only
#              "[cuda]" tests, NVRTC and ptxas, need no GPU: they run on the build machine)
#   3. bench   attnc_gpu_bench (forward: the flash and Hopper families; decode: contiguous, paged,
#              windowed, with the same-run copy rate; linear attention; the backward family) and
#              tools/gpu/torch_peers.py (SDPA flash and cuDNN backends, compiled flex_attention,
#              forward, decode and, last, backward) in the same run
#   4. report  bench/results/gpu-<card>-<date>.md, also copied to $OUT with the logs
#
# Usage: tools/gpu/check.sh [test] [bench] [report]   (no stage named: all three, after the probe)
# On the device tool: run(command="tools/gpu/check.sh", carry=["tools/gpu/stage", "tools/gpu/deps"],
# timeout_s=600). Each stage is time-boxed (ATTNC_GPU_TEST_TIMEOUT, ATTNC_GPU_BENCH_TIMEOUT,
# ATTNC_GPU_TORCH_TIMEOUT seconds; defaults 120, 240 and 210 fit one 10-minute call; the bench box
# includes NVRTC compiling about 30 kernels cold);
# ATTNC_GPU_BENCH_QUICK=1 times S=2048 only. Without a GPU (no driver or no device) the GPU tests
# skip with a WARN line each, the timings are skipped with one line saying so, and the script
# exits 0: that is how it is checked on the build machine.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bin=${ATTNC_GPU_BIN:-$root/tools/gpu/stage/bin}
build=${ATTNC_GPU_BUILD_DIR:-$root/build-gpu}
work=${ATTNC_GPU_WORK_DIR:-$root/build-gpu/gpu-check}
deps="$root/tools/gpu/deps/include"
test_timeout=${ATTNC_GPU_TEST_TIMEOUT:-120}
bench_timeout=${ATTNC_GPU_BENCH_TIMEOUT:-240}
torch_timeout=${ATTNC_GPU_TORCH_TIMEOUT:-210}
build_timeout=${ATTNC_GPU_BUILD_TIMEOUT:-480}
stages=${*:-test bench report}
start=$(date +%s)
failures=0

log() { echo "[check.sh +$(($(date +%s) - start))s] $*"; }
has_stage() { [[ " $stages " == *" $1 "* ]]; }
mkdir -p "$work"
rm -f "$work"/*.summary "$work"/*.csv

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
export ATTNC_CACHE_DIR=${ATTNC_CACHE_DIR:-$work/kernel-cache}
gpu=0
if nvidia-smi -L 2>/dev/null | grep -q "^GPU"; then gpu=1; fi
log "stages: $stages; binaries $bin; CUDA ${cuda_root:-not found}; NVRTC ${ATTNC_NVRTC_LIBRARY:-default search}; GPU: $gpu"

# ---- 1. probe: staged binaries that start, else a build here.
binaries_start() {
  local dir=$1
  for target in test_runtime test_tools attnc attnc_gpu_bench; do
    [ -x "$dir/$target" ] || { log "no $dir/$target"; return 1; }
  done
  "$dir/attnc" --help >/dev/null 2>"$work/probe.err" || { log "attnc does not start: $(head -c 300 "$work/probe.err")"; return 1; }
  "$dir/test_runtime" --help >/dev/null 2>"$work/probe.err" || { log "test_runtime does not start: $(head -c 300 "$work/probe.err")"; return 1; }
  return 0
}
if binaries_start "$bin"; then
  log "using the staged binaries ($(head -n 1 "$bin/../MANIFEST" 2>/dev/null || echo 'no manifest'))"
else
  log "staged binaries unusable: building here instead (time box ${build_timeout}s)"
  cmake_args=(-DCMAKE_BUILD_TYPE=Release -DATTNC_WITH_LLVM=OFF -DATTNC_WITH_MPI=OFF)
  command -v ninja >/dev/null 2>&1 && cmake_args+=(-G Ninja)
  if [ -f "$deps/fmt/format.h" ]; then
    cmake_args+=(-DATTNC_DEPS_INCLUDE_DIR="$deps" -DATTNC_FMT_HEADER_ONLY=ON)
  fi
  if ! timeout 120 cmake -S "$root" -B "$build" "${cmake_args[@]}" >"$work/configure.log" 2>&1; then
    tail -n 30 "$work/configure.log"
    log "FAIL: configure (log: $work/configure.log)"
    exit 1
  fi
  if ! timeout "$build_timeout" cmake --build "$build" -j "$(nproc)" --target test_runtime test_tools attnc \
      attnc_gpu_bench >"$work/build.log" 2>&1; then
    grep -E "error" "$work/build.log" | head -n 30
    log "FAIL: build (log: $work/build.log)"
    exit 1
  fi
  mkdir -p "$work/bin"
  for target in test_runtime test_tools attnc attnc_gpu_bench; do
    cp "$(find "$build" -type f -name "$target" -perm -u+x | head -n 1)" "$work/bin/"
  done
  bin="$work/bin"
  log "build done"
fi
export ATTNC_SOURCE_DIR="$root" ATTNC_BINARY="$bin/attnc"

# ---- 2. test
run_tests() {  # NAME BINARY FILTER
  local name=$1 binary=$2 filter=$3
  log "running $name \"$filter\" (time box ${test_timeout}s)"
  timeout "$test_timeout" "$binary" "$filter" --durations yes >"$work/$name.log" 2>&1
  local status=$?
  grep -E "FAILED|passed|failed|No tests ran" "$work/$name.log" | tail -n 20
  [ "$gpu" = 1 ] || log "$name: $(grep -c 'WARN\|warning:' "$work/$name.log") GPU tests skipped (no GPU here)"
  if [ $status -ne 0 ]; then
    log "FAIL: $name exited with $status (log: $work/$name.log)"
    failures=$((failures + 1))
  fi
  tail -n 2 "$work/$name.log" >"$work/$name.summary"
}
if has_stage test; then
  run_tests test_runtime "$bin/test_runtime" "[gpu]"
  run_tests test_tools "$bin/test_tools" "[cuda]"
fi

# ---- 3. bench
if has_stage bench; then
  if [ "$gpu" = 0 ]; then
    log "no GPU: timings skipped; checking that the bench programs start"
    "$bin/attnc_gpu_bench" --bogus >/dev/null 2>&1
    [ $? -eq 2 ] || { log "FAIL: attnc_gpu_bench does not start"; failures=$((failures + 1)); }
    python3 -c "import ast, sys; ast.parse(open(sys.argv[1]).read())" "$root/tools/gpu/torch_peers.py" &&
      log "torch_peers.py parses"
  else
    bench_args=()
    [ "${ATTNC_GPU_BENCH_QUICK:-0}" = 1 ] && bench_args+=(--quick)
    log "attnc timings (time box ${bench_timeout}s)"
    timeout "$bench_timeout" "$bin/attnc_gpu_bench" "${bench_args[@]}" >"$work/attnc.csv" 2> >(tee "$work/attnc.err" >&2)
    status=$?
    [ $status -eq 0 ] || { log "FAIL: attnc_gpu_bench exited with $status (partial results kept)"; failures=$((failures + 1)); }
    log "PyTorch timings (time box ${torch_timeout}s)"
    PYTHONUNBUFFERED=1 timeout "$torch_timeout" python3 "$root/tools/gpu/torch_peers.py" "${bench_args[@]}" \
      >"$work/torch.csv" 2> >(tee "$work/torch.err" | grep -v "^\s*$" | tail -n 200 >&2)
    status=$?
    [ $status -eq 0 ] || log "torch_peers.py exited with $status (partial results kept)"
  fi
fi

# ---- 4. report
if has_stage report; then
  card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
  card=${card:-no-gpu}
  slug=$(echo "$card" | tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '-' | sed 's/^-//; s/-$//')
  date=$(date +%Y-%m-%d)
  if [ "$gpu" = 1 ]; then report="$root/bench/results/gpu-$slug-$date.md"; else report="$work/gpu-$slug-$date.md"; fi
  mkdir -p "$(dirname "$report")"
  {
    echo "# attnc on $card ($date)"
    echo
    echo "Written by tools/gpu/check.sh (stages: $stages) with the binaries in $bin."
    echo
    echo '```'
    head -n 3 "$bin/../MANIFEST" 2>/dev/null || echo "binaries built on this machine"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null || echo "nvidia-smi: none"
    echo "NVRTC: ${ATTNC_NVRTC_LIBRARY:-default search}"
    python3 -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)' 2>/dev/null || echo "torch: none"
    echo '```'
    echo
    echo "## GPU tests"
    echo
    for name in test_runtime test_tools; do
      [ -f "$work/$name.summary" ] && echo "- $name ([gpu] / [cuda] tests): $(grep -v '^=*$' "$work/$name.summary" | tr '\n' ' ')"
    done
    echo
    python3 "$root/tools/gpu/report_tables.py" "$work/attnc.csv" "$work/torch.csv"
  } >"$report"
  log "report: $report"
  cat "$report"
  if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
    # Two files: the device tool brings back at most 8.
    cp "$report" "$OUT/" && tar -czf "$OUT/gpu-check-logs.tar.gz" -C "$work" --exclude kernel-cache --exclude bin .
    log "copied the report and logs to \$OUT"
  fi
fi

log "done: $failures failure(s)"
[ $failures -eq 0 ]
