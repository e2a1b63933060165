#pragma once
// What attnc_gpu_bench's sections share: CUDA events from the driver (CudaDriver has none), the
// median of timed runs, the same-run device copy rate, random bf16 device tensors, and the CSV row
// every section prints.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/core/Tensor.h"

namespace attnc::gpu_bench {

// Median milliseconds of `reps` runs of `run` after `warmup` runs, each between two CUDA events on
// the default stream (`run` may synchronise; the events still bracket its device work).
double median_ms(const std::function<void()>& run, int reps, int warmup);

// Device-to-device copy rate in GB/s (bytes read plus bytes written) of a `bytes`-byte buffer, the
// median of `reps` copies: the same-run ceiling for memory-bound kernels.
double copy_rate_gbps(size_t bytes, int reps);

// A bf16 device tensor of values uniform in [-1, 1), from `seed` (xorshift; no zeros-only data).
Tensor random_device(std::vector<int64_t> shape, uint64_t seed);

// One CSV row: impl,kind,case,S,D,ms,rate,unit (also a readable line on stderr).
void emit(const std::string& impl, const std::string& kind, const std::string& name, int64_t s, int64_t d, double ms,
          double rate, const std::string& unit);

}  // namespace attnc::gpu_bench
