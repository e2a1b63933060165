#pragma once
// Measuring CPU decode against the memory system, as numbers a caller prints (the attnc CLI's
// `bench --decode`, a script): the median time of decode_attention on random inputs, and in the same
// run the median time of the read-bandwidth ceiling, a parallel vector sum over the same K/V bytes on
// the same number of workers. Decode at memory speed reads each K/V byte once, so decode GB/s over
// ceiling GB/s is the fraction of the machine's read bandwidth it reaches. The two are timed
// alternately, one decode then one ceiling run, and the fraction is the median of those pairs'
// ratios: on a shared host the memory system's speed drifts within a run (ceilings from 25 to 45 GB/s
// were seen on the 2-core build machine), and a pair sees the same conditions.
//
// Nothing here prints; timings on a loaded machine are only comparable within one result.

#include <cstdint>
#include <vector>

#include "compiler/DType.h"

namespace attnc::decode {

struct DecodeBenchConfig {
  int64_t batch = 4, heads = 32, kv_heads = 8, q_len = 1, kv_len = 16384, head_dim = 128;
  DType dtype = DType::BF16;
  int page_size = 0;    // 0: contiguous K/V; 16 .. 128: pages behind a shuffled block table
  int window = 0;       // > 0: a causal sliding window of this many keys (queries at the end)
  int repeats = 5;      // timed pairs of runs (decode, ceiling; medians reported), after one warm-up of each
  int num_threads = 0;  // workers; <= 0: one per hardware thread
};

struct DecodeBenchResult {
  double decode_seconds = 0;  // median of the timed decode runs
  double kv_bytes = 0;        // K and V bytes of every batch row's keys (what a full decode reads)
  double read_bytes = 0;      // K and V bytes the mask lets the kernel touch (kv_bytes without a window)
  double decode_gbps = 0;     // read_bytes / decode_seconds / 1e9
  double read_seconds = 0;    // median of the bandwidth probe over kv_bytes
  double read_gbps = 0;       // kv_bytes / read_seconds / 1e9: the same-run ceiling
  double fraction = 0;        // the median over the pairs of (decode GB/s) / (ceiling GB/s)
  std::vector<double> decode_times, read_times;  // every timed pair, in seconds, in the order run
  int num_splits = 0;
  int threads = 0;
  const char* kernels = "";  // the CPU kernels used: "avx512+bf16", "avx512" or "scalar"
};

// Runs the benchmark (inputs drawn from a fixed seed). RuntimeError for sizes the decode kernel
// refuses or that cannot be allocated.
DecodeBenchResult benchmark_decode_cpu(const DecodeBenchConfig& config);

}  // namespace attnc::decode
