#pragma once
// Throughput of the CPU linear attention kernel (LinearCpu.h) against an sgemm ceiling measured in
// the same run: a library function so `attnc bench --linear` (bench/suite/LinearSuite.h) and the
// tests call the same code. The ceiling is the CPU backend's fp32 gemm micro-kernel (the one the
// kernel multiplies with) on the kernel's main product shape, phi(Q) [S x D] times a state
// [D x (Dv + 1)] per (b, h), spread over the same threads. (No OpenBLAS ceiling is measured for it.)
// Timing numbers are the caller's to report (docs/cpu-backend.md has the place for them).

#include <cstdint>

#include "compiler/DType.h"

namespace attnc {

struct LinearBenchmarkConfig {
  int64_t batch = 1, heads = 8, length = 4096, head_dim = 128;
  DType dtype = DType::F32;
  bool causal = true;
  int chunk_size = 64;
  int repeats = 3;      // timed runs of each; the median is reported
  int num_threads = 0;  // <= 0: every hardware thread
  uint32_t seed = 1;
};

struct LinearBenchmarkResult {
  double seconds = 0;       // median time of one linear attention call
  int64_t flops = 0;        // the multiply-adds the chunkwise form performs, times 2
  double gflops = 0;        // flops / seconds / 1e9
  double sgemm_gflops = 0;  // the ceiling, median of the same number of runs
  double fraction = 0;      // gflops / sgemm_gflops
};

// Inputs uniform in [-1, 1) from `seed`. RuntimeError for sizes the kernel refuses.
LinearBenchmarkResult benchmark_linear_attention(const LinearBenchmarkConfig& config);

}  // namespace attnc
