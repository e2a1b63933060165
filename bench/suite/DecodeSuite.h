#pragma once
// `attnc bench --decode`: CPU decoding timed against the machine's memory system. Each case (a
// dtype and a KV layout: contiguous, or pages of a given size behind a shuffled block table) runs
// runtime/families/decode/DecodeBench.h, which times decode_attention and, in the same run, a
// parallel read of the same K/V bytes on the same workers (the read ceiling). The figure of merit
// is decode's K+V read rate over the ceiling's.
//
// The default shape is issue 12's H200 shape scaled to a CPU: B=4, H_q=32, H_kv=8 (GQA 4:1), one
// query row, kv=16384, D=128: 268 MB of K+V in bf16, 537 MB in fp32. Nothing here prints.

#include <functional>
#include <string>
#include <vector>

#include "compiler/DType.h"
#include "runtime/families/decode/DecodeBench.h"

namespace attnc::bench {

struct DecodeSuiteConfig {
  int64_t batch = 4, heads = 32, kv_heads = 8, q_len = 1, kv_len = 16384, head_dim = 128;
  std::vector<DType> dtypes = {DType::BF16, DType::F32};
  std::vector<int> page_sizes = {0, 16};  // 0: the contiguous layout; else tokens per page
  int window = 0;                         // > 0: a causal sliding window of this many keys
  int repeat = 5;                         // timed runs of decode and of the ceiling; medians
  int threads = 0;                        // <= 0: one per hardware thread
};

struct DecodeCase {
  std::string id;  // "bf16-contiguous", "fp32-paged16"
  DType dtype = DType::BF16;
  int page_size = 0;
  decode::DecodeBenchResult result;  // as measured; fraction = decode_gbps / read_gbps
  std::string error;                 // the case failed (the others still run)
};

struct DecodeSuiteReport {
  std::vector<DecodeCase> cases;
  bool failed() const;
};

// Runs dtypes x page_sizes in that order, calling `finished` after each case.
DecodeSuiteReport run_decode_suite(const DecodeSuiteConfig& config,
                                   const std::function<void(const DecodeCase&)>& finished = {});

// The report as JSON text: the settings and every case with its measured numbers (times, bytes,
// rates, the ratio, splits, threads, kernels) or its error.
std::string decode_suite_json(const DecodeSuiteConfig& config, const DecodeSuiteReport& report);

}  // namespace attnc::bench
