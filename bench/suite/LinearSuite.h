#pragma once
// `attnc bench --linear`: the CPU linear attention kernel (runtime/families/linear/LinearCpu.h)
// timed against an sgemm ceiling measured in the same run (runtime/families/linear/
// LinearBenchmark.h: the CPU backend's fp32 gemm micro-kernel on the kernel's main product shape,
// on the same threads), per dtype and causal / non-causal. Nothing here prints.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "compiler/DType.h"
#include "runtime/families/linear/LinearBenchmark.h"

namespace attnc::bench {

struct LinearSuiteConfig {
  int64_t batch = 1, heads = 8, length = 4096, head_dim = 128;
  std::vector<DType> dtypes = {DType::F32, DType::BF16};
  std::vector<bool> causal = {true, false};
  int chunk_size = 64;
  int repeat = 3;
  int threads = 0;  // <= 0: every hardware thread
};

struct LinearCase {
  std::string id;  // "fp32-causal", "bf16-noncausal"
  DType dtype = DType::F32;
  bool causal = true;
  LinearBenchmarkResult result;  // fraction = gflops / sgemm_gflops
  std::string error;
};

struct LinearSuiteReport {
  std::vector<LinearCase> cases;
  bool failed() const;
};

// Runs dtypes x causal in that order, calling `finished` after each case.
LinearSuiteReport run_linear_suite(const LinearSuiteConfig& config,
                                   const std::function<void(const LinearCase&)>& finished = {});

// The report as JSON text: the settings and every case's measured numbers or its error.
std::string linear_suite_json(const LinearSuiteConfig& config, const LinearSuiteReport& report);

}  // namespace attnc::bench
