#pragma once
// Random tensors for the tests, written once: every kernel test draws its inputs here, so a seed
// means the same values in every file.

#include <cstdint>
#include <random>
#include <vector>

#include "compiler/DType.h"
#include "runtime/core/Tensor.h"

namespace attnc::test {

// Values uniform in [lo, hi) drawn from `rng` (in C order), stored as `dtype`.
Tensor uniform_tensor(std::mt19937& rng, DType dtype, std::vector<int64_t> shape, float lo = -1.0f, float hi = 1.0f);
// The same from a fresh std::mt19937(seed).
Tensor uniform_tensor(uint32_t seed, DType dtype, std::vector<int64_t> shape, float lo = -1.0f, float hi = 1.0f);
// Values from the standard normal distribution of a fresh std::mt19937(seed), stored as `dtype`.
Tensor normal_tensor(uint32_t seed, DType dtype, std::vector<int64_t> shape);

}  // namespace attnc::test
